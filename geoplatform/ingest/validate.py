"""Checking and normalising a frame against a dataset's spec.

Every check collects all the rows that fail it and raises one error naming
them (row numbers are 0-based positions in the input), so a steward fixes a
file in one pass rather than one error at a time.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pydantic import ValidationError

from geoplatform.crs import check_in_range, resolve_crs, transform_geometries
from geoplatform.cube.model import DatasetSpec, Field
from geoplatform.errors import CRSError, InvalidGeometryError, SchemaError
from geoplatform.storage.records import TS

OnInvalid = Literal["raise", "warn", "fix", "skip"]
MAX_LISTED = 20
# by shapely type id; a LinearRing is a closed LineString (WKB has no ring type, nor has GeoJSON)
_TYPE_NAMES = np.array(["Point", "LineString", "LineString", "Polygon", "MultiPoint", "MultiLineString",
                        "MultiPolygon", "GeometryCollection"])
_SINGLE_OF_MULTI = {"MultiPoint": "Point", "MultiLineString": "LineString", "MultiPolygon": "Polygon"}
_MULTI_OF_SINGLE = {v: k for k, v in _SINGLE_OF_MULTI.items()}


@dataclass
class Problems:
    """Row problems found by the checks."""

    where: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, positions: np.ndarray, problem: str, column: str | None = None,
            values: Any = None) -> None:
        for k, i in enumerate(positions[:MAX_LISTED]):
            item: dict[str, Any] = {"row": int(i), "problem": problem}
            if column is not None:
                item["column"] = column
            if values is not None:
                item["value"] = repr(_plain(values[k]))[:80]  # 7.5, not np.float64(7.5)
            self.rows.append(item)
        if len(positions) > MAX_LISTED:
            self.rows.append({"row": None, "problem": f"{problem}: {len(positions) - MAX_LISTED} more rows"})

    def raise_if_any(self) -> None:
        if not self.rows:
            return
        shown = "; ".join(
            f"row {r['row']}" + (f" column {r['column']!r}" if "column" in r else "") + f": {r['problem']}"
            + (f" (got {r['value']})" if "value" in r else "")
            for r in self.rows[:8])
        more = f"; and {len(self.rows) - 8} more" if len(self.rows) > 8 else ""
        raise SchemaError(f"{self.where}: {len(self.rows)} problems: {shown}{more}", rows=self.rows)


def infer_schema(frame: pd.DataFrame, skip: set[str], where: str = "input") -> tuple[Field, ...]:
    """Field declarations from a frame's columns (used once, at the first ingest)."""
    out = []
    for name in frame.columns:
        if name in skip:
            continue
        s = frame[name]
        if pd.api.types.is_bool_dtype(s):
            t = "boolean"
        elif pd.api.types.is_integer_dtype(s):
            t = "integer"
        elif pd.api.types.is_float_dtype(s):
            nonnull = s.dropna()
            t = "integer" if len(nonnull) and np.all(nonnull == np.round(nonnull)) and s.notna().all() else "number"
        elif pd.api.types.is_datetime64_any_dtype(s):
            t = "datetime"
        else:
            t = _infer_text(s)
        text = _column_name(name, where)
        try:
            out.append(Field(name=text, type=t))  # type: ignore[arg-type]
        except ValidationError as exc:  # a name the model refuses ("名称", "my col", "_hash")
            why = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise SchemaError(f"{where}: column {text!r} cannot be a field: {why}; rename it",
                              columns=[text]) from None
    return tuple(out)


def _column_name(name: Any, where: str) -> str:
    text = str(name)
    if text in {"fid", "version", "valid_from", "valid_to", "bbox", "record_from", "dataset"}:
        raise SchemaError(f"{where}: column {text!r} uses a name the cube reserves; rename it or declare it as "
                          "fid/valid time", columns=[text])
    return text


def _infer_text(s: pd.Series) -> str:
    vals = s.dropna()
    if not len(vals):
        return "string"
    if all(isinstance(x, (bool, np.bool_)) for x in vals):  # JSON true/false with nulls: an object column
        return "boolean"
    txt = vals.astype(str)
    num = pd.to_numeric(txt, errors="coerce")
    if num.notna().all():
        return "integer" if (num == np.round(num)).all() and not txt.str.contains(r"[.eE]").any() else "number"
    return "string"


def convert_column(values: pd.Series, f: Field, tz: str, problems: Problems) -> pa.Array:
    """One column to its declared type; rows that do not convert are problems."""
    present = values.notna().to_numpy()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        stripped = values.astype("string").str.strip()
        present = present & (stripped != "").fillna(False).to_numpy()  # to_numpy() may be read-only
        values = stripped.where(present, None)
    if f.type == "string":
        arr = pa.array(values.astype("string").where(present, None), pa.string(), from_pandas=True)
    elif f.type in ("integer", "number"):
        num = pd.to_numeric(values.where(present, None), errors="coerce").astype(float).to_numpy()
        bad = present & np.isnan(num)
        if f.type == "integer":
            whole = np.nan_to_num(num)
            bad |= present & ~bad & ((whole != np.round(whole)) | (np.abs(whole) > 2**53))
        _flag(problems, bad, values, f, f"not a valid {f.type}")
        if f.type == "integer":
            arr = pa.array(np.where(present & ~bad, np.nan_to_num(num), 0).astype(np.int64), pa.int64(),
                           mask=~present | bad)
        else:
            arr = pa.array(num, pa.float64(), mask=~present | bad)
    elif f.type == "boolean":
        if pd.api.types.is_bool_dtype(values):
            arr = pa.array(values.to_numpy(bool), pa.bool_(), mask=~present)
        else:
            lut = {"true": True, "t": True, "yes": True, "1": True, "false": False, "f": False, "no": False, "0": False}
            mapped = values.astype("string").str.lower().map(lut)
            bad = present & mapped.isna().to_numpy()
            _flag(problems, bad, values, f, "not a boolean (true/false)")
            arr = pa.array(mapped, pa.bool_(), from_pandas=True)  # missing and bad values as nulls
    elif f.type == "datetime":
        arr = to_utc(values, tz, problems, f.name)
    else:  # date
        d = pd.to_datetime(values.where(present, None), errors="coerce", format="mixed")
        bad = present & d.isna().to_numpy()
        _flag(problems, bad, values, f, "not a date")
        arr = pa.array(d.dt.date.where(d.notna(), None).tolist(), pa.date32())
    _check_domain(arr, f, values, problems)
    return arr


def to_utc(values: pd.Series, tz: str, problems: Problems, column: str) -> pa.Array:
    """Times to ``timestamp[us, UTC]``; naive ones are in the dataset's zone ``tz``."""
    present = values.notna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(values):
        d = values
    else:
        text = values.where(present, None).astype("string")
        try:
            # Fast path: one vectorised parse when all values share a form.
            d = pd.to_datetime(text, errors="coerce", format="ISO8601")
        except (ValueError, TypeError):
            d = None
        if d is None or (d.isna().to_numpy() & present).any():
            parsed = [_parse_time(v, tz) for v in text.tolist()]
            d = pd.Series(pd.to_datetime(parsed, utc=True, errors="coerce"), index=values.index)
    if getattr(d.dt, "tz", None) is None:
        d = d.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    d = d.dt.tz_convert("UTC")
    bad = present & d.isna().to_numpy()
    if bad.any():
        problems.add(np.flatnonzero(bad), "not a date-time (ISO 8601 expected)", column,
                     values.to_numpy()[bad])
    return pa.array(d.dt.as_unit("us"), TS)


def _parse_time(v: Any, tz: str) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    try:
        t = pd.Timestamp(v)
    except (ValueError, TypeError):
        return None
    if t is pd.NaT:
        return None
    if t.tzinfo is None:
        try:
            t = t.tz_localize(tz)
        except Exception:  # nonexistent or ambiguous local time
            return None
    return t.tz_convert("UTC")


def _flag(problems: Problems, bad: np.ndarray, values: pd.Series, f: Field, what: str) -> None:
    if bad.any():
        problems.add(np.flatnonzero(bad), what, f.name, values.to_numpy()[bad])


def _check_domain(arr: pa.Array, f: Field, values: pd.Series, problems: Problems) -> None:
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
    raw_missing = values.isna().to_numpy()
    if f.required:
        missing = nulls & raw_missing
        if missing.any():
            problems.add(np.flatnonzero(missing), "required value is missing", f.name)
    if f.enum is not None:
        allowed = set(f.enum)
        vals = arr.to_pylist()
        out = np.array([v is not None and v not in allowed for v in vals])
        if out.any():
            problems.add(np.flatnonzero(out), f"not one of {sorted(map(str, allowed))}", f.name,
                         np.array(vals, dtype=object)[out])
    if (f.minimum is not None or f.maximum is not None) and f.type in ("integer", "number"):
        num = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=float)
        low = (num < f.minimum) if f.minimum is not None else np.zeros(len(num), bool)
        high = (num > f.maximum) if f.maximum is not None else np.zeros(len(num), bool)
        out = (low | high) & ~np.isnan(num)
        if out.any():
            problems.add(np.flatnonzero(out), f"outside [{f.minimum}, {f.maximum}]", f.name, num[out])


# geometry -------------------------------------------------------------------------
def check_geometries(geoms: np.ndarray, spec: DatasetSpec, where: str,
                     coords: tuple[np.ndarray, np.ndarray] | None = None) -> str:
    """Presence, finite coordinates and type; returns the geometry type to record.

    ``coords`` is ``shapely.get_coordinates(geoms, return_index=True)`` when
    the caller has it already."""
    problems = Problems(where)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        problems.add(np.flatnonzero(missing), "has no geometry")
    coords, owner = coords if coords is not None else shapely.get_coordinates(geoms, return_index=True)
    finite = np.isfinite(coords).all(axis=1)
    if not finite.all():
        problems.add(np.unique(owner[~finite]), "has NaN or infinite coordinates")
    problems.raise_if_any()
    types = shapely.get_type_id(geoms)
    present_ids = np.unique(types)
    declared = spec.geometry_type
    present = sorted(str(_TYPE_NAMES[i]) for i in present_ids)
    if declared is None:
        multi = [t for t in present if t.startswith("Multi")]
        if len(present) == 1:
            return present[0]
        if len(multi) == 1 and set(present) <= {multi[0], _SINGLE_OF_MULTI[multi[0]]}:
            return multi[0]
        counts = {str(_TYPE_NAMES[i]): int((types == i).sum()) for i in present_ids}
        raise SchemaError(f"{where}: mixed geometry types {counts}; declare geometry_type "
                          "(e.g. 'Geometry' to accept any) or split the dataset", geometry_types=counts)
    if declared == "Geometry":
        return declared
    allowed = {declared, _SINGLE_OF_MULTI.get(declared, declared)}
    if not set(present) <= allowed:
        names = _TYPE_NAMES[types]
        ok = np.isin(names, list(allowed))
        problems.add(np.flatnonzero(~ok), f"is not a {declared}", "geometry", names[~ok])
        problems.raise_if_any()
    return declared


def apply_on_invalid(geoms: np.ndarray, policy: OnInvalid, where: str, ids: np.ndarray,
                     geometry_type: str = "Geometry") -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Returns (geometries, rows kept, report of invalid features).

    ``fix`` repairs with ``make_valid``. A repair may turn a single geometry
    into its multi form (a bow-tie polygon becomes two triangles); that is kept
    and the caller widens the dataset's type. A repair into anything else, or
    into nothing, is skipped instead, and the report says so."""
    if policy not in ("raise", "warn", "fix", "skip"):
        raise ValueError(f"on_invalid must be raise, warn, fix or skip, not {policy!r}")
    valid = in_parallel(shapely.is_valid, geoms)
    keep = np.ones(len(geoms), bool)
    if valid.all():
        return geoms, keep, []
    bad = np.flatnonzero(~valid)
    reasons = shapely.is_valid_reason(geoms[bad])
    report = [{"row": int(i), "fid": _plain(ids[i]), "reason": str(r)} for i, r in zip(bad, reasons)]
    listed = "; ".join(f"row {r['row']} (fid {r['fid']}): {r['reason']}" for r in report[:8])
    if policy == "raise":
        raise InvalidGeometryError(f"{where}: {len(bad)} invalid geometries: {listed}"
                                   + (" ..." if len(bad) > 8 else "")
                                   + "; use on_invalid='fix', 'skip' or 'warn'", invalid=report)
    if policy == "warn":
        warnings.warn(f"{where}: {len(bad)} invalid geometries kept as they are: {listed}", stacklevel=3)
    elif policy == "skip":
        keep[bad] = False
    else:
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
        fixed = geoms[bad]
        broken = shapely.is_empty(fixed) | ~shapely.is_valid(fixed)
        if geometry_type != "Geometry":
            allowed = {geometry_type, _SINGLE_OF_MULTI.get(geometry_type, geometry_type),
                       _MULTI_OF_SINGLE.get(geometry_type, geometry_type)}
            broken |= ~np.isin(_TYPE_NAMES[shapely.get_type_id(fixed)], list(allowed))
        keep[bad[broken]] = False
        for item, gone, g in zip(report, broken, fixed):
            item["action"] = (f"skipped: the repair is a {g.geom_type if g is not None else 'nothing'}, not a "
                              f"{geometry_type}") if gone else "fixed"
    return geoms, keep, report


def in_parallel(fn: Any, arr: np.ndarray, *, min_chunk: int = 100_000) -> np.ndarray:
    """``fn(arr)`` for a vectorised shapely function, in chunks on all cores:
    shapely releases the GIL inside GEOS, so threads really run side by side."""
    workers = os.cpu_count() or 1
    if len(arr) < 2 * min_chunk or workers < 2:
        return fn(arr)
    chunks = np.array_split(arr, min(workers, len(arr) // min_chunk))
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return np.concatenate(list(pool.map(fn, chunks)))


def widened_type(geoms: np.ndarray, geometry_type: str) -> str:
    """``geometry_type``, or its multi form when ``geoms`` holds that."""
    multi = _MULTI_OF_SINGLE.get(geometry_type)
    if multi and len(geoms) and (_TYPE_NAMES[shapely.get_type_id(geoms)] == multi).any():
        return multi
    return geometry_type


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def range_error(exc: CRSError, where: str, source_crs: Any, owner: np.ndarray | None = None) -> CRSError:
    """``check_in_range``'s error, naming the input and the row (``owner`` of each coordinate) of the first
    coordinate out of range rather than its position among all coordinates."""
    first = int(exc.details.get("first_index", 0))
    row = int(owner[first]) if owner is not None else first
    text = str(exc).replace(f"first at index {first}:", f"first in row {row}:")
    return CRSError(f"{where}: coordinates do not fit the source CRS {resolve_crs(source_crs).id}: {text}",
                    **{**exc.details, "row": row})


def to_storage_crs(geoms: np.ndarray, source_crs: Any, spec: DatasetSpec, where: str,
                   coords: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Check the coordinates fit their CRS, then convert to the storage CRS."""
    coords, owner = coords if coords is not None else shapely.get_coordinates(geoms, return_index=True)
    try:
        check_in_range(coords[:, 0], coords[:, 1], source_crs)
    except CRSError as exc:
        raise range_error(exc, where, source_crs, owner) from None
    if resolve_crs(source_crs) == resolve_crs(spec.storage_crs):
        return geoms
    return transform_geometries(geoms, source_crs, spec.storage_crs)


def geometry_hash(geoms: np.ndarray) -> np.ndarray:
    """A 64-bit hash per geometry of its type and coordinates, in order."""
    coords, owner = shapely.get_coordinates(geoms, include_z=True, return_index=True)
    n = len(geoms)
    bits = np.nan_to_num(coords, nan=0.0).view(np.uint64)
    pos = np.arange(len(coords), dtype=np.uint64)
    starts = np.searchsorted(owner, np.arange(n))
    pos -= starts[owner].astype(np.uint64)
    with np.errstate(over="ignore"):
        mix = (bits[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (bits[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)) \
            ^ (bits[:, 2] * np.uint64(0x165667B19E3779F9)) ^ ((pos + np.uint64(1)) * np.uint64(0x27D4EB2F165667C5))
        mix ^= mix >> np.uint64(29)
        acc = np.zeros(n, np.uint64)
        if len(coords):
            # owner is sorted: sum each geometry's run (reduceat; add.at is far slower)
            first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            acc[owner[first]] = np.add.reduceat(mix, first)
        acc ^= shapely.get_type_id(geoms).astype(np.uint64) * np.uint64(0x85EBCA77C2B2AE63)
        acc ^= shapely.get_num_coordinates(geoms).astype(np.uint64) << np.uint64(40)
    return acc


def combine_hashes(*parts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(parts[0]), np.uint64)
    with np.errstate(over="ignore"):
        for k, p in enumerate(parts):
            out = (out * np.uint64(0x100000001B3)) ^ (p.astype(np.uint64) + np.uint64(k + 1))
    return out


def frame_hash(df: pd.DataFrame) -> np.ndarray:
    if df.shape[1] == 0:
        return np.zeros(len(df), np.uint64)
    return pd.util.hash_pandas_object(df, index=False).to_numpy(np.uint64)


def geodataframe_geoms(frame: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(frame.geometry.array, dtype=object)
