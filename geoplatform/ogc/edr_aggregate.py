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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from geoplatform.catalog.layers import AggregateLayerConfig
from geoplatform.crs import resolve_crs, transform_xy
from geoplatform.errors import DatasetNotFound, InvalidParameterValue
from geoplatform.grids.model import GridGeometry, GridVariable
from geoplatform.ogc import edr as E
from geoplatform.ogc import edr_series as ES

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube

QUERY_TYPES = ("position", "radius", "area", "cube")


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
        self.variables = E.parameter_names(params, [layer.parameter], layer.id)
        self.crs = E.request_crs(params, [resolve_crs(c) for c in layer.crs], layer.id)
        self.native = resolve_crs(layer.grid_crs)
        self.params, self.layer, self.cube, self.query_type = params, layer, cube, kind
        field = None
        if layer.variable:
            try:
                field = cube.dataset(layer.aggregate).field(layer.variable)
            except KeyError:
                raise InvalidParameterValue(f"layer {layer.id!r}: dataset {layer.aggregate!r} has no attribute "
                                            f"{layer.variable!r}") from None
        title = "Number of features" if layer.agg == "count" else f"{layer.agg} of {layer.variable}"
        self.spec = _Spec((GridVariable(name=layer.parameter, title=title, dtype="float64",
                                        units=None if field is None or layer.agg == "count" else field.unit),))
        self.snapshot = cube.backend.head(layer.aggregate)

    def compute(self, native_box: tuple[float, float, float, float]) -> tuple[Any, GridGeometry]:
        """The aggregate over the lattice cells covering ``native_box``, and its grid."""
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
        if self.params.get("datetime"):
            q["datetime"] = self.params["datetime"]
        # to_xarray adds a cell past the east and south edges (for features on them): dropped here,
        # so the cells are the lattice's, half-open on those edges as everywhere else
        da = self.cube.to_xarray(self.layer.aggregate, resolution=res, freq=self.layer.freq, agg=self.layer.agg,
                                 variable=self.layer.variable, crs=self.native.id, chunks=False,
                                 bbox=(x0, y0, x1, y1), bbox_crs=self.native.id, **q)
        da = da.isel(y=slice(0, ny), x=slice(0, nx))
        geom = GridGeometry(self.native.id, x0, y1, res, -res, nx, ny)
        times = da.time.values
        self.times = np.zeros(1, np.int64) if np.isnat(times[0]) else times.astype("datetime64[us]").astype(np.int64)
        self.t_index = np.arange(len(self.times))
        return np.asarray(da.values, np.float64), geom


def collection(cube: "Cube", layer: AggregateLayerConfig, base: str) -> dict[str, Any]:
    spec = cube.dataset(layer.aggregate)
    href = f"{base}/collections/{layer.id}"
    crs = ES.crs_details(layer.crs)
    queries = ES.data_queries(href, QUERY_TYPES, crs)
    extent = ES.vector_extent(cube, layer.aggregate)
    title = "Number of features" if layer.agg == "count" else f"{layer.agg} of {layer.variable}"
    param = {"type": "Parameter", "description": {"en": f"{title} per {layer.resolution:g} cell of {layer.grid_crs}"
                                                  + (f" and {layer.freq}" if layer.freq else "")},
             "observedProperty": {"id": layer.parameter, "label": {"en": title}}, "data-type": "float"}
    return {"id": layer.id, "title": layer.title or f"{spec.title or spec.name} ({title})", "itemType": "coverage",
            "description": layer.description or spec.description or "", "keywords": list(layer.keywords),
            "extent": extent, "data_queries": queries, "crs": [c["crs"] for c in crs],
            "output_formats": list(E._FORMATS), "parameter_names": {layer.parameter: param},
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
            out.append(((float(pts[k, 0]), float(pts[k, 1])), {layer.parameter: data[:, 0, 0]}))
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
    mask, block = mask[sl], data[:, sl[0], sl[1]].copy()
    block[:, ~mask] = np.nan
    return E._grid_output(r, xs[sl[1]], ys[sl[0]], {layer.parameter: block}, mask)  # type: ignore[arg-type]


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
