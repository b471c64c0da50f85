"""Properties of HilbertCurve2D, checked against an independent bit-by-bit oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoplatform.errors import InvalidParameterValue
from geoplatform.index import HilbertCurve2D
from tests.index.checks import assert_well_formed, covered

BOUNDS = (-10.0, 40.0, 30.0, 60.0)


def reference_key(order: int, x: int, y: int) -> int:
    """The textbook one-bit-per-step Hilbert encoding (start (0,0), end (n-1,0))."""
    key = 0
    s = 1 << (order - 1)
    while s:
        rx = 1 if x & s else 0
        ry = 1 if y & s else 0
        key += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = s - 1 - x, s - 1 - y
            x, y = y, x
        s >>= 1
    return key


# -- encoding -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_index_cells_matches_reference(data: st.DataObject) -> None:
    order = data.draw(st.integers(1, 31))
    cx = data.draw(st.integers(0, (1 << order) - 1))
    cy = data.draw(st.integers(0, (1 << order) - 1))
    curve = HilbertCurve2D(BOUNDS, order)
    assert int(curve.index_cells(cx, cy)) == reference_key(order, cx, cy)


@pytest.mark.parametrize("order", range(1, 8))
def test_exhaustive_bijection_and_adjacency(order: int) -> None:
    curve = HilbertCurve2D(BOUNDS, order)
    n = 1 << order
    gx, gy = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keys = curve.index_cells(gx.ravel(), gy.ravel())
    assert np.array_equal(np.sort(keys), np.arange(n * n, dtype=np.uint64))
    back_x, back_y = curve.inverse_cells(keys)
    assert np.array_equal(back_x, gx.ravel()) and np.array_equal(back_y, gy.ravel())
    # Walk the curve in key order: every step moves to an edge neighbour.
    wx, wy = curve.inverse_cells(np.arange(n * n, dtype=np.uint64))
    steps = np.abs(np.diff(wx)) + np.abs(np.diff(wy))
    assert np.all(steps == 1)
    assert (wx[0], wy[0]) == (0, 0)
    assert (wx[-1], wy[-1]) == (n - 1, 0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 31), st.data())
def test_inverse_centre_reindexes_to_same_key(order: int, data: st.DataObject) -> None:
    curve = HilbertCurve2D(BOUNDS, order)
    keys = np.array(
        data.draw(st.lists(st.integers(0, (1 << 2 * order) - 1), min_size=1, max_size=20)),
        dtype=np.uint64,
    )
    x, y = curve.inverse(keys)
    assert np.all((x > BOUNDS[0]) & (x < BOUNDS[2]) & (y > BOUNDS[1]) & (y < BOUNDS[3]))
    assert np.array_equal(curve.index(x, y), keys)


def test_large_random_batch_round_trips_at_padding_orders() -> None:
    rng = np.random.default_rng(7)
    for order in (9, 16, 17, 24, 31):  # odd and even padding to the 8-bit chunks
        curve = HilbertCurve2D(BOUNDS, order)
        cx = rng.integers(0, 1 << order, 20_000)
        cy = rng.integers(0, 1 << order, 20_000)
        keys = curve.index_cells(cx, cy)
        assert int(keys.max()) < 1 << (2 * order)
        bx, by = curve.inverse_cells(keys)
        assert np.array_equal(bx, cx) and np.array_equal(by, cy)
        sample = rng.integers(0, 20_000, 50)
        assert [int(k) for k in keys[sample]] == [
            reference_key(order, int(cx[i]), int(cy[i])) for i in sample
        ]


def test_clipping_edges_and_shapes() -> None:
    curve = HilbertCurve2D((0.0, 0.0, 1.0, 1.0), order=4)
    # The max edge belongs to the last cell, outside values to the edge cells.
    cx, cy = curve.cells([1.0, 5.0, -3.0, np.inf, 0.0], [1.0, 0.5, -np.inf, 0.0, 0.999999])
    assert cx.tolist() == [15, 15, 0, 15, 0]
    assert cy.tolist() == [15, 8, 0, 0, 15]
    assert np.array_equal(curve.index(7.0, -2.0), curve.index_cells(15, 0))
    keys = curve.index(np.zeros((2, 3)), np.linspace(0, 1, 3))  # broadcasts
    assert keys.shape == (2, 3) and keys.dtype == np.uint64
    assert curve.index([], []).shape == (0,)


def test_nan_is_rejected_with_a_clear_message() -> None:
    curve = HilbertCurve2D(BOUNDS)
    with pytest.raises(InvalidParameterValue, match="y contains NaN"):
        curve.index([0.0, 1.0], [50.0, np.nan])


@pytest.mark.parametrize(
    "bounds, order",
    [
        ((0, 0, 0, 1), 8),
        ((0, 0, 1, np.nan), 8),
        ((0, 0, 1), 8),
        ((0, 0, 1, 1), 0),
        ((0, 0, 1, 1), 32),
        ((0, 0, 1, 1), True),
        ((0, 0, 1, 1), 2.0),
    ],
)
def test_bad_construction(bounds: tuple, order: object) -> None:
    with pytest.raises(InvalidParameterValue):
        HilbertCurve2D(bounds, order)  # type: ignore[arg-type]


def test_bad_keys_and_cells() -> None:
    curve = HilbertCurve2D(BOUNDS, order=3)
    with pytest.raises(InvalidParameterValue):
        curve.inverse([64])
    with pytest.raises(InvalidParameterValue):
        curve.inverse([-1])
    with pytest.raises(InvalidParameterValue):
        curve.index_cells([8], [0])


# -- ranges -------------------------------------------------------------------

coords = st.floats(-20.0, 70.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    order=st.integers(1, 20),
    corners=st.tuples(coords, coords, coords, coords),
    max_ranges=st.integers(1, 100),
    fractions=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=50),
)
def test_ranges_are_complete(
    order: int, corners: tuple, max_ranges: int, fractions: list
) -> None:
    x0, x1 = sorted(corners[::2])
    y0, y1 = sorted(corners[1::2])
    curve = HilbertCurve2D(BOUNDS, order)
    ranges = curve.ranges((x0, y0, x1, y1), max_ranges)
    assert_well_formed(ranges, max_ranges)
    f = np.array(fractions)
    # Points spread over the box, plus its corners (which may lie outside BOUNDS).
    px = np.concatenate([x0 + f[:, 0] * (x1 - x0), [x0, x1, x0, x1]])
    py = np.concatenate([y0 + f[:, 1] * (y1 - y0), [y0, y0, y1, y1]])
    px, py = np.clip(px, x0, x1), np.clip(py, y0, y1)
    assert covered(curve.index(px, py), ranges).all()


@settings(max_examples=150, deadline=None)
@given(order=st.integers(1, 5), data=st.data())
def test_ranges_are_exact_when_not_merged(order: int, data: st.DataObject) -> None:
    n = 1 << order
    x0, x1 = sorted(data.draw(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
    y0, y1 = sorted(data.draw(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
    curve = HilbertCurve2D((0.0, 0.0, float(n), float(n)), order)
    # Box edges inside cells, so the touched cells are exactly x0..x1, y0..y1.
    ranges = curve.ranges((x0 + 0.3, y0 + 0.3, x1 + 0.7, y1 + 0.7), max_ranges=10_000)
    gx, gy = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    inside = (gx >= x0) & (gx <= x1) & (gy >= y0) & (gy <= y1)
    keys = curve.index_cells(gx, gy)
    assert np.array_equal(covered(keys.ravel(), ranges), inside.ravel())
    total = int((ranges[:, 1] - ranges[:, 0] + np.uint64(1)).sum())
    assert total == int(inside.sum())


def test_ranges_edge_cases() -> None:
    curve = HilbertCurve2D((0.0, 0.0, 1.0, 1.0), order=10)
    # The whole domain (and beyond) is one range.
    assert curve.ranges((-5, -5, 5, 5)).tolist() == [[0, (1 << 20) - 1]]
    # A degenerate box on the max corner is the one last-column cell.
    (lo, hi), = curve.ranges((1.0, 1.0, 1.0, 1.0)).tolist()
    assert lo == hi == int(curve.index(1.0, 1.0))
    # A box wholly outside the bounds still covers the clipped keys of its points.
    r = curve.ranges((2.0, 0.2, 3.0, 0.3))
    assert covered(curve.index([2.5, 3.0], [0.25, 0.2]), r).all()
    # max_ranges=1 gives one hull range; max_depth=1 stops at quadrants.
    assert len(curve.ranges((0.1, 0.1, 0.9, 0.9), 1)) == 1
    coarse = curve.ranges((0.1, 0.1, 0.2, 0.2), max_depth=1)
    assert coarse.tolist() == [[0, (1 << 18) - 1]]


def test_ranges_cover_little_extra() -> None:
    curve = HilbertCurve2D((0.0, 0.0, 1.0, 1.0), order=16)
    bbox = (0.31, 0.27, 0.44, 0.39)
    ranges = curve.ranges(bbox, max_ranges=64)
    cx, cy = curve.cells([bbox[0], bbox[2]], [bbox[1], bbox[3]])
    exact = int((cx[1] - cx[0] + 1) * (cy[1] - cy[0] + 1))
    total = int((ranges[:, 1] - ranges[:, 0] + np.uint64(1)).sum())
    assert exact <= total < 1.2 * exact


@pytest.mark.parametrize(
    "bbox, max_ranges",
    [((0, 0, np.nan, 1), 8), ((1, 0, 0, 1), 8), ((0, 0, 1), 8), ((0, 0, 1, 1), 0)],
)
def test_ranges_bad_input(bbox: tuple, max_ranges: int) -> None:
    with pytest.raises(InvalidParameterValue):
        HilbertCurve2D(BOUNDS).ranges(bbox, max_ranges)


def test_equality_and_repr() -> None:
    a = HilbertCurve2D(BOUNDS, 12)
    assert a == HilbertCurve2D(list(BOUNDS), 12)
    assert a != HilbertCurve2D(BOUNDS, 13)
    assert hash(a) == hash(HilbertCurve2D(BOUNDS, 12))
    assert "order=12" in repr(a)


def test_distinct_cells_get_distinct_keys_in_bulk() -> None:
    curve = HilbertCurve2D(BOUNDS, order=16)
    rng = np.random.default_rng(3)
    x = rng.uniform(BOUNDS[0], BOUNDS[2], 200_000)
    y = rng.uniform(BOUNDS[1], BOUNDS[3], 200_000)
    keys = curve.index(x, y)
    cx, cy = curve.cells(x, y)
    cells = cx * (1 << 16) + cy
    assert len(np.unique(keys)) == len(np.unique(cells))


def test_blockwise_path_matches_small_calls() -> None:
    # More points than one internal block, in a 2-D shape: results must equal
    # per-point calls, with the shape kept.
    curve = HilbertCurve2D(BOUNDS, order=13)
    rng = np.random.default_rng(11)
    n = 300_001
    x = rng.uniform(-15, 35, n).reshape(1, n)
    y = rng.uniform(35, 65, n).reshape(1, n)
    keys = curve.index(x, y)
    assert keys.shape == (1, n)
    picks = rng.integers(0, n, 40)
    assert [int(curve.index(x[0, i], y[0, i])) for i in picks] == keys[0, picks].tolist()
    assert int(keys[0, -1]) == int(curve.index(x[0, -1], y[0, -1]))
    cx, cy = curve.inverse(keys)
    assert cx.shape == (1, n)
    assert np.array_equal(curve.index(cx, cy), keys)
    with pytest.raises(InvalidParameterValue, match="NaN"):
        y[0, -1] = np.nan  # in the last block only
        curve.index(x, y)


def test_package_imports_no_storage_libraries() -> None:
    # Static, because importing geoplatform.index also runs geoplatform's own
    # __init__, whose imports are not this package's.
    import ast
    from pathlib import Path

    import geoplatform.index as gi

    assert set(gi.__all__) <= set(dir(gi))
    forbidden = {"pyarrow", "pandas", "geopandas", "shapely", "pyproj", "xarray", "dask"}
    for path in Path(gi.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, (path.name, name)
                if name.startswith("geoplatform"):
                    assert name in ("geoplatform.errors", "geoplatform.index") or name.startswith(
                        "geoplatform.index."
                    ), (path.name, name)
