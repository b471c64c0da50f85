"""The embedded default backend: immutable GeoParquet 1.1 files and a SQLite log.

Layout of a store folder::

    catalog.sqlite                       datasets, snapshots, files, row groups, retired rows
    data/<dataset>/<partition>/<uuid>.parquet
    data/<dataset>/space/<uuid>.parquet  the space copy, where the dataset keeps one
    data/<dataset>/space-16/<uuid>.parquet   its 1/16 and 1/256 samples by feature id
    locks/<dataset>.lock                 one writer per dataset (flock; freed if the writer dies)

Each file is written by one snapshot and never changed, so a record's record
time starts at its file's snapshot. A record ends (is superseded or deleted)
by a row in ``retired`` naming its file and row: a deletion vector, so no
file is ever rewritten to end a record. Rows are sorted by the Hilbert key of
their bbox centre, then valid time, in row groups of ``row_group_size``; each
row group's bbox and time range is kept in the catalog, so a query discards
files and row groups before it opens any file.

A time-partitioned dataset may also keep a *space copy* (``space_copy`` in its
spec): every record written a second time, in the same commit, to files sorted
by space alone. A query reads whichever copy its bbox and time prune to fewer
rows, so a tile or a bbox-only page does not read a row group in every time
partition. Each record ended in one copy is ended in the other in the same
commit; the copy is used only while the two hold the same number of rows and
ended rows.

The space copy comes with two samples of itself, 1/16 and 1/256 of the features
chosen by a hash of the feature id (so a feature stays in or out of a sample
through all its versions), written and ended in the same commits. A scan that
asks for a sample (``ScanRequest.sample_min_rows``: low-zoom map tiles, as
tippecanoe drops a fixed share of points per zoom level) reads the sparsest one
that still holds that many rows.

Each commit writes its own space-copy files, so after many small commits a
tile reads a row group or two in every one of them. ``compact`` rewrites the
space copy and its samples as one Hilbert-sorted run (as Delta's OPTIMIZE or
Iceberg's rewrite_data_files do): every row is kept, ended ones too, with its
record start in a ``_record_from`` column, and the rows it ended are ended again
at their new places with their own snapshots, so a query as of any snapshot
reads exactly what it read before. The files it replaces stay on disk for
``compact_grace_s`` (a reader in another process may still hold a manifest
that names them) and are deleted by a later writer.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from geoplatform.crs import resolve_crs
from geoplatform.cube.backend import (
    SAMPLE_KEY, CommitResult, DatasetStats, DatasetWriter, ScanRequest, StorageBackend,
)
from geoplatform.cube.model import DatasetSpec, Snapshot
from geoplatform.cube.times import MAX_US, MIN_US
from geoplatform.errors import CommitConflict, StoreError
from geoplatform.index import HilbertCurve2D, TimeBinning
from geoplatform.settings import Settings
from geoplatform.storage import records
from geoplatform.storage.catalogdb import CatalogDB, DatasetRow, _at, _now

_TS = pa.timestamp("us", tz="UTC")

#: The partition label of the space copy's files (time labels are dates, "open" or "all").
SPACE = "space"
#: The space copy's samples: 1/k of the features, by feature-id hash, labelled "space-k".
SAMPLES = (16, 256)
#: A compacted file's per-row record start (a snapshot id); other files start at their snapshot.
RECORD_FROM = "_record_from"


def sample_label(k: int) -> str:
    return f"{SPACE}-{k}"


def fid_hash(fids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A stable 64-bit hash of each feature id (pandas' SipHash with its fixed key)."""
    import pandas as pd

    return pd.util.hash_array(np.asarray(fids.to_numpy(zero_copy_only=False)))


@dataclass
class _Manifest:
    """The row groups of a dataset's files, as arrays, for pruning in numpy."""

    head: int
    gen: int  # the layout generation it was read at (a compaction moves it on)
    file_ids: np.ndarray
    file_paths: dict[int, str]
    file_snapshot: dict[int, int]
    rg_file: np.ndarray
    rg_index: np.ndarray
    rg_offset: np.ndarray
    rg_rows: np.ndarray
    rg_snapshot: np.ndarray
    rg_bounds: np.ndarray  # (n, 4)
    rg_t: np.ndarray  # (n, 2)
    retired_file: np.ndarray
    retired_row: np.ndarray
    retired_snapshot: np.ndarray
    #: per column: the row groups' min and max values (object arrays, None where unknown)
    col_stats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def without_retirements(self) -> "_Manifest":
        """The same files with every row visible: for history, ended rows included."""
        none = np.empty(0, np.int64)
        return _Manifest(**{**self.__dict__, "retired_file": none, "retired_row": none, "retired_snapshot": none})


@dataclass
class _FirstPhase:
    """What the first phase of a selective read of one file found."""

    pick: np.ndarray  # the manifest's row groups read, all of this file
    table: pa.Table  # the columns filtered on, physical
    mask: np.ndarray  # rows that meet the filters so far
    record_from: pa.ChunkedArray | None  # a compacted file's per-row record starts
    rest: list[str]  # the physical columns left for the second phase
    filter_table: pa.Table | None  # the attribute filter's columns, logical


def _sort_order(part: np.ndarray, keys: np.ndarray, vf: np.ndarray) -> np.ndarray:
    """Order by partition, then Hilbert key, then valid time.

    One stable sort on a packed (partition rank, key) word after a sort by
    time, skipped when the input already comes in time order (most feeds do).
    """
    by_time = None if np.all(vf[1:] >= vf[:-1]) else np.argsort(vf, kind="stable")
    # Partition ids are consecutive bin numbers (the open partition sorts first).
    opened = part == np.iinfo(np.int64).min
    low = part[~opened].min() if (~opened).any() else 0
    ranks = np.where(opened, 0, part - low + 1).astype(np.uint64)
    bits = int(keys.max()).bit_length() if len(keys) else 0
    packed = (ranks << np.uint64(bits)) | keys if int(ranks.max(initial=0)).bit_length() + bits <= 64 else None
    if packed is None:
        return np.lexsort((vf, keys, part))
    if by_time is None:
        return np.argsort(packed, kind="stable")
    return by_time[np.argsort(packed[by_time], kind="stable")]


#: A read of more row groups than this decodes its columns on Arrow's threads; a
#: smaller one (a tile, a page) pays more to hand them out than it gains.
_THREADED_GROUPS = 8
#: Reads of at most this many row groups go through the decoded row-group cache.
_CACHED_READ_GROUPS = 64


def _prune(m: _Manifest, request: ScanRequest,
           stats: Callable[[_Manifest, str], tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """The row groups of ``m`` that may hold a match of ``request`` (by snapshot,
    bbox and time, and by the attribute ranges given ``stats``: a column's
    per-row-group min and max, ``None`` where unknown)."""
    mask = m.rg_snapshot <= request.snapshot
    if stats is not None:
        for col, lo, hi in request.ranges:
            mins, maxs = stats(m, col)
            known = np.not_equal(mins, None) & np.not_equal(maxs, None)
            if not known.any():
                continue
            try:
                if lo is not None:
                    mask &= ~known | (np.where(known, maxs, lo) >= lo)
                if hi is not None:
                    mask &= ~known | (np.where(known, mins, hi) <= hi)
            except TypeError:  # statistics of another type than the bound (a changed column): no pruning
                continue
    if request.bbox is not None:
        x0, y0, x1, y1 = request.bbox
        b = m.rg_bounds
        mask &= (b[:, 2] >= x0) & (b[:, 0] <= x1) & (b[:, 3] >= y0) & (b[:, 1] <= y1)
    if request.t_min != MIN_US or request.t_max != MAX_US:
        mask &= (m.rg_t[:, 1] >= request.t_min) & (m.rg_t[:, 0] <= request.t_max)
    return np.flatnonzero(mask)


def _filters_first(request: ScanRequest, columns: list[str]) -> bool:
    """Whether the attribute filter can be evaluated on its own columns before the others are read."""
    return (request.arrow_filter is not None and bool(request.filter_columns)
            and set(request.filter_columns) <= set(columns))


def _positions(m: _Manifest, pick: np.ndarray) -> np.ndarray:
    """Row numbers within their file of the rows of row groups ``pick``."""
    return np.concatenate([np.arange(o, o + n) for o, n in zip(m.rg_offset[pick], m.rg_rows[pick])])


def _insert_files(con: Any, dataset_id: int, files: list[dict[str, Any]], snapshots: list[int]) -> list[int]:
    """Catalog rows of written files and their row groups; returns the files' ids."""
    ids = []
    for f, snap in zip(files, snapshots):
        ids.append(con.execute(
            "INSERT INTO files (dataset_id, snapshot_id, path, partition, rows, bytes,"
            " xmin, ymin, xmax, ymax, tmin, tmax) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (dataset_id, snap, f["path"], f["partition"], f["rows"], f["bytes"], *f["bounds"], *f["t"])).lastrowid)
        con.executemany("INSERT INTO row_groups VALUES (?,?,?,?,?,?,?,?,?,?)",
                        [(ids[-1], *rg) for rg in f["row_groups"]])
    return ids


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LazyFile:
    """A Parquet file opened on its first read: a read that the row-group cache
    answers opens none (opening cost a cached z16 tile a tenth of its time)."""

    def __init__(self, path: Path, metadata: pq.FileMetaData) -> None:
        self.path = path
        self.metadata = metadata
        self._pf: pq.ParquetFile | None = None

    def read_row_groups(self, groups: list[int], columns: list[str], use_threads: bool) -> pa.Table:
        if self._pf is None:
            # No pre-buffering: it coalesces reads for object stores, and on a local
            # file it cost a small read (three row groups) about 40% more.
            self._pf = pq.ParquetFile(self.path, metadata=self.metadata, pre_buffer=False)
        return self._pf.read_row_groups(groups, columns=columns, use_threads=use_threads)


class _GroupCache:
    """Decoded row groups, least recently used out first, up to a byte budget.

    Files are never changed once written, so an entry never goes stale: its
    key is the file, the row group and the columns read. Only small reads (a
    tile, a page: at most ``_CACHED_READ_GROUPS`` row groups) use it, so a scan
    of a whole dataset neither pays for it nor flushes what the maps keep
    asking for. A row group read with others is copied out of their shared
    buffers before it is kept, so evicting it frees what it is charged.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._items: OrderedDict[tuple[str, int, tuple[str, ...]], pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, pf: _LazyFile, rel: str, sizes: dict[int, int], groups: list[int], columns: list[str],
             use_threads: bool) -> pa.Table:
        cols = tuple(columns)
        got: dict[int, pa.Table] = {}
        with self._lock:
            for g in groups:
                t = self._items.get((rel, g, cols))
                if t is not None:
                    self._items.move_to_end((rel, g, cols))
                    got[g] = t
        missing = [g for g in groups if g not in got]
        if missing:
            t = pf.read_row_groups(missing, columns=columns, use_threads=use_threads)
            start = 0
            with self._lock:
                for g in missing:
                    part = got[g] = t.slice(start, sizes[g])
                    start += sizes[g]
                    key = (rel, g, cols)
                    if key not in self._items:
                        own = part if len(missing) == 1 else part.take(pa.array(np.arange(len(part))))
                        self._items[key] = own
                        self.used += own.nbytes
                while self.used > self.budget and self._items:
                    _, old = self._items.popitem(last=False)
                    self.used -= old.nbytes
            if len(missing) == len(groups):
                return t
        return pa.concat_tables([got[g] for g in groups])


class GeoParquetBackend(StorageBackend):
    """Datasets as GeoParquet files in a folder; no server needed."""

    name = "geoparquet"

    def __init__(self, location: str, settings: Settings) -> None:
        super().__init__(location, settings)
        self.root = Path(location)
        try:
            (self.root / "data").mkdir(parents=True, exist_ok=True)
            (self.root / "locks").mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {self.root}: {exc}") from exc
        self.db = CatalogDB(self.root / "catalog.sqlite", settings.lock_timeout_s)
        self._manifests: dict[tuple[int, bool], _Manifest] = {}
        self._metadata: dict[str, pq.FileMetaData] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="gp-read")
        self._groups = _GroupCache(settings.read_cache_bytes) if settings.read_cache_bytes > 0 else None

    # datasets ---------------------------------------------------------------
    def create_dataset(self, spec: DatasetSpec, committed_at: datetime | None = None) -> Snapshot:
        crs = resolve_crs(spec.storage_crs)
        return self.db.create_dataset(spec, tuple(float(v) for v in crs.bounds_in_crs), committed_at)

    def consistent(self) -> AbstractContextManager[Any]:
        return self.db.reading()

    def get_spec(self, name: str) -> DatasetSpec:
        return self.db.dataset(name).spec

    def list_specs(self) -> list[DatasetSpec]:
        return [d.spec for d in self.db.datasets()]

    def drop_dataset(self, name: str) -> None:
        with self._dataset_lock(name):
            paths = self.db.drop_dataset(name)
            for p in paths:
                (self.root / p).unlink(missing_ok=True)
            self._sweep(name, keep=set())
        with self._lock:
            self._manifests.clear()

    # snapshots --------------------------------------------------------------
    def snapshots(self, name: str) -> list[Snapshot]:
        return self.db.snapshots(self.db.dataset(name))

    def head(self, name: str) -> int:
        return self.db.head(self.db.dataset(name).id)

    def snapshot_at(self, name: str, when: datetime) -> int:
        return self.db.snapshot_at(self.db.dataset(name), int(when.timestamp() * 1_000_000))

    def check_snapshot(self, name: str, snapshot: int) -> int:
        return self.db.check_snapshot(self.db.dataset(name), snapshot)

    # writing ----------------------------------------------------------------
    @contextmanager
    def _dataset_lock(self, name: str) -> Iterator[None]:
        path = self.root / "locks" / f"{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.settings.lock_timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(f"dataset {name!r} is locked by another writer") from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextmanager
    def writer(self, name: str) -> Iterator[DatasetWriter]:
        self.db.dataset(name)  # not found before taking a lock file
        with self._dataset_lock(name):
            ds = self.db.dataset(name)
            known = {r[0] for r in self.db.con.execute(
                "SELECT path FROM files WHERE dataset_id=?", (ds.id,))}
            self._sweep(name, keep=known)
            yield _Writer(self, ds)

    def _sweep(self, name: str, keep: set[str]) -> None:
        """Delete files no committed snapshot names: leftovers of a killed writer.

        Only called with the dataset's write lock held, so no live writer's
        uncommitted files can be here.
        """
        base = self.root / "data" / name
        if not base.exists():
            return
        keep = keep | self.db.garbage(name, self.settings.compact_grace_s)
        for path in base.rglob("*"):
            if path.is_file() and path.relative_to(self.root).as_posix() not in keep:
                path.unlink(missing_ok=True)

    def _sort_keys(self, ds: DatasetRow, table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The rows' (4, n) bboxes, the Hilbert keys of their centres, and valid_from /
        valid_to in microseconds (open ends as the extremes): what files are sorted by."""
        curve = HilbertCurve2D(ds.key_bounds, order=self.settings.hilbert_order)
        bbox = records.bbox_arrays(table)
        keys = curve.index((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0)
        return (bbox, keys, records.times_us(table.column("valid_from"), MIN_US),
                records.times_us(table.column("valid_to"), MAX_US))

    def _write_files(self, ds: DatasetRow, table: pa.Table) -> list[dict[str, Any]]:
        """Sort, partition and write ``table`` (and its space copy, where the
        dataset keeps one); returns the catalog rows of the files."""
        spec = ds.spec
        bins = TimeBinning(spec.time_partition)
        bbox, keys, vf, vt = self._sort_keys(ds, table)
        part = np.zeros(len(table), np.int64)
        if spec.time_partition != "none":
            # An open start (null valid_from) has no bin: it goes to the "open" partition.
            opened = vf == MIN_US
            part[opened] = np.iinfo(np.int64).min
            part[~opened] = bins.bin_ids(vf[~opened])
        jobs = []  # (label, row order of the file)
        # Each subset of the rows (None: all of them) is sorted and cut into files
        # on its own: the time partitions, then the space copy and its samples.
        subsets: list[tuple[np.ndarray | None, np.ndarray, Any]] = [
            (None, part, lambda p: "open" if p == np.iinfo(np.int64).min else bins.bin_label(p))]
        if spec.space_copy:
            subsets.append((None, np.zeros(len(table), np.int64), lambda p: SPACE))
            h = fid_hash(table.column("fid"))
            for k in SAMPLES:
                rows = np.flatnonzero(h % np.uint64(k) == 0)
                if len(rows):
                    subsets.append((rows, np.zeros(len(rows), np.int64), lambda p, k=k: sample_label(k)))
        for rows, part, label_of in subsets:
            local = _sort_order(part, keys, vf) if rows is None else _sort_order(part, keys[rows], vf[rows])
            order = local if rows is None else rows[local]
            part = part[local]
            cuts = np.flatnonzero(np.diff(part)) + 1
            starts = np.concatenate([[0], cuts])
            ends = np.concatenate([cuts, [len(order)]])
            for s, e in zip(starts, ends):
                label = label_of(int(part[s]))
                for fs in range(s, e, self.settings.max_file_rows):
                    jobs.append((label, order[fs:min(e, fs + self.settings.max_file_rows)]))
        # Parquet encoding releases the GIL: write partitions side by side.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            files = list(pool.map(
                lambda j: self._write_one(ds, j[0], table.take(pa.array(j[1])), bbox[:, j[1]], vf[j[1]], vt[j[1]]),
                jobs))
        if self.settings.fsync:
            # The renames and new partition folders too, or a committed snapshot
            # could name a file whose directory entry a power cut lost.
            base = self.root / "data" / ds.name
            for d in sorted({base / label for label, _ in jobs} | {base, base.parent}):
                _fsync(d)
        return files

    def _write_one(self, ds: DatasetRow, label: str, table: pa.Table, bbox: np.ndarray,
                   vf: np.ndarray, vt: np.ndarray) -> dict[str, Any]:
        rel = Path("data") / ds.name / label / f"{uuid.uuid4().hex}.parquet"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # The 'geo' key describes this file (its own bbox and geometry types). It is
        # added to the footer directly: with store_schema=False, pyarrow drops the
        # table's schema metadata.
        geo_meta = records.geo_metadata(ds.spec, table, bbox)
        tmp = path.with_suffix(".parquet.tmp")
        space = label.startswith(SPACE)
        rgs = self.settings.space_row_group_size if space else self.settings.row_group_size
        codec = self.settings.space_compression if space else "zstd"
        strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
        # min/max of the attributes too: a filter on one skips the row groups outside its range
        ranged = [f.name for f in ds.spec.fields if f.type in ("string", "integer", "number")]
        with pq.ParquetWriter(tmp, table.schema, compression=codec,
                              compression_level=self.settings.compression_level if codec == "zstd" else None,
                              use_dictionary=strings,
                              write_statistics=["fid", "version", "valid_from", "valid_to", *ranged],
                              store_schema=False) as out:
            out.write_table(table, row_group_size=rgs)
            out.add_key_value_metadata({b"geo": geo_meta})
        if self.settings.fsync:
            _fsync(tmp)
        os.replace(tmp, path)
        n = len(table)
        offsets = np.arange(0, n, rgs)
        vt_fin = np.where(vt == MAX_US, MAX_US, vt)
        row_groups = [
            (int(i), int(o), int(min(rgs, n - o)),
             float(bbox[0, o:o + rgs].min()), float(bbox[1, o:o + rgs].min()),
             float(bbox[2, o:o + rgs].max()), float(bbox[3, o:o + rgs].max()),
             int(vf[o:o + rgs].min()), int(vt_fin[o:o + rgs].max()))
            for i, o in enumerate(offsets)
        ]
        return {
            "path": rel.as_posix(), "partition": label, "rows": n, "bytes": path.stat().st_size,
            "bounds": (float(bbox[0].min()), float(bbox[1].min()), float(bbox[2].max()), float(bbox[3].max())),
            "t": (int(vf.min()), int(vt_fin.max())), "row_groups": row_groups,
        }

    def _commit(self, ds: DatasetRow, parent: int, files: list[dict[str, Any]], retire: np.ndarray,
                operation: str, summary: dict[str, Any], source_hash: str | None,
                spec: DatasetSpec | None, committed_at: datetime | None = None) -> Snapshot:
        iso, us = _now() if committed_at is None else _at(committed_at)
        with self.db.transaction() as con:
            head = self.db.head(ds.id)
            if head != parent:
                raise CommitConflict(
                    f"dataset {ds.name!r} moved from snapshot {parent} to {head} during this write",
                    dataset=ds.name)
            sid = self.db._insert_snapshot(con, ds.id, parent, iso, us, operation, summary, source_hash)
            _insert_files(con, ds.id, files, [sid] * len(files))
            if len(retire):
                con.executemany(
                    "INSERT INTO retired (file_id, row, snapshot_id) VALUES (?,?,?)",
                    [(int(loc >> 32), int(loc & 0xFFFFFFFF), sid) for loc in retire])
            if spec is not None:
                con.execute("UPDATE datasets SET spec=? WHERE id=?",
                            (spec.model_dump_json(by_alias=True), ds.id))
        return Snapshot(sid, ds.name, parent, datetime.fromisoformat(iso), operation, summary)

    # compaction -------------------------------------------------------------
    def compact(self, name: str) -> dict[str, Any] | None:
        """Rewrite the space copy and each sample of it that lies in more files
        than its rows need as one Hilbert-sorted run. No snapshot: what any
        snapshot reads is unchanged (see the module docstring); the layout
        generation moves on, so every reader rebuilds its manifest. Returns,
        per layout rewritten, its files before and after and its rows; None
        when nothing needed it (or the dataset keeps no space copy)."""
        with self.writer(name) as w:
            ds, parent = w.ds, w.parent
            if not ds.spec.space_copy:
                return None
            jobs = []
            for layout in (SPACE, *(sample_label(k) for k in SAMPLES)):
                m = self._manifest(ds, layout)
                rows = int(m.rg_rows.sum())
                if len(m.file_ids) > max(1, -(-rows // self.settings.max_file_rows)):
                    jobs.append((layout, m, *self._rewrite_layout(ds, layout, m)))
            if not jobs:
                return None
            _, us = _now()
            with self.db.transaction() as con:
                if self.db.state(ds.id) != (parent, jobs[0][1].gen):
                    raise CommitConflict(f"dataset {name!r} changed during its compaction", dataset=name)
                con.execute("INSERT INTO layouts (dataset_id, gen) VALUES (?, 1)"
                            " ON CONFLICT (dataset_id) DO UPDATE SET gen=gen+1", (ds.id,))
                for layout, m, files, retired in jobs:
                    old = [(int(f),) for f in m.file_ids]
                    con.executemany("DELETE FROM retired WHERE file_id=?", old)
                    con.executemany("DELETE FROM row_groups WHERE file_id=?", old)
                    con.executemany("DELETE FROM files WHERE id=?", old)
                    con.executemany("INSERT OR REPLACE INTO garbage (path, dataset_id, since_us) VALUES (?,?,?)",
                                    [(m.file_paths[int(f)], ds.id, us) for f in m.file_ids])
                    # a compacted file is listed under the earliest snapshot of its rows
                    new_ids = _insert_files(con, ds.id, files, [f["snapshot"] for f in files])
                    file_no, row, snap = retired
                    con.executemany("INSERT INTO retired (file_id, row, snapshot_id) VALUES (?,?,?)",
                                    [(new_ids[int(a)], int(b), int(c)) for a, b, c in zip(file_no, row, snap)])
            with self._lock:
                self._manifests.clear()
            return {layout: {"files_before": len(m.file_ids), "files_after": len(files),
                             "rows": int(m.rg_rows.sum())} for layout, m, files, _ in jobs}

    def _rewrite_layout(self, ds: DatasetRow, layout: str, m: _Manifest
                        ) -> tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every row of ``layout``'s files, ended ones too, written sorted by
        Hilbert key and valid time with its record start; returns the new
        files' catalog rows and where each ended row now is (file number in
        that list, row, the snapshot that ended it)."""
        parts, rec, old_loc = [], [], []
        for f in m.file_ids:
            rel = m.file_paths[int(f)]
            t = pq.read_table(self.root / rel)
            if RECORD_FROM in t.column_names:
                rec.append(t.column(RECORD_FROM).to_numpy())
                t = t.drop_columns([RECORD_FROM])
            else:
                rec.append(np.full(len(t), m.file_snapshot[int(f)], np.int64))
            old_loc.append((np.int64(f) << 32) | np.arange(len(t), dtype=np.int64))
            parts.append(t.replace_schema_metadata(None))
        table = pa.concat_tables(parts, promote_options="default")
        recs, locs = np.concatenate(rec), np.concatenate(old_loc)
        bbox, keys, vf, vt = self._sort_keys(ds, table)
        order = _sort_order(np.zeros(len(table), np.int64), keys, vf)
        table = table.take(pa.array(order)).append_column(RECORD_FROM, pa.array(recs[order], pa.int64()))
        bbox, vf, vt, recs, locs = bbox[:, order], vf[order], vt[order], recs[order], locs[order]
        step = self.settings.max_file_rows
        files = []
        for s in range(0, len(table), step):
            e = min(len(table), s + step)
            f = self._write_one(ds, layout, table.slice(s, e - s), bbox[:, s:e], vf[s:e], vt[s:e])
            f["snapshot"] = int(recs[s:e].min())  # the manifest takes a file from its first row's snapshot
            files.append(f)
        if self.settings.fsync:
            _fsync(self.root / "data" / ds.name / layout)
        # the ended rows, found at their new places
        by_loc = np.argsort(locs)
        old = (m.retired_file << 32) | m.retired_row
        at = by_loc[np.searchsorted(locs, old, sorter=by_loc)]
        if len(old) and not np.array_equal(locs[at], old):
            raise StoreError(f"dataset {ds.name!r}: the {layout} copy does not hold the rows its catalog ends; "
                             "nothing was compacted")
        return files, (at // step, at % step, m.retired_snapshot)

    # reading ----------------------------------------------------------------
    def _manifest(self, ds: DatasetRow, layout: str = "") -> _Manifest:
        """The row groups of the dataset's files at its head: the time-partitioned
        files, or those of ``layout`` (the space copy, ``"space"``, or one of its
        samples, ``"space-16"``...)."""
        state = self.db.state(ds.id)
        key = (ds.id, layout)
        with self._lock:
            cached = self._manifests.get(key)
            if cached is not None and (cached.head, cached.gen) == state:
                return cached
        which, label = ("= ?", layout) if layout else ("NOT LIKE ?", SPACE + "%")
        # one read transaction: a compaction swaps files, and the three lists must agree
        with self.db.reading() as con:
            head, gen = self.db.state(ds.id)
            files = con.execute(f"SELECT id, path, snapshot_id FROM files WHERE dataset_id=? AND snapshot_id<=?"
                                f" AND partition {which}", (ds.id, head, label)).fetchall()
            rgs = con.execute(
                "SELECT r.file_id, r.rg, r.row_offset, r.rows, f.snapshot_id, r.xmin, r.ymin, r.xmax, r.ymax,"
                " r.tmin, r.tmax FROM row_groups r JOIN files f ON f.id=r.file_id"
                f" WHERE f.dataset_id=? AND f.snapshot_id<=? AND f.partition {which} ORDER BY r.file_id, r.rg",
                (ds.id, head, label)).fetchall()
            ret = con.execute(
                "SELECT r.file_id, r.row, r.snapshot_id FROM retired r JOIN files f ON f.id=r.file_id"
                f" WHERE f.dataset_id=? AND r.snapshot_id<=? AND f.partition {which} ORDER BY r.file_id, r.row",
                (ds.id, head, label)).fetchall()
        arr = np.array(rgs, dtype=object).reshape(-1, 11)
        reta = np.array(ret, dtype=np.int64).reshape(-1, 3)
        m = _Manifest(
            head=head, gen=gen,
            file_ids=np.array([f[0] for f in files], np.int64),
            file_paths={f[0]: f[1] for f in files},
            file_snapshot={f[0]: f[2] for f in files},
            rg_file=arr[:, 0].astype(np.int64), rg_index=arr[:, 1].astype(np.int64),
            rg_offset=arr[:, 2].astype(np.int64), rg_rows=arr[:, 3].astype(np.int64),
            rg_snapshot=arr[:, 4].astype(np.int64), rg_bounds=arr[:, 5:9].astype(np.float64),
            rg_t=arr[:, 9:11].astype(np.int64),
            retired_file=reta[:, 0], retired_row=reta[:, 1], retired_snapshot=reta[:, 2],
        )
        with self._lock:
            self._manifests[key] = m
        return m

    def _space_manifest(self, ds: DatasetRow, m: _Manifest) -> _Manifest | None:
        """The space copy's manifest, if the dataset keeps one that holds
        exactly the records of ``m`` (same rows, same ended rows)."""
        if not ds.spec.space_copy:
            return None
        sm = self._manifest(ds, SPACE)
        if sm.head != m.head or int(sm.rg_rows.sum()) != int(m.rg_rows.sum()) \
                or len(sm.retired_row) != len(m.retired_row):
            return None
        return sm

    def _column_stats(self, m: _Manifest, col: str) -> tuple[np.ndarray, np.ndarray]:
        """Each row group's min and max of ``col`` from the Parquet footers
        (``None`` where a file keeps no statistics of it, or all its values are null)."""
        got = m.col_stats.get(col)
        if got is not None:
            return got
        per_file: dict[int, tuple[list[Any], list[Any]]] = {}
        mins = np.empty(len(m.rg_file), object)
        maxs = np.empty(len(m.rg_file), object)
        for k, (f, i) in enumerate(zip(m.rg_file.tolist(), m.rg_index.tolist())):
            if f not in per_file:
                md = self._file_metadata(m.file_paths[f])
                lo: list[Any] = []
                hi: list[Any] = []
                names = [md.schema.column(j).path for j in range(md.num_columns)]
                j = names.index(col) if col in names else -1
                for g in range(md.num_row_groups):
                    st = md.row_group(g).column(j).statistics if j >= 0 else None
                    ok = st is not None and st.has_min_max
                    lo.append(st.min if ok else None)
                    hi.append(st.max if ok else None)
                per_file[f] = (lo, hi)
            mins[k], maxs[k] = per_file[f][0][i], per_file[f][1][i]
        m.col_stats[col] = (mins, maxs)
        return mins, maxs

    def _file_metadata(self, rel: str) -> pq.FileMetaData:
        md = self._metadata.get(rel)
        if md is None:
            md = pq.read_metadata(self.root / rel)
            self._metadata[rel] = md
        return md

    def _read_groups(self, pf: _LazyFile, rel: str, m: _Manifest, pick: np.ndarray,
                     columns: list[str]) -> pa.Table:
        """The manifest's row groups ``pick`` (all of one file), through the decoded
        row-group cache when they are few."""
        groups = [int(i) for i in m.rg_index[pick]]
        threads = len(groups) > _THREADED_GROUPS
        if self._groups is None or len(groups) > _CACHED_READ_GROUPS:
            return pf.read_row_groups(groups, columns=columns, use_threads=threads)
        return self._groups.read(pf, rel, dict(zip(groups, m.rg_rows[pick].tolist())), groups, columns, threads)

    def _per_row_record_from(self, rel: str) -> bool:
        """Whether a file keeps each row's record start (a compacted file)."""
        return RECORD_FROM in self._file_metadata(rel).schema.names

    def _read(self, spec: DatasetSpec, m: _Manifest, sel: np.ndarray, columns: list[str], request: ScanRequest,
              with_positions: bool) -> tuple[list[tuple[int, pa.Table]], bool]:
        """Read the selected row groups, file by file, adding ``_loc`` where needed;
        also whether the attribute filter was applied (then the rows returned are
        exactly the matches).

        With a bbox, time or attribute filter the read has two phases: the
        columns filtered on, of every selected row group, first; then the other
        columns of only the row groups that hold a match. Decoding dominates a
        small query, and a row group whose bbox meets the query box often holds
        no row that does. The attribute filter is evaluated once over the first
        phase of every file (its fixed cost is per call, not per row).
        """
        files = m.rg_file[sel]
        by_filter = _filters_first(request, columns)
        selective = (request.bbox is not None or request.t_min != MIN_US or request.t_max != MAX_US
                     or request.fids is not None or by_filter)
        ids = [int(f) for f in np.unique(files)]

        def each(these: list[int], fn: Callable[[int], Any]) -> list[Any]:
            # files decode side by side (pyarrow releases the GIL); order is kept
            return [fn(f) for f in these] if len(these) <= 1 else list(self._pool.map(fn, these))

        def locate(fid: int, t: pa.Table, pos: np.ndarray | None) -> tuple[int, pa.Table]:
            if pos is not None:
                retired_here = m.retired_file == fid
                loc = (np.int64(fid) << 32) | pos
                if retired_here.any():
                    gone = m.retired_row[retired_here & (m.retired_snapshot <= request.snapshot)]
                    keep = ~np.isin(pos, gone)
                    if not keep.all():
                        t = t.filter(pa.array(keep))
                        loc = loc[keep]
                t = t.append_column("_loc", pa.array(loc, pa.int64()))
            return int(m.file_snapshot[fid]), t

        def need_pos(fid: int) -> bool:
            return with_positions or bool((m.retired_file == fid).any())

        def lazy(fid: int) -> tuple[str, _LazyFile]:
            rel = m.file_paths[fid]
            return rel, _LazyFile(self.root / rel, self._file_metadata(rel))

        def whole(fid: int) -> tuple[int, pa.Table]:
            rel, pf = lazy(fid)
            pick = sel[files == fid]
            t = self._read_groups(pf, rel, m, pick, records.physical_columns(spec, columns))
            return locate(fid, records.logical_table(spec, t, columns), _positions(m, pick) if need_pos(fid) else None)

        # a compacted file is read in two phases even unfiltered: its rows' record starts come first
        two = ids if selective else [f for f in ids if self._per_row_record_from(m.file_paths[f])]
        firsts = dict(zip(two, each(two, lambda fid: self._phase_one(spec, *lazy(fid), m, sel[files == fid],
                                                                     columns, request, by_filter))))
        applied = False
        if by_filter:
            keyed = [f for f in firsts.values() if f.mask.any()]
            try:
                mask = records.filter_mask(pa.concat_tables([f.filter_table for f in keyed]),
                                           request.arrow_filter, request.equals) if keyed else np.zeros(0, bool)
                applied = True
            except (KeyError, pa.ArrowException):
                pass  # a column the filter reads is derived from one not read yet: the scan filters later
            if applied:
                at = 0
                for f in keyed:
                    n = len(f.mask)
                    f.mask &= mask[at:at + n]
                    at += n

        def second(fid: int) -> tuple[int, pa.Table]:
            if fid not in firsts:
                return whole(fid)
            return locate(fid, *self._phase_two(spec, *lazy(fid), m, columns, firsts[fid], need_pos(fid)))

        parts = each(ids, second)
        return [(s, t) for s, t in parts if len(t)], applied

    def _phase_one(self, spec: DatasetSpec, rel: str, pf: _LazyFile, m: _Manifest, pick: np.ndarray,
                   columns: list[str], request: ScanRequest, by_filter: bool) -> "_FirstPhase":
        """The bbox, time, fid (and attribute filter) columns of the row groups
        ``pick``, and which rows meet the bbox, time and fid tests. A compacted
        file's ``_record_from`` is read too: a row recorded after the snapshot
        asked for is not there yet; it comes out as ``record_from``."""
        per_row = self._per_row_record_from(rel)
        phys = records.physical_columns(spec, columns)
        # the first phase decodes what this request filters on, no more
        wanted = {"bbox"} if request.bbox is not None else set()
        if request.t_max != MAX_US or request.t_min != MIN_US:
            wanted |= {"valid_from", "valid_to"}
        if request.fids is not None:
            wanted.add("fid")
        if by_filter:
            wanted |= set(request.filter_columns or ())
        keys = [c for c in phys if c.split(".")[0] in wanted]
        t1 = self._read_groups(pf, rel, m, pick, keys + [RECORD_FROM] * per_row)
        mask = records.row_mask(t1, request)
        rec = None
        if per_row:
            rec = t1.column(RECORD_FROM)
            t1 = t1.drop_columns([RECORD_FROM])
            mask &= rec.to_numpy() <= request.snapshot
        filter_table = None
        if by_filter:
            filter_table = records.logical_table(spec, t1, [c for c in columns if c in wanted])
        return _FirstPhase(pick, t1, mask, rec, [c for c in phys if c not in keys], filter_table)

    def _phase_two(self, spec: DatasetSpec, rel: str, pf: _LazyFile, m: _Manifest, columns: list[str],
                   first: "_FirstPhase", need_pos: bool) -> tuple[pa.Table, np.ndarray | None]:
        """The other columns of the row groups with a match, joined to the first phase's."""
        pick, mask, t1 = first.pick, first.mask, first.table
        sizes = m.rg_rows[pick]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        hit = np.add.reduceat(mask, starts) > 0 if len(mask) else np.zeros(0, bool)
        if not hit.any():
            empty = records.storage_schema(spec, columns).empty_table()
            return empty, (np.empty(0, np.int64) if need_pos else None)
        rows = np.concatenate([np.arange(a, a + n) for a, n, h in zip(starts, sizes, hit) if h])
        keep = mask[rows]
        taken = pa.array(rows[keep])
        t1 = t1.take(taken)
        if first.rest:
            t2 = self._read_groups(pf, rel, m, pick[hit], first.rest)
            t2 = t2.filter(pa.array(keep))
            if not t1.num_columns:  # nothing but the record start was filtered on
                t1 = t2
            else:
                for name in t2.column_names:
                    t1 = t1.append_column(name, t2.column(name))
        pos = _positions(m, pick)[rows[keep]] if need_pos else None
        out = records.logical_table(spec, t1, columns)
        if first.record_from is not None:
            out = out.append_column("record_from", first.record_from.take(taken))
        return out, pos

    def scan(self, name: str, request: ScanRequest) -> pa.Table:
        ds = self.db.dataset(name)
        m = self._manifest(ds)
        sm = self._space_manifest(ds, m) if request.fids is None else None
        if sm is None:
            return self._scan(ds, m, request, with_positions=False)
        # Read the copy whose pruning leaves fewer rows (ties: the time partitions).
        sel, space_sel = _prune(m, request, self._column_stats), _prune(sm, request, self._column_stats)
        rows = int(m.rg_rows[sel].sum())
        if int(sm.rg_rows[space_sel].sum()) < rows:
            m, sel, rows = sm, space_sel, int(sm.rg_rows[space_sel].sum())
        want = request.sample_min_rows
        if want and request.arrow_filter is None and request.limit is None \
                and request.t_min == MIN_US and request.t_max == MAX_US:
            for k in sorted(SAMPLES, reverse=True):
                if rows // k >= want:
                    lm = self._manifest(ds, sample_label(k))
                    t = self._scan(ds, lm, request, with_positions=False)
                    return t.replace_schema_metadata({**(t.schema.metadata or {}), SAMPLE_KEY: str(k).encode()})
        return self._scan(ds, m, request, with_positions=False, sel=sel)

    def _scan(self, ds: DatasetRow, m: _Manifest, request: ScanRequest, with_positions: bool,
              sel: np.ndarray | None = None) -> pa.Table:
        if sel is None:
            sel = _prune(m, request, self._column_stats)
        columns = records.scan_columns(ds.spec, request.columns, request.with_geometry)
        schema = records.storage_schema(ds.spec, columns)
        if not len(sel):
            return records.finish_scan([], schema, with_positions)
        unfiltered = (request.bbox is None and request.t_min == MIN_US and request.t_max == MAX_US
                      and request.fids is None and request.arrow_filter is None)
        if request.limit is not None and unfiltered:
            return self._scan_prefix(ds, m, sel, columns, schema, request, with_positions)
        parts, applied = self._read(ds.spec, m, sel, columns, request, with_positions)
        out = records.finish_scan(parts, schema, with_positions)
        # the filter once over every file's rows (each call has a fixed cost); the
        # first phase tested the fid list and may have applied the filter exactly
        return out if applied else records.exact_filter(out, request)

    def _scan_prefix(self, ds: DatasetRow, m: _Manifest, sel: np.ndarray, columns: list[str], schema: pa.Schema,
                     request: ScanRequest, with_positions: bool) -> pa.Table:
        """The first ``request.limit`` records of an unfiltered scan: the row
        groups are taken in scan order (file, then row group) until enough
        current rows are read, so a first page never decodes the whole dataset."""
        assert request.limit is not None
        order = sel[np.lexsort((sel, m.rg_file[sel]))]
        total = np.cumsum(m.rg_rows[order])
        k = int(np.searchsorted(total, max(request.limit, 1))) + 1
        while True:
            k = min(k, len(order))
            parts, _ = self._read(ds.spec, m, np.sort(order[:k]), columns, request, with_positions)
            got = sum(len(t) for _, t in parts)
            if got >= request.limit or k == len(order):
                return records.finish_scan(parts, schema, with_positions)
            k *= 2  # ended records were among them: read further

    def history(self, name: str, fid: Any) -> pa.Table:
        ds = self.db.dataset(name)
        fid_value = records.coerce_fid(ds.spec, fid)
        return self._every_record(ds, ScanRequest(snapshot=0, arrow_filter=pc.field("fid") == fid_value))

    def log(self, name: str) -> pa.Table:
        ds = self.db.dataset(name)
        return self._every_record(ds, ScanRequest(snapshot=0, columns=(*(f.name for f in ds.spec.fields), "_hash")))

    def _every_record(self, ds: DatasetRow, request: ScanRequest) -> pa.Table:
        m = self._manifest(ds)
        everything = dataclasses.replace(request, snapshot=m.head)
        # Read retired rows too: history is every version the store ever held.
        t = self._scan(ds, m.without_retirements(), everything, with_positions=True)
        loc = t.column("_loc").to_numpy()
        key = (m.retired_file << 32) | m.retired_row
        order = np.argsort(key)
        at = np.minimum(np.searchsorted(key[order], loc), max(len(key) - 1, 0))
        hit = key[order][at] == loc if len(key) else np.zeros(len(loc), bool)
        ended = m.retired_snapshot[order][at] if len(key) else np.zeros(len(loc), np.int64)
        t = t.append_column("record_to", pa.array(ended, pa.int64(), mask=~hit)).drop_columns(["_loc"])
        # In record-time order: a feature deleted and loaded again starts a new
        # version sequence, so version alone does not order its history.
        return t.sort_by([("record_from", "ascending"), ("version", "ascending")])

    def stats(self, name: str, snapshot: int) -> DatasetStats:
        ds = self.db.dataset(name)
        row = self.db.con.execute(
            "SELECT count(*), sum(rows), sum(bytes), min(xmin), min(ymin), max(xmax), max(ymax), min(tmin),"
            " max(tmax) FROM files WHERE dataset_id=? AND snapshot_id<=? AND partition NOT LIKE ?",
            (ds.id, snapshot, SPACE + "%")).fetchone()
        retired = self.db.con.execute(
            "SELECT count(*) FROM retired r JOIN files f ON f.id=r.file_id WHERE f.dataset_id=?"
            " AND r.snapshot_id<=? AND f.partition NOT LIKE ?", (ds.id, snapshot, SPACE + "%")).fetchone()[0]
        nfiles, rows, nbytes = row[0], row[1] or 0, row[2] or 0
        extent = None if row[3] is None else (row[3], row[4], row[5], row[6])
        t_lo, t_hi = row[7], row[8]
        if retired:
            # File bounds still count ended rows: measure what is current instead.
            extent, t_lo, t_hi = self._current_extent(ds, snapshot)
        return DatasetStats(rows=int(rows - retired), extent=extent,
                            t_min=None if t_lo in (None, MIN_US) else t_lo,
                            t_max=None if t_hi in (None, MAX_US) else t_hi,
                            files=int(nfiles), bytes=int(nbytes))

    def changed_bounds(self, name: str, since: int, until: int) -> np.ndarray:
        ds = self.db.dataset(name)
        lo, hi = min(since, until), max(since, until)
        con = self.db.con
        added = con.execute("SELECT xmin, ymin, xmax, ymax FROM files WHERE dataset_id=? AND snapshot_id>?"
                            " AND snapshot_id<=? AND xmin IS NOT NULL AND partition NOT LIKE ?",
                            (ds.id, lo, hi, SPACE + "%")).fetchall()
        ended = con.execute(
            "SELECT f.path, r.row FROM retired r JOIN files f ON f.id=r.file_id WHERE f.dataset_id=?"
            " AND r.snapshot_id>? AND r.snapshot_id<=? AND f.partition NOT LIKE ? ORDER BY f.path, r.row",
            (ds.id, lo, hi, SPACE + "%")).fetchall()
        boxes = [np.array(added, np.float64).reshape(-1, 4)]
        by_file: dict[str, list[int]] = {}
        for path, row in ended:
            by_file.setdefault(path, []).append(row)
        # An ended record's own bbox, not its row group's: a row group can span
        # the whole dataset, and one edit must not look like a change everywhere.
        for rel, rows in by_file.items():
            boxes.append(records.bbox_arrays(self._rows_at(rel, np.asarray(rows, np.int64), ["bbox"])).T)
        return np.concatenate(boxes)

    def _rows_at(self, rel: str, rows: np.ndarray, columns: list[str]) -> pa.Table:
        """Columns of the rows at positions ``rows`` (ascending) of one file,
        decoding only the row groups that hold them."""
        md = self._file_metadata(rel)
        starts = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
        group = np.searchsorted(starts, rows, side="right") - 1
        groups = np.unique(group)
        pf = pq.ParquetFile(self.root / rel, metadata=md)
        t = pf.read_row_groups([int(g) for g in groups], columns=columns)
        # The groups read lie end to end in ``t``: where each starts there.
        base = np.concatenate([[0], np.cumsum(starts[groups + 1] - starts[groups])])
        local = base[np.searchsorted(groups, group)] + rows - starts[group]
        return t.take(pa.array(local))

    def _space_locators(self, ds: DatasetRow, snapshot: int, retire: np.ndarray) -> np.ndarray:
        """Where the records at ``retire`` (locators in the time-partitioned files)
        are in the space copy and its samples: the current record of each of
        their feature ids."""
        m = self._manifest(ds)
        fids = []
        files, rows = retire >> 32, retire & 0xFFFFFFFF
        for f in np.unique(files):
            fids.append(self._rows_at(m.file_paths[int(f)], np.sort(rows[files == f]), ["fid"]).column("fid"))
        wanted = pa.chunked_array(fids).combine_chunks()
        h = fid_hash(wanted)
        out = []
        for layout, k in ((SPACE, 1), *((sample_label(k), k) for k in SAMPLES)):
            these = wanted.filter(pa.array(h % np.uint64(k) == 0)) if k > 1 else wanted
            if not len(these):
                continue
            req = ScanRequest(snapshot=snapshot, columns=(), arrow_filter=pc.field("fid").isin(these),
                              with_geometry=False)
            found = self._scan(ds, self._manifest(ds, layout), req, with_positions=True)
            if len(found) != len(these):
                raise StoreError(f"dataset {ds.name!r}: the {layout} copy holds {len(found)} of the {len(these)} "
                                 "records this commit ends there; nothing was written")
            out.append(found.column("_loc").to_numpy())
        return np.concatenate(out)

    def _current_extent(self, ds: DatasetRow, snapshot: int) -> tuple[Any, int | None, int | None]:
        t = self._scan(ds, self._manifest(ds), ScanRequest(snapshot=snapshot, columns=(), with_geometry=False),
                       with_positions=False)
        if not len(t):
            return None, None, None
        b = records.bbox_arrays(t)
        vf = records.times_us(t.column("valid_from"), MIN_US)
        vt = records.times_us(t.column("valid_to"), MAX_US)
        extent = (float(b[0].min()), float(b[1].min()), float(b[2].max()), float(b[3].max()))
        return extent, int(vf.min()), int(vt.max())

    def grids(self) -> Any:
        from geoplatform.grids.store import GridStore

        return GridStore(self.db, self.root / "grids", self._dataset_lock)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.db.close()


class _Writer(DatasetWriter):
    def __init__(self, backend: GeoParquetBackend, ds: DatasetRow) -> None:
        self.backend = backend
        self.ds = ds
        self.spec = ds.spec
        self.parent = backend.db.head(ds.id)

    def current_keys(self, fids: pa.Array | None = None) -> pa.Table:
        be = self.backend
        m = be._manifest(self.ds)
        flt = None if fids is None else pc.field("fid").isin(fids)
        req = ScanRequest(snapshot=self.parent, columns=("_hash",), arrow_filter=flt, with_geometry=False)
        t = be._scan(self.ds, m, req, with_positions=True)
        return t.select(["fid", "version", "_hash", "_loc"])

    def last_versions(self, fids: pa.Array) -> pa.Table:
        be = self.backend
        m = be._manifest(self.ds).without_retirements()
        req = ScanRequest(snapshot=self.parent, columns=(), arrow_filter=pc.field("fid").isin(fids),
                          with_geometry=False)
        t = be._scan(self.ds, m, req, with_positions=False)
        return t.group_by("fid").aggregate([("version", "max")]).rename_columns(["fid", "version"])

    def allocate_fids(self, n: int) -> int:
        return self.backend.db.allocate_fids(self.ds.id, n)

    def find_source(self, source_hash: str) -> Snapshot | None:
        return self.backend.db.find_source(self.ds, source_hash)

    def commit(self, records_: pa.Table | None, retire: np.ndarray, *, operation: str,
               summary: dict[str, Any], source_hash: str | None = None,
               spec: DatasetSpec | None = None, committed_at: datetime | None = None) -> CommitResult:
        be = self.backend
        ds = self.ds if spec is None else DatasetRow(self.ds.id, self.ds.name, spec, self.ds.key_bounds)
        retire = np.asarray(retire, np.int64)
        ended = len(retire)
        if ds.spec.space_copy and ended:
            retire = np.concatenate([retire, be._space_locators(ds, self.parent, retire)])
        files = be._write_files(ds, records_) if records_ is not None and len(records_) else []
        snap = be._commit(ds, self.parent, files, retire, operation, summary, source_hash, spec, committed_at)
        self.parent = snap.id
        self.spec = ds.spec
        self.ds = ds
        primary = [f for f in files if not f["partition"].startswith(SPACE)]
        return CommitResult(snap, sum(f["rows"] for f in primary), ended, [f["path"] for f in files])
