"""Planning and finishing a query over one dataset.

The backend does what it does fastest (pruning by bbox and time, the exact
bbox/time test, the attribute filter as an Arrow expression); this module
does the rest: exact spatial predicates, the residual of a CQL2 filter,
sorting, paging and the output type.
"""

from __future__ import annotations

import functools

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import shapely
from shapely.geometry.base import BaseGeometry

from geoplatform.crs import resolve_crs, transform_geometries, transform_xy
from geoplatform.cube.backend import ScanRequest, StorageBackend
from geoplatform.cube.model import DatasetSpec, SortKey, SpatialPredicate, TimeInterval
from geoplatform.cube.times import interval_us, parse_instant, parse_interval
from geoplatform.errors import InvalidParameterValue, SnapshotNotFound

_PREDICATES = ("intersects", "within", "contains", "dwithin")
_SNAPSHOT_ID = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes '³'
_SYSTEM_SORTABLE = ("fid", "version", "valid_from", "valid_to", "record_from")
BBOX_PATHS = [("bbox", "xmin"), ("bbox", "ymin"), ("bbox", "xmax"), ("bbox", "ymax")]


@dataclass(frozen=True)
class QueryPlan:
    """A query resolved against one dataset's spec and snapshot."""

    spec: DatasetSpec
    snapshot: int
    bbox: tuple[float, float, float, float] | None
    geometry: BaseGeometry | None
    predicate: SpatialPredicate
    distance: float | None
    interval: TimeInterval | None
    compiled: Any | None
    properties: tuple[str, ...] | None
    sortby: tuple[SortKey, ...]
    limit: int | None
    offset: int
    #: The box the backend prunes and pre-filters with: the narrowest of the
    #: boxes every match must meet (the bbox, the geometry's, the filter's).
    prune_bbox: tuple[float, float, float, float] | None = None

    def _filter_columns(self) -> tuple[str, ...]:
        """The stored columns the pushed-down filter reads (its spatial pre-filter reads the bbox)."""
        assert self.compiled is not None
        cols = set(self.compiled.properties)
        if self.compiled.uses_geometry or self.compiled.spatial_bbox is not None:
            cols.add("bbox")
        return tuple(sorted(cols))

    def scan_request(self, *, with_geometry: bool) -> ScanRequest:
        t_min, t_max = interval_us(self.interval)
        columns = None
        if self.properties is not None:
            cols = set(self.properties)
            if self.compiled is not None:
                cols |= set(self.compiled.properties)
            cols |= {k.name for k in self.sortby}
            columns = tuple(sorted(cols))
        return ScanRequest(
            snapshot=self.snapshot, bbox=self.prune_bbox, t_min=t_min, t_max=t_max, columns=columns,
            arrow_filter=None if self.compiled is None else self.compiled.arrow,
            filter_columns=None if self.compiled is None else self._filter_columns(),
            equals=None if self.compiled is None else self.compiled.equals,
            ranges=() if self.compiled is None else tuple((c, lo, hi) for c, (lo, hi)
                                                          in sorted(self.compiled.ranges.items())),
            with_geometry=with_geometry,
        )


def resolve_snapshot(backend: StorageBackend, name: str, as_of: int | str | datetime | None) -> int:
    """``as_of`` as a snapshot id of the dataset: a snapshot id, or the last
    snapshot committed at or before a time; ``None`` is the head."""
    if as_of is None:
        return backend.head(name)
    if isinstance(as_of, str) and _SNAPSHOT_ID.fullmatch(as_of):  # no strip(): it also takes '\x1e'
        as_of = int(as_of)
    if isinstance(as_of, (int, np.integer)) and not isinstance(as_of, bool):
        if not 0 < int(as_of) < 2**63:
            raise SnapshotNotFound(f"dataset {name!r} has no snapshot {as_of}", dataset=name)
        return backend.check_snapshot(name, int(as_of))
    return backend.snapshot_at(name, parse_instant(as_of))


def plan_query(
    backend: StorageBackend,
    name: str,
    *,
    bbox: Sequence[float] | None = None,
    bbox_crs: str | None = None,
    geometry: BaseGeometry | str | None = None,
    geometry_crs: str | None = None,
    predicate: SpatialPredicate = "intersects",
    distance: float | None = None,
    datetime: Any = None,
    as_of: Any = None,
    filter: str | dict[str, Any] | None = None,
    filter_lang: str | None = None,
    properties: Sequence[str] | None = None,
    sortby: Sequence[str] | str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> QueryPlan:
    spec = backend.get_spec(name)
    snapshot = resolve_snapshot(backend, name, as_of)
    storage = spec.storage_crs
    if predicate not in _PREDICATES:
        raise InvalidParameterValue(f"predicate {predicate!r} is not one of {', '.join(_PREDICATES)}")
    qbox = None
    if bbox is not None:
        qbox = _bbox_in(bbox, bbox_crs or storage, storage)
    # Each of these boxes must be met by every match; they need not overlap
    # each other where the match does, so they are never intersected.
    boxes = [qbox] if qbox is not None else []
    geom = None
    if geometry is not None:
        geom = shapely.from_wkt(geometry) if isinstance(geometry, str) else geometry
        if not isinstance(geom, BaseGeometry) or geom.is_empty:
            raise InvalidParameterValue("geometry must be a non-empty shapely geometry or WKT")
        if geometry_crs and resolve_crs(geometry_crs) != resolve_crs(storage):
            geom = transform_geometries(np.array([geom]), geometry_crs, storage)[0]
        gb = tuple(geom.bounds)
        if predicate == "dwithin":
            if distance is None or distance < 0:
                raise InvalidParameterValue("dwithin needs a distance in metres, >= 0")
            gb = _expand_metres(gb, distance, storage)
        boxes.append(gb)
    elif predicate != "intersects":
        raise InvalidParameterValue(f"predicate {predicate!r} needs a geometry")
    compiled = None
    if filter is not None and filter != "":
        from geoplatform.cube.cql2 import compile_filter, parse_filter

        ast = parse_filter(filter, filter_lang)  # type: ignore[arg-type]
        compiled = compile_filter(ast, queryables(spec), bbox_columns=BBOX_PATHS,
                                  time_fields={"valid_from": "valid_from", "valid_to": "valid_to"})
        if compiled.spatial_bbox is not None:
            boxes.append(tuple(compiled.spatial_bbox))
    prune = min(boxes, key=lambda b: max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])) if boxes else None
    names = {f.name for f in spec.fields}
    props = None
    if properties is not None:
        unknown = [p for p in properties if p not in names and p not in _SYSTEM_SORTABLE]
        if unknown:
            raise InvalidParameterValue(
                f"unknown properties {unknown} for dataset {name!r}; it has {sorted(names)}")
        props = tuple(p for p in properties if p in names)
    keys = parse_sortby(sortby, names | set(_SYSTEM_SORTABLE), name)
    if limit is not None and limit < 0:
        raise InvalidParameterValue("limit must be >= 0")
    if offset < 0:
        raise InvalidParameterValue("offset must be >= 0")
    return QueryPlan(spec, snapshot, qbox, geom, predicate, distance, parse_interval(datetime), compiled,
                     props, keys, limit, offset, prune)


def queryables(spec: DatasetSpec) -> dict[str, str]:
    q = {f.name: f.type for f in spec.fields}
    q.update({"fid": "integer" if spec.fid is None else "string", "version": "integer",
              "valid_from": "datetime", "valid_to": "datetime", "geometry": "geometry"})
    return q


def parse_sortby(sortby: Sequence[str] | str | None, allowed: set[str], name: str) -> tuple[SortKey, ...]:
    if sortby is None:
        return ()
    items = sortby.split(",") if isinstance(sortby, str) else list(sortby)
    keys = []
    for raw in items:
        item = raw.strip()
        if not item:
            raise InvalidParameterValue("sortby has an empty entry")
        asc = not item.startswith("-")
        prop = item.lstrip("+-").strip()
        if prop not in allowed:
            raise InvalidParameterValue(f"cannot sort dataset {name!r} by unknown property {prop!r}")
        keys.append(SortKey(prop, asc))
    return tuple(keys)


def _bbox_in(bbox: Sequence[float], src: str, dst: str) -> tuple[float, float, float, float]:
    try:
        vals = [float(v) for v in bbox]
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"bbox {bbox!r} must be four numbers") from None
    if len(vals) == 6:  # 3D bbox: drop the heights
        vals = [vals[0], vals[1], vals[3], vals[4]]
    if len(vals) != 4 or not all(np.isfinite(vals)):
        raise InvalidParameterValue(f"bbox {bbox!r} must be four finite numbers")
    x0, y0, x1, y1 = vals
    if y0 > y1:
        raise InvalidParameterValue(f"bbox {bbox!r}: the lower y is above the upper y")
    if resolve_crs(src) == resolve_crs(dst):
        return (x0, y0, x1, y1)
    return _projected_bbox(x0, y0, x1, y1, src, dst)


@functools.lru_cache(maxsize=4096)
def _projected_bbox(x0: float, y0: float, x1: float, y1: float, src: str, dst: str) -> tuple[float, float, float, float]:
    """A bbox in another CRS (cached: a tile converts its box more than once)."""
    # Densify the edges so a projected bbox covers the curved outline.
    t = np.linspace(0, 1, 21)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full(21, x1), x1 - (x1 - x0) * t, np.full(21, x0)])
    ys = np.concatenate([np.full(21, y0), y0 + (y1 - y0) * t, np.full(21, y1), y1 - (y1 - y0) * t])
    tx, ty = transform_xy(xs, ys, src, dst)
    return (float(tx.min()), float(ty.min()), float(tx.max()), float(ty.max()))


def _expand_metres(b: tuple[float, ...], metres: float, crs: str) -> tuple[float, float, float, float]:
    c = resolve_crs(crs)
    if not c.is_geographic:
        return (b[0] - metres, b[1] - metres, b[2] + metres, b[3] + metres)
    lat = max(abs(b[1]), abs(b[3]))
    dy = metres / 110_574.0 * 1.01
    dx = metres / (111_320.0 * max(np.cos(np.radians(min(lat, 89.0))), 1e-6)) * 1.01
    return (b[0] - dx, b[1] - dy, b[2] + dx, b[3] + dy)


def finish(plan: QueryPlan, table: pa.Table, *, count_only: bool = False,
           exact_bbox: bool = True) -> pa.Table | int:
    """Apply what the backend could not: exact predicates, residual filter,
    sort and paging. Without ``exact_bbox`` a shape whose bbox meets the query
    box is kept untested (for a caller that clips each shape to the box itself)."""
    mask = _exact_mask(plan, table, exact_bbox)
    if mask is not None:
        table = table.filter(pa.array(mask))
    if count_only:
        return len(table)
    return _order_and_page(plan, table)


def finish_counted(plan: QueryPlan, table: pa.Table) -> tuple[pa.Table, int]:
    """:func:`finish`, and the number of matches before paging: a page and its
    ``numberMatched`` from one scan."""
    mask = _exact_mask(plan, table)
    if mask is not None:
        table = table.filter(pa.array(mask))
    return _order_and_page(plan, table), len(table)


def _order_and_page(plan: QueryPlan, table: pa.Table) -> pa.Table:
    if plan.sortby:
        table = table.sort_by([(k.name, "ascending" if k.ascending else "descending") for k in plan.sortby])
    if plan.offset or plan.limit is not None:
        stop = None if plan.limit is None else plan.offset + plan.limit
        table = table.slice(plan.offset, None if stop is None else max(0, stop - plan.offset))
    return table


def _geoms(table: pa.Table) -> np.ndarray:
    return shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))


def _exact_mask(plan: QueryPlan, table: pa.Table, exact_bbox: bool = True) -> np.ndarray | None:
    mask = None
    geoms = None
    if not len(table):
        return None
    if plan.bbox is not None and plan.bbox != plan.prune_bbox:
        # the backend pre-filtered with another box: test this one's covering here
        mask = _bbox_meets(table, plan.bbox)
    edge = None if plan.bbox is None or not exact_bbox else _edge_rows(plan.spec, table, plan.bbox)
    if edge is not None and len(edge):
        # only a shape whose bbox crosses the box edge is decoded and tested
        m = np.ones(len(table), bool)
        m[edge] = shapely.intersects(_geoms(table.take(pa.array(edge))), shapely.box(*plan.bbox))
        mask = m if mask is None else mask & m
    if plan.geometry is not None:
        if geoms is None:
            geoms = _geoms(table)
        g = plan.geometry
        shapely.prepare(g)
        if plan.predicate == "intersects":
            m = shapely.intersects(g, geoms)
        elif plan.predicate == "within":
            m = shapely.within(geoms, g)
        elif plan.predicate == "contains":
            m = shapely.contains(geoms, g)
        else:
            m = _dwithin(geoms, g, float(plan.distance or 0.0), plan.spec.storage_crs)
        mask = m if mask is None else mask & m
    if plan.compiled is not None and plan.compiled.residual is not None:
        if geoms is None and "geometry" in table.column_names:
            geoms = _geoms(table)
        m = np.asarray(plan.compiled.residual(table, geoms), dtype=bool)
        mask = m if mask is None else mask & m
    return mask


def _bbox_meets(table: pa.Table, box: tuple[float, ...]) -> np.ndarray:
    b = table.column("bbox").combine_chunks()
    x0, y0, x1, y1 = (b.field(k).to_numpy(zero_copy_only=False) for k in ("xmin", "ymin", "xmax", "ymax"))
    return (x1 >= box[0]) & (x0 <= box[2]) & (y1 >= box[1]) & (y0 <= box[3])


def _edge_rows(spec: DatasetSpec, table: pa.Table, bbox: tuple[float, ...]) -> np.ndarray | None:
    """The rows whose shape, not only its bbox, decides whether it meets the
    query box: none for points, else those whose bbox is not inside the box."""
    if spec.geometry_type in ("Point",):
        return None
    b = table.column("bbox").combine_chunks()
    x0, y0, x1, y1 = (b.field(k).to_numpy(zero_copy_only=False) for k in ("xmin", "ymin", "xmax", "ymax"))
    return np.flatnonzero(~((x0 >= bbox[0]) & (x1 <= bbox[2]) & (y0 >= bbox[1]) & (y1 <= bbox[3])))  # NaN: edge


def _dwithin(geoms: np.ndarray, g: BaseGeometry, metres: float, crs: str) -> np.ndarray:
    c = resolve_crs(crs)
    if not c.is_geographic:
        return shapely.dwithin(geoms, g, metres)
    # Measure in an azimuthal equidistant projection centred on the query
    # geometry: distances from it are true there to well under 0.1% in a city.
    centre = g.centroid
    aeqd = f"+proj=aeqd +lat_0={centre.y} +lon_0={centre.x} +ellps=GRS80 +units=m +no_defs"
    src = c.pyproj_crs if not c.is_offset_system else c.id
    gp = transform_geometries(np.asarray(geoms, dtype=object), src, aeqd)
    qp = transform_geometries(np.array([g], dtype=object), src, aeqd)[0]
    return shapely.dwithin(gp, qp, metres)
