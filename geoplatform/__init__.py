"""geoplatform: a city spatio-temporal data platform.

>>> import geoplatform as gp
>>> gp.DatasetSpec(name="parcels", geometry_type="Polygon").storage_crs
'EPSG:4490'
"""

from geoplatform import errors
from geoplatform.cube.cube import Cube, open_cube
from geoplatform.cube.model import DatasetSpec, Field, Snapshot, TimeInterval
from geoplatform.settings import Settings

__all__ = ["Cube", "DatasetSpec", "Field", "Settings", "Snapshot", "TimeInterval", "errors", "open_cube"]
__version__ = "0.1.0"
