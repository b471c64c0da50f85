"""The cube's model: what a dataset is, what a snapshot is, what a query asks.

Nothing here does I/O. Storage backends, the ingest pipeline and the OGC
adapters all speak these types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field as PydField, field_validator, model_validator

from geoplatform.errors import InvalidParameterValue

FieldType = Literal["string", "integer", "number", "boolean", "datetime", "date"]
GeometryType = Literal[
    "Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
    "GeometryCollection", "Geometry",
]
OpenLevel = Literal["public", "shared", "restricted"]
#: What personal data a dataset holds: records of natural persons (residents, by
#: residence address) or of legal entities (companies, by registered address).
Personal = Literal["natural_person", "legal_entity"]
TimePartition = Literal["none", "year", "month", "week", "day"]
UpdateFrequency = Literal[
    "continual", "daily", "weekly", "fortnightly", "monthly", "quarterly", "biannually",
    "annually", "asNeeded", "irregular", "notPlanned", "unknown",
]

#: Columns every stored record has; a dataset's own attributes may not use them.
RESERVED_COLUMNS = frozenset(
    {"fid", "version", "valid_from", "valid_to", "geometry", "bbox", "_hash", "_hkey",
     "record_from", "record_to", "dataset"}
)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Field(BaseModel):
    """One declared attribute of a dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: FieldType
    required: bool = False
    description: str | None = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _FIELD_NAME.match(v):
            raise ValueError(f"field name {v!r} must match {_FIELD_NAME.pattern}")
        if v in RESERVED_COLUMNS:
            raise ValueError(f"field name {v!r} is reserved by the cube")
        return v


class CsvOptions(BaseModel):
    """How a CSV source carries its geometry: x/y columns or a WKT column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: str | None = None
    y: str | None = None
    wkt: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "CsvOptions":
        if bool(self.wkt) == bool(self.x and self.y):
            raise ValueError("csv needs either x and y columns or a wkt column")
        return self


class CatalogEntry(BaseModel):
    """What every dataset of the catalog, vector or grid, declares about itself."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    title: str | None = None
    description: str | None = None
    department: str | None = None
    theme: str | None = None
    open_level: OpenLevel = "public"
    shared_with: tuple[str, ...] = ()
    #: Personal data: restricted, never read row by row but by its own department;
    #: opened only as aggregates with a minimum count per cell (aggregate layers).
    personal: Personal | None = None
    licence: str | None = None
    source: str | None = None
    generated: bool = False
    keywords: tuple[str, ...] = ()
    update_frequency: UpdateFrequency = "unknown"

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"dataset name {v!r} must match {_NAME.pattern}")
        return v

    @model_validator(mode="after")
    def _shared(self) -> "CatalogEntry":
        if self.shared_with and self.open_level != "shared":
            raise ValueError("shared_with is only for open_level 'shared'")
        if self.personal and self.open_level != "restricted":
            raise ValueError(f"dataset {self.name!r} holds personal data ({self.personal}): its open_level must be "
                             f"'restricted', not {self.open_level!r}; open it as an aggregate layer (min_count)")
        if self.personal and not self.department:
            raise ValueError(f"dataset {self.name!r} holds personal data ({self.personal}): it needs an owner "
                             "department")
        return self


class DatasetSpec(CatalogEntry):
    """A dataset's declaration: catalog metadata, schema and storage choices.

    >>> spec = DatasetSpec(name="incidents", geometry_type="Point",
    ...                    valid_from="reported_at", instant=True)
    >>> spec.storage_crs
    'EPSG:4490'
    """

    storage_crs: str = "EPSG:4490"
    geometry_type: GeometryType | None = None  # None: inferred at the first ingest
    fid: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    instant: bool = False
    time_zone: str = "UTC"
    time_partition: TimePartition = "none"
    #: Also keep every record in files sorted by space alone, across the time
    #: partitions (GeoMesa's z2 index beside its z3): a query without a time
    #: filter, such as a tile or a bbox-only page, then reads a few row groups
    #: instead of some in every partition. Doubles the stored bytes and the
    #: write work; set when the dataset is created.
    space_copy: bool = False
    schema_: tuple[Field, ...] | None = PydField(default=None, alias="schema")
    extra_columns: Literal["error", "drop"] = "error"
    # Where a catalog declares the source file (sample city, scheduled loads).
    file: str | None = None
    layer: str | None = None
    source_crs: str | None = None
    csv: CsvOptions | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "DatasetSpec":
        if self.instant and self.valid_to:
            raise ValueError("an instant dataset has valid_from only (valid_to is set to it)")
        if self.valid_to and not self.valid_from:
            raise ValueError("valid_to needs valid_from")
        if self.time_partition != "none" and not self.valid_from:
            raise ValueError(f"time_partition {self.time_partition!r} needs a valid_from column")
        if self.space_copy and self.time_partition == "none":
            raise ValueError("space_copy needs a time_partition: without one the files are already "
                             "sorted by space alone")
        if self.schema_ is not None:
            names = [f.name for f in self.schema_]
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"schema declares {sorted(dup)} more than once")
        return self

    @property
    def fields(self) -> tuple[Field, ...]:
        """The declared attributes (empty until a schema is declared or inferred)."""
        return self.schema_ or ()

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def with_schema(self, fields: tuple[Field, ...]) -> "DatasetSpec":
        return self.model_copy(update={"schema_": fields})

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


@dataclass(frozen=True)
class Snapshot:
    """One commit of one dataset: the unit of record time."""

    id: int
    dataset: str
    parent_id: int | None
    committed_at: datetime
    operation: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimeInterval:
    """A closed interval on valid time; ``None`` ends are open.

    An instant is ``TimeInterval(t, t)``.
    """

    start: datetime | None
    end: datetime | None

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t is not None and t.tzinfo is None:
                raise InvalidParameterValue(f"time {t.isoformat()} has no time zone")
        if self.start and self.end and self.start > self.end:
            raise InvalidParameterValue(
                f"interval start {self.start.isoformat()} is after its end {self.end.isoformat()}"
            )

    @property
    def is_instant(self) -> bool:
        return self.start is not None and self.start == self.end


SpatialPredicate = Literal["intersects", "within", "contains", "dwithin"]
Output = Literal["geodataframe", "arrow"]


@dataclass(frozen=True)
class SortKey:
    name: str
    ascending: bool = True


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
