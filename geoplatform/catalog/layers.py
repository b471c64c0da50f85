"""Published layers: ``layers/<theme>/<layer>.yaml``, one file per OGC API collection.

A layer names a dataset of the catalog and says how it is served: its
collection id, which properties are published, the limits on a page, the CRS
it is offered in, whether it may be edited and whether it has vector tiles.
Files are validated against :class:`LayerConfig` and against the catalog when
they are loaded, and every error names the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from geoplatform.catalog.models import CityCatalog, _load_yaml, _validate
from geoplatform.crs import resolve_crs
from geoplatform.cube.model import OpenLevel
from geoplatform.errors import CatalogError, CRSError

_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: What a layer is offered in unless it says otherwise (OGC API Features Part 2).
DEFAULT_CRS = ("OGC:CRS84", "EPSG:4326", "EPSG:4490", "EPSG:3857", "EPSG:4544", "EPSG:4545", "EPSG:4546",
               "GCJ-02", "BD-09")


class PageLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: int = Field(default=100, ge=1)
    max: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "PageLimits":
        if self.default > self.max:
            raise ValueError(f"limits.default {self.default} is above limits.max {self.max}")
        return self


class TileOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    min_zoom: int = Field(default=0, ge=0, le=24)
    max_zoom: int = Field(default=18, ge=0, le=24)

    @model_validator(mode="after")
    def _ordered(self) -> "TileOptions":
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"tiles.min_zoom {self.min_zoom} is above tiles.max_zoom {self.max_zoom}")
        return self


class LayerConfig(BaseModel):
    """One published layer (an OGC API collection)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    dataset: str
    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    properties: tuple[str, ...] | None = None
    editable: bool = False
    limits: PageLimits = PageLimits()
    crs: tuple[str, ...] = DEFAULT_CRS
    tiles: TileOptions = TileOptions()

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"layer id {v!r} must match {_ID.pattern}")
        return v

    @field_validator("crs")
    @classmethod
    def _crs_ok(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("a layer is offered in at least one CRS")
        for c in v:
            try:
                resolve_crs(c)
            except CRSError as exc:
                raise ValueError(str(exc)) from None
        return v


class MapStyle(BaseModel):
    """How a grid variable is drawn in map tiles: a colour map of ``tiles/colormaps/``
    and, for a relative one, the values its two ends stand for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    colormap: str = "viridis"
    range: tuple[float, float] | None = None  # None: the variable's range at the first step

    @model_validator(mode="after")
    def _range_ok(self) -> "MapStyle":
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"range {list(self.range)} must go from a lower to a higher value")
        return self


class _EdrLayer(BaseModel):
    """What every EDR layer (grid, series, aggregate) declares besides its data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str | None = None
    description: str | None = None
    keywords: tuple[str, ...] = ()
    crs: tuple[str, ...] = ("OGC:CRS84",)

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        return LayerConfig._id_ok(v)

    @field_validator("crs")
    @classmethod
    def _crs_ok(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return LayerConfig._crs_ok(v)


class GridLayerConfig(_EdrLayer):
    """One published grid: an EDR collection (a layer file with ``grid:``)."""

    grid: str
    max_cells: int = Field(default=5_000_000, ge=1, description="values one request may return")
    #: a vector dataset of named places (districts, stations...) served as the EDR
    #: locations of the grid: a point's series, a polygon's cells, a line's path
    locations: str | None = None
    location_name: str | None = None  # its attribute naming a location (default the id)
    styles: dict[str, MapStyle] = Field(default_factory=dict, description="map tile style per variable")


class SeriesLayerConfig(_EdrLayer):
    """A point dataset of observations published as an EDR collection of stations
    (a layer file with ``series:``): each station's series over time."""

    series: str  # the observations dataset
    station: str  # its attribute naming the station
    stations: str | None = None  # a dataset of the stations (positions, and those never observed)
    station_id: str | None = None  # its attribute holding the station key (default its feature id)
    variables: tuple[str, ...] | None = None  # published numeric attributes (default all)
    max_values: int = Field(default=5_000_000, ge=1, description="values one request may return")


class AggregateLayerConfig(_EdrLayer):
    """A vector dataset published as an EDR collection of its aggregate on a regular
    grid (a layer file with ``aggregate:``), computed per request from the cube:
    count, or sum / mean / min / max of a numeric attribute, per cell and time step."""

    aggregate: str  # the vector dataset
    resolution: float = Field(gt=0, description="cell size, in the units of grid_crs")
    grid_crs: str = "EPSG:4545"
    freq: str | None = None  # pandas frequency of the time steps ("1D", "7D", "1h"); None: one step
    agg: Literal["count", "sum", "mean", "min", "max"] = "count"
    variable: str | None = None
    max_cells: int = Field(default=2_000_000, ge=1, description="cells x steps one request may cover")
    #: counts by class of this attribute too (its declared ``enum`` values), one
    #: parameter per class beside the total
    by: str | None = None
    #: cells (and classes) counting fewer features are suppressed (null); the
    #: default for personal data is 10 (:mod:`geoplatform.access.disclosure`)
    min_count: int | None = Field(default=None, ge=2)
    #: who sees the aggregate, if not the dataset's own readers: wider than the
    #: dataset's open level only with small counts suppressed
    open_level: OpenLevel | None = None
    shared_with: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _agg_ok(self) -> "AggregateLayerConfig":
        LayerConfig._crs_ok((self.grid_crs,))
        if self.agg != "count" and not self.variable:
            raise ValueError(f"agg {self.agg!r} needs a variable")
        if self.by and self.agg != "count":
            raise ValueError(f"by {self.by!r} splits counts: it needs agg 'count', not {self.agg!r}")
        if self.shared_with and self.open_level != "shared":
            raise ValueError("shared_with is only for open_level 'shared'")
        return self

    @property
    def parameter(self) -> str:
        """The one parameter of the collection: ``count``, or ``<agg>_<variable>``."""
        return "count" if self.agg == "count" else f"{self.agg}_{self.variable}"


def load_layers(layers_dir: Path, catalog: CityCatalog) -> dict[str, LayerConfig]:
    """Every ``<theme>/<layer>.yaml`` under ``layers_dir``, checked against ``catalog``:
    the dataset exists, the folder is the dataset's theme, published properties are
    in its schema, and layer ids are unique."""
    out: dict[str, LayerConfig] = {}
    where: dict[str, Path] = {}
    for path in sorted(layers_dir.glob("*/*.yaml")):
        raw = _load_yaml(path)
        if isinstance(raw, dict) and ("grid" in raw or "series" in raw or "aggregate" in raw):
            continue  # a grid, series or aggregate layer: load_grid_layers, load_series_layers, load_aggregate_layers
        layer: LayerConfig = _validate(LayerConfig, raw, str(path))
        try:
            spec = catalog.dataset(layer.dataset)
        except KeyError:
            raise CatalogError(f"{path}: layer {layer.id!r} names dataset {layer.dataset!r}, which the "
                               f"catalog does not declare") from None
        theme = path.parent.name
        if spec.theme != theme:
            raise CatalogError(f"{path}: dataset {spec.name!r} has theme {spec.theme!r}; the layer file "
                               f"belongs in layers/{spec.theme}/")
        if layer.properties is not None and spec.schema_ is not None:
            known = {f.name for f in spec.fields}
            unknown = [p for p in layer.properties if p not in known]
            if unknown:
                raise CatalogError(f"{path}: properties {unknown} are not in dataset {spec.name!r} "
                                   f"(it has {sorted(known)})")
        if layer.id in out:
            raise CatalogError(f"{path}: layer id {layer.id!r} is already used by {where[layer.id]}")
        out[layer.id] = layer
        where[layer.id] = path
    return out


def _load_kind(layers_dir: Path, key: str, model: Any, other_ids: Iterable[str]) -> dict[str, Any]:
    """The layer files under ``layers_dir`` with a top-level ``key``, validated by ``model``;
    their ids unique, among ``other_ids`` too."""
    taken = set(other_ids)
    out: dict[str, Any] = {}
    for path in sorted(layers_dir.glob("*/*.yaml")):
        raw = _load_yaml(path)
        if not (isinstance(raw, dict) and key in raw):
            continue
        layer = _validate(model, raw, str(path))
        if layer.id in taken or layer.id in out:
            raise CatalogError(f"{path}: layer id {layer.id!r} is already used")
        out[layer.id] = layer
    return out


def load_grid_layers(layers_dir: Path, vector_ids: Iterable[str] = ()) -> dict[str, GridLayerConfig]:
    """The grid layers (files with ``grid:``) under ``layers_dir``: EDR collections.
    Their ids are unique, among the vector layers' ``vector_ids`` too."""
    return _load_kind(layers_dir, "grid", GridLayerConfig, vector_ids)


def load_series_layers(layers_dir: Path, other_ids: Iterable[str] = ()) -> dict[str, SeriesLayerConfig]:
    """The sensor-series layers (files with ``series:``) under ``layers_dir``: EDR
    collections of stations. Their ids are unique, among ``other_ids`` too."""
    return _load_kind(layers_dir, "series", SeriesLayerConfig, other_ids)


def load_aggregate_layers(layers_dir: Path, other_ids: Iterable[str] = ()) -> dict[str, AggregateLayerConfig]:
    """The aggregate layers (files with ``aggregate:``) under ``layers_dir``: EDR
    collections of a vector dataset aggregated to a grid."""
    return _load_kind(layers_dir, "aggregate", AggregateLayerConfig, other_ids)
