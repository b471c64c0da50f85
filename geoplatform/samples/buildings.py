"""Building footprints and the 250 m population grid of the sample city.

How buildings are generated
---------------------------
* Candidate sites are walked along both sides of every road piece, skipping
  the ends near junctions, with gaps of 10-70 m. The building's use comes from
  the plan parcel in force under the site (R -> residential, B -> commercial,
  M/W -> industrial, A/S4/U -> public; parks, green buffers and road land get
  no buildings), and its footprint size from the use (slabs for housing, big
  sheds for industry). Footprints are rectangles parallel to the road, set
  back from it by half the carriageway plus 6-18 m.
* A candidate is dropped if it leaves its parcel or touches a carriageway;
  the remaining ones are taken in a random order weighted towards the centre,
  skipping any that overlaps one already taken, until 3,000 are placed.
* ``built_year`` is older towards the centre; floors follow the use and the
  era (walk-ups before 1995, high-rises after 2008), ``height_m`` is floors
  times a storey height of the use plus a roof allowance.

How the population grid is generated
------------------------------------
Residents are put into the residential buildings at one per 38 m2 of floor
area (footprint x floors x 0.85), summed into 250 m cells (a grid aligned on
the EPSG:4545 city square; only cells with residents are kept).
``count_65plus`` is binomial with a share of 12 % in housing built since 2000
and 22 % in older housing.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import shapely

from .common import CENTRE_X, CENTRE_Y, CITY_BBOX_PROJECTED, PROJECTED_CRS, rotated_rectangles

N_BUILDINGS = 3000
CELL_M = 250.0

BUILDING_USES = ("residential", "commercial", "industrial", "public")

_USE_OF_LAND = {
    "R": "residential",
    "B": "commercial",
    "M": "industrial",
    "W": "industrial",
    "A": "public",
    "U": "public",
}

# width along the road, depth across it (ranges in metres)
_SIZE = {
    "residential": ((30.0, 65.0), (12.0, 18.0)),
    "commercial": ((25.0, 70.0), (20.0, 45.0)),
    "industrial": ((40.0, 95.0), (30.0, 60.0)),
    "public": ((30.0, 80.0), (20.0, 40.0)),
}
_STOREY_M = {"residential": (2.9, 3.0), "commercial": (3.6, 4.2), "industrial": (5.0, 8.0), "public": (3.8, 4.5)}


def building_use(land_use: str) -> str | None:
    """Building use on a parcel of GB 50137 ``land_use`` (None: no buildings)."""
    if land_use == "S4":
        return "public"
    return _USE_OF_LAND.get(land_use[0])


def _candidates(roads: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    parcel_geoms = parcels.geometry.to_numpy()
    parcel_tree = shapely.STRtree(parcel_geoms)
    land_use = parcels["land_use"].to_numpy()
    cx: list[float] = []
    cy: list[float] = []
    width: list[float] = []
    depth: list[float] = []
    angle: list[float] = []
    uses: list[str] = []
    parcel_of: list[int] = []
    for geom, lanes in zip(roads.geometry.to_numpy(), roads["lanes"].to_numpy(), strict=True):
        pts = np.asarray(geom.coords)
        half_road = lanes * 3.5 / 2.0 + 4.0
        for p0, p1 in itertools.pairwise(pts):
            d = p1 - p0
            length = float(np.hypot(*d))
            u = d / length
            v = np.array([-u[1], u[0]])
            for side in (-1.0, 1.0):
                s = 80.0 + float(rng.uniform(0.0, 40.0))
                while True:
                    setback = half_road + float(rng.uniform(6.0, 18.0))
                    probe = p0 + u * s + v * side * (setback + 15.0)
                    hits = parcel_tree.query(shapely.points(probe), predicate="within")
                    use = building_use(str(land_use[hits[0]])) if len(hits) else None
                    if use is None:
                        s += float(rng.uniform(40.0, 120.0))
                        if s > length - 80.0:
                            break
                        continue
                    (w_lo, w_hi), (d_lo, d_hi) = _SIZE[use]
                    w, dep = float(rng.uniform(w_lo, w_hi)), float(rng.uniform(d_lo, d_hi))
                    if s + w > length - 80.0:
                        break
                    c = p0 + u * (s + w / 2.0) + v * side * (setback + dep / 2.0)
                    cx.append(float(c[0]))
                    cy.append(float(c[1]))
                    width.append(w)
                    depth.append(dep)
                    angle.append(float(np.arctan2(u[1], u[0])))
                    uses.append(use)
                    parcel_of.append(int(hits[0]))
                    s += w + float(rng.uniform(10.0, 70.0))
    geoms = rotated_rectangles(np.array(cx), np.array(cy), np.array(width), np.array(depth), np.array(angle))
    frame = gpd.GeoDataFrame(
        {"use": uses, "parcel": parcel_of, "geometry": geoms}, geometry="geometry", crs=PROJECTED_CRS
    )
    inside = shapely.within(frame.geometry.to_numpy(), parcel_geoms[frame["parcel"].to_numpy()])
    carriageways = shapely.buffer(roads.geometry.to_numpy(), roads["lanes"].to_numpy() * 3.5 / 2.0 + 2.0)
    touching = shapely.STRtree(carriageways).query(frame.geometry.to_numpy(), predicate="intersects")
    clear = np.ones(len(frame), dtype=bool)
    clear[touching[0]] = False
    return frame[inside & clear].reset_index(drop=True)


def _select(cands: gpd.GeoDataFrame, n: int, rng: np.random.Generator) -> np.ndarray:
    """Weighted random order (Efraimidis-Spirakis keys), greedy without overlaps."""
    cent = shapely.centroid(cands.geometry.to_numpy())
    r = np.hypot(shapely.get_x(cent) - CENTRE_X, shapely.get_y(cent) - CENTRE_Y)
    weight = np.exp(-r / 4000.0) + 0.15
    keys = rng.random(len(cands)) ** (1.0 / weight)
    order = np.argsort(-keys, kind="stable")
    pairs = shapely.STRtree(cands.geometry.to_numpy()).query(cands.geometry.to_numpy(), predicate="intersects")
    conflicts: dict[int, list[int]] = {}
    for a, b in zip(pairs[0], pairs[1], strict=True):
        if a != b:
            conflicts.setdefault(int(a), []).append(int(b))
    taken = np.zeros(len(cands), dtype=bool)
    chosen: list[int] = []
    for idx in order:
        if any(taken[j] for j in conflicts.get(int(idx), ())):
            continue
        taken[idx] = True
        chosen.append(int(idx))
        if len(chosen) == n:
            break
    return np.sort(np.array(chosen))


def build_buildings(
    roads: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, rng: np.random.Generator, n: int = N_BUILDINGS
) -> gpd.GeoDataFrame:
    """About ``n`` building footprints in EPSG:4545 (see module docstring)."""
    cands = _candidates(roads, parcels, rng)
    frame = cands.iloc[_select(cands, n, rng)].reset_index(drop=True)
    count = len(frame)
    cent = shapely.centroid(frame.geometry.to_numpy())
    r_km = np.hypot(shapely.get_x(cent) - CENTRE_X, shapely.get_y(cent) - CENTRE_Y) / 1000.0
    age = rng.gamma(2.0, 6.0 + 2.2 * np.maximum(0.0, 8.0 - r_km), count)
    built = np.clip(np.round(2024 - age), 1955, 2024).astype(int)
    use = frame["use"].to_numpy()
    floors = np.empty(count, dtype=int)
    for k in range(count):
        if use[k] == "residential":
            lo, hi = (5, 7) if built[k] < 1995 else ((6, 18) if built[k] < 2008 else (11, 33))
        elif use[k] == "commercial":
            lo, hi = (15, 45) if r_km[k] < 3.0 and rng.random() < 0.5 else (2, 8)
        elif use[k] == "industrial":
            lo, hi = 1, 4
        else:
            lo, hi = 2, 8
        floors[k] = int(rng.integers(lo, hi + 1))
    storey = np.array([rng.uniform(*_STOREY_M[u]) for u in use])
    height = np.round(floors * storey + rng.uniform(0.0, 3.0, count), 1)
    out = gpd.GeoDataFrame(
        {
            "building_id": [f"BLD-{k:06d}" for k in range(1, count + 1)],
            "floors": floors,
            "height_m": height,
            "use": use,
            "built_year": built,
            "geometry": frame.geometry.to_numpy(),
        },
        geometry="geometry",
        crs=PROJECTED_CRS,
    )
    return out


def residents_per_building(buildings: gpd.GeoDataFrame, rng: np.random.Generator
                           ) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray]:
    """The residential buildings, their residents and their residents aged 65 and over
    (see module docstring): what the population grid and the resident register share."""
    res = buildings[buildings["use"] == "residential"]
    floor_area = shapely.area(res.geometry.to_numpy()) * res["floors"].to_numpy() * 0.85
    residents = rng.poisson(floor_area / 38.0)
    old = res["built_year"].to_numpy() < 2000
    seniors = rng.binomial(residents, np.where(old, 0.22, 0.12))
    return res, residents, seniors


def build_population_grid(buildings: gpd.GeoDataFrame, rng: np.random.Generator,
                          counts: tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray] | None = None
                          ) -> gpd.GeoDataFrame:
    """250 m population cells in EPSG:4545 (see module docstring); ``counts``: those of
    :func:`residents_per_building` when already drawn (else drawn from ``rng``)."""
    res, residents, seniors = counts if counts is not None else residents_per_building(buildings, rng)
    cent = shapely.centroid(res.geometry.to_numpy())
    minx, miny, maxx, _ = CITY_BBOX_PROJECTED
    ncol = round((maxx - minx) / CELL_M)
    col = np.clip(((shapely.get_x(cent) - minx) // CELL_M).astype(int), 0, ncol - 1)
    row = np.clip(((shapely.get_y(cent) - miny) // CELL_M).astype(int), 0, ncol - 1)
    cell = row * ncol + col
    total = np.bincount(cell, weights=residents, minlength=ncol * ncol).astype(np.int64)
    old_total = np.bincount(cell, weights=seniors, minlength=ncol * ncol).astype(np.int64)
    keep = np.flatnonzero(total > 0)
    rows, cols = keep // ncol, keep % ncol
    x0 = minx + cols * CELL_M
    y0 = miny + rows * CELL_M
    geoms = shapely.box(x0, y0, x0 + CELL_M, y0 + CELL_M)
    return gpd.GeoDataFrame(
        {
            "cell_id": [f"250M-R{r:02d}C{c:02d}" for r, c in zip(rows, cols, strict=True)],
            "count_total": total[keep],
            "count_65plus": old_total[keep],
            "geometry": geoms,
        },
        geometry="geometry",
        crs=PROJECTED_CRS,
    )
