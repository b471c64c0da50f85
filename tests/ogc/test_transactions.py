"""OGC API Features Part 4 over HTTP: writes are new versions, guarded by ETag/If-Match and an API key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import geoplatform as gp
from tests.ogc.test_server import running_server

KEY = "s3cret-key-for-tests"
H = {"X-API-Key": KEY, "Content-Type": "application/geo+json"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    work = tmp_path_factory.mktemp("tx")
    with running_server(work, {"GEOPLATFORM_API_KEY": KEY}) as url:
        yield url, work / "store"


def _valve(fid: str, status: str = "open", x: float = 108.95, y: float = 34.27) -> dict:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"pipe_id": "JS-000001", "status": status, "diameter_mm": 200}}


def test_create_read_replace_patch_delete_with_history(srv: tuple[str, object]) -> None:
    url, store = srv
    items = f"{url}/collections/water-valves/items"
    r = httpx.post(items, json=_valve("V-TEST-1"), headers=H)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/V-TEST-1")
    got = httpx.get(f"{items}/V-TEST-1")
    assert got.status_code == 200 and got.json()["properties"]["status"] == "open"
    tag1 = got.headers["etag"]
    assert httpx.post(items, json=_valve("V-TEST-1"), headers=H).status_code == 409
    r = httpx.put(f"{items}/V-TEST-1", json=_valve("V-TEST-1", "closed"), headers={**H, "If-Match": tag1})
    assert r.status_code == 204, r.text
    tag2 = r.headers["etag"]
    assert tag2 != tag1
    # a writer still holding the old tag loses: 412, nothing written
    r = httpx.put(f"{items}/V-TEST-1", json=_valve("V-TEST-1", "open"), headers={**H, "If-Match": tag1})
    assert r.status_code == 412
    r = httpx.patch(f"{items}/V-TEST-1", json={"properties": {"diameter_mm": 300}}, headers={**H, "If-Match": tag2})
    assert r.status_code == 204, r.text
    now = httpx.get(f"{items}/V-TEST-1").json()
    assert now["properties"]["diameter_mm"] == 300 and now["properties"]["status"] == "closed"
    assert now["geometry"]["coordinates"] == pytest.approx([108.95, 34.27], abs=1e-7)
    assert httpx.delete(f"{items}/V-TEST-1", headers=H).status_code == 204
    assert httpx.get(f"{items}/V-TEST-1").status_code == 404
    with gp.open_cube(store) as cube:  # the store kept every version
        h = cube.history("water_valves", "V-TEST-1")
        assert h["version"].tolist() == [1, 2, 3]
        assert h["status"].tolist() == ["open", "closed", "closed"]
        assert h["diameter_mm"].tolist() == [200, 200, 300]
        assert h["record_to"].notna().all()


def test_writes_need_the_key_and_an_editable_layer(srv: tuple[str, object]) -> None:
    url, _ = srv
    items = f"{url}/collections/water-valves/items"
    assert httpx.post(items, json=_valve("V-NOKEY")).status_code == 401
    assert httpx.post(items, json=_valve("V-BADKEY"), headers={"X-API-Key": "wrong"}).status_code == 401
    ok = httpx.post(items, json=_valve("V-BEARER"), headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 201
    r = httpx.post(f"{url}/collections/districts/items", json=_valve("D-X"), headers=H)
    assert r.status_code == 405 and "not editable" in r.json()["description"]


@pytest.mark.parametrize("body,match", [
    (b'{"type": "Feature", "id": "V-BAD-1", "geometry": null, "properties": {}}', "no geometry"),
    (b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.9, 34.2]}, "properties": {}}', "needs an id"),
    (b'{"type": "Feature",', "not JSON"),
    (b'[1, 2]', "one GeoJSON Feature"),
    (b'{"type": "Feature", "id": "V-BAD-2", "geometry": {"type": "Point", "coordinates": [108.9, 34.2]},'
     b' "properties": {"status": "ajar", "pipe_id": "JS-1", "diameter_mm": 100}}', "ajar"),
    (b'{"type": "Feature", "id": "V-BAD-3", "geometry": {"type": "Point", "coordinates": [108.9, 34.2]},'
     b' "properties": {"colour": "red"}}', "colour"),
])
def test_bad_writes_are_400s_and_change_nothing(srv: tuple[str, object], body: bytes, match: str) -> None:
    url, store = srv
    with gp.open_cube(store) as cube:
        before = len(cube.snapshots("water_valves"))
    r = httpx.post(f"{url}/collections/water-valves/items", content=body, headers=H)
    assert r.status_code == 400, r.text
    assert match in r.json()["description"]
    with gp.open_cube(store) as cube:
        assert len(cube.snapshots("water_valves")) == before


def test_missing_items(srv: tuple[str, object]) -> None:
    url, _ = srv
    items = f"{url}/collections/water-valves/items"
    assert httpx.put(f"{items}/NOPE", json=_valve("NOPE"), headers=H).status_code == 404
    assert httpx.patch(f"{items}/NOPE", json={"properties": {}}, headers=H).status_code == 404
    assert httpx.delete(f"{items}/NOPE", headers=H).status_code == 404


def test_as_of_and_history_over_http(srv: tuple[str, object]) -> None:
    url, _ = srv
    items = f"{url}/collections/water-valves/items"
    assert httpx.post(items, json=_valve("V-HIST", "open"), headers=H).status_code == 201
    first = int(httpx.post(items, json=_valve("V-HIST2"), headers=H).headers["x-snapshot"]) - 1
    assert httpx.put(f"{items}/V-HIST", json=_valve("V-HIST", "closed"), headers=H).status_code == 204
    assert httpx.get(f"{items}/V-HIST").json()["properties"]["status"] == "closed"
    then = httpx.get(f"{items}/V-HIST", params={"as-of": first})
    assert then.status_code == 200 and then.json()["properties"]["status"] == "open"
    listed = httpx.get(items, params={"as-of": first, "filter": "status = 'open'", "limit": 10000}).json()
    assert "V-HIST" in {f["id"] for f in listed["features"]}
    hist = httpx.get(f"{items}/V-HIST/history").json()
    assert [f["properties"]["version"] for f in hist["features"]] == [1, 2]
    assert [f["properties"]["status"] for f in hist["features"]] == ["open", "closed"]
    assert hist["features"][0]["properties"]["record_to"] == hist["features"][1]["properties"]["record_from"]
    assert httpx.get(f"{items}/NOPE/history").status_code == 404
    assert httpx.get(f"{items}/V-HIST", params={"as-of": "999999"}).status_code == 404
