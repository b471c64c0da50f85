"""Small-count suppression: how aggregates of personal data are opened.

A natural-person or legal-entity dataset leaves the platform only as counts per
cell of a fixed lattice (and per time step of a fixed calendar), optionally
split by the classes of one attribute (age band, industry). Counts that could
single out a few people are withheld, as statistical offices do with
small-area tables:

1. **cell suppression**: a cell counting fewer than ``min_count`` records
   (but not none) is withheld whole: its total and every class are null;
2. **primary class suppression**: in a cell that is shown, a class counting
   fewer than ``min_count`` (but not none) is null;
3. **secondary suppression**: a cell whose total is shown and in which exactly
   one class is withheld would give that class away by subtraction, so the
   smallest other counted class of that cell is withheld too (and where there
   is none, the total).

Empty cells and classes (0) are shown: they tell where nobody is, not who is.
Sums and means of an attribute are withheld wherever the cell's count is
below ``min_count``. The lattice and the calendar are fixed (a request picks
whole cells and whole steps, never moves their edges), so two answers cannot
be differenced into a smaller area or a shorter time than a cell and a step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: the minimum count per cell of personal data, when a layer does not set one
DEFAULT_MIN_COUNT = 10


def suppress(total: np.ndarray, classes: Mapping[str, np.ndarray], min_count: int
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``total`` and ``classes`` (counts of the same shape) with small counts set to NaN.

    >>> t, c = suppress(np.array([25., 4., 0.]), {"a": np.array([20., 4., 0.]),
    ...                                           "b": np.array([5., 0., 0.])}, 10)
    >>> t.tolist(), c["a"].tolist(), c["b"].tolist()
    ([25.0, nan, 0.0], [nan, nan, 0.0], [nan, nan, 0.0])
    """
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, not {min_count}")
    total = np.array(total, np.float64)
    small_cell = (total > 0) & (total < min_count)
    total[small_cell] = np.nan
    if not classes:
        return total, {}
    names = list(classes)
    c = np.stack([np.array(classes[n], np.float64) for n in names])
    if c.shape[1:] != total.shape:
        raise ValueError(f"class counts of shape {c.shape[1:]} do not match the totals' {total.shape}")
    c[:, small_cell] = np.nan
    primary = (c > 0) & (c < min_count)  # NaN compares False: withheld cells stay as they are
    lone = primary.sum(axis=0) == 1
    candidates = np.where((c > 0) & ~primary, c, np.inf)  # counted classes still shown
    partner = np.argmin(candidates, axis=0)
    has_partner = np.isfinite(np.min(candidates, axis=0))
    secondary = np.zeros_like(primary)
    np.put_along_axis(secondary, partner[None], (lone & has_partner)[None], axis=0)
    c[primary | secondary] = np.nan
    total[lone & ~has_partner] = np.nan  # the classes do not add up to it: withhold the total instead
    return total, {n: c[i] for i, n in enumerate(names)}


def suppress_by_count(values: np.ndarray, counts: np.ndarray, min_count: int) -> np.ndarray:
    """A sum or mean per cell, null wherever the cell counts fewer than ``min_count`` records."""
    out = np.array(values, np.float64)
    out[np.asarray(counts) < min_count] = np.nan
    return out
