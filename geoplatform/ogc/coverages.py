"""OGC API - Coverages over the cube's grids: ``/collections/{id}/coverage``.

A grid layer is a coverage over (time, y, x) in the grid's own CRS, the only
one it is served in. The request may:

* trim in space with ``bbox`` (with ``bbox-crs``, default CRS84) or ``subset``
  on ``Lon``/``Lat`` (geographic ``subset-crs``, the default CRS84) or ``E``/``N``
  (projected), a single value slicing the axis; the two together are a 400;
* trim in time with ``datetime`` or ``subset=time("a":"b")`` (``*`` for an open
  end; a single instant is the step at it);
* select fields with ``properties`` or ``exclude-properties``;
* scale in space with ``width`` / ``height`` (cells along x / y), ``resolution``
  (``Lon(0.02),Lat(0.02)`` or ``E(500),N(500)``, in the grid's CRS units) or
  ``scale-factor`` (every k-th cell): nearest neighbour, cell centres kept;
* ask for GeoTIFF (``f=geotiff``, a band per field and step, each band named)
  or CoverageJSON (the default).

A request for more than the layer's ``max_cells`` values gets 413 before
anything is read. Framework-free: :func:`coverage` returns (status, headers,
body); :func:`coverage_routes` mounts it on Starlette.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from geoplatform.catalog.layers import GridLayerConfig
from geoplatform.crs import resolve_crs, transform_xy
from geoplatform.cube.times import parse_instant, parse_interval, to_us
from geoplatform.errors import DatasetNotFound, InvalidParameterValue
from geoplatform.ogc import edr as E

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube

_C = "https://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/"
COVERAGES_CONFORMANCE = tuple(_C + c for c in ("core", "subsetting-spatial", "subsetting-temporal",
                                                 "field-selection", "scaling-spatial", "geotiff", "coveragejson"))
GEOTIFF = "image/tiff; application=geotiff"
REL_COVERAGE = "http://www.opengis.net/def/rel/ogc/1.0/coverage"
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"
_PARAMS = frozenset({"f", "bbox", "bbox-crs", "subset", "subset-crs", "datetime", "properties", "exclude-properties",
                     "width", "height", "resolution", "scale-factor", "crs"})
_FORMATS = {"geotiff": "GeoTIFF", "tif": "GeoTIFF", "tiff": "GeoTIFF", "covjson": "CoverageJSON",
            "coveragejson": "CoverageJSON", "json": "CoverageJSON"}
_SUBSET = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*\(([^()]*)\)\s*(?:,|$)')


def _parse_axes(name: str, value: str) -> dict[str, str]:
    """``Axis(v),Axis(v)`` as {axis: v}; a 400 naming what does not parse."""
    out: dict[str, str] = {}
    pos = 0
    text = value.strip()
    while pos < len(text):
        m = _SUBSET.match(text, pos)
        if m is None:
            raise InvalidParameterValue(f"{name} {value!r} is not a list of Axis(value) terms")
        axis = m.group(1)
        if axis in out:
            raise InvalidParameterValue(f"{name} names axis {axis!r} twice")
        out[axis] = m.group(2).strip()
        pos = m.end()
    return out


def _interval(axis: str, v: str) -> tuple[float | None, float | None]:
    """``a:b`` (``*`` open), or a single ``a`` as (a, a)."""
    parts = [p.strip() for p in v.split(":")]
    if len(parts) > 2 or not all(parts):
        raise InvalidParameterValue(f"subset {axis}({v}): a value, or low:high with * for an open end")
    vals = []
    for p in parts:
        if p == "*":
            vals.append(None)
            continue
        vals.append(E._float(f"subset {axis}({v})", p))
    lo, hi = (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])
    if lo is not None and hi is not None and lo > hi:
        raise InvalidParameterValue(f"subset {axis}({v}): low is above high")
    return lo, hi


def _positive_int(name: str, value: str, cap: int = 100_000) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value) or not 0 < int(value) <= cap:
        raise InvalidParameterValue(f"{name} must be an integer from 1 to {cap}, not {value!r}")
    return int(value)


def _positive(name: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise InvalidParameterValue(f"{name} must be a number, not {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise InvalidParameterValue(f"{name} must be a positive number, not {value!r}")
    return v


def coverage(cube: "Cube", layer: GridLayerConfig, params: Mapping[str, str],
             accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """The coverage of a grid layer, trimmed, sliced, field-selected and scaled."""
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; the coverage takes {sorted(_PARAMS)}")
    fmt = params.get("f")
    if fmt is None:
        fmt = "GeoTIFF" if accept and "image/tiff" in accept and "coverage+json" not in accept else "CoverageJSON"
    else:
        if fmt.lower() not in _FORMATS:
            raise InvalidParameterValue(f"f={fmt!r} is not served; use f=geotiff or f=covjson")
        fmt = _FORMATS[fmt.lower()]
    g = cube.backend.grids()
    row, sid, steps = g.resolve(layer.grid)
    geom, spec = row.geometry, row.spec
    if geom is None or not steps:
        raise DatasetNotFound(f"collection {layer.id!r} holds no data yet")
    native = resolve_crs(geom.crs)
    if params.get("crs") and resolve_crs(params["crs"]) != native:
        raise InvalidParameterValue(f"the coverage is served in its own CRS only, {native.uri or native.id}")
    names = [v.name for v in spec.variables or ()]
    fields = names
    if "properties" in params and "exclude-properties" in params:
        raise InvalidParameterValue("give properties or exclude-properties, not both")
    if params.get("properties") is not None:
        fields = [p.strip() for p in params["properties"].split(",") if p.strip()]
        bad = [f for f in fields if f not in names]
        if bad or not fields:
            raise InvalidParameterValue(f"properties {bad or params['properties']!r}: the fields are {names}")
        fields = list(dict.fromkeys(fields))
    elif params.get("exclude-properties") is not None:
        ex = [p.strip() for p in params["exclude-properties"].split(",") if p.strip()]
        bad = [f for f in ex if f not in names]
        if bad:
            raise InvalidParameterValue(f"exclude-properties {bad}: the fields are {names}")
        fields = [n for n in names if n not in ex]
        if not fields:
            raise InvalidParameterValue("exclude-properties leaves no field")
    # time
    times = g.times_us(row.id, steps)
    subset = _parse_axes("subset", params["subset"]) if params.get("subset") else {}
    t_lo, t_hi = -2**63, 2**63 - 1
    if "time" in subset:
        if params.get("datetime"):
            raise InvalidParameterValue("give datetime or subset=time(...), not both")
        parts = [p.strip().strip('"') for p in subset.pop("time").split(":")]
        if len(parts) > 2 or not all(parts):
            raise InvalidParameterValue('subset time("a":"b") or time("a"), with * for an open end')
        try:
            t_lo = -2**63 if parts[0] == "*" else to_us(parse_instant(parts[0]), 0)
            t_hi = t_lo if len(parts) == 1 else 2**63 - 1 if parts[1] == "*" else to_us(parse_instant(parts[1]), 0)
        except (ValueError, TypeError) as exc:
            raise InvalidParameterValue(f"subset time: {exc}") from None
    elif params.get("datetime"):
        iv = parse_interval(params["datetime"])
        if iv is not None:
            t_lo, t_hi = to_us(iv.start, -2**63), to_us(iv.end, 2**63 - 1)
    t_idx = np.flatnonzero((times >= t_lo) & (times <= t_hi))
    if not len(t_idx):
        return 204, {"Geoplatform-Snapshot": str(sid)}, b""  # the time asked holds no step
    # space: the box in the grid's CRS
    box = None
    if subset:
        if params.get("bbox"):
            raise InvalidParameterValue("give bbox or a spatial subset, not both")
        scrs = resolve_crs(params.get("subset-crs") or "OGC:CRS84")
        axes = ("Lon", "Lat") if scrs.is_geographic else ("E", "N")
        bad = sorted(set(subset) - set(axes))
        if bad:
            raise InvalidParameterValue(f"subset axes {bad}: in {scrs.id} the axes are {list(axes)} (and time)")
        (x0, x1), (y0, y1) = (_interval(a, subset[a]) if a in subset else (None, None) for a in axes)
        box = (x0, y0, x1, y1), scrs
    elif params.get("bbox"):
        parts = params["bbox"].split(",")
        if len(parts) != 4:
            raise InvalidParameterValue(f"bbox {params['bbox']!r} must be four numbers")
        v = [E._float("bbox", p) for p in parts]
        if v[0] > v[2] or v[1] > v[3]:
            raise InvalidParameterValue(f"bbox {params['bbox']!r}: the lower corner is above the upper")
        box = (v[0], v[1], v[2], v[3]), resolve_crs(params.get("bbox-crs") or "OGC:CRS84")
    c0, c1, r0, r1 = 0, geom.width, 0, geom.height
    if box is not None:
        (bx0, by0, bx1, by1), bcrs = box
        full = _grid_box(geom, bcrs)
        bx0 = full[0] if bx0 is None else bx0
        by0 = full[1] if by0 is None else by0
        bx1 = full[2] if bx1 is None else bx1
        by1 = full[3] if by1 is None else by1
        if bcrs != native:
            xs = np.concatenate([np.linspace(bx0, bx1, 33), np.linspace(bx0, bx1, 33), np.full(33, bx0), np.full(33, bx1)])
            ys = np.concatenate([np.full(33, by0), np.full(33, by1), np.linspace(by0, by1, 33), np.linspace(by0, by1, 33)])
            tx, ty = transform_xy(xs, ys, bcrs, native)
            bx0, by0, bx1, by1 = float(tx.min()), float(ty.min()), float(tx.max()), float(ty.max())
        # cells whose centres fall in the box; a single value (slicing) takes the cell holding it
        xc, yc = geom.x, geom.y
        cols = np.flatnonzero((xc >= bx0) & (xc <= bx1)) if bx0 != bx1 else \
            np.array([int(math.floor((bx0 - geom.x0) / geom.dx))])
        rows = np.flatnonzero((yc >= by0) & (yc <= by1)) if by0 != by1 else \
            np.array([int(math.floor((by0 - geom.y0) / geom.dy))])
        cols = cols[(cols >= 0) & (cols < geom.width)]
        rows = rows[(rows >= 0) & (rows < geom.height)]
        if not len(cols) or not len(rows):
            return 204, {"Geoplatform-Snapshot": str(sid)}, b""  # out of the coverage's bounds
        c0, c1, r0, r1 = int(cols.min()), int(cols.max()) + 1, int(rows.min()), int(rows.max()) + 1
    # scaling: which cells of the trimmed block are returned
    sx = sy = 1.0
    if params.get("scale-factor"):
        sx = sy = _positive("scale-factor", params["scale-factor"])
    if params.get("resolution"):
        res = _parse_axes("resolution", params["resolution"])
        axes = ("Lon", "Lat") if native.is_geographic else ("E", "N")
        bad = sorted(set(res) - set(axes))
        if bad:
            raise InvalidParameterValue(f"resolution axes {bad}: the grid's axes are {list(axes)}")
        if res.get(axes[0]):
            sx = _positive("resolution", res[axes[0]]) / abs(geom.dx)
        if res.get(axes[1]):
            sy = _positive("resolution", res[axes[1]]) / abs(geom.dy)
    nx, ny = c1 - c0, r1 - r0
    out_w = _positive_int("width", params["width"]) if params.get("width") else max(1, int(round(nx / sx)))
    out_h = _positive_int("height", params["height"]) if params.get("height") else max(1, int(round(ny / sy)))
    n = out_w * out_h * len(t_idx) * len(fields)
    if n > layer.max_cells:
        raise E.TooLarge(f"the coverage asked holds {n:,} values; {layer.id!r} returns at most {layer.max_cells:,} "
                         "at once: trim it (bbox, subset, datetime, properties) or scale it (width, height, "
                         "resolution, scale-factor)")
    # output cells: nearest source cell of each output cell's centre
    ci = c0 + np.minimum(nx - 1, ((np.arange(out_w) + 0.5) * nx / out_w).astype(np.int64))
    ri = r0 + np.minimum(ny - 1, ((np.arange(out_h) + 0.5) * ny / out_h).astype(np.int64))
    layout = "map" if out_w * out_h > 4 * len(t_idx) else "series"
    data = {f: g.read(layer.grid, layout, f, t_idx, ri, ci) for f in fields}
    # the output grid: cells of (nx / out_w) x (ny / out_h) source cells from the trimmed corner
    dx, dy = geom.dx * nx / out_w, geom.dy * ny / out_h
    ox0, oy0 = geom.x0 + c0 * geom.dx, geom.y0 + r0 * geom.dy
    xs = ox0 + (np.arange(out_w) + 0.5) * dx
    ys = oy0 + (np.arange(out_h) + 0.5) * dy
    tiso = [E._iso(int(times[i])) for i in t_idx]
    headers = {"Content-Crs": f"<{native.uri or native.id}>", "Geoplatform-Snapshot": str(sid)}
    if fmt == "GeoTIFF":
        return 200, {**headers, "Content-Type": GEOTIFF}, _geotiff(data, fields, tiso, native, ox0, oy0, dx, dy)
    doc = {"type": "Coverage",
           "domain": {"type": "Domain", "domainType": "Grid",
                      "axes": {"x": {"values": xs}, "y": {"values": ys}, "t": {"values": tiso}},
                      "referencing": E._referencing(native)},
           "parameters": {f: E._parameter(spec.variable(f)) for f in fields},
           "ranges": {f: E._ndarray(data[f], ["t", "y", "x"]) for f in fields}}
    return 200, {**headers, "Content-Type": E.COVJSON}, E._dump(doc)


def _grid_box(geom: Any, crs: Any) -> tuple[float, float, float, float]:
    """The grid's bounds in ``crs`` (for a subset's open ends)."""
    b = geom.bounds
    if resolve_crs(geom.crs) == crs:
        return b
    xs = np.concatenate([np.linspace(b[0], b[2], 33)] * 2 + [np.full(33, b[0]), np.full(33, b[2])])
    ys = np.concatenate([np.full(33, b[1]), np.full(33, b[3])] + [np.linspace(b[1], b[3], 33)] * 2)
    tx, ty = transform_xy(xs, ys, geom.crs, crs)
    return float(tx.min()), float(ty.min()), float(tx.max()), float(ty.max())


def _geotiff(data: dict[str, np.ndarray], fields: list[str], times: list[str], crs: Any, x0: float, y0: float,
             dx: float, dy: float) -> bytes:
    """A GeoTIFF with a band per (field, step), in field then time order, each band named."""
    import rasterio
    from affine import Affine
    from rasterio.io import MemoryFile

    first = data[fields[0]]
    floating = any(np.issubdtype(data[f].dtype, np.floating) for f in fields)
    dtype = np.float64 if any(data[f].dtype == np.float64 for f in fields) else \
        np.float32 if floating else np.result_type(*[data[f].dtype for f in fields])
    bands = [(f, t, data[f][k]) for f in fields for k, t in enumerate(times)]
    profile = {"driver": "GTiff", "width": first.shape[2], "height": first.shape[1], "count": len(bands),
               "dtype": np.dtype(dtype).name, "crs": rasterio.crs.CRS.from_wkt(crs.pyproj_crs.to_wkt()),
               "transform": Affine(dx, 0, x0, 0, dy, y0), "compress": "deflate",
               **({"nodata": float("nan")} if floating else {})}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            for i, (f, t, band) in enumerate(bands, start=1):
                dst.write(band.astype(dtype), i)
                dst.set_band_description(i, f"{f} {t}")
                dst.update_tags(i, field=f, time=t)
            dst.update_tags(fields=",".join(fields), times=",".join(times))
        return mem.read()  # type: ignore[no-any-return]


def schema(cube: "Cube", layer: GridLayerConfig, href: str) -> dict[str, Any]:
    """The coverage's fields as a JSON Schema (``/collections/{id}/schema``)."""
    row = cube.backend.grids().row(layer.grid)
    props = {}
    for v in row.spec.variables or ():
        p: dict[str, Any] = {"title": v.title or v.name, "type": "number" if v.dtype.startswith("float") else "integer"}
        if v.description:
            p["description"] = v.description
        if v.units:
            p["x-ogc-unit"] = v.units
        if v.standard_name:
            p["x-ogc-definition"] = f"http://vocab.nerc.ac.uk/standard_name/{v.standard_name}/"
        props[v.name] = p
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": href, "type": "object",
            "title": layer.title or row.spec.title or layer.id, "properties": props}


def collection_parts(cube: "Cube", layer: GridLayerConfig, href: str) -> dict[str, Any]:
    """What a grid collection's description adds for Coverages: links, storage CRS, the grid."""
    row, sid, steps = cube.backend.grids().resolve(layer.grid)
    geom = row.geometry
    out: dict[str, Any] = {"links": [
        {"href": f"{href}/coverage", "rel": REL_COVERAGE, "type": E.COVJSON, "title": "The coverage (CoverageJSON)"},
        {"href": f"{href}/coverage?f=geotiff", "rel": REL_COVERAGE, "type": GEOTIFF, "title": "The coverage (GeoTIFF)"},
        {"href": f"{href}/schema", "rel": REL_SCHEMA, "type": "application/schema+json", "title": "Fields"}]}
    if geom is not None:
        native = resolve_crs(geom.crs)
        out["storageCrs"] = native.uri or native.id
        b = geom.bounds
        out["storageCrsBbox"] = [list(b)]
        out["grid"] = [{"cellsCount": geom.width, "resolution": abs(geom.dx), "firstCoordinate": float(geom.x[0])},
                       {"cellsCount": geom.height, "resolution": abs(geom.dy), "firstCoordinate": float(geom.y[0])}]
        if steps:
            t = cube.backend.grids().times_us(row.id, steps)
            out["temporalGrid"] = {"cellsCount": steps, "coordinates": [E._iso(int(v)) for v in t[:1000]]}
    return out


def coverage_routes(params_of: Any) -> list[Any]:
    """The Starlette routes of the coverage; ``state.platform.grids`` gives the layers."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def run(request: Request) -> Response:
        p = request.state.platform
        layer = p.grid_layer(request.path_params["cid"])
        status, headers, body = await run_in_threadpool(coverage, p.cube, layer, params_of(request),
                                                        request.headers.get("accept"))
        return Response(body, status_code=status, headers=headers)

    return [Route("/collections/{cid}/coverage", run)]


def openapi_paths(layers: Mapping[str, GridLayerConfig]) -> dict[str, Any]:
    err = {"description": "A bad request", "content": {"application/json": {"schema": {"type": "object"}}}}
    q = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in sorted(_PARAMS)]
    paths: dict[str, Any] = {}
    for layer in layers.values():
        op = re.sub(r"[^A-Za-z0-9_]", "_", layer.id)
        paths[f"/collections/{layer.id}/coverage"] = {"get": {
            "summary": f"The coverage of {layer.title or layer.id}", "operationId": f"{op}_coverage",
            "parameters": q,
            "responses": {"200": {"description": "The coverage", "content": {
                E.COVJSON: {"schema": {"type": "object"}},
                "image/tiff": {"schema": {"type": "string", "format": "binary"}}}},
                "204": {"description": "Nothing of the coverage is in the subset"},
                "400": err, "404": err, "413": err}}}
        paths[f"/collections/{layer.id}/schema"] = {"get": {
            "summary": f"The fields of {layer.title or layer.id}", "operationId": f"{op}_coverage_schema",
            "responses": {"200": {"description": "JSON Schema", "content": {
                "application/schema+json": {"schema": {"type": "object"}}}}, "400": err}}}
    return paths
