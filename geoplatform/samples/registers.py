"""The sample city's two base registers of personal data: residents (natural
persons) and companies (legal entities). Both are generated; no record is of a
real person or company.

Residents
---------
Every resident counted in the population grid
(:func:`geoplatform.samples.buildings.residents_per_building`) is one record,
at the centroid of the residential building of their registered residence (so
a building's residents share one point, as addresses do). Those counted as 65
and over get the age band ``65+``; of the others, 16 % (binomial per building)
are ``0-14`` and the rest ``15-64``. ``sex`` is ``F`` or ``M`` with equal odds.

Companies
---------
Each commercial, industrial and public building is the registered address of
1 + Poisson(floor area / 1,500 m2) legal entities (industrial: / 4,000 m2),
at its centroid. The industry is a section of GB/T 4754-2017 drawn with
weights that follow the building's use (manufacturing in industrial sheds,
trade, hotels, IT and business services in commercial buildings, schools,
hospitals and public bodies in public ones); the size class is micro, small,
medium or large (62 / 28 / 8 / 2 %); the registered capital is log-normal
and larger for larger size classes; the year of establishment is uniform
over 1990-2024.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from .common import PROJECTED_CRS

AGE_BANDS = ("0-14", "15-64", "65+")
SIZE_CLASSES = ("micro", "small", "medium", "large")
#: GB/T 4754-2017 sections (门类) A to T
INDUSTRIES = tuple("ABCDEFGHIJKLMNOPQRST")
_INDUSTRY_WEIGHTS = {
    "industrial": {"C": 70, "D": 5, "E": 10, "G": 10, "M": 5},
    "commercial": {"F": 30, "H": 12, "I": 10, "J": 6, "K": 8, "L": 14, "M": 8, "O": 7, "R": 5},
    "public": {"P": 35, "Q": 30, "R": 15, "S": 20},
}


def build_residents(res: gpd.GeoDataFrame, residents: np.ndarray, seniors: np.ndarray,
                    rng: np.random.Generator) -> gpd.GeoDataFrame:
    """One record per resident of the residential buildings ``res`` (EPSG:4545)."""
    residents = np.asarray(residents, np.int64)
    seniors = np.asarray(seniors, np.int64)
    children = rng.binomial(residents - seniors, 0.16)
    band = np.concatenate([np.repeat(np.array([0, 1, 2], np.int8), [c, r - c - s, s])
                           for c, r, s in zip(children, residents, seniors, strict=True)]) \
        if len(residents) else np.zeros(0, np.int8)
    where = np.repeat(np.arange(len(res)), residents)
    cent = shapely.centroid(res.geometry.to_numpy())
    n = int(residents.sum())
    return gpd.GeoDataFrame(
        {
            "person_id": [f"P{k:07d}" for k in range(1, n + 1)],
            "age_band": np.array(AGE_BANDS, dtype=object)[band],
            "sex": np.where(rng.random(n) < 0.5, "F", "M").astype(object),
            "building_id": res["building_id"].to_numpy()[where],
            "geometry": cent[where],
        },
        geometry="geometry",
        crs=PROJECTED_CRS,
    )


def build_companies(buildings: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Legal entities registered in the non-residential buildings (EPSG:4545)."""
    hosts = buildings[buildings["use"].isin(list(_INDUSTRY_WEIGHTS))].reset_index(drop=True)
    use = hosts["use"].to_numpy()
    floor_area = shapely.area(hosts.geometry.to_numpy()) * hosts["floors"].to_numpy()
    per = np.where(use == "industrial", 4000.0, 1500.0)
    count = 1 + rng.poisson(floor_area / per)
    where = np.repeat(np.arange(len(hosts)), count)
    n = len(where)
    industry = np.empty(n, dtype=object)
    for kind, weights in _INDUSTRY_WEIGHTS.items():
        pick = use[where] == kind
        codes = np.array(list(weights), dtype=object)
        p = np.array(list(weights.values()), float)
        industry[pick] = rng.choice(codes, size=int(pick.sum()), p=p / p.sum())
    size = rng.choice(len(SIZE_CLASSES), size=n, p=[0.62, 0.28, 0.08, 0.02])
    capital = np.round(rng.lognormal(np.log([50.0, 500.0, 5000.0, 50000.0])[size], 0.8), 1)
    cent = shapely.centroid(hosts.geometry.to_numpy())
    return gpd.GeoDataFrame(
        {
            "entity_id": [f"LE{k:06d}" for k in range(1, n + 1)],
            "industry": industry,
            "size_class": np.array(SIZE_CLASSES, dtype=object)[size],
            "registered_capital": capital,
            "established_year": rng.integers(1990, 2025, size=n),
            "building_id": hosts["building_id"].to_numpy()[where],
            "geometry": cent[where],
        },
        geometry="geometry",
        crs=PROJECTED_CRS,
    )
