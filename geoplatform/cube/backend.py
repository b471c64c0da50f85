"""The storage contract, and the registry that finds backends by name.

The cube never imports a storage module: backends register under the
``geoplatform.storage`` entry-point group (see ``setup.cfg``) and are loaded
by name, so storage may depend on the model and never the other way round.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geoplatform.cube.model import DatasetSpec, Snapshot
from geoplatform.errors import StoreError
from geoplatform.settings import Settings

#: Columns that every scan returns besides the requested attributes.
SYSTEM_COLUMNS = ("fid", "version", "valid_from", "valid_to", "record_from")


@dataclass(frozen=True)
class ScanRequest:
    """What a backend must return: the records visible at ``snapshot`` whose
    bbox intersects ``bbox`` and whose valid time meets ``[t_min, t_max]``.

    ``arrow_filter`` is an attribute filter the backend may push down; the
    caller re-checks nothing of it, so a backend must apply it exactly or not
    accept it (``supports_arrow_filter``).
    """

    snapshot: int
    bbox: tuple[float, float, float, float] | None = None
    t_min: int = np.iinfo(np.int64).min
    t_max: int = np.iinfo(np.int64).max
    columns: tuple[str, ...] | None = None
    arrow_filter: pc.Expression | None = None
    #: The columns ``arrow_filter`` reads, where the caller knows them: a backend
    #: may evaluate the filter on those first and decode the rest only where it matched.
    filter_columns: tuple[str, ...] | None = None
    #: ``(column, low, high)``: every match of ``arrow_filter`` has its column value in
    #: the closed range (``None``: unbounded), so a backend may skip data whose
    #: statistics lie outside it.
    ranges: tuple[tuple[str, Any, Any], ...] = ()
    #: ``(column, value)`` pairs when ``arrow_filter`` is exactly their conjunction of
    #: equalities: a backend may test them with plain comparisons.
    equals: tuple[tuple[str, Any], ...] | None = None
    with_geometry: bool = True
    fids: tuple[Any, ...] | None = None
    #: Only the first ``limit`` records in the backend's scan order are wanted (the
    #: caller filters nothing further). A backend may return more, never fewer
    #: than there are, and always a prefix of the unlimited scan's order.
    limit: int | None = None
    #: A sample will do where it still holds about this many rows (low-zoom map
    #: tiles): a backend that keeps samples of 1/k of the features, chosen by
    #: feature id, may return one for a request without time or attribute filter,
    #: and then says k in the table's schema metadata under ``SAMPLE_KEY``.
    sample_min_rows: int | None = None


#: Schema metadata key of a sampled scan: k of "1/k of the features", as ASCII digits.
SAMPLE_KEY = b"geoplatform.sample"


@dataclass(frozen=True)
class DatasetStats:
    rows: int
    extent: tuple[float, float, float, float] | None
    t_min: int | None
    t_max: int | None
    files: int = 0
    bytes: int = 0


@dataclass
class CommitResult:
    snapshot: Snapshot
    rows_written: int
    rows_retired: int
    files: list[str] = field(default_factory=list)


class DatasetWriter(ABC):
    """A dataset held for writing: one writer per dataset at a time.

    ``parent`` is the head snapshot when the writer got the dataset; a commit
    lands on top of it or fails with :class:`~geoplatform.errors.CommitConflict`.
    """

    spec: DatasetSpec
    parent: int

    @abstractmethod
    def current_keys(self, fids: pa.Array | None = None) -> pa.Table:
        """``fid``, ``version``, ``_hash`` and ``_loc`` of the records visible at
        ``parent`` (only those whose fid is in ``fids`` when given)."""

    @abstractmethod
    def last_versions(self, fids: pa.Array) -> pa.Table:
        """``fid`` and the highest ``version`` each of ``fids`` ever had, ended
        or not (a feature loaded again after a delete continues its numbering)."""

    @abstractmethod
    def allocate_fids(self, n: int) -> int:
        """Reserve ``n`` store-assigned ids; returns the first."""

    @abstractmethod
    def find_source(self, source_hash: str) -> Snapshot | None:
        """The snapshot that ingested exactly this source, if it is still head-visible."""

    @abstractmethod
    def commit(
        self,
        records: pa.Table | None,
        retire: np.ndarray,
        *,
        operation: str,
        summary: dict[str, Any],
        source_hash: str | None = None,
        spec: DatasetSpec | None = None,
        committed_at: datetime | None = None,
    ) -> CommitResult:
        """Write ``records`` as new versions and end the records at ``retire``
        (locators from ``current_keys``), atomically, as one snapshot.
        ``committed_at`` (a copy of another store's history) replaces the
        commit time; it may not be before the parent's."""


class StorageBackend(ABC):
    """A place that keeps datasets. See ``tests/storage/contract.py``."""

    name: ClassVar[str]

    def __init__(self, location: str, settings: Settings) -> None:
        self.location = location
        self.settings = settings

    # datasets -----------------------------------------------------------
    @abstractmethod
    def create_dataset(self, spec: DatasetSpec, committed_at: datetime | None = None) -> Snapshot: ...

    @abstractmethod
    def get_spec(self, name: str) -> DatasetSpec: ...

    @abstractmethod
    def list_specs(self) -> list[DatasetSpec]: ...

    @abstractmethod
    def drop_dataset(self, name: str) -> None: ...

    # snapshots ----------------------------------------------------------
    @abstractmethod
    def snapshots(self, name: str) -> list[Snapshot]: ...

    @abstractmethod
    def head(self, name: str) -> int: ...

    @abstractmethod
    def snapshot_at(self, name: str, when: datetime) -> int: ...

    @abstractmethod
    def check_snapshot(self, name: str, snapshot: int) -> int:
        """``snapshot`` if it is one of the dataset's, else SnapshotNotFound."""

    # reading and writing ------------------------------------------------
    @abstractmethod
    def writer(self, name: str) -> AbstractContextManager[DatasetWriter]: ...

    @abstractmethod
    def scan(self, name: str, request: ScanRequest) -> pa.Table: ...

    @abstractmethod
    def history(self, name: str, fid: Any) -> pa.Table: ...

    @abstractmethod
    def stats(self, name: str, snapshot: int) -> DatasetStats: ...

    @abstractmethod
    def log(self, name: str) -> pa.Table:
        """Every record the dataset ever held, ended ones too: the scan columns of
        every attribute with ``_hash``, ``record_from`` and ``record_to`` (null while
        current), in record order. What a copy of the store replays."""

    def changed_bounds(self, name: str, since: int, until: int) -> np.ndarray | None:
        """Bboxes (storage CRS, shape (n, 4)) of the records that the snapshots
        after ``since`` up to ``until`` wrote or ended: what a cache of results
        at ``since`` must recheck at ``until``. None when the backend cannot
        tell, which callers take as "anything may have changed"."""
        return None

    def consistent(self) -> AbstractContextManager[Any]:
        """A block whose reads in this thread all see one state of the store
        (a request that looks up a dataset, its head and its files several
        times). Writes from this thread are not allowed inside it."""
        return nullcontext()

    def compact(self, name: str) -> dict[str, Any] | None:
        """Rewrite what many small commits left scattered (a layout a backend
        keeps for reading) without changing what any snapshot reads: no new
        snapshot. Returns what was rewritten, None where there was nothing to
        do; engines that manage their own storage do nothing."""
        return None

    def grids(self) -> Any:
        """The store's gridded datasets (a :class:`geoplatform.grids.store.GridStore`)."""
        raise StoreError(f"the {self.name} backend keeps no grids")

    def close(self) -> None:
        """Release connections and caches."""


def load_backend(name: str) -> type[StorageBackend]:
    """The backend class registered under ``name`` in ``geoplatform.storage``."""
    found = [ep for ep in entry_points(group="geoplatform.storage") if ep.name == name]
    if not found:
        known = sorted(ep.name for ep in entry_points(group="geoplatform.storage"))
        raise StoreError(f"no storage backend named {name!r} (installed: {', '.join(known) or 'none'};"
                         " is geoplatform installed with pip install -e .?)")
    cls = found[0].load()
    if not (isinstance(cls, type) and issubclass(cls, StorageBackend)):
        raise StoreError(f"entry point {name!r} is not a StorageBackend")
    return cls


def empty_like_schema(schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches([], schema=schema)
