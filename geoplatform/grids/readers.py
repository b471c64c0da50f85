"""Grid sources read as time steps on one grid: GeoTIFF stacks (rasterio),
NetCDF and Zarr (xarray), and xarray objects in memory.

A reader gives the grid, the variables, the time of each step, and the data
of a run of steps: a source larger than memory is read a block at a time.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from geoplatform.crs import crs_from_source
from geoplatform.cube.times import parse_instant
from geoplatform.errors import CRSError, IngestError
from geoplatform.grids.model import DTYPES, GridGeometry, GridVariable

_TIFF = (".tif", ".tiff")
_NETCDF = (".nc", ".nc4", ".netcdf", ".cdf")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_X_NAMES = ("x", "lon", "longitude", "easting")
_Y_NAMES = ("y", "lat", "latitude", "northing")


@dataclass
class GridSource:
    """What an ingest reads: the grid, its variables, one time per step, and
    ``read(i, j)``: the variables' data of steps ``i`` to ``j`` as (steps, y, x)
    arrays, y in the grid's own order."""

    geometry: GridGeometry
    variables: tuple[GridVariable, ...]
    times_us: np.ndarray
    read: Callable[[int, int], dict[str, np.ndarray]]
    description: str


def _us(values: Sequence[Any]) -> np.ndarray:
    out = []
    for v in values:
        try:
            if isinstance(v, np.datetime64):
                out.append(int(v.astype("datetime64[us]").astype(np.int64)))
                continue
            if isinstance(v, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+", v.strip()):
                v = v.strip() + "Z"  # a time without a zone in a grid source is UTC, as CF's default
            dt = parse_instant(v)
        except (ValueError, TypeError) as exc:
            raise IngestError(f"time {v!r} is not an instant: {exc}") from None
        out.append((dt - _EPOCH) // timedelta(microseconds=1))
    return np.asarray(out, np.int64)


def _dtype(dt: np.dtype) -> str:
    name = np.dtype(dt).name
    if name in DTYPES:
        return name
    if np.issubdtype(dt, np.floating):
        return "float64"
    if np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.bool_):
        return "int32"
    raise IngestError(f"values of type {name} are not numbers: a grid holds numbers")


def open_source(source: Any, *, crs: str | None = None, times: Sequence[Any] | None = None,
                time_pattern: str | None = None, variables: Sequence[str] | None = None) -> GridSource:
    """The reader for ``source``: an ``xarray.Dataset`` or ``DataArray``, a NetCDF
    file, a Zarr folder, a GeoTIFF, or a list, folder or glob of GeoTIFFs (one
    time step each, in time order)."""
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - a dependency
        xr = None
    if xr is not None and isinstance(source, (xr.Dataset, xr.DataArray)):
        ds = source.to_dataset(name=source.name or "value") if isinstance(source, xr.DataArray) else source
        return _from_xarray(ds, crs, times, variables, "an xarray object")
    if isinstance(source, (str, Path)):
        text = str(source)
        path = Path(text)
        if any(ch in text for ch in "*?["):
            files = sorted(Path(p) for p in glob.glob(text))
            if not files:
                raise IngestError(f"no file matches {text!r}")
            return _geotiffs(files, crs, times, time_pattern, variables)
        if not path.exists():
            raise IngestError(f"no such file or folder: {text}")
        if path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists() or path.suffix == ".zarr"):
            return _from_xarray(_open_xr(path, "zarr"), crs, times, variables, str(path))
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in _TIFF)
            if not files:
                raise IngestError(f"folder {path} holds no GeoTIFF (.tif) and is not a Zarr store")
            return _geotiffs(files, crs, times, time_pattern, variables)
        if path.suffix.lower() in _NETCDF:
            return _from_xarray(_open_xr(path, "netcdf"), crs, times, variables, str(path))
        if path.suffix.lower() in _TIFF:
            return _geotiffs([path], crs, times, time_pattern, variables)
        raise IngestError(f"{path.name}: not a grid source this platform reads (GeoTIFF, NetCDF or Zarr)")
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, Path)) for s in source):
        return _geotiffs([Path(s) for s in source], crs, times, time_pattern, variables)
    raise IngestError(f"cannot read a grid from {type(source).__name__}")


def _open_xr(path: Path, kind: str) -> Any:
    import xarray as xr

    try:
        if kind == "zarr":
            return xr.open_zarr(path, chunks=None, consolidated=None if (path / ".zmetadata").exists() else False)
        return xr.open_dataset(path, chunks=None)
    except Exception as exc:  # noqa: BLE001 - every reader error becomes one clear message
        raise IngestError(f"cannot read {path.name} as {kind}: {exc}") from None


# xarray (NetCDF, Zarr, in memory) -------------------------------------------------

def _xr_crs(ds: Any, var: Any, xname: str) -> Any:
    """The source's own CRS: a CF grid mapping (its WKT), else lon/lat axes."""
    gm = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
    if gm and gm in ds.variables:
        attrs = ds[gm].attrs
        wkt = attrs.get("crs_wkt") or attrs.get("spatial_ref")
        if wkt:
            import pyproj

            try:
                return pyproj.CRS.from_user_input(wkt)
            except pyproj.exceptions.CRSError as exc:
                raise CRSError(f"grid mapping {gm!r} holds a CRS that does not parse: {exc}") from None
        try:
            import pyproj

            return pyproj.CRS.from_cf(attrs)
        except Exception:  # noqa: BLE001 - a partial CF mapping: fall through
            pass
    if xname in ("lon", "longitude"):
        return "OGC:CRS84"  # CF: latitude and longitude are on WGS 84 unless a grid mapping says otherwise
    return None


def _from_xarray(ds: Any, crs: str | None, times: Sequence[Any] | None, names: Sequence[str] | None,
                 what: str) -> GridSource:
    cand = [v for v in ds.data_vars if ds[v].ndim in (2, 3)]
    if names:
        missing = [n for n in names if n not in ds.data_vars]
        if missing:
            raise IngestError(f"{what} has no variable {missing[0]!r} (it has {sorted(map(str, ds.data_vars))})")
        cand = list(names)
    if not cand:
        raise IngestError(f"{what} holds no variable over (time,) y and x")
    first = ds[cand[0]]
    dims = first.dims
    xdim = next((d for d in dims if str(d).lower() in _X_NAMES), None)
    ydim = next((d for d in dims if str(d).lower() in _Y_NAMES), None)
    if xdim is None or ydim is None:
        raise IngestError(f"variable {cand[0]!r} of {what} has dimensions {dims}: no x/lon and y/lat")
    tdim = next((d for d in dims if d not in (xdim, ydim)), None)
    order = (tdim, ydim, xdim) if tdim is not None else (ydim, xdim)
    for v in cand:
        if set(ds[v].dims) != set(order):
            raise IngestError(f"variable {v!r} of {what} has dimensions {ds[v].dims}, not {order}")
    try:
        pcrs = crs_from_source(_xr_crs(ds, first, str(xdim).lower()), crs)
    except CRSError as exc:
        raise IngestError(f"{what}: {exc}") from None
    try:
        geom = GridGeometry.from_centres(pcrs.id, ds[xdim].values, ds[ydim].values)
    except (ValueError, KeyError) as exc:
        raise IngestError(f"{what}: {exc}") from None
    if tdim is None:
        if times is None or len(times) != 1:
            raise IngestError(f"{what} has no time dimension: give its one time step (times=[...])")
        t_us = _us(times)
    elif times is not None:
        if len(times) != ds.sizes[tdim]:
            raise IngestError(f"{len(times)} times given for {ds.sizes[tdim]} time steps of {what}")
        t_us = _us(times)
    else:
        tv = ds[tdim].values if tdim in ds.coords else None
        if tv is None or not np.issubdtype(tv.dtype, np.datetime64):
            raise IngestError(f"the {tdim!r} dimension of {what} has no decoded times: give times=[...]")
        t_us = tv.astype("datetime64[us]").astype(np.int64)
    variables = []
    for v in cand:
        a = ds[v].attrs
        dt = _dtype(ds[v].dtype)
        fill = ds[v].encoding.get("_FillValue", a.get("_FillValue"))
        nodata = None
        if not dt.startswith("float") and fill is not None and np.isfinite(fill):
            nodata = float(fill)
        variables.append(GridVariable(name=str(v), title=a.get("long_name"), units=a.get("units"),
                                      standard_name=a.get("standard_name"), dtype=dt, nodata=nodata))

    def read(i: int, j: int) -> dict[str, np.ndarray]:
        out = {}
        for v in cand:
            da = ds[v]
            if tdim is None:
                arr = da.transpose(ydim, xdim).values[None]
            else:
                arr = da.isel({tdim: slice(i, j)}).transpose(*order).values
            out[str(v)] = np.asarray(arr)
        return out

    return GridSource(geom, tuple(variables), t_us, read, what)


# GeoTIFF stacks ----------------------------------------------------------------

_TIFF_TIME_TAGS = ("TIME", "time", "DATETIME", "datetime", "TIFFTAG_DATETIME", "ACQUISITIONDATETIME")


def _tiff_time(tags: dict[str, str]) -> str | None:
    for k in _TIFF_TIME_TAGS:
        v = tags.get(k)
        if v:
            m = re.fullmatch(r"(\d{4}):(\d\d):(\d\d) (\d\d):(\d\d):(\d\d)", v.strip())  # TIFF's own format
            return f"{m[1]}-{m[2]}-{m[3]}T{m[4]}:{m[5]}:{m[6]}Z" if m else v
    return None


def _time_from_name(pattern: re.Pattern[str], name: str) -> str:
    m = pattern.search(name)
    if m is None:
        raise IngestError(f"file name {name!r} does not match the time pattern {pattern.pattern!r}")
    g = m.groupdict()
    if g.get("year"):
        parts = [int(g.get(k) or d) for k, d in (("year", 0), ("month", 1), ("day", 1), ("hour", 0), ("minute", 0))]
        try:
            return datetime(*parts, tzinfo=timezone.utc).isoformat()
        except ValueError as exc:
            raise IngestError(f"file name {name!r}: {exc}") from None
    if m.groups():
        return m.group(1)
    raise IngestError(f"time pattern {pattern.pattern!r} has no group: name one (?P<year>...) or give one group")


def _geotiffs(files: list[Path], crs: str | None, times: Sequence[Any] | None, time_pattern: str | None,
              names: Sequence[str] | None) -> GridSource:
    import rasterio

    for f in files:
        if not f.exists():
            raise IngestError(f"no such file: {f}")
    pattern = None
    if time_pattern:
        try:
            pattern = re.compile(time_pattern)
        except re.error as exc:
            raise IngestError(f"time pattern {time_pattern!r}: {exc}") from None
    if times is not None and len(times) != len(files):
        raise IngestError(f"{len(times)} times given for {len(files)} files")
    geom: GridGeometry | None = None
    found: list[Any] = []
    meta: tuple[int, str, list[str | None], float | None] | None = None
    for k, f in enumerate(files):
        try:
            with rasterio.open(f) as src:
                t = src.transform
                if t.b != 0 or t.d != 0:
                    raise IngestError(f"{f.name} is rotated or sheared: a north-up grid is needed")
                if src.crs is None and crs is None:
                    raise IngestError(f"{f.name} has no CRS: declare one (crs=...)")
                try:
                    pcrs = crs_from_source(src.crs.to_wkt() if src.crs else None, crs)
                except CRSError as exc:
                    raise IngestError(f"{f.name}: {exc}") from None
                g = GridGeometry(pcrs.id, t.c, t.f, t.a, t.e, src.width, src.height)
                if geom is None:
                    geom = g
                elif not geom.same_grid(g):
                    raise IngestError(f"{f.name} is on another grid ({g.describe()}) than {files[0].name} "
                                      f"({geom.describe()})")
                m = (src.count, src.dtypes[0], list(src.descriptions), src.nodata)
                if meta is None:
                    meta = m
                elif m[0] != meta[0] or m[1] != meta[1]:
                    raise IngestError(f"{f.name} has {m[0]} band(s) of {m[1]}, {files[0].name} {meta[0]} of {meta[1]}")
                if times is not None:
                    found.append(times[k])
                elif pattern is not None:
                    found.append(_time_from_name(pattern, f.name))
                else:
                    tt = _tiff_time(src.tags())
                    if tt is None:
                        raise IngestError(f"{f.name} carries no time tag: give times=[...] or a time pattern "
                                          "for the file names")
                    found.append(tt)
        except rasterio.errors.RasterioIOError as exc:
            raise IngestError(f"cannot read {f.name} as a GeoTIFF: {exc}") from None
    assert geom is not None and meta is not None
    count, dtype, descriptions, nodata = meta
    if names:
        if len(names) != count:
            raise IngestError(f"{len(names)} variable names for {count} bands")
        vnames = list(names)
    elif count == 1:
        vnames = [descriptions[0] or "value"]
    else:
        vnames = [d or f"band_{i + 1}" for i, d in enumerate(descriptions)]
    dt = _dtype(np.dtype(dtype))
    variables = tuple(GridVariable(name=re.sub(r"[^A-Za-z0-9_.]", "_", n) if n[0].isalpha() else f"v_{n}",
                                   dtype=dt, nodata=None if dt.startswith("float") or nodata is None
                                   else float(nodata)) for n in vnames)
    t_us = _us(found)

    def read(i: int, j: int) -> dict[str, np.ndarray]:
        out = {v.name: np.empty((j - i, geom.height, geom.width), v.dtype) for v in variables}
        for k in range(i, j):
            with rasterio.open(files[k]) as src:
                data = src.read(masked=False)
                nd = src.nodata
            for b, v in enumerate(variables):
                band = data[b]
                if v.dtype.startswith("float") and nd is not None and not np.isnan(nd):
                    band = np.where(band == nd, np.nan, band)
                out[v.name][k - i] = band
        return out

    desc = f"{len(files)} GeoTIFF file(s) from {files[0].name}"
    return GridSource(geom, variables, t_us, read, desc)
