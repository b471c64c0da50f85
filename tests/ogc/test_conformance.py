"""Conformance, following the abstract test suites of OGC API - Features.

Each test is named by its abstract test id: Part 1 (17-069r4, Annex A:
/conf/core and /conf/geojson), Part 2 (18-058r1, /conf/crs) and Part 3
(19-079r2, /conf/filter, /conf/features-filter, /conf/queryables), and
Part 1's /conf/html. The checks
follow the test purposes of the ETS (ets-ogcapi-features10) over HTTP.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)

CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
COLLECTION = "incidents"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"


def get(url: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params or None, timeout=30)


def _rels(doc: dict[str, Any]) -> set[str]:
    return {link["rel"] for link in doc["links"]}


def ats_core_http(base: str) -> None:
    assert get(f"{base}/").http_version == "HTTP/1.1"


def ats_core_root_op(base: str) -> None:
    assert get(f"{base}/").status_code == 200


def ats_core_root_success(base: str) -> None:
    rels = _rels(get(f"{base}/").json())
    assert {"conformance", "data"} <= rels and ("service-desc" in rels or "service-doc" in rels)


def ats_core_api_definition_op(base: str) -> None:
    desc = [link for link in get(f"{base}/").json()["links"] if link["rel"] == "service-desc"][0]
    assert get(desc["href"]).status_code == 200


def ats_core_api_definition_success(base: str) -> None:
    from openapi_spec_validator import validate

    validate(get(f"{base}/api").json())


def ats_core_conformance_op(base: str) -> None:
    assert get(f"{base}/conformance").status_code == 200


def ats_core_conformance_success(base: str) -> None:
    assert CORE in get(f"{base}/conformance").json()["conformsTo"]


def ats_core_fc_md_op(base: str) -> None:
    assert get(f"{base}/collections").status_code == 200


def ats_core_fc_md_success(base: str) -> None:
    doc = get(f"{base}/collections").json()
    assert "self" in _rels(doc) and doc["collections"]


def _feature_collections(base: str) -> list[dict]:
    """The collections whose items are features (the abstract tests' "feature collections"):
    not the coverages the server also lists (EDR grids, whose data are queries)."""
    cols = get(f"{base}/collections").json()["collections"]
    assert any(c.get("itemType") == "coverage" for c in cols)  # the sample city has one: it is left out here
    return [c for c in cols if c.get("itemType", "feature") != "coverage"]


def ats_core_fc_md_items(base: str) -> None:
    for c in _feature_collections(base):
        assert c["id"] and "items" in _rels(c), c["id"]


def ats_core_fc_md_items_links(base: str) -> None:
    for c in _feature_collections(base):
        items = [link for link in c["links"] if link["rel"] == "items"]
        assert any(link["type"] == "application/geo+json" for link in items)


def ats_core_fc_md_extent(base: str) -> None:
    for c in get(f"{base}/collections").json()["collections"]:
        bbox = c["extent"]["spatial"]["bbox"][0]
        assert len(bbox) == 4 and -180 <= bbox[0] <= bbox[2] <= 180 and -90 <= bbox[1] <= bbox[3] <= 90
        assert c["extent"]["spatial"]["crs"] == CRS84


def ats_core_sfc_md_op(base: str) -> None:
    assert get(f"{base}/collections/{COLLECTION}").status_code == 200


def ats_core_sfc_md_success(base: str) -> None:
    one = get(f"{base}/collections/{COLLECTION}").json()
    listed = [c for c in get(f"{base}/collections").json()["collections"] if c["id"] == COLLECTION][0]
    assert one == listed


def ats_core_fc_op(base: str) -> None:
    assert get(f"{base}/collections/{COLLECTION}/items").status_code == 200


def ats_core_fc_limit_definition(base: str) -> None:
    params = get(f"{base}/api").json()["paths"][f"/collections/{COLLECTION}/items"]["get"]["parameters"]
    limit = [p for p in params if p["name"] == "limit"][0]
    assert limit["schema"]["type"] == "integer" and limit["schema"]["minimum"] == 1 and "maximum" in limit["schema"]


def ats_core_fc_limit_response(base: str) -> None:
    for n in (1, 7, 100):
        assert len(get(f"{base}/collections/{COLLECTION}/items", limit=n).json()["features"]) == n
    big = get(f"{base}/collections/{COLLECTION}/items", limit=10**6).json()
    assert len(big["features"]) <= 10_000


def ats_core_fc_bbox_definition(base: str) -> None:
    params = get(f"{base}/api").json()["paths"][f"/collections/{COLLECTION}/items"]["get"]["parameters"]
    bbox = [p for p in params if p["name"] == "bbox"][0]
    assert bbox["style"] == "form" and bbox["explode"] is False and bbox["schema"]["minItems"] == 4


def ats_core_fc_bbox_response(base: str) -> None:
    box = (108.92, 34.24, 108.98, 34.30)
    fc = get(f"{base}/collections/{COLLECTION}/items", bbox=",".join(map(str, box)), limit=10_000).json()
    assert fc["features"]
    for f in fc["features"]:
        x, y = f["geometry"]["coordinates"]
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3]


def ats_core_fc_datetime_response(base: str) -> None:
    fc = get(f"{base}/collections/{COLLECTION}/items", datetime="2025-03-01T00:00:00Z/2025-03-02T00:00:00Z",
             limit=10_000).json()
    assert fc["features"]
    for f in fc["features"]:
        p = f["properties"]
        assert p["valid_from"] <= "2025-03-02T00:00:00Z" and (p["valid_to"] is None or p["valid_to"] >= "2025-03-01")


def ats_core_fc_response(base: str) -> None:
    r = get(f"{base}/collections/{COLLECTION}/items", limit=5)
    fc = r.json()
    assert r.headers["content-type"] == "application/geo+json" and fc["type"] == "FeatureCollection"
    assert "self" in _rels(fc)


def ats_core_fc_links(base: str) -> None:
    fc = get(f"{base}/collections/{COLLECTION}/items", limit=5).json()
    nxt = [link for link in fc["links"] if link["rel"] == "next"][0]
    fc2 = get(nxt["href"]).json()
    assert {f["id"] for f in fc["features"]}.isdisjoint({f["id"] for f in fc2["features"]})


def ats_core_fc_time_stamp(base: str) -> None:
    assert get(f"{base}/collections/{COLLECTION}/items", limit=1).json()["timeStamp"].endswith("Z")


def ats_core_fc_number_matched(base: str) -> None:
    fc = get(f"{base}/collections/{COLLECTION}/items", limit=10_000, filter="severity = 5").json()
    assert fc["numberMatched"] == len(fc["features"])


def ats_core_fc_number_returned(base: str) -> None:
    fc = get(f"{base}/collections/{COLLECTION}/items", limit=3).json()
    assert fc["numberReturned"] == len(fc["features"]) == 3


def ats_core_f_op(base: str) -> None:
    fid = get(f"{base}/collections/{COLLECTION}/items", limit=1).json()["features"][0]["id"]
    assert get(f"{base}/collections/{COLLECTION}/items/{fid}").status_code == 200


def ats_core_f_success(base: str) -> None:
    fid = get(f"{base}/collections/{COLLECTION}/items", limit=1).json()["features"][0]["id"]
    f = get(f"{base}/collections/{COLLECTION}/items/{fid}").json()
    assert f["type"] == "Feature" and f["id"] == fid and "self" in _rels(f)


def ats_core_query_param_invalid(base: str) -> None:
    for params in ({"limit": "x"}, {"bbox": "1,2"}, {"datetime": "yesterday"}):
        assert get(f"{base}/collections/{COLLECTION}/items", **params).status_code == 400


def ats_core_query_param_unknown(base: str) -> None:
    assert get(f"{base}/collections/{COLLECTION}/items", nonsense="1").status_code == 400


def ats_geojson_content(base: str) -> None:
    f = get(f"{base}/collections/{COLLECTION}/items", limit=1).json()["features"][0]
    assert f["type"] == "Feature" and f["geometry"]["type"] == "Point" and isinstance(f["properties"], dict)


def ats_crs_fc_md_crs_list(base: str) -> None:
    c = get(f"{base}/collections/{COLLECTION}").json()
    assert CRS84 in c["crs"] and EPSG4490 in c["crs"]


def ats_crs_fc_md_storage_crs(base: str) -> None:
    c = get(f"{base}/collections/{COLLECTION}").json()
    assert c["storageCrs"] == EPSG4490 and c["storageCrs"] in c["crs"]


def ats_crs_fc_crs_valid_value(base: str) -> None:
    a = get(f"{base}/collections/{COLLECTION}/items", limit=3).json()
    r = get(f"{base}/collections/{COLLECTION}/items", limit=3, crs=EPSG4490)
    assert r.status_code == 200 and r.headers["content-crs"] == f"<{EPSG4490}>"
    for fa, fb in zip(a["features"], r.json()["features"]):
        assert fb["geometry"]["coordinates"] == pytest.approx(fa["geometry"]["coordinates"][::-1])


def ats_crs_fc_crs_invalid_value(base: str) -> None:
    assert get(f"{base}/collections/{COLLECTION}/items", crs="http://www.opengis.net/def/crs/EPSG/0/99999").status_code == 400


def ats_crs_fc_bbox_crs_valid_value(base: str) -> None:
    a = get(f"{base}/collections/{COLLECTION}/items", bbox="108.92,34.24,108.98,34.30", limit=10_000).json()
    b = get(f"{base}/collections/{COLLECTION}/items", bbox="34.24,108.92,34.30,108.98", limit=10_000,
            **{"bbox-crs": EPSG4490}).json()
    assert a["numberMatched"] == b["numberMatched"] > 0


def ats_crs_fc_bbox_crs_invalid_value(base: str) -> None:
    r = get(f"{base}/collections/{COLLECTION}/items", bbox="1,2,3,4", **{"bbox-crs": "EPSG:99999"})
    assert r.status_code == 400


def ats_crs_ogc_crs_header(base: str) -> None:
    fid = get(f"{base}/collections/{COLLECTION}/items", limit=1).json()["features"][0]["id"]
    r = get(f"{base}/collections/{COLLECTION}/items/{fid}", crs=EPSG4490)
    assert r.headers["content-crs"] == f"<{EPSG4490}>"


def ats_filter_filter_param(base: str) -> None:
    fc = get(f"{base}/collections/{COLLECTION}/items", filter="type = 'flood'", limit=10_000).json()
    assert fc["features"] and all(f["properties"]["type"] == "flood" for f in fc["features"])


def ats_filter_filter_lang_param(base: str) -> None:
    j = '{"op": "=", "args": [{"property": "type"}, "flood"]}'
    a = get(f"{base}/collections/{COLLECTION}/items", filter=j, **{"filter-lang": "cql2-json"}, limit=1).json()
    t = get(f"{base}/collections/{COLLECTION}/items", filter="type = 'flood'", **{"filter-lang": "cql2-text"},
            limit=1).json()
    assert a["numberMatched"] == t["numberMatched"] > 0
    assert get(f"{base}/collections/{COLLECTION}/items", filter="x", **{"filter-lang": "sql"}).status_code == 400


def ats_filter_filter_crs_param(base: str) -> None:
    assert get(f"{base}/collections/{COLLECTION}/items", filter="severity > 1",
               **{"filter-crs": CRS84}).status_code == 200


def ats_filter_response(base: str) -> None:
    r = get(f"{base}/collections/{COLLECTION}/items", filter="severity >")
    assert r.status_code == 400 and "cql2-text" in r.json()["description"]
    r = get(f"{base}/collections/{COLLECTION}/items", filter="nonexistent = 1")
    assert r.status_code == 400 and "nonexistent" in r.json()["description"]


def ats_queryables_get_queryables_op(base: str) -> None:
    c = get(f"{base}/collections/{COLLECTION}").json()
    q = [link for link in c["links"] if link["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/queryables"][0]
    assert get(q["href"]).status_code == 200


def ats_queryables_get_queryables_response(base: str) -> None:
    r = get(f"{base}/collections/{COLLECTION}/queryables")
    doc = r.json()
    assert r.headers["content-type"] == "application/schema+json"
    assert doc["type"] == "object" and "severity" in doc["properties"] and doc["$id"].endswith("/queryables")


_HTML_PATHS = ("/", "/conformance", "/api", "/collections", f"/collections/{COLLECTION}",
               f"/collections/{COLLECTION}/items")


def ats_html_definition(base: str) -> None:
    """Every 200 answer of every operation, where HTML is asked for, is text/html."""
    fid = get(f"{base}/collections/{COLLECTION}/items", limit=1).json()["features"][0]["id"]
    for path in (*_HTML_PATHS, f"/collections/{COLLECTION}/items/{fid}"):
        r = httpx.get(f"{base}{path}", headers={"Accept": "text/html"}, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].split(";")[0] == "text/html", path


def ats_html_content(base: str) -> None:
    """An HTML 5 document that carries what the JSON resource says."""
    from html import unescape

    for path in _HTML_PATHS:
        page = unescape(get(f"{base}{path}", f="html").text)
        assert "<!doctype html>" in page[:200].lower() and "</html>" in page[-100:], path
    landing = get(f"{base}/").json()
    assert landing["title"] in unescape(get(f"{base}/", f="html").text)
    fc = get(f"{base}/collections/{COLLECTION}/items").json()
    page = unescape(get(f"{base}/collections/{COLLECTION}/items", f="html").text)
    assert all(f["id"] in page for f in fc["features"]) and str(fc["numberMatched"]) in page


def _id(name: str) -> str:
    part, _, rest = name[len("ats_"):].partition("_")
    return f"/ats/{part}/{rest.replace('_', '-')}"


TESTS = {_id(name): fn for name, fn in list(globals().items()) if name.startswith("ats_")}


@pytest.mark.parametrize("test_id", sorted(TESTS))
def test_abstract_test(server: str, test_id: str) -> None:  # noqa: F811
    TESTS[test_id](server)
