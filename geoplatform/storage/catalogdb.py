"""The embedded store's catalog and transaction log, in SQLite.

A dataset's state is the set of files and retired rows whose snapshot ids
are at or below its head. A commit inserts the snapshot, its files, their
row groups and the rows it retires in one SQLite transaction, so a reader
sees the snapshot whole or not at all; files on disk that no committed row
names are leftovers of a killed writer and are swept by the next writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from geoplatform.cube.model import DatasetSpec, Snapshot
from geoplatform.errors import DatasetExists, DatasetNotFound, SnapshotNotFound, StoreError

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    key_bounds TEXT NOT NULL,
    next_fid INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    parent_id INTEGER,
    committed_at TEXT NOT NULL,
    committed_us INTEGER NOT NULL,
    operation TEXT NOT NULL,
    summary TEXT NOT NULL,
    source_hash TEXT
);
CREATE INDEX IF NOT EXISTS snapshots_dataset ON snapshots(dataset_id, id);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    snapshot_id INTEGER NOT NULL,
    path TEXT NOT NULL UNIQUE,
    partition TEXT NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    xmin REAL, ymin REAL, xmax REAL, ymax REAL,
    tmin INTEGER NOT NULL, tmax INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_dataset ON files(dataset_id, snapshot_id);
CREATE TABLE IF NOT EXISTS row_groups (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    rg INTEGER NOT NULL,
    row_offset INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    xmin REAL, ymin REAL, xmax REAL, ymax REAL,
    tmin INTEGER NOT NULL, tmax INTEGER NOT NULL,
    PRIMARY KEY (file_id, rg)
);
CREATE TABLE IF NOT EXISTS retired (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    row INTEGER NOT NULL,
    snapshot_id INTEGER NOT NULL,
    PRIMARY KEY (file_id, row)
);
CREATE INDEX IF NOT EXISTS retired_snapshot ON retired(snapshot_id);
CREATE TABLE IF NOT EXISTS layouts (
    dataset_id INTEGER PRIMARY KEY,
    gen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grids (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    geometry TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grid_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grid_id INTEGER NOT NULL REFERENCES grids(id) ON DELETE CASCADE,
    parent_id INTEGER,
    committed_at TEXT NOT NULL,
    committed_us INTEGER NOT NULL,
    operation TEXT NOT NULL,
    summary TEXT NOT NULL,
    source_hash TEXT,
    steps INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grid_snapshots_grid ON grid_snapshots(grid_id, id);
CREATE TABLE IF NOT EXISTS grid_steps (
    grid_id INTEGER NOT NULL REFERENCES grids(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    time_us INTEGER NOT NULL,
    PRIMARY KEY (grid_id, step)
);
CREATE TABLE IF NOT EXISTS garbage (
    path TEXT PRIMARY KEY,
    dataset_id INTEGER NOT NULL,
    since_us INTEGER NOT NULL
);
"""


def _at(when: datetime) -> tuple[str, int]:
    """A given commit time as the catalog keeps it (ISO text and microseconds, UTC)."""
    if when.tzinfo is None:
        raise StoreError("a commit time needs a time zone")
    when = when.astimezone(timezone.utc)
    return when.isoformat(timespec="microseconds"), int(when.timestamp()) * 1_000_000 + when.microsecond


def _now() -> tuple[str, int]:
    now = datetime.now(timezone.utc)
    return now.isoformat(timespec="microseconds"), int(now.timestamp() * 1_000_000)


@dataclass(frozen=True)
class DatasetRow:
    id: int
    name: str
    spec: DatasetSpec
    key_bounds: tuple[float, float, float, float]


class CatalogDB:
    """SQLite catalog: one connection per thread, WAL, busy timeout."""

    def __init__(self, path: Path, busy_timeout_s: float = 600.0) -> None:
        self.path = path
        self.busy_timeout_ms = int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._rows: dict[tuple[int, str, str], DatasetRow] = {}
        self.con.executescript(_DDL)  # idempotent; executescript commits on its own
        with self.transaction() as con:
            row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"store catalog {path} has schema version {row[0]}, "
                                 f"this geoplatform reads {SCHEMA_VERSION}")

    @property
    def con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000,
                                      isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open store catalog {self.path}: {exc}") from exc
            con.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            self._use_wal(con)
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA foreign_keys=ON")
            self._local.con = con
        return con

    def _use_wal(self, con: sqlite3.Connection) -> None:
        """Switch the catalog to WAL (kept in the file, so once per store).

        The switch needs a lock that SQLite does not wait for: when several
        processes open a new store at once, the losers get "database is
        locked" (or keep the old mode) at once, so retry until the busy timeout.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                if con.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                    return
                problem = "the catalog would not switch to WAL mode"
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreError(f"cannot open store catalog {self.path}: {exc}") from exc
                problem = str(exc)
            if time.monotonic() > deadline:
                raise StoreError(f"cannot open store catalog {self.path}: {problem}")
            time.sleep(0.01)

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; ``BEGIN IMMEDIATE`` takes the write lock up front
        so two writers never both read-then-write the same state."""
        if getattr(self._local, "reading", 0):
            raise StoreError("a write inside a consistent read of the catalog (reading())")
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        else:
            con.execute("COMMIT")

    # datasets -------------------------------------------------------------
    def dataset(self, name: str) -> DatasetRow:
        pinned = self._pinned()
        if pinned is not None and ("dataset", name) in pinned:
            return pinned["dataset", name]  # type: ignore[no-any-return]
        row = self.con.execute(
            "SELECT id, name, spec, key_bounds FROM datasets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise DatasetNotFound(f"no dataset named {name!r}", dataset=name)
        # A request asks for its dataset several times; validating the spec is most of the cost.
        key = (row[0], row[2], row[3])
        got = self._rows.get(key)
        if got is None:
            got = DatasetRow(row[0], row[1], DatasetSpec.model_validate_json(row[2]), tuple(json.loads(row[3])))
            if len(self._rows) > 256:
                self._rows.clear()
            self._rows[key] = got
        if pinned is not None:
            pinned["dataset", name] = got
        return got

    def datasets(self) -> list[DatasetRow]:
        rows = self.con.execute("SELECT id, name, spec, key_bounds FROM datasets ORDER BY name").fetchall()
        return [DatasetRow(r[0], r[1], DatasetSpec.model_validate_json(r[2]), tuple(json.loads(r[3])))
                for r in rows]

    def create_dataset(self, spec: DatasetSpec, key_bounds: tuple[float, ...],
                       committed_at: datetime | None = None) -> Snapshot:
        iso, us = _now() if committed_at is None else _at(committed_at)
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM datasets WHERE name=?", (spec.name,)).fetchone():
                raise DatasetExists(f"dataset {spec.name!r} already exists", dataset=spec.name)
            if con.execute("SELECT 1 FROM grids WHERE name=?", (spec.name,)).fetchone():
                raise DatasetExists(f"{spec.name!r} is already the name of a grid", dataset=spec.name)
            cur = con.execute(
                "INSERT INTO datasets (name, spec, key_bounds, created_at) VALUES (?,?,?,?)",
                (spec.name, spec.model_dump_json(by_alias=True), json.dumps(list(key_bounds)), iso))
            ds_id = cur.lastrowid
            sid = self._insert_snapshot(con, ds_id, None, iso, us, "create", {}, None)
        return Snapshot(sid, spec.name, None, datetime.fromisoformat(iso), "create", {})

    def drop_dataset(self, name: str) -> list[str]:
        """Remove a dataset from the catalog; returns its file paths to delete."""
        with self.transaction() as con:
            ds = con.execute("SELECT id FROM datasets WHERE name=?", (name,)).fetchone()
            if ds is None:
                raise DatasetNotFound(f"no dataset named {name!r}", dataset=name)
            paths = [r[0] for r in con.execute("SELECT path FROM files WHERE dataset_id=?", ds)]
            con.execute("DELETE FROM retired WHERE file_id IN (SELECT id FROM files WHERE dataset_id=?)", ds)
            con.execute("DELETE FROM row_groups WHERE file_id IN (SELECT id FROM files WHERE dataset_id=?)", ds)
            con.execute("DELETE FROM files WHERE dataset_id=?", ds)
            con.execute("DELETE FROM snapshots WHERE dataset_id=?", ds)
            con.execute("DELETE FROM datasets WHERE id=?", ds)
        return paths

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: its statements see one state of the catalog
        (WAL), even while a writer commits between them. Blocks nest (the
        outermost holds the transaction); inside, a dataset's row, head and
        layout state are looked up once."""
        loc = self._local
        depth = getattr(loc, "reading", 0)
        con = self.con
        if depth == 0:
            con.execute("BEGIN")
            loc.memo = {}
        loc.reading = depth + 1
        try:
            yield con
        finally:
            loc.reading = depth
            if depth == 0:
                loc.memo = None
                con.execute("COMMIT")

    def _pinned(self) -> dict[Any, Any] | None:
        """The lookups of this thread's read transaction, None outside one."""
        return getattr(self._local, "memo", None)

    def state(self, dataset_id: int) -> tuple[int, int]:
        """The dataset's head snapshot and its layout generation, which a
        compaction moves on (what any snapshot reads is unchanged; where it is, is not)."""
        pinned = self._pinned()
        if pinned is not None and ("state", dataset_id) in pinned:
            return pinned["state", dataset_id]  # type: ignore[no-any-return]
        row = self.con.execute(
            "SELECT (SELECT max(id) FROM snapshots WHERE dataset_id=?),"
            " (SELECT gen FROM layouts WHERE dataset_id=?)", (dataset_id, dataset_id)).fetchone()
        if row[0] is None:
            raise StoreError(f"dataset {dataset_id} has no snapshot")
        got = int(row[0]), int(row[1] or 0)
        if pinned is not None:
            pinned["state", dataset_id] = got
        return got

    def garbage(self, name: str, grace_s: float) -> set[str]:
        """Files a compaction of dataset ``name`` replaced less than ``grace_s``
        ago (kept for readers that still name them); older entries are forgotten,
        so the next sweep deletes their files."""
        cutoff = _now()[1] - int(grace_s * 1_000_000)
        with self.transaction() as con:
            ds = con.execute("SELECT id FROM datasets WHERE name=?", (name,)).fetchone()
            if ds is None:
                con.execute("DELETE FROM garbage WHERE dataset_id NOT IN (SELECT id FROM datasets)")
                return set()
            con.execute("DELETE FROM garbage WHERE dataset_id=? AND since_us<?", (ds[0], cutoff))
            return {r[0] for r in con.execute("SELECT path FROM garbage WHERE dataset_id=?", ds)}

    def allocate_fids(self, dataset_id: int, n: int) -> int:
        with self.transaction() as con:
            first = con.execute("SELECT next_fid FROM datasets WHERE id=?", (dataset_id,)).fetchone()[0]
            con.execute("UPDATE datasets SET next_fid=? WHERE id=?", (first + n, dataset_id))
        return int(first)

    # snapshots ------------------------------------------------------------
    @staticmethod
    def _insert_snapshot(con: sqlite3.Connection, ds_id: int, parent: int | None, iso: str, us: int,
                         operation: str, summary: dict[str, Any], source_hash: str | None) -> int:
        cur = con.execute(
            "INSERT INTO snapshots (dataset_id, parent_id, committed_at, committed_us, operation,"
            " summary, source_hash) VALUES (?,?,?,?,?,?,?)",
            (ds_id, parent, iso, us, operation, json.dumps(summary), source_hash))
        return int(cur.lastrowid)

    def head(self, dataset_id: int) -> int:
        if self._pinned() is not None:
            return self.state(dataset_id)[0]
        row = self.con.execute("SELECT max(id) FROM snapshots WHERE dataset_id=?", (dataset_id,)).fetchone()
        if row[0] is None:
            raise StoreError(f"dataset {dataset_id} has no snapshot")
        return int(row[0])

    def snapshots(self, ds: DatasetRow) -> list[Snapshot]:
        rows = self.con.execute(
            "SELECT id, parent_id, committed_at, operation, summary FROM snapshots"
            " WHERE dataset_id=? ORDER BY id", (ds.id,)).fetchall()
        return [Snapshot(r[0], ds.name, r[1], datetime.fromisoformat(r[2]), r[3], json.loads(r[4]))
                for r in rows]

    def snapshot_at(self, ds: DatasetRow, when_us: int) -> int:
        row = self.con.execute(
            "SELECT max(id) FROM snapshots WHERE dataset_id=? AND committed_us<=?",
            (ds.id, when_us)).fetchone()
        if row[0] is None:
            raise SnapshotNotFound(f"dataset {ds.name!r} did not exist at that time", dataset=ds.name)
        return int(row[0])

    def check_snapshot(self, ds: DatasetRow, snapshot_id: int) -> int:
        row = self.con.execute("SELECT 1 FROM snapshots WHERE id=? AND dataset_id=?",
                               (snapshot_id, ds.id)).fetchone()
        if row is None:
            raise SnapshotNotFound(f"dataset {ds.name!r} has no snapshot {snapshot_id}",
                                   dataset=ds.name, snapshot=snapshot_id)
        return snapshot_id

    def find_source(self, ds: DatasetRow, source_hash: str) -> Snapshot | None:
        row = self.con.execute(
            "SELECT id, parent_id, committed_at, operation, summary FROM snapshots"
            " WHERE dataset_id=? AND source_hash=? ORDER BY id DESC LIMIT 1",
            (ds.id, source_hash)).fetchone()
        if row is None:
            return None
        return Snapshot(row[0], ds.name, row[1], datetime.fromisoformat(row[2]), row[3], json.loads(row[4]))
