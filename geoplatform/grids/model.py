"""What a gridded dataset is: its declaration, its variables and its grid."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from geoplatform.cube.model import CatalogEntry

_VARIABLE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,62}")
DTYPES = ("float32", "float64", "int8", "int16", "int32", "uint8", "uint16", "uint32")


class GridVariable(BaseModel):
    """One variable of a grid: a (time, y, x) array of one type and unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str | None = None
    description: str | None = None
    units: str | None = None  # UDUNITS, as CF asks ("ug m-3", "degC", "m")
    standard_name: str | None = None  # from the CF standard name table, when there is one
    dtype: Literal["float32", "float64", "int8", "int16", "int32", "uint8", "uint16", "uint32"] = "float32"
    nodata: float | None = None  # the fill value of an integer variable; floats use NaN

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _VARIABLE.fullmatch(v):
            raise ValueError(f"variable name {v!r} must start with a letter and hold letters, digits, '_' or '.'")
        return v

    @model_validator(mode="after")
    def _fill(self) -> "GridVariable":
        if self.nodata is not None and self.dtype.startswith(("int", "uint")):
            info = np.iinfo(np.dtype(self.dtype))
            if not (info.min <= self.nodata <= info.max) or self.nodata != int(self.nodata):
                raise ValueError(f"nodata {self.nodata} of variable {self.name!r} is not a {self.dtype} value")
        return self

    @property
    def fill_value(self) -> Any:
        """What a cell without data holds."""
        if self.dtype.startswith("float"):
            return np.nan
        return 0 if self.nodata is None else int(self.nodata)


class GridSpec(CatalogEntry):
    """The declaration of a gridded dataset (a catalog entry with ``kind: grid``).

    The grid itself (CRS, cell size, extent) and the variables, when not
    declared, come from the first ingest; later ingests must match them.
    """

    kind: Literal["grid"] = "grid"
    crs: str | None = None  # None: the first ingest's
    variables: tuple[GridVariable, ...] | None = None  # None: the first ingest's
    #: (y, x) cells of a chunk of the map copy: one time step each
    map_chunk: tuple[int, int] = (512, 512)
    #: (time, y, x) cells of a chunk of the time-series copy
    series_chunk: tuple[int, int, int] = (128, 32, 32)
    # for catalogs that point at their source files
    file: str | None = None
    time_pattern: str | None = Field(default=None, description="regular expression whose named groups "
                                     "(year, month, day, hour, minute) or single group (an ISO 8601 "
                                     "instant) give a GeoTIFF file's time step from its name")

    @field_validator("map_chunk", "series_chunk")
    @classmethod
    def _chunks(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(c < 1 or c > 65536 for c in v):
            raise ValueError(f"chunk sizes {v} must be 1 to 65536")
        if math.prod(v) > 64 * 1024 * 1024:
            raise ValueError(f"chunks of {v} cells are too large (at most 64 Mi cells)")
        return v

    @model_validator(mode="after")
    def _unique(self) -> "GridSpec":
        if self.variables is not None:
            names = [v.name for v in self.variables]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"variables {dup} are declared more than once")
            if not names:
                raise ValueError("a grid declares at least one variable, or none at all (from the first ingest)")
        return self

    def variable(self, name: str) -> GridVariable:
        for v in self.variables or ():
            if v.name == name:
                return v
        raise KeyError(name)


@dataclass(frozen=True)
class GridGeometry:
    """A regular grid, north-up or south-up, without rotation: ``width`` x
    ``height`` cells, the corner of cell (0, 0) at (``x0``, ``y0``) and cells
    ``dx`` by ``dy`` (``dy`` < 0 for north-up) in ``crs``."""

    crs: str
    x0: float
    y0: float
    dx: float
    dy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.width > 0 and self.height > 0):
            raise ValueError(f"a grid of {self.width} x {self.height} cells")
        if not all(math.isfinite(v) for v in (self.x0, self.y0, self.dx, self.dy)) or self.dx <= 0 or self.dy == 0:
            raise ValueError(f"grid cells of {self.dx} x {self.dy} from ({self.x0}, {self.y0})")

    @property
    def x(self) -> np.ndarray:
        """Cell centres along x."""
        return self.x0 + (np.arange(self.width) + 0.5) * self.dx

    @property
    def y(self) -> np.ndarray:
        """Cell centres along y."""
        return self.y0 + (np.arange(self.height) + 0.5) * self.dy

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        y1 = self.y0 + self.height * self.dy
        return (self.x0, min(self.y0, y1), self.x0 + self.width * self.dx, max(self.y0, y1))

    def same_grid(self, other: "GridGeometry") -> bool:
        """Whether ``other`` has the same cells (to a millionth of a cell)."""
        tol_x, tol_y = abs(self.dx) * 1e-6, abs(self.dy) * 1e-6
        return (self.crs == other.crs and self.width == other.width and self.height == other.height
                and abs(self.x0 - other.x0) <= tol_x and abs(self.y0 - other.y0) <= tol_y
                and abs(self.dx - other.dx) <= tol_x and abs(self.dy - other.dy) <= tol_y)

    def describe(self) -> str:
        return (f"{self.width} x {self.height} cells of {self.dx:g} x {abs(self.dy):g} from "
                f"({self.x0:g}, {self.y0:g}) in {self.crs}")

    def to_json(self) -> dict[str, Any]:
        return {"crs": self.crs, "x0": self.x0, "y0": self.y0, "dx": self.dx, "dy": self.dy,
                "width": self.width, "height": self.height}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "GridGeometry":
        return cls(d["crs"], float(d["x0"]), float(d["y0"]), float(d["dx"]), float(d["dy"]),
                   int(d["width"]), int(d["height"]))

    @classmethod
    def from_centres(cls, crs: str, x: np.ndarray, y: np.ndarray) -> "GridGeometry":
        """From 1-D coordinates of cell centres, evenly spaced (as NetCDF and Zarr give them)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        for name, c in (("x", x), ("y", y)):
            if c.ndim != 1 or len(c) < 2:
                raise ValueError(f"the {name} coordinate needs at least two cell centres")
            step = np.diff(c)
            if not np.allclose(step, step[0], rtol=1e-6, atol=0) or step[0] == 0:
                raise ValueError(f"the {name} coordinate is not evenly spaced: a regular grid is needed")
        dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
        if dx < 0:
            raise ValueError("the x coordinate runs from east to west: flip it first")
        return cls(crs, float(x[0] - dx / 2), float(y[0] - dy / 2), dx, dy, len(x), len(y))
