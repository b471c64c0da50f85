"""The anchors that the cube is measured against, each a small function.

* PostGIS (GiST on geometry, btree on time): rows fetched to the client with
  psycopg in binary (geometry as EWKB bytes), and separately ``count(*)``.
* DuckDB over the unsorted Parquet file, filtering numeric x / y / time
  columns, fetched as Arrow (the spatial extension cannot be downloaded here).
* geopandas ``read_parquet(bbox=...)`` on the unsorted GeoParquet (1.1 bbox
  covering), then a pandas time filter: one call per query, as a user would.
* ``ogr2ogr`` into PostGIS for the ingest anchor (FlatGeobuf source, because
  the GDAL 3.6 here has no Parquet driver).

Everything talks to 127.0.0.1 only, and every subprocess has a timeout.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_DB = "geoplatform_bench"
SRID = 4490

Bbox = tuple[float, float, float, float]
Window = tuple[dt.datetime, dt.datetime]


# --------------------------------------------------------------------------- PostGIS

def pg_dsn(db: str = PG_DB) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={db} connect_timeout=10"


def pg_connect(db: str = PG_DB):
    import psycopg

    # prepare_threshold=None: always a fresh (custom) plan, so the planner sees
    # the real box and window of each query instead of a cached generic plan.
    conn = psycopg.connect(pg_dsn(db), autocommit=True, prepare_threshold=None)
    conn.execute("SET jit = off")  # JIT compile time would dominate sub-second queries
    conn.execute("SET statement_timeout = '600s'")
    return conn


def pg_create_db() -> None:
    """Create the benchmark database (if missing) with PostGIS in it."""
    import psycopg

    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            c.execute(f'CREATE DATABASE "{PG_DB}"')
    with pg_connect() as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        c.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text)")


def pg_drop_db() -> None:
    import psycopg

    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def pg_versions() -> dict[str, str]:
    with pg_connect() as c:
        return {
            "postgresql": c.execute("SHOW server_version").fetchone()[0],
            "postgis": c.execute("SELECT postgis_lib_version()").fetchone()[0],
            "postgis_full": c.execute("SELECT postgis_full_version()").fetchone()[0],
        }


def pg_load_points(xy_parquet: Path, table: str = "obs", log=print) -> dict:
    """Load the unsorted point rows into PostGIS (cached: skipped if the same file is loaded).

    DuckDB writes the rows as CSV, COPY loads them into an unlogged staging
    table, and one INSERT ... SELECT makes ``geometry(Point, 4490)`` from x / y.
    Then a GiST index on geom, a btree on observed_at, VACUUM ANALYZE.
    """
    import duckdb

    key = f"{xy_parquet.name} {xy_parquet.stat().st_size}"
    with pg_connect() as c:
        row = c.execute("SELECT value FROM bench_meta WHERE key = %s", (table,)).fetchone()
        if row and row[0] == key:
            n = c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            log(f"  PostGIS table {table} already holds {xy_parquet.name} ({n:,} rows)")
            return {"cached": True, "rows": n}
    t0 = time.perf_counter()
    csv = xy_parquet.with_suffix(".csv")
    with duckdb.connect() as d:
        d.execute(
            f"COPY (SELECT sensor_id, observed_at, value, quality, x, y "
            f"FROM read_parquet('{xy_parquet}')) TO '{csv}' (HEADER false, DELIMITER ',')"
        )
    t_csv = time.perf_counter() - t0
    with pg_connect() as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"DROP TABLE IF EXISTS {table}_staging")
        c.execute(
            f"CREATE UNLOGGED TABLE {table}_staging (sensor_id int4, observed_at timestamptz, "
            f"value float4, quality text, x float8, y float8)"
        )
        t1 = time.perf_counter()
        with c.cursor() as cur, cur.copy(
            f"COPY {table}_staging FROM STDIN WITH (FORMAT csv)"
        ) as cp, open(csv, "rb") as f:
            while block := f.read(8 << 20):
                cp.write(block)
        c.execute(
            f"CREATE TABLE {table} (sensor_id int4, observed_at timestamptz, value float4, "
            f"quality text, geom geometry(Point, {SRID}))"
        )
        c.execute(
            f"INSERT INTO {table} SELECT sensor_id, observed_at, value, quality, "
            f"ST_SetSRID(ST_MakePoint(x, y), {SRID}) FROM {table}_staging"
        )
        c.execute(f"DROP TABLE {table}_staging")
        t_copy = time.perf_counter() - t1
        t2 = time.perf_counter()
        c.execute("SET maintenance_work_mem = '1GB'")
        c.execute(f"CREATE INDEX {table}_geom_gist ON {table} USING gist (geom)")
        c.execute(f"CREATE INDEX {table}_t_btree ON {table} (observed_at)")
        c.execute(f"VACUUM ANALYZE {table}")
        c.execute("CHECKPOINT")  # so that the load's dirty pages are not written during the queries
        t_index = time.perf_counter() - t2
        n = c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        c.execute(
            "INSERT INTO bench_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (table, key),
        )
    csv.unlink(missing_ok=True)
    out = {"cached": False, "rows": n, "csv_s": t_csv, "copy_s": t_copy, "index_s": t_index}
    log(f"  PostGIS: loaded {n:,} rows (csv {t_csv:.1f}s, copy+insert {t_copy:.1f}s, "
        f"indexes+analyze {t_index:.1f}s)")
    return out


_PG_WHERE = (
    "ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4490)) "
    "AND observed_at BETWEEN %s AND %s"
)


def pg_fetch(conn, bbox: Bbox, window: Window, table: str = "obs") -> int:
    """All columns to the client, binary protocol (geometry arrives as EWKB bytes)."""
    cur = conn.cursor(binary=True)
    cur.execute(
        f"SELECT sensor_id, observed_at, value, quality, geom FROM {table} WHERE {_PG_WHERE}",
        (*bbox, *window),
    )
    rows = cur.fetchall()
    cur.close()
    return len(rows)


def pg_count(conn, bbox: Bbox, window: Window, table: str = "obs") -> int:
    return conn.execute(f"SELECT count(*) FROM {table} WHERE {_PG_WHERE}", (*bbox, *window)).fetchone()[0]


# --------------------------------------------------------------------------- DuckDB

def duckdb_connect():
    import duckdb

    return duckdb.connect(config={"threads": os.cpu_count() or 1})


def duckdb_query(con, xy_parquet: Path, bbox: Bbox, window: Window):
    """All columns of the unsorted file, filtered on numeric x, y and time, as an Arrow table."""
    minx, miny, maxx, maxy = bbox
    return con.sql(
        f"SELECT sensor_id, observed_at, value, quality, geometry FROM read_parquet('{xy_parquet}') "
        "WHERE x BETWEEN ? AND ? AND y BETWEEN ? AND ? AND observed_at BETWEEN ? AND ?",
        params=[minx, maxx, miny, maxy, window[0], window[1]],
    ).to_arrow_table()


# --------------------------------------------------------------------------- geopandas

def geopandas_query(geoparquet: Path, bbox: Bbox, window: Window):
    """read_parquet with bbox= (uses the GeoParquet 1.1 covering), then a time filter."""
    import geopandas as gpd
    import pandas as pd

    gdf = gpd.read_parquet(geoparquet, bbox=bbox)
    t = gdf["observed_at"]
    keep = (t >= pd.Timestamp(window[0])) & (t <= pd.Timestamp(window[1]))
    out = gdf[keep.to_numpy()]
    # bbox= keeps rows whose covering box intersects; for points that is exact
    return out


# --------------------------------------------------------------------------- ogr2ogr

def gdal_version() -> str:
    exe = shutil.which("ogr2ogr") or "/usr/bin/ogr2ogr"
    return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()


def ogr2ogr_has_parquet() -> bool:
    exe = shutil.which("ogr2ogr") or "/usr/bin/ogr2ogr"
    out = subprocess.run([exe, "--formats"], capture_output=True, text=True, timeout=30).stdout
    return any(line.strip().startswith("Parquet") for line in out.splitlines())


def ogr2ogr_ingest(src: Path, table: str, timeout: float = 900) -> dict:
    """``ogr2ogr`` src into PostGIS with COPY and a GiST index; returns seconds and rows."""
    exe = shutil.which("ogr2ogr") or "/usr/bin/ogr2ogr"
    with pg_connect() as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")
    cmd = [
        exe, "-f", "PostgreSQL",
        f"PG:host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_DB}",
        str(src), "-nln", table, "-overwrite",
        "-lco", "SPATIAL_INDEX=GIST", "-lco", "GEOMETRY_NAME=geom",
        "--config", "PG_USE_COPY", "YES",
    ]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    secs = time.perf_counter() - t
    if p.returncode:
        raise RuntimeError(f"ogr2ogr failed ({p.returncode}): {p.stderr[-2000:]}")
    with pg_connect() as c:
        n = c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        has_gist = bool(c.execute(
            "SELECT 1 FROM pg_indexes WHERE tablename = %s AND indexdef ILIKE %s", (table, "%gist%")
        ).fetchone())
        c.execute(f"DROP TABLE IF EXISTS {table}")
    return {"seconds": secs, "rows": n, "gist": has_gist, "command": " ".join(cmd)}
