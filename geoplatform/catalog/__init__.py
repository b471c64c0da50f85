"""Dataset metadata: declarative catalogs, catalog records, publishing."""

from geoplatform.catalog.describe import describe
from geoplatform.catalog.models import CityCatalog, Department, Theme, load_city_catalog
from geoplatform.catalog.publish import publish

__all__ = ["CityCatalog", "Department", "Theme", "describe", "load_city_catalog", "publish"]
