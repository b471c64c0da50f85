"""Shared frame of the sample city: its place, its CRSs, seeded RNGs and writers.

Everything in the sample city is laid out in metres in the CGCS2000 3-degree
Gauss-Kruger zone with central meridian 108E (EPSG:4545) around a fixed centre,
and only converted to geographic coordinates (EPSG:4490, taken as equal to
WGS84 at the metre level as the national standard allows) when a file asks for
them. GCJ-02 (the obfuscated datum of Chinese web maps) is produced by the
published forward formula, and undone by fixed-point iteration.

The writers here (GeoJSON, GeoJSON sequence, CSV) format every number
themselves, so that two runs with the same seed give byte-identical files.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import mapping as _mapping
from shapely.geometry.base import BaseGeometry
from geoplatform.crs import transform_xy

DEFAULT_SEED = 20261127

CITY_NAME = "Lanshan"
CITY_NAME_ZH = "蓝山市"

GEOGRAPHIC_CRS = "EPSG:4490"  # CGCS2000 geographic
PROJECTED_CRS = "EPSG:4545"  # CGCS2000 / 3-degree Gauss-Kruger CM 108E
WGS84_CRS = "EPSG:4326"

CENTRE_LON = 108.95
CENTRE_LAT = 34.27
HALF_SIZE_M = 10_000.0  # the city is a 20 x 20 km square around the centre

_TO_PROJECTED = Transformer.from_crs(GEOGRAPHIC_CRS, PROJECTED_CRS, always_xy=True)
_TO_GEOGRAPHIC = Transformer.from_crs(PROJECTED_CRS, GEOGRAPHIC_CRS, always_xy=True)

CENTRE_X, CENTRE_Y = (float(v) for v in _TO_PROJECTED.transform(CENTRE_LON, CENTRE_LAT))
CENTRE_X = round(CENTRE_X)  # a round false origin keeps the layout readable
CENTRE_Y = round(CENTRE_Y)

#: The city square in EPSG:4545 metres: (minx, miny, maxx, maxy).
CITY_BBOX_PROJECTED: tuple[float, float, float, float] = (
    CENTRE_X - HALF_SIZE_M,
    CENTRE_Y - HALF_SIZE_M,
    CENTRE_X + HALF_SIZE_M,
    CENTRE_Y + HALF_SIZE_M,
)

COORD_DECIMALS = 7  # degrees; 1e-7 deg is about 1 cm


def city_bbox_lonlat(margin_deg: float = 0.0) -> tuple[float, float, float, float]:
    """The city square's extent in EPSG:4490 lon/lat, widened by ``margin_deg``."""
    minx, miny, maxx, maxy = CITY_BBOX_PROJECTED
    # densified edges: in lon/lat they are neither parallels nor meridians
    ring = np.asarray(shapely.segmentize(shapely.box(minx, miny, maxx, maxy), 200.0).exterior.coords)
    lon, lat = _TO_GEOGRAPHIC.transform(ring[:, 0], ring[:, 1])
    return (
        float(lon.min()) - margin_deg,
        float(lat.min()) - margin_deg,
        float(lon.max()) + margin_deg,
        float(lat.max()) + margin_deg,
    )


def rng_for(seed: int, dataset: str) -> np.random.Generator:
    """An independent, reproducible generator for one dataset of one seed.

    Keying the stream by the dataset's name means that changing how one
    dataset draws its numbers never shifts the numbers of another.
    """
    key = zlib.crc32(dataset.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(key,)))


def local_to_projected(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets in metres from the city centre to EPSG:4545 coordinates."""
    return np.asarray(x, dtype=float) + CENTRE_X, np.asarray(y, dtype=float) + CENTRE_Y


def projected_to_lonlat(geoms: Sequence[BaseGeometry] | np.ndarray) -> np.ndarray:
    """EPSG:4545 geometries to EPSG:4490 lon/lat geometries (vectorised)."""
    arr = np.asarray(geoms, dtype=object)

    def _tx(coords: np.ndarray) -> np.ndarray:
        lon, lat = _TO_GEOGRAPHIC.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return np.asarray(shapely.transform(arr, _tx))


def lonlat_to_projected(geoms: Sequence[BaseGeometry] | np.ndarray) -> np.ndarray:
    """EPSG:4490 lon/lat geometries to EPSG:4545 geometries (vectorised)."""
    arr = np.asarray(geoms, dtype=object)

    def _tx(coords: np.ndarray) -> np.ndarray:
        x, y = _TO_PROJECTED.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(arr, _tx))


def points_to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EPSG:4545 coordinates to EPSG:4490 lon/lat arrays."""
    lon, lat = _TO_GEOGRAPHIC.transform(np.asarray(x, float), np.asarray(y, float))
    return np.asarray(lon), np.asarray(lat)


def district_codes_at(points: np.ndarray, districts: gpd.GeoDataFrame) -> np.ndarray:
    """The ``district_code`` of the district each point lies in (else the nearest)."""
    tree = shapely.STRtree(districts.geometry.to_numpy())
    hit = tree.query(points, predicate="intersects")
    codes = districts["district_code"].to_numpy()
    out = np.full(len(points), "", dtype=object)
    for p_idx, d_idx in zip(hit[0][::-1], hit[1][::-1], strict=True):  # first hit wins
        out[p_idx] = codes[d_idx]
    missing = np.flatnonzero(out == "")
    if len(missing):
        near = tree.query_nearest(points[missing], return_distance=False, all_matches=False)
        out[missing[near[0]]] = codes[near[1]]
    return out


# --------------------------------------------------------------------------- GCJ-02


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat to GCJ-02, as Chinese web maps export them."""
    return transform_xy(lon, lat, "EPSG:4326", "GCJ-02")


def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 lon/lat back to WGS84 (the platform's iterative inverse)."""
    return transform_xy(lon, lat, "GCJ-02", "EPSG:4326")


# --------------------------------------------------------------------------- writers


def _round_coords(obj: Any, decimals: int) -> Any:
    if isinstance(obj, float):
        return round(obj, decimals)
    if isinstance(obj, (list, tuple)):
        return [_round_coords(v, decimals) for v in obj]
    return obj


def _json_value(value: Any) -> Any:
    """A property value as plain JSON (numpy scalars unwrapped, NaN/NA to null)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def geojson_feature(geom: BaseGeometry, properties: Mapping[str, Any], decimals: int = COORD_DECIMALS) -> str:
    """One RFC 7946 Feature as a compact JSON string (polygons counter-clockwise)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        geom = shapely.orient_polygons(geom, exterior_cw=False)
    mapping = _mapping(geom)
    geometry = {"type": mapping["type"], "coordinates": _round_coords(mapping["coordinates"], decimals)}
    feature = {
        "type": "Feature",
        "properties": {k: _json_value(v) for k, v in properties.items()},
        "geometry": geometry,
    }
    return json.dumps(feature, ensure_ascii=False, separators=(",", ":"))


def _records(frame: pd.DataFrame) -> Iterable[tuple[BaseGeometry, dict[str, Any]]]:
    columns = [c for c in frame.columns if c != "geometry"]
    geoms = frame["geometry"].to_numpy()
    values = frame[columns].to_dict(orient="records")
    return zip(geoms, values, strict=True)


def write_geojson(path: Path, frame: pd.DataFrame) -> None:
    """Write lon/lat ``frame`` as an RFC 7946 FeatureCollection, one feature a line.

    No ``crs`` member is written: RFC 7946 fixes the CRS to WGS84 lon/lat.
    """
    lines = [geojson_feature(g, p) for g, p in _records(frame)]
    body = ",\n".join(lines)
    path.write_text('{"type":"FeatureCollection","features":[\n' + body + "\n]}\n", encoding="utf-8")


def write_geojsonseq(path: Path, frame: pd.DataFrame) -> None:
    """Write lon/lat ``frame`` as newline-delimited GeoJSON (one Feature a line)."""
    lines = [geojson_feature(g, p) for g, p in _records(frame)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as UTF-8 CSV with ``\\n`` line ends and no index."""
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def point_wkt(lon: float, lat: float, decimals: int = COORD_DECIMALS) -> str:
    """``POINT (lon lat)`` with a fixed number of decimals."""
    return f"POINT ({lon:.{decimals}f} {lat:.{decimals}f})"


def rotated_rectangles(
    cx: np.ndarray, cy: np.ndarray, width: np.ndarray, depth: np.ndarray, angle: np.ndarray
) -> np.ndarray:
    """Rectangles centred on (cx, cy), ``width`` along direction ``angle`` (radians)."""
    ux, uy = np.cos(angle), np.sin(angle)  # along
    vx, vy = -uy, ux  # across
    hw, hd = width / 2.0, depth / 2.0
    corners = []
    for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)):
        corners.append(np.column_stack([cx + sa * hw * ux + sb * hd * vx, cy + sa * hw * uy + sb * hd * vy]))
    rings = np.stack(corners, axis=1)  # (n, 5, 2)
    return np.asarray(shapely.polygons(rings))
