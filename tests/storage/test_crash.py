"""SIGKILL during an ingest: the store keeps its last committed snapshot whole.

A child process (``_crash_child.py``) ingests 120k points in six monthly
partitions (16 data files; 20k of the points are new versions, so the commit
also retires 20k rows) into a store holding one committed snapshot of 40k
points; the parent kills it with SIGKILL at a random point. The points are
spread over the phases of an uncontended, timed run of the same ingest
(reading, validating, writing files, the catalog commit, after it): each
kill comes a random fraction of its phase's calibrated length after the
child reports that phase's start. The child's last report says where each
kill landed.

After each kill: the store opens, its head is either the old snapshot or the
killed ingest's, whole (equal row for row to what that snapshot committed,
found by brute force); every file the catalog names exists and reads; and
the next writer's ingest leaves the data folder holding exactly the files
the catalog names.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from geoplatform.cube.backend import ScanRequest
from geoplatform.cube.cube import Cube, open_cube
from geoplatform.settings import Settings
from geoplatform.storage.geoparquet import GeoParquetBackend
from tests.storage.contract import POINTS, points_frame

CHILD = Path(__file__).with_name("_crash_child.py")
SETTINGS = {"row_group_size": 1000, "max_file_rows": 10_000, "progress": False}
BASE_ROWS = 40_000
INPUT_ROWS = 120_000
OVERLAP = 20_000  # input ids that already exist: new versions, old rows retired
TRIALS = 20
BOX = (116.3, 39.7, 116.45, 39.85)
# Phases in the order the child reports them; a kill is classified by the last one seen.
PHASES = ("go", "read", "normalise", "write", "file", "written", "commit", "committed", "done")


def open_store(path: Path) -> Cube:
    return open_cube(path, settings=Settings(**SETTINGS), backend="geoparquet")


def current(cube: Cube, snapshot: int | None = None) -> pa.Table:
    """fid, version and v of every record visible at ``snapshot``, by fid."""
    be = cube.backend
    snap = be.head("pts") if snapshot is None else snapshot
    t = be.scan("pts", ScanRequest(snapshot=snap, columns=("v",), with_geometry=False))
    return pa.table({c: t.column(c) for c in ("fid", "version", "v")}).sort_by("fid")


def data_files(store: Path) -> set[str]:
    return {p.relative_to(store).as_posix() for p in (store / "data").rglob("*") if p.is_file()}


class Child:
    """One child process: spawned on a copy of the template store, imported,
    waiting for 'go'. A thread reads its phase marks as they come, stamped
    with the parent's clock, so a kill can be timed from the start of a phase."""

    def __init__(self, template: Path, trial: Path, source: Path) -> None:
        shutil.copytree(template, trial / "store")
        self.store = trial / "store"
        self.stderr = open(trial / "stderr.txt", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(self.store), str(source), json.dumps(SETTINGS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.marks: list[tuple[str, float]] = []  # (phase, child's seconds since go)
        self.seen: dict[str, float] = {}  # phase -> parent's perf_counter when first read
        self.ready = threading.Event()
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.perf_counter()
            word, _, rest = line.strip().partition(" ")
            if word == "ready":
                self.ready.set()
            elif word in PHASES:
                with self.changed:
                    self.marks.append((word, float(rest)))
                    self.seen.setdefault(word, now)
                    self.changed.notify_all()
        self.ready.set()
        with self.changed:
            self.seen.setdefault("exit", time.perf_counter())
            self.changed.notify_all()

    def go(self) -> None:
        if not self.ready.wait(60) or self.proc.poll() is not None:
            self.stderr.seek(0)
            pytest.fail(f"child did not start:\n{self.stderr.read()}")
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill_after(self, anchor: str, offset: float) -> None:
        """SIGKILL ``offset`` seconds after the child reports ``anchor`` (or when it exits)."""
        with self.changed:
            self.changed.wait_for(lambda: anchor in self.seen or "exit" in self.seen, timeout=60)
            at = self.seen.get(anchor, time.perf_counter()) + offset
        time.sleep(max(0.0, at - time.perf_counter()))
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def finish(self) -> None:
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.stderr):
            if f is not None:
                f.close()

    @property
    def last(self) -> str:
        return self.marks[-1][0] if self.marks else "start"

    def at(self, phase: str) -> float:
        return next(t for p, t in self.marks if p == phase)


def phase_of(last: str) -> str:
    """Where a kill landed, from the last mark the child printed."""
    return {"start": "reading", "go": "reading", "read": "reading", "normalise": "validating",
            "write": "writing", "file": "writing", "written": "writing", "commit": "commit",
            "committed": "after", "done": "after"}[last]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A template store with one committed ingest, the input file, and the
    two states a killed ingest may leave: before it and after it."""
    root = tmp_path_factory.mktemp("crash")
    template = root / "template"
    cube = open_store(template)
    cube.create_dataset(POINTS)
    base = points_frame(BASE_ROWS, seed=1)
    base_snap = cube.ingest("pts", base).snapshot_id
    before = current(cube)
    cube.close()
    source = root / "input.parquet"
    inp = points_frame(INPUT_ROWS, seed=2, start=BASE_ROWS - OVERLAP)
    inp.to_parquet(source)
    # The state the killed ingest commits, by brute force.
    merged = pd.concat([base[~base["id"].isin(inp["id"])].assign(version=1),
                        inp.assign(version=np.where(inp["id"].isin(base["id"]), 2, 1))])
    after = pa.table({"fid": merged["id"].to_numpy(), "version": merged["version"].astype("int32").to_numpy(),
                      "v": merged["v"].to_numpy()}).sort_by("fid")
    xy = shapely.get_coordinates(pd.concat([base[~base["id"].isin(inp["id"])], inp]).geometry.to_numpy())
    in_box = int(((xy[:, 0] >= BOX[0]) & (xy[:, 0] <= BOX[2]) & (xy[:, 1] >= BOX[1]) & (xy[:, 1] <= BOX[3])).sum())
    bxy = shapely.get_coordinates(base.geometry.to_numpy())
    in_box_before = int(((bxy[:, 0] >= BOX[0]) & (bxy[:, 0] <= BOX[2]) & (bxy[:, 1] >= BOX[1])
                         & (bxy[:, 1] <= BOX[3])).sum())
    return {"root": root, "template": template, "source": source, "base_snap": base_snap,
            "before": before, "after": after, "in_box": (in_box_before, in_box)}


def check_store(store: Path, setup: dict[str, Any], child: Child) -> tuple[str, int]:
    """The store after a kill: whole at its head, nothing half-visible.
    Returns the phase the kill landed in and the number of leftover files."""
    cube = open_store(store)
    try:
        be = cube.backend
        assert isinstance(be, GeoParquetBackend)
        snaps = cube.snapshots("pts")
        committed = len(snaps) == 3
        assert [s.operation for s in snaps] == ["create", "ingest", "ingest"][:len(snaps)] and len(snaps) >= 2
        assert snaps[1].id == setup["base_snap"]
        last = child.last
        if last in ("committed", "done"):
            assert committed, "the child returned from its commit but the snapshot is not there"
        if PHASES.index(last if last != "start" else "go") < PHASES.index("commit"):
            assert not committed, f"a snapshot appeared though the child was killed at {last!r}"
        want = setup["after"] if committed else setup["before"]
        got = current(cube)
        assert got.num_rows == want.num_rows
        assert got.equals(want)
        assert cube.stats("pts").rows == want.num_rows
        assert cube.count("pts", bbox=BOX) == setup["in_box"][int(committed)]
        if committed:  # the old snapshot is still exactly what it was
            assert current(cube, setup["base_snap"]).equals(setup["before"])
            assert cube.count("pts", bbox=BOX, as_of=setup["base_snap"]) == setup["in_box"][0]
        # Every file the catalog names is there, whole, with the rows it says.
        named = be.db.con.execute("SELECT path, rows FROM files").fetchall()
        for rel, rows in named:
            assert pq.read_metadata(store / rel).num_rows == rows
            assert pq.read_table(store / rel, columns=["fid"]).num_rows == rows
        leftovers = data_files(store) - {rel for rel, _ in named}
        if committed:
            assert not leftovers
        # The next writer sweeps whatever the killed one left.
        extra = points_frame(5, seed=3, start=900_000)
        cube.ingest("pts", extra)
        assert data_files(store) == {r[0] for r in be.db.con.execute("SELECT path FROM files")}
        assert not any(p.endswith(".tmp") for p in data_files(store))
        assert cube.stats("pts").rows == want.num_rows + 5
        return ("commit-landed" if committed and phase_of(last) == "commit" else phase_of(last)), len(leftovers)
    finally:
        cube.close()


def plan_kills(calib: Child, rng: np.random.Generator) -> list[tuple[str, float]]:
    """(anchor phase, offset) of each kill: random points spread over every
    phase of the timed run, in proportion to how much can go wrong there."""
    t = {p: calib.at(p) for p in ("go", "normalise", "write", "written", "commit", "committed")}
    windows = [  # anchor, length, trials
        ("go", t["normalise"], 3),  # starting and reading the source
        ("normalise", t["write"] - t["normalise"], 3),  # validating and versioning
        ("write", t["written"] - t["write"], 7),  # writing the data files
        ("commit", t["committed"] - t["commit"], 5),  # the catalog transaction
        ("done", 0.1, 2),  # after it all
    ]
    # Files appear only late in the writing window (sorting comes first), so
    # its kills fall in its second half: most of them then leave files behind.
    kills = [(a, float(rng.uniform(0.5 * n_s if a == "write" else 0.0, n_s))) for a, n_s, n in windows
             for _ in range(n)]
    assert len(kills) == TRIALS
    return kills


def test_sigkill_during_ingest(setup: dict[str, Any]) -> None:
    root, template, source = setup["root"], setup["template"], setup["source"]
    rng = np.random.default_rng(12)
    # The timed, uncontended run (it also checks the state the ingest commits).
    calib = Child(template, root / "calibration", source)
    calib.go()
    calib.finish()
    assert calib.proc.returncode == 0 and calib.last == "done", calib.marks
    assert [p for p, _ in calib.marks].count("file") >= 12
    phase, _ = check_store(calib.store, setup, calib)
    assert phase == "after"
    kills = plan_kills(calib, rng)

    landed: list[tuple[str, float, str, int]] = []
    child = Child(template, root / "trial0", source)
    for trial, (anchor, offset) in enumerate(kills):
        child.go()
        child.kill_after(anchor, offset)
        child.finish()
        killed = child
        if trial + 1 < len(kills):  # the next child imports while this store is checked
            child = Child(template, root / f"trial{trial + 1}", source)
        phase, leftovers = check_store(killed.store, setup, killed)
        landed.append((anchor, offset, phase, leftovers))
        shutil.rmtree(killed.store.parent)
    phases = [p for _, _, p, _ in landed]
    summary = ", ".join(f"{a}+{o:.3f}s:{p}:{n}" for a, o, p, n in landed)
    print(f"calibration {calib.at('done'):.2f} s; kills (anchor+offset:phase:leftover files): {summary}")
    assert {"reading", "validating", "writing", "after"} <= set(phases), summary
    assert {"commit", "commit-landed"} & set(phases), summary
    # Kills while writing left files behind, and the next writer removed them.
    assert any(n for _, _, p, n in landed if p == "writing"), summary
