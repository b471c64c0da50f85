"""OGC API - Tiles (Part 1) with Mapbox Vector Tiles over the cube.

Resources: the tile matrix sets (``/tileMatrixSets``), each collection's
tilesets (``/collections/{cid}/tiles/{tmsId}``) and the dataset's, several
collections a layer each (``/tiles/{tmsId}?collections=a,b``), and their tiles
``.../{tileMatrix}/{tileRow}/{tileCol}``. Tiles take ``datetime`` (or
``subset=datetime(...)``) on valid time, CQL2 ``filter`` and ``as-of``, all
pushed into ``cube.query`` exactly as for items.

Choices, per the standard where it leaves one:

* An empty tile inside the limits is ``204 No Content`` (/req/core/tc-error);
  when nothing matched at all it carries ``OATiles-hint: empty``
  (/rec/core/tc-deepfullempty): no tile below it can hold anything either.
* A tile outside the tile matrix, the layer's zoom range or the data's
  tileMatrixSetLimits is a 404; a malformed row, column or parameter a 400.
* A layer's ``tiles.min_zoom``/``max_zoom`` are WebMercatorQuad levels; in
  another set, the levels of the same scale range are served.
* Feature cap: a tile never drops features silently. Up to
  ``max_features`` per layer it is complete; above, the layer is thinned on
  purpose: one feature per cell of the finest power-of-two grid whose
  occupied cells fit (largest bbox wins, then lowest id). The tileset says
  so (``featureLimit`` on each layer) and a thinned tile says by how much
  (``Geoplatform-Tile-Thinned``). A tile without datetime or filter that
  meets far more than the cap, on a dataset with a space copy, is thinned
  from a 1/16 or 1/256 feature-id sample (``Cube.query_sample``) and says
  ``sample=1/k``.

The functions here are framework-free, like ``features.py``; ``tile_routes()``
wraps them for Starlette.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from geoplatform.catalog.layers import LayerConfig
from geoplatform.crs import transform_xy
from geoplatform.cube.query import _bbox_in, plan_query, queryables, resolve_snapshot
from geoplatform.errors import DatasetNotFound, InvalidParameterValue
from geoplatform.ingest.geometry import points_from_wkb
from geoplatform.ogc import features as F
from geoplatform.ogc import mvt
from geoplatform.ogc.tilecache import CachedTile, TileCache
from geoplatform.ogc.tms import TileMatrixSet, load_tile_matrix_sets

MVT = "application/vnd.mapbox-vector-tile"
JSON = "application/json"
TILEJSON = "application/vnd.mapbox.tile+json"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
_CONF = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
TILES_CONFORMANCE = (
    *(_CONF + c for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "dataset-tilesets",
                          "collections-selection", "datetime", "mvt", "oas30")),
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/tilesetmetadata",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilesetmetadata",
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixsetlimits",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixsetlimits",
)
#: What a tile (and a tileset, which passes them on to its tile links) takes.
TILE_PARAMS = frozenset({"f", "datetime", "subset", "filter", "filter-lang", "filter-crs", "as-of"})
_SUBSET = re.compile(r'^\s*datetime\s*\(\s*(?P<lo>"[^"]*"|\*)\s*(?::\s*(?P<hi>"[^"]*"|\*)\s*)?\)\s*$')
_GEOM_DIM = {"Point": 0, "MultiPoint": 0, "LineString": 1, "MultiLineString": 1, "Polygon": 2, "MultiPolygon": 2}
_JSON_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean", "datetime": "string",
               "date": "string", "string": "string"}
_TILEJSON_TYPES = {"integer": "Number", "number": "Number", "boolean": "Boolean"}


class TileSettings(BaseSettings):
    """How vector tiles are made (``GEOPLATFORM_TILES_*``)."""

    model_config = SettingsConfigDict(env_prefix="GEOPLATFORM_TILES_", extra="ignore")

    max_features: int = 20_000
    #: A tile is read from a 1/k feature sample when the sample still holds about
    #: this many features: on average one per 4 x 4 pixels of a 256-pixel tile.
    sample_min_features: int = 4096
    extent: int = 4096
    buffer: int = 64
    simplify_pixels: float = 1.0
    cache_bytes: int = 64 * 1024 * 1024


@dataclass
class TileService:
    """What the tile endpoints of one app share: the sets, the settings, the cache."""

    settings: TileSettings
    sets: dict[str, TileMatrixSet]
    cache: TileCache
    _extents: dict[tuple[str, int], Any] = field(default_factory=dict)
    _limits: dict[tuple[Any, ...], dict[str, tuple[int, int, int, int]]] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: TileSettings | None = None) -> "TileService":
        settings = settings or TileSettings()
        return cls(settings, load_tile_matrix_sets(), TileCache(settings.cache_bytes))

    def tms(self, tms_id: str) -> TileMatrixSet:
        tms = self.sets.get(tms_id)
        if tms is None:
            raise DatasetNotFound(f"no tile matrix set {tms_id!r} (served: {sorted(self.sets)})")
        return tms

    # zoom range and limits ---------------------------------------------------
    def levels(self, tms: TileMatrixSet, layer: LayerConfig) -> list[str]:
        """The tile matrices of ``tms`` a layer is served at: its WebMercatorQuad
        zoom range, as scale denominators."""
        ids = [m.id for m in tms.tile_matrices]
        wmq = self.sets.get("WebMercatorQuad")
        if wmq is None:
            return ids[layer.tiles.min_zoom:layer.tiles.max_zoom + 1]
        scales = [m.scale_denominator for m in wmq.tile_matrices]
        hi = scales[min(layer.tiles.min_zoom, len(scales) - 1)] * (1 + 1e-6)
        lo = scales[min(layer.tiles.max_zoom, len(scales) - 1)] * (1 - 1e-6)
        return [m.id for m in tms.tile_matrices if lo <= m.scale_denominator <= hi]

    def extent(self, cube: Any, dataset: str, snapshot: int) -> tuple[float, float, float, float] | None:
        """The dataset's extent at a snapshot, storage CRS (cached: stats can scan)."""
        key = (dataset, snapshot)
        if key not in self._extents:
            if len(self._extents) > 4096:
                self._extents.clear()
            ext = cube.stats(dataset, as_of=snapshot).extent
            self._extents[key] = None if ext is None else tuple(float(v) for v in ext)
        return self._extents[key]  # type: ignore[no-any-return]

    def limits(self, cube: Any, tms: TileMatrixSet, layer: LayerConfig,
               snapshot: int) -> dict[str, tuple[int, int, int, int]]:
        """tileMatrixSetLimits: per served tile matrix, (min row, max row, min col, max col)
        (cached per snapshot: every tile request checks its tile against them)."""
        spec = cube.dataset(layer.dataset)
        key = (tms.id, layer.id, layer.dataset, snapshot, layer.tiles.min_zoom, layer.tiles.max_zoom,
               spec.storage_crs)
        got = self._limits.get(key)
        if got is None:
            if len(self._limits) > 4096:
                self._limits.clear()
            got = self._limits[key] = self._compute_limits(cube, tms, layer, snapshot)
        return got

    def _compute_limits(self, cube: Any, tms: TileMatrixSet, layer: LayerConfig,
                        snapshot: int) -> dict[str, tuple[int, int, int, int]]:
        spec = cube.dataset(layer.dataset)
        ext = self.extent(cube, layer.dataset, snapshot)
        box = None if ext is None else _bbox_in(ext, spec.storage_crs, tms.crs_info.id)
        out = {}
        for z in self.levels(tms, layer):
            m = tms.matrix(z)
            rng = (0, m.matrix_height - 1, 0, m.matrix_width - 1) if box is None else tms.tile_range(z, box)
            if rng is not None:
                out[z] = rng
        return out


# parameters --------------------------------------------------------------------

def _check_params(params: Mapping[str, str], allowed: frozenset[str], formats: Sequence[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; this resource takes {sorted(allowed)}")
    fmt = params.get("f")
    if fmt is not None and fmt not in formats:
        raise InvalidParameterValue(f"f={fmt!r} is not served here; use {' or '.join(formats)}")


def _datetime(params: Mapping[str, str]) -> str | None:
    """``datetime``, or ``subset=datetime("a":"b")`` as the same interval."""
    subset = params.get("subset")
    if subset is None:
        return params.get("datetime")
    if "datetime" in params:
        raise InvalidParameterValue("give datetime or subset=datetime(...), not both")
    m = _SUBSET.match(subset)
    if m is None:
        raise InvalidParameterValue(f'subset must be datetime("start":"end") or datetime("instant"), '
                                    f'the only axis served; not {subset!r}')

    def point(v: str | None) -> str:
        return ".." if v in (None, "*") else v.strip('"')  # type: ignore[union-attr]

    if m.group("hi") is None:
        return point(m.group("lo"))
    return f"{point(m.group('lo'))}/{point(m.group('hi'))}"


def _query(cube: Any, layer: LayerConfig, params: Mapping[str, str]) -> dict[str, Any]:
    """The cube query keywords for a tile of ``layer``: parsed as for items, and
    planned once so a bad datetime, filter or as-of is a 400/404 before anything else."""
    sub = {k: v for k, v in params.items() if k in ("filter", "filter-lang", "filter-crs", "as-of")}
    when = _datetime(params)
    if when is not None:
        sub["datetime"] = when
    q, *_ = F.query_params(layer, sub)
    if q:  # (nothing to check in a plain tile request)
        plan_query(cube.backend, layer.dataset, **q)
    return q


def select_layers(layers: Mapping[str, LayerConfig], value: str | None) -> list[LayerConfig]:
    """``collections=a,b`` (ids or their URLs), in the order given; all tiled layers when absent."""
    tiled = {k: v for k, v in layers.items() if v.tiles.enabled}
    if value is None:
        return list(tiled.values())
    out = []
    for raw in value.split(","):
        cid = raw.strip().rstrip("/").rsplit("/", 1)[-1]
        if cid not in tiled:
            raise InvalidParameterValue(f"collections: {raw.strip()!r} is not a collection with tiles "
                                        f"(tiled: {sorted(tiled)})")
        if tiled[cid] not in out:
            out.append(tiled[cid])
    if not out:
        raise InvalidParameterValue("collections names no collection")
    return out


def tiled_layer(layers: Mapping[str, LayerConfig], cid: str) -> LayerConfig:
    layer = layers.get(cid)
    if layer is None or not layer.tiles.enabled:
        raise DatasetNotFound(f"no collection {cid!r} with tiles")
    return layer


def _passed_on(params: Mapping[str, str]) -> str:
    keep = {k: v for k, v in params.items() if k != "f"}
    return f"?{urlencode(keep)}" if keep else ""


# metadata ------------------------------------------------------------------------

def tile_matrix_sets(svc: TileService, base: str) -> dict[str, Any]:
    return {"tileMatrixSets": [
        {"id": t.id, "title": t.title or t.id, **({"uri": t.uri} if t.uri else {}), "crs": t.crs_uri,
         "links": [{"href": f"{base}/tileMatrixSets/{t.id}", "rel": "self", "type": JSON,
                    "title": f"The {t.id} tile matrix set"}]}
        for t in svc.sets.values()],
        "links": [{"href": f"{base}/tileMatrixSets", "rel": "self", "type": JSON, "title": "Tile matrix sets"}]}


def _tileset_links(tms: TileMatrixSet, href: str, base: str, qs: str) -> list[dict[str, Any]]:
    tiles = f"{href}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}{qs}"
    links = [
        {"href": f"{href}{qs}", "rel": "self", "type": JSON, "title": f"This tileset ({tms.id})"},
        {"href": f"{base}/tileMatrixSets/{tms.id}", "rel": REL + "tiling-scheme", "type": JSON,
         "title": f"The {tms.id} tile matrix set"},
        {"href": tiles, "rel": "item", "type": MVT, "templated": True, "title": "Mapbox vector tiles"},
    ]
    if tms.id == "WebMercatorQuad":
        sep = "&" if qs else "?"
        links.append({"href": f"{href}{qs}{sep}f=tilejson", "rel": "alternate", "type": TILEJSON,
                      "title": "TileJSON 3.0.0"})
    return links


def tilesets(svc: TileService, href: str, base: str, title: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The tilesets list at ``href`` (``.../tiles``): one per tile matrix set."""
    qs = _passed_on(params)
    items = []
    for tms in svc.sets.values():
        links = _tileset_links(tms, f"{href}/{tms.id}", base, qs)
        items.append({"title": f"{title} ({tms.id})", "dataType": "vector", "crs": tms.crs_uri,
                      **({"tileMatrixSetURI": tms.uri} if tms.uri else {}), "links": links})
    return {"tilesets": items, "links": [{"href": f"{href}{qs}", "rel": "self", "type": JSON, "title": "Tilesets"}]}


def _crs84_box(cube: Any, layer: LayerConfig, svc: TileService, snapshot: int) -> list[float] | None:
    ext = svc.extent(cube, layer.dataset, snapshot)
    if ext is None:
        return None
    return list(_bbox_in(ext, cube.dataset(layer.dataset).storage_crs, "OGC:CRS84"))


def _fields(cube: Any, layer: LayerConfig) -> dict[str, str]:
    """Published property -> queryable kind, as the tiles carry them."""
    spec = cube.dataset(layer.dataset)
    out = {}
    for name, kind in queryables(spec).items():
        if kind == "geometry" or (name == "fid" and kind == "integer"):
            continue  # an integer id is the MVT feature id
        if layer.properties is None or name in layer.properties or name in ("fid", "version", "valid_from",
                                                                               "valid_to"):
            out[name] = kind
    return out


def _layer_doc(svc: TileService, cube: Any, tms: TileMatrixSet, layer: LayerConfig, snapshot: int,
               base: str) -> dict[str, Any]:
    spec = cube.dataset(layer.dataset)
    levels = svc.levels(tms, layer)
    doc: dict[str, Any] = {"id": layer.id, "title": layer.title or spec.title or layer.id, "dataType": "vector",
                           "featureType": layer.dataset, "crs": tms.crs_uri}
    if spec.geometry_type in _GEOM_DIM:
        doc["geometryDimension"] = _GEOM_DIM[spec.geometry_type]
    if levels:
        lo, hi = tms.matrix(levels[0]), tms.matrix(levels[-1])
        doc.update(minTileMatrix=lo.id, maxTileMatrix=hi.id, maxScaleDenominator=lo.scale_denominator,
                   minScaleDenominator=hi.scale_denominator, maxCellSize=lo.cell_size, minCellSize=hi.cell_size)
    box = _crs84_box(cube, layer, svc, snapshot)
    if box is not None:
        doc["boundingBox"] = {"lowerLeft": box[:2], "upperRight": box[2:], "crs": F.CRS84}
    doc["propertiesSchema"] = {"type": "object", "properties": {
        k: {"type": _JSON_TYPES.get(v, "string"), **({"format": "date-time"} if v == "datetime" else {})}
        for k, v in _fields(cube, layer).items()}}
    s = svc.settings
    doc["featureLimit"] = {
        "maxFeaturesPerTile": s.max_features, "whenExceeded": "grid-thinning",
        "description": f"A tile holds every matching feature up to {s.max_features}. Above that the layer is "
                       "thinned on purpose: one feature per cell of the finest power-of-two grid over the tile "
                       "whose occupied cells fit the limit (the largest bbox wins, then the lowest id); such a "
                       "tile has the header Geoplatform-Tile-Thinned. Where a tile without datetime or filter "
                       "meets far more features than the limit and the dataset keeps a space copy, it is made "
                       "from a 1/16 or 1/256 sample of the features chosen by feature id (the sparsest that "
                       f"still holds about {s.sample_min_features} features), as tippecanoe drops a share of "
                       "points per zoom level; its header then says sample=1/k and matched=~ an estimate. Lines "
                       f"and polygons are simplified to {s.simplify_pixels:g} tile pixel, and a polygon within "
                       "that both ways is drawn as its bounding box; points are never simplified."}
    doc["links"] = [{"href": f"{base}/collections/{layer.id}", "rel": REL + "geodata", "type": JSON,
                     "title": doc["title"]}]
    return doc


def tileset(svc: TileService, cube: Any, layers: Sequence[LayerConfig], tms: TileMatrixSet, href: str,
            base: str, params: Mapping[str, str], title: str) -> dict[str, Any]:
    """The tileset metadata (TMS 2.0 tileset) of ``layers`` in ``tms``."""
    as_of = params.get("as-of")
    for layer in layers:
        _query(cube, layer, params)  # the parameters passed on to the tile links must be good
    snaps = [resolve_snapshot(cube.backend, layer.dataset, as_of) for layer in layers]
    limits: dict[str, list[int]] = {}
    for layer, snap in zip(layers, snaps):
        for z, (r0, r1, c0, c1) in svc.limits(cube, tms, layer, snap).items():
            cur = limits.get(z)
            limits[z] = [r0, r1, c0, c1] if cur is None else [min(cur[0], r0), max(cur[1], r1),
                                                               min(cur[2], c0), max(cur[3], c1)]
    order = {m.id: i for i, m in enumerate(tms.tile_matrices)}
    docs = [_layer_doc(svc, cube, tms, layer, snap, base) for layer, snap in zip(layers, snaps)]
    boxes = [d["boundingBox"] for d in docs if "boundingBox" in d]
    out: dict[str, Any] = {
        "title": title, "dataType": "vector", "crs": tms.crs_uri,
        **({"tileMatrixSetURI": tms.uri} if tms.uri else {}),
        "links": _tileset_links(tms, href, base, _passed_on(params)),
        "tileMatrixSetLimits": [{"tileMatrix": z, "minTileRow": v[0], "maxTileRow": v[1], "minTileCol": v[2],
                                 "maxTileCol": v[3]} for z, v in sorted(limits.items(), key=lambda kv: order[kv[0]])],
        "layers": docs,
        "mediaTypes": [MVT],
    }
    if boxes:
        out["boundingBox"] = {"lowerLeft": [min(b["lowerLeft"][0] for b in boxes), min(b["lowerLeft"][1] for b in boxes)],
                              "upperRight": [max(b["upperRight"][0] for b in boxes),
                                             max(b["upperRight"][1] for b in boxes)], "crs": F.CRS84}
    return out


def tilejson(doc: Mapping[str, Any], name: str, cube: Any, layers: Sequence[LayerConfig], svc: TileService,
             tms: TileMatrixSet) -> dict[str, Any]:
    """TileJSON 3.0.0 of a WebMercatorQuad tileset document."""
    item = next(link["href"] for link in doc["links"] if link["rel"] == "item")
    tiles = item.replace("{tileMatrix}", "{z}").replace("{tileRow}", "{y}").replace("{tileCol}", "{x}")
    vector_layers = []
    for layer, ldoc in zip(layers, doc["layers"]):
        levels = svc.levels(tms, layer)
        vector_layers.append({"id": layer.id, "description": ldoc["title"],
                              "minzoom": int(levels[0]) if levels else 0,
                              "maxzoom": int(levels[-1]) if levels else 0,
                              "fields": {k: _TILEJSON_TYPES.get(v, "String") for k, v in _fields(cube, layer).items()}})
    minzoom = min((v["minzoom"] for v in vector_layers), default=0)
    maxzoom = max((v["maxzoom"] for v in vector_layers), default=0)
    out: dict[str, Any] = {"tilejson": "3.0.0", "name": name, "description": doc["title"], "scheme": "xyz",
                           "tiles": [tiles], "minzoom": minzoom, "maxzoom": maxzoom, "vector_layers": vector_layers}
    if "boundingBox" in doc:
        b = [*doc["boundingBox"]["lowerLeft"], *doc["boundingBox"]["upperRight"]]
        out["bounds"] = b
        out["center"] = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, minzoom]
    return out


# tiles ---------------------------------------------------------------------------

def _int(name: str, value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise InvalidParameterValue(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class _LayerResult:
    layer: mvt.TileLayer
    matched: int
    thinned: tuple[int, int, int, int] | None  # matched (estimated when sampled), kept, grid cells per side, k of 1/k sampled


#: (tiles across a tile matrix, at least; margin): how much larger than the tolerance a
#: polygon may look beside the query box in the storage CRS and still be within it in the
#: tile's. More than the scale changes across a tile: 8 times for a tile an eighth of the
#: world wide, 1.5 from a 64th (Web Mercator's changes by under 10% there, up to 80 degrees
#: north). Wider tiles test every polygon in the tile's CRS.
_TINY_MARGINS: tuple[tuple[int, float], ...] = ((64, 1.5), (8, 8.0))


def _make_layer(svc: TileService, cube: Any, layer: LayerConfig, tms: TileMatrixSet, z: str,
                bounds: tuple[float, float, float, float], qbox: tuple[float, float, float, float],
                q: dict[str, Any]) -> _LayerResult:
    s = svc.settings
    crs = tms.crs_info.id
    spec = cube.dataset(layer.dataset)
    if spec.geometry_type == "Point":
        fast = _point_layer(svc, cube, layer, spec, tms, bounds, qbox, q)
        if fast is not None:
            return fast
    # every shape is clipped to the buffered tile below, so the query keeps what its bbox says
    t, k = cube.query_sample(layer.dataset, s.sample_min_features, exact_bbox=False, bbox=qbox, bbox_crs=crs, **q)

    stored = t.column("bbox").combine_chunks()
    stored = [stored.field(i).to_numpy(zero_copy_only=False) for i in range(4)]

    def boxes_of(rows: np.ndarray) -> np.ndarray:
        # stored bboxes, corners taken to the tile's CRS: only the features kept are decoded
        b = [v[rows] for v in stored]
        x, y = transform_xy(np.concatenate([b[0], b[2]]), np.concatenate([b[1], b[3]]), spec.storage_crs, crs)
        n = len(rows)
        x0, y0, x1, y1 = x[:n], y[:n], x[n:], y[n:]
        return np.column_stack([np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)])

    @functools.cache
    def boxes() -> np.ndarray:
        return boxes_of(np.arange(len(t)))

    matched = len(t) * k
    keep, thinned = _thin(s, t, k, boxes, bounds)
    tolerance = s.simplify_pixels * s.extent / tms.matrix(z).tile_width
    rows = np.arange(len(t)) if keep is None else keep
    tiny = np.zeros(len(rows), bool)
    tiny_boxes = np.empty((0, 4))
    if spec.geometry_type in ("Polygon", "MultiPolygon") and tolerance > 0 and len(rows):
        # A polygon within the tolerance both ways simplifies to its box: drawn from the
        # stored bbox, its geometry is never decoded (most of a low-zoom tile's buildings).
        maybe = np.arange(len(rows))
        tiles_across = tms.matrix(z).matrix_width
        margin = next((m for least, m in _TINY_MARGINS if tiles_across >= least), None)
        if margin is not None:
            # Only a polygon small beside the query box in the storage CRS too can be: the
            # others are not converted.
            sb = _bbox_in(qbox, crs, spec.storage_crs)
            across = (s.extent + 2 * s.buffer) / (margin * tolerance)
            maybe = np.flatnonzero(((stored[2][rows] - stored[0][rows]) * across <= sb[2] - sb[0])
                                   & ((stored[3][rows] - stored[1][rows]) * across <= sb[3] - sb[1]))
        if len(maybe):
            # (thinning converted every row's box already)
            b = boxes()[rows[maybe]] if thinned is not None else boxes_of(rows[maybe])
            unit = ((bounds[2] - bounds[0]) / s.extent, (bounds[3] - bounds[1]) / s.extent)
            small = ((b[:, 2] - b[:, 0]) <= tolerance * unit[0]) & ((b[:, 3] - b[:, 1]) <= tolerance * unit[1])
            tiny[maybe], tiny_boxes = small, b[small]
    if keep is not None:
        t = t.take(pa.array(keep))
    full = np.flatnonzero(~tiny)
    wkb = t.column("geometry").take(pa.array(full)) if len(full) < len(t) else t.column("geometry")
    geo = mvt.prepare_wkb(wkb, bounds, extent=s.extent, buffer=s.buffer, tolerance=tolerance,
                          convert=lambda x, y: transform_xy(x, y, spec.storage_crs, crs))  # (tiles are 2D)
    if tiny.any():
        small = np.flatnonzero(tiny)
        geo = mvt.concat([(geo, full), (mvt.prepare_boxes(tiny_boxes, bounds, extent=s.extent,
                                                           buffer=s.buffer), small)])
    t = t.drop_columns(["bbox"])
    return _LayerResult(_tile_layer(layer, geo, t, s.extent), matched, thinned)


def _point_layer(svc: TileService, cube: Any, layer: LayerConfig, spec: Any, tms: TileMatrixSet,
                 bounds: tuple[float, float, float, float], qbox: tuple[float, float, float, float],
                 q: dict[str, Any]) -> _LayerResult | None:
    """A point layer from coordinates alone: the WKB is read as numbers, converted
    to the tile's CRS as arrays and thinned before any geometry object is made
    (a low-zoom tile over a time series matches millions of points). None when the
    column is not plain 2D points; the general path then takes it."""
    s = svc.settings
    t, k = cube.query_sample(layer.dataset, s.sample_min_features, bbox=qbox, bbox_crs=tms.crs_info.id, **q)
    t = t.drop_columns(["bbox"])
    if not len(t):
        return None
    xy = points_from_wkb(t.column("geometry"))
    if xy is None or not (np.isfinite(xy[0]).all() and np.isfinite(xy[1]).all()):  # empty points: general path
        return None
    x, y = transform_xy(xy[0], xy[1], spec.storage_crs, tms.crs_info.id)
    matched = len(t) * k
    keep, thinned = _thin(s, t, k, lambda: np.column_stack([x, y, x, y]), bounds)
    if keep is not None:
        x, y, t = x[keep], y[keep], t.take(pa.array(keep))
    geo = mvt.prepare_points(np.column_stack([x, y]), bounds, extent=s.extent, buffer=s.buffer)
    return _LayerResult(_tile_layer(layer, geo, t, s.extent), matched, thinned)


def _thin(s: TileSettings, t: pa.Table, k: int, boxes: Any, bounds: tuple[float, float, float, float]
          ) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None]:
    """Which rows of ``t`` (a 1/k sample when k > 1) a tile keeps, None for all, and
    what its Geoplatform-Tile-Thinned header reports. A layer over the cap, or a
    sample (generalised already), keeps one feature per grid cell; ``boxes()``
    gives the rows' (n, 4) bboxes in the tile's CRS."""
    matched = len(t) * k
    if len(t) <= s.max_features and k == 1:
        return None, None
    rank = _id_order(t.column("fid"))
    keep, grid = mvt.thin_boxes(boxes(), bounds, s.max_features, rank, s.extent)
    return keep, (matched, len(keep), grid, k)


def _id_order(col: pa.ChunkedArray) -> np.ndarray:
    """A key that orders feature ids, lowest first: integer ids (or ids that are all
    decimal integers, by value) order themselves; other text ids by their rank, one
    sort in Arrow (two numpy sorts of Python strings took 15 of a z10 tile's 75 ms)."""
    if pa.types.is_integer(col.type):
        return col.to_numpy(zero_copy_only=False)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            return pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pc.rank(col, sort_keys="ascending", tiebreaker="first").to_numpy(zero_copy_only=False)


def _tile_layer(layer: LayerConfig, geo: Any, t: pa.Table, extent: int) -> mvt.TileLayer:
    """The layer's properties (and integer ids as MVT feature ids) beside its geometry."""
    fid = t.column("fid") if len(t) else None
    ids = None
    drop = ["geometry", "record_from"]
    if fid is not None and pa.types.is_integer(fid.type) and pc.min(fid).as_py() >= 0:
        ids = fid.to_numpy().astype(np.uint64)
        drop.append("fid")
    props = t.drop_columns([c for c in drop if c in t.column_names])
    return mvt.TileLayer(layer.id, geo, props, ids, extent)


def tile(svc: TileService, cube: Any, layers: Sequence[LayerConfig], tms: TileMatrixSet, z: str, row_s: str,
         col_s: str, params: Mapping[str, str], if_none_match: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One MVT tile of ``layers`` (a layer each, in order)."""
    row, col = _int("tileRow", row_s), _int("tileCol", col_s)
    try:
        tms.matrix(z)
    except KeyError:
        raise DatasetNotFound(f"tile matrix set {tms.id!r} has no tile matrix {z!r}") from None
    if not tms.contains(z, row, col):
        raise DatasetNotFound(f"tile {z}/{row}/{col} is outside tile matrix {z!r} of {tms.id}")
    with cube.backend.consistent():  # one state of the store for the whole tile
        return _tile(svc, cube, layers, tms, z, row, col, params, if_none_match)


def _tile(svc: TileService, cube: Any, layers: Sequence[LayerConfig], tms: TileMatrixSet, z: str, row: int,
          col: int, params: Mapping[str, str], if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
    queries = [_query(cube, layer, params) for layer in layers]
    as_of = params.get("as-of")
    snaps = tuple((layer.dataset, resolve_snapshot(cube.backend, layer.dataset, as_of)) for layer in layers)
    served = []
    for layer, (_, snap) in zip(layers, snaps):
        lim = svc.limits(cube, tms, layer, snap).get(z)
        if lim is not None and lim[0] <= row <= lim[1] and lim[2] <= col <= lim[3]:
            served.append(layer)
    if not served:
        raise DatasetNotFound(f"tile {z}/{row}/{col} of {tms.id} is outside the tileMatrixSetLimits of "
                              f"{', '.join(layer.id for layer in layers)}")
    key = (tuple(layer.id for layer in layers), tms.id, z, row, col, *(params.get(k) for k in sorted(TILE_PARAMS)))
    cached = svc.cache.get(key, snaps, cube.backend.changed_bounds)
    state = "hit"
    if cached is None:
        state = "miss"
        cached = _render(svc, cube, layers, served, queries, snaps, tms, z, row, col)
        svc.cache.put(key, cached)
    headers = {**cached.headers, "Geoplatform-Tile-Cache": state}
    if not cached.body:
        return 204, headers, b""
    headers.update({"ETag": cached.etag, "Content-Type": MVT})
    if if_none_match is not None and cached.etag in [e.strip() for e in if_none_match.split(",")]:
        return 304, headers, b""
    return 200, headers, cached.body


def _render(svc: TileService, cube: Any, layers: Sequence[LayerConfig], served: list[LayerConfig],
            queries: list[dict[str, Any]], snaps: tuple[tuple[str, int], ...], tms: TileMatrixSet, z: str,
            row: int, col: int) -> CachedTile:
    s = svc.settings
    bounds = tms.tile_bounds(z, row, col)
    px, py = (bounds[2] - bounds[0]) * s.buffer / s.extent, (bounds[3] - bounds[1]) * s.buffer / s.extent
    mb = tms.matrix_bounds(z)  # the query stays inside the CRS's range
    qbox = (max(bounds[0] - px, mb[0]), max(bounds[1] - py, mb[1]), min(bounds[2] + px, mb[2]),
            min(bounds[3] + py, mb[3]))
    results, boxes = [], []
    for layer, q in zip(layers, queries):
        boxes.append(_bbox_in(qbox, tms.crs_info.id, cube.dataset(layer.dataset).storage_crs))
        if layer in served:
            results.append(_make_layer(svc, cube, layer, tms, z, bounds, qbox, q))
    body = mvt.encode_tile([r.layer for r in results])
    headers = {"Cache-Control": "no-cache"}
    if all(isinstance(v, str) and re.fullmatch(r"[0-9]+", v) for v in [q.get("as_of") for q in queries]):
        headers["Cache-Control"] = "public, max-age=86400, immutable"  # a snapshot never changes
    thin = [f"{r.layer.name} matched={'~' if r.thinned[3] > 1 else ''}{r.thinned[0]} kept={r.thinned[1]} "
            f"grid={r.thinned[2]}" + (f" sample=1/{r.thinned[3]}" if r.thinned[3] > 1 else "")
            for r in results if r.thinned]
    if thin:
        headers["Geoplatform-Tile-Thinned"] = "; ".join(thin)
    if not body and sum(r.matched for r in results) == 0:
        headers["OATiles-hint"] = "empty"
    # a strong validator of the bytes (SHA-256: hardware-assisted, twice BLAKE2b's speed here)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return CachedTile(body, etag, headers, snaps, tuple(boxes))


# links for the landing page and collections ----------------------------------------

def landing_links(base: str) -> list[dict[str, Any]]:
    return [{"href": f"{base}/tileMatrixSets", "rel": REL + "tiling-schemes", "type": JSON,
             "title": "Tile matrix sets"},
            {"href": f"{base}/tiles", "rel": REL + "tilesets-vector", "type": JSON,
             "title": "Vector tilesets of the dataset (collections as layers)"}]


def collection_links(layer: LayerConfig, href: str) -> list[dict[str, Any]]:
    if not layer.tiles.enabled:
        return []
    return [{"href": f"{href}/tiles", "rel": REL + "tilesets-vector", "type": JSON, "title": "Vector tilesets"}]


# routes --------------------------------------------------------------------------

def _json(body: Any, media: str = JSON) -> Response:
    return Response(orjson.dumps(body), media_type=media)


def _params(request: Request) -> dict[str, str]:
    q = request.query_params
    twice = [k for k in q.keys() if len(q.getlist(k)) > 1]
    if twice:
        raise InvalidParameterValue(f"parameter {twice[0]!r} is given more than once")
    return dict(q)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def tile_routes(settings: TileSettings | None = None) -> list[Route]:
    """The Starlette routes of OGC API - Tiles; the app's ``state.platform``
    gives the cube and the layers. One :class:`TileService` (and cache) per call."""
    svc = TileService.create(settings)

    async def tms_list(request: Request) -> Response:
        _check_params(_params(request), frozenset({"f"}), ("json",))
        return _json(tile_matrix_sets(svc, _base(request)))

    async def tms_one(request: Request) -> Response:
        _check_params(_params(request), frozenset({"f"}), ("json",))
        return _json(svc.tms(request.path_params["tmsId"]).to_dict())

    def _layers(request: Request, params: dict[str, str]) -> tuple[list[LayerConfig], str, str]:
        p = request.state.platform
        base = _base(request)
        cid = request.path_params.get("cid")
        if cid is None:
            return select_layers(p.layers, params.pop("collections", None)), f"{base}/tiles", "Dataset"
        layer = tiled_layer(p.layers, cid)
        return [layer], f"{base}/collections/{cid}/tiles", layer.title or layer.id

    def _allowed(request: Request) -> frozenset[str]:
        return TILE_PARAMS | ({"collections"} if "cid" not in request.path_params else set())

    async def tilesets_(request: Request) -> Response:
        params = _params(request)
        _check_params(params, _allowed(request), ("json",))
        layers, href, title = _layers(request, dict(params))
        return _json(tilesets(svc, href, _base(request), title, params))

    async def tileset_(request: Request) -> Response:
        params = _params(request)
        _check_params(params, _allowed(request), ("json", "tilejson"))
        p = request.state.platform
        tms = svc.tms(request.path_params["tmsId"])
        layers, href, title = _layers(request, dict(params))
        if params.get("f") == "tilejson" and tms.id != "WebMercatorQuad":
            raise InvalidParameterValue("TileJSON describes WebMercatorQuad tiles only")
        doc = await run_in_threadpool(tileset, svc, p.cube, layers, tms, f"{href}/{tms.id}", _base(request),
                                      {k: v for k, v in params.items() if k != "f"}, title)
        if params.get("f") == "tilejson":
            return _json(tilejson(doc, title, p.cube, layers, svc, tms))
        return _json(doc)

    async def tile_(request: Request) -> Response:
        params = _params(request)
        _check_params(params, _allowed(request), ("mvt",))
        p = request.state.platform
        tms = svc.tms(request.path_params["tmsId"])
        layers, _, _ = _layers(request, params)
        pp = request.path_params
        status, headers, body = await run_in_threadpool(tile, svc, p.cube, layers, tms, pp["z"], pp["y"], pp["x"],
                                                        params, request.headers.get("if-none-match"))
        return Response(body, status_code=status, headers=headers)

    return [
        Route("/tileMatrixSets", tms_list),
        Route("/tileMatrixSets/{tmsId}", tms_one),
        Route("/tiles", tilesets_),
        Route("/tiles/{tmsId}", tileset_),
        Route("/tiles/{tmsId}/{z}/{y}/{x}", tile_),
        Route("/collections/{cid}/tiles", tilesets_),
        Route("/collections/{cid}/tiles/{tmsId}", tileset_),
        Route("/collections/{cid}/tiles/{tmsId}/{z}/{y}/{x}", tile_),
    ]


# OpenAPI -------------------------------------------------------------------------

def _oa_param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False,
              **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description, **extra}


def openapi_paths(layers: Mapping[str, LayerConfig], tms_ids: Sequence[str]) -> dict[str, Any]:
    """The OpenAPI 3.0 paths of the tiles resources, operationIds suffixed as
    OGC API - Tiles (clause 14) says: ``.collection.vector.getTile`` and so on."""
    error = {"description": "An error, as an OGC exception",
             "content": {JSON: {"schema": {"$ref": "#/components/schemas/exception"}}}}
    meta = {"200": {"description": "Metadata", "content": {JSON: {"schema": {"type": "object"}}}},
            "400": error, "404": error}
    tms_param = _oa_param("tileMatrixSetId", "path", {"type": "string", "enum": list(tms_ids)}, "Tile matrix set")
    query = [
        _oa_param("datetime", "query", {"type": "string"}, "Valid time: an instant or an interval (RFC 3339, .. "
                  "for an open end)", style="form", explode=False),
        _oa_param("subset", "query", {"type": "string"}, 'Valid time as subset=datetime("start":"end")'),
        _oa_param("filter", "query", {"type": "string"}, "CQL2 filter"),
        _oa_param("filter-lang", "query", {"type": "string", "enum": ["cql2-text", "cql2-json"]}, "Filter language"),
        _oa_param("filter-crs", "query", {"type": "string", "enum": [F.CRS84]}, "CRS of geometry literals"),
        _oa_param("as-of", "query", {"type": "string"}, "Record time: a snapshot id or an RFC 3339 date-time"),
    ]
    tiled = [k for k, v in layers.items() if v.tiles.enabled]
    # (OpenAPI allows no empty enum: a server without a tiled layer takes any name, and answers 404)
    collections = _oa_param("collections", "query", {"type": "array", "items": {
        "type": "string", **({"enum": tiled} if tiled else {})}}, "Collections, a layer each, in this order",
        style="form", explode=False)
    tile_params = [tms_param, _oa_param("tileMatrix", "path", {"type": "string"}, "Tile matrix (zoom level)"),
                   _oa_param("tileRow", "path", {"type": "integer", "minimum": 0}, "Row, from the top"),
                   _oa_param("tileCol", "path", {"type": "integer", "minimum": 0}, "Column, from the left"),
                   _oa_param("f", "query", {"type": "string", "enum": ["mvt"]}, "Tile format"), *query]
    tile_resp = {"200": {"description": "A Mapbox vector tile",
                         "content": {MVT: {"schema": {"type": "string", "format": "binary"}}}},
                 "204": {"description": "No data in this tile"}, "304": {"description": "Not modified"},
                 "400": error, "404": error}
    f_meta = _oa_param("f", "query", {"type": "string", "enum": ["json"]}, "Format")
    f_tileset = _oa_param("f", "query", {"type": "string", "enum": ["json", "tilejson"]},
                          "json (tileset metadata) or tilejson (TileJSON 3.0.0, WebMercatorQuad only)")
    paths: dict[str, Any] = {
        "/tileMatrixSets": {"get": {"summary": "Tile matrix sets", "operationId": "getTileMatrixSetsList",
                                    "parameters": [f_meta], "responses": meta}},
        "/tileMatrixSets/{tileMatrixSetId}": {"get": {
            "summary": "A tile matrix set", "operationId": "getTileMatrixSet", "parameters": [tms_param, f_meta],
            "responses": meta}},
    }

    def family(prefix: str, op: str, origin: str, extra: list[dict[str, Any]]) -> None:
        paths[f"{prefix}/tiles"] = {"get": {
            "summary": "Vector tilesets", "operationId": f"{op}.{origin}.vector.getTileSetsList",
            "parameters": [f_meta, *query, *extra], "responses": meta}}
        paths[f"{prefix}/tiles/{{tileMatrixSetId}}"] = {"get": {
            "summary": "Vector tileset metadata", "operationId": f"{op}.{origin}.vector.getTileSet",
            "parameters": [tms_param, f_tileset, *query, *extra], "responses": meta}}
        paths[f"{prefix}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"] = {"get": {
            "summary": "A vector tile", "operationId": f"{op}.{origin}.vector.getTile",
            "parameters": [*tile_params, *extra], "responses": tile_resp}}

    family("", "dataset", "dataset", [collections])
    for layer in layers.values():
        if layer.tiles.enabled:
            family(f"/collections/{layer.id}", layer.id.replace("-", "_"), "collection", [])
    return paths
