"""The bundled sample city: generated, documented source files to ingest.

:func:`build_sample_city` writes the files of the fictional city of Lanshan
(蓝山市) in several input formats (GeoJSON, GeoJSON sequence, CSV with lon/lat
in GCJ-02 or WKT, GeoPackage, GeoParquet, zipped Shapefile); the catalog that
describes them is ``catalogs/sample_city.yaml``. Nothing in them is real.
"""

from .city import FILES, build_sample_city
from .common import CITY_BBOX_PROJECTED, DEFAULT_SEED, city_bbox_lonlat, gcj02_to_wgs84, wgs84_to_gcj02

__all__ = [
    "CITY_BBOX_PROJECTED",
    "DEFAULT_SEED",
    "FILES",
    "build_sample_city",
    "city_bbox_lonlat",
    "gcj02_to_wgs84",
    "wgs84_to_gcj02",
]
