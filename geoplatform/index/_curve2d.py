"""What every 2-D curve over a rectangle shares, whatever its bit layout.

Private to :mod:`geoplatform.index`. :class:`Curve2D` holds the bounds and
order, equality, quantisation of points to cells, the blockwise point
encoding and the range descent; a curve adds only its encoding:

* ``_encode(cx, cy)``: uint32 cell coordinates -> uint64 keys;
* ``_descent_tables()``: the child tables :func:`_grid.descend` walks;
* ``inverse_cells`` and ``inverse``, which each curve decodes its own way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from geoplatform.index import _grid
from geoplatform.index._grid import Bounds, UInt64Array


class Curve2D:
    """A space-filling curve of ``order`` bits per axis (1..31) over ``bounds``.

    ``bounds`` is ``(minx, miny, maxx, maxy)`` and is cut into a grid of
    ``2**order`` by ``2**order`` cells; keys are uint64 below ``4**order``.
    """

    # The curve class that derives directly from Curve2D: it names the curve
    # in repr() and decides equality, so a subclass of a curve still equals it.
    _family: ClassVar[type[Curve2D]]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if Curve2D in cls.__bases__:
            cls._family = cls

    def __init__(self, bounds: Sequence[float], order: int = 16) -> None:
        self.bounds: Bounds = _grid.validate_bounds(bounds)
        self.order: int = _grid.validate_order(order, "order", 1, 31)

    def __repr__(self) -> str:
        return f"{self._family.__name__}(bounds={self.bounds!r}, order={self.order})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, self._family)
            and self.bounds == other.bounds
            and self.order == other.order
        )

    def __hash__(self) -> int:
        return hash((self._family, self.bounds, self.order))

    @property
    def key_bits(self) -> int:
        """Number of significant bits of a key (``2 * order``)."""
        return 2 * self.order

    def cells(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Integer cell coordinates of points, clipped to the grid.

        >>> from geoplatform.index import HilbertCurve2D
        >>> HilbertCurve2D((0, 0, 4, 4), order=2).cells([4.0, -9.0], [1.0, 2.5])
        (array([3, 0]), array([1, 2]))
        """
        cx, cy = self._cells_u32(x, y)
        return cx.astype(np.int64), cy.astype(np.int64)

    def index(self, x: npt.ArrayLike, y: npt.ArrayLike) -> UInt64Array:
        """Keys of points (vectorised; broadcasts ``x`` against ``y``).

        Points outside the bounds take the key of the nearest edge cell; NaN
        raises :class:`~geoplatform.errors.InvalidParameterValue`.
        """
        minx, miny, maxx, maxy = self.bounds
        order = self.order

        def block(
            bx: npt.NDArray[np.float64], by: npt.NDArray[np.float64]
        ) -> tuple[UInt64Array]:
            return (
                self._encode(
                    _grid.quantize(bx, minx, maxx, order, "x"),
                    _grid.quantize(by, miny, maxy, order, "y"),
                ),
            )

        ax, ay = _grid.as_float_array(x, "x"), _grid.as_float_array(y, "y")
        return _grid.blockwise(block, (ax, ay), (np.uint64,))[0]

    def index_cells(self, cx: npt.ArrayLike, cy: npt.ArrayLike) -> UInt64Array:
        """Keys of integer cell coordinates in ``[0, 2**order)``."""
        ax, ay = np.broadcast_arrays(np.asarray(cx), np.asarray(cy))
        return self._encode(
            _grid.check_cells(ax, self.order, "cx"), _grid.check_cells(ay, self.order, "cy")
        )

    def ranges(
        self, bbox: Sequence[float], max_ranges: int = 64, *, max_depth: int | None = None
    ) -> UInt64Array:
        """Inclusive key ranges ``[[lo, hi], ...]`` covering every cell the bbox touches.

        Complete for every point inside ``bbox`` (also points outside the
        curve's bounds, which :meth:`index` clips to the edge), possibly
        covering extra keys. Sorted, disjoint and at most ``max_ranges`` long.
        ``max_depth`` stops the quadtree descent early (coarser, cheaper).
        """
        max_ranges = _grid.validate_max_ranges(max_ranges)
        minx, miny, maxx, maxy = _grid.validate_bbox(bbox)
        cx, cy = self._cells_u32([minx, maxx], [miny, maxy])
        bits, states = self._descent_tables()
        return _grid.descend(
            (int(cx[0]), int(cy[0])),
            (int(cx[1]), int(cy[1])),
            self.order,
            bits,
            states,
            max_ranges,
            max_depth,
        )

    # -- what each curve supplies -------------------------------------------

    def _encode(self, cx: npt.NDArray[np.uint32], cy: npt.NDArray[np.uint32]) -> UInt64Array:
        """Keys of uint32 cell coordinates (already checked to be on the grid)."""
        raise NotImplementedError

    def _descent_tables(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(child_bits, child_state)`` of the curve, as :func:`_grid.descend` takes them."""
        raise NotImplementedError

    # -- internals ----------------------------------------------------------

    def _cells_u32(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
        ax, ay = np.broadcast_arrays(_grid.as_float_array(x, "x"), _grid.as_float_array(y, "y"))
        minx, miny, maxx, maxy = self.bounds
        return (
            _grid.quantize(ax, minx, maxx, self.order, "x"),
            _grid.quantize(ay, miny, maxy, self.order, "y"),
        )
