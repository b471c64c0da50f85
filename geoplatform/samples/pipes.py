"""Water supply mains and valves of the sample city (CJJ 61 category ``JS``).

How the mains are generated
---------------------------
* The network follows the roads: every road carries a main, except about 5 %
  of local streets. Each road is cut into pieces of about 210-430 m; the cut
  points and the street junctions are the network's nodes, with stable ids
  ``JSN-00001`` ..., so adjacent pieces share the exact coordinates and the id
  of their common node (a real topology). The whole network is shifted 4 m
  east and 3 m north of the road centre lines (mains sit under one side of
  the carriageway), clamped to the city square; being a function of the
  coordinates alone, the shift keeps the topology.
* One diameter per road from the class (trunk mains DN 600-1200 under the ring
  expressway down to DN 100-200 in local streets); the build year is older
  towards the centre, with about 20 % of pieces renewed since 2010; the
  material follows era and diameter (CI/ST before 1990, DI/PVC to 2005,
  PE/DI/ST after). Cover depth grows with diameter and is missing for about
  6 % of pieces (never surveyed); design pressure 0.25-0.6 MPa, trunk mains
  0.6-1.0 MPa. Mains in the Gaoxin district belong to its own utility.

How the valves are generated
----------------------------
400 distinct mains get a valve 3-8 m from their start node. Positions are
converted to WGS84 lon/lat and then to GCJ-02 (as a web-map export would
give them), rounded to 6 decimals. About 7 % of valves are closed.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from shapely.geometry import LineString

from .common import CENTRE_X, CENTRE_Y, CITY_BBOX_PROJECTED, PROJECTED_CRS, points_to_lonlat, wgs84_to_gcj02

MATERIALS = ("PE", "DI", "PVC", "CI", "ST")
BURIALS = ("direct", "trench", "jacking")
OFFSET_M = (4.0, 3.0)
N_VALVES = 400

_DIAMETERS = {
    "expressway": (600, 800, 1000, 1200),
    "arterial": (300, 400, 500, 600),
    "collector": (200, 300),
    "local": (100, 150, 200),
}
OWNERS = ("Lanshan Water Supply Co., Ltd.", "Lanshan Gaoxin Water Co., Ltd.")


def _material(year: int, diameter: int, rng: np.random.Generator) -> str:
    if year < 1990:
        return "ST" if diameter >= 800 else "CI"
    if year < 2005:
        return "DI" if diameter >= 300 else str(rng.choice(("PVC", "DI"), p=(0.7, 0.3)))
    if diameter >= 1000:
        return str(rng.choice(("ST", "DI"), p=(0.6, 0.4)))
    if diameter >= 400:
        return "DI"
    return str(rng.choice(("PE", "DI", "PVC"), p=(0.7, 0.2, 0.1)))


def build_water_pipes(
    roads: gpd.GeoDataFrame, districts: gpd.GeoDataFrame, rng: np.random.Generator
) -> gpd.GeoDataFrame:
    """Water mains in EPSG:4545 with start/end node ids (see module docstring)."""
    gaoxin = districts.loc[districts["district_code"] == "990105", "geometry"].iloc[0]
    node_ids: dict[int, str] = {}
    next_node = [1]

    def new_node() -> str:
        nid = f"JSN-{next_node[0]:05d}"
        next_node[0] += 1
        return nid

    def junction(k: int) -> str:
        if k not in node_ids:
            node_ids[k] = new_node()
        return node_ids[k]

    rows: list[dict[str, object]] = []
    for road in roads.itertuples(index=False):
        if road.road_class == "local" and rng.random() < 0.05:
            continue
        geom: LineString = road.geometry
        length = geom.length
        pieces = max(1, round(length / float(rng.uniform(210.0, 430.0))))
        inner = (np.arange(1, pieces) + rng.uniform(-0.25, 0.25, pieces - 1)) / pieces
        cuts = np.concatenate([[0.0], inner, [1.0]])
        nodes = [junction(int(road.start_node))] + [new_node() for _ in range(pieces - 1)]
        nodes.append(junction(int(road.end_node)))
        diameter = int(rng.choice(_DIAMETERS[road.road_class]))
        mid = geom.interpolate(0.5, normalized=True)
        r_km = float(np.hypot(mid.x - CENTRE_X, mid.y - CENTRE_Y)) / 1000.0
        base_year = int(np.clip(round(2022 - rng.gamma(2.0, 3.0 + 1.8 * max(0.0, 9.0 - r_km))), 1965, 2023))
        owner = OWNERS[1] if gaoxin.contains(mid) else OWNERS[0]
        trunk = road.road_class == "expressway"
        for k in range(pieces):
            seg = shapely.ops.substring(geom, cuts[k], cuts[k + 1], normalized=True)
            year = base_year if rng.random() > 0.2 else int(rng.integers(max(base_year, 2010), 2025))
            cover = (0.8 + diameter / 1000.0) * rng.uniform(0.9, 1.5)
            depth = np.nan if rng.random() < 0.06 else round(float(cover), 2)
            if trunk:
                burial = "jacking" if k in (0, pieces - 1) and rng.random() < 0.5 else "trench"
                pressure = rng.uniform(0.6, 1.0)
            else:
                burial = str(rng.choice(BURIALS, p=(0.78, 0.2, 0.02)))
                pressure = rng.uniform(0.25, 0.6)
            rows.append(
                {
                    "category": "JS",
                    "material": _material(year, diameter, rng),
                    "diameter_mm": diameter,
                    "depth_m": depth,
                    "pressure_mpa": round(float(pressure), 2),
                    "burial": burial,
                    "build_year": year,
                    "owner": owner,
                    "start_node": nodes[k],
                    "end_node": nodes[k + 1],
                    "geometry": seg,
                }
            )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=PROJECTED_CRS)
    minx, miny, maxx, maxy = CITY_BBOX_PROJECTED
    frame["geometry"] = shapely.transform(
        frame.geometry.to_numpy(),
        lambda c: np.clip(c + np.array(OFFSET_M), (minx, miny), (maxx, maxy)),  # same node, same result
    )
    frame.insert(0, "pipe_id", [f"JS-{k:06d}" for k in range(1, len(frame) + 1)])
    return frame


def build_water_valves(pipes: gpd.GeoDataFrame, rng: np.random.Generator, n: int = N_VALVES) -> pd.DataFrame:
    """Valves as a plain table with GCJ-02 ``lon``/``lat`` (see module docstring)."""
    pick = np.sort(rng.choice(len(pipes), size=min(n, len(pipes)), replace=False))
    chosen = pipes.iloc[pick]
    along = rng.uniform(3.0, 8.0, len(chosen))
    pts = shapely.line_interpolate_point(chosen.geometry.to_numpy(), along)
    lon, lat = points_to_lonlat(shapely.get_x(pts), shapely.get_y(pts))
    glon, glat = wgs84_to_gcj02(lon, lat)
    return pd.DataFrame(
        {
            "valve_id": [f"JSF-{k:06d}" for k in range(1, len(chosen) + 1)],
            "pipe_id": chosen["pipe_id"].to_numpy(),
            "status": np.where(rng.random(len(chosen)) < 0.07, "closed", "open"),
            "diameter_mm": chosen["diameter_mm"].to_numpy(),
            "lon": np.round(glon, 6),
            "lat": np.round(glat, 6),
        }
    )

