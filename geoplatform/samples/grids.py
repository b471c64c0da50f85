"""The sample city's gridded variable: daily mean PM2.5 on 250 m cells of the city
square (EPSG:4545), spread from the air stations' hourly readings by inverse-distance
weighting (power 2), as a CF NetCDF the grid ingest reads.

Like everything in the sample city it is generated, not measured: it is the
stations' own (generated) readings, interpolated.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from .common import CENTRE_X, CENTRE_Y, HALF_SIZE_M, PROJECTED_CRS

CELL_M = 250.0


def build_pm25_grid(air: gpd.GeoDataFrame, path: Path) -> Path:
    """Write ``path``: pm25 (ug m-3) over (time, y, x), one step per UTC day."""
    n = int(2 * HALF_SIZE_M / CELL_M)
    x = CENTRE_X - HALF_SIZE_M + (np.arange(n) + 0.5) * CELL_M
    y = CENTRE_Y + HALF_SIZE_M - (np.arange(n) + 0.5) * CELL_M  # north-up
    pts = air.to_crs(PROJECTED_CRS)
    frame = pd.DataFrame({"sensor_id": pts["sensor_id"].to_numpy(), "x": pts.geometry.x.to_numpy(),
                          "y": pts.geometry.y.to_numpy(), "pm25": pts["pm25"].to_numpy(float),
                          "day": pd.to_datetime(pts["observed_at"], utc=True).dt.floor("1D").dt.tz_localize(None)})
    daily = frame.groupby(["day", "sensor_id"], sort=True).agg(pm25=("pm25", "mean"), x=("x", "first"),
                                                                 y=("y", "first")).reset_index()
    days = np.sort(daily["day"].unique())
    xx, yy = np.meshgrid(x, y)
    out = np.full((len(days), n, n), np.nan, np.float32)
    for k, d in enumerate(days):
        s = daily[(daily["day"] == d) & daily["pm25"].notna()]
        if s.empty:
            continue
        d2 = (xx[..., None] - s["x"].to_numpy()) ** 2 + (yy[..., None] - s["y"].to_numpy()) ** 2
        w = 1.0 / np.maximum(d2, 1.0)
        out[k] = (w * s["pm25"].to_numpy()).sum(axis=-1) / w.sum(axis=-1)
    import xarray as xr

    ds = xr.Dataset(
        {"pm25": (("time", "y", "x"), out, {"units": "ug m-3", "long_name": "PM2.5, daily mean",
                                            "standard_name": "mass_concentration_of_pm2p5_ambient_aerosol_particles_in_air",
                                            "grid_mapping": "crs"})},
        coords={"time": days, "y": y, "x": x},
        attrs={"Conventions": "CF-1.8", "title": "Lanshan daily PM2.5 (generated)",
               "source": "Inverse-distance weighting of the sample city's generated air station readings"})
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": pyproj.CRS(PROJECTED_CRS).to_wkt()})
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="netcdf4", encoding={"pm25": {"zlib": True, "complevel": 4}})
    return path
