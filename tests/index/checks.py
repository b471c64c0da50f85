"""Checks on key ranges shared by the curve tests."""

from __future__ import annotations

import numpy as np


def covered(keys: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """For each key, whether some inclusive range holds it (ranges sorted)."""
    if len(ranges) == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.searchsorted(ranges[:, 0], keys, side="right") - 1
    ok = pos >= 0
    hi = ranges[np.clip(pos, 0, None), 1]
    return ok & (keys <= hi)


def assert_well_formed(ranges: np.ndarray, max_ranges: int) -> None:
    assert ranges.dtype == np.uint64
    assert ranges.ndim == 2 and ranges.shape[1] == 2
    assert 0 < len(ranges) <= max_ranges
    assert np.all(ranges[:, 0] <= ranges[:, 1])
    # Strictly increasing and not even touching: touching ones should have merged.
    assert np.all(ranges[1:, 0] > ranges[:-1, 1] + np.uint64(1))
