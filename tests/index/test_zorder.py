"""Properties of ZCurve2D, Z3Curve and merge_ranges, against bit-by-bit oracles."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoplatform.errors import InvalidParameterValue
from geoplatform.index import Z3Curve, ZCurve2D, merge_ranges
from tests.index.checks import assert_well_formed, covered

BOUNDS = (100.0, -5.0, 110.0, 5.0)
T0 = -86_400_000_000 * 365  # a year before the epoch, so negative times are in play
T1 = 86_400_000_000 * 365 * 3
HOUR = 3_600_000_000


def interleave(values: list[int], bits: int) -> int:
    """Bit i of values[j] goes to bit i * len(values) + j."""
    key = 0
    for i in range(bits):
        for j, v in enumerate(values):
            key |= ((v >> i) & 1) << (i * len(values) + j)
    return key


# -- Z2 -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_z2_matches_reference_and_inverts(data: st.DataObject) -> None:
    order = data.draw(st.integers(1, 31))
    cx = data.draw(st.integers(0, (1 << order) - 1))
    cy = data.draw(st.integers(0, (1 << order) - 1))
    curve = ZCurve2D(BOUNDS, order)
    key = curve.index_cells(cx, cy)
    assert int(key) == interleave([cx, cy], order)
    bx, by = curve.inverse_cells(key)
    assert (int(bx), int(by)) == (cx, cy)
    x, y = curve.inverse(key)
    assert int(curve.index(x, y)) == int(key)


@pytest.mark.parametrize("order", range(1, 7))
def test_z2_exhaustive_bijection(order: int) -> None:
    curve = ZCurve2D(BOUNDS, order)
    n = 1 << order
    gx, gy = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keys = curve.index_cells(gx.ravel(), gy.ravel())
    assert np.array_equal(np.sort(keys), np.arange(n * n, dtype=np.uint64))
    bx, by = curve.inverse_cells(keys)
    assert np.array_equal(bx, gx.ravel()) and np.array_equal(by, gy.ravel())


coords = st.floats(90.0, 120.0, allow_nan=False)
unit = st.floats(0, 1)
fractions = st.lists(st.tuples(unit, unit, unit), min_size=1, max_size=40)


@settings(max_examples=250, deadline=None)
@given(
    order=st.integers(1, 24),
    corners=st.tuples(coords, st.floats(-10, 10), coords, st.floats(-10, 10)),
    max_ranges=st.integers(1, 80),
    f=fractions,
)
def test_z2_ranges_complete(order: int, corners: tuple, max_ranges: int, f: list) -> None:
    x0, x1 = sorted(corners[::2])
    y0, y1 = sorted(corners[1::2])
    curve = ZCurve2D(BOUNDS, order)
    ranges = curve.ranges((x0, y0, x1, y1), max_ranges)
    assert_well_formed(ranges, max_ranges)
    a = np.array(f)
    px = np.concatenate([np.clip(x0 + a[:, 0] * (x1 - x0), x0, x1), [x0, x1]])
    py = np.concatenate([np.clip(y0 + a[:, 1] * (y1 - y0), y0, y1), [y0, y1]])
    assert covered(curve.index(px, py), ranges).all()


@settings(max_examples=100, deadline=None)
@given(order=st.integers(1, 5), data=st.data())
def test_z2_ranges_exact_when_not_merged(order: int, data: st.DataObject) -> None:
    n = 1 << order
    x0, x1 = sorted(data.draw(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
    y0, y1 = sorted(data.draw(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
    curve = ZCurve2D((0.0, 0.0, float(n), float(n)), order)
    ranges = curve.ranges((x0 + 0.5, y0 + 0.5, x1 + 0.5, y1 + 0.5), 10_000)
    gx, gy = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    inside = (gx >= x0) & (gx <= x1) & (gy >= y0) & (gy <= y1)
    assert np.array_equal(covered(curve.index_cells(gx, gy).ravel(), ranges), inside.ravel())


def test_z2_edges() -> None:
    curve = ZCurve2D(BOUNDS, 8)
    assert int(curve.index(BOUNDS[2], BOUNDS[3])) == (1 << 16) - 1
    assert int(curve.index(-1e300, 1e300)) == interleave([0, 255], 8)
    with pytest.raises(InvalidParameterValue, match="x contains NaN"):
        curve.index([np.nan], [0.0])
    assert curve.ranges((0, -100, 1000, 100)).tolist() == [[0, (1 << 16) - 1]]


# -- Z3 -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 21), st.integers(1, 21), st.data())
def test_z3_matches_reference_and_inverts(oxy: int, ot: int, data: st.DataObject) -> None:
    curve = Z3Curve(BOUNDS, (T0, T1), oxy, ot)
    cx = data.draw(st.integers(0, (1 << oxy) - 1))
    cy = data.draw(st.integers(0, (1 << oxy) - 1))
    ct = data.draw(st.integers(0, (1 << ot) - 1))
    m = max(oxy, ot)
    key = curve.index_cells(cx, cy, ct)
    # The shorter axis is aligned to the top bits of the octree.
    assert int(key) == interleave([cx << (m - oxy), cy << (m - oxy), ct << (m - ot)], m)
    assert tuple(int(v) for v in curve.inverse_cells(key)) == (cx, cy, ct)
    x, y, t = curve.inverse(key)
    assert T0 <= int(t) < T1
    assert int(curve.index(x, y, t)) == int(key)


def test_z3_time_quantisation_and_inputs() -> None:
    curve = Z3Curve(BOUNDS, (T0, T1), order_xy=4, order_t=3)
    span = (T1 - T0) // 8
    t = np.array([T0 - 1, T0, T0 + span - 1, T0 + span, T1 - 1, T1, T1 + 10**15])
    _, _, ct = curve.cells(np.full(7, 105.0), np.zeros(7), t)
    assert ct.tolist() == [0, 0, 0, 1, 7, 7, 7]
    as_dt = t.astype("datetime64[us]")
    assert np.array_equal(curve.index(105.0, 0.0, as_dt), curve.index(105.0, 0.0, t))
    with pytest.raises(InvalidParameterValue, match="NaT"):
        curve.index(105.0, 0.0, np.array(["NaT"], dtype="datetime64[us]"))
    with pytest.raises(InvalidParameterValue):
        curve.index(105.0, 0.0, [0.5])  # float times are ambiguous


@settings(max_examples=250, deadline=None)
@given(
    orders=st.tuples(st.integers(1, 21), st.integers(1, 21)),
    corners=st.tuples(coords, st.floats(-10, 10), coords, st.floats(-10, 10)),
    times=st.tuples(st.integers(T0 - 10**13, T1 + 10**13), st.integers(T0 - 10**13, T1 + 10**13)),
    open_end=st.sampled_from(["none", "start", "end", "both"]),
    max_ranges=st.integers(1, 80),
    f=fractions,
)
def test_z3_ranges_complete(
    orders: tuple, corners: tuple, times: tuple, open_end: str, max_ranges: int, f: list
) -> None:
    x0, x1 = sorted(corners[::2])
    y0, y1 = sorted(corners[1::2])
    ts, te = sorted(times)
    curve = Z3Curve(BOUNDS, (T0, T1), *orders)
    interval = (
        None if open_end in ("start", "both") else ts,
        None if open_end in ("end", "both") else te,
    )
    ranges = curve.ranges((x0, y0, x1, y1), interval, max_ranges)
    assert_well_formed(ranges, max_ranges)
    a = np.array(f)
    lo_t = T0 - 10**14 if interval[0] is None else ts
    hi_t = T1 + 10**14 if interval[1] is None else te
    px = np.concatenate([np.clip(x0 + a[:, 0] * (x1 - x0), x0, x1), [x0, x1]])
    py = np.concatenate([np.clip(y0 + a[:, 1] * (y1 - y0), y0, y1), [y0, y1]])
    pt = np.concatenate([lo_t + (a[:, 2] * (hi_t - lo_t)).astype(np.int64), [lo_t, hi_t]])
    pt = np.clip(pt, lo_t, hi_t)
    assert covered(curve.index(px, py, pt), ranges).all()


def test_z3_ranges_exact_small() -> None:
    curve = Z3Curve((0.0, 0.0, 4.0, 4.0), (0, 4 * HOUR), order_xy=2, order_t=2)
    ranges = curve.ranges((1.5, 0.5, 2.5, 3.5), (HOUR, 2 * HOUR - 1), 10_000)
    g = np.array(np.meshgrid(range(4), range(4), range(4), indexing="ij")).reshape(3, -1)
    keys = curve.index_cells(*g)
    inside = (g[0] >= 1) & (g[0] <= 2) & (g[1] >= 0) & (g[1] <= 3) & (g[2] == 1)
    assert np.array_equal(covered(keys, ranges), inside)
    whole = curve.ranges((-1, -1, 9, 9), None)
    assert whole.tolist() == [[0, (1 << 6) - 1]]


def test_z3_bad_input() -> None:
    with pytest.raises(InvalidParameterValue):
        Z3Curve(BOUNDS, (5, 5))
    with pytest.raises(InvalidParameterValue):
        Z3Curve(BOUNDS, (0, 1, 2))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue):
        Z3Curve(BOUNDS, (0, 10), order_xy=22)
    curve = Z3Curve(BOUNDS, (T0, T1))
    with pytest.raises(InvalidParameterValue):
        curve.ranges((100, 0, 101, 1), (10, 5))
    with pytest.raises(InvalidParameterValue):
        curve.inverse([1 << 63])
    assert curve.key_bits == 63
    assert curve == Z3Curve(BOUNDS, (np.datetime64(T0, "us"), np.datetime64(T1, "us")))


# -- merge_ranges ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 20)), min_size=1, max_size=30),
    st.integers(1, 10),
)
def test_merge_ranges(pairs: list, max_ranges: int) -> None:
    raw = [(lo, lo + width) for lo, width in pairs]
    union = set().union(*(range(lo, hi + 1) for lo, hi in raw))
    merged = merge_ranges(raw, max_ranges)
    assert_well_formed(merged, max_ranges)
    got = set().union(*(range(int(lo), int(hi) + 1) for lo, hi in merged))
    assert union <= got
    # Only gaps are ever filled: the hull is unchanged, and with enough room
    # the result is exactly the union.
    assert min(got) == min(union) and max(got) == max(union)
    starts = sorted(v for v in union if v - 1 not in union)
    stops = sorted(v for v in union if v + 1 not in union)
    if len(starts) <= max_ranges:
        assert got == union
    else:
        assert len(merged) == max_ranges
        # Closing the smallest gaps adds the fewest keys: that is the optimum.
        gaps = sorted(lo - hi - 1 for hi, lo in zip(stops[:-1], starts[1:]))
        assert len(got) == len(union) + sum(gaps[: len(starts) - max_ranges])


def test_blockwise_path_matches_small_calls() -> None:
    rng = np.random.default_rng(5)
    n = 270_000  # more than one internal block
    x = rng.uniform(95, 115, n)
    y = rng.uniform(-8, 8, n)
    t = rng.integers(T0 - 10**12, T1 + 10**12, n)
    z2 = ZCurve2D(BOUNDS, 19)
    z3 = Z3Curve(BOUNDS, (T0, T1), 17, 20)
    k2, k3 = z2.index(x, y), z3.index(x, y, t)
    picks = np.concatenate([rng.integers(0, n, 30), [n - 1]])
    assert k2[picks].tolist() == [int(z2.index(x[i], y[i])) for i in picks]
    assert k3[picks].tolist() == [int(z3.index(x[i], y[i], t[i])) for i in picks]
    assert np.array_equal(z2.index_cells(*z2.cells(x, y)), k2)
    assert np.array_equal(z3.index_cells(*z3.cells(x, y, t)), k3)


def test_merge_ranges_edges() -> None:
    top = np.uint64(2**64 - 1)
    r = np.array([[top - np.uint64(3), top], [0, 3], [5, 9], [top, top]], dtype=np.uint64)
    assert merge_ranges(r, 5).tolist() == [[0, 3], [5, 9], [2**64 - 4, 2**64 - 1]]
    assert merge_ranges(np.zeros((0, 2), dtype=np.int64), 3).shape == (0, 2)
    for bad, max_ranges in [([[3, 2]], 1), ([[-1, 2]], 1), ([[0.5, 2]], 1), ([[0, 2]], 0)]:
        with pytest.raises(InvalidParameterValue):
            merge_ranges(bad, max_ranges)
