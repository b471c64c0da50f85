"""The PostGIS backend: the storage contract on PostgreSQL with PostGIS.

Many departments write to one store at once; PostgreSQL gives the
transactions, PostGIS the geometry type, its GiST index and what other tools
(QGIS, GDAL, tipg) read directly. The layout:

* ``gp_datasets`` (one row per dataset: its spec as JSON, its data table, the
  next store-assigned id) and ``gp_snapshots`` (the snapshot log, ids shared
  by every dataset of the store, each with its parent, commit time, operation
  and summary);
* one table per dataset, ``gp_data_<id>``: every version of every feature,
  ended ones too, with ``record_from`` (the snapshot that wrote it) and
  ``record_to`` (the one that ended it, null while current); the valid time
  as ``timestamptz``; the geometry as a PostGIS ``geometry`` in the storage
  CRS's SRID with a GiST index, and its bbox in four float8 columns for the
  exact box test (the index's boxes are rounded to float4).

A snapshot reads ``record_from <= s AND (record_to IS NULL OR record_to > s)``.
A commit inserts its snapshot, its rows and the ends of the rows it
replaces in one transaction, after checking, under a row lock on the
dataset, that the head is still the writer's parent: a reader sees a
snapshot whole or not at all, and of two writers of one dataset the second
gets a :class:`~geoplatform.errors.CommitConflict`.

Rows travel as CSV through ``COPY`` both ways (Arrow's CSV reader and
writer, no Python object per value); times as integer microseconds and
geometries as hex WKB, so that nothing depends on the session's time zone or
text formats.
"""

from __future__ import annotations

import binascii
import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from geoplatform.crs import resolve_crs
from geoplatform.cube.backend import (CommitResult, DatasetStats, DatasetWriter, ScanRequest, StorageBackend)
from geoplatform.cube.model import DatasetSpec, Snapshot
from geoplatform.cube.times import MAX_US, MIN_US
from geoplatform.errors import (CommitConflict, DatasetExists, DatasetNotFound, SnapshotNotFound, StoreError)
from geoplatform.settings import Settings
from geoplatform.storage import records
from geoplatform.storage.postgis_schema import catalog_tables, data_table, data_table_name, ddl

_SQL_TYPES = {"string": "text", "integer": "bigint", "number": "double precision", "boolean": "boolean",
              "datetime": "timestamptz", "date": "date"}
_RESERVED = {"xmin", "xmax", "cmin", "cmax", "ctid", "tableoid", "oid", "_row", "fid", "version", "valid_from",
             "valid_to", "geometry", "bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax", "_hash", "record_from",
             "record_to"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _q(name: str) -> str:
    """A column name as a quoted SQL identifier (spec field names are checked when the dataset is made)."""
    return '"' + name.replace('"', '""') + '"'


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _given(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise StoreError("a commit time needs a time zone")
    return when.astimezone(timezone.utc)


def _us(col: str) -> str:
    """A timestamptz column as integer microseconds since 1970 (exact: extract gives numeric)."""
    return f"(extract(epoch FROM {col}) * 1000000)::bigint"


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DT_MIN = int((datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH).total_seconds()) * 1_000_000
_DT_MAX = int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc) - _EPOCH).total_seconds()) * 1_000_000


def _dt(us: int) -> datetime:
    """Microseconds since 1970 as an exact datetime (clamped to the years 1 to 9999)."""
    return _EPOCH + timedelta(microseconds=min(max(int(us), _DT_MIN), _DT_MAX))


def _recode(arr: pa.Array | pa.ChunkedArray, source: pa.DataType, target: pa.DataType,
            fn: Any, length: Any) -> pa.Array:
    """Apply ``fn`` (hexlify or unhexlify) to the values of a string or binary array in one
    C call over its data buffer; ``length`` maps the value offsets to the new ones."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], source)
    if arr.type != source:
        arr = arr.cast(source)
    if arr.offset:  # buffers from the array's first value
        arr = pa.concat_arrays([arr.slice(0, 0), arr])
    validity, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, np.int32, len(arr) + 1)
    raw = fn(memoryview(data)[off[0]:off[-1]]) if len(arr) and off[-1] > off[0] else b""
    new = length(off - off[0]).astype(np.int32)
    return pa.Array.from_buffers(target, len(arr), [validity, pa.py_buffer(new.tobytes()), pa.py_buffer(raw)],
                                 null_count=arr.null_count)


def _hex_to_binary(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A string array of hex digits as the binary array it spells."""
    return _recode(arr, pa.string(), pa.binary(), binascii.unhexlify, lambda o: o // 2)


def _binary_to_hex(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A binary array as hex digits (how WKB travels in CSV)."""
    return _recode(arr, pa.binary(), pa.string(), binascii.hexlify, lambda o: o * 2)


def _fid_or_none(spec: DatasetSpec, fid: Any) -> Any:
    """A feature id as stored, or None for one no feature can have (not an int where ids are
    store-assigned, or text with a NUL, which PostgreSQL text cannot hold)."""
    try:
        value = records.coerce_fid(spec, fid)
    except Exception:  # noqa: BLE001 - FeatureNotFound: no such id can exist
        return None
    return None if isinstance(value, str) and "\x00" in value else value


class PostGISBackend(StorageBackend):
    """Datasets in PostgreSQL tables with PostGIS geometries. ``location`` is a
    database URL (``postgresql://user@host:port/dbname``)."""

    name = "postgis"

    def __init__(self, location: str, settings: Settings) -> None:
        super().__init__(location, settings)
        try:
            import psycopg
        except ImportError as exc:  # the postgis extra
            raise StoreError("the PostGIS backend needs psycopg: pip install 'geoplatform[postgis]'") from exc
        self._psycopg = psycopg
        url = location
        for prefix in ("postgresql+psycopg://", "postgis://"):
            if url.startswith(prefix):
                url = "postgresql://" + url[len(prefix):]
        if not url.startswith(("postgresql://", "postgres://")):
            raise StoreError(f"the PostGIS backend needs a postgresql:// database URL, not {location!r}")
        self.url = url
        self._local = threading.local()
        self._conns: list[Any] = []
        self._conns_lock = threading.Lock()
        with self._tx() as cur:
            # one set-up at a time: CREATE ... IF NOT EXISTS races with itself
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('geoplatform schema'))")
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            for table in catalog_tables():  # declared with SQLAlchemy (postgis_schema)
                for stmt in ddl(table, if_not_exists=True):
                    cur.execute(stmt)

    # connections ----------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            con = self._psycopg.connect(self.url, autocommit=True)
        except self._psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.url}: {exc}".strip()) from exc
        con.execute("SET TimeZone = 'UTC'")
        with self._conns_lock:
            self._conns.append(con)
        return con

    @property
    def con(self) -> Any:
        """This thread's connection (autocommit; transactions are explicit)."""
        con = getattr(self._local, "con", None)
        if con is None or con.closed:
            con = self._local.con = self._connect()
        return con

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """A transaction on this thread's connection (nested blocks join the outer one)."""
        depth = getattr(self._local, "depth", 0)
        con = self.con
        if depth:
            self._local.depth = depth + 1
            try:
                with con.cursor() as cur:
                    yield cur
            finally:
                self._local.depth = depth
            return
        self._local.depth = 1
        try:
            with con.transaction(), con.cursor() as cur:
                yield cur
        except self._psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}".strip()) from exc
        finally:
            self._local.depth = 0

    def consistent(self) -> Any:
        """Reads in one REPEATABLE READ transaction see one state of the store."""
        return self._snapshot_tx()

    @contextmanager
    def _snapshot_tx(self) -> Iterator[None]:
        if getattr(self._local, "depth", 0):
            with self._tx():
                yield
            return
        con = self.con
        self._local.depth = 1
        try:
            with con.transaction():
                con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield
        finally:
            self._local.depth = 0

    def close(self) -> None:
        with self._conns_lock:
            for con in self._conns:
                try:
                    con.close()
                except Exception:  # noqa: BLE001 - closing what is left, whatever state it is in
                    pass
            self._conns.clear()
        self._local = threading.local()

    # datasets -------------------------------------------------------------------
    def _dataset(self, name: str, cur: Any = None) -> tuple[int, DatasetSpec]:
        sql = "SELECT id, spec FROM gp_datasets WHERE name = %s"
        if cur is None:
            row = self.con.execute(sql, (name,)).fetchone()
        else:
            row = cur.execute(sql, (name,)).fetchone()
        if row is None:
            raise DatasetNotFound(f"no dataset named {name!r}", dataset=name)
        return int(row[0]), DatasetSpec.model_validate(row[1])

    @staticmethod
    def _table(ds_id: int) -> str:
        return data_table_name(ds_id)

    @staticmethod
    def _srid(spec: DatasetSpec) -> int:
        crs = resolve_crs(spec.storage_crs)
        code = crs.pyproj_crs.to_epsg()
        if code is None and crs.pyproj_crs.equals("OGC:CRS84"):
            return 4326
        return int(code or 0)

    def create_dataset(self, spec: DatasetSpec, committed_at: datetime | None = None) -> Snapshot:
        for f in spec.fields:
            if f.name.lower() in _RESERVED:
                raise StoreError(f"attribute name {f.name!r} is reserved in a PostGIS store (a system or "
                                 "bookkeeping column): rename it")
            if not _NAME.match(f.name):
                raise StoreError(f"attribute name {f.name!r} cannot be a PostgreSQL column: use letters, digits "
                                 "and underscores, starting with a letter")
        now = _now() if committed_at is None else _given(committed_at)
        with self._tx() as cur:
            cur.execute("LOCK TABLE gp_datasets IN SHARE ROW EXCLUSIVE MODE")
            if cur.execute("SELECT 1 FROM gp_datasets WHERE name = %s", (spec.name,)).fetchone():
                raise DatasetExists(f"dataset {spec.name!r} already exists", dataset=spec.name)
            ds_id = cur.execute("INSERT INTO gp_datasets (name, spec) VALUES (%s, %s) RETURNING id",
                                (spec.name, spec.model_dump_json(by_alias=True))).fetchone()[0]
            table = data_table(self._table(ds_id), [(f.name, f.type) for f in spec.fields], self._srid(spec),
                               fid_is_text=spec.fid is not None)
            for stmt in ddl(table):  # the table and its GiST, id, valid-time and record-time indexes
                cur.execute(stmt)
            sid = self._insert_snapshot(cur, ds_id, None, now, "create", {}, None)
        return Snapshot(sid, spec.name, None, now, "create", {})

    @staticmethod
    def _insert_snapshot(cur: Any, ds_id: int, parent: int | None, when: datetime, operation: str,
                         summary: dict[str, Any], source_hash: str | None) -> int:
        us = int(when.timestamp()) * 1_000_000 + when.microsecond
        return int(cur.execute(
            "INSERT INTO gp_snapshots (dataset_id, parent_id, committed_at, committed_us, operation, summary,"
            " source_hash) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (ds_id, parent, when, us, operation, json.dumps(summary), source_hash)).fetchone()[0])

    def get_spec(self, name: str) -> DatasetSpec:
        return self._dataset(name)[1]

    def list_specs(self) -> list[DatasetSpec]:
        rows = self.con.execute("SELECT spec FROM gp_datasets ORDER BY name").fetchall()
        return [DatasetSpec.model_validate(r[0]) for r in rows]

    def drop_dataset(self, name: str) -> None:
        with self._tx() as cur:
            ds_id, _ = self._dataset(name, cur)
            cur.execute("SELECT id FROM gp_datasets WHERE id = %s FOR UPDATE", (ds_id,))
            cur.execute(f"DROP TABLE IF EXISTS {self._table(ds_id)}")
            cur.execute("DELETE FROM gp_snapshots WHERE dataset_id = %s", (ds_id,))
            cur.execute("DELETE FROM gp_datasets WHERE id = %s", (ds_id,))

    # snapshots ------------------------------------------------------------------
    def _snapshot(self, name: str, row: Any) -> Snapshot:
        return Snapshot(int(row[0]), name, None if row[1] is None else int(row[1]), row[2], row[3], row[4])

    def snapshots(self, name: str) -> list[Snapshot]:
        ds_id, _ = self._dataset(name)
        rows = self.con.execute("SELECT id, parent_id, committed_at, operation, summary FROM gp_snapshots"
                                " WHERE dataset_id = %s ORDER BY id", (ds_id,)).fetchall()
        return [self._snapshot(name, r) for r in rows]

    def head(self, name: str) -> int:
        ds_id, _ = self._dataset(name)
        return self._head(ds_id)

    def _head(self, ds_id: int, cur: Any = None) -> int:
        sql = "SELECT max(id) FROM gp_snapshots WHERE dataset_id = %s"
        row = (cur or self.con).execute(sql, (ds_id,)).fetchone()
        if row[0] is None:
            raise StoreError(f"dataset {ds_id} has no snapshot")
        return int(row[0])

    def snapshot_at(self, name: str, when: datetime) -> int:
        ds_id, _ = self._dataset(name)
        us = int(when.timestamp()) * 1_000_000 + when.microsecond if when.tzinfo else None
        if us is None:
            raise SnapshotNotFound(f"{when.isoformat()} has no time zone", dataset=name)
        row = self.con.execute("SELECT max(id) FROM gp_snapshots WHERE dataset_id = %s AND committed_us <= %s",
                               (ds_id, us)).fetchone()
        if row[0] is None:
            raise SnapshotNotFound(f"dataset {name!r} did not exist at that time", dataset=name)
        return int(row[0])

    def check_snapshot(self, name: str, snapshot: int) -> int:
        ds_id, _ = self._dataset(name)
        if not 0 < int(snapshot) < 2**63 or self.con.execute(
                "SELECT 1 FROM gp_snapshots WHERE id = %s AND dataset_id = %s", (int(snapshot), ds_id)).fetchone() \
                is None:
            raise SnapshotNotFound(f"dataset {name!r} has no snapshot {snapshot}", dataset=name, snapshot=snapshot)
        return int(snapshot)

    # reading --------------------------------------------------------------------
    def _select(self, spec: DatasetSpec, columns: list[str], *, with_loc: bool = False,
                with_record_to: bool = False) -> tuple[str, list[tuple[str, pa.DataType]]]:
        """The SELECT list for the logical ``columns`` and the Arrow type each CSV column is read as."""
        sql: list[str] = []
        types: list[tuple[str, pa.DataType]] = []
        fields = {f.name: f for f in spec.fields}
        for c in columns:
            if c == "bbox":
                sql += ["bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax"]
                types += [(f"_b{k}", pa.float64()) for k in ("xmin", "ymin", "xmax", "ymax")]
            elif c == "geometry":
                sql.append("encode(ST_AsBinary(geometry), 'hex')")
                types.append(("geometry", pa.string()))
            elif c in ("valid_from", "valid_to"):
                sql.append(_us(c))
                types.append((c, pa.int64()))
            elif c == "fid":
                sql.append("fid")
                types.append(("fid", records.fid_type(spec)))
            elif c == "version":
                sql.append("version")
                types.append(("version", pa.int32()))
            elif c == "_hash":
                sql.append("_hash")
                types.append(("_hash", pa.int64()))
            else:
                f = fields[c]
                if f.type == "datetime":
                    sql.append(_us(_q(c)))
                    types.append((c, pa.int64()))
                else:
                    sql.append(_q(c))
                    types.append((c, records.field_arrow_type(f)))
        sql.append("record_from")
        types.append(("record_from", pa.int64()))
        if with_record_to:
            sql.append("record_to")
            types.append(("record_to", pa.int64()))
        if with_loc:
            sql.append("_row")
            types.append(("_loc", pa.int64()))
        return ", ".join(sql), types

    def _fetch(self, query: str, params: tuple[Any, ...], types: list[tuple[str, pa.DataType]],
               spec: DatasetSpec, columns: list[str]) -> pa.Table:
        """Run ``query`` through COPY ... TO STDOUT (CSV) and decode it with Arrow."""
        buf = io.BytesIO()
        con = self.con
        try:
            with con.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", params) as cp:
                for chunk in cp:
                    buf.write(chunk)
        except self._psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}".strip()) from exc
        names = [n for n, _ in types]
        csv_types = {n: (pa.string() if t == pa.binary() else t) for n, t in types}
        if not buf.tell():
            raw = pa.table({n: pa.array([], csv_types[n]) for n in names})
        else:
            buf.seek(0)
            raw = pacsv.read_csv(
                buf, read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=csv_types, strings_can_be_null=True, quoted_strings_can_be_null=False,
                    true_values=["t"], false_values=["f"], null_values=[""]))
        return self._to_logical(raw, types, spec, columns)

    def _to_logical(self, raw: pa.Table, types: list[tuple[str, pa.DataType]], spec: DatasetSpec,
                    columns: list[str]) -> pa.Table:
        fields = {f.name: f for f in spec.fields}
        out: dict[str, Any] = {}
        for c in columns:
            if c == "bbox":
                parts = [raw.column(f"_b{k}").combine_chunks() for k in ("xmin", "ymin", "xmax", "ymax")]
                if parts and len(parts[0]) == 0:
                    out["bbox"] = pa.array([], records.BBOX)
                else:
                    out["bbox"] = pa.StructArray.from_arrays(parts, fields=list(records.BBOX))
            elif c == "geometry":
                out[c] = _hex_to_binary(raw.column(c))
            elif c in ("valid_from", "valid_to") or (c in fields and fields[c].type == "datetime"):
                out[c] = raw.column(c).cast(records.TS)
            elif c == "_hash":
                h = raw.column(c).combine_chunks() if raw.column(c).num_chunks else pa.array([], pa.int64())
                out[c] = pa.array(h.to_numpy(zero_copy_only=False).view(np.uint64) if not h.null_count
                                  else h.cast(pa.uint64(), safe=False), pa.uint64())
            else:
                out[c] = raw.column(c)
        for extra in ("record_from", "record_to", "_loc"):
            if extra in raw.column_names:
                out[extra] = raw.column(extra)
        return pa.table(out)

    def _where(self, request: ScanRequest, spec: DatasetSpec) -> tuple[str, list[Any]]:
        cond = ["record_from <= %s", "(record_to IS NULL OR record_to > %s)"]
        params: list[Any] = [request.snapshot, request.snapshot]
        if request.bbox is not None:
            x0, y0, x1, y1 = (float(v) for v in request.bbox)
            # the index test (float4 boxes, a superset), then the exact one on the float8 bbox
            cond.append("geometry && ST_MakeEnvelope(%s, %s, %s, %s, %s)")
            params += [x0, y0, x1, y1, self._srid(spec)]
            cond.append("bbox_xmax >= %s AND bbox_xmin <= %s AND bbox_ymax >= %s AND bbox_ymin <= %s")
            params += [x0, x1, y0, y1]
        if spec.instant and request.t_min != MIN_US and request.t_max != MAX_US:
            # An instant in a closed window, as one range: the time index's bitmap
            # can then be ANDed with the GiST one (the two one-sided tests below,
            # each OR'ed with IS NULL, select the same rows but not as a range).
            cond.append("(valid_from BETWEEN %s AND %s OR valid_from IS NULL)")
            params += [_dt(request.t_min), _dt(request.t_max)]
        else:
            if request.t_max != MAX_US:
                cond.append("(valid_from IS NULL OR valid_from <= %s)")
                params.append(_dt(request.t_max))
            if request.t_min != MIN_US:
                end = "valid_from" if spec.instant else "valid_to"
                cond.append(f"({end} IS NULL OR {end} >= %s)")
                params.append(_dt(request.t_min))
        if request.fids is not None:
            cond.append("fid = ANY(%s)")
            params.append([f for f in (_fid_or_none(spec, v) for v in request.fids) if f is not None])
        fields = {f.name: f for f in spec.fields}
        for col, lo, hi in request.ranges:  # a pre-filter the attribute filter implies
            f = fields.get(col)
            if f is None or f.type not in ("string", "integer", "number"):
                continue
            if (f.type == "string") != isinstance(lo if lo is not None else hi, str):
                continue
            if any(isinstance(b, str) and "\x00" in b for b in (lo, hi)):
                continue  # PostgreSQL text holds no NUL: the filter itself still applies to the rows
            cast = "::text COLLATE \"C\"" if f.type == "string" else ""
            if lo is not None:
                cond.append(f"{_q(col)}{cast} >= %s{cast}")
                params.append(lo)
            if hi is not None:
                cond.append(f"{_q(col)}{cast} <= %s{cast}")
                params.append(hi)
        return " AND ".join(cond), params

    def scan(self, name: str, request: ScanRequest) -> pa.Table:
        ds_id, spec = self._dataset(name)
        return self._scan(ds_id, spec, request)

    def count_rows(self, name: str, request: ScanRequest) -> int:
        """How many rows :meth:`scan` would return, counted in PostgreSQL (no attribute
        filter: :meth:`Cube.count` asks only when every scanned row is a match)."""
        if request.arrow_filter is not None:
            raise StoreError("count_rows takes no attribute filter: scan and filter instead")
        ds_id, spec = self._dataset(name)
        where, params = self._where(request, spec)
        return int(self.con.execute(f"SELECT count(*) FROM {self._table(ds_id)} WHERE {where}",
                                    tuple(params)).fetchone()[0])

    def _scan(self, ds_id: int, spec: DatasetSpec, request: ScanRequest, *, with_loc: bool = False) -> pa.Table:
        columns = records.scan_columns(spec, request.columns, request.with_geometry)
        select, types = self._select(spec, columns, with_loc=with_loc)
        where, params = self._where(request, spec)
        t = self._fetch(f"SELECT {select} FROM {self._table(ds_id)} WHERE {where}", tuple(params), types, spec,
                        columns)
        expr = request.arrow_filter
        return t if expr is None else t.filter(expr)

    def log(self, name: str) -> pa.Table:
        ds_id, spec = self._dataset(name)
        columns = records.scan_columns(spec, (*(f.name for f in spec.fields), "_hash"), True)
        select, types = self._select(spec, columns, with_record_to=True)
        return self._fetch(f"SELECT {select} FROM {self._table(ds_id)} ORDER BY record_from, version, _row", (),
                           types, spec, columns)

    def history(self, name: str, fid: Any) -> pa.Table:
        ds_id, spec = self._dataset(name)
        columns = records.scan_columns(spec, None, True)
        select, types = self._select(spec, columns, with_record_to=True)
        value = records.coerce_fid(spec, fid)
        if isinstance(value, str) and "\x00" in value:  # no stored id holds a NUL
            value = None
        return self._fetch(f"SELECT {select} FROM {self._table(ds_id)} WHERE fid = %s"
                           f" AND record_from <= %s ORDER BY record_from, version",
                           (value, self._head(ds_id)), types, spec, columns)

    def stats(self, name: str, snapshot: int) -> DatasetStats:
        ds_id, spec = self._dataset(name)
        t = self._table(ds_id)
        end = "valid_from" if spec.instant else "valid_to"
        row = self.con.execute(
            f"SELECT count(*), min(bbox_xmin), min(bbox_ymin), max(bbox_xmax), max(bbox_ymax),"
            f" bool_or(valid_from IS NULL), min({_us('valid_from')}), bool_or({end} IS NULL), max({_us(end)}),"
            f" pg_total_relation_size(%s::regclass) FROM {t}"
            f" WHERE record_from <= %s AND (record_to IS NULL OR record_to > %s)",
            (t, snapshot, snapshot)).fetchone()
        rows = int(row[0])
        extent = None if row[1] is None else (float(row[1]), float(row[2]), float(row[3]), float(row[4]))
        t_min = None if (rows == 0 or row[5] or row[6] is None) else int(row[6])
        t_max = None if (rows == 0 or row[7] or row[8] is None) else int(row[8])
        return DatasetStats(rows=rows, extent=extent, t_min=t_min, t_max=t_max, files=1, bytes=int(row[9]))

    def changed_bounds(self, name: str, since: int, until: int) -> np.ndarray:
        ds_id, _ = self._dataset(name)
        lo, hi = min(since, until), max(since, until)
        rows = self.con.execute(
            f"SELECT bbox_xmin, bbox_ymin, bbox_xmax, bbox_ymax FROM {self._table(ds_id)}"
            " WHERE bbox_xmin IS NOT NULL AND"
            " ((record_from > %s AND record_from <= %s) OR (record_to > %s AND record_to <= %s))",
            (lo, hi, lo, hi)).fetchall()
        return np.array(rows, np.float64).reshape(-1, 4)

    # writing --------------------------------------------------------------------
    @contextmanager
    def writer(self, name: str) -> Iterator[DatasetWriter]:
        ds_id, _ = self._dataset(name)
        # a dedicated connection holds the dataset's writer lock (a session advisory lock)
        con = self._connect()
        try:
            deadline = self.settings.lock_timeout_s
            con.execute(f"SET lock_timeout = '{int(deadline * 1000)}ms'")
            try:
                con.execute("SELECT pg_advisory_lock(%s, %s)", (0x67706c74, ds_id))
            except self._psycopg.errors.LockNotAvailable:
                raise StoreError(f"dataset {name!r} is locked by another writer") from None
            con.execute("SET lock_timeout = 0")
            yield _Writer(self, name, ds_id)
        finally:
            con.close()
            with self._conns_lock:
                if con in self._conns:
                    self._conns.remove(con)

    def _copy_in(self, cur: Any, ds_id: int, spec: DatasetSpec, table: pa.Table) -> None:
        """COPY ``table`` (the stored record layout) into a temporary table shaped for CSV."""
        fields = {f.name: f for f in spec.fields}
        cols: dict[str, Any] = {}
        staged: list[str] = []
        for name in table.column_names:
            col = table.column(name)
            if name == "bbox":
                b = col.combine_chunks() if col.num_chunks else pa.array([], records.BBOX)
                for k in ("xmin", "ymin", "xmax", "ymax"):
                    cols[f"bbox_{k}"] = b.field(k)
                    staged.append(f"bbox_{k} double precision")
            elif name == "geometry":
                cols[name] = _binary_to_hex(col)
                staged.append("geometry_hex text")
            elif name in ("valid_from", "valid_to") or (name in fields and fields[name].type == "datetime"):
                cols[name] = pc.cast(col, pa.timestamp("us", "UTC"))  # written as ISO 8601 text, exact
                staged.append(f"{_q(name)} timestamptz")
            elif name == "_hash":
                h = col.combine_chunks() if col.num_chunks else pa.array([], pa.uint64())
                cols[name] = pa.array(h.to_numpy(zero_copy_only=False).view(np.int64)) if not h.null_count \
                    else h.cast(pa.int64(), safe=False)
                staged.append("_hash bigint")
            elif name == "fid":
                cols[name] = col
                staged.append(f"fid {'bigint' if spec.fid is None else 'text'}")
            elif name == "version":
                cols[name] = col
                staged.append("version integer")
            elif name in fields:
                cols[name] = col
                staged.append(f"{_q(name)} {_SQL_TYPES[fields[name].type]}")
            else:
                raise StoreError(f"unexpected column {name!r} in the records to write")
        cur.execute(f"CREATE TEMP TABLE gp_stage ({', '.join(staged)}) ON COMMIT DROP")
        out = io.BytesIO()
        t = pa.table(cols)
        pacsv.write_csv(t, out, write_options=pacsv.WriteOptions(include_header=False,
                                                                    quoting_style="needed"))
        with cur.copy("COPY gp_stage FROM STDIN WITH (FORMAT csv)") as cp:
            cp.write(out.getvalue())

    def _add_columns(self, cur: Any, ds_id: int, old: DatasetSpec, new: DatasetSpec) -> None:
        """Columns for the attributes a commit's spec adds (a first ingest infers the schema)."""
        have = {f.name: f for f in old.fields}
        for f in new.fields:
            if f.name in have:
                if have[f.name].type != f.type:
                    raise StoreError(f"attribute {f.name!r} cannot change type from {have[f.name].type} to {f.type}")
                continue
            if f.name.lower() in _RESERVED or not _NAME.match(f.name):
                raise StoreError(f"attribute name {f.name!r} cannot be a column of a PostGIS store: use letters, "
                                 "digits and underscores, starting with a letter, and no bookkeeping name")
            cur.execute(f"ALTER TABLE {self._table(ds_id)} ADD COLUMN {_q(f.name)} {_SQL_TYPES[f.type]}")

    def _commit(self, name: str, ds_id: int, parent: int, table: pa.Table | None, retire: np.ndarray,
                operation: str, summary: dict[str, Any], source_hash: str | None,
                spec: DatasetSpec | None, committed_at: datetime | None = None) -> tuple[Snapshot, int]:
        now = _now() if committed_at is None else _given(committed_at)
        with self._tx() as cur:
            # the row lock serialises commits; the spec it reads is the one the rows are stored under
            stored = DatasetSpec.model_validate(
                cur.execute("SELECT spec FROM gp_datasets WHERE id = %s FOR UPDATE", (ds_id,)).fetchone()[0])
            head = self._head(ds_id, cur)
            if head != parent:
                raise CommitConflict(f"dataset {name!r} moved from snapshot {parent} to {head} during this write",
                                     dataset=name)
            current = spec or stored
            if spec is not None:
                self._add_columns(cur, ds_id, stored, spec)
            sid = self._insert_snapshot(cur, ds_id, parent, now, operation, summary, source_hash)
            written = 0
            if table is not None and len(table):
                self._copy_in(cur, ds_id, current, table)
                target, source = [], []
                for c in table.column_names:
                    if c == "bbox":
                        target += ["bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax"]
                        source += ["bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax"]
                    elif c == "geometry":
                        target.append("geometry")
                        source.append(f"ST_SetSRID(ST_GeomFromWKB(decode(geometry_hex, 'hex')), {self._srid(current)})")
                    else:
                        target.append(_q(c))
                        source.append(_q(c))
                written = cur.execute(
                    f"INSERT INTO {self._table(ds_id)} ({', '.join(target)}, record_from)"
                    f" SELECT {', '.join(source)}, %s FROM gp_stage", (sid,)).rowcount
            if len(retire):
                ended = cur.execute(
                    f"UPDATE {self._table(ds_id)} SET record_to = %s WHERE _row = ANY(%s) AND record_to IS NULL"
                    " AND record_from <= %s", (sid, [int(v) for v in retire], parent)).rowcount
                if ended != len(np.unique(retire)):
                    raise CommitConflict(f"dataset {name!r}: {len(retire) - ended} of the records this commit ends "
                                         "are no longer current; nothing was written", dataset=name)
            if spec is not None:
                cur.execute("UPDATE gp_datasets SET spec = %s WHERE id = %s",
                            (spec.model_dump_json(by_alias=True), ds_id))
        return Snapshot(sid, name, parent, now, operation, summary), written


class _Writer(DatasetWriter):
    def __init__(self, backend: PostGISBackend, name: str, ds_id: int) -> None:
        self.backend = backend
        self.name = name
        self.ds_id = ds_id
        self.spec = backend.get_spec(name)
        self.parent = backend._head(ds_id)

    def current_keys(self, fids: pa.Array | None = None) -> pa.Table:
        be = self.backend
        req = ScanRequest(snapshot=self.parent, columns=("_hash",), with_geometry=False,
                          fids=None if fids is None else tuple(fids.to_pylist()))
        t = be._scan(self.ds_id, self.spec, req, with_loc=True)
        return t.select(["fid", "version", "_hash", "_loc"])

    def last_versions(self, fids: pa.Array) -> pa.Table:
        be = self.backend
        ftype = records.fid_type(self.spec)
        rows = be.con.execute(
            f"SELECT fid, max(version) FROM {be._table(self.ds_id)} WHERE fid = ANY(%s) AND record_from <= %s"
            " GROUP BY fid", ([records.coerce_fid(self.spec, f) for f in fids.to_pylist()], self.parent)).fetchall()
        return pa.table({"fid": pa.array([r[0] for r in rows], ftype),
                         "version": pa.array([r[1] for r in rows], pa.int32())})

    def allocate_fids(self, n: int) -> int:
        with self.backend._tx() as cur:
            first = cur.execute("UPDATE gp_datasets SET next_fid = next_fid + %s WHERE id = %s"
                                " RETURNING next_fid - %s", (n, self.ds_id, n)).fetchone()[0]
        return int(first)

    def find_source(self, source_hash: str) -> Snapshot | None:
        row = self.backend.con.execute(
            "SELECT id, parent_id, committed_at, operation, summary FROM gp_snapshots"
            " WHERE dataset_id = %s AND source_hash = %s ORDER BY id DESC LIMIT 1",
            (self.ds_id, source_hash)).fetchone()
        return None if row is None else self.backend._snapshot(self.name, row)

    def commit(self, records_: pa.Table | None, retire: np.ndarray, *, operation: str,
               summary: dict[str, Any], source_hash: str | None = None,
               spec: DatasetSpec | None = None, committed_at: datetime | None = None) -> CommitResult:
        retire = np.asarray(retire, np.int64)
        snap, written = self.backend._commit(self.name, self.ds_id, self.parent, records_, retire, operation,
                                             summary, source_hash, spec, committed_at)
        self.parent = snap.id
        if spec is not None:
            self.spec = spec
        return CommitResult(snap, written, len(retire), [])
