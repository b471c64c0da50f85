"""The PostGIS backend: the storage contract on a real PostgreSQL with PostGIS
(each test in a schema of its own: see ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from geoplatform.cube.cube import Cube, open_cube
from geoplatform.settings import Settings
from tests.storage.contract import POINTS, StorageContract, points_frame, spec


class TestPostGIS(StorageContract):
    url: str = ""

    @pytest.fixture(autouse=True)
    def _schema(self, pg_schema: str) -> None:
        self.url = pg_schema

    def make_cube(self, tmp_path: Path, settings: Settings | None = None) -> Cube:
        return open_cube(self.url, settings=settings or self.settings, backend="postgis")


def test_tables_are_postgis_tables_other_tools_read(pg_schema: str, tmp_path: Path) -> None:
    """The data table holds a geometry column in the storage CRS's SRID with a GiST
    index, and timestamptz valid times: QGIS, GDAL and tipg read it as it is."""
    cube = open_cube(pg_schema, settings=Settings(progress=False), backend="postgis")
    cube.create_dataset(spec(POINTS))
    cube.ingest("pts", points_frame(100, seed=1))
    with psycopg.connect(pg_schema, autocommit=True) as con:
        table = con.execute("SELECT 'gp_data_' || id FROM gp_datasets WHERE name = 'pts'").fetchone()[0]
        srid, gtype = con.execute("SELECT srid, type FROM geometry_columns WHERE f_table_name = %s",
                                  (table,)).fetchone()
        assert (srid, gtype) == (4490, "GEOMETRY")
        idx = con.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,)).fetchall()
        assert any("USING gist (geometry)" in r[0] for r in idx)
        n, ok = con.execute(f"SELECT count(*), bool_and(ST_IsValid(geometry)) FROM {table}"
                            " WHERE record_to IS NULL").fetchone()
        assert (n, ok) == (100, True)
        kind = con.execute("SELECT data_type FROM information_schema.columns WHERE table_name = %s"
                           " AND column_name = 'valid_from'", (table,)).fetchone()[0]
        assert kind == "timestamp with time zone"
    got = cube.query("pts", output="arrow")
    assert isinstance(got, pa.Table) and got.num_rows == 100
    cube.close()
