"""Versions, record time (as_of, history) and valid time together."""

from __future__ import annotations

import time
from datetime import timedelta

import geopandas as gpd
import pandas as pd
import pytest
import shapely

import geoplatform as gp
from geoplatform.errors import FeatureNotFound


def parcels(heights: dict[str, int], plan: str = "2024") -> gpd.GeoDataFrame:
    ids = sorted(heights)
    geoms = [shapely.box(108.9 + i * 0.01, 34.2, 108.905 + i * 0.01, 34.205) for i in range(len(ids))]
    return gpd.GeoDataFrame({"parcel_id": ids, "height_max_m": [heights[i] for i in ids],
                             "plan_version": plan}, geometry=geoms, crs="EPSG:4490")


@pytest.fixture()
def cube(tmp_path) -> gp.Cube:
    c = gp.open_cube(tmp_path / "store")
    c.create_dataset(gp.DatasetSpec(name="parcels", fid="parcel_id", geometry_type="Polygon"))
    return c


def test_changed_feature_gets_a_new_version_and_as_of_sees_the_old(cube: gp.Cube) -> None:
    r1 = cube.ingest("parcels", parcels({"P1": 30, "P2": 50, "P3": 80}))
    time.sleep(0.01)
    r2 = cube.ingest("parcels", parcels({"P1": 30, "P2": 60, "P3": 80}))
    assert (r2.rows_added, r2.rows_changed, r2.rows_unchanged) == (0, 1, 2)
    now = cube.query("parcels").set_index("fid")
    assert now.loc["P2", "height_max_m"] == 60 and now.loc["P2", "version"] == 2
    assert now.loc["P1", "version"] == 1
    then = cube.query("parcels", as_of=r1.snapshot_id).set_index("fid")
    assert then.loc["P2", "height_max_m"] == 50 and len(then) == 3
    # as_of a time between the two commits
    snaps = {s.id: s for s in cube.snapshots("parcels")}
    mid = snaps[r1.snapshot_id].committed_at + (snaps[r2.snapshot_id].committed_at - snaps[r1.snapshot_id].committed_at) / 2
    assert cube.query("parcels", as_of=mid).set_index("fid").loc["P2", "height_max_m"] == 50
    assert cube.query("parcels", as_of=mid.isoformat()).set_index("fid").loc["P2", "height_max_m"] == 50


def test_history_lists_versions_with_record_time(cube: gp.Cube) -> None:
    r1 = cube.ingest("parcels", parcels({"P1": 30}))
    r2 = cube.ingest("parcels", parcels({"P1": 35}))
    r3 = cube.ingest("parcels", parcels({"P1": 40}))
    h = cube.history("parcels", "P1")
    assert h["version"].tolist() == [1, 2, 3]
    assert h["height_max_m"].tolist() == [30, 35, 40]
    assert h["record_from"].tolist() == [r1.snapshot_id, r2.snapshot_id, r3.snapshot_id]
    assert h["record_to"].tolist()[:2] == [r2.snapshot_id, r3.snapshot_id]
    assert pd.isna(h["record_to"].iloc[2])
    with pytest.raises(FeatureNotFound):
        cube.history("parcels", "P404")


def test_same_input_again_is_a_noop(cube: gp.Cube) -> None:
    cube.ingest("parcels", parcels({"P1": 30, "P2": 50}))
    before = [s.id for s in cube.snapshots("parcels")]
    again = cube.ingest("parcels", parcels({"P1": 30, "P2": 50}))
    assert again.noop and again.rows_unchanged == 2
    assert [s.id for s in cube.snapshots("parcels")] == before


def test_same_file_again_is_a_noop(cube: gp.Cube, tmp_path) -> None:
    path = tmp_path / "p.gpkg"
    parcels({"P1": 30, "P2": 50}).to_file(path)
    cube.ingest("parcels", path)
    n = len(cube.snapshots("parcels"))
    assert cube.ingest("parcels", path).noop
    assert len(cube.snapshots("parcels")) == n


def test_delete_ends_a_feature_but_keeps_its_history(cube: gp.Cube) -> None:
    r1 = cube.ingest("parcels", parcels({"P1": 30, "P2": 50}))
    snap = cube.delete_features("parcels", ["P2"])
    assert set(cube.query("parcels")["fid"]) == {"P1"}
    assert set(cube.query("parcels", as_of=r1.snapshot_id)["fid"]) == {"P1", "P2"}
    h = cube.history("parcels", "P2")
    assert h["record_to"].tolist() == [snap.id]
    with pytest.raises(FeatureNotFound):
        cube.delete_features("parcels", ["P2"])
    assert cube.stats("parcels").rows == 1
    assert cube.stats("parcels", as_of=r1.snapshot_id).rows == 2


def test_replace_ends_missing_features(cube: gp.Cube) -> None:
    cube.ingest("parcels", parcels({"P1": 30, "P2": 50, "P3": 70}))
    r = cube.ingest("parcels", parcels({"P1": 30, "P3": 75}), mode="replace")
    assert (r.rows_deleted, r.rows_changed, r.rows_unchanged) == (1, 1, 1)
    assert set(cube.query("parcels")["fid"]) == {"P1", "P3"}


def test_append_refuses_existing_ids(cube: gp.Cube) -> None:
    cube.ingest("parcels", parcels({"P1": 30}))
    with pytest.raises(gp.errors.SchemaError, match="already exist"):
        cube.ingest("parcels", parcels({"P1": 31}), mode="append")
    assert cube.query("parcels")["height_max_m"].tolist() == [30]


def test_valid_time_and_record_time_are_independent(tmp_path) -> None:
    cube = gp.open_cube(tmp_path / "s")
    cube.create_dataset(gp.DatasetSpec(name="plan", fid="parcel_id", valid_from="valid_from", valid_to="valid_to",
                                       time_zone="Asia/Shanghai"))
    g = parcels({"P1": 30, "P2": 50})
    g["valid_from"] = ["2020-01-01 00:00:00", "2024-06-01 00:00:00"]
    g["valid_to"] = ["2024-05-31 23:59:59", None]
    r1 = cube.ingest("plan", g)
    # valid on 2022-01-01: only P1 (the old plan)
    assert set(cube.query("plan", datetime="2022-01-01T00:00:00Z")["fid"]) == {"P1"}
    # open end: P2 is valid from mid-2024 onward
    assert set(cube.query("plan", datetime="2030-01-01T00:00:00Z")["fid"]) == {"P2"}
    # the naive local times are Asia/Shanghai: 2024-06-01 00:00 +08 is 2024-05-31 16:00 UTC
    row = cube.query("plan").set_index("fid").loc["P2"]
    assert row["valid_from"] == pd.Timestamp("2024-05-31T16:00:00Z")
    # a correction of P1's validity is a new version in record time
    g.loc[0, "valid_to"] = "2024-06-30 23:59:59"
    cube.ingest("plan", g)
    assert set(cube.query("plan", datetime="2024-06-15T00:00:00Z")["fid"]) == {"P1", "P2"}
    assert set(cube.query("plan", datetime="2024-06-15T00:00:00Z", as_of=r1.snapshot_id)["fid"]) == {"P2"}


def test_instants_store_valid_to_equal_to_valid_from(tmp_path) -> None:
    cube = gp.open_cube(tmp_path / "s")
    cube.create_dataset(gp.DatasetSpec(name="inc", valid_from="t", instant=True))
    g = gpd.GeoDataFrame({"t": [pd.Timestamp("2025-01-01T10:00:00Z") + timedelta(hours=i) for i in range(3)]},
                         geometry=shapely.points([108.9] * 3, [34.2] * 3), crs="EPSG:4490")
    cube.ingest("inc", g)
    out = cube.query("inc")
    assert (out["valid_from"] == out["valid_to"]).all()
    assert cube.count("inc", datetime="2025-01-01T11:00:00Z") == 1


def test_a_feature_loaded_again_after_a_delete_continues_its_versions(cube: gp.Cube) -> None:
    cube.ingest("parcels", parcels({"P1": 30, "P2": 40}))
    cube.delete_features("parcels", ["P1"])
    r = cube.ingest("parcels", parcels({"P1": 33, "P2": 40}))
    assert r.rows_added == 1
    h = cube.history("parcels", "P1")
    assert h["version"].tolist() == [1, 2]
    assert cube.query("parcels").set_index("fid").loc["P1", "version"] == 2


def test_extent_counts_only_current_features(cube: gp.Cube) -> None:
    cube.ingest("parcels", parcels({"P1": 30, "P2": 40, "P3": 50}))
    full = cube.stats("parcels").extent
    cube.delete_features("parcels", ["P3"])  # the easternmost parcel
    now = cube.stats("parcels").extent
    assert now[2] < full[2] and now[0] == full[0]
    assert now[2] == pytest.approx(108.915)
    cube.delete_features("parcels", ["P1", "P2"])
    assert cube.stats("parcels").extent is None and cube.stats("parcels").rows == 0
