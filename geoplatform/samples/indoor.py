"""An IMDF-style indoor venue: the (fictional) Lanshan City Operations Centre.

How it is generated
-------------------
A 72 x 36 m, three-storey building (levels ordinal 0-2, named 1F-3F as is
usual in China) is laid out on a plan that is the same on every level:

* a 3 m corridor (IMDF category ``walkway``) along the long axis;
* two stair cores at the ends, two elevators, a unisex accessible restroom
  and the male/female restrooms in a central core on the north side;
* plant rooms at the two north corners (``storage``; the west one is the
  ``serverroom`` on 2F);
* the rest of both sides cut into bays 6-12 m wide: offices, meeting rooms
  (``conferenceroom``), rooms; the ground floor has a ``lobby`` in the middle
  of the south side, 2F a command hall, 3F a lounge.

Units of a level tile the level's outline exactly. Ids are random UUIDs
(version 4) drawn from the seeded generator, so they are stable per seed.
The building is placed near the centre, at the first of a few candidate spots
whose outline (plus 10 m) is clear of buildings and carriageways, rotated
12 degrees. The layout is invented; it copies no real building.
"""

from __future__ import annotations

import itertools
import uuid

import geopandas as gpd
import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box

from .common import CENTRE_X, CENTRE_Y, PROJECTED_CRS

UNIT_CATEGORIES = (
    "lobby", "walkway", "stairs", "elevator", "restroom.male", "restroom.female", "restroom.unisex",
    "office", "conferenceroom", "room", "storage", "serverroom", "lounge",
)
LENGTH_M, DEPTH_M = 72.0, 36.0
VENUE_NAME = ("Lanshan City Operations Centre", "蓝山市城市运行管理中心")
_LEVEL_NAMES = (("1F", "一层"), ("2F", "二层"), ("3F", "三层"))
_CANDIDATE_SPOTS = ((620.0, -480.0), (-540.0, 560.0), (900.0, 900.0), (-950.0, -700.0), (300.0, 1500.0))
_ANGLE_DEG = 12.0


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _bays(lo: float, hi: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Cut [lo, hi] into bays 6-12 m wide (on a 0.5 m module)."""
    out = []
    x = lo
    while hi - x > 12.0:
        w = float(np.round(rng.uniform(6.0, 12.0) * 2) / 2)
        if hi - x - w < 6.0:
            w = float(np.round((hi - x) / 2 * 2) / 2)
        out.append((x, x + w))
        x += w
    out.append((x, hi))
    return out


def _plan(ordinal: int, rng: np.random.Generator) -> list[tuple[str, str, str, Polygon]]:
    """(category, name, name_zh, local polygon) for the units of one level."""
    units: list[tuple[str, str, str, Polygon]] = [
        ("walkway", "Corridor", "走廊", box(0, 15, 72, 18)),
        ("stairs", "Stairs A", "A楼梯", box(0, 18, 6, 27)),
        ("stairs", "Stairs B", "B楼梯", box(66, 18, 72, 27)),
        ("elevator", "Elevator 1", "1号电梯", box(30, 18, 33, 24)),
        ("elevator", "Elevator 2", "2号电梯", box(33, 18, 36, 24)),
        ("restroom.unisex", "Accessible restroom", "无障碍卫生间", box(36, 18, 42, 24)),
        ("restroom.male", "Men's restroom", "男卫生间", box(30, 24, 36, 36)),
        ("restroom.female", "Women's restroom", "女卫生间", box(36, 24, 42, 36)),
        ("storage", "Plant room B", "B设备间", box(66, 27, 72, 36)),
    ]
    if ordinal == 1:
        units.append(("serverroom", "Server room", "机房", box(0, 27, 6, 36)))
    else:
        units.append(("storage", "Plant room A", "A设备间", box(0, 27, 6, 36)))

    spans: list[tuple[float, float, float, float]] = []  # x0, x1, y0, y1
    if ordinal == 0:
        units.append(("lobby", "Lobby", "大厅", box(24, 0, 48, 15)))
        spans += [(0, 24, 0, 15), (48, 72, 0, 15)]
    else:
        spans += [(0, 72, 0, 15)]
    if ordinal == 1:
        units.append(("room", "City Operations Command Hall", "城市运行指挥大厅", box(6, 18, 30, 36)))
        spans += [(42, 66, 18, 36)]
    elif ordinal == 2:
        units.append(("lounge", "Staff lounge", "职工休息室", box(42, 18, 54, 36)))
        spans += [(6, 30, 18, 36), (54, 66, 18, 36)]
    else:
        spans += [(6, 30, 18, 36), (42, 66, 18, 36)]

    number = 1
    for x0, x1, y0, y1 in spans:
        for a, b in _bays(x0, x1, rng):
            cat = str(rng.choice(("office", "conferenceroom", "room"), p=(0.6, 0.25, 0.15)))
            label = f"{ordinal + 1}{number:02d}"
            units.append((cat, f"Room {label}", f"{label}室", box(a, y0, b, y1)))
            number += 1
    return units


def _with_shared_vertices(polys: list[Polygon]) -> list[Polygon]:
    """Insert into each (axis-aligned) unit every other unit's corner lying on its edges.

    Without this, a corner of one room in the middle of another's wall (a
    T-junction) would drift by the coordinate rounding of the file and leave
    centimetre slivers; with it, neighbours share exactly the same vertices.
    """
    corners = sorted({c for p in polys for c in p.exterior.coords})
    out = []
    for poly in polys:
        ring = list(poly.exterior.coords)
        coords: list[tuple[float, float]] = []
        for (x0, y0), (x1, y1) in itertools.pairwise(ring):
            coords.append((x0, y0))
            if y0 == y1:
                on = [c for c in corners if c[1] == y0 and min(x0, x1) < c[0] < max(x0, x1)]
                on.sort(key=lambda c: c[0], reverse=x1 < x0)
            else:
                on = [c for c in corners if c[0] == x0 and min(y0, y1) < c[1] < max(y0, y1)]
                on.sort(key=lambda c: c[1], reverse=y1 < y0)
            coords.extend(on)
        out.append(Polygon(coords))
    return out


def _placement(buildings: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> tuple[float, float]:
    obstacles = np.concatenate(
        [
            buildings.geometry.to_numpy(),
            shapely.buffer(roads.geometry.to_numpy(), roads["lanes"].to_numpy() * 3.5 / 2.0 + 2.0),
        ]
    )
    tree = shapely.STRtree(obstacles)
    for dx, dy in _CANDIDATE_SPOTS:
        x, y = CENTRE_X + dx, CENTRE_Y + dy
        outline = _place(box(0, 0, LENGTH_M, DEPTH_M), x, y).buffer(10.0)
        if len(tree.query(outline, predicate="intersects")) == 0:
            return x, y
    return CENTRE_X + _CANDIDATE_SPOTS[0][0], CENTRE_Y + _CANDIDATE_SPOTS[0][1]


def _place(geom: Polygon, x: float, y: float) -> Polygon:
    moved = affinity.translate(geom, -LENGTH_M / 2, -DEPTH_M / 2)
    moved = affinity.rotate(moved, _ANGLE_DEG, origin=(0, 0))
    return affinity.translate(moved, x, y)


def build_indoor(
    buildings: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, rng: np.random.Generator
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """IMDF-style levels and units in EPSG:4545 (see module docstring)."""
    x, y = _placement(buildings, roads)
    building_id = _uuid(rng)
    outline = _place(box(0, 0, LENGTH_M, DEPTH_M), x, y)
    levels, units = [], []
    for ordinal, (short, short_zh) in enumerate(_LEVEL_NAMES):
        level_id = _uuid(rng)
        levels.append(
            {
                "level_id": level_id,
                "ordinal": ordinal,
                "name": f"{VENUE_NAME[0]} {short}",
                "name_zh": f"{VENUE_NAME[1]}{short_zh}",
                "short_name": short,
                "category": "unspecified",
                "outdoor": False,
                "building_id": building_id,
                "geometry": outline,
            }
        )
        plan = _plan(ordinal, rng)
        shapes = _with_shared_vertices([shape for *_, shape in plan])
        for (category, name, name_zh, _), local in zip(plan, shapes, strict=True):
            units.append(
                {
                    "unit_id": _uuid(rng),
                    "level_id": level_id,
                    "ordinal": ordinal,
                    "category": category,
                    "name": name,
                    "name_zh": name_zh,
                    "restriction": "restricted" if category == "serverroom" else None,
                    "geometry": _place(local, x, y),
                }
            )
    return (
        gpd.GeoDataFrame(levels, geometry="geometry", crs=PROJECTED_CRS),
        gpd.GeoDataFrame(units, geometry="geometry", crs=PROJECTED_CRS),
    )
