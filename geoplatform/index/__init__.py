"""Space-filling curves and time bins: pure numpy, no storage.

A curve maps coordinates to uint64 keys (``index``) and a query box to coarse
inclusive key ranges (``ranges``) that cover every cell the box touches. The
ranges may over-cover, so whoever reads rows by them must still filter the
rows exactly; that split mirrors GeoMesa's index key spaces.

>>> from geoplatform.index import HilbertCurve2D
>>> curve = HilbertCurve2D((0.0, 0.0, 100.0, 100.0), order=8)
>>> keys = curve.index([10.0, 90.0], [10.0, 90.0])
>>> r = curve.ranges((0.0, 0.0, 20.0, 20.0), max_ranges=8)
>>> bool(((keys[0] >= r[:, 0]) & (keys[0] <= r[:, 1])).any())
True
"""

from __future__ import annotations

from geoplatform.index._grid import merge_ranges
from geoplatform.index.hilbert import HilbertCurve2D
from geoplatform.index.timebins import TimeBinning, TimeUnit
from geoplatform.index.zorder import Z3Curve, ZCurve2D

__all__ = [
    "HilbertCurve2D",
    "TimeBinning",
    "TimeUnit",
    "Z3Curve",
    "ZCurve2D",
    "merge_ranges",
]
