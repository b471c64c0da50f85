"""The GeoParquet backend: the storage contract, and what its files must be."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pyproj
import pytest
import shapely

import geoplatform.storage.geoparquet as gpq
from geoplatform.cube.cube import Cube, open_cube
from geoplatform.cube.times import MIN_US
from geoplatform.index import HilbertCurve2D
from geoplatform.settings import Settings
from geoplatform.storage.geoparquet import GeoParquetBackend
from tests.storage.contract import POINTS, SPANS, StorageContract, points_frame, spec, triangles_frame

_GEOMETRY_TYPE = re.compile(r"^(GeometryCollection|(Multi)?(Point|LineString|Polygon))( Z)?$")


def backend(cube: Cube) -> GeoParquetBackend:
    assert isinstance(cube.backend, GeoParquetBackend)
    return cube.backend


def data_files(root: Path) -> list[Path]:
    """Every file under the store's data/ folder, whatever its name."""
    return sorted(p for p in (root / "data").rglob("*") if p.is_file())


def catalog_paths(cube: Cube) -> set[str]:
    return {r[0] for r in backend(cube).db.con.execute("SELECT path FROM files")}


def edit_points(cube: Cube) -> None:
    """Dataset "pts": 20k points over six months, then every 7th updated, 3k added,
    and every third of the first 2k deleted (three snapshots)."""
    cube.create_dataset(POINTS)
    base = points_frame(20_000, seed=1)
    cube.ingest("pts", base)
    upd = base.iloc[::7].copy()
    upd["v"] = upd["v"] * 2
    cube.ingest("pts", pd.concat([upd, points_frame(3000, seed=2, start=20_000)], ignore_index=True))
    cube.delete_features("pts", [f"f{i}" for i in range(1, 2000, 3)])


class TestGeoParquet(StorageContract):
    def make_cube(self, tmp_path: Path, settings: Settings | None = None) -> Cube:
        return open_cube(tmp_path / "store", settings=settings or self.settings, backend="geoparquet")

    @pytest.fixture
    def populated(self, tmp_path: Path) -> Any:
        """Points over six months with updates and deletes; polygons with
        open-started intervals; several files per partition."""
        cube = self.make_cube(tmp_path)
        edit_points(cube)
        cube.create_dataset(SPANS)
        cube.ingest("spans", triangles_frame(6000, seed=3))
        yield cube
        cube.close()

    # the files --------------------------------------------------------------------
    def test_data_files_are_geoparquet_1_1(self, populated: Cube) -> None:
        files = data_files(backend(populated).root)
        assert len(files) >= 10 and all(p.suffix == ".parquet" for p in files)
        for path in files:
            schema = pq.read_schema(path)
            geo = json.loads(schema.metadata[b"geo"])
            assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
            assert set(geo["columns"]) == {"geometry"}
            col = geo["columns"]["geometry"]
            assert col["encoding"] == "WKB"
            assert schema.field("geometry").type == pa.binary()
            crs = pyproj.CRS.from_json_dict(col["crs"])
            assert crs.to_epsg() == 4490 and col["crs"]["id"] == {"authority": "EPSG", "code": 4490}
            # The bbox covering: a root struct column of doubles, declared in 'geo'.
            assert col["covering"] == {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}}
            bbox_type = schema.field("bbox").type
            assert pa.types.is_struct(bbox_type)
            assert [(f.name, f.type) for f in bbox_type] == [(k, pa.float64()) for k in ("xmin", "ymin", "xmax", "ymax")]
            t = pq.read_table(path)
            geoms = shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False))
            b = t.column("bbox").combine_chunks()
            covering = np.c_[[b.field(k).to_numpy() for k in ("xmin", "ymin", "xmax", "ymax")]].T
            np.testing.assert_array_equal(covering, shapely.bounds(geoms))
            # File-level metadata describes this file's geometries.
            types = sorted(set(shapely.get_type_id(geoms).tolist()))
            names = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
                     6: "MultiPolygon", 7: "GeometryCollection"}
            assert col["geometry_types"] == sorted(names[i] for i in types)
            assert all(_GEOMETRY_TYPE.match(g) for g in col["geometry_types"])
            np.testing.assert_array_equal(col["bbox"], shapely.total_bounds(geoms), err_msg=str(path))
            # Timestamps keep their UTC zone without an arrow schema in the file.
            assert schema.field("valid_from").type == pa.timestamp("us", tz="UTC")

    def test_geopandas_reads_files_as_they_are(self, populated: Cube) -> None:
        rng = np.random.default_rng(5)
        for path in data_files(backend(populated).root):
            gdf = gpd.read_parquet(path)
            raw = pq.read_table(path)
            assert isinstance(gdf, gpd.GeoDataFrame) and gdf.geometry.name == "geometry"
            assert gdf.crs is not None and gdf.crs.to_epsg() == 4490
            assert len(gdf) == raw.num_rows
            wkb = shapely.from_wkb(raw.column("geometry").to_numpy(zero_copy_only=False))
            assert shapely.equals_exact(gdf.geometry.to_numpy(), wkb, tolerance=0).all()
            assert gdf["fid"].tolist() == raw.column("fid").to_pylist()
            # geopandas filters on the declared covering: the same rows as brute force.
            x0, y0, x1, y1 = shapely.total_bounds(wkb)
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            q = (cx - 0.05, cy - 0.05, cx + 0.05, cy + 0.05)
            sub = gpd.read_parquet(path, bbox=q)
            want = set(np.asarray(raw.column("fid").to_pylist())[shapely.intersects(wkb, shapely.box(*q))])
            assert set(sub["fid"]) == want

    def test_pyogrio_reads_files_as_they_are(self, populated: Cube) -> None:
        if "Parquet" not in pyogrio.list_drivers():
            pytest.skip(f"pyogrio's GDAL {pyogrio.__gdal_version_string__} was built without the Parquet driver")
        for path in data_files(backend(populated).root):
            gdf = pyogrio.read_dataframe(path)
            raw = pq.read_table(path)
            assert gdf.crs is not None and gdf.crs.to_epsg() == 4490
            assert len(gdf) == raw.num_rows
            wkb = shapely.from_wkb(raw.column("geometry").to_numpy(zero_copy_only=False))
            assert shapely.equals_exact(gdf.geometry.to_numpy(), wkb, tolerance=0).all()

    def test_rows_sorted_by_hilbert_key_then_time(self, populated: Cube) -> None:
        be = backend(populated)
        for name in ("pts", "spans"):
            ds = be.db.dataset(name)
            curve = HilbertCurve2D(ds.key_bounds, order=self.settings.hilbert_order)
            paths = [be.root / p for (p,) in be.db.con.execute("SELECT path FROM files WHERE dataset_id=?", (ds.id,))]
            assert len(paths) >= 3
            for path in paths:
                t = pq.read_table(path, columns=["bbox", "valid_from"])
                b = t.column("bbox").combine_chunks()
                cx = (b.field("xmin").to_numpy() + b.field("xmax").to_numpy()) / 2
                cy = (b.field("ymin").to_numpy() + b.field("ymax").to_numpy()) / 2
                key = curve.index(cx, cy).astype(np.uint64)
                vf = t.column("valid_from").cast(pa.int64()).fill_null(MIN_US).to_numpy()
                order = np.lexsort((vf, key))
                np.testing.assert_array_equal(order, np.arange(len(key)), err_msg=str(path))
                assert (np.diff(key.astype(np.float64)) >= 0).all()

    def test_row_groups_size_compression_and_catalog(self, populated: Cube) -> None:
        be = backend(populated)
        rgs = self.settings.row_group_size
        con = be.db.con
        files = con.execute("SELECT id, path, rows, bytes, xmin, ymin, xmax, ymax FROM files").fetchall()
        assert sum(f[2] for f in files) > 20_000
        for fid, rel, rows, nbytes, *bounds in files:
            path = be.root / rel
            md = pq.read_metadata(path)
            assert md.num_rows == rows <= self.settings.max_file_rows
            assert path.stat().st_size == nbytes
            sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
            assert sizes == [rgs] * (len(sizes) - 1) + [rows - rgs * (len(sizes) - 1)]
            assert 0 < sizes[-1] <= rgs
            for i in range(md.num_row_groups):
                rg = md.row_group(i)
                assert {rg.column(j).compression for j in range(rg.num_columns)} == {"ZSTD"}
            # The catalog's row groups are the file's, with bounds that hold their rows.
            cat = con.execute("SELECT rg, row_offset, rows, xmin, ymin, xmax, ymax, tmin, tmax FROM row_groups"
                              " WHERE file_id=? ORDER BY rg", (fid,)).fetchall()
            assert [c[0] for c in cat] == list(range(md.num_row_groups))
            assert [c[2] for c in cat] == sizes
            assert [c[1] for c in cat] == list(np.cumsum([0, *sizes[:-1]]))
            t = pq.read_table(path, columns=["bbox", "valid_from", "valid_to"])
            b = t.column("bbox").combine_chunks()
            arr = np.c_[[b.field(k).to_numpy() for k in ("xmin", "ymin", "xmax", "ymax")]].T
            vf = t.column("valid_from").cast(pa.int64()).fill_null(MIN_US).to_numpy()
            vt = t.column("valid_to").cast(pa.int64()).fill_null(np.iinfo(np.int64).max).to_numpy()
            for _, off, n, x0, y0, x1, y1, t0, t1 in cat:
                part = arr[off:off + n]
                assert (x0, y0, x1, y1) == (part[:, 0].min(), part[:, 1].min(), part[:, 2].max(), part[:, 3].max())
                assert (t0, t1) == (vf[off:off + n].min(), vt[off:off + n].max())
            assert tuple(bounds) == (arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max())

    # pruning ----------------------------------------------------------------------
    def test_small_query_opens_only_intersecting_files(self, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
        cube = self.make_cube(tmp_path)
        cube.create_dataset(spec(POINTS, time_partition="none"))
        # Nine ingests, each in its own cell of a 3x3 grid: nine files, apart in space.
        for k in range(9):
            f = points_frame(2500, seed=100 + k, start=2500 * k)
            xy = shapely.get_coordinates(f.geometry.to_numpy())
            gx, gy = k % 3, k // 3
            xy = np.c_[116.0 + (gx + (xy[:, 0] - 116.0)) / 3, 39.5 + (gy + (xy[:, 1] - 39.5)) / 3]
            f["geometry"] = shapely.points(xy)
            cube.ingest("pts", f)
        be = backend(cube)
        con = be.db.con
        all_files = {r[0] for r in con.execute("SELECT path FROM files")}
        assert len(all_files) == 9
        opened: list[str] = []
        real = pq.ParquetFile

        def counting(source: Any, *a: Any, **kw: Any) -> pq.ParquetFile:
            opened.append(Path(source).relative_to(be.root).as_posix())
            return real(source, *a, **kw)

        read_groups: list[int] = []
        real_read = GeoParquetBackend._read

        def counting_read(self_: GeoParquetBackend, spec: Any, m: Any, sel: np.ndarray, *a: Any, **kw: Any) -> Any:
            read_groups.append(len(sel))
            return real_read(self_, spec, m, sel, *a, **kw)

        monkeypatch.setattr(gpq.pq, "ParquetFile", counting)
        monkeypatch.setattr(GeoParquetBackend, "_read", counting_read)
        rng = np.random.default_rng(7)
        for _ in range(10):
            cx, cy = rng.uniform(116.05, 116.95), rng.uniform(39.55, 40.45)
            q = (cx - 0.01, cy - 0.01, cx + 0.01, cy + 0.01)
            opened.clear()
            read_groups.clear()
            n = cube.count("pts", bbox=q)
            meets = {r[0] for r in con.execute(
                "SELECT path FROM files WHERE xmax>=? AND xmin<=? AND ymax>=? AND ymin<=?", (q[0], q[2], q[1], q[3]))}
            groups = con.execute(
                "SELECT count(*), count(DISTINCT f.path) FROM row_groups r JOIN files f ON f.id=r.file_id"
                " WHERE r.xmax>=? AND r.xmin<=? AND r.ymax>=? AND r.ymin<=?", (q[0], q[2], q[1], q[3])).fetchone()
            assert set(opened) <= meets and len(meets) <= 4, (q, opened, meets)
            assert len(set(opened)) == groups[1] and sum(read_groups) == groups[0]
            assert groups[0] <= 0.4 * con.execute("SELECT count(*) FROM row_groups").fetchone()[0]
            if n:
                assert opened
        # A box that meets no file's bbox opens nothing.
        opened.clear()
        assert cube.count("pts", bbox=(120.0, 30.0, 120.1, 30.1)) == 0
        assert opened == []
        cube.close()

    def test_time_query_opens_only_its_partitions(self, populated: Cube, monkeypatch: pytest.MonkeyPatch) -> None:
        be = backend(populated)
        opened: list[str] = []
        real = pq.ParquetFile

        def counting(source: Any, *a: Any, **kw: Any) -> pq.ParquetFile:
            opened.append(Path(source).relative_to(be.root).as_posix())
            return real(source, *a, **kw)

        monkeypatch.setattr(gpq.pq, "ParquetFile", counting)
        n = populated.count("pts", datetime="2024-03-05T00:00:00Z/2024-03-20T00:00:00Z")
        assert n > 0
        assert opened and all(p.startswith("data/pts/2024-03/") for p in opened)

    # leftovers ----------------------------------------------------------------------
    def test_writer_sweeps_leftovers_of_its_dataset(self, populated: Cube) -> None:
        be = backend(populated)
        root = be.root
        stray = [root / "data/pts/2024-02/deadbeef.parquet.tmp", root / "data/pts/2024-09/cafe.parquet",
                 root / "data/pts/orphan.parquet"]
        other = root / "data/spans/2024-02/other.parquet.tmp"
        for p in [*stray, other]:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"half a file")
        populated.query("pts", bbox=(116.0, 39.5, 116.1, 39.6))  # readers leave them be
        assert all(p.exists() for p in stray)
        populated.ingest("pts", points_frame(10, seed=9, start=90_000))
        assert not any(p.exists() for p in stray)
        assert other.exists()  # another dataset's leftovers wait for its own writer
        populated.ingest("spans", triangles_frame(10, seed=9).assign(id=lambda d: "q" + d["id"]))
        assert {p.relative_to(root).as_posix() for p in data_files(root)} == catalog_paths(populated)

    def test_drop_removes_files(self, populated: Cube) -> None:
        root = backend(populated).root
        n_pts = populated.stats("pts").files
        before = data_files(root)
        populated.drop_dataset("pts")
        after = data_files(root)
        assert len(before) - len(after) == n_pts
        assert not (root / "data" / "pts").exists() or not any((root / "data" / "pts").rglob("*.parquet"))
        assert {p.relative_to(root).as_posix() for p in after} == catalog_paths(populated)

    def test_reopen_sees_the_same_store(self, populated: Cube, tmp_path: Path) -> None:
        want = populated.query("pts", output="arrow").sort_by("fid")
        snaps = populated.snapshots("pts")
        populated.close()
        again = self.make_cube(tmp_path)
        assert again.snapshots("pts") == snaps
        assert again.query("pts", output="arrow").sort_by("fid").equals(want)
        again.close()

    def test_changed_bounds_are_the_records_a_snapshot_wrote_or_ended(self, populated: Cube) -> None:
        be = backend(populated)
        s0 = be.head("pts")
        assert be.changed_bounds("pts", s0, s0).shape == (0, 4)
        a, b = populated.query("pts", limit=2, sortby="fid", output="arrow").column("fid").to_pylist()
        old = populated.get("pts", a)
        moved = old.drop(columns=["fid", "version", "valid_from", "valid_to", "record_from"]).assign(id=a)
        moved["t"] = old["valid_from"]
        moved = moved.set_geometry(gpd.GeoSeries([shapely.Point(116.9, 40.4)], crs="EPSG:4490"))
        populated.ingest("pts", moved)
        s1 = be.head("pts")
        x, y = old.geometry.iat[0].x, old.geometry.iat[0].y
        want = {(x, y, x, y), (116.9, 40.4, 116.9, 40.4)}
        assert {tuple(b) for b in be.changed_bounds("pts", s0, s1)} == want
        assert {tuple(b) for b in be.changed_bounds("pts", s1, s0)} == want  # either way round
        populated.delete_features("pts", [b])
        gone = populated.get("pts", b, as_of=s1).geometry.iat[0]
        assert [tuple(b) for b in be.changed_bounds("pts", s1, be.head("pts"))] == [(gone.x, gone.y, gone.x, gone.y)]


class TestGeoParquetSpaceCopy(StorageContract):
    """The whole contract again, with every time-partitioned dataset keeping a space copy."""

    def make_cube(self, tmp_path: Path, settings: Settings | None = None) -> Cube:
        cube = open_cube(tmp_path / "store", settings=settings or self.settings, backend="geoparquet")
        create = cube.create_dataset

        def create_with_copy(s: Any) -> Any:
            s = dict(s) if isinstance(s, dict) else s.model_dump(by_alias=True)
            if s.get("time_partition", "none") != "none":
                s["space_copy"] = True
            return create(s)

        cube.create_dataset = create_with_copy  # type: ignore[method-assign]
        return cube

    @pytest.fixture
    def edited(self, tmp_path: Path) -> Any:
        cube = self.make_cube(tmp_path)
        edit_points(cube)
        yield cube
        cube.close()

    def test_space_copy_files_hold_the_same_records(self, edited: Cube) -> None:
        be = backend(edited)
        ds = be.db.dataset("pts")
        m, sm = be._manifest(ds), be._manifest(ds, gpq.SPACE)
        assert be._space_manifest(ds, m) is sm
        assert int(sm.rg_rows.sum()) == int(m.rg_rows.sum()) == 20_000 + 3000 + len(range(0, 20_000, 7))
        assert len(sm.retired_row) == len(m.retired_row) > 0
        assert {Path(p).parent.name for p in sm.file_paths.values()} == {gpq.SPACE}
        assert not any(Path(p).parent.name.startswith(gpq.SPACE) for p in m.file_paths.values())
        # stats, results and history count each record once
        assert edited.stats("pts").rows == 23_000 - len(range(1, 2000, 3))
        assert len(edited.history("pts", "f7")) == 2

    def test_space_copy_read_without_time_same_answer(self, edited: Cube) -> None:
        be = backend(edited)
        ds = be.db.dataset("pts")
        m, sm = be._manifest(ds), be._manifest(ds, gpq.SPACE)
        rng = np.random.default_rng(5)
        used = 0
        for snapshot in (be.head("pts"), be.head("pts") - 1):
            for _ in range(20):
                x, y = rng.uniform(116.0, 116.95), rng.uniform(39.5, 40.45)
                req = gpq.ScanRequest(snapshot=snapshot, bbox=(x, y, x + 0.05, y + 0.05), columns=("v",))
                if len(gpq._prune(sm, req)) and sm.rg_rows[gpq._prune(sm, req)].sum() < \
                        m.rg_rows[gpq._prune(m, req)].sum():
                    used += 1
                got = be.scan("pts", req)
                want = be._scan(ds, m, req, with_positions=False)
                assert got.sort_by([("fid", "ascending")]).equals(want.sort_by([("fid", "ascending")]))
        # six month partitions: a small box prunes to fewer rows in the space copy
        assert used >= 30

    def test_space_copy_needs_a_time_partition(self, tmp_path: Path) -> None:
        cube = open_cube(tmp_path / "s", settings=self.settings, backend="geoparquet")
        with pytest.raises(Exception, match="space_copy needs a time_partition"):
            cube.create_dataset(spec(POINTS, time_partition="none", space_copy=True))
        cube.close()

    def test_samples_hold_the_current_features_their_id_hash_picks(self, edited: Cube) -> None:
        be = backend(edited)
        ds = be.db.dataset("pts")
        full = edited.query("pts", output="arrow")
        h = gpq.fid_hash(full.column("fid"))
        for snapshot in (be.head("pts"), be.head("pts") - 1):
            at = edited.query("pts", as_of=snapshot, output="arrow")
            h_at = gpq.fid_hash(at.column("fid"))
            for k in gpq.SAMPLES:
                req = gpq.ScanRequest(snapshot=snapshot, columns=("v",))
                got = be._scan(ds, be._manifest(ds, gpq.sample_label(k)), req, with_positions=False)
                want = at.filter(pa.array(h_at % np.uint64(k) == 0))
                assert 0 < len(got) < len(at) / k * 2
                assert sorted(zip(got.column("fid").to_pylist(), got.column("version").to_pylist())) == \
                    sorted(zip(want.column("fid").to_pylist(), want.column("version").to_pylist()))
        # the cube reads the sparsest sample that still holds min_rows, and says which
        t, k = edited.query_sample("pts", 40, bbox=(116.0, 39.5, 117.0, 40.5))
        assert k == 256
        assert set(t.column("fid").to_pylist()) == set(full.filter(pa.array(h % np.uint64(256) == 0))
                                                       .column("fid").to_pylist())
        t, k = edited.query_sample("pts", 1000, bbox=(116.0, 39.5, 117.0, 40.5))
        assert k == 16 and 1000 <= len(t) < len(full) / 8
        # no sample for a query with time, or one that meets fewer rows than asked
        t, k = edited.query_sample("pts", 40, bbox=(116.0, 39.5, 117.0, 40.5), datetime="2024-01-01/2024-12-31")
        assert k == 1 and len(t) == len(full)
        t, k = edited.query_sample("pts", 100_000, bbox=(116.0, 39.5, 117.0, 40.5))
        assert k == 1 and len(t) == len(full)

    def test_space_copy_has_its_own_row_group_size(self, tmp_path: Path) -> None:
        settings = Settings(row_group_size=1000, space_row_group_size=300, max_file_rows=8000, progress=False)
        cube = self.make_cube(tmp_path, settings)
        cube.create_dataset(POINTS)
        cube.ingest("pts", points_frame(12_000, seed=4))
        be = backend(cube)
        ds = be.db.dataset("pts")
        assert be._manifest(ds).rg_rows.max() == 1000
        assert be._manifest(ds, gpq.SPACE).rg_rows.max() == 300
        assert be._manifest(ds, gpq.sample_label(16)).rg_rows.max() <= 300
        cube.close()

    @pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
    def test_space_copy_has_its_own_codec(self, tmp_path: Path, codec: str) -> None:
        # the space copy (and its samples) is kept for reading speed; the rest stays zstd
        cube = self.make_cube(tmp_path, Settings(space_compression=codec, progress=False))
        cube.create_dataset(POINTS)
        cube.ingest("pts", points_frame(3_000, seed=5))
        want = {"lz4": "LZ4", "zstd": "ZSTD", "none": "UNCOMPRESSED"}[codec]
        seen = set()
        for f in (tmp_path / "store" / "data" / "pts").rglob("*.parquet"):
            md = pq.ParquetFile(f).metadata
            codecs = {md.row_group(g).column(c).compression for g in range(md.num_row_groups)
                      for c in range(md.num_columns)}
            space = f.parent.name.startswith(gpq.SPACE)
            assert codecs == ({want} if space else {"ZSTD"}), f
            seen.add(space)
        assert seen == {True, False}
        assert len(cube.query("pts", bbox=(116.0, 39.5, 117.0, 40.5))) == 3_000
        cube.close()


class TestGeoParquetCompacted(TestGeoParquetSpaceCopy):
    """The contract and the space-copy tests again, with the space copy compacted after every write:
    a compacted copy must answer every query, as of every snapshot, as the copy it replaced."""

    def make_cube(self, tmp_path: Path, settings: Settings | None = None) -> Cube:
        cube = super().make_cube(tmp_path, settings)
        ingest, delete = cube.ingest, cube.delete_features

        def ingest_then_compact(name: str, *a: Any, **k: Any) -> Any:
            out = ingest(name, *a, **k)
            cube.compact(name)
            return out

        def delete_then_compact(name: str, *a: Any, **k: Any) -> Any:
            out = delete(name, *a, **k)
            cube.compact(name)
            return out

        cube.ingest = ingest_then_compact  # type: ignore[method-assign]
        cube.delete_features = delete_then_compact  # type: ignore[method-assign]
        return cube


class TestCompaction:
    settings = Settings(row_group_size=1000, space_row_group_size=300, progress=False)

    def cube(self, tmp_path: Path, **kw: Any) -> Cube:
        cube = open_cube(tmp_path / "store", settings=self.settings.model_copy(update=kw), backend="geoparquet")
        cube.create_dataset(spec(POINTS, space_copy=True))
        base = points_frame(6000, seed=1)
        for i in range(4):  # four commits: four files in the space copy, each over the whole area
            part = base.iloc[i * 1500:(i + 1) * 1500].copy()
            if i:
                upd = base.iloc[:(i * 1500):11].copy()
                upd["v"] = upd["v"] + i
                part = pd.concat([part, upd], ignore_index=True)
            cube.ingest("pts", part)
        cube.delete_features("pts", [f"f{i}" for i in range(0, 3000, 13)])
        return cube

    @staticmethod
    def answers(cube: Cube) -> dict[tuple[int, int, str], pa.Table]:
        """What the space copy and the samples answer, as of every snapshot, for boxes and whole."""
        be = backend(cube)
        ds = be.db.dataset("pts")
        rng = np.random.default_rng(2)
        boxes = [None, *((x, y, x + 0.1, y + 0.1) for x, y in rng.uniform([116.0, 39.5], [116.9, 40.4], (8, 2)))]
        out = {}
        for snap in [s.id for s in cube.snapshots("pts")]:
            for i, box in enumerate(boxes):
                req = gpq.ScanRequest(snapshot=snap, bbox=box, columns=("v",))
                for layout in (gpq.SPACE, *(gpq.sample_label(k) for k in gpq.SAMPLES)):
                    t = be._scan(ds, be._manifest(ds, layout), req, with_positions=False)
                    out[snap, i, layout] = t.sort_by([("fid", "ascending"), ("version", "ascending")])
        return out

    def test_every_snapshot_reads_the_same_from_fewer_files(self, tmp_path: Path) -> None:
        cube = self.cube(tmp_path)
        be = backend(cube)
        ds = be.db.dataset("pts")
        before = self.answers(cube)
        snaps = cube.snapshots("pts")
        assert len(be._manifest(ds, gpq.SPACE).file_ids) == 4
        done = cube.compact("pts")
        assert done is not None and done[gpq.SPACE]["files_before"] == 4 and done[gpq.SPACE]["files_after"] == 1
        assert cube.snapshots("pts") == snaps  # no new snapshot: nothing anyone reads changed
        sm = be._manifest(ds, gpq.SPACE)
        assert len(sm.file_ids) == 1 and len(sm.retired_row) == len(be._manifest(ds).retired_row) > 0
        assert be._space_manifest(ds, be._manifest(ds)) is sm  # queries still take it
        after = self.answers(cube)
        assert before.keys() == after.keys()
        for k in before:
            assert after[k].equals(before[k]), k  # record_from included: each row keeps its own
        # sorted by space: neighbouring rows are near each other, so a small box reads few row groups
        small = gpq.ScanRequest(snapshot=sm.head, bbox=(116.4, 39.9, 116.45, 39.95))
        assert len(gpq._prune(sm, small)) <= 3
        assert cube.compact("pts") is None  # nothing left to do

    def test_writes_after_compaction_end_records_in_both_copies(self, tmp_path: Path) -> None:
        cube = self.cube(tmp_path)
        cube.compact("pts")
        upd = points_frame(6000, seed=1).iloc[5::17].copy()
        upd["v"] = -5.0
        cube.ingest("pts", upd)
        cube.delete_features("pts", ["f6", "f7"])
        be = backend(cube)
        ds = be.db.dataset("pts")
        m = be._manifest(ds)
        assert be._space_manifest(ds, m) is not None
        for snap in [s.id for s in cube.snapshots("pts")]:
            req = gpq.ScanRequest(snapshot=snap, columns=("v",))
            want = be._scan(ds, m, req, with_positions=False).sort_by([("fid", "ascending")])
            got = be._scan(ds, be._manifest(ds, gpq.SPACE), req, with_positions=False).sort_by([("fid", "ascending")])
            assert got.equals(want), snap
        assert cube.get("pts", "f5")["v"].iat[0] == -5.0
        assert len(cube.history("pts", "f5")) == 2  # loaded in the first commit, changed after compaction

    def test_replaced_files_stay_for_their_grace_then_go(self, tmp_path: Path) -> None:
        cube = self.cube(tmp_path)
        be = backend(cube)
        ds = be.db.dataset("pts")
        stale = be._manifest(ds, gpq.SPACE)  # as a reader in another process may still hold it
        cube.compact("pts")
        req = gpq.ScanRequest(snapshot=stale.head, bbox=(116.0, 39.5, 116.5, 40.0), columns=("v",))
        assert len(be._scan(ds, stale, req, with_positions=False)) > 0  # its files are still there
        cube.ingest("pts", points_frame(10, seed=9, start=90_000))  # a writer sweeps: within the grace, they stay
        assert all((be.root / p).exists() for p in stale.file_paths.values())
        cube.close()
        cube = open_cube(tmp_path / "store", settings=self.settings.model_copy(update={"compact_grace_s": 0}),
                         backend="geoparquet")
        cube.ingest("pts", points_frame(10, seed=10, start=91_000))
        assert not any((backend(cube).root / p).exists() for p in stale.file_paths.values())
        assert set(p.relative_to(backend(cube).root).as_posix() for p in data_files(backend(cube).root)) == \
            catalog_paths(cube)
        cube.close()

    def test_a_dataset_without_a_space_copy_has_nothing_to_compact(self, tmp_path: Path) -> None:
        cube = open_cube(tmp_path / "store", settings=self.settings, backend="geoparquet")
        cube.create_dataset(POINTS)
        cube.ingest("pts", points_frame(100, seed=1))
        assert cube.compact("pts") is None
        cube.close()


def test_the_row_group_cache_answers_as_the_files_do_within_its_budget(tmp_path: Path) -> None:
    base = Settings(row_group_size=1000, space_row_group_size=300, progress=False)
    cubes = {}
    for name, budget in (("off", 0), ("tiny", 200_000), ("big", 1 << 30)):
        cube = open_cube(tmp_path / name, settings=base.model_copy(update={"read_cache_bytes": budget}),
                         backend="geoparquet")
        edit_points(cube)
        cubes[name] = cube
    rng = np.random.default_rng(4)
    for _ in range(3):  # the same boxes again: from the cache the second and third time
        for x, y in rng.uniform([116.0, 39.5], [116.9, 40.4], (15, 2)):
            box = (x, y, x + 0.08, y + 0.08)
            got = {k: c.query("pts", bbox=box, output="arrow").sort_by("fid") for k, c in cubes.items()}
            assert got["tiny"].equals(got["off"]) and got["big"].equals(got["off"])
        rng = np.random.default_rng(4)
    tiny, big = backend(cubes["tiny"])._groups, backend(cubes["big"])._groups
    assert backend(cubes["off"])._groups is None
    assert tiny is not None and 0 < tiny.used <= tiny.budget
    assert big is not None and big.used > tiny.budget  # it kept what the tiny one had to let go
    for c in cubes.values():
        c.close()


def test_a_consistent_read_sees_one_state_while_another_writer_commits(tmp_path: Path) -> None:
    from tests.storage.contract import AREA, POINTS, points_frame, spec

    from geoplatform.errors import StoreError

    reader = open_cube(str(tmp_path / "store"))
    reader.create_dataset(spec(POINTS))
    reader.ingest("pts", points_frame(50, seed=1))
    writer = open_cube(str(tmp_path / "store"))  # another catalog connection, as another process has
    head = reader.backend.head("pts")
    with reader.backend.consistent():
        assert len(reader.query("pts", bbox=AREA)) == 50
        writer.ingest("pts", points_frame(20, seed=2, start=1000))
        # the block's reads keep the state they began with: head, rows and the manifest agree
        assert reader.backend.head("pts") == head
        assert len(reader.query("pts", bbox=AREA)) == 50
        assert len(reader.query("pts", bbox=AREA, as_of=head)) == 50
        with reader.backend.consistent():  # nested: the same state
            assert reader.backend.head("pts") == head
        files = sorted((tmp_path / "store").rglob("*.parquet"))
        with pytest.raises(StoreError, match="inside a consistent read"):
            reader.ingest("pts", points_frame(5, seed=3, start=2000))
        assert sorted((tmp_path / "store").rglob("*.parquet")) == files  # nothing left behind
    assert reader.backend.head("pts") > head
    assert len(reader.query("pts", bbox=AREA)) == 70


def stations_frame(stations: int = 30, hours: int = 24 * 75) -> gpd.GeoDataFrame:
    """Hourly readings of fixed stations over 75 days: each station a name, a place and a number."""
    rng = np.random.default_rng(7)
    x, y = rng.uniform([116.0, 39.5], [116.9, 40.4], (stations, 2)).T
    names = np.array([f"S{k:02d}" for k in range(stations)])
    t = pd.date_range("2025-01-01", periods=hours, freq="1h", tz="UTC")
    k = np.repeat(np.arange(stations), hours)
    return gpd.GeoDataFrame(
        {"id": [f"{names[a]}-{h}" for a in range(stations) for h in range(hours)],
         "t": np.tile(t, stations), "station": names[k], "n": k * 10,
         "v": rng.normal(size=len(k)).round(6)},
        geometry=shapely.points(x[k], y[k]), crs="EPSG:4490")


@pytest.mark.parametrize("statistics", [True, False])
def test_attribute_filters_skip_row_groups_by_their_statistics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                statistics: bool) -> None:
    """A filter on an attribute prunes the row groups whose min and max leave it out
    (in the space copy a station's readings are a few row groups); files written
    without those statistics (older stores) are read whole, with the same answer."""
    if not statistics:
        real = pq.ParquetWriter

        def writer(*a: Any, **kw: Any) -> pq.ParquetWriter:
            kw["write_statistics"] = ["fid", "version", "valid_from", "valid_to"]
            return real(*a, **kw)

        monkeypatch.setattr(gpq.pq, "ParquetWriter", writer)
    cube = open_cube(tmp_path / "store", settings=Settings(progress=False), backend="geoparquet")
    cube.create_dataset(spec(POINTS, space_copy=True))
    df = stations_frame()
    cube.ingest("pts", df)
    be = backend(cube)
    seen: list[tuple[int, int]] = []
    real_prune = gpq._prune

    def prune(m: Any, request: Any, stats: Any = None) -> np.ndarray:
        out = real_prune(m, request, stats)
        seen.append((len(out), int(m.rg_rows[out].sum())))
        return out

    monkeypatch.setattr(gpq, "_prune", prune)
    day = "2025-02-01T00:00:00Z/2025-02-28T23:59:59Z"
    t0, t1 = pd.Timestamp("2025-02-01", tz="UTC"), pd.Timestamp("2025-02-28T23:59:59", tz="UTC")
    cases = [("station = 'S07'", None, df.station == "S07"),
             ("station = 'S07'", day, (df.station == "S07") & df.t.between(t0, t1)),
             ("station IN ('S03', 'S04') AND n >= 40", None, df.station.isin(["S04"])),
             ("n > 250 OR n < 10", None, (df.n > 250) | (df.n < 10)),
             ("station = 'nobody'", None, df.station == "none"),
             ("v > 1.5 AND station <> 'S01'", day, (df.v > 1.5) & (df.station != "S01") & df.t.between(t0, t1))]
    for text, dt_, want in cases:
        seen.clear()
        got = cube.query("pts", filter=text, datetime=dt_, output="arrow")
        assert sorted(got.column("fid").to_pylist()) == sorted(df.id[want]), text
        if text == "station = 'S07'" and dt_ is None:
            rows = min(r for _, r in seen)  # the copy read: the one that leaves fewer rows
            if statistics:
                # (a row group between two stations spans the names between theirs: 15,360 rows here)
                assert rows < len(df) / 2
            else:
                assert rows == len(df)
    mins, maxs = be._column_stats(be._manifest(be.db.dataset("pts"), gpq.SPACE), "station")
    assert (all(v is not None for v in [*mins, *maxs]) if statistics else all(v is None for v in [*mins, *maxs]))
    cube.close()
