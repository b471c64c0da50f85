"""Tile matrix sets (OGC 2D Tile Matrix Set 2.0) and the tile math over them.

A tile matrix set is declared as a TMS 2.0 JSON document in
``tiles/tilematrixsets/`` and validated on load into :class:`TileMatrixSet`;
a broken file is a :class:`~geoplatform.errors.CatalogError` naming the file
and the field.

The documents follow the CRS's axis order (``pointOfOrigin`` of a latitude-first
CRS such as EPSG:4490 is ``[lat, lon]``). Everything computed here is in the
platform's internal order, x = east and y = north, like every other coordinate
in the code; the model swaps once, when it reads the document.

>>> tms = load_tile_matrix_sets()["WebMercatorQuad"]
>>> tms.tile_bounds("0", 0, 0)[0]
-20037508.3427892
>>> tms.tile_for_point("1", -1.0, 1.0)
(0, 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from geoplatform.catalog.models import _load_yaml, _validate
from geoplatform.crs import PlatformCRS, resolve_crs
from geoplatform.errors import CatalogError, CRSError

ROOT = Path(__file__).resolve().parents[2]
#: Where the project declares its tile matrix sets.
TMS_DIR = ROOT / "tiles" / "tilematrixsets"
Bounds = tuple[float, float, float, float]
_LAT_NAMES = {"lat", "latitude", "north", "n"}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class TileMatrix(_Model):
    """One zoom level: a grid of ``matrix_width`` x ``matrix_height`` tiles."""

    id: str = Field(min_length=1)
    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] | None = None
    scale_denominator: float = Field(gt=0)
    cell_size: float = Field(gt=0)
    corner_of_origin: Literal["topLeft", "bottomLeft"] = "topLeft"
    point_of_origin: tuple[float, float]
    tile_width: int = Field(ge=1)
    tile_height: int = Field(ge=1)
    matrix_width: int = Field(ge=1)
    matrix_height: int = Field(ge=1)

    @field_validator("point_of_origin")
    @classmethod
    def _finite(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(c) for c in v):
            raise ValueError("pointOfOrigin must be two finite numbers")
        return v


class BoundingBox2D(_Model):
    lower_left: tuple[float, float]
    upper_right: tuple[float, float]
    crs: str | None = None
    ordered_axes: tuple[str, str] | None = None


@dataclass(frozen=True)
class _Level:
    """A tile matrix in internal x/y order, with the numbers the math needs."""

    x0: float  # x of the origin corner
    y0: float  # y of the origin corner
    width: float  # of one tile, in CRS units
    height: float
    cols: int
    rows: int
    top_left: bool


class TileMatrixSet(_Model):
    """A validated TMS 2.0 document, with tile bounds and tile lookups.

    Rows and columns are numbered from the corner of origin (``topLeft``:
    rows grow southwards; ``bottomLeft``: northwards), as the standard says.
    """

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] | None = None
    uri: str | None = None
    crs: str
    ordered_axes: tuple[str, str] | None = None
    well_known_scale_set: str | None = None
    bounding_box: BoundingBox2D | None = None
    tile_matrices: tuple[TileMatrix, ...] = Field(min_length=1)

    @field_validator("crs", mode="before")
    @classmethod
    def _crs_uri(cls, v: Any) -> Any:
        # TMS 2.0 allows {"uri": ...} as well as a plain URI string.
        if isinstance(v, dict) and isinstance(v.get("uri"), str):
            return v["uri"]
        return v

    @field_validator("crs")
    @classmethod
    def _crs_known(cls, v: str) -> str:
        try:
            resolve_crs(v)
        except CRSError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "TileMatrixSet":
        ids = [m.id for m in self.tile_matrices]
        if len(set(ids)) != len(ids):
            raise ValueError(f"tileMatrices: identifiers repeat ({ids})")
        if self.ordered_axes is not None:
            lat_first = self.ordered_axes[0].strip().lower() in _LAT_NAMES
            if lat_first != self.crs_info.axis_order_lat_first:
                order = "latitude first" if self.crs_info.axis_order_lat_first else "east first"
                raise ValueError(f"orderedAxes {list(self.ordered_axes)} do not match {self.crs}, "
                                 f"whose axis order is {order}")
        return self

    # the CRS -----------------------------------------------------------------
    @cached_property
    def crs_info(self) -> PlatformCRS:
        return resolve_crs(self.crs)

    @property
    def crs_uri(self) -> str:
        return self.crs_info.uri or self.crs

    # levels ------------------------------------------------------------------
    @cached_property
    def _levels(self) -> dict[str, _Level]:
        swap = self.crs_info.axis_order_lat_first
        out = {}
        for m in self.tile_matrices:
            a, b = m.point_of_origin
            x0, y0 = (b, a) if swap else (a, b)
            out[m.id] = _Level(x0, y0, m.tile_width * m.cell_size, m.tile_height * m.cell_size,
                               m.matrix_width, m.matrix_height, m.corner_of_origin == "topLeft")
        return out

    def matrix(self, tile_matrix: str) -> TileMatrix:
        """The tile matrix ``tile_matrix``; KeyError when the set has none of that id."""
        for m in self.tile_matrices:
            if m.id == tile_matrix:
                return m
        raise KeyError(tile_matrix)

    def _level(self, tile_matrix: str) -> _Level:
        lv = self._levels.get(tile_matrix)
        if lv is None:
            raise KeyError(tile_matrix)
        return lv

    def contains(self, tile_matrix: str, row: int, col: int) -> bool:
        """Whether the tile exists in the matrix."""
        lv = self._levels.get(tile_matrix)
        return lv is not None and 0 <= row < lv.rows and 0 <= col < lv.cols

    def matrix_bounds(self, tile_matrix: str) -> Bounds:
        """The area the whole matrix covers, (xmin, ymin, xmax, ymax)."""
        lv = self._level(tile_matrix)
        x1 = lv.x0 + lv.cols * lv.width
        y1 = lv.y0 - lv.rows * lv.height if lv.top_left else lv.y0 + lv.rows * lv.height
        return (lv.x0, min(lv.y0, y1), x1, max(lv.y0, y1))

    def tile_bounds(self, tile_matrix: str, row: int, col: int) -> Bounds:
        """(xmin, ymin, xmax, ymax) of a tile, x east and y north."""
        lv = self._level(tile_matrix)
        xmin = lv.x0 + col * lv.width
        if lv.top_left:
            ymax = lv.y0 - row * lv.height
            return (xmin, ymax - lv.height, xmin + lv.width, ymax)
        ymin = lv.y0 + row * lv.height
        return (xmin, ymin, xmin + lv.width, ymin + lv.height)

    def tile_for_point(self, tile_matrix: str, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) of the tile holding (x, y), or None outside the matrix.

        A point on a shared edge belongs to the tile east of it and, for a
        top-left origin, south of it (the tile whose corner of origin it is);
        a point on the matrix's far edges belongs to the last tile.
        """
        lv = self._level(tile_matrix)
        fc = (x - lv.x0) / lv.width
        fr = (lv.y0 - y) / lv.height if lv.top_left else (y - lv.y0) / lv.height
        if not (0 <= fc <= lv.cols and 0 <= fr <= lv.rows):
            return None
        return min(int(math.floor(fr)), lv.rows - 1), min(int(math.floor(fc)), lv.cols - 1)

    def tile_range(self, tile_matrix: str, bbox: Bounds) -> tuple[int, int, int, int] | None:
        """(min_row, max_row, min_col, max_col) of the tiles whose area meets
        ``bbox`` (closed boxes: a box touching a tile's edge meets it), clipped
        to the matrix; None when the box is outside it."""
        lv = self._level(tile_matrix)
        xmin, ymin, xmax, ymax = bbox
        c0 = math.floor((xmin - lv.x0) / lv.width)
        c1 = math.ceil((xmax - lv.x0) / lv.width) - 1
        if lv.top_left:
            r0 = math.floor((lv.y0 - ymax) / lv.height)
            r1 = math.ceil((lv.y0 - ymin) / lv.height) - 1
        else:
            r0 = math.floor((ymin - lv.y0) / lv.height)
            r1 = math.ceil((ymax - lv.y0) / lv.height) - 1
        # A degenerate box on a tile edge still meets the tile before the edge.
        c1, r1 = max(c0, c1), max(r0, r1)
        if c1 < 0 or r1 < 0 or c0 >= lv.cols or r0 >= lv.rows:
            return None
        return max(r0, 0), min(r1, lv.rows - 1), max(c0, 0), min(c1, lv.cols - 1)

    def to_dict(self) -> dict[str, Any]:
        """The TMS 2.0 JSON document, as declared."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude_none=True, mode="json")


def parse_tile_matrix_set(doc: Any, source: str) -> TileMatrixSet:
    """A validated tile matrix set; errors name ``source`` and the field."""
    tms: TileMatrixSet = _validate(TileMatrixSet, doc, source)
    return tms


def load_tile_matrix_sets(folder: Path | None = None) -> dict[str, TileMatrixSet]:
    """Every ``*.json`` tile matrix set in ``folder`` (default ``tiles/tilematrixsets``),
    by id. The file name must be the id."""
    folder = folder or TMS_DIR
    out: dict[str, TileMatrixSet] = {}
    for path in sorted(folder.glob("*.json")):
        tms = parse_tile_matrix_set(_load_yaml(path), str(path))  # JSON is YAML
        if tms.id != path.stem:
            raise CatalogError(f"{path}: id: {tms.id!r} is not the file name {path.stem!r}")
        out[tms.id] = tms
    if not out:
        raise CatalogError(f"{folder}: no tile matrix set (*.json) declared")
    return out
