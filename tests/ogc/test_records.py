"""The dataset catalog as OGC API Records (OWSLib) and as STAC (pystac-client)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from owslib.ogcapi.records import Records
from pystac_client import Client

from geoplatform.errors import InvalidParameterValue
from geoplatform.ogc import records as R
from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)


def test_records_search(server: str) -> None:  # noqa: F811
    api = Records(server)
    everything = api.collection_items("catalog", limit=100)
    # every dataset the caller sees (not the restricted ones) and the PM2.5 grid
    assert everything["numberMatched"] == 13
    grid = next(f for f in everything["features"] if f["id"] == "pm25_daily")
    assert grid["properties"]["variables"] == ["pm25"] and grid["properties"]["grid"]["steps"] == 90
    assert grid["time"]["interval"] == ["2025-01-01T00:00:00Z", "2025-03-31T00:00:00Z"]
    assert grid["properties"]["department"] == "environment" and grid["geometry"]["type"] == "Polygon"
    cov = next(link for link in grid["links"] if link["rel"].endswith("/coverage"))
    assert cov["href"].endswith("/collections/pm25-grid/coverage")
    assert httpx.get(cov["href"], params={"datetime": "2025-03-01"}).status_code == 200
    rec = next(f for f in everything["features"] if f["id"] == "water_pipes")
    assert rec["properties"]["license"] and rec["properties"]["department"] == "water"
    assert rec["properties"]["type"] == "dataset" and rec["geometry"]["type"] == "Polygon"
    by_q = api.collection_items("catalog", q="water")
    assert {"water_pipes", "water_valves"} <= {f["id"] for f in by_q["features"]}
    assert all("water" in (f["properties"]["title"] + f["properties"]["description"]
                           + " ".join(f["properties"]["keywords"])).lower() for f in by_q["features"])
    dept = httpx.get(f"{server}/collections/catalog/items", params={"department": "emergency"}).json()
    assert dept["features"] and all(f["properties"]["department"] == "emergency" for f in dept["features"])
    far = httpx.get(f"{server}/collections/catalog/items", params={"bbox": "0,0,1,1"}).json()
    assert far["numberMatched"] == 0
    in_2025 = httpx.get(f"{server}/collections/catalog/items",
                        params={"datetime": "2025-02-01T00:00:00Z/2025-02-02T00:00:00Z"}).json()
    ids = {f["id"] for f in in_2025["features"]}
    assert "incidents" in ids and "air_quality" in ids
    one = api.collection_item("catalog", "incidents")
    assert one["id"] == "incidents"
    assert httpx.get(f"{server}/collections/catalog/items/nope").status_code == 404
    assert httpx.get(f"{server}/collections/catalog/items", params={"colour": "red"}).status_code == 400


def test_stac_catalog_with_pystac_client(server: str) -> None:  # noqa: F811
    client = Client.open(f"{server}/stac")
    cols = {c.id: c for c in client.get_collections()}
    assert len(cols) == 13 and "incidents" in cols and "pm25_daily" in cols
    pm = cols["pm25_daily"]
    assert pm.summaries.lists["variables"] == ["pm25"] and pm.extent.temporal.intervals[0][0].month == 1
    assert any(link.rel.endswith("/coverage") for link in pm.links)
    inc = cols["incidents"]
    assert inc.license and inc.extent.spatial.bboxes[0][0] > 108
    assert inc.extent.temporal.intervals[0][0].year in (2024, 2025)


def _record(rid: str, external: list[dict[str, str]], time: list[str] | None = None) -> dict[str, Any]:
    return {"type": "Feature", "id": rid, "geometry": None, "time": {"interval": time} if time else None,
            "properties": {"type": "dataset", "title": rid, "description": "", "keywords": [], "rows": 1,
                           "externalIds": external, "contacts": []}, "links": []}


def test_external_ids_match_scheme_value_or_both() -> None:
    recs = [_record("a", [{"scheme": "urn:portal", "value": "42"}]), _record("b", [{"value": "42"}]),
            _record("c", [{"scheme": "doi", "value": "10.1/x"}]), _record("d", [])]

    def ids(value: str) -> list[str]:
        return [r["id"] for r in R.search(recs, R.parse_search({"externalIds": value}))]

    assert ids("42") == ["a", "b"]  # the value alone
    assert ids("urn:portal:42") == ["a"]  # scheme and value (split at the last colon)
    assert ids("doi:") == ["c"]  # the scheme alone
    assert ids("urn:portal:43,doi:10.1/x") == ["c"]


def test_datetime_filter_never_matches_a_record_without_time() -> None:
    recs = [_record("open", [], ["2025-01-01T00:00:00Z", ".."]), _record("none", [])]
    for f in ("T_INTERSECTS(datetime, INTERVAL('2025-02-01', '2025-02-02'))",
              "NOT T_INTERSECTS(datetime, INTERVAL('2020-02-01', '2020-02-02'))"):
        assert [r["id"] for r in R.search(recs, R.parse_search({"filter": f}))] == ["open"], f
    assert [r["id"] for r in R.search(recs, R.parse_search({"filter": "time_start IS NULL"}))] == ["none"]


@pytest.mark.parametrize("params,word", [
    ({"limit": "0"}, "limit"), ({"limit": "1e3"}, "limit"), ({"offset": "-1"}, "offset"), ({"limit": "³"}, "limit"),
    ({"offset": "٣"}, "offset"), ({"limit": "9" * 40}, "limit"), ({"limit": "\x1e4"}, "limit"),
    ({"bbox": "0,0,1"}, "bbox"), ({"bbox": "0,1,1,0"}, "bbox"), ({"datetime": "2025-13-01"}, "2025-13-01"),
    ({"q": "water,"}, "q"), ({"type": "x" * 65}, "type"), ({"ids": ""}, "ids"), ({"sortby": "-"}, "sort"),
    ({"sortby": "geometry"}, "geometry"), ({"filter": "rows >"}, "cql2-text"), ({"filter-lang": "cql2-text"}, "filter"),
    ({"filter": "true", "filter-lang": "sql"}, "filter-lang"), ({"colour": "red"}, "colour"),
])
def test_bad_searches_name_the_problem(params: dict[str, str], word: str) -> None:
    with pytest.raises(InvalidParameterValue, match=word):
        R.parse_search(params)


def test_pages_link_on_and_back(server: str) -> None:  # noqa: F811
    url = f"{server}/collections/catalog/items"
    first = httpx.get(url, params={"limit": 5, "sortby": "-rows"}).json()
    seen = [f["id"] for f in first["features"]]
    page = first
    while nxt := [link["href"] for link in page["links"] if link["rel"] == "next"]:
        page = httpx.get(nxt[0]).json()
        assert page["numberMatched"] == 13 and page["numberReturned"] == len(page["features"])
        seen += [f["id"] for f in page["features"]]
    assert len(seen) == len(set(seen)) == 13
    back = httpx.get([link["href"] for link in page["links"] if link["rel"] == "prev"][0]).json()
    assert [f["id"] for f in back["features"]] == seen[5:10]


def test_owslib_reads_queryables_and_sortby(server: str) -> None:  # noqa: F811
    api = Records(server)
    assert "keywords" in api.collection_queryables("catalog")["properties"]
    ranked = api.collection_items("catalog", sortby="-rows", limit=3)
    rows = [f["properties"]["rows"] for f in ranked["features"]]
    assert rows == sorted(rows, reverse=True) and ranked["numberMatched"] == 13
    hits = api.collection_items("catalog", filter="department = 'water'")
    assert {f["id"] for f in hits["features"]} == {"water_pipes", "water_valves"}
