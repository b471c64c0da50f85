"""Emergency incidents of 2025 and emergency shelters of the sample city.

How the incidents are generated
-------------------------------
* 5,000 incidents split over the types (traffic 35 %, medical 31 %,
  fire 14 %, gas_leak 10 %, flood 10 %).
* The day of each is drawn from a per-type seasonal weight: traffic is higher
  on weekdays, in the Spring Festival travel season (2025-01-14..02-22) and in
  foggy December/January; medical peaks in winter and in the July-August heat;
  fire peaks in the dry winter with a spike for the Spring Festival fireworks
  (01-28..02-12); gas leaks rise in the heating season (11-15..03-15); floods
  come with 14 rainstorm days drawn in June-September (90 %) plus scattered
  waterlogging April-October.
* The hour comes from a per-type diurnal curve (rush hours for traffic, meal
  times for gas leaks, afternoon-evening for fires and storms); minute and
  second are uniform. ``reported_at`` is naive local time (Asia/Shanghai).
* Places: traffic incidents on roads (weighted by class); floods at 25
  waterlogging hot spots (inner junctions; within 40 m) or anywhere on a road;
  fires, medical calls and gas leaks at buildings (weighted by floor area;
  gas leaks only in residential and commercial buildings), within 8 m of the
  building centre.
* Severity 1-5 from a per-type distribution; the handling time is lognormal
  around a per-type median, longer for more severe incidents. About 1.5 % of
  incidents (and half of those of the last two days) have no ``closed_at``.

How the shelters are generated
------------------------------
Up to 30 outdoor shelters at the largest parks (G1 parcels in force), with a
capacity of one person per 2 m2 of 2-5 % of the park, and indoor shelters in
public buildings of two floors or more (one person per 3 m2 of 40 % of the
floor area) up to 60 in all.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .base import NAME_STEMS
from .common import PROJECTED_CRS, district_codes_at

INCIDENT_TYPES = ("traffic", "medical", "fire", "gas_leak", "flood")
_SHARE = (0.35, 0.31, 0.14, 0.10, 0.10)
_SEVERITY = {
    "traffic": (0.30, 0.35, 0.22, 0.10, 0.03),
    "medical": (0.15, 0.35, 0.30, 0.15, 0.05),
    "fire": (0.20, 0.30, 0.28, 0.15, 0.07),
    "gas_leak": (0.35, 0.35, 0.20, 0.08, 0.02),
    "flood": (0.30, 0.35, 0.22, 0.10, 0.03),
}
_MEDIAN_MIN = {"traffic": 40.0, "medical": 55.0, "fire": 110.0, "gas_leak": 150.0, "flood": 360.0}
N_INCIDENTS = 5000
N_SHELTERS = 60
YEAR_START = dt.datetime(2025, 1, 1)
SHELTER_TYPES = ("indoor", "outdoor")
_INDOOR_KINDS = (
    ("Gymnasium", "体育馆"),
    ("Middle School", "中学"),
    ("Primary School", "小学"),
    ("Community Centre", "社区中心"),
    ("Cultural Centre", "文化馆"),
)


def _bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((x - centre) / width) ** 2))


def _in(doy: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> np.ndarray:
    a = (dt.date(2025, *start) - dt.date(2025, 1, 1)).days
    b = (dt.date(2025, *end) - dt.date(2025, 1, 1)).days
    return (doy >= a) & (doy <= b) if a <= b else (doy >= a) | (doy <= b)


def _day_weights(kind: str, rng: np.random.Generator) -> np.ndarray:
    doy = np.arange(365)
    weekday = np.array([(YEAR_START + dt.timedelta(days=int(d))).weekday() for d in doy])
    month = np.array([(YEAR_START + dt.timedelta(days=int(d))).month for d in doy])
    if kind == "traffic":
        w = np.where(weekday < 5, 1.1, 0.85) + 0.15 * np.isin(month, (12, 1)) + 0.15 * _in(doy, (1, 14), (2, 22))
    elif kind == "medical":
        w = 1.0 + 0.2 * np.cos(2 * np.pi * (doy - 15) / 365) + 0.15 * np.isin(month, (7, 8))
    elif kind == "fire":
        w = 1.0 + 0.5 * np.cos(2 * np.pi * (doy - 30) / 365) + 2.0 * _in(doy, (1, 28), (2, 12))
    elif kind == "gas_leak":
        w = 1.0 + 0.7 * _in(doy, (11, 15), (3, 15))
    else:
        summer = np.flatnonzero(_in(doy, (6, 1), (9, 30)))
        storm_w = 0.3 + _bump(summer.astype(float), 200.0, 25.0)
        storms = rng.choice(summer, size=14, replace=False, p=storm_w / storm_w.sum())
        w = np.where(_in(doy, (4, 1), (10, 31)), 0.1 / 214, 0.0)
        w[storms] += 0.9 * rng.dirichlet(np.full(14, 2.0))
    return np.asarray(w / w.sum())


def _hour_weights(kind: str) -> np.ndarray:
    h = np.arange(24, dtype=float)
    curves = {
        "traffic": 0.15 + 0.5 * (h >= 6) * (h <= 22) + _bump(h, 8, 1.5) + 1.2 * _bump(h, 18, 2.0),
        "medical": 0.4 + 0.6 * (h >= 7) * (h <= 21) + 0.5 * _bump(h, 9, 2.0),
        "fire": 0.5 + 1.0 * _bump(h, 17, 3.5),
        "gas_leak": 0.2 + _bump(h, 11.5, 1.2) + 1.2 * _bump(h, 18, 1.2),
        "flood": 0.2 + 1.5 * _bump(h, 18, 3.5),
    }
    w = curves[kind]
    return np.asarray(w / w.sum())


def _points_on_lines(lines: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    frac = rng.uniform(0.05, 0.95, n)
    return np.asarray(shapely.line_interpolate_point(lines, frac, normalized=True))


def build_incidents(
    roads: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    node_x: np.ndarray,
    node_y: np.ndarray,
    districts: gpd.GeoDataFrame,
    rng: np.random.Generator,
    n: int = N_INCIDENTS,
) -> gpd.GeoDataFrame:
    """Incidents in EPSG:4545 with naive local time strings (see module docstring)."""
    counts = rng.multinomial(n, _SHARE)
    road_geoms = roads.geometry.to_numpy()
    road_w = roads["road_class"].map({"expressway": 4.0, "arterial": 3.0, "collector": 1.5, "local": 1.0})
    road_w = (road_w * shapely.length(road_geoms)).to_numpy()
    b_geoms = buildings.geometry.to_numpy()
    b_cent = shapely.centroid(b_geoms)
    b_w = shapely.area(b_geoms) * buildings["floors"].to_numpy()
    housing = buildings["use"].isin(("residential", "commercial")).to_numpy()
    inner = np.zeros(node_x.shape, dtype=bool)
    inner[1:-1, 1:-1] = True
    hot = rng.choice(np.flatnonzero(inner.ravel()), size=25, replace=False)

    parts = []
    for kind, k in zip(INCIDENT_TYPES, counts, strict=True):
        day = rng.choice(365, size=k, p=_day_weights(kind, rng))
        hour = rng.choice(24, size=k, p=_hour_weights(kind))
        secs = day * 86400 + hour * 3600 + rng.integers(0, 3600, k)
        if kind in ("traffic", "flood"):
            on_road = _points_on_lines(road_geoms[rng.choice(len(road_geoms), size=k, p=road_w / road_w.sum())], k, rng)
            px, py = shapely.get_x(on_road), shapely.get_y(on_road)
            if kind == "flood":
                at_hot = rng.random(k) < 0.7
                h = rng.choice(hot, size=k)
                ang, rad = rng.uniform(0, 2 * np.pi, k), 40.0 * np.sqrt(rng.random(k))
                px = np.where(at_hot, node_x.ravel()[h] + rad * np.cos(ang), px)
                py = np.where(at_hot, node_y.ravel()[h] + rad * np.sin(ang), py)
        else:
            w = b_w * housing if kind == "gas_leak" else b_w
            b = rng.choice(len(b_geoms), size=k, p=w / w.sum())
            ang, rad = rng.uniform(0, 2 * np.pi, k), 8.0 * np.sqrt(rng.random(k))
            px = shapely.get_x(b_cent[b]) + rad * np.cos(ang)
            py = shapely.get_y(b_cent[b]) + rad * np.sin(ang)
        severity = rng.choice(np.arange(1, 6), size=k, p=_SEVERITY[kind])
        minutes = _MEDIAN_MIN[kind] * np.exp(rng.normal(0.0, 0.6, k)) * (1.0 + 0.25 * (severity - 1))
        parts.append(
            pd.DataFrame(
                {
                    "type": kind,
                    "severity": severity,
                    "secs": secs,
                    "dur": np.round(minutes * 60).astype(int),
                    "x": px,
                    "y": py,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True).sort_values(["secs", "type"], kind="stable").reset_index(drop=True)
    late = frame["secs"] > 363 * 86400
    still_open = (rng.random(len(frame)) < 0.015) | (late & (rng.random(len(frame)) < 0.5))
    reported = pd.Timestamp(YEAR_START) + pd.to_timedelta(frame["secs"], unit="s")
    closed = reported + pd.to_timedelta(frame["dur"], unit="s")
    fmt = "%Y-%m-%d %H:%M:%S"
    closed_str = closed.dt.strftime(fmt).to_numpy(dtype=object)
    closed_str[still_open.to_numpy()] = None
    pts = shapely.points(frame["x"].to_numpy(), frame["y"].to_numpy())
    return gpd.GeoDataFrame(
        {
            "incident_id": [f"INC-2025-{k:06d}" for k in range(1, len(frame) + 1)],
            "type": frame["type"].to_numpy(),
            "severity": frame["severity"].to_numpy().astype(int),
            "reported_at": reported.dt.strftime(fmt).to_numpy(dtype=object),
            "closed_at": closed_str,
            "district_code": district_codes_at(pts, districts),
            "geometry": pts,
        },
        geometry="geometry",
        crs=PROJECTED_CRS,
    )


def build_shelters(
    parcels: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    rng: np.random.Generator,
    n: int = N_SHELTERS,
) -> gpd.GeoDataFrame:
    """Emergency shelters in EPSG:4545 (see module docstring)."""
    parks = parcels[parcels["land_use"] == "G1"]
    parks = parks.iloc[np.argsort(-parks.area.to_numpy(), kind="stable")[: min(30, len(parks))]]
    park_pts = shapely.point_on_surface(parks.geometry.to_numpy())
    park_cap = np.clip(np.round(parks.area.to_numpy() * rng.uniform(0.02, 0.05, len(parks)) / 2.0, -2), 1000, 30000)
    stems = [NAME_STEMS[k] for k in rng.choice(len(NAME_STEMS), size=len(parks), replace=False)]

    public = buildings[(buildings["use"] == "public") & (buildings["floors"] >= 2)]
    m = min(n - len(parks), len(public))
    w = public.area.to_numpy()
    halls = public.iloc[np.sort(rng.choice(len(public), size=m, replace=False, p=w / w.sum()))]
    hall_pts = shapely.centroid(halls.geometry.to_numpy())
    hall_cap = np.clip(np.round(halls.area.to_numpy() * halls["floors"].to_numpy() * 0.4 / 3.0, -1), 200, 5000)

    pts = np.concatenate([park_pts, hall_pts])
    codes = district_codes_at(pts, districts)
    dist_name = {
        code: (en, zh)
        for code, en, zh in zip(districts["district_code"], districts["name"], districts["name_zh"], strict=True)
    }
    names, names_zh = [], []
    for stem, zh in stems:
        names.append(f"{stem} Park Emergency Shelter")
        names_zh.append(f"{zh}公园应急避难场所")
    seen: dict[tuple[str, str], int] = {}
    for code in codes[len(parks):]:
        kind, kind_zh = _INDOOR_KINDS[int(rng.integers(len(_INDOOR_KINDS)))]
        seen[(code, kind)] = seen.get((code, kind), 0) + 1
        en, zh = dist_name[code]
        names.append(f"{en} No. {seen[(code, kind)]} {kind} Shelter")
        names_zh.append(f"{zh}第{seen[(code, kind)]}{kind_zh}应急避难场所")
    return gpd.GeoDataFrame(
        {
            "shelter_id": [f"SH-{k:03d}" for k in range(1, len(pts) + 1)],
            "name": names,
            "name_zh": names_zh,
            "type": ["outdoor"] * len(parks) + ["indoor"] * len(halls),
            "capacity": np.concatenate([park_cap, hall_cap]).astype(int),
            "district_code": codes,
            "geometry": pts,
        },
        geometry="geometry",
        crs=PROJECTED_CRS,
    )
