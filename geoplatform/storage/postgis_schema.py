"""The PostGIS store's tables, declared with SQLAlchemy 2 and GeoAlchemy2.

The backend (:mod:`geoplatform.storage.postgis`) creates its tables from
these declarations and moves rows with ``COPY``; analysts and other services
can use the same declarations to query a store with SQLAlchemy and
GeoAlchemy2's spatial functions::

    from sqlalchemy import create_engine, func, select
    from geoplatform.storage.postgis_schema import reflect_dataset

    engine = create_engine("postgresql+psycopg://.../city")
    pipes = reflect_dataset(engine, "water_pipes")
    current = select(pipes.c.fid, pipes.c.geometry).where(pipes.c.record_to.is_(None)).where(
        func.ST_DWithin(pipes.c.geometry, func.ST_SetSRID(func.ST_MakePoint(108.95, 34.27), 4490), 0.001))

A dataset's table holds every version of every feature: the current ones
have ``record_to`` null.
"""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer, MetaData,
                        Table, Text, func, select)
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

_TYPES = {"string": Text, "integer": BigInteger, "number": Float(precision=53), "boolean": Boolean,
          "datetime": DateTime(timezone=True), "date": Date}


def data_table_name(dataset_id: int) -> str:
    """The name of the table of the dataset numbered ``dataset_id`` in ``gp_datasets``."""
    return f"gp_data_{dataset_id}"


def catalog_tables(metadata: MetaData | None = None) -> tuple[Table, Table]:
    """``gp_datasets`` (a row per dataset: its spec, its data table's number, the
    next store-assigned id) and ``gp_snapshots`` (the snapshot log of every dataset)."""
    metadata = metadata if metadata is not None else MetaData()
    datasets = Table(
        "gp_datasets", metadata,
        Column("id", Integer, primary_key=True),
        Column("name", Text, nullable=False, unique=True),
        Column("spec", postgresql.JSONB, nullable=False),
        Column("next_fid", BigInteger, nullable=False, server_default="1"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    snapshots = Table(
        "gp_snapshots", metadata,
        Column("id", BigInteger, primary_key=True),
        Column("dataset_id", Integer, ForeignKey("gp_datasets.id", ondelete="CASCADE"), nullable=False),
        Column("parent_id", BigInteger),
        Column("committed_at", DateTime(timezone=True), nullable=False),
        Column("committed_us", BigInteger, nullable=False),
        Column("operation", Text, nullable=False),
        Column("summary", postgresql.JSONB, nullable=False),
        Column("source_hash", Text),
        Index("gp_snapshots_dataset", "dataset_id", "id"),
    )
    return datasets, snapshots


def data_table(name: str, fields: list[tuple[str, str]], srid: int, fid_is_text: bool,
               metadata: MetaData | None = None) -> Table:
    """A dataset's table ``name``: its attributes ``fields`` (name, field type), the
    geometry in ``srid`` with a GiST index, its bbox, valid and record times."""
    metadata = metadata if metadata is not None else MetaData()
    return Table(
        name, metadata,
        Column("_row", BigInteger, primary_key=True),
        Column("fid", Text if fid_is_text else BigInteger, nullable=False),
        Column("version", Integer, nullable=False),
        Column("valid_from", DateTime(timezone=True)),
        Column("valid_to", DateTime(timezone=True)),
        *(Column(f, _TYPES[t]) for f, t in fields),
        Column("geometry", Geometry("GEOMETRY", srid=srid, spatial_index=False)),
        *(Column(c, Float(precision=53)) for c in ("bbox_xmin", "bbox_ymin", "bbox_xmax", "bbox_ymax")),
        Column("_hash", BigInteger),
        Column("record_from", BigInteger, nullable=False),
        Column("record_to", BigInteger),
        Index(f"{name}_geom", "geometry", postgresql_using="gist"),
        Index(f"{name}_fid", "fid", "version"),
        Index(f"{name}_time", "valid_from", "valid_to"),
        Index(f"{name}_record", "record_from", "record_to"),
    )


def ddl(table: Table, if_not_exists: bool = False) -> list[str]:
    """The PostgreSQL statements that create ``table`` and its indexes."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    out = [str(CreateTable(table, if_not_exists=if_not_exists).compile(dialect=dialect))]
    out += [str(CreateIndex(i, if_not_exists=if_not_exists).compile(dialect=dialect)) for i in table.indexes]
    return out


def reflect_dataset(engine: Any, name: str, schema: str | None = None) -> Table:
    """The table of dataset ``name`` of the store at ``engine``, reflected with its
    geometry column typed by GeoAlchemy2."""
    datasets, _ = catalog_tables()
    with engine.connect() as con:
        ds_id = con.execute(select(datasets.c.id).where(datasets.c.name == name)).scalar()
    if ds_id is None:
        raise KeyError(f"no dataset named {name!r}")
    # importing geoalchemy2 (above) registered the geometry type that reflection gives the column
    return Table(data_table_name(ds_id), MetaData(), autoload_with=engine, schema=schema)
