"""Stock pygeoapi serving a store through geoplatform's provider, over HTTP.

``geoplatform pygeoapi-config`` writes the configuration; pygeoapi's own
OpenAPI generator and Starlette app run it unchanged. Its answers are compared
with the platform's own server over the same store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.ogc.test_server import _free_port, running_server, stop, wait_until_up

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    work = tmp_path_factory.mktemp("pgapi")
    with running_server(work) as ours:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cfg = work / "pygeoapi.yml"
        out = subprocess.run([str(BIN / "geoplatform"), "pygeoapi-config", "--store", str(work / "store"),
                              "--url", url], capture_output=True, text=True, timeout=120, check=True)
        cfg.write_text(out.stdout)
        env = {**os.environ, "PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(work / "openapi.yml")}
        subprocess.run([str(BIN / "pygeoapi"), "openapi", "generate", str(cfg), "--output-file",
                        str(work / "openapi.yml")], env=env, capture_output=True, timeout=300, check=True)
        log = open(work / "pygeoapi.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([str(BIN / "uvicorn"), "pygeoapi.starlette_app:APP", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"{url}/conformance?f=json", proc, work / "pygeoapi.log")
            yield ours, url
        finally:
            stop(proc)
            log.close()


def test_the_generated_configuration_passes_pygeoapis_schema(tmp_path: Path) -> None:
    from pygeoapi.config import validate_config

    store = tmp_path / "empty-store"
    out = subprocess.run([str(BIN / "geoplatform"), "pygeoapi-config", "--store", str(store)],
                         capture_output=True, text=True, timeout=120, check=True)
    cfg = yaml.safe_load(out.stdout)
    assert cfg["resources"] == {}  # an empty store publishes nothing
    assert validate_config(json.loads(json.dumps(cfg, default=str)))


@pytest.mark.parametrize(("cid", "params"), [
    ("incidents", {"limit": "5"}),
    ("incidents", {"limit": "5", "offset": "20"}),
    ("incidents", {"limit": "10", "bbox": "108.9,34.2,109.0,34.3"}),
    ("incidents", {"limit": "10", "datetime": "2025-03-01T00:00:00Z/2025-04-01T00:00:00Z"}),
    ("incidents", {"limit": "10", "datetime": "../2025-02-01T00:00:00Z"}),
    ("incidents", {"limit": "10", "filter": "severity >= 4 AND type = 'fire'", "filter-lang": "cql2-text"}),
    ("incidents", {"limit": "10", "type": "flood"}),
    ("incidents", {"limit": "10", "sortby": "-severity"}),
    ("water-pipes", {"limit": "10", "bbox": "108.9,34.2,108.95,34.25"}),
    ("parcels", {"limit": "3", "crs": "http://www.opengis.net/def/crs/EPSG/0/4546"}),
])
def test_stock_pygeoapi_answers_as_the_platform_does(servers: tuple[str, str], cid: str, params: dict) -> None:
    ours, theirs = servers
    a = httpx.get(f"{ours}/collections/{cid}/items", params={k: v for k, v in params.items() if k != "type"}
                  | ({"filter": f"type = '{params['type']}'"} if "type" in params else {}), timeout=60)
    # pygeoapi 0.21 takes text filters without filter-lang (it rejects "cql2-text")
    b = httpx.get(f"{theirs}/collections/{cid}/items",
                  params={**{k: v for k, v in params.items() if k != "filter-lang"}, "f": "json"}, timeout=60)
    assert a.status_code == 200 and b.status_code == 200, (a.text[:300], b.text[:300])
    ja, jb = a.json(), b.json()
    assert jb["numberMatched"] == ja["numberMatched"] and jb["numberReturned"] == ja["numberReturned"]
    if "sortby" in params:  # ties are in no set order: compare the sort key
        assert [f["properties"]["severity"] for f in jb["features"]] == [
            f["properties"]["severity"] for f in ja["features"]]
    else:
        assert [f["id"] for f in jb["features"]] == [f["id"] for f in ja["features"]]
        for fa, fb in zip(ja["features"], jb["features"]):
            assert fb["geometry"] == fa["geometry"] and fb["properties"] == fa["properties"]


def test_single_item_and_hits(servers: tuple[str, str]) -> None:
    ours, theirs = servers
    feat = httpx.get(f"{ours}/collections/incidents/items", params={"limit": 1}).json()["features"][0]
    got = httpx.get(f"{theirs}/collections/incidents/items/{feat['id']}", params={"f": "json"}).json()
    assert got["id"] == feat["id"] and got["geometry"] == feat["geometry"]
    assert httpx.get(f"{theirs}/collections/incidents/items/NOPE", params={"f": "json"}).status_code == 404
    hits = httpx.get(f"{theirs}/collections/incidents/items", params={"resulttype": "hits", "f": "json"}).json()
    assert hits["numberMatched"] == 5000 and hits["features"] == []


def test_stock_pygeoapi_pages_render_from_the_provider(servers: tuple[str, str]) -> None:
    _, theirs = servers
    page = httpx.get(f"{theirs}/collections/incidents/items", params={"f": "html", "limit": 3})
    assert page.status_code == 200 and "INC-2025-" in page.text and "items-map" in page.text
