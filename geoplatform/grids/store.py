"""Gridded datasets in the store: Zarr v3 arrays with CF metadata, their
history in the catalog.

Layout, beside the vector data::

    grids/<name>/map.zarr       one chunk per time step and map tile: a map is a few reads
    grids/<name>/series.zarr    chunks of many steps over few cells: a point's series is a few reads

Both are CF groups (``time``, ``y``, ``x``, ``spatial_ref`` and the variables,
with ``dimension_names``), so ``xarray.open_zarr`` reads either without this
package. The catalog is the truth on what is committed: a snapshot records
how many time steps it holds, and the time of each step is kept there too.

An append writes the new steps into both copies (their arrays grow; chunk
files are replaced whole, so a reader sees the old or the new file, and both
hold the same committed steps), then commits a snapshot with the new step
count. A reader slices every array to its snapshot's steps, so what a writer
has written but not yet committed (or left behind when it died) is never
read, and the next append writes over it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoplatform.crs import resolve_crs
from geoplatform.cube.model import Snapshot
from geoplatform.cube.query import _SNAPSHOT_ID
from geoplatform.cube.times import from_us, parse_instant
from geoplatform.errors import DatasetExists, DatasetNotFound, IngestError, SnapshotNotFound
from geoplatform.grids.model import GridGeometry, GridSpec, GridVariable
from geoplatform.grids.readers import GridSource
from geoplatform.storage.catalogdb import CatalogDB, _now

if TYPE_CHECKING:
    import xarray as xr

COPIES = ("map", "series")
_OPEN: dict[tuple[str, int], Any] = {}
_OPEN_LOCK = threading.Lock()
#: the Datasets :meth:`GridStore.open` built, by store, grid, snapshot, layout and array versions
_DATASETS: dict[tuple[Any, ...], Any] = {}
#: Steps written to the copies at a time (bounded memory for a long source).
WRITE_STEPS = 32
_TIME_UNITS = "microseconds since 1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class GridRow:
    id: int
    spec: GridSpec
    geometry: GridGeometry | None


def _codecs() -> list[Any]:
    from zarr.codecs import BloscCodec, BytesCodec

    # LZ4 behind a byte shuffle: decoding speed first (a map or a series is a
    # few chunks, each decoded whole), and floats shuffle well.
    return [BytesCodec(endian="little"), BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]


class GridStore:
    """The grids of one store: their catalog rows and their Zarr copies."""

    def __init__(self, db: CatalogDB, root: Path, lock: Any) -> None:
        self._token = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]  # names graphs by store
        self.db = db
        self.root = root
        self._lock = lock  # name -> context manager: one writer per dataset name

    # catalog -------------------------------------------------------------------
    def create(self, spec: GridSpec) -> Snapshot:
        if spec.crs is not None:
            resolve_crs(spec.crs)
        iso, us = _now()
        with self.db.transaction() as con:
            if con.execute("SELECT 1 FROM grids WHERE name=?", (spec.name,)).fetchone():
                raise DatasetExists(f"grid {spec.name!r} already exists", dataset=spec.name)
            if con.execute("SELECT 1 FROM datasets WHERE name=?", (spec.name,)).fetchone():
                raise DatasetExists(f"{spec.name!r} is already the name of a vector dataset", dataset=spec.name)
            gid = con.execute("INSERT INTO grids (name, spec, created_at) VALUES (?,?,?)",
                              (spec.name, spec.model_dump_json(), iso)).lastrowid
            sid = con.execute(
                "INSERT INTO grid_snapshots (grid_id, parent_id, committed_at, committed_us, operation, summary,"
                " source_hash, steps) VALUES (?,?,?,?,?,?,?,0)", (gid, None, iso, us, "create", "{}", None)).lastrowid
        shutil.rmtree(self.root / spec.name, ignore_errors=True)  # what a dropped grid of that name left
        return Snapshot(int(sid), spec.name, None, datetime.fromisoformat(iso), "create", {})

    def row(self, name: str) -> GridRow:
        r = self.db.con.execute("SELECT id, spec, geometry FROM grids WHERE name=?", (name,)).fetchone()
        if r is None:
            raise DatasetNotFound(f"no grid named {name!r}", dataset=name)
        return GridRow(int(r[0]), GridSpec.model_validate_json(r[1]),
                       None if r[2] is None else GridGeometry.from_json(json.loads(r[2])))

    def names(self) -> list[str]:
        return [r[0] for r in self.db.con.execute("SELECT name FROM grids ORDER BY name")]

    def drop(self, name: str) -> None:
        with self._lock(name):
            with self.db.transaction() as con:
                r = con.execute("SELECT id FROM grids WHERE name=?", (name,)).fetchone()
                if r is None:
                    raise DatasetNotFound(f"no grid named {name!r}", dataset=name)
                for table in ("grid_steps", "grid_snapshots"):
                    con.execute(f"DELETE FROM {table} WHERE grid_id=?", r)
                con.execute("DELETE FROM grids WHERE id=?", r)
            shutil.rmtree(self.root / name, ignore_errors=True)

    def snapshots(self, name: str) -> list[Snapshot]:
        row = self.row(name)
        rows = self.db.con.execute(
            "SELECT id, parent_id, committed_at, operation, summary FROM grid_snapshots WHERE grid_id=? ORDER BY id",
            (row.id,)).fetchall()
        return [Snapshot(r[0], name, r[1], datetime.fromisoformat(r[2]), r[3], json.loads(r[4])) for r in rows]

    def resolve(self, name: str, as_of: Any = None) -> tuple[GridRow, int, int]:
        """The grid, the snapshot ``as_of`` names (an id, or the last one
        committed at or before a time; None: the newest) and its step count."""
        row = self.row(name)
        con = self.db.con
        if as_of is None:
            r = con.execute("SELECT id, steps FROM grid_snapshots WHERE grid_id=? ORDER BY id DESC LIMIT 1",
                            (row.id,)).fetchone()
        else:
            if isinstance(as_of, str) and _SNAPSHOT_ID.fullmatch(as_of):
                as_of = int(as_of)
            if isinstance(as_of, (int, np.integer)) and not isinstance(as_of, bool):
                r = con.execute("SELECT id, steps FROM grid_snapshots WHERE grid_id=? AND id=?",
                                (row.id, int(as_of))).fetchone()
                if r is None:
                    raise SnapshotNotFound(f"grid {name!r} has no snapshot {as_of}", dataset=name,
                                           snapshot=int(as_of))
            else:
                us = int(parse_instant(as_of).timestamp() * 1_000_000)
                r = con.execute("SELECT id, steps FROM grid_snapshots WHERE grid_id=? AND committed_us<=?"
                                " ORDER BY id DESC LIMIT 1", (row.id, us)).fetchone()
                if r is None:
                    raise SnapshotNotFound(f"grid {name!r} did not exist at {as_of}", dataset=name)
        return row, int(r[0]), int(r[1])

    def times_us(self, grid_id: int, steps: int) -> np.ndarray:
        rows = self.db.con.execute("SELECT time_us FROM grid_steps WHERE grid_id=? AND step<? ORDER BY step",
                                   (grid_id, steps)).fetchall()
        out = np.fromiter((r[0] for r in rows), np.int64, count=len(rows))
        if len(out) != steps:
            raise IngestError(f"the catalog holds {len(out)} step times for {steps} committed steps")
        return out

    # writing ---------------------------------------------------------------------
    def append(self, name: str, src: GridSource, source_hash: str | None = None, only_new: bool = False) -> Snapshot:
        """Append the steps of ``src`` (all later than the grid's last step) as one snapshot.
        With ``only_new``, the source's steps up to the grid's last one are passed over
        (a source read again with more steps); nothing new: the newest snapshot."""
        with self._lock(name):
            row, head, steps = self.resolve(name)
            if source_hash is not None:
                got = self.db.con.execute(
                    "SELECT id, parent_id, committed_at, operation, summary FROM grid_snapshots"
                    " WHERE grid_id=? AND source_hash=? ORDER BY id DESC LIMIT 1", (row.id, source_hash)).fetchone()
                if got is not None:  # the same source again: nothing new
                    return Snapshot(got[0], name, got[1], datetime.fromisoformat(got[2]), got[3], json.loads(got[4]))
            spec, geom, variables = self._check(row, src)
            t = src.times_us
            if len(t) == 0:
                raise IngestError(f"{src.description} holds no time step")
            if len(t) > 1 and not (np.diff(t) > 0).all():
                raise IngestError(f"the time steps of {src.description} are not in increasing order")
            old = self.times_us(row.id, steps)
            if only_new and len(old) and t[0] <= old[-1]:
                first = int(np.searchsorted(t, old[-1], side="right"))
                if first == len(t):
                    return self.snapshots(name)[-1]
                inner, t = src, t[first:]
                src = GridSource(inner.geometry, inner.variables, t,
                                 lambda i, j: inner.read(i + first, j + first), inner.description)
            if len(old) and t[0] <= old[-1]:
                raise IngestError(f"{src.description} starts at {from_us(int(t[0])).isoformat()}, not after the "
                                  f"grid's last step ({from_us(int(old[-1])).isoformat()}): a grid is appended to "
                                  "in time order")
            base = self.root / name
            groups = {c: self._group(base / f"{c}.zarr", c, spec, geom, variables, steps) for c in COPIES}
            n = len(t)
            for i in range(0, n, WRITE_STEPS):
                j = min(n, i + WRITE_STEPS)
                data = src.read(i, j)
                for v in variables:
                    block = np.asarray(data[v.name])
                    if block.shape != (j - i, geom.height, geom.width):
                        raise IngestError(f"{src.description}: variable {v.name!r} gave a block of {block.shape}, "
                                          f"expected {(j - i, geom.height, geom.width)}")
                    block = _cast(block, v)
                    for c in COPIES:
                        arr = groups[c][v.name]
                        if arr.shape[0] < steps + j:
                            arr.resize((steps + j, geom.height, geom.width))
                        arr[steps + i:steps + j] = block
            all_t = np.concatenate([old, t])
            for c in COPIES:
                tarr = groups[c]["time"]
                tarr.resize((len(all_t),))
                tarr[:] = all_t
            iso, us = _now()
            summary = {"steps_added": int(n), "steps": int(steps + n),
                       "first": from_us(int(t[0])).isoformat(), "last": from_us(int(t[-1])).isoformat(),
                       "source": src.description}
            with self.db.transaction() as con:
                cur = con.execute("SELECT max(id) FROM grid_snapshots WHERE grid_id=?", (row.id,)).fetchone()[0]
                if cur != head:  # the lock makes this impossible; never commit over an unseen snapshot
                    raise IngestError(f"grid {name!r} moved on during the append")
                if row.geometry is None or spec.variables != row.spec.variables:
                    con.execute("UPDATE grids SET spec=?, geometry=? WHERE id=?",
                                (spec.model_dump_json(), json.dumps(geom.to_json()), row.id))
                con.executemany("INSERT OR REPLACE INTO grid_steps (grid_id, step, time_us) VALUES (?,?,?)",
                                [(row.id, steps + k, int(v)) for k, v in enumerate(t)])
                sid = con.execute(
                    "INSERT INTO grid_snapshots (grid_id, parent_id, committed_at, committed_us, operation, summary,"
                    " source_hash, steps) VALUES (?,?,?,?,?,?,?,?)",
                    (row.id, head, iso, us, "append", json.dumps(summary), source_hash, steps + n)).lastrowid
            return Snapshot(int(sid), name, head, datetime.fromisoformat(iso), "append", summary)

    def _check(self, row: GridRow, src: GridSource) -> tuple[GridSpec, GridGeometry, tuple[GridVariable, ...]]:
        """The grid's spec, geometry and variables once ``src`` is in: the first
        ingest fixes what was not declared; later ones must match."""
        spec = row.spec
        geom = src.geometry
        if spec.crs is not None and resolve_crs(spec.crs).id != geom.crs:
            raise IngestError(f"{src.description} is in {geom.crs}; grid {spec.name!r} is declared in "
                              f"{resolve_crs(spec.crs).id}")
        if row.geometry is not None and not row.geometry.same_grid(geom):
            raise IngestError(f"{src.description} is on another grid ({geom.describe()}) than grid "
                              f"{spec.name!r} ({row.geometry.describe()})")
        got = {v.name: v for v in src.variables}
        if spec.variables is None:
            variables = src.variables
            spec = spec.model_copy(update={"variables": variables})  # (the CRS stays as declared: the grid has it)
        else:
            variables = spec.variables
            missing = [v.name for v in variables if v.name not in got]
            extra = sorted(set(got) - {v.name for v in variables})
            if missing or extra:
                raise IngestError(f"{src.description} holds variables {sorted(got)}; grid {spec.name!r} has "
                                  f"{[v.name for v in variables]}" + (f" (missing {missing})" if missing else "")
                                  + (f" (not declared: {extra})" if extra else ""))
        return spec, row.geometry or geom, variables

    def _group(self, path: Path, copy: str, spec: GridSpec, geom: GridGeometry,
               variables: tuple[GridVariable, ...], steps: int) -> Any:
        """The copy's Zarr group, made with its CF coordinates on the first append
        (made anew while no step is committed: a first append that died may have
        left half a group)."""
        import zarr

        if steps and (path / "zarr.json").exists():
            return zarr.open_group(path, mode="r+", zarr_format=3)
        pcrs = resolve_crs(geom.crs)
        g = zarr.open_group(path, mode="w", zarr_format=3)
        g.attrs.update({"Conventions": "CF-1.8", "title": spec.title or spec.name,
                        "source": spec.source or "", "geoplatform:grid": spec.name,
                        "geoplatform:copy": copy})
        geographic = pcrs.is_geographic
        for dim, values, std in (("x", geom.x, "longitude" if geographic else "projection_x_coordinate"),
                                 ("y", geom.y, "latitude" if geographic else "projection_y_coordinate")):
            a = g.create_array(dim, shape=values.shape, dtype="float64", chunks=values.shape,
                               dimension_names=(dim,), compressors=None)
            a[:] = values
            a.attrs.update({"standard_name": std, "axis": dim.upper(),
                            "units": "degrees_east" if geographic and dim == "x" else
                            "degrees_north" if geographic else _units(pcrs)})
        t = g.create_array("time", shape=(steps,), dtype="int64", chunks=(1 << 16,), dimension_names=("time",),
                           compressors=None, fill_value=0)
        t.attrs.update({"standard_name": "time", "axis": "T", "units": _TIME_UNITS, "calendar": "proleptic_gregorian"})
        sr = g.create_array("spatial_ref", shape=(), dtype="int32", compressors=None, fill_value=0)
        sr.attrs.update(_grid_mapping(pcrs, geom))
        if copy == "map":
            chunks = (1, min(spec.map_chunk[0], geom.height), min(spec.map_chunk[1], geom.width))
        else:
            c = spec.series_chunk
            chunks = (c[0], min(c[1], geom.height), min(c[2], geom.width))
        for v in variables:
            a = g.create_array(v.name, shape=(steps, geom.height, geom.width), dtype=v.dtype, chunks=chunks,
                               dimension_names=("time", "y", "x"), fill_value=v.fill_value,
                               serializer=_codecs()[0], compressors=_codecs()[1:])
            attrs = {"grid_mapping": "spatial_ref", "coordinates": "spatial_ref"}
            for k, val in (("long_name", v.title), ("units", v.units), ("standard_name", v.standard_name),
                           ("comment", v.description)):
                if val:
                    attrs[k] = val
            if v.nodata is not None:
                attrs["_FillValue"] = v.nodata
            a.attrs.update(attrs)
        return g

    # reading ---------------------------------------------------------------------
    def array(self, name: str, layout: str, variable: str) -> Any:
        """The zarr array of a variable in a copy, opened once per version of its
        metadata (an append that grows it is a new version). Slice it to a
        snapshot's step count: steps past it are not committed."""
        return self._array_version(name, layout, variable)[0]

    def _array_version(self, name: str, layout: str, variable: str) -> tuple[Any, int]:
        import zarr

        path = self.root / name / f"{layout}.zarr" / variable
        try:
            key = (str(path), (path / "zarr.json").stat().st_mtime_ns)
        except FileNotFoundError:
            raise DatasetNotFound(f"grid {name!r} has no variable {variable!r} in its {layout} copy") from None
        with _OPEN_LOCK:
            arr = _OPEN.get(key)
            if arr is None:
                if len(_OPEN) > 256:
                    _OPEN.clear()
                arr = _OPEN[key] = zarr.open_array(path, mode="r", zarr_format=3)
        return arr, key[1]

    def read(self, name: str, layout: str, variable: str, t_index: np.ndarray, rows: Any, cols: Any) -> np.ndarray:
        """Values of steps ``t_index`` (increasing) at ``rows`` x ``cols`` (ints, slices
        or integer arrays, taken orthogonally), read straight from zarr: a request's
        block without a dask graph."""
        arr = self.array(name, layout, variable)
        t = np.asarray(t_index)
        contiguous = len(t) and t[-1] - t[0] + 1 == len(t)
        if contiguous and not isinstance(rows, np.ndarray) and not isinstance(cols, np.ndarray):
            return np.asarray(arr[int(t[0]):int(t[-1]) + 1, rows, cols])
        return np.asarray(arr.get_orthogonal_selection((t, rows, cols)))

    def open(self, name: str, as_of: Any = None, layout: str = "map") -> "xr.Dataset":
        """The grid at a snapshot as a lazy, dask-backed ``xarray.Dataset``.

        A snapshot's Dataset is built once (its coordinates, indexes and dask graph
        are most of a point read's time) and each call gets a shallow copy of it:
        the caller's changes to attributes or variables stay its own."""
        if layout not in COPIES:
            raise ValueError(f"layout {layout!r} is not one of {COPIES}")
        row, sid, steps = self.resolve(name, as_of)
        versions = tuple(self._array_version(name, layout, v.name)[1] for v in row.spec.variables or ()) \
            if row.geometry is not None and steps else ()
        key = (self._token, row.id, row.spec.model_dump_json(), sid, steps, layout, versions)
        with _OPEN_LOCK:
            ds = _DATASETS.get(key)
        if ds is None:
            ds = self._build(name, row, sid, steps, layout)
            with _OPEN_LOCK:
                if len(_DATASETS) > 64:
                    _DATASETS.clear()
                _DATASETS[key] = ds
        out = ds.copy(deep=False)
        out.attrs = dict(ds.attrs)
        for v in out.variables.values():
            v.attrs = dict(v.attrs)
        return out

    def _build(self, name: str, row: GridRow, sid: int, steps: int, layout: str) -> "xr.Dataset":
        import dask.array as da
        import xarray as xr

        spec, geom = row.spec, row.geometry
        data: dict[str, Any] = {}
        times = self.times_us(row.id, steps).astype("datetime64[us]").astype("datetime64[ns]")
        if geom is None:  # declared, nothing ingested yet
            attrs = _dataset_attrs(spec, sid, steps, None)
            return xr.Dataset(attrs=attrs)
        pcrs = resolve_crs(geom.crs)
        coords = {"time": ("time", times, {"standard_name": "time", "axis": "T"}),
                  "y": ("y", geom.y, {"axis": "Y"}), "x": ("x", geom.x, {"axis": "X"}),
                  "spatial_ref": ((), np.int32(0), _grid_mapping(pcrs, geom))}
        for v in spec.variables or ():
            # the array opened once per version of its metadata, and the graph named here: dask
            # would otherwise hash the zarr array on every open (a point series' open is milliseconds)
            arr, version = self._array_version(name, layout, v.name)
            if arr.shape[0] < steps:
                raise IngestError(f"grid {name!r}: the {layout} copy of {v.name!r} holds {arr.shape[0]} steps, "
                                  f"the catalog {steps}")
            # the series copy as one dask chunk per zarr column: a point's whole series is one task
            # (one zarr read of its few chunks), not a task per chunk and a concatenation
            chunks = (arr.shape[0], *arr.chunks[1:]) if layout == "series" else arr.chunks
            token = f"grid-{self._token}-{name}-{layout}-{v.name}-{version}-{chunks}"
            lazy = da.from_zarr(arr, chunks=chunks, name=token, inline_array=True)[:steps] if steps \
                else da.zeros((0, geom.height, geom.width), v.dtype)
            attrs = {k: val for k, val in (("long_name", v.title), ("units", v.units),
                                           ("standard_name", v.standard_name), ("comment", v.description)) if val}
            attrs["grid_mapping"] = "spatial_ref"
            data[v.name] = (("time", "y", "x"), lazy, attrs)
        return xr.Dataset(data, coords=coords, attrs=_dataset_attrs(spec, sid, steps, pcrs.id))


def _cast(block: np.ndarray, v: GridVariable) -> np.ndarray:
    want = np.dtype(v.dtype)
    if block.dtype == want:
        return block
    if np.issubdtype(want, np.integer):
        if np.issubdtype(block.dtype, np.floating):
            bad = ~np.isfinite(block)
            if bad.any():
                if v.nodata is None:
                    raise IngestError(f"variable {v.name!r} is {v.dtype} without a nodata value, and the source "
                                      "has missing cells")
                block = np.where(bad, v.nodata, block)
        info = np.iinfo(want)
        if block.size and (block.min() < info.min or block.max() > info.max):
            raise IngestError(f"variable {v.name!r} has values outside the {v.dtype} range "
                              f"({block.min()} to {block.max()})")
    return block.astype(want)


def _units(pcrs: Any) -> str:
    try:
        unit = pcrs.pyproj_crs.axis_info[0].unit_name
    except (IndexError, AttributeError):
        return "m"
    return "m" if unit in ("metre", "meter") else unit


def _grid_mapping(pcrs: Any, geom: GridGeometry) -> dict[str, Any]:
    """A CF grid mapping with the WKT (``crs_wkt``, and ``spatial_ref`` and
    ``GeoTransform`` as GDAL and rioxarray read them)."""
    try:
        cf = pcrs.pyproj_crs.to_cf()
    except Exception:  # noqa: BLE001 - GCJ-02 and BD-09 have no CF form; their WKT is WGS 84's
        cf = {}
    wkt = pcrs.pyproj_crs.to_wkt()
    out = {k: (v if isinstance(v, (str, int, float)) else list(v) if isinstance(v, tuple) else str(v))
           for k, v in cf.items()}
    out.update({"crs_wkt": wkt, "spatial_ref": wkt, "geoplatform:crs": pcrs.id,
                "GeoTransform": f"{geom.x0!r} {geom.dx!r} 0.0 {geom.y0!r} 0.0 {geom.dy!r}"})
    return out


def _dataset_attrs(spec: GridSpec, sid: int, steps: int, crs: str | None) -> dict[str, Any]:
    out = {"Conventions": "CF-1.8", "title": spec.title or spec.name, "geoplatform:grid": spec.name,
           "geoplatform:snapshot": sid, "geoplatform:steps": steps}
    if crs:
        out["crs"] = crs
    for k in ("description", "licence", "source", "department", "theme"):
        v = getattr(spec, k)
        if v:
            out[k] = v
    return out


def source_hash(source: Any) -> str | None:
    """A hash of the source files' names, sizes and times (None for objects in
    memory): the same files ingested again add nothing."""
    paths: list[Path] = []
    if isinstance(source, (str, Path)) and Path(source).exists():
        p = Path(source)
        paths = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    elif isinstance(source, (list, tuple)) and all(isinstance(s, (str, Path)) for s in source):
        paths = [Path(s) for s in source]
    else:
        return None
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
