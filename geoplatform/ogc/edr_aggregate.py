"""OGC API - EDR over aggregated vector data: an aggregate layer (``aggregate:``)
publishes a vector dataset as counts (or sums, means, minima, maxima of an
attribute) per cell of a regular grid and per time step, computed from the
cube for each request (:meth:`Cube.to_xarray`), so it follows every commit.

The cells lie on one lattice of the layer's ``resolution`` in its
``grid_crs`` (a request's box is widened to whole cells of it), so two
requests agree on every cell they share. Time steps of ``freq`` start at
midnight UTC of the first day of the request's ``datetime`` (of the dataset's
time extent without one). Queries: position (the cell of a point), area and
radius (the cells they touch), cube (the cells whose centres are in the box);
the answers are those of a grid collection (:mod:`geoplatform.ogc.edr`).

A count layer may split its counts ``by`` the declared classes of an attribute
(one parameter per class beside the total). With ``min_count`` (always, for
personal data: default 10) small counts are suppressed as
:mod:`geoplatform.access.disclosure` says, time steps follow a calendar fixed
by the dataset's first day (a request's ``datetime`` picks whole steps), and
the layer may be opened wider than its dataset (its own ``open_level``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geoplatform.access.disclosure import DEFAULT_MIN_COUNT, suppress, suppress_by_count
from geoplatform.catalog.layers import AggregateLayerConfig
from geoplatform.crs import resolve_crs, transform_xy
from geoplatform.cube.model import DatasetSpec
from geoplatform.cube.times import from_us, parse_interval, to_us
from geoplatform.errors import CatalogError, DatasetNotFound, InvalidParameterValue
from geoplatform.grids.model import GridGeometry, GridVariable
from geoplatform.ogc import edr as E
from geoplatform.ogc import edr_series as ES

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube

QUERY_TYPES = ("position", "radius", "area", "cube")


_OPENNESS = {"public": 0, "shared": 1, "restricted": 2}


@dataclass(frozen=True)
class LayerEntry:
    """Who may see an aggregate layer opened wider than its dataset (for the access policy)."""

    name: str
    department: str | None
    open_level: str
    shared_with: tuple[str, ...] = ()
    personal: str | None = None


def min_count(layer: AggregateLayerConfig, spec: DatasetSpec) -> int | None:
    """The layer's minimum count per cell: its own, or the default for personal data."""
    return layer.min_count or (DEFAULT_MIN_COUNT if spec.personal else None)


def classes(layer: AggregateLayerConfig, spec: DatasetSpec) -> list[tuple[str, Any]]:
    """The (parameter id, class value) of each class a ``by`` layer counts."""
    if not layer.by:
        return []
    field = next((f for f in spec.schema_ or () if f.name == layer.by), None)
    if field is None or not field.enum:
        raise CatalogError(f"layer {layer.id!r}: by {layer.by!r} must be an attribute of {spec.name!r} with "
                           "declared classes (enum)")
    out: dict[str, Any] = {}
    for v in field.enum:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", str(v).replace("+", "plus")).strip("_")
        pid = f"{layer.parameter}_{slug}"
        if not slug or pid in out:
            raise CatalogError(f"layer {layer.id!r}: class {v!r} of {layer.by!r} has no parameter name of its own")
        out[pid] = v
    return list(out.items())


def check_layer(layer: AggregateLayerConfig, spec: DatasetSpec) -> tuple[Any, ...]:
    """Check the layer against its dataset; return what decides who sees it."""
    classes(layer, spec)
    k = min_count(layer, spec)
    if spec.personal and layer.agg not in ("count", "sum", "mean"):
        raise CatalogError(f"layer {layer.id!r}: {spec.name!r} holds personal data; its {layer.agg} would show one "
                           "record's value: use count, sum or mean")
    if layer.open_level is None:
        return (spec,)
    wider = _OPENNESS[layer.open_level] < _OPENNESS[spec.open_level] or (
        layer.open_level == spec.open_level == "shared" and not set(layer.shared_with) <= set(spec.shared_with))
    if (wider or spec.personal) and k is None:
        raise CatalogError(f"layer {layer.id!r} opens {spec.name!r} ({spec.open_level}) as {layer.open_level}: "
                           "it needs min_count, so that small counts are suppressed")
    return (LayerEntry(spec.name, spec.department, layer.open_level, layer.shared_with),)


class _Spec:
    def __init__(self, variables: tuple[GridVariable, ...]) -> None:
        self.variables = variables

    def variable(self, name: str) -> GridVariable:
        return next(v for v in self.variables if v.name == name)


class _Agg:
    """A checked request, shaped as the grid answers of :mod:`edr` expect."""

    def __init__(self, cube: "Cube", layer: AggregateLayerConfig, kind: str, params: Mapping[str, str]) -> None:
        allowed = E._ALLOWED[kind] - {"resolution-x", "resolution-y", "resolution-z"}
        params, self.format = E.checked_params(params, allowed, kind, layer.id)
        dataset = cube.dataset(layer.aggregate)
        self.classes = classes(layer, dataset)
        self.min_count = min_count(layer, dataset)
        self.variables = E.parameter_names(params, [layer.parameter, *(c for c, _ in self.classes)], layer.id)
        self.crs = E.request_crs(params, [resolve_crs(c) for c in layer.crs], layer.id)
        self.native = resolve_crs(layer.grid_crs)
        self.params, self.layer, self.cube, self.query_type = params, layer, cube, kind
        field = None
        if layer.variable:
            try:
                field = dataset.field(layer.variable)
            except KeyError:
                raise InvalidParameterValue(f"layer {layer.id!r}: dataset {layer.aggregate!r} has no attribute "
                                            f"{layer.variable!r}") from None
        title = _title(layer)
        self.spec = _Spec((GridVariable(name=layer.parameter, title=title, dtype="float64",
                                        units=None if field is None or layer.agg == "count" else field.unit),
                           *(GridVariable(name=c, title=f"{title}, {layer.by} {v}", dtype="float64")
                             for c, v in self.classes)))
        self.snapshot = cube.backend.head(layer.aggregate)
        self.datetime = params.get("datetime")
        if self.min_count and self.datetime:
            self.datetime = self._whole_steps(self.datetime)

    def _whole_steps(self, asked: str) -> tuple[Any, Any]:
        """The whole steps of the layer's fixed calendar that ``asked`` meets (suppressed layers)."""
        from geoplatform.cube.grid import _time_edges

        if not self.layer.freq:
            raise InvalidParameterValue(f"{self.layer.id!r} counts personal data over its whole time extent only: "
                                        "datetime is not accepted")
        edges = _time_edges(self.cube, self.layer.aggregate, self.layer.freq, None)
        interval = parse_interval(asked)
        assert interval is not None
        lo, hi = to_us(interval.start, int(edges[0])), to_us(interval.end, int(edges[-1]) - 1)
        i0 = max(int(np.searchsorted(edges, lo, side="right")) - 1, 0)
        i1 = min(int(np.searchsorted(edges, hi, side="right")), len(edges) - 1)
        if i1 <= i0 or hi < edges[0]:
            raise InvalidParameterValue(f"datetime {asked!r} is outside the time extent of {self.layer.id!r}")
        return from_us(int(edges[i0])), from_us(int(edges[i1]) - 1)

    def compute(self, native_box: tuple[float, float, float, float]) -> tuple[dict[str, np.ndarray], GridGeometry]:
        """The aggregate (per parameter) over the lattice cells covering ``native_box``, and its grid."""
        res = self.layer.resolution
        x0, y0 = math.floor(native_box[0] / res) * res, math.floor(native_box[1] / res) * res
        x1, y1 = math.ceil(native_box[2] / res) * res, math.ceil(native_box[3] / res) * res
        x1, y1 = max(x1, x0 + res), max(y1, y0 + res)
        nx, ny = int(round((x1 - x0) / res)), int(round((y1 - y0) / res))
        from geoplatform.cube.grid import _time_edges

        steps = len(_time_edges(self.cube, self.layer.aggregate, self.layer.freq, self.params.get("datetime"))) - 1
        if nx * ny * steps > self.layer.max_cells:
            raise E.TooLarge(f"the request covers {nx * ny:,} cells x {steps:,} steps; {self.layer.id!r} aggregates "
                             f"at most {self.layer.max_cells:,} at once: narrow coords, bbox or datetime")
        q: dict[str, Any] = {"as_of": self.snapshot}
        if self.datetime:
            q["datetime"] = self.datetime
        times: Any = None

        def grid(agg: str, variable: str | None, **where: Any) -> np.ndarray:
            nonlocal times
            # to_xarray adds a cell past the east and south edges (for features on them): dropped here,
            # so the cells are the lattice's, half-open on those edges as everywhere else
            da = self.cube.to_xarray(self.layer.aggregate, resolution=res, freq=self.layer.freq, agg=agg,
                                     variable=variable, crs=self.native.id, chunks=False,
                                     bbox=(x0, y0, x1, y1), bbox_crs=self.native.id, **q, **where)
            da = da.isel(y=slice(0, ny), x=slice(0, nx))
            times = da.time.values
            return np.asarray(da.values, np.float64)

        main = grid(self.layer.agg, self.layer.variable)
        split = {c: grid("count", None, filter={"op": "=", "args": [{"property": self.layer.by}, v]},
                         filter_lang="cql2-json") for c, v in self.classes}
        if self.min_count and self.layer.agg == "count":
            main, split = suppress(main, split, self.min_count)
        elif self.min_count:
            main = suppress_by_count(main, grid("count", None), self.min_count)
        geom = GridGeometry(self.native.id, x0, y1, res, -res, nx, ny)
        if np.isnat(times[0]):  # a dataset without valid time: its state at the snapshot read
            when = next(s.committed_at for s in self.cube.snapshots(self.layer.aggregate) if s.id == self.snapshot)
            self.times = np.array([to_us(when, 0)], np.int64)
        else:
            self.times = times.astype("datetime64[us]").astype(np.int64)
        self.t_index = np.arange(len(self.times))
        return {self.layer.parameter: main, **split}, geom


def _title(layer: AggregateLayerConfig) -> str:
    return "Number of features" if layer.agg == "count" else f"{layer.agg} of {layer.variable}"


def collection(cube: "Cube", layer: AggregateLayerConfig, base: str) -> dict[str, Any]:
    spec = cube.dataset(layer.aggregate)
    href = f"{base}/collections/{layer.id}"
    crs = ES.crs_details(layer.crs)
    queries = ES.data_queries(href, QUERY_TYPES, crs)
    extent = ES.vector_extent(cube, layer.aggregate)
    title = _title(layer)
    per = f" per {layer.resolution:g} cell of {layer.grid_crs}" + (f" and {layer.freq}" if layer.freq else "")
    k = min_count(layer, spec)
    if k:
        per += f"; counts below {k} are withheld (null)"

    def param(pid: str, label: str) -> dict[str, Any]:
        return {"type": "Parameter", "description": {"en": label + per},
                "observedProperty": {"id": pid, "label": {"en": label}}, "data-type": "float"}

    params = {layer.parameter: param(layer.parameter, title),
              **{c: param(c, f"{title}, {layer.by} {v}") for c, v in classes(layer, spec)}}
    return {"id": layer.id, "title": layer.title or f"{spec.title or spec.name} ({title})", "itemType": "coverage",
            "description": layer.description or spec.description or "", "keywords": list(layer.keywords),
            "extent": extent, "data_queries": queries, "crs": [c["crs"] for c in crs],
            "output_formats": list(E._FORMATS), "parameter_names": params,
            "links": [{"href": href, "rel": "self", "type": E.JSON, "title": "This collection"},
                      *({"href": f"{href}/{q}", "rel": "data", "type": E.COVJSON, "title": f"{q} query"}
                        for q in QUERY_TYPES)]}


def query(cube: "Cube", layer: AggregateLayerConfig, kind: str,
          params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
    if kind not in QUERY_TYPES:
        raise DatasetNotFound(f"collection {layer.id!r} serves no {kind} query: it serves {list(QUERY_TYPES)}")
    r = _Agg(cube, layer, kind, params)
    if kind == "position":
        geom = E._geometry(r.params.get("coords", ""), ("POINT", "MULTIPOINT"))
        pts = shapely.get_coordinates(geom)
        nx_, ny_ = transform_xy(pts[:, 0], pts[:, 1], r.crs, r.native)
        out = []
        for k in range(len(pts)):
            data, _ = r.compute((nx_[k], ny_[k], nx_[k], ny_[k]))  # the lattice cell holding the point, alone
            out.append(((float(pts[k, 0]), float(pts[k, 1])), {v: a[:, 0, 0] for v, a in data.items()}))
        return E._point_series_output(r, out)  # type: ignore[arg-type]
    if kind == "cube":
        v = E.bbox_param(r.params)
        area, whole_box = shapely.box(*v), True
    elif kind == "area":
        area, whole_box = E._geometry(r.params.get("coords", ""), ("POLYGON", "MULTIPOLYGON")), False
    else:
        centre = E._geometry(r.params.get("coords", ""), ("POINT", "MULTIPOINT"))
        area, whole_box = E._buffer(r, centre, E._length(r.params, "within", "within-units")), False  # type: ignore[arg-type]
    outline = shapely.segmentize(area, max(area.length / 256, 1e-12)) if r.crs != r.native else area
    native = shapely.transform(outline, lambda a: np.column_stack(transform_xy(a[:, 0], a[:, 1], r.crs, r.native)))
    data, g = r.compute(native.bounds)
    xs, ys = g.x, g.y
    if whole_box:
        b = native.bounds
        mask = ((xs >= b[0]) & (xs <= b[2]))[None, :] & ((ys >= b[1]) & (ys <= b[3]))[:, None]
    else:
        from affine import Affine
        from rasterio.features import geometry_mask

        mask = geometry_mask([native], out_shape=(g.height, g.width), invert=True, all_touched=True,
                             transform=Affine(g.dx, 0, g.x0, 0, g.dy, g.y0))
    if not mask.any():
        raise InvalidParameterValue(f"no cell of {layer.id!r} meets the {kind} query's area")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    mask = mask[sl]
    blocks = {}
    for v, a in data.items():
        blocks[v] = a[:, sl[0], sl[1]].copy()
        blocks[v][:, ~mask] = np.nan
    return E._grid_output(r, xs[sl[1]], ys[sl[0]], blocks, mask)  # type: ignore[arg-type]


def openapi_paths(layers: Mapping[str, AggregateLayerConfig]) -> dict[str, Any]:
    """The EDR paths of the aggregate collections, for the API document."""
    import re

    err = {"description": "A bad request", "content": {E.JSON: {"schema": {"type": "object"}}}}
    ok = {"description": "The data", "content": {E.COVJSON: {"schema": {"type": "object"}},
                                                 E.GEOJSON: {"schema": {"type": "object"}},
                                                 E.CSV: {"schema": {"type": "string"}}}}
    paths: dict[str, Any] = {}
    for layer in layers.values():
        op = re.sub(r"[^A-Za-z0-9_]", "_", layer.id)
        paths[f"/collections/{layer.id}"] = {"get": {"summary": layer.title or layer.id,
                                                     "operationId": f"{op}_aggregate_collection",
                                                     "responses": {"200": {"description": "The collection"},
                                                                   "400": err}}}
        for q in QUERY_TYPES:
            names = sorted(E._ALLOWED[q] - {"resolution-x", "resolution-y", "resolution-z"})
            params = [{"name": n, "in": "query", "required": n in E._REQUIRED[q], "description": E._PARAM_DOC[n][1],
                       "schema": {"type": E._PARAM_DOC[n][0]}} for n in names]
            paths[f"/collections/{layer.id}/{q}"] = {"get": {
                "summary": f"{q} query of {layer.id}", "operationId": f"{op}_aggregate_{q}", "parameters": params,
                "responses": {"200": ok, "400": err, "404": err, "413": err}}}
    return paths
