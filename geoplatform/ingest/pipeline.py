"""Ingest: read -> validate -> normalise CRS and time -> version -> commit.

Nothing reaches the store until every check has passed, and then it lands
as one snapshot, so a bad file leaves the dataset exactly as it was.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from geoplatform.crs import resolve_crs
from geoplatform.cube.model import CsvOptions, DatasetSpec
from geoplatform.errors import CRSError, IngestError, PreconditionFailed, SchemaError
from geoplatform.ingest import validate as v
from geoplatform.ingest.geometry import encode
from geoplatform.ingest.readers import Source, read_source
from geoplatform.storage.records import BBOX, TS, coerce_fid, full_schema

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube

Mode = Literal["upsert", "append", "replace"]


@dataclass
class IngestReport:
    """What an ingest did."""

    dataset: str
    source: str
    snapshot_id: int | None
    rows_read: int
    rows_added: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    rows_deleted: int = 0
    rows_skipped: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    noop: bool = False

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("source", "rows_read", "rows_added", "rows_changed",
                                              "rows_unchanged", "rows_deleted", "rows_skipped")}

    def __str__(self) -> str:
        if self.noop:
            return f"{self.dataset}: nothing changed ({self.rows_read} rows read from {self.source})"
        return (f"{self.dataset}: snapshot {self.snapshot_id}: {self.rows_added} added, {self.rows_changed} "
                f"changed, {self.rows_deleted} deleted, {self.rows_unchanged} unchanged, {self.rows_skipped} "
                f"skipped, in {self.seconds:.2f} s")


def ingest(cube: "Cube", name: str, source: Any, *, mode: Mode = "upsert",
           on_invalid: v.OnInvalid = "raise", source_crs: str | None = None, layer: str | None = None,
           csv: CsvOptions | dict[str, str] | None = None, fmt: str | None = None,
           progress: bool | None = None, expect: Mapping[Any, int] | None = None) -> IngestReport:
    """Load ``source`` into dataset ``name`` as one snapshot.

    ``mode``: ``upsert`` adds new features and new versions of changed ones;
    ``replace`` also ends the features the source no longer has; ``append``
    refuses ids that already exist. Re-ingesting an unchanged source is a
    no-op. ``on_invalid`` decides what an invalid geometry does: ``raise``
    (nothing is stored), ``warn`` (kept as is), ``fix`` (``make_valid``) or
    ``skip``. ``source_crs`` declares the input CRS where the file has none
    or is wrong about it (GCJ-02 and BD-09 accepted). ``expect`` (feature id
    -> version) makes the write conditional: checked under the dataset's
    write lock, a feature at another version (changed since the caller read
    it) fails the whole write with ``PreconditionFailed`` and nothing is stored.
    """
    if mode not in ("upsert", "append", "replace"):
        raise IngestError(f"mode must be upsert, append or replace, not {mode!r}")
    started = time.perf_counter()
    show = progress if progress is not None else (cube.settings.progress
                                                  if cube.settings.progress is not None else sys.stderr.isatty())
    with tqdm(total=4, desc=f"ingest {name}", unit="step", disable=not show, leave=False) as bar:
        report = _ingest(cube, name, source, bar, mode=mode, on_invalid=on_invalid, source_crs=source_crs,
                         layer=layer, csv=csv, fmt=fmt, expect=expect)
    report.seconds = time.perf_counter() - started
    return report


def _ingest(cube: "Cube", name: str, source: Any, bar: Any, *, mode: Mode, on_invalid: v.OnInvalid,
            source_crs: str | None, layer: str | None, csv: CsvOptions | dict[str, str] | None,
            fmt: str | None, expect: Mapping[Any, int] | None = None) -> IngestReport:
    spec = cube.dataset(name)
    csv_opts = CsvOptions.model_validate(csv) if isinstance(csv, dict) else (csv or spec.csv)
    src = read_source(source, layer=layer or spec.layer, csv=csv_opts, fmt=fmt)
    bar.update()
    n = len(src.geometry)
    if not n:
        raise IngestError(f"{src.name}: no features", file=src.name)
    with cube.backend.writer(name) as w:
        spec = w.spec
        seen = w.find_source(src.content_hash) if src.content_hash else None
        # The same file again changes nothing when it was the last thing loaded;
        # for store-assigned ids (observations) also when it was loaded earlier,
        # since loading it again would only duplicate its rows.
        if seen is not None and not expect and (seen.id == w.parent or (spec.fid is None and mode != "replace")):
            return IngestReport(name, src.name, seen.id, n, rows_unchanged=n, noop=True)
        table, new_spec, (skipped, invalid) = _normalise(src, spec, on_invalid, source_crs)
        bar.update()
        report = IngestReport(name, src.name, None, n, rows_skipped=skipped, invalid=invalid)
        records, retire = _version(w, new_spec, table, mode, report, expect)
        records = records.cast(full_schema(new_spec))
        bar.update()
        if not len(records) and not len(retire) and new_spec == spec:
            report.noop = True
            return report
        res = w.commit(records, retire, operation="ingest", summary=report.summary(),
                       source_hash=src.content_hash, spec=new_spec if new_spec != spec else None)
        bar.update()
    report.snapshot_id = res.snapshot.id
    return report


def _normalise(src: Source, spec: DatasetSpec, on_invalid: v.OnInvalid,
               source_crs: str | None) -> tuple[pa.Table, DatasetSpec, tuple[int, list[dict[str, Any]]]]:
    """The source as stored records (without versions), and the spec with
    anything inferred at this first ingest (schema, geometry type)."""
    frame = src.frame
    where = src.name
    system = {c for c in (spec.fid, spec.valid_from, spec.valid_to) if c}
    missing = [c for c in system if c not in frame.columns]
    if missing:
        raise SchemaError(f"{where}: missing columns {missing} that the dataset declares as id or valid time "
                          f"(columns present: {list(frame.columns)})", columns=missing)
    fields = spec.schema_ if spec.schema_ is not None else v.infer_schema(frame, system, where)
    declared = {f.name for f in fields}
    extra = [c for c in frame.columns if c not in declared and c not in system]
    if extra and spec.extra_columns == "error":
        raise SchemaError(f"{where}: columns {extra} are not in the schema of dataset {spec.name!r} "
                          f"(declared: {sorted(declared)}); check their spelling or declare them", columns=extra)
    absent = [f.name for f in fields if f.name not in frame.columns and f.required]
    if absent:
        raise SchemaError(f"{where}: required columns {absent} are missing", columns=absent)

    # Geometry: presence, type, CRS, validity.
    ids = frame[spec.fid].to_numpy() if spec.fid else np.arange(len(frame))
    crs = _source_crs(src, source_crs or spec.source_crs, where)
    enc = encode(src.geometry, spec, crs, on_invalid, where, ids, need_hash=spec.fid is not None)
    keep = enc.keep
    skipped = int((~keep).sum())

    problems = v.Problems(where)
    columns: dict[str, pa.Array] = {}
    if spec.fid:
        raw = frame[spec.fid]
        fid_text = raw.astype("string").str.strip()
        if pd.api.types.is_float_dtype(raw):  # ids read as floats (e.g. from NaN-holding columns)
            fid_text = raw.map(lambda x: None if pd.isna(x) else (str(int(x)) if float(x).is_integer() else str(x)))
        nulls = fid_text.isna().to_numpy() | (fid_text == "").fillna(True).to_numpy()
        if nulls.any():
            problems.add(np.flatnonzero(nulls), "has no id", spec.fid)
        dup = fid_text.duplicated(keep=False).to_numpy() & ~nulls & keep
        if dup.any():
            problems.add(np.flatnonzero(dup), "duplicate id in this input", spec.fid, fid_text.to_numpy()[dup])
        columns["fid"] = pa.array(fid_text, pa.string(), from_pandas=True)  # missing ids are problems above
    if spec.valid_from:
        vf = v.to_utc(frame[spec.valid_from], spec.time_zone, problems, spec.valid_from)
        if spec.instant:
            nulls = np.asarray(vf.is_null().to_numpy(zero_copy_only=False))
            if nulls.any():
                problems.add(np.flatnonzero(nulls), "an instant needs a time", spec.valid_from)
        vt = vf if spec.instant else (v.to_utc(frame[spec.valid_to], spec.time_zone, problems, spec.valid_to)
                                      if spec.valid_to else pa.nulls(len(frame), TS))
        order = pc.fill_null(pc.less(vt, vf), False)
        if pc.any(order).as_py():
            problems.add(np.flatnonzero(order.to_numpy(zero_copy_only=False)), "valid_to is before valid_from",
                         spec.valid_to)
    else:
        vf = vt = pa.nulls(len(frame), TS)
    columns["valid_from"], columns["valid_to"] = vf, vt
    for f in fields:
        if f.name in frame.columns:
            columns[f.name] = v.convert_column(frame[f.name], f, spec.time_zone, problems)
        else:
            columns[f.name] = pa.nulls(len(frame), full_schema(spec.with_schema(fields)).field(f.name).type)
    problems.raise_if_any()

    columns["geometry"] = enc.wkb
    columns["bbox"] = pa.StructArray.from_arrays([pa.array(enc.bounds[:, i]) for i in range(4)], fields=list(BBOX))
    if spec.fid:
        attr_hash = v.frame_hash(pa.table({k: columns[k] for k in columns if k not in ("geometry", "bbox", "fid")})
                                 .to_pandas())
        columns["_hash"] = pa.array(v.combine_hashes(attr_hash, enc.hash), pa.uint64())
    else:  # store-assigned ids never match a later input: no hash needed
        columns["_hash"] = pa.array(np.zeros(len(frame), np.uint64), pa.uint64())
    table = pa.table(columns)
    if skipped:
        table = table.filter(pa.array(keep))
    new_spec = spec
    if spec.schema_ is None or spec.geometry_type != enc.geometry_type:
        # validated, so nothing the model refuses ever reaches the catalog
        new_spec = DatasetSpec.model_validate({**spec.to_json_dict(), "schema": [f.model_dump() for f in fields],
                                               "geometry_type": enc.geometry_type})
    return table, new_spec, (skipped, enc.invalid)


def _source_crs(src: Source, declared: str | None, where: str) -> Any:
    if declared:
        try:
            return resolve_crs(declared)
        except CRSError as exc:
            raise CRSError(f"{where}: the declared source_crs is not usable: {exc}") from None
    if src.crs is not None:
        try:
            return resolve_crs(src.crs if not hasattr(src.crs, "to_wkt") else src.crs)
        except CRSError as exc:
            raise CRSError(f"{where}: the file's CRS is not usable: {exc}") from None
    if src.default_crs:
        return resolve_crs(src.default_crs)
    raise CRSError(f"{where}: the source declares no CRS; declare source_crs (e.g. EPSG:4490 or GCJ-02)")


def _version(w: Any, spec: DatasetSpec, table: pa.Table, mode: Mode,
             report: IngestReport, expect: Mapping[Any, int] | None = None) -> tuple[pa.Table, np.ndarray]:
    """Assign fids and versions; find what the input supersedes (checking the
    versions the caller expects, under the writer's lock)."""
    n = len(table)
    if spec.fid is None:
        if mode == "replace":
            current = w.current_keys()
            retire = current.column("_loc").to_numpy()
            report.rows_deleted = len(retire)
        else:
            retire = np.empty(0, np.int64)
        first = w.allocate_fids(n) if n else 0
        table = _with_ids(table, pa.array(np.arange(first, first + n, dtype=np.int64)),
                          pa.array(np.ones(n, np.int32)))
        report.rows_added = n
        return table, retire
    fids = table.column("fid")
    current = w.current_keys(None if mode == "replace" else fids.combine_chunks())
    cur = current.to_pandas().set_index("fid")
    for fid, version in (expect or {}).items():
        now = cur["version"].get(coerce_fid(spec, fid))
        if now is None or int(now) != int(version):
            raise PreconditionFailed(f"item {fid!r} is at version {now}, not {version}: it changed since it was read"
                                     if now is not None else f"item {fid!r} is no longer current")
    inp = pd.Series(np.arange(n), index=fids.to_pandas())
    known = inp.index.isin(cur.index)
    if mode == "append" and known.any():
        dup = inp.index[known][:10].tolist()
        raise SchemaError(f"{report.source}: append: {int(known.sum())} ids already exist in {spec.name!r}, "
                          f"e.g. {dup}", fids=dup)
    versions = np.ones(n, np.int32)
    changed = np.zeros(n, bool)
    unchanged = np.zeros(n, bool)
    retire = []
    if known.any():
        rows = inp.to_numpy()[known]
        prev = cur.loc[inp.index[known]]
        same = prev["_hash"].to_numpy(np.uint64) == table.column("_hash").to_numpy()[rows]
        unchanged[rows[same]] = True
        changed[rows[~same]] = True
        versions[rows[~same]] = prev["version"].to_numpy()[~same] + 1
        retire.extend(prev["_loc"].to_numpy()[~same].tolist())
    fresh = ~known
    if fresh.any():
        # ids the dataset held before (deleted since) continue their numbering
        past = w.last_versions(pa.array(inp.index[fresh], pa.string())).to_pandas().set_index("fid")["version"]
        if len(past):
            rows = inp.to_numpy()[fresh]
            prior = past.reindex(inp.index[fresh]).to_numpy()
            had = ~np.isnan(prior.astype(float))
            versions[rows[had]] = prior[had].astype(np.int64) + 1
    if mode == "replace":
        gone = ~cur.index.isin(inp.index)
        retire.extend(cur["_loc"].to_numpy()[gone].tolist())
        report.rows_deleted = int(gone.sum())
    report.rows_added = int(n - known.sum())
    report.rows_changed = int(changed.sum())
    report.rows_unchanged = int(unchanged.sum())
    table = table.filter(pa.array(~unchanged))
    table = _with_ids(table, table.column("fid"), pa.array(versions[~unchanged]))
    return table, np.asarray(retire, np.int64)


def _with_ids(table: pa.Table, fids: Any, versions: pa.Array) -> pa.Table:
    if "fid" in table.column_names:
        table = table.drop_columns(["fid"])
    table = table.add_column(0, "fid", fids)
    return table.add_column(1, "version", versions)
