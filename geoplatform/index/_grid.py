"""Shared machinery of the curves: validation, quantisation, range descent.

Private to :mod:`geoplatform.index`. Everything here is pure numpy; the curves
add their own bit layout (a state table for Hilbert, bit interleaving for Z).

Completeness of :func:`descend` rests on one property: the quantisation used
for points and the one used for query corners is the *same* monotone function
(:func:`quantize`). Any point inside a query box therefore lands in a cell
between the cells of the box corners, and the descent covers every such cell.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from geoplatform.errors import InvalidParameterValue

Bounds = tuple[float, float, float, float]
UInt64Array = npt.NDArray[np.uint64]

# Refining stops once a level would hold more partial quads than this: past it
# the descent costs more than the extra precision buys after gap merging.
_MIN_QUAD_BUDGET = 2048
_QUADS_PER_RANGE = 32

NAT = int(np.iinfo(np.int64).min)

# Points are encoded in blocks of this many: the half dozen temporaries of a
# block then stay in cache, which on 10M points is about twice as fast as
# whole-array passes.
BLOCK = 1 << 17


def validate_order(order: Any, name: str, low: int, high: int) -> int:
    """``order`` as an int in ``[low, high]``, else InvalidParameterValue."""
    if isinstance(order, bool) or not isinstance(order, numbers.Integral):
        raise InvalidParameterValue(f"{name} must be an integer, got {order!r}")
    if not low <= int(order) <= high:
        raise InvalidParameterValue(f"{name} must be in {low}..{high}, got {order}")
    return int(order)


def _four_floats(values: Sequence[float], name: str) -> Bounds:
    """``values`` as four floats ``(minx, miny, maxx, maxy)``, else InvalidParameterValue."""
    try:
        minx, miny, maxx, maxy = (float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(
            f"{name} must be four numbers (minx, miny, maxx, maxy), got {values!r}"
        ) from exc
    return (minx, miny, maxx, maxy)


def validate_bounds(bounds: Sequence[float], name: str = "bounds") -> Bounds:
    """``(minx, miny, maxx, maxy)``, finite and with positive extent."""
    minx, miny, maxx, maxy = _four_floats(bounds, name)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InvalidParameterValue(f"{name} must be finite, got {bounds!r}")
    if not (minx < maxx and miny < maxy):
        raise InvalidParameterValue(
            f"{name} must have minx < maxx and miny < maxy, got {bounds!r}"
        )
    return (minx, miny, maxx, maxy)


def validate_bbox(bbox: Sequence[float]) -> Bounds:
    """A query bbox: four non-NaN numbers with min <= max (infinite allowed).

    A degenerate box (a point or a line) is legal; an inverted one is not,
    because silently answering "nothing" would hide a caller's axis mix-up.
    """
    minx, miny, maxx, maxy = _four_floats(bbox, "bbox")
    if any(math.isnan(v) for v in (minx, miny, maxx, maxy)):
        raise InvalidParameterValue(f"bbox contains NaN: {bbox!r}")
    if minx > maxx or miny > maxy:
        raise InvalidParameterValue(
            f"bbox must have minx <= maxx and miny <= maxy, got {bbox!r}"
        )
    return (minx, miny, maxx, maxy)


def validate_max_ranges(max_ranges: Any) -> int:
    """``max_ranges`` as a positive int."""
    if isinstance(max_ranges, bool) or not isinstance(max_ranges, numbers.Integral):
        raise InvalidParameterValue(f"max_ranges must be an integer, got {max_ranges!r}")
    if max_ranges < 1:
        raise InvalidParameterValue(f"max_ranges must be >= 1, got {max_ranges}")
    return int(max_ranges)


def as_float_array(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """``values`` as float64 (no copy when it already is)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"{name} must be numeric: {exc}") from exc


def as_microseconds(t: Any, name: str) -> npt.NDArray[np.int64]:
    """datetime64 (any unit, read as UTC), integer epoch microseconds or a
    :class:`datetime.datetime` (naive read as UTC) -> int64 microseconds."""
    if isinstance(t, datetime):
        if t.tzinfo is not None:
            t = t.astimezone(timezone.utc).replace(tzinfo=None)
        t = np.datetime64(t, "us")
    arr = np.asarray(t)
    if arr.dtype.kind == "M":
        us = arr.astype("datetime64[us]").view(np.int64)
        # NaT is int64 min; it has no place on any time axis.
        if us.size and us.min() == NAT:
            raise InvalidParameterValue(f"{name} contains NaT")
        return us
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidParameterValue(f"{name} is beyond the int64 microsecond range")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    raise InvalidParameterValue(
        f"{name} must be datetime64 or integer epoch microseconds, got {arr.dtype}"
    )


def blockwise(
    fn: Callable[..., tuple[npt.NDArray[Any], ...]],
    inputs: Sequence[npt.ArrayLike],
    out_dtypes: Sequence[npt.DTypeLike],
) -> tuple[npt.NDArray[Any], ...]:
    """``fn`` over aligned blocks of the broadcast ``inputs``.

    ``fn`` takes 1-D blocks and returns one 1-D array per ``out_dtypes``;
    the outputs come back in the broadcast shape of the inputs.
    """
    arrays = np.broadcast_arrays(*inputs)
    shape = arrays[0].shape
    flat = [a.ravel() for a in arrays]
    n = flat[0].size
    if n <= BLOCK:
        return tuple(
            np.asarray(r, dtype=d).reshape(shape) for r, d in zip(fn(*flat), out_dtypes)
        )
    outs = tuple(np.empty(n, dtype=d) for d in out_dtypes)
    for start in range(0, n, BLOCK):
        results = fn(*(a[start : start + BLOCK] for a in flat))
        for out, res in zip(outs, results):
            out[start : start + BLOCK] = res
    return tuple(o.reshape(shape) for o in outs)


def quantize(
    values: npt.NDArray[np.float64], low: float, high: float, order: int, name: str
) -> npt.NDArray[np.uint32]:
    """Cell numbers ``floor((v - low) / (high - low) * 2**order)``, clipped.

    Values outside ``[low, high]`` (infinities included) go to the edge cells,
    the value ``high`` itself to the last cell. NaN raises.
    """
    ncells = 1 << order
    # A fresh array (0-d too, where plain ``-`` would give a scalar), so the
    # in-place steps below are safe.
    scaled = np.subtract(values, low, out=np.empty(values.shape))
    # Multiplying by 2**order is exact and the single division is correctly
    # rounded, so a value exactly on a cell edge lands in the upper cell; a
    # precomputed reciprocal would put some of them one cell low.
    scaled *= float(ncells)
    scaled /= high - low
    # min() propagates NaN, so one reduction both detects NaN and costs little.
    if scaled.size and np.isnan(scaled.min()):
        raise InvalidParameterValue(
            f"{name} contains NaN; NaN coordinates cannot be indexed"
        )
    np.clip(scaled, 0.0, float(ncells - 1), out=scaled)
    # Non-negative after clipping, so truncation is floor.
    return scaled.astype(np.uint32)


def cell_centres(
    cells: npt.NDArray[np.integer[Any]], low: float, high: float, order: int
) -> npt.NDArray[np.float64]:
    """The coordinate of the centre of each cell."""
    return low + (cells.astype(np.float64) + 0.5) * ((high - low) / (1 << order))


def check_cells(cells: npt.ArrayLike, order: int, name: str) -> npt.NDArray[np.uint32]:
    """Integer cell coordinates in ``[0, 2**order)`` as uint32."""
    arr = np.asarray(cells)
    if arr.dtype.kind not in "iu":
        raise InvalidParameterValue(f"{name} must be integer cell numbers, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= (1 << order)):
        raise InvalidParameterValue(f"{name} must be in 0..{(1 << order) - 1}")
    return arr.astype(np.uint32)


def check_keys(keys: npt.ArrayLike, nbits: int) -> UInt64Array:
    """Keys as uint64, each below ``2**nbits``."""
    arr = np.asarray(keys)
    if arr.dtype.kind not in "iu":
        raise InvalidParameterValue(f"keys must be integers, got {arr.dtype}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise InvalidParameterValue("keys must be non-negative")
    out = arr.astype(np.uint64)
    if out.size and int(out.max()) >= (1 << nbits):
        raise InvalidParameterValue(f"keys must be below 2**{nbits} for this curve")
    return out


def descend(
    lo: Sequence[int],
    hi: Sequence[int],
    levels: int,
    child_bits: npt.NDArray[np.int64],
    child_state: npt.NDArray[np.int64],
    max_ranges: int,
    max_depth: int | None = None,
) -> UInt64Array:
    """Key ranges covering the cell box ``lo <= c <= hi`` (inclusive, per axis).

    Walks the 2**D-ary tree of the curve level by level, all quads of a level
    at once. ``child_bits[s, d]`` are the per-axis bits (0/1) of the child
    visited ``d``-th from a quad in state ``s``; ``child_state[s, d]`` is that
    child's state. Fully covered quads become one range each, outside quads
    are dropped, partial ones are refined until ``levels``, ``max_depth`` or
    the quad budget is reached, after which they are emitted whole (which
    over-covers but never under-covers). Returns sorted, disjoint ranges, at
    most ``max_ranges`` of them.
    """
    ndim = child_bits.shape[2]
    fanout = child_bits.shape[1]
    lo_a = np.asarray(lo, dtype=np.int64)
    hi_a = np.asarray(hi, dtype=np.int64)
    depth_limit = levels if max_depth is None else max(0, min(levels, max_depth))
    budget = max(_MIN_QUAD_BUDGET, _QUADS_PER_RANGE * max_ranges)

    prefix = np.zeros(1, dtype=np.uint64)
    origin = np.zeros((1, ndim), dtype=np.int64)
    state = np.zeros(1, dtype=np.int64)
    found: list[UInt64Array] = []
    digits = np.arange(fanout, dtype=np.uint64)
    size = 1 << levels
    root_inside = bool(np.all(lo_a <= 0) and np.all(hi_a >= size - 1))
    level = 0
    if not root_inside:
        while level < depth_limit and prefix.size * fanout <= budget:
            half = size >> 1
            # Every partial quad spawns its fanout children, in curve order.
            c_prefix = (prefix[:, None] * np.uint64(fanout) + digits).ravel()
            c_origin = (origin[:, None, :] + child_bits[state] * half).reshape(-1, ndim)
            c_state = child_state[state].ravel()
            c_top = c_origin + (half - 1)
            overlaps = np.all((c_origin <= hi_a) & (c_top >= lo_a), axis=1)
            inside = np.all((c_origin >= lo_a) & (c_top <= hi_a), axis=1)
            level += 1
            size = half
            span = ndim * (levels - level)
            full = c_prefix[inside]
            if full.size:
                found.append(_quad_ranges(full, span))
            partial = overlaps & ~inside
            prefix, origin, state = c_prefix[partial], c_origin[partial], c_state[partial]
            if prefix.size == 0:
                break
    if prefix.size:
        found.append(_quad_ranges(prefix, ndim * (levels - level)))
    if not found:
        return np.zeros((0, 2), dtype=np.uint64)
    return merge_ranges(np.concatenate(found), max_ranges)


def _quad_ranges(prefix: UInt64Array, span: int) -> UInt64Array:
    """The inclusive key range of each quad with key ``prefix`` and ``span`` free bits."""
    start = prefix << np.uint64(span)
    stop = start + np.uint64((1 << span) - 1)
    return np.stack([start, stop], axis=1)


def merge_ranges(ranges: npt.ArrayLike, max_ranges: int) -> UInt64Array:
    """Sort and union inclusive ranges, then close the smallest gaps.

    Keeping the ``max_ranges - 1`` widest gaps open is the merge that adds the
    fewest extra keys, so it is done in one step rather than pairwise.

    >>> merge_ranges([[5, 6], [0, 2], [3, 3], [10, 11]], 2).tolist()
    [[0, 6], [10, 11]]
    """
    max_ranges = validate_max_ranges(max_ranges)
    raw = np.asarray(ranges)
    if raw.size and (raw.dtype.kind not in "iu" or (raw.dtype.kind == "i" and raw.min() < 0)):
        raise InvalidParameterValue("ranges must be non-negative integers")
    r = raw.astype(np.uint64).reshape(-1, 2)
    if r.shape[0] == 0:
        return r.copy()
    if np.any(r[:, 0] > r[:, 1]):
        raise InvalidParameterValue("ranges must have lo <= hi")
    order = np.argsort(r[:, 0], kind="stable")
    lo, hi = r[order, 0], r[order, 1]
    reach = np.maximum.accumulate(hi)
    # A run ends where the next start lies beyond reach + 1; tested as a
    # difference so that a range ending at 2**64 - 1 cannot wrap around.
    ahead = lo[1:] > reach[:-1]
    starts = np.concatenate([[True], ahead & (lo[1:] - np.where(ahead, reach[:-1], 0) > 1)])
    first = np.flatnonzero(starts)
    last = np.concatenate([first[1:] - 1, [lo.size - 1]])
    m_lo, m_hi = lo[first], reach[last]
    if m_lo.size > max_ranges:
        gaps = m_lo[1:] - m_hi[:-1]
        keep = np.sort(np.argsort(gaps, kind="stable")[m_lo.size - max_ranges :])
        m_lo = np.concatenate([m_lo[:1], m_lo[keep + 1]])
        m_hi = np.concatenate([m_hi[keep], m_hi[-1:]])
    return np.stack([m_lo, m_hi], axis=1)
