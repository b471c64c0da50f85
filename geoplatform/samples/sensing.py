"""Sensors of the sample city and the hourly air-quality observations of some.

How the sensors are generated
-----------------------------
* 80 ``air`` stations scattered uniformly over the city (300 m from its
  edge), installed 2016-01..2024-06;
* 120 ``traffic`` detectors 15-30 m from distinct street junctions,
  installed 2017-01..2024-12;
* 100 ``water`` (pressure / quality) monitors on distinct water-main nodes,
  installed 2019-01..2024-12.
About 6 % of the sensors (never one of the air-quality feed) were removed
later (``removed_at``, at least a year after installation). ``district_code``
is the district the sensor stands in.

How the air quality is generated
--------------------------------
20 air stations in service all of 2025-Q1 report hourly from
2025-01-01T00:00Z to 2025-03-31T23:00Z (2,160 hours, 43,200 rows), in
ug/m3. PM2.5 is a city-wide log-AR(1) pollution episode signal (hourly
persistence 0.97) on a seasonal mean falling from about 85 in January to 50 in
March, times a diurnal cycle (night and morning high, afternoon low, on the
local hour UTC+8), a per-station factor (central stations dirtier) and
lognormal noise. PM10 is 1.4-2.1 times PM2.5; NO2 peaks in the 08:00 and
19:00 rush hours and rises in episodes; O3 peaks mid-afternoon, grows towards
spring and is titrated by NO2. About 0.5 % of hours of a station are lost
(all four values missing).
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .common import (
    CENTRE_X,
    CENTRE_Y,
    GEOGRAPHIC_CRS,
    HALF_SIZE_M,
    PROJECTED_CRS,
    district_codes_at,
    local_to_projected,
    points_to_lonlat,
)

SENSOR_KINDS = ("air", "water", "traffic")
N_SENSORS = {"air": 80, "traffic": 120, "water": 100}
N_AIR_FEED = 20
AQ_START = pd.Timestamp("2025-01-01T00:00:00Z")
AQ_HOURS = 90 * 24

_INSTALL_RANGE = {
    "air": (dt.date(2016, 1, 1), dt.date(2024, 6, 30)),
    "traffic": (dt.date(2017, 1, 1), dt.date(2024, 12, 31)),
    "water": (dt.date(2019, 1, 1), dt.date(2024, 12, 31)),
}
_PREFIX = {"air": "AIR", "traffic": "TRF", "water": "WAT"}


def _dates(lo: dt.date, hi: dt.date, n: int, rng: np.random.Generator) -> list[dt.date]:
    days = rng.integers(0, (hi - lo).days + 1, n)
    return [lo + dt.timedelta(days=int(d)) for d in days]


def build_sensors(
    node_x: np.ndarray,
    node_y: np.ndarray,
    pipes: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    rng: np.random.Generator,
) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Sensors in EPSG:4545 and the ids of the air-quality feed stations."""
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    kinds: list[str] = []
    installed: list[dt.date] = []

    n = N_SENSORS["air"]
    ax, ay = local_to_projected(*rng.uniform(-HALF_SIZE_M + 300.0, HALF_SIZE_M - 300.0, (2, n)))
    xs.append(ax)
    ys.append(ay)

    n = N_SENSORS["traffic"]
    inside_x = np.abs(node_x.ravel() - CENTRE_X) < HALF_SIZE_M - 1.0
    inside_y = np.abs(node_y.ravel() - CENTRE_Y) < HALF_SIZE_M - 1.0
    interior = np.flatnonzero(inside_x & inside_y)
    pick = rng.choice(interior, size=n, replace=False)
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    dist = rng.uniform(15.0, 30.0, n)
    xs.append(node_x.ravel()[pick] + dist * np.cos(theta))
    ys.append(node_y.ravel()[pick] + dist * np.sin(theta))

    n = N_SENSORS["water"]
    starts = shapely.get_point(pipes.geometry.to_numpy(), 0)
    first = pd.Series(np.arange(len(pipes))).groupby(pipes["start_node"].to_numpy()).first().sort_index()
    pick = rng.choice(first.to_numpy(), size=n, replace=False)
    xs.append(shapely.get_x(starts[pick]))
    ys.append(shapely.get_y(starts[pick]))

    for kind in ("air", "traffic", "water"):
        kinds += [kind] * N_SENSORS[kind]
        installed += _dates(*_INSTALL_RANGE[kind], N_SENSORS[kind], rng)

    x = np.concatenate(xs)
    y = np.concatenate(ys)
    ids = []
    counters = dict.fromkeys(SENSOR_KINDS, 0)
    for kind in kinds:
        counters[kind] += 1
        ids.append(f"{_PREFIX[kind]}-{counters[kind]:04d}")

    feed = sorted(rng.choice(N_SENSORS["air"], size=N_AIR_FEED, replace=False).tolist())
    removed: list[dt.date | None] = []
    for k, inst in enumerate(installed):
        if k in feed or rng.random() >= 0.06:
            removed.append(None)
            continue
        lo = inst + dt.timedelta(days=365)
        hi = dt.date(2025, 10, 31)
        removed.append(_dates(lo, hi, 1, rng)[0] if lo < hi else None)

    pts = shapely.points(x, y)
    code = district_codes_at(pts, districts)
    frame = gpd.GeoDataFrame(
        {
            "sensor_id": ids,
            "kind": kinds,
            "installed_at": [d.isoformat() for d in installed],
            "removed_at": [d.isoformat() if d else None for d in removed],
            "district_code": code,
            "geometry": pts,
        },
        geometry="geometry",
        crs=PROJECTED_CRS,
    )
    return frame, [ids[k] for k in feed]


def build_air_quality(sensors: gpd.GeoDataFrame, feed: list[str], rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Hourly observations (EPSG:4490 points, UTC ``observed_at``); see module docstring."""
    st = sensors.set_index("sensor_id").loc[feed]
    n_s, n_t = len(feed), AQ_HOURS
    times = pd.date_range(AQ_START, periods=n_t, freq="h")
    hour = (np.arange(n_t) + 8) % 24  # local hour
    day = np.arange(n_t) / 24.0

    z = np.empty(n_t)
    z[0] = 0.0
    eps = rng.normal(0.0, 0.085, n_t)
    for t in range(1, n_t):
        z[t] = 0.97 * z[t - 1] + eps[t]
    season = np.log(85.0) + (np.log(50.0) - np.log(85.0)) * day / 90.0
    diurnal = 1.0 + 0.18 * np.cos(2 * np.pi * (hour - 23) / 24) + 0.08 * np.cos(2 * np.pi * (hour - 8) / 12)
    r_km = np.hypot(st.geometry.x.to_numpy() - CENTRE_X, st.geometry.y.to_numpy() - CENTRE_Y) / 1000.0
    site = np.exp(rng.normal(0.0, 0.08, n_s)) * (1.15 - 0.02 * r_km)

    pm25 = np.exp(season + z)[:, None] * diurnal[:, None] * site[None, :] * np.exp(rng.normal(0, 0.15, (n_t, n_s)))
    pm10 = pm25 * rng.uniform(1.4, 2.1, (n_t, n_s))
    rush = 1.0 + 0.35 * np.exp(-(((hour - 8) / 2.0) ** 2)) + 0.45 * np.exp(-(((hour - 19) / 2.5) ** 2))
    rush = rush - 0.25 * np.exp(-(((hour - 14) / 3.0) ** 2))
    no2 = 42.0 * rush[:, None] * np.exp(0.5 * z)[:, None] * site[None, :] * np.exp(rng.normal(0, 0.18, (n_t, n_s)))
    sun = np.clip(np.sin(np.pi * (hour - 7) / 14.0), 0.0, None) * ((hour >= 7) & (hour <= 21))
    o3_base = 28.0 + 32.0 * day / 90.0
    o3 = (o3_base * (0.35 + 1.3 * sun))[:, None] - 0.25 * (no2 - 40.0)
    o3 = np.clip(o3 * np.exp(rng.normal(0, 0.15, (n_t, n_s))), 2.0, None)

    values = {k: np.round(v, 1) for k, v in {"pm25": pm25, "pm10": pm10, "no2": no2, "o3": o3}.items()}
    lost = rng.random((n_t, n_s)) < 0.005
    for v in values.values():
        v[lost] = np.nan

    lon, lat = points_to_lonlat(st.geometry.x.to_numpy(), st.geometry.y.to_numpy())
    geoms = shapely.points(np.tile(lon, n_t), np.tile(lat, n_t))
    return gpd.GeoDataFrame(
        {
            "sensor_id": np.tile(np.asarray(feed, dtype=object), n_t),
            "observed_at": pd.DatetimeIndex(np.repeat(times.tz_localize(None).to_numpy(), n_s)).tz_localize("UTC"),
            **{k: v.ravel() for k, v in values.items()},
            "geometry": geoms,
        },
        geometry="geometry",
        crs=GEOGRAPHIC_CRS,
    )
