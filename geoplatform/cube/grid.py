"""Aggregating a vector dataset to a (time, y, x) grid as an xarray DataArray.

A feature counts in the cell of its bbox centre and in the first time step
in which it is valid (the step of its ``valid_from``, or the first step when it
began earlier), so the grid's total equals ``Cube.count`` over the same interval. With dask (``chunks=True``, or on its own when the query
would return many rows) each block of time steps is one task that opens the
store itself, so the same graph runs on threads or on a dask.distributed
cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from geoplatform.crs import resolve_crs, transform_xy
from geoplatform.cube.query import _bbox_in, finish, plan_query
from geoplatform.cube.times import MAX_US, MIN_US, from_us, parse_interval, to_us
from geoplatform.errors import InvalidParameterValue

if TYPE_CHECKING:
    import xarray as xr

    from geoplatform.cube.cube import Cube

Agg = Literal["count", "sum", "mean", "min", "max"]
_AGGS = ("count", "sum", "mean", "min", "max")
#: Above this many matching rows, the grid is built lazily with dask.
DASK_ROWS = 2_000_000
MAX_CELLS = 2_000_000_000


def to_xarray(cube: "Cube", name: str, *, resolution: float, freq: str | None = None, agg: Agg = "count",
              variable: str | None = None, crs: str | None = None, chunks: bool | None = None,
              **params: Any) -> "xr.DataArray":
    """Aggregate dataset ``name`` to a grid of ``resolution`` (in the units of
    ``crs``, default the storage CRS) and time steps of ``freq`` (a pandas
    frequency such as ``"1D"`` or ``"1h"``; ``None`` for a single step).

    ``agg`` is count, or sum / mean / min / max of the numeric ``variable``.
    Other keywords filter the features as in :meth:`Cube.query`.

    >>> import geoplatform as gp, tempfile  # doctest: +SKIP
    >>> grid = cube.to_xarray("incidents", resolution=0.01, freq="7D")  # doctest: +SKIP
    """
    if agg not in _AGGS:
        raise InvalidParameterValue(f"agg must be one of {_AGGS}, not {agg!r}")
    if resolution <= 0:
        raise InvalidParameterValue("resolution must be > 0")
    spec = cube.dataset(name)
    if agg != "count":
        if variable is None:
            raise InvalidParameterValue(f"agg={agg!r} needs a variable")
        try:
            if spec.field(variable).type not in ("integer", "number"):
                raise InvalidParameterValue(f"variable {variable!r} is not numeric")
        except KeyError:
            raise InvalidParameterValue(f"dataset {name!r} has no variable {variable!r}") from None
    grid_crs = resolve_crs(crs or spec.storage_crs)
    x0, y0, x1, y1 = _extent(cube, name, grid_crs, params)
    # +1: a feature exactly on the east or south edge still gets a cell
    nx = int(np.floor((x1 - x0) / resolution)) + 1
    ny = int(np.floor((y1 - y0) / resolution)) + 1
    t_edges = _time_edges(cube, name, freq, params.get("datetime"))
    nt = len(t_edges) - 1
    if nt * ny * nx > MAX_CELLS:
        raise InvalidParameterValue(f"the grid would have {nt * ny * nx:,} cells; use a coarser resolution or freq")
    geo = _Geo(x0, y1, resolution, nx, ny, grid_crs.id, spec.storage_crs)
    base = {k: v for k, v in params.items() if k != "datetime"}
    # The last step may reach past the asked interval: keep its end as a clip.
    asked = parse_interval(params.get("datetime"))
    if asked is not None:
        base["_clip"] = (to_us(asked.start, MIN_US), to_us(asked.end, MAX_US))
    if chunks is None:
        chunks = cube.count(name, **params) > DASK_ROWS
    if chunks:
        data = _lazy(cube, name, geo, t_edges, agg, variable, base)
    else:
        data = _block(cube, name, geo, t_edges, agg, variable, base)
    return _wrap(data, geo, t_edges, grid_crs, name, agg, variable)


class _Geo:
    """The grid: origin at the north-west corner, rows north to south."""

    def __init__(self, x0: float, ytop: float, res: float, nx: int, ny: int, crs: str, storage: str) -> None:
        self.x0, self.ytop, self.res, self.nx, self.ny, self.crs, self.storage = x0, ytop, res, nx, ny, crs, storage

    def cells(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if resolve_crs(self.crs) != resolve_crs(self.storage):
            x, y = transform_xy(x, y, self.storage, self.crs)
        ix = np.floor((x - self.x0) / self.res).astype(np.int64)
        iy = np.floor((self.ytop - y) / self.res).astype(np.int64)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return ix, iy, inside


def _extent(cube: "Cube", name: str, grid_crs: Any, params: dict[str, Any]) -> tuple[float, float, float, float]:
    spec = cube.dataset(name)
    if params.get("bbox") is not None:
        b = [float(v) for v in params["bbox"]]
        src = params.get("bbox_crs") or spec.storage_crs
    else:
        ext = cube.stats(name, params.get("as_of")).extent
        if ext is None:
            raise InvalidParameterValue(f"dataset {name!r} is empty: give a bbox for the grid")
        b, src = list(ext), spec.storage_crs
    return _bbox_in(b, src, grid_crs.id)


def _time_edges(cube: "Cube", name: str, freq: str | None, when: Any) -> np.ndarray:
    interval = parse_interval(when)
    stats = cube.stats(name)
    lo = to_us(interval.start, MIN_US) if interval else MIN_US
    hi = to_us(interval.end, MAX_US) if interval else MAX_US
    lo = stats.t_min if lo == MIN_US and stats.t_min is not None else lo
    hi = stats.t_max if hi == MAX_US and stats.t_max is not None else hi
    if lo == MIN_US or hi == MAX_US:
        if freq is not None:
            raise InvalidParameterValue("the dataset has no time extent: give datetime for a time axis")
        return np.array([MIN_US, MAX_US], np.int64)
    if freq is None:
        return np.array([lo, hi + 1], np.int64)
    try:
        start = pd.Timestamp(from_us(lo)).normalize()  # steps start at midnight UTC of the first day
        edges = pd.date_range(start, pd.Timestamp(from_us(hi)) + pd.tseries.frequencies.to_offset(freq),
                              freq=freq, tz="UTC")
    except (ValueError, TypeError) as exc:
        raise InvalidParameterValue(f"freq {freq!r} is not a pandas frequency: {exc}") from None
    us = edges.as_unit("us").asi8
    return us[: np.searchsorted(us, hi, side="right") + 1]


def _block(cube: "Cube", name: str, geo: _Geo, t_edges: np.ndarray, agg: Agg, variable: str | None,
           params: dict[str, Any]) -> np.ndarray:
    """Aggregate one block of time steps eagerly."""
    nt = len(t_edges) - 1
    params = dict(params)
    clip_lo, clip_hi = params.pop("_clip", (MIN_US, MAX_US))
    lo, hi = int(t_edges[0]), int(t_edges[-1])
    when = None if lo == MIN_US else (from_us(max(lo, clip_lo)), from_us(min(hi - 1, clip_hi)))
    plan = plan_query(cube.backend, name, datetime=when, properties=[variable] if variable else [], **params)
    table = finish(plan, cube.backend.scan(name, plan.scan_request(with_geometry=plan.geometry is not None)))
    assert isinstance(table, pa.Table)
    if agg == "count":
        out = np.zeros((nt, geo.ny, geo.nx), np.float64)
    else:
        out = np.full((nt, geo.ny, geo.nx), np.nan)
    if not len(table):
        return out
    b = table.column("bbox").combine_chunks()
    x = (b.field("xmin").to_numpy() + b.field("xmax").to_numpy()) / 2
    y = (b.field("ymin").to_numpy() + b.field("ymax").to_numpy()) / 2
    ix, iy, inside = geo.cells(x, y)
    # A feature counts in the first step in which it is valid: one that began
    # before the grid's first step and is still valid in it counts there.
    vf = table.column("valid_from").cast(pa.int64()).fill_null(lo).to_numpy()
    vf = np.maximum(vf, max(lo, clip_lo))
    it = np.searchsorted(t_edges, vf, side="right") - 1
    inside &= (it >= 0) & (it < nt)
    vals = None
    if variable is not None:
        vals = table.column(variable).cast(pa.float64()).fill_null(np.nan).to_numpy()
        inside &= ~np.isnan(vals)
        vals = vals[inside]
    flat = ((it[inside] * geo.ny) + iy[inside]) * geo.nx + ix[inside]
    size = nt * geo.ny * geo.nx
    if agg == "count":
        return np.bincount(flat, minlength=size).reshape(out.shape).astype(np.float64)
    assert vals is not None
    if agg in ("sum", "mean"):
        s = np.bincount(flat, weights=vals, minlength=size)
        n = np.bincount(flat, minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            res = s if agg == "sum" else s / n
        res = np.where(n > 0, res, np.nan)
        return res.reshape(out.shape)
    fill = np.inf if agg == "min" else -np.inf
    res = np.full(size, fill)
    (np.minimum if agg == "min" else np.maximum).at(res, flat, vals)
    res[np.isinf(res)] = np.nan
    return res.reshape(out.shape)


def _block_task(backend: str, location: str, settings: Any, name: str, geo: _Geo, t_edges: np.ndarray,
                agg: Agg, variable: str | None, params: dict[str, Any]) -> np.ndarray:
    """One dask task: reopen the store (on whichever worker runs it) and aggregate."""
    from geoplatform.cube.cube import open_cube

    with open_cube(location, settings=settings, backend=backend) as cube:
        return _block(cube, name, geo, t_edges, agg, variable, params)


def _lazy(cube: "Cube", name: str, geo: _Geo, t_edges: np.ndarray, agg: Agg, variable: str | None,
          params: dict[str, Any]) -> Any:
    import dask
    import dask.array as da

    nt = len(t_edges) - 1
    # About 16 Mi cells per block keeps each task's output under ~130 MB.
    step = max(1, min(nt, (1 << 24) // max(1, geo.ny * geo.nx)))
    blocks = []
    for s in range(0, nt, step):
        e = min(nt, s + step)
        task = dask.delayed(_block_task, pure=True)(
            cube.backend.name, cube.backend.location, cube.settings, name, geo, t_edges[s:e + 1], agg, variable,
            params)
        blocks.append(da.from_delayed(task, shape=(e - s, geo.ny, geo.nx), dtype=np.float64))
    return da.concatenate(blocks, axis=0)


def _wrap(data: Any, geo: _Geo, t_edges: np.ndarray, grid_crs: Any, name: str, agg: Agg,
          variable: str | None) -> "xr.DataArray":
    import xarray as xr

    xs = geo.x0 + (np.arange(geo.nx) + 0.5) * geo.res
    ys = geo.ytop - (np.arange(geo.ny) + 0.5) * geo.res
    if t_edges[0] == MIN_US:
        times = pd.DatetimeIndex([pd.NaT])
    else:
        times = pd.to_datetime(t_edges[:-1], unit="us")
    crs_wkt = grid_crs.pyproj_crs.to_wkt()
    spatial_ref = xr.DataArray(0, attrs={
        "crs_wkt": crs_wkt, "spatial_ref": crs_wkt,
        "GeoTransform": f"{geo.x0} {geo.res} 0 {geo.ytop} 0 {-geo.res}",
    })
    label = f"{agg}_{variable}" if variable else "count"
    return xr.DataArray(
        data, dims=("time", "y", "x"),
        coords={"time": times, "y": ys, "x": xs, "spatial_ref": spatial_ref},
        name=f"{name}_{label}",
        attrs={"dataset": name, "agg": agg, "variable": variable or "", "crs": grid_crs.id,
               "grid_mapping": "spatial_ref", "resolution": geo.res,
               "cell_methods": f"area: time: {'sum' if agg == 'count' else agg}"},
    )
