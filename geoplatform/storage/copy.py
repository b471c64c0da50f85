"""Copying a store to another backend, history and all, and proving nothing was lost.

Each dataset is made again in the target with its spec and its create time,
then its snapshots are replayed in order from the source's record log
(:meth:`StorageBackend.log`): the records a snapshot wrote are written, the
records it ended are ended, with the snapshot's operation, summary and commit
time. The target's snapshot ids are its own; the n-th snapshot of a dataset
in the target is the n-th in the source, and ``as_of`` a commit time reads
the same in both.

The check afterwards compares, per dataset: the number of snapshots and of
records ever held; each snapshot's rows (count, and a checksum of every
record's id, version, valid time, attributes and geometry WKB visible then);
and the log itself record by record, with record start and end mapped
between the two stores' snapshot ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from geoplatform.cube.backend import ScanRequest, StorageBackend
from geoplatform.errors import DatasetExists, StoreError
from geoplatform.storage import records


@dataclass
class DatasetCopy:
    """What was copied of one dataset, and what the check found."""

    name: str
    snapshots: int = 0
    records: int = 0
    current: int = 0
    checksum: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _checksum(t: pa.Table, columns: Sequence[str]) -> tuple[int, str]:
    """Rows and an order-free checksum of ``columns`` (geometry as its WKB bytes)."""
    if not len(t):
        return 0, "0" * 16
    parts = []
    for c in columns:
        col = t.column(c)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        values = col.to_numpy(zero_copy_only=False)
        if values.dtype == object:
            values = np.array([None if v is None else bytes(v) if isinstance(v, (bytes, bytearray))
                               else str(v) for v in values], dtype=object)
        parts.append(pd.util.hash_array(values, categorize=False))
    row = parts[0]
    for p in parts[1:]:
        row = row * np.uint64(0x9E3779B97F4A7C15) ^ p  # order within a row matters, rows' order does not
    total = int(np.bitwise_xor.reduce(row)) ^ int(row.sum(dtype=np.uint64))
    return len(t), f"{total & (2**64 - 1):016x}"


def _content_columns(t: pa.Table) -> list[str]:
    return [c for c in t.column_names if c not in ("bbox", "record_from", "record_to", "_hash")]


def copy_store(src: StorageBackend, dst: StorageBackend, names: Sequence[str] | None = None,
               progress: Callable[[str], Any] | None = None) -> list[DatasetCopy]:
    """Copy the datasets ``names`` (default all) of ``src`` into ``dst``, which
    must not hold them yet; returns each one's copy report, checked."""
    specs = {s.name: s for s in src.list_specs()}
    wanted = list(names) if names else sorted(specs)
    missing = [n for n in wanted if n not in specs]
    if missing:
        raise StoreError(f"the source store has no dataset {missing[0]!r}")
    there = {s.name for s in dst.list_specs()}
    clash = [n for n in wanted if n in there]
    if clash:
        raise DatasetExists(f"the target store already holds {clash[0]!r}: nothing was copied", dataset=clash[0])
    out = []
    for name in wanted:
        if progress:
            progress(f"copying {name}")
        _copy_one(src, dst, name)
        out.append(check_copy(src, dst, name))
    return out


def _copy_one(src: StorageBackend, dst: StorageBackend, name: str) -> None:
    spec = src.get_spec(name)
    snaps = src.snapshots(name)
    log = src.log(name)
    dst.create_dataset(spec, committed_at=snaps[0].committed_at)
    rf = log.column("record_from").to_numpy()
    rt = log.column("record_to").to_numpy(zero_copy_only=False)
    rt = np.where(pd.isna(rt), -1, rt).astype(np.int64)
    keep = [c for c in records.full_schema(spec).names if c in log.column_names]
    with dst.writer(name) as w:
        for s in snaps[1:]:
            written = log.filter(pa.array(rf == s.id)).select(keep)
            ended = log.filter(pa.array(rt == s.id)).select(["fid", "version"])
            retire = np.empty(0, np.int64)
            if len(ended):
                cur = w.current_keys(ended.column("fid").combine_chunks())
                key = pd.MultiIndex.from_arrays([cur.column("fid").to_pandas(), cur.column("version").to_pandas()])
                want = pd.MultiIndex.from_arrays([ended.column("fid").to_pandas(),
                                                  ended.column("version").to_pandas()])
                at = key.get_indexer(want)
                if (at < 0).any():
                    raise StoreError(f"{name!r}: snapshot {s.id} ends records the copy does not hold current")
                retire = cur.column("_loc").to_numpy()[at]
            w.commit(written if len(written) else None, retire, operation=s.operation, summary=s.summary,
                     committed_at=s.committed_at)


def check_copy(src: StorageBackend, dst: StorageBackend, name: str) -> DatasetCopy:
    """Compare a dataset in two stores: snapshots, the log and every snapshot's rows."""
    rep = DatasetCopy(name)
    a_snaps, b_snaps = src.snapshots(name), dst.snapshots(name)
    rep.snapshots = len(a_snaps)
    if len(a_snaps) != len(b_snaps):
        rep.problems.append(f"{len(a_snaps)} snapshots in the source, {len(b_snaps)} in the copy")
        return rep
    for a, b in zip(a_snaps, b_snaps):
        if (a.operation, a.summary, a.committed_at) != (b.operation, b.summary, b.committed_at):
            rep.problems.append(f"snapshot {a.id} ({a.operation} at {a.committed_at}) is {b.id} "
                                f"({b.operation} at {b.committed_at}) in the copy")
    ids = {b.id: a.id for a, b in zip(a_snaps, b_snaps)}
    la, lb = src.log(name), dst.log(name)
    rep.records = len(la)
    if len(la) != len(lb):
        rep.problems.append(f"{len(la)} records in the source's log, {len(lb)} in the copy's")
    cols = _content_columns(la)

    def mapped(t: pa.Table) -> pa.Table:
        for c in ("record_from", "record_to"):
            v = t.column(c).to_numpy(zero_copy_only=False)
            v = np.array([None if pd.isna(x) else ids.get(int(x), -1) for x in v], dtype=object)
            t = t.set_column(t.schema.get_field_index(c), c, pa.array(v, pa.int64()))
        return t

    full = [*cols, "record_from", "record_to"]
    if _checksum(la, full) != _checksum(mapped(lb), full):
        rep.problems.append("the logs differ (ids, versions, times, attributes, geometries or record times)")
    for a, b in zip(a_snaps, b_snaps):
        ta = src.scan(name, ScanRequest(snapshot=a.id))
        tb = dst.scan(name, ScanRequest(snapshot=b.id))
        ca, cb = _checksum(ta, _content_columns(ta)), _checksum(tb, _content_columns(tb))
        if ca != cb:
            rep.problems.append(f"snapshot {a.id}: {ca[0]} rows (checksum {ca[1]}) in the source, "
                                f"{cb[0]} (checksum {cb[1]}) in the copy")
        rep.current, rep.checksum = ca
    return rep
