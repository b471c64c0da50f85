"""OWSLib's OGC API Features client against the server."""

from __future__ import annotations

import httpx
from owslib.ogcapi.features import Features

from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)


def test_owslib_reads_collections_items_and_filters(server: str) -> None:  # noqa: F811
    api = Features(server)
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in api.conformance()["conformsTo"]
    ids = [c["id"] for c in api.collections()["collections"]]
    # with the EDR stations, incidents grid, PM2.5 grid and the two registers' aggregates; no restricted layer
    assert "water-pipes" in ids and len(ids) == 18 and "residents-by-age" in ids and "residents" not in ids
    assert api.collection("incidents")["storageCrs"].endswith("/EPSG/0/4490")
    page = api.collection_items("incidents", limit=7, sortby=("severity", "desc"))
    assert page["numberReturned"] == 7 and page["features"][0]["properties"]["severity"] == 5
    fires = api.collection_items("incidents", filter="type = 'fire' AND severity >= 4", limit=1000)
    assert fires["numberMatched"] == len(fires["features"]) > 0
    assert all(f["properties"]["type"] == "fire" and f["properties"]["severity"] >= 4 for f in fires["features"])
    direct = httpx.get(f"{server}/collections/incidents/items",
                       params={"filter": "type = 'fire' AND severity >= 4", "limit": 1}).json()
    assert direct["numberMatched"] == fires["numberMatched"]
    q = api.collection_queryables("incidents")
    assert q["properties"]["severity"]["type"] == "integer"
    one = api.collection_item("incidents", fires["features"][0]["id"])
    assert one["id"] == fires["features"][0]["id"]
