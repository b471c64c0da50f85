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


def test_instant_window_is_one_range_on_the_time_index(pg_schema: str) -> None:
    """A closed window on an instant dataset is one range on ``valid_from`` (the
    time index holds both ends in one index condition, so its bitmap can be ANDed
    with the GiST one), and selects the same features as before."""
    from geoplatform.cube.query import plan_query

    cube = open_cube(pg_schema, settings=Settings(progress=False), backend="postgis")
    cube.create_dataset(spec(POINTS))
    gdf = points_frame(3000, seed=11, days=60)
    cube.ingest("pts", gdf)
    t = gdf["t"].sort_values().reset_index(drop=True)
    a, b = t[1000].to_pydatetime(), t[1400].to_pydatetime()
    be = cube.backend
    ds_id, ds_spec = be._dataset("pts")
    where, params = be._where(plan_query(be, "pts", datetime=(a, b)).scan_request(with_geometry=False), ds_spec)
    table = be._table(ds_id)

    def index_conds(node: dict) -> list[str]:
        here = [node["Index Cond"]] if node.get("Index Name") == f"{table}_time" else []
        return here + [c for child in node.get("Plans", []) for c in index_conds(child)]

    with psycopg.connect(pg_schema, autocommit=True) as con:
        con.execute(f"ANALYZE {table}")
        with con.transaction():
            con.execute("SET LOCAL enable_seqscan = off")
            plan = con.execute(f"EXPLAIN (FORMAT JSON) SELECT fid FROM {table} WHERE {where}", params).fetchone()[0]
    conds = index_conds(plan[0]["Plan"])
    assert any(">=" in c and "<=" in c for c in conds), conds
    got = set(cube.query("pts", datetime=(a, b), output="arrow").column("fid").to_pylist())
    assert got == set(gdf["id"][((gdf["t"] >= a) & (gdf["t"] <= b)).to_numpy()]) and len(got) >= 401
    cube.close()


def test_sqlalchemy_and_geoalchemy2_read_a_dataset_as_the_cube_does(pg_schema: str) -> None:
    """The store's tables are declared with SQLAlchemy and GeoAlchemy2
    (geoplatform.storage.postgis_schema): an analyst reflects a dataset's table and
    asks it with GeoAlchemy2's spatial functions, and gets the cube's answer."""
    from geoalchemy2 import Geometry
    from sqlalchemy import create_engine, func, select

    from geoplatform.storage.postgis_schema import reflect_dataset

    cube = open_cube(pg_schema, settings=Settings(progress=False), backend="postgis")
    cube.create_dataset(spec(POINTS))
    cube.ingest("pts", points_frame(200, seed=3))
    cube.delete_features("pts", list(cube.query("pts", output="arrow").column("fid").to_pylist()[:20]))
    box = (116.2, 39.7, 116.6, 40.1)
    want = sorted(cube.query("pts", bbox=box, output="arrow").column("fid").to_pylist())
    engine = create_engine(pg_schema.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        pts = reflect_dataset(engine, "pts")
        assert isinstance(pts.c.geometry.type, Geometry) and pts.c.geometry.type.srid == 4490
        q = (select(pts.c.fid).where(pts.c.record_to.is_(None))
             .where(func.ST_Intersects(pts.c.geometry, func.ST_MakeEnvelope(*box, 4490))))
        with engine.connect() as con:
            got = sorted(r[0] for r in con.execute(q))
        assert got == want and 0 < len(got) < 180
        with pytest.raises(KeyError, match="no dataset named 'nope'"):
            reflect_dataset(engine, "nope")
    finally:
        engine.dispose()
        cube.close()


def test_counts_of_points_are_counted_in_postgresql(pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A count of points by box and time is a count(*) in PostgreSQL (no row fetched),
    with the same answer as the rows; a count with a filter still scans."""
    from geoplatform.storage.postgis import PostGISBackend

    cube = open_cube(pg_schema, settings=Settings(progress=False), backend="postgis")
    cube.create_dataset(spec(POINTS))
    cube.ingest("pts", points_frame(500, seed=4))
    cube.delete_features("pts", cube.query("pts", output="arrow").column("fid").to_pylist()[:50])
    asks = [{}, {"bbox": (116.2, 39.7, 116.6, 40.1)}, {"datetime": "2025-02-01T00:00:00Z/2025-04-30T23:59:59Z"},
            {"bbox": (116.2, 39.7, 116.6, 40.1), "datetime": "2025-02-01T00:00:00Z/.."}, {"as_of": 2}]
    want = [len(cube.query("pts", output="arrow", **a)) for a in asks]
    scans: list[str] = []
    real = PostGISBackend.scan
    monkeypatch.setattr(PostGISBackend, "scan", lambda self, name, req: scans.append(name) or real(self, name, req))
    assert [cube.count("pts", **a) for a in asks] == want and len(set(want)) > 2
    assert scans == []
    filtered = cube.count("pts", filter="kind = 'a'")
    assert scans == ["pts"] and 0 < filtered < want[0]
    cube.close()
