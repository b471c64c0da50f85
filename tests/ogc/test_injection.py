"""An injection corpus against the server on both backends.

CQL2 filters, sortby, property names, ids, bbox, datetime, CRS and paths
crafted as SQL or as path traversal: every parameter is refused with a 400
that names the problem (an id or path is at most an unknown resource, 404),
nothing is executed, and the store is unchanged afterwards: the same
datasets, snapshots, rows and (in PostGIS) the same tables.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import geoplatform as gp
from geoplatform.catalog import load_city_catalog
from geoplatform.samples.city import build_sample_city
from tests.ogc.test_server import ROOT, _free_port, stop, wait_until_up

DATASETS = ("districts", "water_valves")
LAYERS = (ROOT / "layers" / "base" / "districts.yaml", ROOT / "layers" / "pipelines" / "water_valves.yaml")

SQL = ["'; DROP TABLE gp_datasets; --", "1; DELETE FROM gp_snapshots", "' OR '1'='1", "\"; DROP TABLE x; --",
       "$$; DROP TABLE gp_datasets; $$", "x' UNION SELECT * FROM pg_user --", "0x27; SELECT pg_sleep(10)"]
PATHS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "....//....//etc/passwd", "%00", "\\..\\..\\boot.ini"]

ITEMS = "/collections/districts/items"
PARAMETERS: list[tuple[str, dict[str, str]]] = [
    *((ITEMS, {"filter": f"name = 'a'{s}"}) for s in SQL),
    *((ITEMS, {"filter": s}) for s in SQL),
    (ITEMS, {"filter": "name = 'a'; DROP TABLE gp_datasets"}),
    (ITEMS, {"filter": "1=1) OR (1=1"}),
    (ITEMS, {"filter": "pg_sleep(10) = 0"}),
    (ITEMS, {"filter": "\"gp_datasets\".\"name\" = 'x'"}),
    (ITEMS, {"filter": '{"op": "=", "args": [{"property": "name; DROP TABLE x"}, 1]}', "filter-lang": "cql2-json"}),
    (ITEMS, {"filter": '{"op": "sql", "args": ["DROP TABLE x"]}', "filter-lang": "cql2-json"}),
    (ITEMS, {"filter": "name = 'a'", "filter-lang": "sql"}),
    *((ITEMS, {"sortby": s}) for s in ["name; DROP TABLE gp_datasets", "-(SELECT 1)", "name,1;--", *PATHS]),
    *((ITEMS, {"properties": s}) for s in ["name,(select 1)", "*", "name;DROP TABLE x", *PATHS]),
    *((ITEMS, {"bbox": s}) for s in ["1,2,3,4);DROP TABLE x;--", "0,0,1,1,2,3,4", "1e999,0,1,1", "nan,0,1,1",
                                      "0,0,1", *SQL[:2]]),
    *((ITEMS, {"datetime": s}) for s in ["2020-01-01'; DROP TABLE x; --", *PATHS, "2020-13-45T99:00:00Z",
                                          "1 OR 1=1"]),
    *((ITEMS, {"crs": s}) for s in ["EPSG:4326;DROP TABLE x", *PATHS, "file:///etc/passwd"]),
    *((ITEMS, {"bbox-crs": s}) for s in ["EPSG:4326'--", "http://169.254.169.254/latest/meta-data"]),
    *((ITEMS, {"limit": s}) for s in ["10; DROP TABLE x", "-1", "1e9999"]),
    *((ITEMS, {"as-of": s}) for s in ["1; DROP TABLE x", *PATHS]),
    *((ITEMS, {k: "1"}) for k in ["name'; DROP TABLE x; --", "../../etc/passwd"]),
]
RESOURCES = [*(f"{ITEMS}/{s}" for s in [*SQL, *PATHS]), *(f"/collections/{s}" for s in [*SQL, *PATHS]),
             *(f"/collections/{s}/items" for s in SQL), "/collections/districts/items/1/history;DROP",
             "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd"]


def state(cube: gp.Cube) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in cube.datasets():
        snaps = [(s.id, s.operation) for s in cube.snapshots(spec.name)]
        t = cube.query(spec.name, output="arrow")
        out[spec.name] = (snaps, t.num_rows, sorted(map(str, t.column("fid").to_pylist())))
    return out


@pytest.fixture(scope="module", params=["geoparquet", "postgis"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp(f"inject-{request.param}")
    if request.param == "postgis":
        store: str = request.getfixturevalue("pg_module_schema")
    else:
        store = str(work / "store")
    catalog = load_city_catalog(ROOT / "catalogs" / "sample_city.yaml")
    src = build_sample_city(work / "src")
    with gp.open_cube(store) as cube:
        for spec in catalog.datasets:
            if spec.name in DATASETS:
                cube.create_dataset(spec)
                cube.ingest(spec.name, src / spec.file, progress=False)
        before = state(cube)
    for f in LAYERS:  # a layer file lives in its theme's folder
        (work / "layers" / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, work / "layers" / f.parent.name / f.name)
    port = _free_port()
    exe = Path(sys.executable).parent / "geoplatform"
    log = open(work / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(exe), "serve", "--store", store, "--port", str(port), "--layers",
                             str(work / "layers")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/conformance", proc, work / "server.log")
        yield {"url": url, "store": store, "before": before, "backend": request.param}
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def pg_module_schema(pg_url: str) -> Iterator[str]:
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
    yield f"{pg_url}?options=-csearch_path%3D{name},public"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA {name} CASCADE")


def test_the_corpus_is_refused_and_the_store_unchanged(served: dict[str, Any]) -> None:
    url = served["url"]
    bad: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get(ITEMS, params={"limit": "1"}).status_code == 200  # the layer is served
        for path, params in PARAMETERS:
            r = http.get(path, params=params)
            if r.status_code != 400 or not r.json().get("description"):
                bad.append(f"{path} {params}: {r.status_code} {r.text[:150]}")
        for path in RESOURCES:
            r = http.get(path)
            if r.status_code not in (400, 404):
                bad.append(f"{path}: {r.status_code} {r.text[:150]}")
            elif "root:" in r.text or "postgres" in r.text.lower():
                bad.append(f"{path}: the answer shows what it should not: {r.text[:150]}")
    assert not bad, f"{len(bad)} of {len(PARAMETERS) + len(RESOURCES)} not refused:\n" + "\n".join(bad)
    with gp.open_cube(served["store"]) as cube:
        assert state(cube) == served["before"]
    if served["backend"] == "postgis":
        import psycopg

        with psycopg.connect(served["store"], autocommit=True) as con:
            tables = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
        assert {"gp_datasets", "gp_snapshots"} <= tables and sum(t.startswith("gp_data_") for t in tables) == 2
    print(f"\ninjection corpus on {served['backend']}: {len(PARAMETERS)} parameters answered 400, "
          f"{len(RESOURCES)} ids and paths 400/404, store unchanged")
