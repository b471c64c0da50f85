"""Map tiles of grids (OGC API - Tiles, PNG): a grid variable at a time step,
coloured by a colour map of ``tiles/colormaps/``, over the same tile matrix
sets as the vector tiles.

Each tile pixel takes the cell its centre falls in (nearest neighbour, in the
grid's own CRS); a pixel off the grid, or on a cell without data, is
transparent. ``datetime`` (an instant) picks the last step at or before it,
none the newest; ``parameter-name`` the variable, none the first.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from geoplatform.catalog.layers import GridLayerConfig, MapStyle
from geoplatform.catalog.models import _load_yaml, _validate
from geoplatform.crs import transform_xy
from geoplatform.cube.times import parse_instant, to_us
from geoplatform.errors import CatalogError, DatasetNotFound, InvalidParameterValue
from geoplatform.ogc.tms import TileMatrixSet, load_tile_matrix_sets

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube

PNG = "image/png"
JSON = "application/json"
COLORMAP_DIR = Path(__file__).resolve().parents[2] / "tiles" / "colormaps"
MAP_CONFORMANCE = ("http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/png",)
_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
_PARAMS = frozenset({"datetime", "parameter-name", "f"})
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class Colormap(BaseModel):
    """A colour map: stops of value and colour. ``scale: relative`` stops run
    from 0 to 1 over a style's range; ``absolute`` stops are values. Between
    stops, colours are interpolated, or (``interpolate: false``) a value takes
    the colour of the last stop at or below it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str | None = None
    units: str | None = None
    scale: Literal["relative", "absolute"] = "relative"
    interpolate: bool = True
    stops: tuple[tuple[float, str], ...] = Field(min_length=2)

    @field_validator("stops")
    @classmethod
    def _stops(cls, v: tuple[tuple[float, str], ...]) -> tuple[tuple[float, str], ...]:
        values = [s[0] for s in v]
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"stop values {values} must increase")
        bad = [c for _, c in v if not _HEX.match(c)]
        if bad:
            raise ValueError(f"colours {bad} are not #rrggbb")
        return v

    @model_validator(mode="after")
    def _relative(self) -> "Colormap":
        if self.scale == "relative" and (self.stops[0][0] != 0 or self.stops[-1][0] != 1):
            raise ValueError("a relative colour map's stops run from 0 to 1")
        return self

    def colours(self, values: np.ndarray, rng: tuple[float, float] | None) -> np.ndarray:
        """(..., 4) RGBA bytes of ``values``; NaN is transparent."""
        at = np.array([s[0] for s in self.stops])
        rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in self.stops], float)
        v = values.astype(np.float64)
        if self.scale == "relative":
            lo, hi = rng if rng is not None else (0.0, 1.0)
            v = (v - lo) / (hi - lo) if hi > lo else v * 0
        out = np.zeros((*values.shape, 4), np.uint8)
        ok = np.isfinite(v)
        w = np.clip(v[ok], at[0], at[-1])
        if self.interpolate:
            chans = [np.interp(w, at, rgb[:, i]) for i in range(3)]
        else:
            idx = np.clip(np.searchsorted(at, w, side="right") - 1, 0, len(at) - 1)
            chans = [rgb[idx, i] for i in range(3)]
        for i in range(3):
            out[..., i][ok] = np.round(chans[i]).astype(np.uint8)
        out[..., 3][ok] = 255
        return out


def load_colormaps(folder: Path | None = None) -> dict[str, Colormap]:
    """Every ``*.yaml`` colour map of ``folder`` (default ``tiles/colormaps``), by name."""
    folder = folder or COLORMAP_DIR
    out: dict[str, Colormap] = {}
    for path in sorted(folder.glob("*.yaml")):
        cm: Colormap = _validate(Colormap, _load_yaml(path), str(path))
        if cm.name != path.stem:
            raise CatalogError(f"{path}: name: {cm.name!r} is not the file name {path.stem!r}")
        out[cm.name] = cm
    return out


def png(rgba: np.ndarray) -> bytes:
    """An (h, w, 4) uint8 array as a PNG (8-bit RGBA, no filter, zlib level 6)."""
    h, w, _ = rgba.shape
    raw = np.zeros((h, 1 + 4 * w), np.uint8)  # each row: filter type 0, then its pixels
    raw[:, 1:] = rgba.reshape(h, 4 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def check_styles(layers: Mapping[str, GridLayerConfig], colormaps: Mapping[str, Colormap] | None = None) -> None:
    """Every style names a colour map that exists (at start-up, not at the first tile)."""
    colormaps = load_colormaps() if colormaps is None else colormaps
    for layer in layers.values():
        for var, st in layer.styles.items():
            if st.colormap not in colormaps:
                raise CatalogError(f"layer {layer.id!r}: the style of {var!r} names colour map {st.colormap!r}; "
                                   f"there are {sorted(colormaps)}")


class MapService:
    """What the map tile endpoints of one app share: the sets, the colour maps,
    and each variable's value range when its style gives none."""

    def __init__(self) -> None:
        self.sets = load_tile_matrix_sets()
        self.colormaps = load_colormaps()
        self._ranges: dict[tuple[str, str, int], tuple[float, float]] = {}

    def tms(self, tms_id: str) -> TileMatrixSet:
        tms = self.sets.get(tms_id)
        if tms is None:
            raise DatasetNotFound(f"no tile matrix set {tms_id!r} (served: {sorted(self.sets)})")
        return tms

    def style(self, cube: "Cube", layer: GridLayerConfig, variable: str) -> tuple[Colormap, tuple[float, float] | None]:
        st = layer.styles.get(variable, MapStyle())
        cm = self.colormaps[st.colormap]
        if cm.scale == "absolute" or st.range is not None:
            return cm, st.range
        row, sid, steps = cube.backend.grids().resolve(layer.grid)
        key = (layer.grid, variable, row.id)
        if key not in self._ranges:
            # the first step, every 8th cell: a range that does not move from tile to tile
            a = np.asarray(cube.grid(layer.grid)[variable].isel(time=0).values[::8, ::8], float)
            a = a[np.isfinite(a)]
            self._ranges[key] = (float(a.min()), float(a.max())) if len(a) else (0.0, 1.0)
        return cm, self._ranges[key]


def _step(times: np.ndarray, value: str | None) -> int:
    if value is None:
        return len(times) - 1
    if "/" in value:
        raise InvalidParameterValue(f"datetime {value!r}: a map tile is of one instant, not an interval")
    us = to_us(parse_instant(value), 0)
    i = int(np.searchsorted(times, us, side="right")) - 1
    if i < 0:
        raise InvalidParameterValue(f"datetime {value!r} is before the grid's first step")
    return i


def _variable(layer: GridLayerConfig, names: list[str], value: str | None) -> str:
    if value is None:
        return names[0]
    if value not in names:
        raise InvalidParameterValue(f"parameter-name {value!r}: a map tile draws one of {names}")
    return value


def _check(params: Mapping[str, str]) -> None:
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; a map tile takes {sorted(_PARAMS)}")
    if params.get("f") not in (None, "png"):
        raise InvalidParameterValue(f"f={params['f']!r} is not served; map tiles are png")


def tile(svc: MapService, cube: "Cube", layer: GridLayerConfig, tms: TileMatrixSet, z: str, row_s: str, col_s: str,
         params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One PNG map tile."""
    _check(params)
    if not (row_s.isdigit() and col_s.isdigit()):
        raise InvalidParameterValue(f"tileRow and tileCol must be non-negative integers, not {row_s!r}, {col_s!r}")
    r, c = int(row_s), int(col_s)
    try:
        m = tms.matrix(z)
    except KeyError:
        raise DatasetNotFound(f"tile matrix set {tms.id!r} has no tile matrix {z!r}") from None
    if not tms.contains(z, r, c):
        raise DatasetNotFound(f"tile {z}/{r}/{c} is outside tile matrix {z!r} of {tms.id}")
    g = cube.backend.grids()
    row, sid, steps = g.resolve(layer.grid)
    geom = row.geometry
    if geom is None or not steps:
        raise DatasetNotFound(f"collection {layer.id!r} holds no data yet")
    names = [v.name for v in row.spec.variables or ()]
    var = _variable(layer, names, params.get("parameter-name"))
    times = g.times_us(row.id, steps)
    t = _step(times, params.get("datetime"))
    w, h = m.tile_width, m.tile_height
    b = tms.tile_bounds(z, r, c)
    px = b[0] + (np.arange(w) + 0.5) * (b[2] - b[0]) / w
    py = b[3] - (np.arange(h) + 0.5) * (b[3] - b[1]) / h
    xx, yy = np.meshgrid(px, py)
    with np.errstate(all="ignore"):
        try:
            gx, gy = transform_xy(xx.ravel(), yy.ravel(), tms.crs_info, geom.crs)
        except InvalidParameterValue:  # pixels past what the grid's CRS reaches: none of them is drawn
            gx = gy = np.full(w * h, np.nan)
    col = np.floor((gx - geom.x0) / geom.dx)
    rw = np.floor((gy - geom.y0) / geom.dy)
    inside = np.isfinite(col) & np.isfinite(rw) & (col >= 0) & (col < geom.width) & (rw >= 0) & (rw < geom.height)
    values = np.full(w * h, np.nan)
    if inside.any():
        ci, ri = col[inside].astype(np.int64), rw[inside].astype(np.int64)
        r0, r1, c0, c1 = int(ri.min()), int(ri.max()) + 1, int(ci.min()), int(ci.max()) + 1
        # a tile wider than the grid's cells reads every k-th cell only (k the pixel's size in cells)
        k = max(1, int(min((r1 - r0) / h, (c1 - c0) / w)))
        block = g.read(layer.grid, "map", var, np.array([t]), slice(r0, r1, k), slice(c0, c1, k))[0]
        values[inside] = block[(ri - r0) // k, (ci - c0) // k]
    cm, rng = svc.style(cube, layer, var)
    body = png(cm.colours(values.reshape(h, w), rng))
    return 200, {"Content-Type": PNG, "Cache-Control": "no-cache", "Geoplatform-Snapshot": str(sid),
                 "Geoplatform-Time-Step": str(np.datetime64(int(times[t]), "us")) + "Z"}, body


def _links(tms: TileMatrixSet, href: str, base: str) -> list[dict[str, Any]]:
    return [{"href": href, "rel": "self", "type": JSON, "title": "This tileset"},
            {"href": f"{base}/tileMatrixSets/{tms.id}", "rel": _REL + "tiling-scheme", "type": JSON,
             "title": f"Tile matrix set {tms.id}"},
            {"href": f"{href}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}", "rel": "item", "type": PNG, "templated": True,
             "title": "Map tiles"}]


def tilesets(svc: MapService, layer: GridLayerConfig, href: str, base: str) -> dict[str, Any]:
    items = [{"title": f"{layer.title or layer.id} ({tms.id})", "dataType": "map", "crs": tms.crs_uri,
              **({"tileMatrixSetURI": tms.uri} if tms.uri else {}), "links": _links(tms, f"{href}/{tms.id}", base)}
             for tms in svc.sets.values()]
    return {"tilesets": items, "links": [{"href": href, "rel": "self", "type": JSON, "title": "Map tilesets"}]}


def tileset(svc: MapService, cube: "Cube", layer: GridLayerConfig, tms: TileMatrixSet, href: str,
            base: str) -> dict[str, Any]:
    """TMS 2.0 tileset metadata of the layer's map tiles in ``tms``."""
    row, sid, steps = cube.backend.grids().resolve(layer.grid)
    out: dict[str, Any] = {"title": layer.title or row.spec.title or layer.id, "dataType": "map",
                           "crs": tms.crs_uri, **({"tileMatrixSetURI": tms.uri} if tms.uri else {}),
                           "links": _links(tms, href, base), "mediaTypes": [PNG]}
    geom = row.geometry
    if geom is not None:
        bx = geom.bounds
        xs = np.linspace(bx[0], bx[2], 33)
        ys = np.linspace(bx[1], bx[3], 33)
        ex = np.concatenate([xs, xs, np.full(33, bx[0]), np.full(33, bx[2])])
        ey = np.concatenate([np.full(33, bx[1]), np.full(33, bx[3]), ys, ys])
        with np.errstate(all="ignore"):
            tx, ty = transform_xy(ex, ey, geom.crs, tms.crs_info)
        box = (float(np.nanmin(tx)), float(np.nanmin(ty)), float(np.nanmax(tx)), float(np.nanmax(ty)))
        limits = []
        for m in tms.tile_matrices:
            rng = tms.tile_range(m.id, box)
            if rng is not None:
                limits.append({"tileMatrix": m.id, "minTileRow": rng[0], "maxTileRow": rng[1],
                               "minTileCol": rng[2], "maxTileCol": rng[3]})
        out["tileMatrixSetLimits"] = limits
        lon, lat = transform_xy(ex, ey, geom.crs, "OGC:CRS84")
        out["boundingBox"] = {"lowerLeft": [float(lon.min()), float(lat.min())],
                              "upperRight": [float(lon.max()), float(lat.max())],
                              "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    out["layers"] = [{"id": v.name, "title": v.title or v.name, "dataType": "map",
                      "style": layer.styles.get(v.name, MapStyle()).colormap}
                     for v in row.spec.variables or ()]
    return out


def openapi_paths(layers: Mapping[str, GridLayerConfig]) -> dict[str, Any]:
    """The map tile paths of the grid collections, for the API document."""
    err = {"description": "A bad request", "content": {JSON: {"schema": {"type": "object"}}}}
    doc = {"description": "Tilesets", "content": {JSON: {"schema": {"type": "object"}}}}
    paths: dict[str, Any] = {}
    tms_param = {"name": "tileMatrixSetId", "in": "path", "required": True, "schema": {"type": "string"}}
    for layer in layers.values():
        op = re.sub(r"[^A-Za-z0-9_]", "_", layer.id)
        base = f"/collections/{layer.id}/map/tiles"
        paths[base] = {"get": {"summary": f"Map tilesets of {layer.id}", "operationId": f"{op}_map_tilesets",
                               "responses": {"200": doc, "400": err}}}
        paths[f"{base}/{{tileMatrixSetId}}"] = {"get": {
            "summary": f"Map tileset of {layer.id}", "operationId": f"{op}_map_tileset", "parameters": [tms_param],
            "responses": {"200": doc, "400": err, "404": err}}}
        paths[f"{base}/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"] = {"get": {
            "summary": f"A map tile of {layer.id}", "operationId": f"{op}_map_tile",
            "parameters": [tms_param,
                           {"name": "tileMatrix", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "tileRow", "in": "path", "required": True, "schema": {"type": "integer"}},
                           {"name": "tileCol", "in": "path", "required": True, "schema": {"type": "integer"}},
                           {"name": "datetime", "in": "query", "required": False, "schema": {"type": "string"}},
                           {"name": "parameter-name", "in": "query", "required": False,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "A PNG tile", "content": {PNG: {"schema": {
                "type": "string", "format": "binary"}}}}, "400": err, "404": err}}}
    return paths


def map_routes(params_of: Any) -> list[Any]:
    """The Starlette routes of the map tiles; ``state.platform.grids`` gives the layers."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    svc = MapService()

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def respond(doc: Any) -> Response:
        import orjson

        return Response(orjson.dumps(doc), media_type=JSON)

    def layer_of(request: Request) -> GridLayerConfig:
        return request.state.platform.grid_layer(request.path_params["cid"])  # type: ignore[no-any-return]

    def only_f(request: Request) -> None:
        params = params_of(request)
        unknown = sorted(set(params) - {"f"})
        if unknown or params.get("f") not in (None, "json"):
            raise InvalidParameterValue(f"this resource takes only f=json, not {unknown or params.get('f')}")

    async def sets_(request: Request) -> Response:
        only_f(request)
        layer = layer_of(request)
        href = f"{base_of(request)}/collections/{layer.id}/map/tiles"
        return respond(tilesets(svc, layer, href, base_of(request)))

    async def set_(request: Request) -> Response:
        only_f(request)
        layer = layer_of(request)
        tms = svc.tms(request.path_params["tmsId"])
        href = f"{base_of(request)}/collections/{layer.id}/map/tiles/{tms.id}"
        return respond(await run_in_threadpool(tileset, svc, request.state.platform.cube, layer, tms, href,
                                               base_of(request)))

    async def tile_(request: Request) -> Response:
        layer = layer_of(request)
        tms = svc.tms(request.path_params["tmsId"])
        pp = request.path_params
        status, headers, body = await run_in_threadpool(tile, svc, request.state.platform.cube, layer, tms,
                                                        pp["z"], pp["y"], pp["x"], params_of(request))
        return Response(body, status_code=status, headers=headers)

    return [Route("/collections/{cid}/map/tiles", sets_),
            Route("/collections/{cid}/map/tiles/{tmsId}", set_),
            Route("/collections/{cid}/map/tiles/{tmsId}/{z}/{y}/{x}", tile_)]
