"""The Cube: the Python API over a store.

>>> import geoplatform as gp, tempfile
>>> cube = gp.open_cube(tempfile.mkdtemp())
>>> cube.datasets()
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from geoplatform.crs import resolve_crs, transform_geometries
from geoplatform.cube.backend import SAMPLE_KEY, DatasetStats, StorageBackend, load_backend
from geoplatform.cube.model import DatasetSpec, Output, Snapshot
from geoplatform.cube.query import QueryPlan, finish, finish_counted, plan_query, resolve_snapshot
from geoplatform.errors import DatasetNotFound, FeatureNotFound, InvalidParameterValue, StoreError
from geoplatform.settings import Settings

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

    from geoplatform.grids.model import GridSpec


class Cube:
    """A store of datasets keyed by location and time, with their history.

    Open one with :func:`geoplatform.open_cube`.
    """

    def __init__(self, backend: StorageBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of ``settings.dask_scheduler`` (None without one).

        Connected on first use and made the default scheduler, so the lazy grids
        this cube returns (``grid``, ``to_xarray``) compute on that cluster. Its
        workers open the store by its location: on more than one machine, that is
        a shared folder.
        """
        if self._client is None and self.settings.dask_scheduler:
            from distributed import Client

            try:
                self._client = Client(self.settings.dask_scheduler, set_as_default=True, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise StoreError(f"cannot reach the dask scheduler at {self.settings.dask_scheduler}: {exc}") from None
        return self._client

    def __repr__(self) -> str:
        return f"<Cube {self.backend.name}:{self.backend.location}>"

    def __enter__(self) -> "Cube":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.backend.close()

    # datasets ---------------------------------------------------------------
    def create_dataset(self, spec: DatasetSpec | dict[str, Any]) -> Snapshot:
        """Declare a dataset; it starts empty at its first snapshot."""
        if isinstance(spec, dict):
            spec = DatasetSpec.model_validate(spec)
        resolve_crs(spec.storage_crs)
        return self.backend.create_dataset(spec)

    def datasets(self) -> list[DatasetSpec]:
        """Every dataset's spec, by name."""
        return self.backend.list_specs()

    def dataset(self, name: str) -> DatasetSpec:
        return self.backend.get_spec(name)

    def __contains__(self, name: str) -> bool:
        try:
            self.backend.get_spec(name)
        except DatasetNotFound:
            return False
        return True

    def drop_dataset(self, name: str) -> None:
        """Remove a dataset, its history and its files."""
        self.backend.drop_dataset(name)

    def snapshots(self, name: str) -> list[Snapshot]:
        """The dataset's commits, oldest first."""
        return self.backend.snapshots(name)

    def stats(self, name: str, as_of: Any = None) -> DatasetStats:
        """Row count, extent and time range of the dataset at a snapshot."""
        return self.backend.stats(name, resolve_snapshot(self.backend, name, as_of))

    # writing ----------------------------------------------------------------
    def ingest(self, name: str, source: Any, **options: Any) -> Any:
        """Load a file or frame into a dataset as one snapshot.

        See :func:`geoplatform.ingest.ingest` for the options (``mode``,
        ``on_invalid``, ``source_crs``, ``layer``...).
        """
        return _pipeline("ingest")(self, name, source, **options)

    def delete_features(self, name: str, fids: Iterable[Any], *, operation: str = "delete",
                        expect: Mapping[Any, int] | None = None) -> Snapshot:
        """End the current version of each feature in record time (its history stays).
        ``expect`` (id -> version) makes it conditional, as in :meth:`ingest`."""
        from geoplatform.errors import PreconditionFailed
        from geoplatform.storage.records import coerce_fid

        with self.backend.writer(name) as w:
            wanted = [coerce_fid(w.spec, f) for f in fids]
            keys = w.current_keys(pa.array(wanted))
            missing = sorted(set(wanted) - set(keys.column("fid").to_pylist()), key=str)
            if missing:
                raise FeatureNotFound(f"dataset {name!r} has no current features {missing[:10]}",
                                      dataset=name, fids=missing)
            now = dict(zip(keys.column("fid").to_pylist(), keys.column("version").to_pylist()))
            for fid, version in (expect or {}).items():
                if now.get(coerce_fid(w.spec, fid)) != int(version):
                    raise PreconditionFailed(f"item {fid!r} is at version {now.get(coerce_fid(w.spec, fid))}, "
                                             f"not {version}: it changed since it was read")
            res = w.commit(None, keys.column("_loc").to_numpy(), operation=operation,
                           summary={"deleted": len(wanted)})
        return res.snapshot

    def compact(self, name: str) -> dict[str, Any] | None:
        """Rewrite the read layouts that many small commits scattered (the
        embedded store's space copy and its samples) as one sorted run, so a
        map tile reads one file instead of one per commit. Nothing any snapshot
        reads changes, so no snapshot is made; returns, per layout rewritten,
        its files before and after and its rows (None: nothing to do). Run it
        after a bulk load, or from time to time on a dataset fed in many small
        commits."""
        return self.backend.compact(name)

    # reading ----------------------------------------------------------------
    def query(self, name: str, *, output: Output = "geodataframe", crs: str | None = None,
              **params: Any) -> "gpd.GeoDataFrame | pa.Table":
        """Features of one dataset.

        Parameters: ``bbox`` (and ``bbox_crs``, default the storage CRS),
        ``geometry`` with ``predicate`` (intersects, within, contains, dwithin
        with ``distance`` in metres), ``datetime`` (an instant, ``a/b`` with
        ``..`` open ends, or a pair), ``as_of`` (a snapshot id or a time),
        ``filter`` (CQL2 text or JSON) with ``filter_lang``, ``properties``,
        ``sortby`` (``"-height,name"``), ``limit``, ``offset``. ``crs`` is the
        output CRS; ``output`` is ``"geodataframe"`` or ``"arrow"``.
        """
        plan = plan_query(self.backend, name, **params)
        table = self._run(plan, with_geometry=True)
        return _output(table, plan.spec, output, crs)

    def query_sample(self, name: str, min_rows: int, *, exact_bbox: bool = True,
                     **params: Any) -> tuple[pa.Table, int]:
        """:meth:`query`, or a sample of its answer where a full one would be
        large: when a query with a bbox alone (no time, filter, geometry, sort or
        paging) meets more than about ``min_rows`` features and the store keeps
        samples of 1/k of the features, chosen by feature id, the sparsest one
        that still holds about ``min_rows`` is read (for low-zoom map tiles).

        Returns an Arrow table in the storage CRS that keeps each record's
        ``bbox`` column (so a caller can thin before decoding any geometry), and
        k (1: all of them). Without ``exact_bbox`` a feature whose bbox meets
        ``bbox`` is kept without testing its shape: a map tile clips every shape
        to its box anyway, and one that misses it comes out empty there."""
        plan = plan_query(self.backend, name, **params)
        req = plan.scan_request(with_geometry=True)
        if not (plan.interval is not None or plan.compiled is not None or plan.geometry is not None
                or plan.sortby or plan.limit is not None or plan.offset):
            req = replace(req, sample_min_rows=min_rows)
        raw = self.backend.scan(name, req)
        k = int((raw.schema.metadata or {}).get(SAMPLE_KEY, b"1"))
        table = finish(plan, raw, exact_bbox=exact_bbox)
        assert isinstance(table, pa.Table)
        table = self._select(plan, table)
        return table.drop_columns([c for c in ("_hash",) if c in table.column_names]), k

    def query_page(self, name: str, *, output: Output = "geodataframe", crs: str | None = None,
                   **params: Any) -> "tuple[gpd.GeoDataFrame | pa.Table, int]":
        """:meth:`query` (with ``limit`` / ``offset``) and the exact number of
        features the query matches without them, from one scan."""
        plan = plan_query(self.backend, name, **params)
        if _unfiltered(plan):
            # Everything matches: the count is the catalog's, and only the rows up
            # to the page's end are read.
            matched = self.backend.stats(name, plan.snapshot).rows
            end = plan.offset + (matched if plan.limit is None else plan.limit)
            req = replace(plan.scan_request(with_geometry=True), limit=end)
            table = finish(plan, self.backend.scan(name, req))
            assert isinstance(table, pa.Table)
            return _output(self._select(plan, table), plan.spec, output, crs), matched
        table = self.backend.scan(plan.spec.name, plan.scan_request(with_geometry=True))
        page, matched = finish_counted(plan, table)
        return _output(self._select(plan, page), plan.spec, output, crs), matched

    def count(self, name: str, **params: Any) -> int:
        """The exact number of features a query matches (no limit applies)."""
        params.pop("limit", None)
        params.pop("offset", None)
        plan = plan_query(self.backend, name, **params)
        if _unfiltered(plan):
            return self.backend.stats(name, plan.snapshot).rows
        needs_geom = plan.geometry is not None or (plan.bbox is not None and plan.spec.geometry_type != "Point") or (
            plan.compiled is not None and plan.compiled.uses_geometry)
        req = plan.scan_request(with_geometry=needs_geom)
        if plan.properties is None and plan.compiled is None:
            req = replace(req, columns=())
        counter = getattr(self.backend, "count_rows", None)
        if counter is not None and _counted_by_backend(plan):
            return int(counter(name, req))
        table = self.backend.scan(name, req)
        return int(finish(plan, table, count_only=True))

    def _run(self, plan: QueryPlan, *, with_geometry: bool) -> pa.Table:
        table = self.backend.scan(plan.spec.name, plan.scan_request(with_geometry=with_geometry))
        out = finish(plan, table)
        assert isinstance(out, pa.Table)
        return self._select(plan, out)

    @staticmethod
    def _select(plan: QueryPlan, out: pa.Table) -> pa.Table:
        if plan.properties is not None:
            keep = ["fid", "version", "valid_from", "valid_to", "record_from", *plan.properties,
                    "bbox", "geometry"]
            out = out.select([c for c in keep if c in out.column_names])
        return out

    def search(self, datasets: Sequence[str] | None = None, *, crs: str = "EPSG:4490",
               output: Output = "geodataframe", **params: Any) -> "gpd.GeoDataFrame | pa.Table":
        """One query over several datasets (all when ``datasets`` is None),
        as one frame in ``crs`` with a ``dataset`` column."""
        import geopandas as gpd
        import pandas as pd

        names = [s.name for s in self.datasets()] if datasets is None else list(datasets)
        if params.get("bbox") is not None and "bbox_crs" not in params:
            params["bbox_crs"] = crs
        frames = []
        for name in names:
            gdf = self.query(name, crs=crs, **params)
            if len(gdf):
                gdf.insert(0, "dataset", name)
                frames.append(gdf)
        if not frames:
            out = gpd.GeoDataFrame({"dataset": pd.Series(dtype=str), "fid": pd.Series(dtype=str)},
                                   geometry=gpd.GeoSeries([], crs=resolve_crs(crs).pyproj_crs))
        else:
            for f in frames:
                f["fid"] = f["fid"].astype(str)
            out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry",
                                   crs=resolve_crs(crs).pyproj_crs)
        return out if output == "geodataframe" else pa.Table.from_pandas(out.to_wkb(), preserve_index=False)

    def history(self, name: str, fid: Any, *, output: Output = "geodataframe") -> "gpd.GeoDataFrame | pa.Table":
        """Every version of one feature, with its valid and record time."""
        spec = self.backend.get_spec(name)
        t = self.backend.history(name, fid)
        if not len(t):
            raise FeatureNotFound(f"dataset {name!r} has no feature {fid!r}", dataset=name, fid=fid)
        return _output(t, spec, output, None)

    def get(self, name: str, fid: Any, *, as_of: Any = None, crs: str | None = None) -> "gpd.GeoDataFrame":
        """The version of one feature that is current (or was, ``as_of``), in ``crs``."""
        from geoplatform.storage.records import coerce_fid

        spec = self.backend.get_spec(name)
        plan = plan_query(self.backend, name, as_of=as_of)
        req = plan.scan_request(with_geometry=True)
        req = replace(req, fids=(coerce_fid(spec, fid),))
        t = self.backend.scan(name, req)
        if not len(t):
            raise FeatureNotFound(f"dataset {name!r} has no feature {fid!r}", dataset=name, fid=fid)
        return _output(t, spec, "geodataframe", crs)

    def to_xarray(self, name: str, *, resolution: float, freq: str | None = None,
                  agg: Literal["count", "sum", "mean", "min", "max"] = "count",
                  variable: str | None = None, crs: str | None = None,
                  chunks: bool | None = None, **params: Any) -> "xr.DataArray":
        """Aggregate a vector dataset to a (time, y, x) grid.

        See :func:`geoplatform.cube.grid.to_xarray`.
        """
        from geoplatform.cube.grid import to_xarray

        if self.client is not None and chunks is None:
            chunks = True  # on a cluster, the aggregation is its tasks
        return to_xarray(self, name, resolution=resolution, freq=freq, agg=agg, variable=variable,
                         crs=crs, chunks=chunks, **params)

    # grids ---------------------------------------------------------------------
    def create_grid(self, spec: "GridSpec | dict[str, Any]") -> Snapshot:
        """Declare a gridded dataset; it starts with no time step."""
        from geoplatform.grids.model import GridSpec

        if isinstance(spec, dict):
            spec = GridSpec.model_validate(spec)
        return self.backend.grids().create(spec)

    def grids(self) -> list["GridSpec"]:
        """The gridded datasets, by name."""
        g = self.backend.grids()
        return [g.row(n).spec for n in g.names()]

    def grid_snapshots(self, name: str) -> list[Snapshot]:
        return self.backend.grids().snapshots(name)  # type: ignore[no-any-return]

    def drop_grid(self, name: str) -> None:
        self.backend.grids().drop(name)

    def ingest_grid(self, name: str, source: Any, *, crs: str | None = None, times: Sequence[Any] | None = None,
                    time_pattern: str | None = None, variables: Sequence[str] | None = None,
                    only_new: bool = False) -> Snapshot:
        """Append the time steps of ``source`` to grid ``name`` as one snapshot.

        ``source``: a NetCDF file, a Zarr folder, an ``xarray`` object, a GeoTIFF,
        or a list, folder or glob of GeoTIFFs (one time step each). A GeoTIFF's
        time comes from ``times``, else from its name by ``time_pattern`` (or the
        grid's declared one), else from its TIME or TIFFTAG_DATETIME tag. The
        source's steps must all come after the grid's last one, or, with
        ``only_new``, those that do not are passed over (a file that grew). The
        same files again add nothing (the snapshot that took them is returned).
        """
        from geoplatform.grids.readers import open_source
        from geoplatform.grids.store import source_hash

        g = self.backend.grids()
        spec = g.row(name).spec
        src = open_source(source, crs=crs or spec.crs, times=times, time_pattern=time_pattern or spec.time_pattern,
                          variables=variables)
        return g.append(name, src, source_hash(source), only_new=only_new)  # type: ignore[no-any-return]

    def grid(self, name: str, *, as_of: Any = None, layout: Literal["map", "series"] = "map") -> "xr.Dataset":
        """Grid ``name`` at a snapshot (default the newest) as a lazy, dask-backed
        ``xarray.Dataset`` over (time, y, x), CF attributes and its CRS in
        ``spatial_ref`` (and ``attrs["crs"]``).

        ``layout`` picks the copy its dask chunks come from: ``"map"`` (a chunk per
        step: maps, area statistics) or ``"series"`` (many steps per chunk: the
        series of a point or a small area).
        """
        self.client  # noqa: B018 - connects to the configured cluster, if any
        return self.backend.grids().open(name, as_of, layout)  # type: ignore[no-any-return]

    def series(self, name: str, *, station: str, variables: Sequence[str] | None = None,
               stations: str | None = None, station_id: str | None = None, freq: str | None = None,
               agg: Literal["mean", "sum", "min", "max", "count", "first", "last"] = "mean",
               crs: str | None = None, **params: Any) -> "xr.Dataset":
        """A point dataset of observations as an ``xarray.Dataset`` over (station, time).

        See :func:`geoplatform.grids.series.series`.
        """
        from geoplatform.grids.series import series

        return series(self, name, station=station, variables=variables, stations=stations,
                      station_id=station_id, freq=freq, agg=agg, crs=crs, **params)


def _unfiltered(plan: QueryPlan) -> bool:
    """Whether every record of the snapshot matches, in scan order (no sort)."""
    return (plan.bbox is None and plan.prune_bbox is None and plan.geometry is None and plan.interval is None
            and plan.compiled is None and not plan.sortby)


def _output(table: pa.Table, spec: DatasetSpec, output: Output, crs: str | None) -> Any:
    if "bbox" in table.column_names:
        table = table.drop_columns(["bbox"])
    if "_hash" in table.column_names:
        table = table.drop_columns(["_hash"])
    target = resolve_crs(crs or spec.storage_crs)
    if output == "arrow":
        if crs is not None and resolve_crs(crs) != resolve_crs(spec.storage_crs) and len(table):
            import shapely

            geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
            geoms = transform_geometries(geoms, spec.storage_crs, target)
            idx = table.column_names.index("geometry")
            table = table.set_column(idx, "geometry", pa.array(shapely.to_wkb(geoms), pa.binary()))
        return table.replace_schema_metadata({b"geoplatform:crs": target.id.encode()})
    if output != "geodataframe":
        raise InvalidParameterValue(f"output {output!r} is not 'geodataframe' or 'arrow'")
    import geopandas as gpd
    import shapely

    geom = table.column("geometry").to_numpy(zero_copy_only=False) if "geometry" in table.column_names else None
    df = table.drop_columns(["geometry"]).to_pandas() if geom is not None else table.to_pandas()
    src = resolve_crs(spec.storage_crs)
    geoms = shapely.from_wkb(geom) if geom is not None else np.full(len(df), None)
    if target != src and len(df):
        geoms = transform_geometries(geoms, src, target)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, index=df.index, crs=_geopandas_crs(target)))


def _geopandas_crs(c: Any) -> Any:
    return c.pyproj_crs if not c.is_offset_system else None


def _pipeline(name: str) -> Any:
    """An upper-layer pipeline (ingest), found through the ``geoplatform.pipelines``
    entry points so the cube does not import the layers above it."""
    for ep in entry_points(group="geoplatform.pipelines"):
        if ep.name == name:
            return ep.load()
    raise StoreError(f"no {name} pipeline installed (is geoplatform installed with pip install -e .?)")


def is_database_url(location: str) -> bool:
    """Whether a store location names a PostgreSQL database rather than a folder."""
    return location.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def _counted_by_backend(plan: QueryPlan) -> bool:
    """Whether every row the backend's scan returns is a match: points (their bbox is
    their shape) with no geometry, no attribute filter and the backend's own box; then
    a backend that counts (``count_rows``, the PostGIS backend's count(*)) may."""
    return (plan.spec.geometry_type == "Point" and plan.geometry is None and plan.compiled is None
            and (plan.bbox is None or plan.bbox == plan.prune_bbox))


def open_cube(location: str | Path | None = None, *, settings: Settings | None = None,
              backend: str | None = None, api_key: str | None = None, token: str | None = None,
              principal: Any = None) -> Cube:
    """Open (or create) a store.

    ``location`` is a folder for the embedded store; ``None`` uses
    ``settings.store`` (``GEOPLATFORM_STORE``).

    With ``api_key`` or ``token`` (checked against the settings' access file and
    JWT keys, as the server checks them) or ``principal`` (a
    :class:`geoplatform.access.policy.Principal`, or roles per department), the
    cube shows and changes only what that caller may
    (:mod:`geoplatform.access.guard`); without, it is the store's operator's.

    >>> import tempfile
    >>> open_cube(tempfile.mkdtemp()).datasets()
    []
    """
    settings = settings or Settings()
    if location is None and settings.database_url:
        location = settings.database_url
    loc = str(location if location is not None else settings.store)
    if backend is None and is_database_url(loc):
        backend = "postgis"
    cls = load_backend(backend or settings.backend)
    if api_key is None and token is None and principal is None:
        return Cube(cls(loc, settings), settings)
    from geoplatform.access.audit import AuditLog
    from geoplatform.access.guard import guarded, principal_from

    who = principal if principal is not None else principal_from(settings, api_key=api_key, token=token)
    audit = AuditLog(settings.audit_log) if settings.audit_log else None
    return Cube(guarded(cls(loc, settings), who, audit), settings)  # type: ignore[arg-type]
