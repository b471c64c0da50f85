"""Conformance of the dataset catalog, following the abstract test suite of
OGC API - Records - Part 1 (the ``/conf/...`` ids of its building blocks:
record-core, record-collection, record-core-query-parameters, json, sorting,
record-filter (class cql-filter), records-api, and the searchable-catalog
classes built from them). Each test is named by its abstract test id and
follows its test method over HTTP. Tests of optional content the catalog does
not carry (link templates, contact logos, child catalogs) check that what is
there, if anything, is as the test requires.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)

SPEC = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/"
RECORD_PROFILE = "http://www.opengis.net/def/profile/OGC/0/ogc-record"
CATALOG_PROFILE = "http://www.opengis.net/def/profile/OGC/0/ogc-catalog"
CATALOG = "catalog"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$")
SPDX = {"CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "ODbL-1.0", "PDDL-1.0", "other"}

TESTS: dict[str, Callable[[str], None]] = {}


def ats(test_id: str) -> Callable[[Callable[[str], None]], Callable[[str], None]]:
    def register(fn: Callable[[str], None]) -> Callable[[str], None]:
        TESTS[test_id] = fn
        return fn
    return register


def get(url: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params or None, timeout=30)


def items(base: str, **params: Any) -> dict[str, Any]:
    r = get(f"{base}/collections/{CATALOG}/items", **params)
    assert r.status_code == 200, r.text
    return r.json()


def every_record(base: str) -> list[dict[str, Any]]:
    return items(base, limit=1000)["features"]


def links(doc: dict[str, Any], rel: str) -> list[dict[str, Any]]:
    return [link for link in doc.get("links", []) if link["rel"] == rel]


def catalog(base: str) -> dict[str, Any]:
    return get(f"{base}/collections/{CATALOG}").json()


def conforms(base: str) -> list[str]:
    return get(f"{base}/conformance").json()["conformsTo"]


def openapi_params(base: str) -> dict[str, dict[str, Any]]:
    doc = get(f"{base}/api").json()
    return {p["name"]: p for p in doc["paths"][f"/collections/{CATALOG}/items"]["get"]["parameters"]}


def assert_array_param(p: dict[str, Any]) -> None:
    assert p["in"] == "query" and p["required"] is False and p["schema"]["type"] == "array"
    assert p["schema"]["items"]["type"] == "string" and p["explode"] is False and p["style"] == "form"


def record_text(r: dict[str, Any]) -> str:
    p = r["properties"]
    return "\n".join([p["title"], p["description"], *p["keywords"], p.get("theme") or "",
                      *(c.get("organization", "") for c in p["contacts"])])


# ---------------------------------------------------------------- record-core

@ats("/conf/record-core/mandatory-properties-record")
def _(base: str) -> None:
    for r in every_record(base):
        assert r["id"] and isinstance(r["id"], str)
        assert r["type"] == "Feature" and "geometry" in r and isinstance(r["properties"], dict)


@ats("/conf/record-core/links")
def _(base: str) -> None:
    for r in every_record(base):
        (coll,) = links(r, "collection")
        doc = get(coll["href"]).json()
        assert doc["type"] == "Collection" and doc["itemType"] == "record"


@ats("/conf/record-core/templated-link")
def _(base: str) -> None:
    for r in every_record(base):
        assert all("uriTemplate" in t for t in r.get("linkTemplates", []))


@ats("/conf/record-core/templated-link-header")
def _(base: str) -> None:  # no record has link templates, so none goes into a header
    r = get(f"{base}/collections/{CATALOG}/items/incidents")
    assert "linkTemplates" not in r.json() and "link-template" not in r.headers


@ats("/conf/record-core/license")
def _(base: str) -> None:
    for r in every_record(base):
        lic = r["properties"].get("license")
        assert lic in SPDX, lic
        if lic == "other":
            assert links(r, "license")


@ats("/conf/record-core/contact")
def _(base: str) -> None:
    for r in every_record(base):
        for c in r["properties"]["contacts"]:
            assert c.get("name") or c.get("organization")
            assert "logo" not in c or (c["logo"]["rel"] == "icon" and c["logo"]["type"].startswith("image/"))
            assert all(link["rel"] == "about" and link["type"] for link in c.get("links", []))


def _times(base: str) -> list[dict[str, Any]]:
    times = [r["time"] for r in every_record(base) if r.get("time")]
    assert times  # the sample catalog has records with a temporal extent
    return times


@ats("/conf/record-core/time-instant-interval")
def _(base: str) -> None:
    for t in _times(base):
        if "timestamp" in t and "interval" in t:
            lo, hi = t["interval"]
            assert (lo == ".." or lo <= t["timestamp"]) and (hi == ".." or t["timestamp"] <= hi)
        if "date" in t and "timestamp" in t:
            assert t["timestamp"].startswith(t["date"])


@ats("/conf/record-core/time-instant")
def _(base: str) -> None:
    for t in _times(base):
        assert "date" not in t or DATE.match(t["date"])
        assert "timestamp" not in t or TIMESTAMP.match(t["timestamp"])


@ats("/conf/record-core/time-interval")
def _(base: str) -> None:
    for t in _times(base):
        lo, hi = t["interval"]
        for v in (lo, hi):
            assert v == ".." or DATE.match(v) or TIMESTAMP.match(v), v
        if lo != ".." and hi != "..":
            assert bool(DATE.match(lo)) == bool(DATE.match(hi))


@ats("/conf/record-core/time-zone")
def _(base: str) -> None:
    for t in _times(base):
        assert all(v == ".." or DATE.match(v) or v.endswith("Z") for v in t["interval"])


@ats("/conf/record-core/default-mediatype")
def _(base: str) -> None:
    r = get(f"{base}/collections/{CATALOG}/items/incidents")
    assert r.headers["content-type"] == "application/geo+json"
    assert any(link["href"] == RECORD_PROFILE for link in links(r.json(), "profile"))


# ---------------------------------------------------------- record-collection

@ats("/conf/record-collection/mandatory-properties-collection")
def _(base: str) -> None:
    c = catalog(base)
    assert c["id"] == CATALOG and c["type"] == "Collection" and c["links"]


@ats("/conf/record-collection/itemType")
def _(base: str) -> None:
    assert catalog(base)["itemType"] == "record"
    assert all(r["type"] == "Feature" and "record-core" in r["conformsTo"][0] for r in every_record(base))


@ats("/conf/record-collection/contact")
def _(base: str) -> None:
    assert all(c.get("name") or c.get("organization") for c in catalog(base).get("contacts", []))


@ats("/conf/record-collection/license")
def _(base: str) -> None:
    c = catalog(base)
    assert c.get("license", "other") in SPDX and (c.get("license") != "other" or links(c, "license"))


@ats("/conf/record-collection/links")
def _(base: str) -> None:
    c = catalog(base)
    (self_,) = links(c, "self")
    assert get(self_["href"]).json() == c
    for alt in links(c, "alternate"):
        assert get(alt["href"]).headers["content-type"].startswith(alt["type"])


@ats("/conf/record-collection/links-catalog-hierarchy")
def _(base: str) -> None:
    for child in links(catalog(base), "child"):
        assert get(child["href"]).json()["type"] == "Collection"


@ats("/conf/record-collection/links-catalog-related")
def _(base: str) -> None:
    for rel in links(catalog(base), "related"):
        assert get(rel["href"]).status_code == 200


@ats("/conf/record-collection/links-catalog-series")
def _(base: str) -> None:
    for nxt in links(catalog(base), "next"):
        assert get(nxt["href"]).json()["type"] == "Collection"


@ats("/conf/record-collection/links-record")
def _(base: str) -> None:
    for item in links(catalog(base), "item"):
        assert get(item["href"]).json()["type"] == "Feature"


@ats("/conf/record-collection/links-records")
def _(base: str) -> None:
    (its,) = links(catalog(base), "items")
    fc = get(its["href"]).json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == fc["numberReturned"] > 0


@ats("/conf/record-collection/records-array-name")
def _(base: str) -> None:
    c = catalog(base)
    assert "recordsArrayName" not in c or isinstance(c[c["recordsArrayName"]], list)


@ats("/conf/record-collection/records")
def _(base: str) -> None:
    c = catalog(base)
    assert all(r["type"] == "Feature" and r["id"] for r in c.get(c.get("recordsArrayName", "records"), []))


@ats("/conf/record-collection/default-mediatype")
def _(base: str) -> None:
    assert get(f"{base}/collections/{CATALOG}").headers["content-type"] == "application/ogc-catalog+json"


# ------------------------------------------------ record-core-query-parameters

@ats("/conf/record-core-query-parameters/bbox")
def _(base: str) -> None:
    p = openapi_params(base)["bbox"]
    assert p["style"] == "form" and p["explode"] is False and p["schema"]["minItems"] == 4
    every = every_record(base)
    box = (108.84, 34.17, 108.85, 34.18)  # the south-west corner of the city
    hits = items(base, bbox=",".join(map(str, box)))
    assert 0 < hits["numberMatched"] <= len(every)
    for r in hits["features"]:
        ring = r["geometry"]["coordinates"][0]
        assert ring[0][0] <= box[2] and ring[2][0] >= box[0] and ring[0][1] <= box[3] and ring[2][1] >= box[1]
    assert items(base, bbox="0,0,1,1")["numberMatched"] == 0


@ats("/conf/record-core-query-parameters/datetime")
def _(base: str) -> None:
    assert openapi_params(base)["datetime"]["schema"]["type"] == "string"
    hits = items(base, datetime="2025-02-01T00:00:00Z/2025-02-02T00:00:00Z")["features"]
    assert {"incidents", "air_quality"} <= {r["id"] for r in hits}
    for r in hits:
        lo, hi = r["time"]["interval"]
        assert (lo == ".." or lo <= "2025-02-02T00:00:00Z") and (hi == ".." or hi >= "2025-02-01")
    assert items(base, datetime="1999-01-01")["numberMatched"] == 0
    assert get(f"{base}/collections/{CATALOG}/items", datetime="yesterday").status_code == 400


@ats("/conf/record-core-query-parameters/externalIds-definition")
def _(base: str) -> None:
    assert_array_param(openapi_params(base)["externalIds"])
    assert get(f"{base}/collections/{CATALOG}/items", externalIds="urn:x:1,abc").status_code == 200


@ats("/conf/record-core-query-parameters/externalIds-response")
def _(base: str) -> None:
    # The sample datasets carry no external ids; the matching rules are tested
    # on the search function in test_records.py.
    assert items(base, externalIds="urn:x:1,abc")["numberMatched"] == 0


@ats("/conf/record-core-query-parameters/ids-definition")
def _(base: str) -> None:
    assert_array_param(openapi_params(base)["ids"])


@ats("/conf/record-core-query-parameters/ids-response")
def _(base: str) -> None:
    assert {r["id"] for r in items(base, ids="incidents,roads,nope")["features"]} == {"incidents", "roads"}


@ats("/conf/record-core-query-parameters/limit")
def _(base: str) -> None:
    p = openapi_params(base)["limit"]["schema"]
    assert p["type"] == "integer" and p["minimum"] == 1 and p["maximum"] >= p["default"]
    for n in (1, 2, 5):
        assert len(items(base, limit=n)["features"]) == n
    assert items(base, limit=10**6)["numberReturned"] == 13  # above the maximum: a page of the maximum


@ats("/conf/record-core-query-parameters/q-definition")
def _(base: str) -> None:
    assert_array_param(openapi_params(base)["q"])


@ats("/conf/record-core-query-parameters/q-response")
def _(base: str) -> None:
    one = items(base, q="water")["features"]
    assert one and all("water" in record_text(r).lower() for r in one)
    either = items(base, q="water,traffic")["features"]
    assert {r["id"] for r in one} < {r["id"] for r in either}
    assert all(re.search("water|traffic", record_text(r), re.I) for r in either)
    phrase = items(base, q="water   mains")["features"]
    assert phrase and all(re.search(r"water\s+mains", record_text(r), re.I) for r in phrase)
    reverse = items(base, q="mains water")["features"]  # the words in that order only
    assert {r["id"] for r in reverse} != {r["id"] for r in phrase}
    assert all(re.search(r"mains\s+water", record_text(r), re.I) for r in reverse)


@ats("/conf/record-core-query-parameters/type-definition")
def _(base: str) -> None:
    p = openapi_params(base)["type"]
    assert p["schema"]["type"] == "array" and p["schema"]["items"]["maxLength"] == 64 and p["explode"] is False


@ats("/conf/record-core-query-parameters/type-response")
def _(base: str) -> None:
    assert items(base, type="dataset")["numberMatched"] == 13
    assert items(base, type="service")["numberMatched"] == 0
    assert items(base, type="service,dataset")["numberMatched"] == 13


# ------------------------------------------------------------------------ json

@ats("/conf/json/conformance")
def _(base: str) -> None:
    assert SPEC + "json" in conforms(base)


@ats("/conf/json/record-content")
def _(base: str) -> None:
    r = get(f"{base}/collections/{CATALOG}/items", limit=3)
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and isinstance(fc["features"], list)
    one = get(f"{base}/collections/{CATALOG}/items/{fc['features'][0]['id']}")
    assert one.headers["content-type"] == "application/geo+json" and isinstance(one.json()["links"], list)
    assert any(link["href"] == RECORD_PROFILE for link in links(one.json(), "profile"))


@ats("/conf/json/record-response")
def _(base: str) -> None:
    for r in every_record(base):
        one = get(f"{base}/collections/{CATALOG}/items/{r['id']}")
        assert one.status_code == 200 and one.headers["content-type"] == "application/geo+json"
        rec = one.json()
        assert {"id", "type", "geometry", "properties"} <= set(rec)
        p = rec["properties"]
        assert isinstance(p["keywords"], list) and all(isinstance(k, str) for k in p["keywords"])
        assert all(t["scheme"] and t["concepts"] and all(c["id"] for c in t["concepts"]) for t in p["themes"])
        assert p["language"]["code"] and all(TIMESTAMP.match(p[k]) for k in ("created", "updated"))
        assert all(e["value"] for e in p["externalIds"])


@ats("/conf/json/catalog-response")
def _(base: str) -> None:
    r = get(f"{base}/collections/{CATALOG}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/ogc-catalog+json"


@ats("/conf/json/catalog-content")
def _(base: str) -> None:
    c = catalog(base)
    assert any(link["href"] == CATALOG_PROFILE for link in links(c, "profile"))
    assert c["extent"]["spatial"]["bbox"] and c["defaultSortOrder"]


# --------------------------------------------------------------------- sorting

@ats("/conf/sorting/conformance")
def _(base: str) -> None:
    assert SPEC + "sorting" in conforms(base)


def _sortables(base: str) -> dict[str, Any]:
    (link,) = links(catalog(base), "http://www.opengis.net/def/rel/ogc/1.0/sortables")
    assert link["type"] == "application/schema+json"
    r = get(link["href"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/schema+json"
    return r.json()


@ats("/conf/sorting/defaultSortOrder-definition")
def _(base: str) -> None:
    order = catalog(base)["defaultSortOrder"]
    assert {o["field"] for o in order} <= set(_sortables(base)["properties"])
    got = [r["id"] for r in every_record(base)]
    assert got == sorted(got)  # the default order is id, ascending


@ats("/conf/sorting/get-sortables-op")
def _(base: str) -> None:
    assert {o["field"] for o in catalog(base)["defaultSortOrder"]} <= set(_sortables(base)["properties"])


@ats("/conf/sorting/get-sortables-success")
def _(base: str) -> None:
    s = _sortables(base)
    assert s["$schema"] == "https://json-schema.org/draft/2019-09/schema" and s["type"] == "object"
    assert s["$id"] == f"{base}/collections/{CATALOG}/sortables"
    assert all("type" in v for v in s["properties"].values())
    rec = every_record(base)[0]
    have = {"id", *rec["properties"], "time_start", "time_end"}  # the last two are the ends of `time`
    assert set(s["properties"]) <= have


@ats("/conf/sorting/sortby-definition")
def _(base: str) -> None:
    p = openapi_params(base)["sortby"]
    assert p["schema"]["type"] == "array" and "-updated" in p["schema"]["items"]["enum"]


@ats("/conf/sorting/sortby-response")
def _(base: str) -> None:
    for prop in ("title", "rows", "updated"):
        up = [r["properties"][prop] for r in items(base, sortby=f"+{prop}")["features"]]
        down = [r["properties"][prop] for r in items(base, sortby=f"-{prop}")["features"]]
        for got, rev in ((up, False), (down, True)):  # records without the property (a grid's rows) last
            known = [v for v in got if v is not None]
            assert got == sorted(known, reverse=rev) + [None] * (len(got) - len(known)), prop
        assert items(base, sortby=prop)["features"] == items(base, sortby=f"+{prop}")["features"]
    both = items(base, sortby="department,-rows")["features"]
    rows = [r["properties"]["rows"] for r in both]  # a grid has none: last in its department
    keys = [(r["properties"]["department"], float("inf") if n is None else -n) for r, n in zip(both, rows)]
    assert keys == sorted(keys)
    for bad in ("", "colour", "title,,rows"):
        r = get(f"{base}/collections/{CATALOG}/items", sortby=bad)
        assert r.status_code == 400 and "sort" in r.json()["description"], bad


# ------------------------------------------------------- record-filter (cql-filter)

@ats("/conf/record-filter/filter-param")
def _(base: str) -> None:
    hits = items(base, filter="rows > 1000 AND department <> 'water'")["features"]
    assert hits and all(r["properties"]["rows"] > 1000 and r["properties"]["department"] != "water" for r in hits)


@ats("/conf/record-filter/filter-lang-param")
def _(base: str) -> None:
    j = '{"op": ">", "args": [{"property": "rows"}, 1000]}'
    a = items(base, filter=j, **{"filter-lang": "cql2-json"})
    t = items(base, filter="rows > 1000", **{"filter-lang": "cql2-text"})
    assert a["numberMatched"] == t["numberMatched"] > 0
    assert get(f"{base}/collections/{CATALOG}/items", filter="x", **{"filter-lang": "sql"}).status_code == 400


@ats("/conf/record-filter/filter-crs-param")
def _(base: str) -> None:
    crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    hits = items(base, filter="S_INTERSECTS(geometry, POINT(108.845 34.185))", **{"filter-crs": crs84})
    assert hits["numberMatched"] > 0
    far = items(base, filter="S_INTERSECTS(geometry, POINT(1 1))", **{"filter-crs": crs84})
    assert far["numberMatched"] == 0
    bad = get(f"{base}/collections/{CATALOG}/items", filter="rows > 1",
              **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4545"})
    assert bad.status_code == 400


@ats("/conf/record-filter/response")
def _(base: str) -> None:
    dated = items(base, filter="T_INTERSECTS(datetime, INTERVAL('2025-02-01', '2025-02-02'))")["features"]
    by_param = items(base, datetime="2025-02-01/2025-02-02")["features"]
    assert [r["id"] for r in dated] == [r["id"] for r in by_param] and dated
    liked = items(base, filter="keywords LIKE '%water%' AND rights IN ('public', 'shared')")["features"]
    assert liked and all(any("water" in k for k in r["properties"]["keywords"]) for r in liked)
    for bad in ("rows >", "nonexistent = 1", "rows = 'many'"):
        r = get(f"{base}/collections/{CATALOG}/items", filter=bad)
        assert r.status_code == 400 and r.json()["description"], bad


# ----------------------------------------------------------------- records-api

@ats("/conf/records-api/features-api")
def _(base: str) -> None:
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conforms(base)
    fc = items(base, limit=5)
    nxt = links(fc, "next")[0]
    page2 = get(nxt["href"]).json()
    assert {r["id"] for r in fc["features"]}.isdisjoint({r["id"] for r in page2["features"]})
    assert links(page2, "prev") and fc["numberMatched"] == 13 and fc["timeStamp"].endswith("Z")
    assert get(f"{base}/collections/{CATALOG}/items", nonsense=1).status_code == 400


@ats("/conf/records-api/catalog-response")
def _(base: str) -> None:
    c = catalog(base)
    assert c["itemType"] == "record" and c["extent"]["spatial"]["crs"].endswith("CRS84")
    assert links(c, "items") and links(c, "self")


@ats("/conf/records-api/catalogs-response")
def _(base: str) -> None:
    listed = [c for c in get(f"{base}/collections").json()["collections"] if c.get("itemType") == "record"]
    assert [c["id"] for c in listed] == [CATALOG]
    assert listed[0] == catalog(base)


@ats("/conf/records-api/record-op")
def _(base: str) -> None:
    for r in every_record(base):
        assert get(f"{base}/collections/{CATALOG}/items/{r['id']}").status_code == 200
    assert get(f"{base}/collections/{CATALOG}/items/nope").status_code == 404


@ats("/conf/records-api/record-response")
def _(base: str) -> None:
    r = httpx.get(f"{base}/collections/{CATALOG}/items/incidents", headers={"Accept": "application/geo+json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    rec = r.json()
    assert all(link["rel"] for link in rec["links"])
    assert links(rec, "self")[0]["href"] == f"{base}/collections/{CATALOG}/items/incidents"
    assert len(links(rec, "collection")) == 1 and links(rec, "profile")


@ats("/conf/records-api/records-op")
def _(base: str) -> None:
    both = items(base, q="water", type="dataset", ids="water_pipes,roads", department="water")
    assert [r["id"] for r in both["features"]] == ["water_pipes"]


@ats("/conf/records-api/resource-name-mapping")
def _(base: str) -> None:
    assert get(f"{base}/collections/{CATALOG}/items", limit="x").status_code == 400
    assert get(f"{base}/collections/{CATALOG}/items", limit=1, **{"limit ": 2}).status_code == 400
    r = get(f"{base}/collections/{CATALOG}/items", bbox="1,2,3")
    assert r.status_code == 400 and "bbox" in r.json()["description"]


@ats("/conf/records-api/mandatory-params")
def _(base: str) -> None:
    assert {"bbox", "datetime", "externalIds", "ids", "limit", "q", "type"} <= set(openapi_params(base))


# ---------------------------------------------------------- searchable catalog

@ats("/conf/searchable-catalog/conformance")
def _(base: str) -> None:
    c = conforms(base)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in c
    assert {SPEC + n for n in ("searchable-catalog", "json", "oas30")} <= set(c)


@ats("/conf/searchable-catalog/building-blocks")
def _(base: str) -> None:
    assert {SPEC + n for n in ("records-api", "record-core", "record-collection",
                               "record-core-query-parameters")} <= set(conforms(base))


@ats("/conf/searchable-catalog/mandatory-catalog-properties")
def _(base: str) -> None:
    for c in get(f"{base}/collections").json()["collections"]:
        if c.get("itemType") == "record":
            assert c["id"] and c["type"] == "Collection" and c["links"]


@ats("/conf/searchable-catalog/mandatory-record-properties")
def _(base: str) -> None:
    assert all(r["id"] for r in every_record(base))


@ats("/conf/searchable-catalog/filtering-conformance")
def _(base: str) -> None:
    assert {SPEC + "searchable-catalog/filtering", SPEC + "cql-filter"} <= set(conforms(base))


@ats("/conf/searchable-catalog/mandatory-queryables")
def _(base: str) -> None:
    r = get(f"{base}/collections/{CATALOG}/queryables")
    assert r.status_code == 200 and r.headers["content-type"] == "application/schema+json"
    q = r.json()["properties"]
    assert {"id", "type", "title", "description", "keywords", "license", "geometry", "datetime"} <= set(q)
    assert q["geometry"]["format"].startswith("geometry-") and "type" not in q["geometry"]


@ats("/conf/searchable-catalog/sorting-conformance")
def _(base: str) -> None:
    assert {SPEC + "searchable-catalog/sorting", SPEC + "sorting"} <= set(conforms(base))


@pytest.mark.parametrize("test_id", sorted(TESTS))
def test_abstract_test(server: str, test_id: str) -> None:  # noqa: F811
    TESTS[test_id](server)
