"""Regulatory plan (控制性详细规划) parcels of the sample city.

How it is generated
-------------------
* Each street block is cut into one to three parcels by recursive cuts across
  the long axis of its oriented envelope, at 35-65 % of its length; central
  blocks are cut more often. Parcels therefore tile the blocks, and the blocks
  tile the districts, with no gaps or overlaps.
* Land use (GB 50137-2011 codes) is drawn from a zone mix: the old town is
  commercial and administrative, the middle ring mostly residential, the
  outskirts mixed with industry and logistics, the Gaoxin (high-tech) district
  research and light industry.
* Control indicators (FAR range, coverage, height, green ratio, parking) are
  drawn from ranges typical of the use and zone.
* Valid time: the plan ``LS-KG-2018`` took effect on 2018-06-30. An urban
  renewal amendment ``LS-KG-2018-A1`` (2023-04-15) replaced the industrial
  parcels of about a dozen middle-ring blocks by new residential/commercial
  parcels: the superseded parcels carry ``valid_to = 2023-04-15``. At every
  instant after 2018-06-30 the parcels in force tile the city.

Field names are at most 10 characters because the file is a Shapefile (dBASE
limit): ``dens_max`` (maximum building coverage), ``height_max`` (metres),
``green_min`` (minimum green ratio), ``park_ratio`` (parking spaces per 100 m2
of floor area), ``plan_ver`` (plan version), ``dist_code`` (district code).
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Polygon

from .base import StreetGrid
from .common import CENTRE_X, CENTRE_Y, PROJECTED_CRS

LAND_USES = ("R2", "R3", "B1", "B2", "A1", "A2", "A3", "A5", "M1", "M2", "W1", "G1", "G2", "S1", "S4", "U1")

PLAN_2018 = ("LS-KG-2018", dt.date(2018, 6, 30))
PLAN_2023 = ("LS-KG-2018-A1", dt.date(2023, 4, 15))

_MIX: dict[str, dict[str, float]] = {
    "core": {"B1": 25, "B2": 12, "R2": 28, "A1": 6, "A2": 5, "A5": 5, "A3": 4, "G1": 10, "S1": 5},
    "middle": {"R2": 45, "R3": 3, "B1": 12, "B2": 5, "A3": 8, "A5": 4, "G1": 12, "U1": 3, "S4": 3, "M1": 5},
    "outer": {"R2": 30, "M1": 20, "M2": 8, "W1": 10, "G1": 10, "G2": 8, "U1": 5, "A3": 4, "B1": 5},
    "hitech": {"M1": 30, "B2": 20, "A3": 10, "R2": 20, "G1": 10, "W1": 5, "U1": 5},
    "renewal": {"R2": 55, "B1": 20, "G1": 15, "A3": 10},
    "industrial": {"M1": 70, "M2": 20, "W1": 10},
}

# (far_max range, coverage range, height range, green range, parking range)
_INDICATORS: dict[str, tuple[tuple[float, float], ...]] = {
    "R": ((2.0, 3.5), (0.20, 0.30), (54, 100), (0.30, 0.35), (1.0, 1.2)),
    "R3": ((1.2, 1.8), (0.25, 0.30), (24, 36), (0.30, 0.35), (0.8, 1.0)),
    "B": ((3.0, 6.0), (0.40, 0.55), (60, 150), (0.20, 0.25), (0.8, 1.2)),
    "A": ((1.2, 2.5), (0.30, 0.40), (24, 50), (0.30, 0.35), (0.5, 1.0)),
    "M": ((1.0, 2.0), (0.35, 0.55), (24, 36), (0.15, 0.20), (0.2, 0.3)),
    "W": ((0.8, 1.5), (0.40, 0.55), (18, 24), (0.15, 0.20), (0.2, 0.2)),
    "G1": ((0.05, 0.1), (0.02, 0.05), (12, 12), (0.65, 0.75), (0.0, 0.05)),
    "G2": ((0.0, 0.0), (0.0, 0.0), (0, 0), (0.80, 0.90), (0.0, 0.0)),
    "S1": ((0.0, 0.0), (0.0, 0.0), (0, 0), (0.10, 0.15), (0.0, 0.0)),
    "S": ((0.5, 1.5), (0.30, 0.40), (24, 24), (0.20, 0.25), (0.5, 0.5)),
    "U": ((0.5, 1.2), (0.30, 0.40), (24, 24), (0.20, 0.30), (0.2, 0.2)),
}


def _indicator_key(use: str) -> str:
    if use in _INDICATORS:
        return use
    return use[0]


def split_polygon(poly: Polygon, t: float) -> list[Polygon]:
    """Cut ``poly`` across the long axis of its oriented envelope at fraction ``t``."""
    env = np.asarray(shapely.oriented_envelope(poly).exterior.coords)[:4]
    e1, e2 = env[1] - env[0], env[2] - env[1]
    u = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
    u = u / np.hypot(*u)
    v = np.array([-u[1], u[0]])
    pts = np.asarray(poly.exterior.coords)
    proj = pts @ u
    a, b = proj.min(), proj.max()
    s = a + t * (b - a)
    big = 1e5
    centre = np.asarray(poly.centroid.coords[0])
    origin = centre + u * (s - centre @ u)
    half_lo = Polygon([origin - v * big, origin - v * big - u * big, origin + v * big - u * big, origin + v * big])
    half_hi = Polygon([origin - v * big, origin - v * big + u * big, origin + v * big + u * big, origin + v * big])
    parts = [poly.intersection(half_lo), poly.intersection(half_hi)]
    if not all(p.geom_type == "Polygon" and p.area > 1.0 for p in parts):
        return [poly]
    return [shapely.normalize(p) for p in parts]


def subdivide(poly: Polygon, pieces: int, rng: np.random.Generator) -> list[Polygon]:
    """Split ``poly`` into ``pieces`` parcels, always cutting the largest part."""
    parts = [poly]
    while len(parts) < pieces:
        parts.sort(key=lambda p: p.area, reverse=True)
        cut = split_polygon(parts[0], float(rng.uniform(0.35, 0.65)))
        if len(cut) == 1:
            break
        parts = cut + parts[1:]
    return parts


def _draw_use(zone: str, rng: np.random.Generator) -> str:
    mix = _MIX[zone]
    codes = list(mix)
    weights = np.array([mix[c] for c in codes], dtype=float)
    return str(codes[int(rng.choice(len(codes), p=weights / weights.sum()))])


def _indicators(use: str, r_km: float, rng: np.random.Generator) -> dict[str, float]:
    far, cov, hgt, green, park = _INDICATORS[_indicator_key(use)]
    far_max = round(float(rng.uniform(*far)) + (1.5 if use.startswith("B") and r_km < 2.0 else 0.0), 1)
    if use[0] in "RBM":
        far_min = round(far_max * float(rng.uniform(0.3, 0.6)), 1)
    else:
        far_min = 0.0
    height = float(rng.uniform(*hgt))
    if use.startswith("B") and r_km < 2.0:
        height += 50.0
    return {
        "far_max": far_max,
        "far_min": far_min,
        "dens_max": round(float(rng.uniform(*cov)), 2),
        "height_max": float(round(height / 6.0) * 6.0) if height else 0.0,
        "green_min": round(float(rng.uniform(*green)), 2),
        "park_ratio": round(float(rng.uniform(*park)), 2),
    }


def build_parcels(
    grid: StreetGrid, block_owner: np.ndarray, district_codes: list[str], rng: np.random.Generator
) -> gpd.GeoDataFrame:
    """Plan parcels in EPSG:4545, current and superseded (see module docstring).

    ``valid_from``/``valid_to`` hold :class:`datetime.date` objects (or None),
    which the Arrow writer turns into Shapefile Date fields.
    """
    blocks = grid.blocks
    cent = shapely.centroid(blocks.geometry.to_numpy())
    r_km = np.hypot(shapely.get_x(cent) - CENTRE_X, shapely.get_y(cent) - CENTRE_Y) / 1000.0
    gaoxin = district_codes.index("990105")
    middle = np.flatnonzero((r_km >= 3.5) & (r_km < 7.0) & (block_owner != gaoxin))
    renewal = set(rng.choice(middle, size=min(12, len(middle)), replace=False).tolist())

    rows: list[dict[str, object]] = []

    def emit(parts: list[Polygon], zone: str, b: int, plan: tuple[str, dt.date], valid_to: dt.date | None) -> None:
        for part in parts:
            use = _draw_use(zone, rng)
            rows.append(
                {
                    "land_use": use,
                    **_indicators(use, float(r_km[b]), rng),
                    "plan_ver": plan[0],
                    "dist_code": district_codes[int(block_owner[b])],
                    "valid_from": plan[1],
                    "valid_to": valid_to,
                    "geometry": part,
                }
            )

    for b, poly in enumerate(blocks.geometry.to_numpy()):
        r = float(r_km[b])
        if r < 3.5:
            probs = (0.15, 0.45, 0.40)
        elif r < 7.0:
            probs = (0.45, 0.40, 0.15)
        else:
            probs = (0.55, 0.35, 0.10)
        pieces = int(rng.choice((1, 2, 3), p=probs))
        if b in renewal:
            emit(subdivide(poly, pieces, rng), "industrial", b, PLAN_2018, PLAN_2023[1])
            emit(subdivide(poly, int(rng.choice((2, 3))), rng), "renewal", b, PLAN_2023, None)
            continue
        if block_owner[b] == gaoxin:
            zone = "hitech"
        else:
            zone = "core" if r < 3.5 else ("middle" if r < 7.0 else "outer")
        emit(subdivide(poly, pieces, rng), zone, b, PLAN_2018, None)

    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=PROJECTED_CRS)
    frame.insert(0, "parcel_id", [f"PCL-{n:05d}" for n in range(1, len(frame) + 1)])
    return frame


def current_parcels(parcels: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The parcels in force today (no ``valid_to``)."""
    return parcels[parcels["valid_to"].isna()].reset_index(drop=True)
