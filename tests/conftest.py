"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import geoplatform


@pytest.fixture
def cube(tmp_path: Path) -> Iterator[geoplatform.Cube]:
    """An empty embedded store in the test's temporary folder."""
    c = geoplatform.open_cube(tmp_path / "store")
    yield c
    c.close()
