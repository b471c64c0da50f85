"""The OGC API server over HTTP, read by GDAL's OAPIF driver (through pyogrio)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyogrio
import pytest

import geoplatform as gp
from geoplatform.catalog import load_city_catalog, publish
from geoplatform.samples.city import build_sample_city

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(probe: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait until ``probe`` answers 200; the server's log is the error if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server, killing it if it has not gone in 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serving(work: Path, args: list[str] = (), env: dict[str, str] | None = None,  # type: ignore[assignment]
            probe: str = "/conformance") -> Iterator[str]:
    """``geoplatform serve`` of the store in ``work`` (with ``args``) on a free port."""
    port = _free_port()
    exe = Path(sys.executable).parent / "geoplatform"
    # The log goes to a file: an unread pipe fills up and stalls the server.
    log = open(work / "server.log", "wb")  # noqa: SIM115
    # Served as an intranet unless the test says otherwise: callers without credentials read every
    # department's shared data (the access tests serve the public and give credentials).
    env = {"GEOPLATFORM_ANONYMOUS_ROLES": '{"*": "reader"}', **(env or {})}
    proc = subprocess.Popen([str(exe), "serve", "--store", str(work / "store"), "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}{probe}", proc, work / "server.log")
        yield url
    finally:
        stop(proc)
        log.close()


@contextmanager
def running_server(work: Path, env: dict[str, str] | None = None, args: list[str] = ()  # type: ignore[assignment]
                   ) -> Iterator[str]:
    """``geoplatform serve`` of the sample city, built in ``work``, on a free port."""
    catalog = load_city_catalog(ROOT / "catalogs" / "sample_city.yaml")
    with gp.open_cube(work / "store") as cube:
        publish(cube, catalog, build_sample_city(work / "src"), progress=False)
    with serving(work, args, env=env) as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("city")) as url:
        yield url


def test_landing_conformance_collections(server: str) -> None:
    landing = httpx.get(f"{server}/").json()
    assert {"conformance", "data"} <= {link["rel"] for link in landing["links"]}
    conf = httpx.get(f"{server}/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in conf
    cols = httpx.get(f"{server}/collections").json()["collections"]
    # 12 feature layers (not the restricted population grid nor the registers of residents and companies:
    # an intranet caller is no member of their departments), the stations of the air-quality series, the
    # daily incidents grid, the PM2.5 grid, residents by age and companies by industry, the catalog
    assert len(cols) == 18 and {c["itemType"] for c in cols} == {"feature", "record", "coverage"}
    inc = next(c for c in cols if c["id"] == "incidents")
    assert inc["storageCrs"] == "http://www.opengis.net/def/crs/EPSG/0/4490"
    assert inc["extent"]["temporal"]["interval"][0][0].startswith("2024-12-31") or \
        inc["extent"]["temporal"]["interval"][0][0].startswith("2025-01-01")


def test_gdal_reads_every_collection_to_the_end(server: str) -> None:
    listed = [name for name, _ in pyogrio.list_layers(f"OAPIF:{server}")]
    assert len(listed) == 18 and "catalog" in listed  # GDAL lists every collection it may see
    cols = {c["id"]: c for c in httpx.get(f"{server}/collections").json()["collections"]}
    # every collection of features is read to the end; the coverages (the grids) have no items
    layers = [name for name in listed if name != "catalog" and cols[name]["itemType"] == "feature"]
    assert len(layers) == 13 and "air-quality-stations" in layers  # not the restricted population grid
    for name in layers:
        matched = httpx.get(f"{server}/collections/{name}/items", params={"limit": 1}).json()["numberMatched"]
        df = pyogrio.read_dataframe(f"OAPIF:{server}", layer=name)
        assert len(df) == matched > 0, name
        if cols[name]["storageCrs"].endswith("/4490"):
            assert df.crs.to_epsg() == 4490, name  # GDAL asks for the storage CRS, EPSG:4490
        else:
            assert df.crs.to_string() == "OGC:CRS84", name  # the stations' positions
        b = df.total_bounds  # lon/lat the right way round after the axis-order dance
        assert 108.5 < b[0] < b[2] < 109.5 and 34.0 < b[1] < b[3] < 34.6, name


def test_gdal_filter_is_sent_as_cql2(server: str) -> None:
    df = pyogrio.read_dataframe(f"OAPIF:{server}", layer="incidents", where="severity >= 4")
    want = httpx.get(f"{server}/collections/incidents/items",
                     params={"filter": "severity >= 4", "limit": 1}).json()["numberMatched"]
    assert len(df) == want > 0 and (df["severity"] >= 4).all()


@pytest.mark.parametrize("path,status", [
    ("/collections/nope", 404),
    ("/collections/nope/items", 404),
    ("/collections/incidents/items/not-an-id", 404),
    ("/collections/air-quality/items/not-a-number", 404),
    ("/collections/air-quality/items/999999999999999999999999999999", 404),  # beyond int64
    ("/collections/air-quality/items/999999999999999999999999999999/history", 404),
    ("/collections/incidents/items?limit=abc", 400),
    ("/collections/incidents/items?limit=1&limit=2", 400),
    ("/collections/incidents/items?sortby=", 400),
    ("/collections/incidents/items?filter=severity%20%3E", 400),
    ("/collections/incidents/items?filter-lang=cql2-text&filter=severity%3E2", 200),
    ("/collections/incidents/items?bbox=1,2,3", 400),
    ("/collections/incidents/items?f=xml", 400),
    ("/no/such/path", 404),
    ("/?colour=red", 400),
    ("/collections?limit=5", 400),
    ("/collections/incidents?bbox=1,2,3,4", 400),
    ("/conformance?f=json", 200),
    ("/collections/incidents/queryables?x=1", 400),
])
def test_errors_are_clean(server: str, path: str, status: int) -> None:
    r = httpx.get(f"{server}{path}")
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["description"]


def test_geojson_media_type_and_content_crs(server: str) -> None:
    r = httpx.get(f"{server}/collections/incidents/items", params={"limit": 1},
                  headers={"Accept": "application/geo+json"})
    assert r.headers["content-type"] == "application/geo+json"
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"


def test_openapi_document_describes_every_collection(server: str) -> None:
    r = httpx.get(f"{server}/api")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    doc = r.json()
    assert doc["openapi"].startswith("3.0")
    assert "/collections/water-pipes/items" in doc["paths"]
    params = {p["name"]: p for p in doc["paths"]["/collections/water-pipes/items"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 10_000


def test_schema_of_the_features(server: str) -> None:
    """Features Part 5 schema: every served property, with the roles of id, geometry and valid time."""
    col = httpx.get(f"{server}/collections/incidents").json()
    link = next(lk for lk in col["links"] if lk["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/schema")
    r = httpx.get(link["href"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/schema+json"
    doc = r.json()
    roles = {k: v.get("x-ogc-role") for k, v in doc["properties"].items()}
    assert roles["fid"] == "id" and roles["geometry"] == "primary-geometry"
    assert roles["valid_from"] == "primary-interval-start" and roles["valid_to"] == "primary-interval-end"
    assert doc["properties"]["severity"] == {"type": "integer", "minimum": 1.0, "maximum": 5.0}
    assert set(doc["properties"]["type"]["enum"]) == {"fire", "flood", "traffic", "gas_leak", "medical"}
    # every property an item carries is in the schema
    feat = httpx.get(f"{server}/collections/incidents/items", params={"limit": 1}).json()["features"][0]
    assert set(feat["properties"]) <= set(doc["properties"])
    obs = httpx.get(f"{server}/collections/air-quality/schema").json()["properties"]
    assert obs["valid_from"]["x-ogc-role"] == "primary-instant" and "valid_to" not in obs
    assert httpx.get(f"{server}/collections/nope/schema").status_code == 404
    assert httpx.get(f"{server}/collections/incidents/schema?x=1").status_code == 400
