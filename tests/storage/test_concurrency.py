"""Several processes writing to one store at once.

Each test runs on both backends. In the embedded store writers of one
dataset take turns (a lock file per dataset) and writers of different
datasets share the SQLite catalog; in PostGIS an advisory lock per dataset
and a row lock at commit do the same. Either way no commit may be
lost, every snapshot lands on top of the one before it, and each feature's
history stays one unbroken sequence of versions.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from pathlib import Path
from typing import Any

import pytest

from geoplatform.cube.cube import Cube, open_cube
from geoplatform.settings import Settings
from geoplatform.storage.geoparquet import GeoParquetBackend
from tests.storage.contract import POINTS, points_frame, spec

SETTINGS = Settings(row_group_size=1000, max_file_rows=8000, progress=False, lock_timeout_s=120)
WORKERS = 4
COMMITS = 5
ROWS = 1000
CTX = mp.get_context("spawn")


def open_store(store: Path | str) -> Cube:
    """The store at a folder (the embedded store) or a database URL (PostGIS)."""
    return open_cube(store, settings=SETTINGS)


@pytest.fixture(params=["geoparquet", "postgis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the store of a test is: a folder, or a schema of the PostGIS test database."""
    if request.param == "postgis":
        return str(request.getfixturevalue("pg_schema"))
    return tmp_path / "store"


def _run(target: Any, store: Path | str, results: Any, barrier: Any, wid: int, *args: Any) -> None:
    """Run one worker, sending ("ok", wid, value) or ("error", wid, traceback)."""
    try:
        barrier.wait(timeout=120)  # open together too: a new store's first open races
        cube = open_store(store)
        results.put(("ok", wid, target(cube, wid, *args)))
        cube.close()
    except BaseException:  # reported to the parent, which fails the test
        barrier.abort()
        results.put(("error", wid, traceback.format_exc()))


def _ingest_own(cube: Cube, wid: int, name: str, create: bool) -> list[int]:
    """COMMITS ingests of ROWS new features each, with ids of this worker's own."""
    if create:
        cube.create_dataset(spec(POINTS, name))
    snaps = []
    for k in range(COMMITS):
        frame = points_frame(ROWS, seed=1000 * wid + k, prefix=f"w{wid}_{k}_")
        report = cube.ingest(name, frame)
        assert report.rows_added == ROWS
        snaps.append(report.snapshot_id)
    return snaps


def _upsert_same(cube: Cube, wid: int, fids: list[str]) -> list[int]:
    """COMMITS upserts of the same features: every one a new version of each."""
    snaps = []
    for k in range(COMMITS):
        frame = points_frame(len(fids), seed=7)  # same places and times each time
        frame["id"] = fids
        frame["v"] = float(100 * wid + k)  # a value no other commit writes
        report = cube.ingest("pts", frame)
        assert report.rows_changed == len(fids) and report.rows_added == 0
        snaps.append(report.snapshot_id)
    return snaps


def _open_new_stores(root: Path, results: Any, barrier: Any, wid: int, rounds: int) -> None:
    """Open each of ``rounds`` new stores at the same instant as the other
    workers, and create a dataset of this worker's in it."""
    try:
        for r in range(rounds):
            barrier.wait(timeout=120)
            backend = GeoParquetBackend(str(root / f"store{r}"), SETTINGS)
            with Cube(backend, SETTINGS) as cube:
                cube.create_dataset(spec(POINTS, f"ds{wid}"))
        results.put(("ok", wid, rounds))
    except BaseException:
        barrier.abort()  # the others stop waiting for this one
        results.put(("error", wid, traceback.format_exc()))


def run_workers(store: Path | str, target: Any, args: list[tuple[Any, ...]]) -> dict[int, Any]:
    """Start one process per ``args`` item, released together; their results by worker id."""
    results = CTX.Queue()
    barrier = CTX.Barrier(len(args))
    procs = [CTX.Process(target=_run, args=(target, store, results, barrier, wid, *a))
             for wid, a in enumerate(args)]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    errors = []
    for _ in procs:
        status, wid, value = results.get(timeout=300)
        if status == "ok":
            out[wid] = value
        else:
            errors.append(f"worker {wid}:\n{value}")
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert not errors, "\n".join(errors)
    return out


def check_files(cube: Cube, store: Path | str) -> None:
    """The data folder holds exactly the files the catalog names (the embedded store)."""
    if not isinstance(store, Path):
        return
    on_disk = {p.relative_to(store).as_posix() for p in (store / "data").rglob("*") if p.is_file()}
    named = {r[0] for r in cube.backend.db.con.execute("SELECT path FROM files")}  # type: ignore[attr-defined]
    assert on_disk == named


def check_chain(cube: Cube, name: str, n: int) -> list[int]:
    """``n`` snapshots, each on top of the one before; returns their ids."""
    snaps = cube.snapshots(name)
    ids = [s.id for s in snaps]
    assert len(snaps) == n
    assert ids == sorted(set(ids))
    assert [s.parent_id for s in snaps] == [None, *ids[:-1]]
    assert [s.operation for s in snaps] == ["create"] + ["ingest"] * (n - 1)
    return ids


def test_four_writers_one_dataset(where: Path | str) -> None:
    store = where
    with open_store(store) as cube:
        cube.create_dataset(POINTS)
    got = run_workers(store, _ingest_own, [("pts", False)] * WORKERS)
    with open_store(store) as cube:
        ids = check_chain(cube, "pts", 1 + WORKERS * COMMITS)
        assert sorted(s for snaps in got.values() for s in snaps) == ids[1:]  # no commit lost or doubled
        t = cube.query("pts", output="arrow")
        assert t.num_rows == WORKERS * COMMITS * ROWS == cube.stats("pts").rows
        fids = set(t.column("fid").to_pylist())
        for wid in range(WORKERS):
            assert {f"w{wid}_{k}_{i}" for k in range(COMMITS) for i in range(ROWS)} <= fids
        assert set(t.column("version").to_pylist()) == {1}
        # Each commit holds what its worker wrote: a snapshot's rows are all one worker's.
        by_snap: dict[int, set[str]] = {}
        for fid, rf in zip(t.column("fid").to_pylist(), t.column("record_from").to_pylist()):
            by_snap.setdefault(rf, set()).add(fid.split("_")[0])
        assert all(len(w) == 1 for w in by_snap.values()) and len(by_snap) == WORKERS * COMMITS
        check_files(cube, store)


def test_four_writers_four_datasets_new_store(where: Path | str) -> None:
    """Four processes open a store that does not exist yet, each creates its
    own dataset, and all commit at once."""
    store = where
    got = run_workers(store, _ingest_own, [(f"ds{w}", True) for w in range(WORKERS)])
    with open_store(store) as cube:
        assert [d.name for d in cube.datasets()] == [f"ds{w}" for w in range(WORKERS)]
        all_ids: list[int] = []
        for wid in range(WORKERS):
            name = f"ds{wid}"
            ids = check_chain(cube, name, 1 + COMMITS)
            assert got[wid] == ids[1:]
            all_ids += ids
            t = cube.query(name, output="arrow")
            assert t.num_rows == COMMITS * ROWS == cube.stats(name).rows
            assert set(t.column("fid").to_pylist()) == {f"w{wid}_{k}_{i}" for k in range(COMMITS)
                                                        for i in range(ROWS)}
        assert len(all_ids) == len(set(all_ids))  # snapshot ids are the store's, never reused
        check_files(cube, store)


def test_two_writers_same_features(where: Path | str) -> None:
    """Two processes upsert the same 300 features five times each: ten
    serialised commits, and every feature has versions 1..11 with no gap."""
    store = where
    fids = [f"f{i}" for i in range(300)]
    with open_store(store) as cube:
        cube.create_dataset(POINTS)
        first = points_frame(len(fids), seed=7)
        first_snap = cube.ingest("pts", first).snapshot_id
    got = run_workers(store, _upsert_same, [(fids,), (fids,)])
    with open_store(store) as cube:
        ids = check_chain(cube, "pts", 2 + 2 * COMMITS)
        assert ids[1] == first_snap
        assert sorted(got[0] + got[1]) == ids[2:]
        # Which worker wrote each snapshot, in commit order.
        writer = {s: w for w, snaps in got.items() for s in snaps}
        t = cube.query("pts", output="arrow")
        assert t.num_rows == len(fids) == cube.stats("pts").rows
        assert set(t.column("version").to_pylist()) == {1 + 2 * COMMITS}
        last = ids[-1]
        assert set(t.column("record_from").to_pylist()) == {last}
        assert set(t.column("v").to_pylist()) == {float(100 * writer[last] + got[writer[last]].index(last))}
        for fid in fids[::15]:
            h = cube.history("pts", fid, output="arrow")
            versions = h.column("version").to_pylist()
            frm = h.column("record_from").to_pylist()
            to = h.column("record_to").to_pylist()
            assert versions == list(range(1, 2 + 2 * COMMITS))
            assert frm == ids[1:]
            assert to == [*frm[1:], None]  # exactly one current version
            v = h.column("v").to_pylist()
            assert v[1:] == [float(100 * writer[s] + got[writer[s]].index(s)) for s in frm[1:]]
        # A commit at each snapshot sees the one before it: as_of each, one version per feature.
        for k, s in enumerate(ids[1:], start=1):
            old = cube.query("pts", as_of=s, output="arrow")
            assert old.num_rows == len(fids) and set(old.column("version").to_pylist()) == {k}
        check_files(cube, store)


def test_many_processes_open_a_new_store_at_once(tmp_path: Path) -> None:
    """The first open of a store switches its catalog to WAL mode, which
    SQLite does not wait for: processes opening a new store together must
    still all get in."""
    n, rounds = 6, 30
    results = CTX.Queue()
    barrier = CTX.Barrier(n)
    procs = [CTX.Process(target=_open_new_stores, args=(tmp_path, results, barrier, w, rounds)) for w in range(n)]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [f"worker {w}:\n{v}" for status, w, v in outcome if status != "ok"]
    assert not errors, "\n".join(errors)
    for r in range(rounds):
        with open_store(tmp_path / f"store{r}") as cube:
            assert [d.name for d in cube.datasets()] == [f"ds{w}" for w in range(n)]
