"""Cube.query / count / search against brute-force answers on the same data."""

from __future__ import annotations

from datetime import datetime, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from pyproj import Geod, Transformer

import geoplatform as gp
from geoplatform.errors import DatasetNotFound, InvalidParameterValue, SnapshotNotFound

T0 = pd.Timestamp("2025-01-01", tz="UTC")
N = 6000


@pytest.fixture(scope="module")
def data() -> dict[str, gpd.GeoDataFrame]:
    rng = np.random.default_rng(7)
    x = 108.8 + rng.random(N) * 0.3
    y = 34.1 + rng.random(N) * 0.3
    obs = gpd.GeoDataFrame({
        "sensor": rng.integers(0, 50, N),
        "value": np.round(rng.normal(50, 20, N), 3),
        "kind": rng.choice(["air", "water", "noise"], N),
        "t": T0 + pd.to_timedelta(rng.integers(0, 90 * 24, N), unit="h"),
    }, geometry=shapely.points(x, y), crs="EPSG:4490")
    cx = 108.8 + rng.random(400) * 0.3
    cy = 34.1 + rng.random(400) * 0.3
    w = rng.random(400) * 0.01 + 0.001
    zones = gpd.GeoDataFrame({
        "zone_id": [f"Z{i:04d}" for i in range(400)],
        "height": rng.integers(1, 100, 400),
        "name": [f"zone {i}" for i in range(400)],
    }, geometry=[shapely.Polygon([(a, b), (a + s, b + s / 2), (a + s / 3, b + s)]) for a, b, s in zip(cx, cy, w)],
        crs="EPSG:4490")
    return {"obs": obs, "zones": zones}


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory, data: dict[str, gpd.GeoDataFrame]) -> gp.Cube:
    settings = gp.Settings(row_group_size=1000)
    c = gp.open_cube(tmp_path_factory.mktemp("store"), settings=settings)
    c.create_dataset(gp.DatasetSpec(name="obs", valid_from="t", instant=True, time_partition="month"))
    c.ingest("obs", data["obs"])
    c.create_dataset(gp.DatasetSpec(name="zones", fid="zone_id"))
    c.ingest("zones", data["zones"])
    return c


def _ids(gdf: gpd.GeoDataFrame) -> set:
    return set(gdf["fid"].tolist())


def test_bbox_on_points_matches_brute_force(cube: gp.Cube, data: dict) -> None:
    obs = data["obs"]
    box = (108.85, 34.15, 108.95, 34.2)
    got = cube.query("obs", bbox=box)
    want = obs.cx[box[0]:box[2], box[1]:box[3]]
    assert len(got) == len(want) > 0
    assert sorted(got["value"]) == sorted(want["value"])


def test_bbox_on_polygons_is_intersects_not_bbox_overlap(cube: gp.Cube, data: dict) -> None:
    zones = data["zones"]
    box = (108.9, 34.2, 108.95, 34.25)
    got = cube.query("zones", bbox=box)
    want = set(zones.loc[zones.intersects(shapely.box(*box)), "zone_id"])
    bbox_only = set(zones.loc[zones.geometry.bounds.apply(
        lambda r: r.maxx >= box[0] and r.minx <= box[2] and r.maxy >= box[1] and r.miny <= box[3], axis=1), "zone_id"])
    assert _ids(got) == want
    assert bbox_only >= want


@pytest.mark.parametrize("predicate", ["intersects", "within", "contains"])
def test_geometry_predicates(cube: gp.Cube, data: dict, predicate: str) -> None:
    zones = data["zones"]
    area = shapely.Point(108.95, 34.25).buffer(0.05)
    if predicate == "contains":
        area = shapely.Point(zones.geometry.iloc[3].representative_point())
    got = cube.query("zones", geometry=area, predicate=predicate)
    fn = {"intersects": lambda g: g.intersects(area), "within": lambda g: g.within(area),
          "contains": lambda g: g.contains(area)}[predicate]
    want = set(zones.loc[zones.geometry.apply(fn), "zone_id"])
    assert _ids(got) == want and want


def test_dwithin_in_metres(cube: gp.Cube, data: dict) -> None:
    obs = data["obs"]
    centre = shapely.Point(108.95, 34.25)
    got = cube.query("obs", geometry=centre, predicate="dwithin", distance=2000.0)
    geod = Geod(ellps="GRS80")
    _, _, dist = geod.inv(np.full(len(obs), centre.x), np.full(len(obs), centre.y), obs.geometry.x, obs.geometry.y)
    got_fids = set(got["fid"])
    # store-assigned ids follow the input order from 1
    for i in np.flatnonzero(np.abs(dist - 2000.0) > 2.0):  # leave the 0.1% border out
        assert ((i + 1) in got_fids) == (dist[i] <= 2000.0)
    assert len(got_fids) > 0


@pytest.mark.parametrize("when,lo,hi", [
    ("2025-02-01T00:00:00Z/2025-02-08T00:00:00Z", "2025-02-01T00:00:00Z", "2025-02-08T00:00:00Z"),
    ("2025-03-15T00:00:00Z/..", "2025-03-15T00:00:00Z", None),
    ("../2025-01-03T05:00:00Z", None, "2025-01-03T05:00:00Z"),
    ("2025-01-10", "2025-01-10T00:00:00Z", "2025-01-10T23:59:59.999999Z"),
])
def test_datetime_intervals_are_closed(cube: gp.Cube, data: dict, when: str, lo: str | None, hi: str | None) -> None:
    t = data["obs"]["t"]
    mask = np.ones(len(t), bool)
    if lo:
        mask &= (t >= pd.Timestamp(lo)).to_numpy()
    if hi:
        mask &= (t <= pd.Timestamp(hi)).to_numpy()
    assert cube.count("obs", datetime=when) == mask.sum() > 0


def test_end_instant_included(cube: gp.Cube, data: dict) -> None:
    t = data["obs"]["t"].iloc[0]
    iso = t.isoformat().replace("+00:00", "Z")
    exact = int((data["obs"]["t"] == t).sum())
    assert cube.count("obs", datetime=iso) == exact
    assert cube.count("obs", datetime=f"2024-01-01T00:00:00Z/{iso}") == int((data["obs"]["t"] <= t).sum())


def test_properties_sort_and_paging(cube: gp.Cube) -> None:
    full = cube.query("zones", sortby="-height,name", properties=["height", "name"])
    assert list(full.columns[:5]) == ["fid", "version", "valid_from", "valid_to", "record_from"]
    assert set(full.columns) == {"fid", "version", "valid_from", "valid_to", "record_from", "height", "name",
                                 "geometry"}
    keys = list(zip(-full["height"], full["name"]))
    assert keys == sorted(keys)
    pages = [cube.query("zones", sortby="-height,name", limit=37, offset=o) for o in range(0, len(full), 37)]
    assert sum(len(p) for p in pages) == len(full)
    assert [f for p in pages for f in p["fid"]] == full["fid"].tolist()


def test_count_ignores_limit_and_matches_query(cube: gp.Cube) -> None:
    q = {"bbox": (108.8, 34.1, 108.9, 34.3), "datetime": "2025-01-01T00:00:00Z/2025-01-31T00:00:00Z"}
    assert cube.count("obs", limit=5, **q) == len(cube.query("obs", **q))


def test_arrow_and_geodataframe_agree(cube: gp.Cube) -> None:
    q = {"bbox": (108.85, 34.15, 108.9, 34.2)}
    t = cube.query("obs", output="arrow", **q)
    g = cube.query("obs", **q)
    assert isinstance(t, pa.Table)
    assert t.num_rows == len(g)
    assert shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False)).tolist() == list(g.geometry)
    assert t.schema.metadata[b"geoplatform:crs"] == b"EPSG:4490"


def test_output_crs_and_bbox_crs(cube: gp.Cube, data: dict) -> None:
    to_gk = Transformer.from_crs("EPSG:4490", "EPSG:4545", always_xy=True)
    x0, y0 = to_gk.transform(108.85, 34.15)
    x1, y1 = to_gk.transform(108.9, 34.2)
    got = cube.query("obs", bbox=(x0, y0, x1, y1), bbox_crs="EPSG:4545", crs="EPSG:4545")
    assert got.crs.to_epsg() == 4545
    ref = cube.query("obs", bbox=(108.85, 34.15, 108.9, 34.2))
    # a projected box covers slightly more than the geographic one, never less
    assert _ids(got) >= _ids(ref)
    one = ref.iloc[0]
    ex, ey = to_gk.transform(one.geometry.x, one.geometry.y)
    row = got.loc[got["fid"] == one["fid"]].iloc[0]
    assert row.geometry.x == pytest.approx(ex, abs=1e-6) and row.geometry.y == pytest.approx(ey, abs=1e-6)


def test_search_over_datasets(cube: gp.Cube) -> None:
    box = (108.9, 34.2, 108.95, 34.25)
    res = cube.search(["obs", "zones"], bbox=box)
    assert set(res["dataset"]) == {"obs", "zones"}
    assert (res["dataset"] == "obs").sum() == cube.count("obs", bbox=box)
    assert (res["dataset"] == "zones").sum() == cube.count("zones", bbox=box)
    assert len(cube.search(bbox=box)) == len(res)


def test_get_single_feature(cube: gp.Cube, data: dict) -> None:
    one = cube.get("zones", "Z0007")
    assert one["name"].iloc[0] == "zone 7"
    with pytest.raises(KeyError):
        cube.get("zones", "nope")


@pytest.mark.parametrize("params,match", [
    ({"bbox": (1, 2, 3)}, "four"),
    ({"bbox": ("a", 0, 1, 1)}, "four numbers"),
    ({"bbox": (0, 5, 1, 1)}, "lower y"),
    ({"datetime": "yesterday"}, "RFC 3339"),
    ({"datetime": "2025-02-01T00:00:00Z/2025-01-01T00:00:00Z"}, "after its end"),
    ({"datetime": "2025-02-01T00:00:00"}, "time zone"),
    ({"sortby": "nope"}, "unknown property 'nope'"),
    ({"sortby": ""}, "empty"),
    ({"properties": ["nope"]}, "unknown properties"),
    ({"predicate": "near"}, "predicate"),
    ({"limit": -1}, "limit"),
])
def test_bad_parameters(cube: gp.Cube, params: dict, match: str) -> None:
    with pytest.raises(InvalidParameterValue, match=match):
        cube.query("zones", **params)


def test_unknown_dataset_and_snapshot(cube: gp.Cube) -> None:
    with pytest.raises(DatasetNotFound):
        cube.query("nope")
    with pytest.raises(SnapshotNotFound):
        cube.query("zones", as_of=99999)
    with pytest.raises(SnapshotNotFound):
        cube.query("zones", as_of=datetime(2000, 1, 1, tzinfo=timezone.utc))


def test_to_xarray_counts_every_feature_once(cube: gp.Cube, data: dict) -> None:
    grid = cube.to_xarray("obs", resolution=0.05, freq="7D")
    assert grid.dims == ("time", "y", "x")
    assert int(grid.sum()) == N
    mean = cube.to_xarray("obs", resolution=0.1, agg="mean", variable="value")
    obs = data["obs"]
    assert float(mean.mean()) == pytest.approx(obs["value"].mean(), rel=0.05)
    lazy = cube.to_xarray("obs", resolution=0.05, freq="7D", chunks=True)
    assert hasattr(lazy.data, "dask")
    np.testing.assert_allclose(lazy.compute().values, grid.values)
    with pytest.raises(InvalidParameterValue, match="not numeric"):
        cube.to_xarray("obs", resolution=0.1, agg="sum", variable="kind")


@pytest.mark.parametrize("text,json_filter,expect", [
    ("value > 60 AND kind = 'air'", {"op": "and", "args": [{"op": ">", "args": [{"property": "value"}, 60]},
                                                          {"op": "=", "args": [{"property": "kind"}, "air"]}]},
     lambda d: (d["value"] > 60) & (d["kind"] == "air")),
    ("kind IN ('water', 'noise') AND sensor BETWEEN 10 AND 20", None,
     lambda d: d["kind"].isin(["water", "noise"]) & d["sensor"].between(10, 20)),
    ("kind LIKE 'w%'", {"op": "like", "args": [{"property": "kind"}, "w%"]}, lambda d: d["kind"] == "water"),
    ("NOT (value <= 50)", None, lambda d: d["value"] > 50),
    ("T_INTERSECTS(datetime, INTERVAL('2025-02-01T00:00:00Z', '2025-02-03T00:00:00Z'))", None,
     lambda d: (d["t"] >= pd.Timestamp("2025-02-01T00:00:00Z")) & (d["t"] <= pd.Timestamp("2025-02-03T00:00:00Z"))),
])
def test_cql2_filters_match_pandas(cube: gp.Cube, data: dict, text: str, json_filter: dict | None, expect) -> None:  # type: ignore[no-untyped-def]
    obs = data["obs"]
    want = int(expect(obs).sum())
    assert want > 0
    assert cube.count("obs", filter=text) == want
    assert len(cube.query("obs", filter=text)) == want
    if json_filter is not None:
        assert cube.count("obs", filter=json_filter, filter_lang="cql2-json") == want


def test_cql2_spatial_filter_with_and_without_bbox(cube: gp.Cube, data: dict) -> None:
    zones = data["zones"]
    area = shapely.Point(108.95, 34.25).buffer(0.03)
    want = set(zones.loc[zones.intersects(area), "zone_id"])
    f = f"S_INTERSECTS(geometry, {area.wkt})"
    assert _ids(cube.query("zones", filter=f)) == want
    assert cube.count("zones", filter=f) == len(want)
    # a bbox that only partly overlaps the filter's area: both must hold, each on its own
    box = (108.90, 34.20, 108.95, 34.26)
    both = set(zones.loc[zones.intersects(area) & zones.intersects(shapely.box(*box)), "zone_id"])
    assert _ids(cube.query("zones", filter=f, bbox=box)) == both


def test_cql2_errors_are_filter_errors(cube: gp.Cube) -> None:
    with pytest.raises(gp.errors.FilterError, match="nope"):
        cube.query("obs", filter="nope > 3")
    with pytest.raises(gp.errors.FilterError):
        cube.query("obs", filter="value > ")
    with pytest.raises(gp.errors.FilterError):
        cube.query("obs", filter="kind = 'x'; DROP TABLE datasets; --")


def test_as_of_out_of_range_is_not_found(cube: gp.Cube) -> None:
    for bad in (0, -1, 2**64, "999999999999999999999999999999"):
        with pytest.raises(SnapshotNotFound):
            cube.query("zones", as_of=bad)
    for bad in ("³", "٣", "1e3", "\x1e4", " 4", "4\n"):
        with pytest.raises(InvalidParameterValue):
            cube.query("zones", as_of=bad)


def test_ids_that_cannot_name_a_generated_id_are_not_found(cube: gp.Cube) -> None:
    first = int(cube.query("obs", limit=1)["fid"].iat[0])
    assert len(cube.get("obs", str(first))) == 1 and len(cube.get("obs", np.int64(first))) == 1
    for bad in ("999999999999999999999999999999", 2**63, -2**63 - 1, "1_0", f" {first}", "³", "", True, 1.0):
        with pytest.raises(gp.errors.FeatureNotFound):
            cube.get("obs", bad)
        with pytest.raises(gp.errors.FeatureNotFound):
            cube.history("obs", bad)


@pytest.mark.parametrize("params", [
    {},
    {"bbox": (108.85, 34.15, 108.95, 34.25)},
    {"datetime": "2025-02-01T00:00:00Z/2025-03-01T00:00:00Z", "filter": "value > 60"},
    {"sortby": "-value", "properties": ["value"]},
])
@pytest.mark.parametrize(("limit", "offset"), [(10, 0), (7, 3000), (100, 5990), (5, 10_000)])
def test_query_page_is_query_and_count(cube: gp.Cube, params: dict, limit: int, offset: int) -> None:
    page, matched = cube.query_page("obs", limit=limit, offset=offset, **params)
    assert matched == cube.count("obs", **params)
    expected = cube.query("obs", limit=limit, offset=offset, **params)
    assert list(page.columns) == list(expected.columns)
    if "sortby" in params:
        assert page["value"].tolist() == expected["value"].tolist()
    else:
        assert page["fid"].tolist() == expected["fid"].tolist()


def test_unfiltered_pages_read_a_prefix_and_count_from_the_catalog(tmp_path, data) -> None:
    """No bbox, time, filter or sort: numberMatched is the catalog's row count and a
    page reads only the row groups up to its end, yet every page is the slice of the
    full scan, before and after deletes and at an earlier snapshot."""
    from geoplatform.settings import Settings

    c = gp.open_cube(tmp_path / "s", settings=Settings(row_group_size=1000, max_file_rows=2500, progress=False))
    c.create_dataset(gp.DatasetSpec(name="z", fid="zone_id", geometry_type="Polygon"))
    first = c.ingest("z", data["zones"]).snapshot_id
    c.delete_features("z", [f"Z{i:04d}" for i in range(0, 400, 3)])
    for as_of in (None, first):
        full = c.query("z", as_of=as_of)
        assert c.count("z", as_of=as_of) == len(full) == (400 if as_of else 400 - 134)
        for offset, limit in ((0, 1), (0, 10), (5, 50), (130, 200), (260, 10), (399, 5), (1000, 5)):
            page, matched = c.query_page("z", limit=limit, offset=offset, as_of=as_of)
            assert matched == len(full)
            assert page["fid"].tolist() == full["fid"].iloc[offset:offset + limit].tolist()
    # the first page read only the first row groups
    from geoplatform.cube.backend import ScanRequest

    head = c.backend.scan("z", ScanRequest(snapshot=c.snapshots("z")[-1].id, limit=10))
    assert 10 <= len(head) <= 1000
