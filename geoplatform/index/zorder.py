"""Z-order (Morton) curves in 2-D and in space-time (3-D), vectorised.

Keys interleave the bits of the cell coordinates, x in the lowest bit of each
group, then y, then t (the GeoMesa Z2/Z3 layout). Interleaving spreads each
coordinate with a handful of shift-and-mask steps ("magic numbers") over the
whole array, so there is no per-point Python work.

A Z curve jumps at quadrant boundaries, so it clusters worse than Hilbert,
but its keys are cheap to compute and to reason about, and the 3-D version
gives one key for space and time together.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from geoplatform.errors import InvalidParameterValue
from geoplatform.index import _grid
from geoplatform.index._curve2d import Curve2D
from geoplatform.index._grid import Bounds, UInt64Array

__all__ = ["ZCurve2D", "Z3Curve"]

_U64 = np.uint64

# (needed_above, shift, mask) steps that spread the low 32 bits of a value to
# every 2nd bit; a step only moves bits at or above ``needed_above``, so short
# values skip it.
_SPREAD2 = (
    (16, 16, 0x0000FFFF0000FFFF),
    (8, 8, 0x00FF00FF00FF00FF),
    (4, 4, 0x0F0F0F0F0F0F0F0F),
    (2, 2, 0x3333333333333333),
    (1, 1, 0x5555555555555555),
)
# ... and the low 21 bits to every 3rd bit.
_SPREAD3 = (
    (16, 32, 0x001F00000000FFFF),
    (8, 16, 0x001F0000FF0000FF),
    (4, 8, 0x100F00F00F00F00F),
    (2, 4, 0x10C30C30C30C30C3),
    (1, 2, 0x1249249249249249),
)
Steps = tuple[tuple[int, int, int], ...]


def _spread(v: npt.NDArray[Any], steps: Steps, bits: int) -> UInt64Array:
    """Spread the low ``bits`` bits of ``v`` apart by the given magic steps."""
    out = v.astype(np.uint64)
    for needed_above, shift, mask in steps:
        if bits > needed_above:
            out = (out | (out << _U64(shift))) & _U64(mask)
    return out


def _compact(v: UInt64Array, steps: Steps, bits: int) -> UInt64Array:
    """Inverse of :func:`_spread` (``v`` must be pre-shifted to bit 0)."""
    masks = [m for _, _, m in reversed(steps)] + [(1 << bits) - 1]
    out = v & _U64(masks[0])
    for (_, shift, _), mask in zip(reversed(steps), masks[1:]):
        out = (out | (out >> _U64(shift))) & _U64(mask)
    return out


@lru_cache(maxsize=None)
def _child_tables(ndim: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Z children in key order: digit ``d`` has bit ``i`` for axis ``i``."""
    digits = np.arange(1 << ndim, dtype=np.int64)
    bits = ((digits[:, None] >> np.arange(ndim)) & 1)[None, :, :]
    return bits, np.zeros((1, 1 << ndim), dtype=np.int64)


class ZCurve2D(Curve2D):
    """A 2-D Z-order curve of ``order`` bits per axis (1..31) over ``bounds``.

    >>> curve = ZCurve2D((0.0, 0.0, 4.0, 4.0), order=2)
    >>> curve.index([0.5, 1.5, 0.5, 3.5], [0.5, 0.5, 1.5, 3.5]).tolist()
    [0, 1, 2, 15]
    >>> curve.ranges((0, 0, 3.9, 1.9)).tolist()
    [[0, 7]]
    """

    def inverse_cells(
        self, keys: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Integer cell coordinates of keys."""
        k = _grid.check_keys(keys, self.key_bits)
        return (
            _compact(k, _SPREAD2, 32).astype(np.int64),
            _compact(k >> _U64(1), _SPREAD2, 32).astype(np.int64),
        )

    def inverse(
        self, keys: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Coordinates of the centres of the cells of ``keys``."""
        cx, cy = self.inverse_cells(keys)
        minx, miny, maxx, maxy = self.bounds
        return (
            _grid.cell_centres(cx, minx, maxx, self.order),
            _grid.cell_centres(cy, miny, maxy, self.order),
        )

    # -- the encoding --------------------------------------------------------

    def _encode(self, cx: npt.NDArray[np.uint32], cy: npt.NDArray[np.uint32]) -> UInt64Array:
        sx = _spread(cx, _SPREAD2, self.order)
        sy = _spread(cy, _SPREAD2, self.order)
        sy <<= _U64(1)
        sx |= sy
        return sx

    def _descent_tables(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return _child_tables(2)


class Z3Curve:
    """A space-time Z curve: ``order_xy`` bits for x and y, ``order_t`` for t.

    ``t_bounds`` is ``(start, end)`` in epoch microseconds (UTC). Times may be
    given as int64 microseconds or as datetime64. Each order is 1..21 so that
    a key fits 63 bits. When the orders differ, the shorter axis is aligned to
    the top bits, so every level of the octree halves every axis that still
    has bits; the keys are then sparse (some bit positions are always 0).

    >>> curve = Z3Curve((0, 0, 2, 2), (0, 2_000_000), order_xy=1, order_t=1)
    >>> curve.index([0.5, 1.5, 0.5], [0.5, 0.5, 0.5], [0, 0, 1_500_000]).tolist()
    [0, 1, 4]
    """

    def __init__(
        self,
        bounds: Sequence[float],
        t_bounds: tuple[int, int],
        order_xy: int = 21,
        order_t: int = 21,
    ) -> None:
        self.bounds: Bounds = _grid.validate_bounds(bounds)
        us = _grid.as_microseconds(t_bounds, "t_bounds")
        if us.shape != (2,):
            raise InvalidParameterValue(f"t_bounds must be (start, end), got {t_bounds!r}")
        t0, t1 = int(us[0]), int(us[1])
        if not t0 < t1:
            raise InvalidParameterValue(f"t_bounds must have start < end, got {t_bounds!r}")
        if t1 - t0 > np.iinfo(np.int64).max:
            raise InvalidParameterValue("t_bounds span more than int64 microseconds")
        self.t_bounds: tuple[int, int] = (t0, t1)
        self.order_xy: int = _grid.validate_order(order_xy, "order_xy", 1, 21)
        self.order_t: int = _grid.validate_order(order_t, "order_t", 1, 21)
        self._levels = max(self.order_xy, self.order_t)
        self._shift_xy = self._levels - self.order_xy
        self._shift_t = self._levels - self.order_t

    def __repr__(self) -> str:
        return (
            f"Z3Curve(bounds={self.bounds!r}, t_bounds={self.t_bounds!r}, "
            f"order_xy={self.order_xy}, order_t={self.order_t})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Z3Curve) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash((Z3Curve, self._identity()))

    def _identity(self) -> tuple[Any, ...]:
        return (self.bounds, self.t_bounds, self.order_xy, self.order_t)

    @property
    def key_bits(self) -> int:
        """Number of bit positions a key may use (``3 * max(order_xy, order_t)``)."""
        return 3 * self._levels

    def cells(
        self, x: npt.ArrayLike, y: npt.ArrayLike, t: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Integer cell coordinates ``(cx, cy, ct)``, each clipped to its grid."""
        ax, ay, at = np.broadcast_arrays(
            _grid.as_float_array(x, "x"),
            _grid.as_float_array(y, "y"),
            _grid.as_microseconds(t, "t"),
        )
        minx, miny, maxx, maxy = self.bounds
        return (
            _grid.quantize(ax, minx, maxx, self.order_xy, "x").astype(np.int64),
            _grid.quantize(ay, miny, maxy, self.order_xy, "y").astype(np.int64),
            self._time_cells(at).astype(np.int64),
        )

    def _time_cells(self, t: npt.NDArray[np.int64]) -> npt.NDArray[np.uint32]:
        t0, t1 = self.t_bounds
        # Clip in integers first so that t - t0 cannot overflow; the float
        # step after is monotone, which is all completeness needs.
        offset = (np.clip(t, t0, t1) - t0).astype(np.float64)
        return _grid.quantize(offset, 0.0, float(t1 - t0), self.order_t, "t")

    def index(self, x: npt.ArrayLike, y: npt.ArrayLike, t: npt.ArrayLike) -> UInt64Array:
        """Z3 keys of points at times ``t``; outside values clip to the edge cells."""
        minx, miny, maxx, maxy = self.bounds

        def block(
            bx: npt.NDArray[np.float64], by: npt.NDArray[np.float64], bt: npt.NDArray[np.int64]
        ) -> tuple[UInt64Array]:
            return (
                self._encode(
                    _grid.quantize(bx, minx, maxx, self.order_xy, "x"),
                    _grid.quantize(by, miny, maxy, self.order_xy, "y"),
                    self._time_cells(bt),
                ),
            )

        inputs = (
            _grid.as_float_array(x, "x"),
            _grid.as_float_array(y, "y"),
            _grid.as_microseconds(t, "t"),
        )
        return _grid.blockwise(block, inputs, (np.uint64,))[0]

    def index_cells(
        self, cx: npt.ArrayLike, cy: npt.ArrayLike, ct: npt.ArrayLike
    ) -> UInt64Array:
        """Z3 keys of integer cell coordinates."""
        ax, ay, at = np.broadcast_arrays(np.asarray(cx), np.asarray(cy), np.asarray(ct))
        return self._encode(
            _grid.check_cells(ax, self.order_xy, "cx"),
            _grid.check_cells(ay, self.order_xy, "cy"),
            _grid.check_cells(at, self.order_t, "ct"),
        )

    def _encode(
        self,
        cx: npt.NDArray[np.uint32],
        cy: npt.NDArray[np.uint32],
        ct: npt.NDArray[np.uint32],
    ) -> UInt64Array:
        n, sxy, st = self._levels, _U64(self._shift_xy), _U64(self._shift_t)
        key = _spread(cx.astype(np.uint64) << sxy, _SPREAD3, n)
        key |= _spread(cy.astype(np.uint64) << sxy, _SPREAD3, n) << _U64(1)
        key |= _spread(ct.astype(np.uint64) << st, _SPREAD3, n) << _U64(2)
        return key

    def inverse_cells(
        self, keys: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Integer cell coordinates ``(cx, cy, ct)`` of keys."""
        k = _grid.check_keys(keys, self.key_bits)
        cx, cy, ct = (_compact(k >> _U64(i), _SPREAD3, 21) for i in range(3))
        return (
            (cx >> _U64(self._shift_xy)).astype(np.int64),
            (cy >> _U64(self._shift_xy)).astype(np.int64),
            (ct >> _U64(self._shift_t)).astype(np.int64),
        )

    def inverse(
        self, keys: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Cell centres ``(x, y, t)``; ``t`` is int64 microseconds, rounded down."""
        cx, cy, ct = self.inverse_cells(keys)
        minx, miny, maxx, maxy = self.bounds
        t0, t1 = self.t_bounds
        # A centre re-indexes to its own cell as long as cells are at least a
        # few microseconds wide (span >= 2**order_t us).
        t_mid = t0 + np.floor((ct + 0.5) * ((t1 - t0) / (1 << self.order_t))).astype(np.int64)
        return (
            _grid.cell_centres(cx, minx, maxx, self.order_xy),
            _grid.cell_centres(cy, miny, maxy, self.order_xy),
            t_mid,
        )

    def ranges(
        self,
        bbox: Sequence[float],
        interval: tuple[Any, Any] | None = None,
        max_ranges: int = 64,
        *,
        max_depth: int | None = None,
    ) -> UInt64Array:
        """Inclusive key ranges covering every cell of ``bbox`` x ``interval``.

        ``interval`` is a closed ``(start, end)`` in epoch microseconds or
        datetime64; ``None`` for either end (or for the whole interval) means
        unbounded. Complete, sorted, disjoint, at most ``max_ranges`` long.
        """
        max_ranges = _grid.validate_max_ranges(max_ranges)
        minx, miny, maxx, maxy = _grid.validate_bbox(bbox)
        t0, t1 = self.t_bounds
        start, end = (None, None) if interval is None else interval
        ts = None if start is None else int(_grid.as_microseconds(start, "interval start"))
        te = None if end is None else int(_grid.as_microseconds(end, "interval end"))
        if ts is not None and te is not None and ts > te:
            raise InvalidParameterValue(f"interval must have start <= end, got {interval!r}")
        # An open end is the edge of the curve's time range; quantisation
        # clips, so this holds even when the other end lies outside it.
        t_lo = t0 if ts is None else ts
        t_hi = t1 if te is None else te
        cx, cy, ct = self.cells([minx, maxx], [miny, maxy], np.array([t_lo, t_hi], dtype=np.int64))
        sxy, st = self._shift_xy, self._shift_t
        # Align the short axis to the octree, taking its whole sub-range.
        lo = (int(cx[0]) << sxy, int(cy[0]) << sxy, int(ct[0]) << st)
        hi = (
            ((int(cx[1]) + 1) << sxy) - 1,
            ((int(cy[1]) + 1) << sxy) - 1,
            ((int(ct[1]) + 1) << st) - 1,
        )
        bits, states = _child_tables(3)
        return _grid.descend(lo, hi, self._levels, bits, states, max_ranges, max_depth)
