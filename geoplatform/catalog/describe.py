"""A dataset's catalog record: what a steward or an analyst sees of it.

Declared metadata (title, department, licence...) comes from the spec;
extent, row count and history are computed from the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from geoplatform.crs import resolve_crs, transform_xy
from geoplatform.cube.times import from_us

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube


def describe(cube: "Cube", name: str, *, history: bool = True) -> dict[str, Any]:
    """The catalog record of one dataset as plain JSON-able data."""
    spec = cube.dataset(name)
    stats = cube.stats(name)
    extent_crs84 = None
    if stats.extent is not None:
        x0, y0, x1, y1 = stats.extent
        xs, ys = transform_xy(np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]), spec.storage_crs, "OGC:CRS84")
        extent_crs84 = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]
    record: dict[str, Any] = {
        "name": spec.name,
        "title": spec.title or spec.name,
        "description": spec.description,
        "department": spec.department,
        "theme": spec.theme,
        "open_level": spec.open_level,
        "shared_with": list(spec.shared_with),
        "licence": spec.licence,
        "source": spec.source,
        "generated": spec.generated,
        "keywords": list(spec.keywords),
        "update_frequency": spec.update_frequency,
        "storage_crs": resolve_crs(spec.storage_crs).id,
        "geometry_type": spec.geometry_type,
        "fid": spec.fid or "(assigned by the store)",
        "valid_time": {"from": spec.valid_from, "to": spec.valid_to, "instant": spec.instant,
                       "time_zone": spec.time_zone},
        "schema": [f.model_dump(exclude_none=True) for f in spec.fields],
        "rows": stats.rows,
        "extent": {
            "spatial": {"bbox": list(stats.extent) if stats.extent else None, "crs": resolve_crs(spec.storage_crs).id,
                        "bbox_crs84": extent_crs84},
            "temporal": [None if stats.t_min is None else from_us(stats.t_min).isoformat(),
                         None if stats.t_max is None else from_us(stats.t_max).isoformat()],
        },
        "files": stats.files,
        "bytes": stats.bytes,
    }
    if history:
        record["snapshots"] = [
            {"id": s.id, "committed_at": s.committed_at.isoformat(), "operation": s.operation, **s.summary}
            for s in cube.snapshots(name)
        ]
    return record
