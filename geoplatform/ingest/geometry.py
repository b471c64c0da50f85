"""The geometry column of an ingest, with a fast path for points.

Most of the cube's rows are point observations. For them every step of the
pipeline (checks, CRS conversion, bbox, WKB, hashing) works on two float
arrays; shapely objects are never built. Other geometries go through shapely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geoplatform.crs import check_in_range, resolve_crs, transform_xy
from geoplatform.cube.model import DatasetSpec
from geoplatform.errors import CRSError
from geoplatform.ingest import validate as v

_POINT_WKB = 21  # byte order (1) + type (4) + x, y (16)


@dataclass
class Encoded:
    """What the store keeps of the geometry column."""

    wkb: pa.Array
    bounds: np.ndarray  # (n, 4)
    hash: np.ndarray  # uint64
    geometry_type: str
    keep: np.ndarray
    invalid: list[dict[str, Any]]


def points_from_wkb(arr: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """x and y of a WKB column that holds only 2D little-endian points, else None."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if arr.type not in (pa.binary(), pa.large_binary()) or arr.null_count or not len(arr):
        return None
    width = 8 if arr.type == pa.large_binary() else 4
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if width == 8 else np.int32)
    offsets = offsets[arr.offset: arr.offset + len(arr) + 1]
    if not np.all(np.diff(offsets) == _POINT_WKB):
        return None
    data = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]: offsets[-1]].reshape(-1, _POINT_WKB)
    if not (np.all(data[:, 0] == 1) and np.all(data[:, 1] == 1) and not data[:, 2:5].any()):
        return None
    xy = np.ascontiguousarray(data[:, 5:21]).view("<f8")
    return xy[:, 0].copy(), xy[:, 1].copy()


def points_to_wkb(x: np.ndarray, y: np.ndarray) -> pa.Array:
    n = len(x)
    buf = np.empty((n, _POINT_WKB), np.uint8)
    buf[:, 0] = 1
    buf[:, 1:5] = np.array([1, 0, 0, 0], np.uint8)
    buf[:, 5:21] = np.column_stack([x, y]).astype("<f8").view(np.uint8).reshape(n, 16)
    offsets = np.arange(0, (n + 1) * _POINT_WKB, _POINT_WKB, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf)])


def _is_iso_wkb(arr: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every value's header is ISO WKB (no EWKB SRID or Z/M flag bits)."""
    heads = pc.unique(pc.binary_slice(arr, 0, 5)).to_pylist()
    for h in heads:
        if h is None or len(h) < 5:
            return False
        code = int.from_bytes(h[1:5], "little" if h[0] == 1 else "big")
        if code > 3007:  # ISO codes are 1..7 plus 1000, 2000 or 3000
            return False
    return True


def _point_hash(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = (x.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (y.view(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
        return h ^ (h >> np.uint64(31))


def encode(geometry: Any, spec: DatasetSpec, source_crs: Any, on_invalid: v.OnInvalid, where: str,
           ids: np.ndarray, *, need_hash: bool = True) -> Encoded:
    """Check, convert to the storage CRS and encode a geometry column.

    ``geometry`` is a WKB arrow array or an array of shapely geometries.
    ``need_hash``: compute the content hash (only datasets with their own
    ids compare versions by it).
    """
    xy = None
    source_wkb = geometry if isinstance(geometry, (pa.Array, pa.ChunkedArray)) else None
    if isinstance(geometry, (pa.Array, pa.ChunkedArray)):
        xy = points_from_wkb(geometry)
        if xy is None:
            geometry = v.in_parallel(shapely.from_wkb, geometry.to_numpy(zero_copy_only=False))
    elif spec.geometry_type in (None, "Point") and len(geometry):
        types = shapely.get_type_id(geometry)
        if np.all(types == 0) and not shapely.has_z(geometry).any():
            xy = (shapely.get_x(geometry), shapely.get_y(geometry))
    if xy is not None and spec.geometry_type not in (None, "Point", "MultiPoint", "Geometry"):
        xy = None
        if isinstance(geometry, (pa.Array, pa.ChunkedArray)):
            geometry = v.in_parallel(shapely.from_wkb, geometry.to_numpy(zero_copy_only=False))
    if xy is not None:
        return _encode_points(xy[0], xy[1], spec, source_crs, where)
    geoms = np.asarray(geometry, dtype=object)
    coords = shapely.get_coordinates(geoms, return_index=True)
    gtype = v.check_geometries(geoms, spec, where, coords)
    converted = v.to_storage_crs(geoms, source_crs, spec, where, coords)
    geoms, keep, invalid = v.apply_on_invalid(converted, on_invalid, where, ids, gtype)
    if invalid and on_invalid == "fix":
        gtype = v.widened_type(geoms[keep], gtype)
    unchanged = converted is geometry or (converted is not None and source_wkb is not None
                                          and resolve_crs(source_crs) == resolve_crs(spec.storage_crs))
    if source_wkb is not None and unchanged and not (invalid and on_invalid == "fix") and _is_iso_wkb(source_wkb):
        # Same CRS, nothing repaired: the source's WKB is what to_wkb would make.
        wkb = source_wkb.combine_chunks() if isinstance(source_wkb, pa.ChunkedArray) else source_wkb
        wkb = wkb.cast(pa.binary())
    else:
        wkb = pa.array(shapely.to_wkb(geoms, flavor="iso"), pa.binary())
    ghash = v.geometry_hash(geoms) if need_hash else np.zeros(len(geoms), np.uint64)
    return Encoded(wkb, shapely.bounds(geoms), ghash, gtype, keep, invalid)


def _encode_points(x: np.ndarray, y: np.ndarray, spec: DatasetSpec, source_crs: Any, where: str) -> Encoded:
    problems = v.Problems(where)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        problems.add(np.flatnonzero(bad), "has NaN or infinite coordinates")
        problems.raise_if_any()
    try:
        check_in_range(x, y, source_crs)
    except CRSError as exc:
        raise v.range_error(exc, where, source_crs) from None
    if resolve_crs(source_crs) != resolve_crs(spec.storage_crs):
        x, y = transform_xy(x, y, source_crs, spec.storage_crs)
    gtype = spec.geometry_type or "Point"
    n = len(x)
    return Encoded(points_to_wkb(x, y), np.column_stack([x, y, x, y]), _point_hash(x, y), gtype,
                   np.ones(n, bool), [])
