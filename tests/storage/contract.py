"""The storage contract, as tests every backend must pass.

In the style of xarray's ``test_backends``: :class:`StorageContract` holds the
tests and a ``make_cube(tmp_path)`` hook; each backend's test module
subclasses it (``class TestGeoParquet(StorageContract)``) and opens a cube on
that backend. The tests go through the public :class:`~geoplatform.Cube` API
and, where the contract is stated at the storage level (``scan`` returns the
rows whose *bbox* intersects), through ``cube.backend``.

Every expected answer is computed by brute force (shapely, numpy, plain
Python) from the frames the test itself built.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from geoplatform.cube.backend import ScanRequest
from geoplatform.cube.cube import Cube
from geoplatform.cube.times import to_us
from geoplatform.errors import DatasetExists, DatasetNotFound, FeatureNotFound, SnapshotNotFound
from geoplatform.settings import Settings

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
AREA = (116.0, 39.5, 117.0, 40.5)  # a city-sized square in EPSG:4490
DAY = 86_400


# data ---------------------------------------------------------------------------

def random_xy(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Half uniform over AREA, half in a few tight clusters (real cities are lumpy)."""
    x0, y0, x1, y1 = AREA
    u = n // 2
    x = rng.uniform(x0, x1, n)
    y = rng.uniform(y0, y1, n)
    centres = rng.uniform([x0 + 0.1, y0 + 0.1], [x1 - 0.1, y1 - 0.1], size=(8, 2))
    pick = rng.integers(0, len(centres), n - u)
    x[u:] = np.clip(centres[pick, 0] + rng.normal(0, 0.01, n - u), x0, x1)
    y[u:] = np.clip(centres[pick, 1] + rng.normal(0, 0.01, n - u), y0, y1)
    # Snap to a 1e-5 grid so that query boxes can sit exactly on coordinates.
    return np.round(x, 5), np.round(y, 5)


def times(rng: np.random.Generator, n: int, days: int = 180) -> pd.Series:
    """Whole seconds over ``days`` days from T0, tz-aware UTC."""
    secs = rng.integers(0, days * DAY, n)
    return pd.Series(pd.Timestamp(T0) + pd.to_timedelta(secs, unit="s"))


def points_frame(n: int, *, seed: int, start: int = 0, prefix: str = "f",
                 days: int = 180) -> gpd.GeoDataFrame:
    """``n`` points with ids ``<prefix><start>...``, an instant ``t`` and two attributes."""
    rng = np.random.default_rng(seed)
    x, y = random_xy(rng, n)
    return gpd.GeoDataFrame(
        {"id": [f"{prefix}{i}" for i in range(start, start + n)], "t": times(rng, n, days),
         "v": rng.normal(size=n).round(6), "kind": rng.choice(["a", "b", "c"], n)},
        geometry=shapely.points(x, y), crs="EPSG:4490")


def triangles_frame(n: int, *, seed: int) -> gpd.GeoDataFrame:
    """Small right triangles (their bbox is twice their area, so bbox and
    geometry intersection differ) with a valid-time interval each; some
    intervals are open at the start or the end."""
    rng = np.random.default_rng(seed)
    x, y = random_xy(rng, n)
    w = rng.uniform(1e-4, 5e-3, n)
    h = rng.uniform(1e-4, 5e-3, n)
    ring = np.stack([np.c_[x, y], np.c_[x + w, y], np.c_[x, y + h], np.c_[x, y]], axis=1)
    start = times(rng, n, 120)
    end = start + pd.to_timedelta(rng.integers(0, 30 * DAY, n), unit="s")
    start = start.astype(object).where(rng.random(n) > 0.05, None)
    end = end.astype(object).where(rng.random(n) > 0.1, None)
    return gpd.GeoDataFrame(
        {"id": [f"p{i}" for i in range(n)],
         "start": pd.to_datetime(pd.Series(start), utc=True), "end": pd.to_datetime(pd.Series(end), utc=True),
         "v": rng.integers(0, 1000, n)},
        geometry=shapely.polygons(ring), crs="EPSG:4490")


POINTS = {"name": "pts", "geometry_type": "Point", "fid": "id", "valid_from": "t", "instant": True,
          "time_partition": "month"}
SPANS = {"name": "spans", "geometry_type": "Polygon", "fid": "id", "valid_from": "start",
         "valid_to": "end", "time_partition": "month"}


def spec(base: dict[str, Any], name: str | None = None, **kw: Any) -> dict[str, Any]:
    return {**base, **({"name": name} if name else {}), **kw}


def state(t: pa.Table) -> pd.DataFrame:
    """A query result as a frame in a canonical row order, for exact comparison."""
    df = t.select([c for c in t.column_names if c != "bbox"]).to_pandas()
    return df.sort_values(["fid", "version"], kind="stable").reset_index(drop=True)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def as_dt(v: Any) -> datetime | None:
    return None if v is None or pd.isna(v) else pd.Timestamp(v).to_pydatetime()


# the contract ---------------------------------------------------------------------

class StorageContract:
    """Tests every storage backend must pass. Subclass and implement ``make_cube``."""

    #: Small row groups and files, so that pruning and file splitting matter.
    settings: ClassVar[Settings] = Settings(row_group_size=1000, max_file_rows=8000, progress=False)

    def make_cube(self, tmp_path: Path, settings: Settings | None = None) -> Cube:
        """A new, empty cube on the backend under test, stored under ``tmp_path``."""
        raise NotImplementedError

    @pytest.fixture
    def cube(self, tmp_path: Path) -> Iterable[Cube]:
        c = self.make_cube(tmp_path)
        yield c
        c.close()

    @staticmethod
    def scan_fids(cube: Cube, name: str, **kw: Any) -> set[Any]:
        """The fids a bare backend scan returns at the head."""
        req = ScanRequest(snapshot=cube.backend.head(name), columns=(), with_geometry=False, **kw)
        return set(cube.backend.scan(name, req).column("fid").to_pylist())

    # datasets -----------------------------------------------------------------
    def test_create_list_drop(self, cube: Cube) -> None:
        assert cube.datasets() == []
        s1 = cube.create_dataset(spec(POINTS, "zeta"))
        s2 = cube.create_dataset(spec(POINTS, "alpha", time_partition="none"))
        assert s1.operation == s2.operation == "create"
        assert s1.dataset == "zeta" and s1.parent_id is None
        assert [d.name for d in cube.datasets()] == ["alpha", "zeta"]
        assert "alpha" in cube and "nope" not in cube
        assert cube.dataset("alpha").time_partition == "none"
        with pytest.raises(DatasetExists):
            cube.create_dataset(spec(POINTS, "alpha"))
        cube.ingest("zeta", points_frame(500, seed=1))
        cube.ingest("alpha", points_frame(300, seed=2))
        cube.drop_dataset("zeta")
        assert [d.name for d in cube.datasets()] == ["alpha"]
        for call in (lambda: cube.query("zeta"), lambda: cube.snapshots("zeta"),
                     lambda: cube.drop_dataset("zeta"), lambda: cube.stats("zeta")):
            with pytest.raises(DatasetNotFound):
                call()
        # The other dataset is untouched; a dataset made again under the old name starts empty.
        assert cube.count("alpha") == 300
        again = cube.create_dataset(spec(POINTS, "zeta"))
        assert [s.id for s in cube.snapshots("zeta")] == [again.id]
        assert cube.count("zeta") == 0 and cube.stats("zeta").rows == 0
        cube.ingest("zeta", points_frame(10, seed=3))
        assert cube.count("zeta") == 10

    def test_empty_dataset_queries(self, cube: Cube) -> None:
        cube.create_dataset(POINTS)
        assert len(cube.query("pts", output="arrow")) == 0
        assert len(cube.query("pts", bbox=AREA, datetime="2024-01-01/2024-02-01", output="arrow")) == 0
        st = cube.stats("pts")
        assert st.rows == 0 and st.extent is None

    # ingest and scan --------------------------------------------------------------
    def test_ingest_and_scan(self, cube: Cube) -> None:
        cube.create_dataset(POINTS)
        gdf = points_frame(5000, seed=4)
        rep = cube.ingest("pts", gdf)
        assert rep.rows_added == 5000 and rep.snapshot_id == cube.backend.head("pts")
        out = cube.query("pts")
        assert out.crs.to_epsg() == 4490
        assert len(out) == 5000 == cube.count("pts")
        got = out.set_index("fid").loc[gdf["id"]]
        np.testing.assert_array_equal(got["v"].to_numpy(), gdf["v"].to_numpy())
        np.testing.assert_array_equal(got["kind"].to_numpy(), gdf["kind"].to_numpy())
        assert (got["valid_from"].to_numpy() == gdf["t"].to_numpy()).all()
        assert (got["valid_to"].to_numpy() == gdf["t"].to_numpy()).all()  # an instant
        assert shapely.equals_exact(got.geometry.to_numpy(), gdf.geometry.to_numpy(), tolerance=0).all()
        assert (got["version"] == 1).all() and (got["record_from"] == rep.snapshot_id).all()
        # The bare backend scan agrees, with and without geometry and columns.
        head = cube.backend.head("pts")
        full = cube.backend.scan("pts", ScanRequest(snapshot=head))
        assert full.num_rows == 5000
        assert {"fid", "version", "valid_from", "valid_to", "record_from", "v", "kind", "geometry",
                "bbox"} <= set(full.column_names)
        bare = cube.backend.scan("pts", ScanRequest(snapshot=head, columns=("v",), with_geometry=False))
        assert "geometry" not in bare.column_names and "kind" not in bare.column_names
        assert sorted(bare.column("v").to_pylist()) == sorted(gdf["v"].tolist())
        one = cube.get("pts", "f17")
        assert len(one) == 1 and one["v"].iloc[0] == gdf["v"].iloc[17]
        with pytest.raises(FeatureNotFound):
            cube.get("pts", "nope")

    def test_store_assigned_ids(self, cube: Cube) -> None:
        cube.create_dataset({"name": "obs", "geometry_type": "Point", "valid_from": "t", "instant": True})
        a = points_frame(700, seed=5).drop(columns=["id"])
        b = points_frame(300, seed=6).drop(columns=["id"])
        cube.ingest("obs", a)
        cube.ingest("obs", b)
        t = cube.query("obs", output="arrow")
        fids = t.column("fid").to_pylist()
        assert len(fids) == len(set(fids)) == 1000 == cube.stats("obs").rows
        assert sorted(t.column("v").to_pylist()) == sorted([*a["v"], *b["v"]])

    # snapshots ----------------------------------------------------------------------
    def test_snapshots_monotonic_and_head(self, cube: Cube) -> None:
        cube.create_dataset(POINTS)
        cube.create_dataset(spec(POINTS, "other"))
        for i in range(4):  # interleave two datasets: ids are per store, order per dataset
            cube.ingest("pts", points_frame(200, seed=10 + i, start=200 * i))
            cube.ingest("other", points_frame(100, seed=20 + i, start=100 * i))
            if i == 2:
                cube.delete_features("pts", ["f0", "f1"])
        for name, n in (("pts", 6), ("other", 5)):
            snaps = cube.snapshots(name)
            assert len(snaps) == n
            ids = [s.id for s in snaps]
            assert ids == sorted(set(ids))
            assert [s.parent_id for s in snaps] == [None, *ids[:-1]]
            assert all(a.committed_at <= b.committed_at for a, b in zip(snaps, snaps[1:]))
            assert all(s.dataset == name for s in snaps)
            assert snaps[0].operation == "create"
            assert cube.backend.head(name) == ids[-1]
            assert cube.backend.check_snapshot(name, ids[1]) == ids[1]
        assert [s.operation for s in cube.snapshots("pts")] == [
            "create", "ingest", "ingest", "ingest", "delete", "ingest"]
        assert cube.snapshots("pts")[4].summary == {"deleted": 2}
        other_ids = {s.id for s in cube.snapshots("other")}
        with pytest.raises(SnapshotNotFound):  # a snapshot of another dataset is not one of this
            cube.query("pts", as_of=min(other_ids - {s.id for s in cube.snapshots("pts")}))
        with pytest.raises(SnapshotNotFound):
            cube.query("pts", as_of=10_000)
        # The head is what an unpinned query sees.
        assert state(cube.query("pts", output="arrow")).equals(
            state(cube.query("pts", as_of=cube.backend.head("pts"), output="arrow")))
        assert cube.count("pts") == 798

    def test_snapshot_at(self, cube: Cube) -> None:
        cube.create_dataset(POINTS)
        for i in range(4):
            time.sleep(0.003)  # distinct commit times
            cube.ingest("pts", points_frame(50, seed=30 + i, start=50 * i))
        snaps = cube.snapshots("pts")
        assert len({s.committed_at for s in snaps}) == len(snaps)
        be = cube.backend
        us = timedelta(microseconds=1)
        for prev, s, nxt in zip([None, *snaps], snaps, [*snaps[1:], None]):
            assert be.snapshot_at("pts", s.committed_at) == s.id  # at: inclusive
            if nxt is not None:
                mid = s.committed_at + (nxt.committed_at - s.committed_at) / 2
                assert be.snapshot_at("pts", mid) == s.id
                assert be.snapshot_at("pts", nxt.committed_at - us) == s.id
            if prev is not None:
                assert be.snapshot_at("pts", s.committed_at - us) == prev.id
            # The cube resolves a time (datetime or RFC 3339 text) the same way.
            assert cube.count("pts", as_of=s.committed_at) == 50 * (snaps.index(s))
            assert cube.count("pts", as_of=s.committed_at.astimezone(timezone(timedelta(hours=8)))
                              .isoformat()) == 50 * snaps.index(s)
        assert be.snapshot_at("pts", datetime(2999, 1, 1, tzinfo=timezone.utc)) == snaps[-1].id
        with pytest.raises(SnapshotNotFound):
            be.snapshot_at("pts", snaps[0].committed_at - us)
        with pytest.raises(SnapshotNotFound):
            cube.query("pts", as_of="2000-01-01T00:00:00Z")

    # space --------------------------------------------------------------------------
    @staticmethod
    def query_boxes(rng: np.random.Generator, xy: np.ndarray, n: int) -> list[tuple[float, float, float, float]]:
        """Random boxes of many sizes, boxes whose edges sit exactly on data
        coordinates, degenerate boxes (a line, a point) and boxes outside."""
        x0, y0, x1, y1 = AREA
        boxes: list[tuple[float, float, float, float]] = []
        for size in np.geomspace(1e-4, 0.6, n // 2):
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            boxes.append((cx - size, cy - size * 0.7, cx + size, cy + size * 0.7))
        for _ in range(n // 4):  # edges on coordinates of the data
            a, b = xy[rng.integers(0, len(xy), 2)]
            boxes.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
        p = xy[rng.integers(0, len(xy))]
        boxes += [
            (p[0], p[1], p[0], p[1]),  # a point box on a data point
            (p[0], y0, p[0], y1),  # a vertical line through it
            (x0 - 1, y0 - 1, x1 + 1, y1 + 1),  # everything
            (x1 + 0.5, y1 + 0.5, x1 + 1.0, y1 + 1.0),  # nothing
            (x0 - 1, y0 - 1, x0 - 1e-9, y1),  # just left of everything
        ]
        return boxes

    def test_bbox_points_exact(self, cube: Cube) -> None:
        """At least 20k points over many row groups: each box returns exactly
        the points inside it (edges included)."""
        cube.create_dataset(POINTS)
        parts = [points_frame(8000, seed=40 + i, start=8000 * i) for i in range(3)]
        for p in parts:
            cube.ingest("pts", p)
        gdf = pd.concat(parts, ignore_index=True)
        fids = gdf["id"].to_numpy()
        geoms = gdf.geometry.to_numpy()
        xy = shapely.get_coordinates(geoms)
        rng = np.random.default_rng(41)
        for q in self.query_boxes(rng, xy, 40):
            inside = (xy[:, 0] >= q[0]) & (xy[:, 0] <= q[2]) & (xy[:, 1] >= q[1]) & (xy[:, 1] <= q[3])
            expected = set(fids[inside])
            if q[0] < q[2] and q[1] < q[3]:  # shapely agrees (a degenerate box is no polygon)
                assert expected == set(fids[shapely.intersects(geoms, shapely.box(*q))])
            assert self.scan_fids(cube, "pts", bbox=q) == expected, q
            assert set(cube.query("pts", bbox=q, output="arrow").column("fid").to_pylist()) == expected, q
            assert cube.count("pts", bbox=q) == len(expected), q

    def test_bbox_polygons_exact(self, cube: Cube) -> None:
        """Polygons: the backend returns exactly the rows whose bbox meets the
        box; the cube's query exactly those whose geometry does."""
        cube.create_dataset(SPANS)
        gdf = triangles_frame(20_000, seed=50)
        cube.ingest("spans", gdf)
        fids = gdf["id"].to_numpy()
        geoms = gdf.geometry.to_numpy()
        b = shapely.bounds(geoms)
        rng = np.random.default_rng(51)
        corners = np.r_[b[:, :2], b[:, 2:]]
        differ = 0
        for q in self.query_boxes(rng, corners, 40):
            by_bbox = set(fids[(b[:, 2] >= q[0]) & (b[:, 0] <= q[2]) & (b[:, 3] >= q[1]) & (b[:, 1] <= q[3])])
            by_geom = set(fids[shapely.intersects(geoms, shapely.box(*q))])
            differ += by_bbox != by_geom
            assert self.scan_fids(cube, "spans", bbox=q) == by_bbox, q
            assert set(cube.query("spans", bbox=q, output="arrow").column("fid").to_pylist()) == by_geom, q
            assert cube.count("spans", bbox=q) == len(by_geom), q
        assert differ > 0  # the data does tell a bbox test from a geometry test
        # A geometry predicate: only the exact shapes.
        poly = shapely.Polygon([(116.2, 39.7), (116.8, 39.75), (116.5, 40.3)])
        got = set(cube.query("spans", geometry=poly, output="arrow").column("fid").to_pylist())
        assert got == set(fids[shapely.intersects(geoms, poly)])

    # time ---------------------------------------------------------------------------
    def test_time_intervals(self, cube: Cube) -> None:
        """Closed intervals, open ends, instants: a feature [s, e] (null = open)
        matches [a, b] iff s <= b and e >= a; ends are included."""
        cube.create_dataset(SPANS)
        gdf = triangles_frame(6000, seed=60)
        cube.ingest("spans", gdf)
        fids = gdf["id"].to_numpy()
        s = np.array([to_us(as_dt(v), np.iinfo(np.int64).min) for v in gdf["start"]])
        e = np.array([to_us(as_dt(v), np.iinfo(np.int64).max) for v in gdf["end"]])
        known = [as_dt(v) for v in pd.concat([gdf["start"], gdf["end"]]).dropna().sample(40, random_state=1)]
        queries: list[tuple[Any, datetime | None, datetime | None]] = []
        for a, b in zip(known[::2], known[1::2]):  # endpoints exactly on stored times
            a, b = min(a, b), max(a, b)
            queries += [(f"{iso(a)}/{iso(b)}", a, b), ((a, b), a, b)]
        for t in known[:6]:
            queries += [(iso(t), t, t), (f"../{iso(t)}", None, t), (f"{iso(t)}/..", t, None),
                        ((None, t), None, t), ((t, ".."), t, None)]
        queries += [("2024-02-10", datetime(2024, 2, 10, tzinfo=timezone.utc),
                     datetime(2024, 2, 10, 23, 59, 59, 999999, tzinfo=timezone.utc)),
                    ("2030-01-01T00:00:00Z/..", datetime(2030, 1, 1, tzinfo=timezone.utc), None),
                    ("../1999-01-01T00:00:00Z", None, datetime(1999, 1, 1, tzinfo=timezone.utc))]
        for q, a, b in queries:
            lo = to_us(a, np.iinfo(np.int64).min)
            hi = to_us(b, np.iinfo(np.int64).max)
            expected = set(fids[(s <= hi) & (e >= lo)])
            got = set(cube.query("spans", datetime=q, output="arrow").column("fid").to_pylist())
            assert got == expected, q
            assert self.scan_fids(cube, "spans", t_min=lo, t_max=hi) == expected, q
        # Combined with space.
        box = (116.3, 39.8, 116.6, 40.1)
        a, b = datetime(2024, 2, 1, tzinfo=timezone.utc), datetime(2024, 3, 1, tzinfo=timezone.utc)
        geoms = gdf.geometry.to_numpy()
        want = set(fids[(s <= to_us(b, 0)) & (e >= to_us(a, 0)) & shapely.intersects(geoms, shapely.box(*box))])
        got = set(cube.query("spans", bbox=box, datetime=(a, b), output="arrow").column("fid").to_pylist())
        assert got == want and want

    def test_time_instants(self, cube: Cube) -> None:
        """An instant dataset: the start and end instants of a query are included."""
        cube.create_dataset(POINTS)
        gdf = points_frame(5000, seed=70, days=60)
        cube.ingest("pts", gdf)
        t = gdf["t"]
        fids = gdf["id"].to_numpy()
        ordered = t.sort_values().reset_index(drop=True)
        for i, j in [(0, 4999), (10, 10), (100, 2500), (2500, 2501), (4000, 4999)]:
            a, b = ordered[i].to_pydatetime(), ordered[j].to_pydatetime()
            expected = set(fids[((t >= a) & (t <= b)).to_numpy()])
            assert fids[(t == a).to_numpy()][0] in expected and fids[(t == b).to_numpy()][0] in expected
            for q in (f"{iso(a)}/{iso(b)}", (a, b)):
                got = set(cube.query("pts", datetime=q, output="arrow").column("fid").to_pylist())
                assert got == expected, q
            if a == b:
                got = set(cube.query("pts", datetime=iso(a), output="arrow").column("fid").to_pylist())
                assert got == expected
        one_us = timedelta(microseconds=1)
        first = ordered[0].to_pydatetime()
        assert cube.count("pts", datetime=f"../{iso(first - one_us)}") == 0
        assert cube.count("pts", datetime=f"../{iso(first)}") == int((t == first).sum())
        last = ordered.iloc[-1].to_pydatetime()
        assert cube.count("pts", datetime=f"{iso(last + one_us)}/..") == 0
        assert cube.count("pts", datetime=f"{iso(last)}/..") == int((t == last).sum())

    # bitemporal ---------------------------------------------------------------------
    def _evolve(self, cube: Cube) -> tuple[list[int], list[pd.DataFrame]]:
        """Updates, deletes, a replace and a re-update of one dataset; returns
        the snapshot ids and the query result after each."""
        cube.create_dataset(POINTS)
        base = points_frame(3000, seed=80)
        snaps: list[int] = []
        states: list[pd.DataFrame] = []

        def record(sid: int) -> None:
            snaps.append(sid)
            states.append(state(cube.query("pts", output="arrow")))

        record(cube.ingest("pts", base).snapshot_id)
        # 1: change 500 (new value and position), add 200
        upd = base.iloc[:500].copy()
        upd["v"] = upd["v"] + 1
        upd["geometry"] = shapely.points(shapely.get_coordinates(upd.geometry.to_numpy()) + 1e-4)
        r = cube.ingest("pts", pd.concat([upd, points_frame(200, seed=81, start=3000)], ignore_index=True))
        assert (r.rows_changed, r.rows_added) == (500, 200)
        record(r.snapshot_id)
        # 2: delete 300, half of them changed in 1
        gone = [f"f{i}" for i in range(250, 550)]
        record(cube.delete_features("pts", gone).id)
        # 3: replace with a subset: rows 1000.. of the base, 100 of them changed again
        rest = base.iloc[1000:].copy()
        rest.loc[rest.index[:100], "kind"] = "z"
        r = cube.ingest("pts", rest, mode="replace")
        record(r.snapshot_id)
        # 4: unchanged input is a no-op (no snapshot); then change 10 once more
        again = cube.ingest("pts", rest, mode="upsert")
        assert again.noop and again.snapshot_id is None and cube.backend.head("pts") == snaps[-1]
        last = rest.iloc[:10].copy()
        last["v"] = -1.0
        record(cube.ingest("pts", last).snapshot_id)
        return snaps, states

    def test_as_of_exact(self, cube: Cube) -> None:
        snaps, states = self._evolve(cube)
        assert [len(s) for s in states] == [3000, 3200, 2900, 2000, 2000]
        for sid, want in zip(snaps, states):
            got = state(cube.query("pts", as_of=sid, output="arrow"))
            pd.testing.assert_frame_equal(got, want)
            assert cube.count("pts", as_of=sid) == len(want)
            assert cube.stats("pts", as_of=sid).rows == len(want)
        # Before any ingest: the empty create snapshot.
        assert cube.count("pts", as_of=cube.snapshots("pts")[0].id) == 0
        # Filters at an older snapshot see that snapshot's versions.
        box = (116.0, 39.5, 116.5, 40.0)
        first = states[0]
        pts = shapely.from_wkb(first["geometry"].to_numpy())
        want = set(first["fid"][shapely.intersects(pts, shapely.box(*box))])
        assert set(cube.query("pts", as_of=snaps[0], bbox=box, output="arrow").column("fid").to_pylist()) == want
        got = cube.get("pts", "f0", as_of=snaps[0])
        assert got["version"].tolist() == [1]

    def test_history(self, cube: Cube) -> None:
        snaps, states = self._evolve(cube)
        s_base, s_upd, s_del, s_repl, s_last = snaps
        cases = {
            "f0": ([1, 2], [s_base, s_upd], [s_upd, s_repl]),  # changed, then dropped by replace
            "f520": ([1], [s_base], [s_del]),  # deleted
            "f260": ([1, 2], [s_base, s_upd], [s_upd, s_del]),  # changed, then deleted
            "f400": ([1, 2], [s_base, s_upd], [s_upd, s_del]),  # changed, then deleted
            "f1000": ([1, 2, 3], [s_base, s_repl, s_last], [s_repl, s_last, None]),  # changed twice
            "f1050": ([1, 2], [s_base, s_repl], [s_repl, None]),
            "f1200": ([1], [s_base], [None]),
            "f2999": ([1], [s_base], [None]),  # never changed
            "f3100": ([1], [s_upd], [s_repl]),  # added, then dropped by replace
        }
        for fid, (versions, frm, to) in cases.items():
            h = cube.history("pts", fid, output="arrow")
            assert h.column("version").to_pylist() == versions, fid
            assert h.column("record_from").to_pylist() == frm, fid
            assert h.column("record_to").to_pylist() == to, fid
            assert set(h.column("fid").to_pylist()) == {fid}
        # Every version in every state is a row of its feature's history.
        for want in states:
            for fid, version, rfrom in want[["fid", "version", "record_from"]].sample(15, random_state=2).itertuples(
                    index=False):
                h = cube.history("pts", fid, output="arrow").to_pandas()
                assert ((h["version"] == version) & (h["record_from"] == rfrom)).sum() == 1
        with pytest.raises(FeatureNotFound):
            cube.history("pts", "nope")
        gdf = cube.history("pts", "f1000")
        assert len(gdf) == 3 and gdf.crs.to_epsg() == 4490

    def test_history_of_a_feature_deleted_and_loaded_again(self, cube: Cube) -> None:
        """Both lives of the feature, in record order, and only the last one open."""
        cube.create_dataset(POINTS)
        f = points_frame(20, seed=90)
        s1 = cube.ingest("pts", f).snapshot_id
        s2 = cube.delete_features("pts", ["f3"]).id
        g = f.iloc[[3]].copy()
        g["v"] = 42.0
        s3 = cube.ingest("pts", g).snapshot_id
        h = cube.history("pts", "f3", output="arrow")
        assert h.column("record_from").to_pylist() == [s1, s3]
        assert h.column("record_to").to_pylist() == [s2, None]
        assert h.column("v").to_pylist() == [f["v"].iloc[3], 42.0]
        assert cube.get("pts", "f3")["v"].tolist() == [42.0]

    def test_retired_rows_never_current(self, cube: Cube) -> None:
        snaps, states = self._evolve(cube)
        cur = cube.query("pts", output="arrow")
        fids = cur.column("fid").to_pylist()
        assert len(fids) == len(set(fids)) == 2000
        assert not {f"f{i}" for i in range(1000)} & set(fids)  # dropped by delete or replace
        # Each current row is its feature's open version: record_to is null there.
        for fid, version in zip(fids[::50], cur.column("version").to_pylist()[::50]):
            h = cube.history("pts", fid, output="arrow").to_pandas()
            open_ = h[h["record_to"].isna()]
            assert open_["version"].tolist() == [version] and version == h["version"].max()
        # Filters never bring an ended version back.
        for kw in ({"bbox": AREA}, {"datetime": "2024-01-01T00:00:00Z/.."}, {"properties": ["v"]},
                   {"bbox": (116.2, 39.6, 116.9, 40.3), "datetime": "2024-02-01T00:00:00Z/2024-05-01T00:00:00Z"}):
            t = cube.query("pts", output="arrow", **kw)
            got = dict(zip(t.column("fid").to_pylist(), t.column("version").to_pylist()))
            assert len(got) == t.num_rows
            assert all(dict(zip(fids, cur.column("version").to_pylist()))[f] == v for f, v in got.items())
        raw = cube.backend.scan("pts", ScanRequest(snapshot=cube.backend.head("pts"), with_geometry=False))
        assert raw.num_rows == 2000
        with pytest.raises(FeatureNotFound):
            cube.get("pts", "f0")
        with pytest.raises(FeatureNotFound):
            cube.delete_features("pts", ["f0"])  # already ended: not current

    def test_stats(self, cube: Cube) -> None:
        snaps, states = self._evolve(cube)
        for sid, want in zip(snaps, states):
            st = cube.stats("pts", as_of=sid)
            assert st.rows == len(want)
            assert st.files >= 1 and st.bytes > 0
            xy = shapely.get_coordinates(shapely.from_wkb(want["geometry"].to_numpy()))
            x0, y0, x1, y1 = st.extent
            assert x0 <= xy[:, 0].min() and y0 <= xy[:, 1].min() and x1 >= xy[:, 0].max() and y1 >= xy[:, 1].max()
            assert st.t_min is not None and st.t_min <= to_us(want["valid_from"].min().to_pydatetime(), 0)
        assert cube.stats("pts").rows == len(states[-1])
        assert cube.stats("pts", as_of=cube.snapshots("pts")[0].id).rows == 0
