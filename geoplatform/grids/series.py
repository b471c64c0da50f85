"""Sensor series: a vector dataset of observations read as a (station, time) cube.

The observations are point features with a station key and a valid time;
each numeric attribute becomes a variable over (station, time), NaN where a
station has no observation. The stations' positions come from the
observations themselves (a station's first observed position) or from a
dataset of stations keyed by an id column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

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
    import shapely
    import xarray as xr

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
    df = pd.DataFrame({"station": t.column(station).to_pandas(), "time": t.column("valid_from").to_pandas()})
    for v in numeric:
        df[v] = t.column(v).cast(pa.float64()).to_numpy(zero_copy_only=False)
    # the stations: from the stations dataset, else each station's first observed position
    if stations is not None:
        st = cube.query(stations, output="arrow", crs=out_crs.id, as_of=params.get("as_of"))
        key = station_id or "fid"
        if key not in st.column_names:
            raise InvalidParameterValue(f"dataset {stations!r} has no attribute {key!r}")
        ids = st.column(key).to_pandas().astype(df["station"].dtype if len(df) else object)
        pts = shapely.from_wkb(st.column("geometry").to_numpy(zero_copy_only=False))
        pos = pd.DataFrame({"x": shapely.get_x(pts), "y": shapely.get_y(pts)}, index=ids)
        pos = pos[~pos.index.duplicated()]
        unknown = sorted(set(df["station"]) - set(pos.index))
        if unknown:
            raise InvalidParameterValue(f"observations name stations {unknown[:5]} that {stations!r} does not hold")
        pos = pos.sort_index()
    else:
        # a station's first observed position: only those points are decoded
        order = df.sort_values("time", kind="stable")
        firsts = order.index[~order["station"].duplicated()].to_numpy()
        pts = shapely.from_wkb(t.column("geometry").take(pa.array(firsts)).to_numpy(zero_copy_only=False))
        if out_crs != resolve_crs(spec.storage_crs) and len(pts):
            from geoplatform.crs import transform_geometries

            pts = transform_geometries(pts, spec.storage_crs, out_crs)
        pos = pd.DataFrame({"x": shapely.get_x(pts), "y": shapely.get_y(pts)},
                           index=df["station"].to_numpy()[firsts]).sort_index()
    if freq is not None:
        try:
            df["time"] = df["time"].dt.floor(freq)
        except ValueError as exc:
            raise InvalidParameterValue(f"freq {freq!r}: {exc}") from None
    # (pandas' own unique and sort: numpy would make Python objects of tz-aware times first)
    times = pd.DatetimeIndex(df["time"].unique()).sort_values()
    if len(pos) * len(times) > MAX_CELLS:
        raise InvalidParameterValue(f"{len(pos):,} stations x {len(times):,} steps is more than {MAX_CELLS:,} "
                                    "cells: narrow datetime or give a coarser freq")
    grouped = df.groupby(["station", "time"], sort=False)[numeric]
    cells = getattr(grouped, agg)() if numeric else None
    s_idx = pd.Index(pos.index)
    t_idx = times
    data: dict[str, Any] = {}
    if cells is not None and len(cells):
        i = s_idx.get_indexer(cells.index.get_level_values(0))
        j = t_idx.get_indexer(cells.index.get_level_values(1))
    for v in numeric:
        arr = np.full((len(s_idx), len(t_idx)), np.nan)
        if cells is not None and len(cells):
            arr[i, j] = cells[v].to_numpy(float)
        f = spec.field(v) if v in fields else None
        attrs = {k: val for k, val in (("units", f and f.unit), ("long_name", f and f.description)) if val}
        data[v] = (("station", "time"), arr, attrs)
    time_values = t_idx.tz_convert(None).values if t_idx.tz is not None else t_idx.values
    coords = {"station": ("station", s_idx.to_numpy()), "time": ("time", time_values),
              "x": ("station", pos["x"].to_numpy(float)), "y": ("station", pos["y"].to_numpy(float))}
    attrs = {"crs": out_crs.id, "geoplatform:dataset": name, "featureType": "timeSeries", "Conventions": "CF-1.8"}
    if freq:
        attrs.update({"geoplatform:freq": freq, "geoplatform:agg": agg})
    return xr.Dataset(data, coords=coords, attrs=attrs)
