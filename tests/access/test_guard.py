"""The access policy in the Python API and the CLI: a cube opened for a user shows and
changes only what that user may, on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from click.testing import CliRunner

import geoplatform as gp
from geoplatform.access.audit import read_audit
from geoplatform.access.credentials import AccessFile
from geoplatform.access.policy import Principal
from geoplatform.cli.main import cli
from geoplatform.errors import DatasetNotFound, Forbidden, Unauthorized
from geoplatform.settings import Settings

DEPS = {"water", "public_security", "planning"}
SPECS = [
    {"name": "valves", "department": "water", "open_level": "public", "geometry_type": "Point", "fid": "id"},
    {"name": "pipes", "department": "water", "open_level": "shared", "shared_with": ["planning"],
     "geometry_type": "Point", "fid": "id"},
    {"name": "cases", "department": "public_security", "open_level": "restricted", "geometry_type": "Point",
     "fid": "id"},
    {"name": "residents", "department": "public_security", "open_level": "restricted",
     "personal": "natural_person", "geometry_type": "Point", "fid": "id"},
]


def _frame(n: int, start: int = 0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": [f"F{i}" for i in range(start, start + n)]},
                            geometry=shapely.points(108.9 + np.arange(n) * 1e-3, np.full(n, 34.2)), crs="EPSG:4490")


@pytest.fixture(params=["embedded", "postgis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    where = str(tmp_path / "store") if request.param == "embedded" else request.getfixturevalue("pg_schema")
    with gp.open_cube(where) as cube:
        for spec in SPECS:
            cube.create_dataset(spec)
            cube.ingest(spec["name"], _frame(3))
        if request.param == "embedded":
            t = pd.date_range("2025-01-01", periods=2, freq="D")
            for name, level in (("rain", "public"), ("patrols", "restricted")):
                cube.create_grid({"name": name, "department": "public_security", "open_level": level})
                cube.ingest_grid(name, xr.Dataset({"v": (("time", "lat", "lon"), np.ones((2, 3, 4)))},
                                                  coords={"time": t, "lat": [34.3, 34.2, 34.1],
                                                          "lon": [108.9, 109.0, 109.1, 109.2]}))
    return where


def _state(where: str) -> dict[str, Any]:
    with gp.open_cube(where) as cube:
        return {s.name: (len(cube.snapshots(s.name)), cube.count(s.name)) for s in cube.datasets()}


def test_a_cube_opened_for_a_user_shows_only_what_it_may(store: str) -> None:
    with gp.open_cube(store, principal={"planning": "reader"}) as cube:
        assert [s.name for s in cube.datasets()] == ["pipes", "valves"]
        assert "cases" not in cube and "pipes" in cube
        for name in ("cases", "residents", "no_such_thing"):
            for call in (lambda: cube.dataset(name), lambda: cube.query(name), lambda: cube.count(name),
                         lambda: cube.get(name, "F1"), lambda: cube.history(name, "F1"),
                         lambda: cube.snapshots(name), lambda: cube.stats(name),
                         lambda: cube.to_xarray(name, resolution=0.01)):
                with pytest.raises(DatasetNotFound, match=f"no dataset named '{name}'"):
                    call()
        assert set(cube.search()["dataset"]) == {"pipes", "valves"}
        assert len(cube.query("pipes")) == 3
        if "://" not in store:
            assert [g.name for g in cube.grids()] == ["rain"]
            assert float(cube.grid("rain").v.sum()) == 24
            with pytest.raises(DatasetNotFound, match="no grid named 'patrols'"):
                cube.grid("patrols")
    # personal data: its department row by row, nobody else (the server's own key neither)
    police = gp.open_cube(store, principal={"public_security": "reader"})
    assert {"cases", "residents"} <= {s.name for s in police.datasets()}
    assert len(police.query("residents")) == 3
    server = gp.open_cube(store, principal=Principal("server", superuser=True))
    assert {s.name for s in server.datasets()} == {"valves", "pipes", "cases"}
    with pytest.raises(DatasetNotFound):
        server.query("residents")


def test_writes_need_an_editor_and_leave_nothing_when_refused(store: str) -> None:
    before = _state(store)
    reader = gp.open_cube(store, principal={"water": "reader", "planning": "editor"})
    with pytest.raises(Forbidden, match="editor role in department 'water'"):
        reader.ingest("valves", _frame(2, 100))
    with pytest.raises(Forbidden):
        reader.delete_features("pipes", ["F1"])
    with pytest.raises(Forbidden):
        reader.create_dataset({"name": "mains", "department": "water"})
    with pytest.raises(Forbidden):
        reader.drop_dataset("valves")
    with pytest.raises(DatasetNotFound):
        reader.drop_dataset("cases")
    server = gp.open_cube(store, principal=Principal("server", superuser=True))
    with pytest.raises(DatasetNotFound):
        server.ingest("residents", _frame(1, 200))
    assert _state(store) == before
    editor = gp.open_cube(store, principal={"water": "editor"})
    editor.ingest("valves", _frame(2, 100))
    assert _state(store)["valves"] == (before["valves"][0] + 1, 5)


def _access(tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    path = tmp_path / "access.yaml"
    af = AccessFile.load(path, DEPS)
    keys = {"wu": af.add_key("wu", {"water": "editor"}, DEPS),
            "guo": af.add_key("guo", {"public_security": "reader"}, DEPS)}
    return Settings(access_file=path), keys


def test_api_keys_in_the_python_api_and_the_cli(store: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings, keys = _access(tmp_path)
    wu = gp.open_cube(store, settings=settings, api_key=keys["wu"])
    assert [s.name for s in wu.datasets()] == ["pipes", "valves"]
    with pytest.raises(Unauthorized, match="not valid"):
        gp.open_cube(store, settings=settings, api_key="gpk_not-a-key")

    monkeypatch.setenv("GEOPLATFORM_ACCESS_FILE", str(settings.access_file))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    listed = run("--api-key", keys["wu"], "dataset", "list", "--store", store)
    assert listed.exit_code == 0, listed.output
    assert "pipes" in listed.output and "cases" not in listed.output and "residents" not in listed.output
    everything = run("dataset", "list", "--store", store)  # no credentials: the store's operator
    assert "cases" in everything.output and "residents" in everything.output
    hidden = run("--api-key", keys["wu"], "query", "cases", "--store", store)
    assert hidden.exit_code == 1 and "no dataset named 'cases'" in hidden.output
    monkeypatch.setenv("GEOPLATFORM_USER_API_KEY", keys["guo"])
    out = run("query", "residents", "--store", store, "--format", "geojson")
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.output)["features"]) == 3
    src = tmp_path / "more.geojson"
    _frame(1, 300).to_file(src, driver="GeoJSON")
    refused = run("dataset", "ingest", "cases", str(src), "--store", store)
    assert refused.exit_code == 1 and "Forbidden" in refused.output


def test_writes_and_restricted_reads_are_audited(store: str, tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    settings = Settings(audit_log=log)
    with gp.open_cube(store, settings=settings, principal=Principal("guo", {"public_security": "editor"})) as cube:
        cube.query("cases")  # restricted: logged
        cube.query("valves")  # public: not
        cube.ingest("cases", _frame(1, 500))
        with pytest.raises(Forbidden):
            cube.ingest("valves", _frame(1, 500))
    entries = read_audit(log)
    assert [(e["who"], e["action"], e["dataset"], e["status"]) for e in entries] == [
        ("guo", "read", "cases", "allowed"), ("guo", "write", "cases", "allowed"),
        ("guo", "write", "valves", "refused")]
    assert all(e["path"] == "python" and e["at"].endswith("Z") for e in entries)
