"""``geoplatform store copy``: a store moved between backends with its whole history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psycopg
import shapely
from click.testing import CliRunner

from geoplatform.cli.main import cli
from geoplatform.cube.cube import Cube, open_cube
from geoplatform.settings import Settings
from geoplatform.storage.copy import check_copy
from tests.storage.contract import POINTS, SPANS, points_frame, spec, state, triangles_frame

SETTINGS = Settings(row_group_size=1000, max_file_rows=8000, progress=False)


def history_store(root: Path) -> Cube:
    """Points with updates, deletes, a replace and a feature loaded again; polygons
    with open intervals; store-assigned ids; a space copy, compacted midway."""
    cube = open_cube(root, settings=SETTINGS, backend="geoparquet")
    cube.create_dataset(spec(POINTS, space_copy=True))
    base = points_frame(3000, seed=80)
    cube.ingest("pts", base)
    upd = base.iloc[:500].copy()
    upd["v"] = upd["v"] + 1
    upd["geometry"] = shapely.points(shapely.get_coordinates(upd.geometry.to_numpy()) + 1e-4)
    cube.ingest("pts", pd.concat([upd, points_frame(200, seed=81, start=3000)], ignore_index=True))
    cube.compact("pts")
    cube.delete_features("pts", [f"f{i}" for i in range(250, 550)])
    again = base.iloc[[260]].copy()
    again["v"] = 42.0
    cube.ingest("pts", again)  # deleted, then loaded again: a second life
    cube.ingest("pts", base.iloc[1000:2500], mode="replace")
    cube.create_dataset(SPANS)
    cube.ingest("spans", triangles_frame(2000, seed=3))
    cube.create_dataset({"name": "obs", "geometry_type": "Point", "valid_from": "t", "instant": True})
    cube.ingest("obs", points_frame(700, seed=5).drop(columns=["id"]))
    return cube


def same_everywhere(a: Cube, b: Cube) -> None:
    """Every snapshot, by commit time, reads the same rows; histories agree."""
    for name in ("pts", "spans", "obs"):
        for sa, sb in zip(a.snapshots(name), b.snapshots(name), strict=True):
            assert sa.committed_at == sb.committed_at and sa.operation == sb.operation
            want = state(a.query(name, as_of=sa.committed_at, output="arrow"))
            got = state(b.query(name, as_of=sb.committed_at, output="arrow"))
            pd.testing.assert_frame_equal(got.drop(columns=["record_from"]), want.drop(columns=["record_from"]))
    for fid in ("f0", "f260", "f300", "f1200", "f2999"):
        ha = a.history("pts", fid, output="arrow")
        hb = b.history("pts", fid, output="arrow")
        assert ha.column("version").to_pylist() == hb.column("version").to_pylist()
        assert ha.column("v").to_pylist() == hb.column("v").to_pylist()
        assert [x is None for x in ha.column("record_to").to_pylist()] == \
            [x is None for x in hb.column("record_to").to_pylist()]


def test_copy_to_postgis_and_back(tmp_path: Path, pg_schema: str) -> None:
    src = history_store(tmp_path / "src")
    run = CliRunner().invoke(cli, ["store", "copy", str(tmp_path / "src"), pg_schema])
    assert run.exit_code == 0, run.output
    lines = [ln.split() for ln in run.stdout.splitlines()]
    assert lines[0] == ["dataset", "snapshots", "records", "current", "checksum", "check"]
    table = {ln[0]: ln for ln in lines[1:]}
    assert set(table) == {"obs", "pts", "spans"} and all(r[-1] == "same" for r in table.values())
    assert table["pts"][1] == str(len(src.snapshots("pts")))
    assert int(table["pts"][2]) == len(src.backend.log("pts")) > 3700  # every version, ended ones too
    pg = open_cube(pg_schema, settings=SETTINGS)
    same_everywhere(src, pg)
    # and back into a new embedded store
    run = CliRunner().invoke(cli, ["store", "copy", pg_schema, str(tmp_path / "back")])
    assert run.exit_code == 0, run.output
    back = open_cube(tmp_path / "back", settings=SETTINGS, backend="geoparquet")
    same_everywhere(src, back)
    # a second copy into a store that holds the datasets is refused, and changes nothing
    run = CliRunner().invoke(cli, ["store", "copy", str(tmp_path / "src"), pg_schema, "--dataset", "pts"])
    assert run.exit_code == 1 and "already holds 'pts'" in run.output
    assert len(pg.snapshots("pts")) == len(src.snapshots("pts"))


def test_the_check_finds_a_difference(tmp_path: Path, pg_schema: str) -> None:
    src = history_store(tmp_path / "src")
    run = CliRunner().invoke(cli, ["store", "copy", str(tmp_path / "src"), pg_schema, "--dataset", "spans"])
    assert run.exit_code == 0, run.output
    pg = open_cube(pg_schema, settings=SETTINGS)
    assert check_copy(src.backend, pg.backend, "spans").ok
    with psycopg.connect(pg_schema, autocommit=True) as con:  # one vertex moved behind the store's back
        table = con.execute("SELECT 'gp_data_' || id FROM gp_datasets WHERE name = 'spans'").fetchone()[0]
        con.execute(f"UPDATE {table} SET geometry = ST_Translate(geometry, 1e-9, 0) WHERE _row = 7")
    rep = check_copy(src.backend, pg.backend, "spans")
    assert not rep.ok and any("logs differ" in p for p in rep.problems)
