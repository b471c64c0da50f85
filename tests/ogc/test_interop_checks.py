"""The interoperability checks (``interop_checks.py``) against this platform's
server and against stock pygeoapi 0.21 serving the same sample-city data from
files (GeoJSON and GeoParquet providers, and pre-rendered vector tiles).

Ours must pass every check. For pygeoapi the test pins what the pinned version
actually does, check by check (``PYGEOAPI_0_21``): a change in pygeoapi shows
up here as a failure to re-read, not as a silent drift. The table in
``tests/ogc/README.md`` is this test's outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

import geoplatform as gp
from tests.ogc.interop_checks import Collection, run_checks
from tests.ogc.test_server import _free_port, running_server, stop, wait_until_up

pytestmark = pytest.mark.slow

OURS = {
    "incidents": Collection("incidents", "type", "flood"),  # string ids
    "air-quality": Collection("air-quality", "sensor_id", "AIR-0027"),  # numeric ids
}
#: The same collections on stock pygeoapi: incidents from a GeoJSON file (and
#: pre-rendered vector tiles), air quality from a GeoParquet file (no tiles).
PYGEOAPI = {"incidents": OURS["incidents"], "air-quality": replace(OURS["air-quality"], tiles=False)}
#: What stock pygeoapi 0.21 does on each check (True: passes, "skip": cannot run there).
PYGEOAPI_0_21: dict[str, dict[str, bool | str]] = {
    "incidents": {  # GeoJSON provider
        "geojson-media-type": False,  # application/json, even when geo+json is asked for
        "datetime-applied": False,  # ignored: features of any time come back
        "filter-applied": False,  # ignored
        "filter-lang-cql2-text": False,  # 400 "Invalid filter language"
        "non-numeric-item-id": True,  # 404 (string ids)
        "text-in-numeric-param": True,  # 400 for limit=abc, offset=abc, bbox=a,b,c,d
        "empty-sortby": False,  # 500
        "out-of-range-tile": False,  # zoom 30: 500; row -1: 204
        "parallel-clients": True,  # no 5xx, same answers
    },
    "air-quality": {  # Parquet provider
        "geojson-media-type": False,
        "datetime-applied": True,  # the Parquet provider applies it to time_field
        "filter-applied": False,
        "filter-lang-cql2-text": False,
        "non-numeric-item-id": False,  # 500: int('not-a-number') in the provider
        "text-in-numeric-param": True,
        "empty-sortby": False,
        "out-of-range-tile": "skip",
        "parallel-clients": True,
    },
}


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The ``server`` fixture's server (``geoplatform serve`` of the sample city), and its store."""
    work = tmp_path_factory.mktemp("city")
    with running_server(work) as url:
        yield url, work / "store"


@pytest.fixture(scope="module")
def server(city: tuple[str, Path]) -> str:
    return city[0]


@pytest.mark.parametrize("cid", sorted(OURS))
def test_our_server_passes_every_check(server: str, cid: str) -> None:
    results = run_checks(server, OURS[cid])
    failed = [str(r) for r in results.values() if not r.passed]
    assert not failed, "\n".join(failed)
    for r in results.values():
        if r.skipped:  # only the tile check, while the server has no tiles endpoint
            assert r.name == "out-of-range-tile", r


def _export(work: Path, store: Path) -> dict[str, Path]:
    """incidents as GeoJSON, air quality as GeoParquet (with x/y columns for
    pygeoapi's bbox), and a pre-rendered tile set: the files stock pygeoapi serves."""
    with gp.open_cube(store) as cube:
        inc = cube.query("incidents", crs="OGC:CRS84")
        inc.to_file(work / "incidents.geojson", driver="GeoJSON")
        air = cube.query("air_quality", crs="OGC:CRS84")
        air["x"], air["y"] = air.geometry.x, air.geometry.y
        # fid as the frame's index: pygeoapi 0.21's Parquet provider takes feature ids
        # from the pandas index (with a default index, an item's id is its row on the page)
        air.set_index("fid").to_parquet(work / "air_quality.parquet")
    tiles = work / "tiles" / "incidents"
    (tiles / "0" / "0").mkdir(parents=True)
    (tiles / "0" / "0" / "0.pbf").write_bytes(b"")
    (tiles / "metadata.json").write_text(json.dumps({
        "name": "incidents", "format": "pbf", "minzoom": "0", "maxzoom": "5",
        "bounds": "108.8,34.1,109.1,34.4", "center": "108.95,34.27,0",
        "json": json.dumps({"vector_layers": [{"id": "incidents", "fields": {"type": "String"}}]})}))
    return {"incidents": work / "incidents.geojson", "air-quality": work / "air_quality.parquet", "tiles": tiles}


def _pygeoapi_config(files: dict[str, Path], url: str, port: int) -> dict[str, object]:
    extent = {"spatial": {"bbox": [108.8, 34.1, 109.1, 34.4], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
              "temporal": {"begin": datetime(2025, 1, 1, tzinfo=timezone.utc),
                           "end": datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc)}}
    link = "http://localhost/"
    return {
        "server": {"bind": {"host": "127.0.0.1", "port": port}, "url": url, "mimetype": "application/json; charset=UTF-8",
                   "encoding": "utf-8", "language": "en-US", "pretty_print": False,
                   "limits": {"default_items": 10, "max_items": 1000},
                   "map": {"url": "http://localhost/{z}/{x}/{y}.png", "attribution": "none"}},
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": "Sample city", "description": "The same data, from files", "keywords": ["city"],
                               "keywords_type": "theme", "terms_of_service": link, "url": link},
            "license": {"name": "CC0-1.0", "url": link},
            "provider": {"name": "geoplatform tests", "url": link},
            "contact": {"name": "tests", "position": "tests", "address": "-", "city": "-", "stateorprovince": "-",
                        "postalcode": "-", "country": "-", "phone": "-", "fax": "-", "email": "tests@localhost",
                        "url": link, "hours": "-", "instructions": "-", "role": "pointOfContact"}},
        "resources": {
            "incidents": {
                "type": "collection", "title": "Emergency incidents", "description": "GeoJSON file",
                "keywords": ["incidents"], "extents": extent, "links": [],
                "providers": [
                    {"type": "feature", "name": "GeoJSON", "data": str(files["incidents"]), "id_field": "fid",
                     "time_field": "valid_from"},
                    {"type": "tile", "name": "MVT-tippecanoe", "data": str(files["tiles"]),
                     "options": {"zoom": {"min": 0, "max": 5}, "schemes": ["WebMercatorQuad"]},
                     "format": {"name": "pbf", "mimetype": "application/vnd.mapbox-vector-tile"}}]},
            "air-quality": {
                "type": "collection", "title": "Air quality", "description": "GeoParquet file",
                "keywords": ["air"], "extents": extent, "links": [],
                "providers": [{"type": "feature", "name": "Parquet", "data": {"source": str(files["air-quality"])},
                               "id_field": "fid", "time_field": "valid_from", "x_field": "x", "y_field": "y"}]},
        },
    }


@pytest.fixture(scope="module")
def stock_pygeoapi(city: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Stock pygeoapi (uvicorn, its Starlette app) over files exported from the
    store our server serves."""
    pytest.importorskip("pygeoapi")
    work = tmp_path_factory.mktemp("pygeoapi")
    files = _export(work, city[1])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config, openapi = work / "pygeoapi-config.yml", work / "pygeoapi-openapi.yml"
    config.write_text(yaml.safe_dump(_pygeoapi_config(files, url, port)))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    subprocess.run([str(bin_dir / "pygeoapi"), "openapi", "generate", str(config), "--output-file", str(openapi)],
                   check=True, env=env, capture_output=True)
    log = open(work / "pygeoapi.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(bin_dir / "uvicorn"), "pygeoapi.starlette_app:APP", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    try:
        wait_until_up(f"{url}/conformance", proc, work / "pygeoapi.log")
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.mark.parametrize("cid", sorted(PYGEOAPI_0_21))
def test_stock_pygeoapi_fails_the_issue_checks(stock_pygeoapi: str, cid: str) -> None:
    from importlib.metadata import version

    assert version("pygeoapi").startswith("0.21."), "the pinned facts below are of pygeoapi 0.21"
    results = run_checks(stock_pygeoapi, PYGEOAPI[cid])
    got = {name: "skip" if r.skipped else r.passed for name, r in results.items()}
    assert got == PYGEOAPI_0_21[cid], "\n".join(str(r) for r in results.values())
