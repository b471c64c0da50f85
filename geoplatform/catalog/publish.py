"""Publishing a declared catalog into a store: create what is missing, ingest
each dataset's declared file. Running it again changes nothing (re-ingesting
an unchanged file is a no-op), so it is safe to schedule."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoplatform.catalog.models import CityCatalog
from geoplatform.errors import CatalogError

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube


def publish(cube: "Cube", catalog: CityCatalog, source_dir: Path, *, progress: bool | None = None) -> list[Any]:
    """Create and load every dataset and grid of ``catalog`` whose ``file`` is in ``source_dir``."""
    reports = []
    for spec in catalog.datasets:
        if spec.file is None:
            continue
        path = source_dir / spec.file
        if not path.exists():
            raise CatalogError(f"dataset {spec.name}: declared file {path} does not exist")
        if spec.name not in cube:
            cube.create_dataset(spec)
        reports.append(cube.ingest(spec.name, path, mode="replace", progress=progress))
    present = {g.name for g in cube.grids()}
    for grid in catalog.grids:
        if grid.file is None:
            continue
        path = source_dir / grid.file
        if not path.exists():
            raise CatalogError(f"grid {grid.name}: declared file {path} does not exist")
        if grid.name not in present:
            cube.create_grid(grid)
        reports.append(cube.ingest_grid(grid.name, path, only_new=True))  # a rebuilt file adds only new days
    return reports
