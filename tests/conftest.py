"""Shared fixtures: an embedded store, and a real PostgreSQL with PostGIS for the PostGIS backend.

Each PostGIS test gets its own schema in the test database (``GEOPLATFORM_TEST_PG``,
default ``postgresql://postgres@127.0.0.1:5432/geoplatform_test``), which is made if
missing, with the PostGIS extension; the schema is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import geoplatform


@pytest.fixture
def cube(tmp_path: Path) -> Iterator[geoplatform.Cube]:
    """An empty embedded store in the test's temporary folder."""
    c = geoplatform.open_cube(tmp_path / "store")
    yield c
    c.close()


TEST_DB = os.environ.get("GEOPLATFORM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/geoplatform_test")


def _ensure_database(url: str) -> None:
    base, _, name = url.rpartition("/")
    try:
        with psycopg.connect(base + "/postgres", autocommit=True) as con:
            if con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                con.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as exc:
        raise RuntimeError(f"the PostGIS tests need PostgreSQL with PostGIS at {url} (make system-deps "
                           f"installs PostGIS): {exc}") from exc


@pytest.fixture(scope="session")
def pg_url() -> str:
    _ensure_database(TEST_DB)
    return TEST_DB


@pytest.fixture
def pg_schema(pg_url: str) -> Any:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options=-csearch_path%3D{name},public"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"DROP SCHEMA {name} CASCADE")


