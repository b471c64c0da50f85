"""Sensor series: a vector dataset of observations read as a (station, time) cube.

The observations are point features with a station key and a valid time;
each numeric attribute becomes a variable over (station, time), NaN where a
station has no observation. The stations' positions come from the
observations themselves (a station's first observed position) or from a
dataset of stations keyed by an id column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geoplatform.crs import resolve_crs
from geoplatform.errors import InvalidParameterValue

if TYPE_CHECKING:
    import xarray as xr

    from geoplatform.cube.cube import Cube

Agg = Literal["mean", "sum", "min", "max", "count", "first", "last"]
#: Above this many (station, time) cells a series is refused: ask for a window or a coarser step.
MAX_CELLS = 200_000_000


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


@dataclass
class SeriesArrays:
    """A series as plain arrays (what :func:`series` wraps as xarray; the EDR server
    writes these out directly)."""

    station: np.ndarray  # (n,) the station keys, sorted
    time: np.ndarray  # (m,) datetime64[us], UTC, sorted
    x: np.ndarray  # (n,)
    y: np.ndarray  # (n,)
    data: dict[str, np.ndarray]  # variable -> (n, m) float64, NaN where not observed
    attrs: dict[str, Any]  # per variable: units, long_name
    crs: str


def series(cube: "Cube", name: str, *, station: str, variables: Sequence[str] | None = None,
           stations: str | None = None, station_id: str | None = None, freq: str | None = None,
           agg: Agg = "mean", crs: str | None = None, **params: Any) -> "xr.Dataset":
    """Observations of dataset ``name`` as an ``xarray.Dataset`` over (station, time).

    ``station``: the attribute naming an observation's station. ``variables``:
    the numeric attributes to keep (default all). ``stations`` (a dataset)
    with ``station_id`` (its attribute holding the key; default its feature id)
    gives the stations' positions and names every station, observed or not.
    ``freq`` (a pandas frequency, "1h", "1D") resamples with ``agg``; without
    it, each distinct observation time is a step and equal (station, time)
    observations are combined with ``agg``. Other parameters (``datetime``,
    ``bbox``, ``filter``, ``as_of``...) select observations as in ``Cube.query``.
    """
    import xarray as xr

    a = series_arrays(cube, name, station=station, variables=variables, stations=stations, station_id=station_id,
                      freq=freq, agg=agg, crs=crs, **params)
    data = {v: (("station", "time"), arr, a.attrs[v]) for v, arr in a.data.items()}
    coords = {"station": ("station", a.station), "time": ("time", a.time),
              "x": ("station", a.x), "y": ("station", a.y)}
    attrs = {"crs": a.crs, "geoplatform:dataset": name, "featureType": "timeSeries", "Conventions": "CF-1.8"}
    if freq:
        attrs.update({"geoplatform:freq": freq, "geoplatform:agg": agg})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def series_arrays(cube: "Cube", name: str, *, station: str, variables: Sequence[str] | None = None,
                  stations: str | None = None, station_id: str | None = None, freq: str | None = None,
                  agg: Agg = "mean", crs: str | None = None, **params: Any) -> SeriesArrays:
    """The arrays of :func:`series` (same parameters)."""
    import shapely

    spec = cube.dataset(name)
    if spec.geometry_type not in (None, "Point"):
        raise InvalidParameterValue(f"dataset {name!r} holds {spec.geometry_type} features, not point observations")
    fields = {f.name: f for f in spec.fields}
    if station not in fields:
        raise InvalidParameterValue(f"dataset {name!r} has no attribute {station!r} (it has {sorted(fields)})")
    if agg not in ("mean", "sum", "min", "max", "count", "first", "last"):
        raise InvalidParameterValue(f"agg {agg!r} is not mean, sum, min, max, count, first or last")
    numeric = [f.name for f in spec.fields if f.name != station and f.type in ("integer", "number")]
    if variables is not None:
        bad = [v for v in variables if v not in numeric]
        if bad:
            raise InvalidParameterValue(f"{bad[0]!r} is not a numeric attribute of {name!r} (those are {numeric})")
        numeric = list(variables)
    # only the columns the series needs are read (a station's year is read for a few of its columns)
    t = cube.query(name, output="arrow", **{"properties": [station, *numeric], **params})
    out_crs = resolve_crs(crs or spec.storage_crs)
    if t.column(station).null_count:  # an observation of no station is in no series
        t = t.filter(pc.is_valid(t.column(station)))
    t_us = _times_us(t.column("valid_from"))
    if freq is not None:
        try:
            t_us = pd.to_datetime(t_us, unit="us", utc=True).floor(freq).as_unit("us").asi8
        except ValueError as exc:
            raise InvalidParameterValue(f"freq {freq!r}: {exc}") from None
    # the stations: from the stations dataset, else each station's first observed position
    if stations is not None:
        keys = t.column(station).to_numpy(zero_copy_only=False) if len(t) else np.empty(0, object)
        st = cube.query(stations, output="arrow", crs=out_crs.id, as_of=params.get("as_of"))
        key = station_id or "fid"
        if key not in st.column_names:
            raise InvalidParameterValue(f"dataset {stations!r} has no attribute {key!r}")
        ids = st.column(key).to_pandas()
        if len(keys):
            ids = ids.astype(pd.Series(keys[:1]).dtype)
        pts = shapely.from_wkb(st.column("geometry").to_numpy(zero_copy_only=False))
        pos = pd.DataFrame({"x": shapely.get_x(pts), "y": shapely.get_y(pts)}, index=ids)
        pos = pos[~pos.index.duplicated()]
        unknown = sorted(set(pd.unique(keys)) - set(pos.index))
        if unknown:
            raise InvalidParameterValue(f"observations name stations {unknown[:5]} that {stations!r} does not hold")
        pos = pos.sort_index()
        s_idx = pd.Index(pos.index)
        i = s_idx.get_indexer(keys)
    else:
        i, uniq = _codes(t.column(station))
        s_idx = pd.Index(uniq)
        # a station's first observed position: only those points are decoded
        order = np.lexsort((t_us, i))
        firsts = order[np.r_[True, i[order][1:] != i[order][:-1]]] if len(order) else order
        pts = shapely.from_wkb(t.column("geometry").take(pa.array(firsts)).to_numpy(zero_copy_only=False))
        if out_crs != resolve_crs(spec.storage_crs) and len(pts):
            from geoplatform.crs import transform_geometries

            pts = transform_geometries(pts, spec.storage_crs, out_crs)
        pos = pd.DataFrame({"x": shapely.get_x(pts), "y": shapely.get_y(pts)}, index=s_idx)
    times, j = np.unique(t_us, return_inverse=True)
    if len(pos) * len(times) > MAX_CELLS:
        raise InvalidParameterValue(f"{len(pos):,} stations x {len(times):,} steps is more than {MAX_CELLS:,} "
                                    "cells: narrow datetime or give a coarser freq")
    values = {v: t.column(v).cast(pa.float64()).to_numpy(zero_copy_only=False) for v in numeric}
    cells = _cells(i, j, len(s_idx), len(times), values, agg)
    attrs: dict[str, Any] = {}
    for v in numeric:
        f = spec.field(v) if v in fields else None
        attrs[v] = {k: val for k, val in (("units", f and f.unit), ("long_name", f and f.description)) if val}
    return SeriesArrays(s_idx.to_numpy(), times.astype("datetime64[us]"), pos["x"].to_numpy(float),
                        pos["y"].to_numpy(float), cells, attrs, out_crs.id)


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's station as a number, and the stations in sorted order (Arrow's
    hashing and sort: no Python object per row)."""
    if not len(col):
        return np.empty(0, np.int64), np.empty(0, object)
    enc = pc.dictionary_encode(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
    order = pc.array_sort_indices(enc.dictionary).to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    uniq = enc.dictionary.take(pa.array(order)).to_numpy(zero_copy_only=False)
    return rank[enc.indices.to_numpy(zero_copy_only=False)], uniq


def _times_us(col: pa.ChunkedArray) -> np.ndarray:
    """Valid times as int64 microseconds since 1970 (UTC)."""
    if col.null_count:
        raise InvalidParameterValue("some observations have no valid time: a series needs one for each")
    if not pa.types.is_timestamp(col.type):
        raise InvalidParameterValue(f"valid times of type {col.type} are not timestamps")
    return pc.cast(col, pa.timestamp("us", col.type.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)


def _cells(i: np.ndarray, j: np.ndarray, n_st: int, n_t: int, values: dict[str, np.ndarray],
           agg: str) -> dict[str, np.ndarray]:
    """Each variable on the (station, time) cells, observations in a cell combined
    with ``agg`` (NaN ignored as pandas' groupby does; an empty cell is NaN)."""
    key = i.astype(np.int64) * n_t + j
    n = len(key)
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]) if n else np.empty(0, np.int64)
    cell = sk[starts]
    out: dict[str, np.ndarray] = {}
    for v, x in values.items():
        grid = np.full(n_st * n_t, np.nan)
        if n:
            xs = x[order]
            if len(starts) == n:  # one observation per cell (the usual case)
                got = xs if agg not in ("sum", "count") else (
                    np.where(np.isnan(xs), 0.0, xs) if agg == "sum" else (~np.isnan(xs)).astype(float))
            else:
                got = _reduce(xs, starts, agg)
            grid[cell] = got
        out[v] = grid.reshape(n_st, n_t)
    return out


def _reduce(xs: np.ndarray, starts: np.ndarray, agg: str) -> np.ndarray:
    """``agg`` of each run ``xs[starts[k]:starts[k+1]]``, NaN skipped (all NaN: NaN; sum 0; count 0)."""
    ok = ~np.isnan(xs)
    count = np.add.reduceat(ok.astype(np.int64), starts)
    if agg == "count":
        return count.astype(float)
    if agg in ("sum", "mean"):
        total = np.add.reduceat(np.where(ok, xs, 0.0), starts)
        if agg == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    if agg in ("min", "max"):
        fill = np.inf if agg == "min" else -np.inf
        red = (np.minimum if agg == "min" else np.maximum).reduceat(np.where(ok, xs, fill), starts)
        return np.where(count > 0, red, np.nan)
    # first / last non-NaN observation of each cell, in observation order
    idx = np.arange(len(xs))
    if agg == "first":
        pick = np.minimum.reduceat(np.where(ok, idx, len(xs)), starts)
    else:
        pick = np.maximum.reduceat(np.where(ok, idx, -1), starts)
    return np.where(count > 0, xs[np.clip(pick, 0, len(xs) - 1)], np.nan)
