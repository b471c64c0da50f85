"""Timings of the space-filling curves and time bins in geoplatform.index.

    python benchmarks/bench_index.py [--reps 5] [--no-10m]

Prints a table and writes it to benchmarks/results/index.txt. Each figure is
the best of ``--reps`` runs (the machine's noise only ever adds time). Points
are uniform over a ~50 km city box in lon/lat; ranges() is measured for
square query boxes of several sizes at seeded random positions, with the
over-coverage (keys covered / keys of the exactly touched cells) that the
caller's residual filter will have to discard.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from geoplatform.index import HilbertCurve2D, TimeBinning, Z3Curve, ZCurve2D

HERE = Path(__file__).resolve().parent
BOUNDS = (108.67, 34.04, 109.23, 34.50)  # about 50 x 50 km
T_BOUNDS = (1_735_689_600_000_000, 1_757_289_600_000_000)  # 2025-01-01 .. +250 days


def best_of(reps: int, fn: Callable[[], object]) -> float:
    """Fastest of ``reps`` calls, in seconds."""
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(BOUNDS[0], BOUNDS[2], n)
    y = rng.uniform(BOUNDS[1], BOUNDS[3], n)
    t = rng.integers(T_BOUNDS[0], T_BOUNDS[1], n)
    return x, y, t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-10m", action="store_true", help="skip the 10M-point runs")
    args = parser.parse_args()

    lines: list[str] = []

    def out(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    out(f"geoplatform.index benchmark -- numpy {np.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} cpu(s), best of {args.reps}")
    # Best-of timing hides most noise, but a busy machine still shows here.
    out(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    out()
    hilbert = HilbertCurve2D(BOUNDS, order=16)
    zcurve = ZCurve2D(BOUNDS, order=16)
    z3 = Z3Curve(BOUNDS, T_BOUNDS)
    hilbert.index([0.0], [0.0])  # build the lookup tables outside the timing

    out(f"{'operation':<44}{'points':>12}{'time ms':>10}{'ms / 1M':>10}{'Mpts/s':>9}")
    out("-" * 85)
    sizes = [1_000_000] + ([] if args.no_10m else [10_000_000])
    for n in sizes:
        x, y, t = points(n)
        keys = hilbert.index(x, y)
        cases: list[tuple[str, Callable[[], object]]] = [
            ("HilbertCurve2D(order=16).index", lambda: hilbert.index(x, y)),
            ("HilbertCurve2D(order=16).inverse", lambda: hilbert.inverse(keys)),
            ("HilbertCurve2D(order=31).index", lambda: HilbertCurve2D(BOUNDS, 31).index(x, y)),
            ("ZCurve2D(order=16).index", lambda: zcurve.index(x, y)),
            ("Z3Curve(21, 21).index", lambda: z3.index(x, y, t)),
            ("TimeBinning('month').bin_ids", lambda: TimeBinning("month").bin_ids(t)),
            ("TimeBinning('week').bin_ids", lambda: TimeBinning("week").bin_ids(t)),
            ("np.argsort(keys) (for scale)", lambda: np.argsort(keys, kind="stable")),
        ]
        for name, fn in cases:
            secs = best_of(args.reps if n <= 1_000_000 else max(2, args.reps // 2), fn)
            ms = secs * 1e3
            out(f"{name:<44}{n:>12,}{ms:>10.1f}{ms * 1e6 / n:>10.1f}{n / secs / 1e6:>9.1f}")
        del x, y, t, keys
    out()

    width = BOUNDS[2] - BOUNDS[0]
    rng = np.random.default_rng(1)
    out(f"{'ranges(): box side':<26}{'curve':<12}{'max_r':>6}{'ranges':>8}{'ms':>8}"
        f"{'over-cover':>12}")
    out("-" * 72)
    for side_km in (0.5, 2.0, 10.0, 25.0):
        side = width * side_km / 50.0
        x0 = rng.uniform(BOUNDS[0], BOUNDS[2] - side, 5)
        y0 = rng.uniform(BOUNDS[1], BOUNDS[3] - side, 5)
        boxes = [(a, b, a + side, b + side) for a, b in zip(x0, y0)]
        for label, curve in (("hilbert16", hilbert), ("z2-16", zcurve)):
            for max_ranges in (16, 64, 256):
                secs = best_of(args.reps, lambda: [curve.ranges(b, max_ranges) for b in boxes])
                ratio, count = [], []
                for b in boxes:
                    r = curve.ranges(b, max_ranges)
                    cx, cy = curve.cells([b[0], b[2]], [b[1], b[3]])
                    exact = int((cx[1] - cx[0] + 1) * (cy[1] - cy[0] + 1))
                    ratio.append(int((r[:, 1] - r[:, 0] + np.uint64(1)).sum()) / exact)
                    count.append(len(r))
                out(f"{f'{side_km:g} km':<26}{label:<12}{max_ranges:>6}{np.mean(count):>8.0f}"
                    f"{secs * 1e3 / len(boxes):>8.2f}{np.mean(ratio):>12.3f}")
    # Space-time ranges: a 2 km box over 7 days.
    side = width * 2.0 / 50.0
    day = 86_400_000_000
    box = (108.9, 34.2, 108.9 + side, 34.2 + side)
    interval = (T_BOUNDS[0] + 30 * day, T_BOUNDS[0] + 37 * day)
    secs = best_of(args.reps, lambda: z3.ranges(box, interval, 64))
    r = z3.ranges(box, interval, 64)
    out(f"{'2 km x 7 d':<26}{'z3-21/21':<12}{64:>6}{len(r):>8}{secs * 1e3:>8.2f}{'':>12}")

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "index.txt").write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {results / 'index.txt'}")


if __name__ == "__main__":
    main()
