"""The stored record layout, shared by every backend.

A stored record is: ``fid``, ``version``, ``valid_from``, ``valid_to``, the
dataset's attributes in schema order, ``geometry`` (WKB), ``bbox`` (the
GeoParquet 1.1 covering struct) and ``_hash`` (a content hash that makes
re-ingesting unchanged input a no-op).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geoplatform.crs import resolve_crs
from geoplatform.cube.backend import ScanRequest
from geoplatform.cube.model import DatasetSpec, Field
from geoplatform.cube.times import MAX_US, MIN_US

TS = pa.timestamp("us", tz="UTC")
BBOX = pa.struct([("xmin", pa.float64()), ("ymin", pa.float64()),
                  ("xmax", pa.float64()), ("ymax", pa.float64())])
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
    "boolean": pa.bool_(), "datetime": TS, "date": pa.date32(),
}
HEAD = ("fid", "version", "valid_from", "valid_to")


def fid_type(spec: DatasetSpec) -> pa.DataType:
    """Store-assigned ids are integers; a dataset's own ids are kept as text."""
    return pa.int64() if spec.fid is None else pa.string()


_INT_ID = re.compile(r"-?[0-9]{1,19}")


def coerce_fid(spec: DatasetSpec, fid: Any) -> Any:
    if spec.fid is None:
        # Generated ids are int64: only plain ASCII decimals in that range can name a feature
        # (``int()`` also takes '1_0', ' 7 ' and other scripts' digits).
        value: int | None = None
        if isinstance(fid, (int, np.integer)) and not isinstance(fid, (bool, np.bool_)):
            value = int(fid)
        elif isinstance(fid, str) and _INT_ID.fullmatch(fid):
            value = int(fid)
        if value is None or not -2**63 <= value < 2**63:
            from geoplatform.errors import FeatureNotFound
            raise FeatureNotFound(f"feature id {fid!r} is not an id of dataset {spec.name!r}")
        return value
    return str(fid)


def full_schema(spec: DatasetSpec) -> pa.Schema:
    fields = [pa.field("fid", fid_type(spec), nullable=False), pa.field("version", pa.int32(), nullable=False),
              pa.field("valid_from", TS), pa.field("valid_to", TS)]
    fields += [pa.field(f.name, ARROW_TYPES[f.type]) for f in spec.fields]
    fields += [pa.field("geometry", pa.binary()), pa.field("bbox", BBOX), pa.field("_hash", pa.uint64())]
    return pa.schema(fields)


def scan_columns(spec: DatasetSpec, columns: tuple[str, ...] | None, with_geometry: bool) -> list[str]:
    attrs = [f.name for f in spec.fields]
    if columns is not None:
        wanted = set(columns)
        attrs = [a for a in attrs if a in wanted]
    cols = [*HEAD, *attrs, "bbox"]
    if with_geometry:
        cols.append("geometry")
    if columns is not None and "_hash" in columns:
        cols.append("_hash")
    return cols


def physical_columns(spec: DatasetSpec, columns: list[str]) -> list[str]:
    """The Parquet columns to decode for the logical ``columns``.

    Two columns are derivable and so never decoded: a point's bbox is the
    point (only ``bbox.xmin`` and ``bbox.ymin`` are read), and an instant's
    ``valid_to`` is its ``valid_from``. Decoding is most of a query's time.
    """
    out = []
    for c in columns:
        if c == "bbox" and spec.geometry_type == "Point":
            out += ["bbox.xmin", "bbox.ymin"]
        elif c == "valid_to" and spec.instant:
            if "valid_from" not in columns:
                out.append("valid_from")
        else:
            out.append(c)
    return out


def logical_table(spec: DatasetSpec, table: pa.Table, columns: list[str]) -> pa.Table:
    """Rebuild what :func:`physical_columns` left out, in the order of ``columns``."""
    cols: dict[str, Any] = {}
    for c in columns:
        if c == "bbox" and spec.geometry_type == "Point":
            b = table.column("bbox").combine_chunks()
            x, y = b.field("xmin"), b.field("ymin")
            cols[c] = pa.StructArray.from_arrays([x, y, x, y], fields=list(BBOX))
        elif c == "valid_to" and spec.instant:
            cols[c] = table.column("valid_from")
        else:
            cols[c] = table.column(c)
    return pa.table(cols)


def storage_schema(spec: DatasetSpec, columns: list[str]) -> pa.Schema:
    full = full_schema(spec)
    return pa.schema([full.field(c) for c in columns])


def bbox_arrays(table: pa.Table) -> np.ndarray:
    """The ``bbox`` struct column as a (4, n) float64 array."""
    b = table.column("bbox").combine_chunks()
    return np.vstack([b.field(i).to_numpy(zero_copy_only=False) for i in range(4)])


def times_us(col: pa.ChunkedArray, null_as: int) -> np.ndarray:
    """A timestamp column as int64 microseconds, nulls as ``null_as``."""
    arr = pc.fill_null(col.cast(pa.int64()), null_as)
    return arr.to_numpy()


def row_mask(table: pa.Table, request: ScanRequest) -> np.ndarray:
    """Which rows meet the bbox, the time interval and the fid list (numpy, for the
    two-phase read: the other columns are decoded only for row groups with a match)."""
    n = len(table)
    mask = np.ones(n, bool)
    if request.bbox is not None:
        x0, y0, x1, y1 = request.bbox
        b = table.column("bbox").combine_chunks() if n else None
        if b is not None:
            names = {b.type.field(i).name for i in range(b.type.num_fields)}

            def get(k: str) -> np.ndarray:
                # a point's bbox may be read as xmin/ymin only (physical_columns)
                k = k if k in names else k.replace("max", "min")
                return b.field(k).to_numpy(zero_copy_only=False)

            mask &= (get("xmax") >= x0) & (get("xmin") <= x1) & (get("ymax") >= y0) & (get("ymin") <= y1)
    if request.t_max != MAX_US:
        mask &= times_us(table.column("valid_from"), MIN_US) <= request.t_max
    if request.t_min != MIN_US:
        end = "valid_to" if "valid_to" in table.column_names else "valid_from"  # an instant's end is its start
        mask &= times_us(table.column(end), MAX_US) >= request.t_min
    if request.fids is not None and n:
        mask &= pc.is_in(table.column("fid"), value_set=pa.array(list(request.fids), table.schema.field("fid").type)
                         ).to_numpy(zero_copy_only=False)
    return mask


def filter_mask(table: pa.Table, expr: pc.Expression,
                equals: tuple[tuple[str, Any], ...] | None = None) -> np.ndarray:
    """Which rows of ``table`` meet ``expr`` (null counts as no match); ``equals``, the
    filter as (column, value) equalities when it is no more, is tested directly."""
    if equals and all(c in table.column_names for c, _ in equals):
        try:
            mask = np.ones(len(table), bool)
            for c, value in equals:
                col = table.column(c)
                hit = pc.equal(col, pa.scalar(value, col.type) if pa.types.is_string(col.type) else value)
                mask &= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
            return mask
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # a column type the plain comparison does not take: evaluate the expression
    rows = table.append_column("_row", pa.array(np.arange(len(table), dtype=np.int64))).filter(expr)
    mask = np.zeros(len(table), bool)
    mask[rows.column("_row").to_numpy()] = True
    return mask


def exact_filter(table: pa.Table, request: ScanRequest) -> pa.Table:
    """The attribute filter and the fid list; the bbox and time test is
    applied by the read itself (:func:`row_mask`, in the selective read)."""
    expr = request.arrow_filter
    if request.fids is not None:
        e = pc.field("fid").isin(pa.array(list(request.fids)))
        expr = e if expr is None else expr & e
    return table if expr is None else table.filter(expr)


def finish_scan(parts: list[tuple[int, pa.Table]], schema: pa.Schema, with_positions: bool) -> pa.Table:
    """Concatenate per-file results, adding each record's ``record_from``."""
    out_schema = schema.append(pa.field("record_from", pa.int64()))
    if with_positions:
        out_schema = out_schema.append(pa.field("_loc", pa.int64()))
    tables = []
    for snapshot, t in parts:
        if not len(t):
            continue
        if "record_from" not in t.column_names:  # a compacted file's rows carry their own
            t = t.append_column("record_from", pa.array(np.full(len(t), snapshot, np.int64)))
        if with_positions:
            t = t.select([n for n in out_schema.names])
        else:
            t = t.select([n for n in out_schema.names if n in t.column_names])
        tables.append(t)
    if not tables:
        return out_schema.empty_table()
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables)


def geo_metadata(spec: DatasetSpec, table: pa.Table, bbox: np.ndarray) -> bytes:
    """The GeoParquet 1.1 ``geo`` key: WKB encoding, CRS as PROJJSON, bbox covering."""
    crs = resolve_crs(spec.storage_crs)
    types = _geometry_types(table)
    meta: dict[str, Any] = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": types,
                "crs": json.loads(crs.pyproj_crs.to_json()),
                "bbox": [float(bbox[0].min()), float(bbox[1].min()),
                         float(bbox[2].max()), float(bbox[3].max())],
                "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
            }
        },
    }
    return json.dumps(meta).encode()


_WKB_TYPES = {1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
              6: "MultiPolygon", 7: "GeometryCollection"}


def _geometry_types(table: pa.Table) -> list[str]:
    """The distinct WKB geometry types present (read from each WKB header)."""
    heads = pc.unique(pc.binary_slice(table.column("geometry"), 0, 5)).to_pylist()
    types = set()
    for h in heads:
        if h is None or len(h) < 5:
            continue
        code = int.from_bytes(h[1:5], "little" if h[0] == 1 else "big")
        types.add(_WKB_TYPES.get(code % 1000, "Unknown"))
    return sorted(types)


def field_arrow_type(f: Field) -> pa.DataType:
    return ARROW_TYPES[f.type]
