"""A dataset's (or a grid's) catalog record: what a steward or an analyst sees of it.

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
        **_declared(spec),
        "kind": "vector",
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
        record["snapshots"] = _snapshots(cube.snapshots(name))
    return record


def _declared(spec: Any) -> dict[str, Any]:
    """What every catalog entry, vector or grid, declares about itself."""
    return {
        "name": spec.name,
        "title": spec.title or spec.name,
        "description": spec.description,
        "department": spec.department,
        "theme": spec.theme,
        "open_level": spec.open_level,
        "shared_with": list(spec.shared_with),
        "personal": spec.personal,
        "licence": spec.licence,
        "source": spec.source,
        "generated": spec.generated,
        "keywords": list(spec.keywords),
        "update_frequency": spec.update_frequency,
    }


def _snapshots(snaps: Any) -> list[dict[str, Any]]:
    return [{"id": s.id, "committed_at": s.committed_at.isoformat(), "operation": s.operation, **s.summary}
            for s in snaps]


def describe_grid(cube: "Cube", name: str, *, history: bool = True) -> dict[str, Any]:
    """The catalog record of one grid, in the same shape as a dataset's: its cells
    and variables instead of a schema and rows."""
    g = cube.backend.grids()
    row, _, steps = g.resolve(name)
    spec, geom = row.spec, row.geometry
    bbox = bbox84 = None
    if geom is not None:
        bbox = list(geom.bounds)
        xs, ys = transform_xy(np.array([bbox[0], bbox[2], bbox[0], bbox[2]]),
                              np.array([bbox[1], bbox[1], bbox[3], bbox[3]]), geom.crs, "OGC:CRS84")
        bbox84 = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]
    t = g.times_us(row.id, steps) if steps else np.zeros(0, np.int64)
    crs = resolve_crs(geom.crs).id if geom is not None else spec.crs
    record: dict[str, Any] = {
        **_declared(spec),
        "kind": "grid",
        "storage_crs": crs,
        "geometry_type": None,
        "grid": None if geom is None else {"width": geom.width, "height": geom.height, "steps": int(steps),
                                           "cell_size": [abs(geom.dx), abs(geom.dy)]},
        "variables": [v.model_dump(exclude_none=True) for v in spec.variables or ()],
        "rows": None,
        "extent": {
            "spatial": {"bbox": bbox, "crs": crs, "bbox_crs84": bbox84},
            "temporal": [from_us(int(t[0])).isoformat() if len(t) else None,
                         from_us(int(t[-1])).isoformat() if len(t) else None],
        },
    }
    if history:
        record["snapshots"] = _snapshots(g.snapshots(name))
    return record
