"""QGIS (Debian's python3-qgis, headless) loads layers from the server and counts their features."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.ogc.test_server import server  # noqa: F401  (the running server fixture)

DEBIAN_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("qgis_count.py")


@pytest.mark.parametrize("collection", ["incidents", "water-pipes", "parcels"])
def test_qgis_loads_a_layer_and_counts_its_features(server: str, collection: str,  # noqa: F811
                                                    tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": "", "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("VIRTUAL_ENV", None)
    res = subprocess.run([DEBIAN_PYTHON, str(SCRIPT), server, collection], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    iterated, counted, crs = res.stdout.strip().splitlines()[-1].split()
    matched = httpx.get(f"{server}/collections/{collection}/items", params={"limit": 1}).json()["numberMatched"]
    assert int(iterated) == int(counted) == matched > 0
    assert crs in ("EPSG:4490", "OGC:CRS84", "EPSG:4326")
