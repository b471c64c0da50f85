"""The dataset catalog as OGC API Records (OWSLib) and as STAC (pystac-client)."""

from __future__ import annotations

import httpx
from owslib.ogcapi.records import Records
from pystac_client import Client

from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)


def test_records_search(server: str) -> None:  # noqa: F811
    api = Records(server)
    everything = api.collection_items("catalog", limit=100)
    assert everything["numberMatched"] == 13
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
    assert len(cols) == 13 and "incidents" in cols
    inc = cols["incidents"]
    assert inc.license and inc.extent.spatial.bboxes[0][0] > 108
    assert inc.extent.temporal.intervals[0][0].year in (2024, 2025)
