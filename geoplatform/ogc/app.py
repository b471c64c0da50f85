"""The OGC API web application: ``create_app(settings)``.

One Starlette app per call, holding its own open cube and layer table: no
module state, nothing built per request. Cube calls are blocking (Parquet,
SQLite), so they run in Starlette's thread pool.

Served so far: landing page, conformance, the OpenAPI 3.0 document,
collections and each collection's metadata, items and single items (Features
Part 1 core and GeoJSON, Part 2 CRS, Part 3 CQL2 filtering), queryables, and
create / replace / update / delete of items on editable layers (Part 4, with
ETag / If-Match; writes need the configured API key).
"""

from __future__ import annotations

import contextlib
import hmac
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from geoplatform.catalog.describe import describe
from geoplatform.catalog.layers import (
    AggregateLayerConfig, GridLayerConfig, LayerConfig, SeriesLayerConfig, load_aggregate_layers, load_grid_layers,
    load_layers, load_series_layers,
)
from geoplatform.catalog.models import CityCatalog, load_city_catalog
from geoplatform.crs import resolve_crs, warm_transforms
from geoplatform.cube.cql2 import SUPPORTED_CONFORMANCE
from geoplatform.cube.cube import Cube, open_cube
from geoplatform.cube.query import queryables
from geoplatform.errors import (
    CatalogError, DatasetNotFound, Forbidden, GeoPlatformError, InvalidParameterValue, StoreError, Unauthorized,
)
from geoplatform.ogc import coverages as CV
from geoplatform.ogc import edr as E
from geoplatform.ogc import edr_aggregate as EA
from geoplatform.ogc import edr_series as ES
from geoplatform.ogc import features as F
from geoplatform.ogc import maptiles as MP
from geoplatform.ogc import tiles as TL
from geoplatform.ogc import records as R
from geoplatform.ogc import transactions as T
from geoplatform.ogc.html import HTML, STATIC_DIR, Pages, wants_html
from geoplatform.ogc.openapi import openapi_document
from geoplatform.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    *SUPPORTED_CONFORMANCE,
    *TL.TILES_CONFORMANCE,
    *R.RECORDS_CONFORMANCE,
    *E.EDR_CONFORMANCE,
    *MP.MAP_CONFORMANCE,
    *CV.COVERAGES_CONFORMANCE,
)


@dataclass
class Platform:
    """What one app serves: an open cube and the published layers in it."""

    cube: Cube
    layers: dict[str, LayerConfig]
    catalog: CityCatalog
    grids: dict[str, GridLayerConfig] = field(default_factory=dict)
    series: dict[str, SeriesLayerConfig] = field(default_factory=dict)
    aggregates: dict[str, AggregateLayerConfig] = field(default_factory=dict)

    def layer(self, cid: str) -> LayerConfig:
        layer = self.layers.get(cid)
        if layer is None:
            if cid in self.grids:
                raise DatasetNotFound(f"collection {cid!r} is a grid: it serves EDR queries "
                                      f"({', '.join(E.QUERY_TYPES)}), not features")
            if cid in self.series:
                raise DatasetNotFound(f"collection {cid!r} is a sensor series: it serves EDR queries "
                                      f"({', '.join(ES.QUERY_TYPES)}) and its stations as items")
            if cid in self.aggregates:
                raise DatasetNotFound(f"collection {cid!r} is an aggregate on a grid: it serves EDR queries "
                                      f"({', '.join(EA.QUERY_TYPES)}), not features")
            raise DatasetNotFound(f"no collection {cid!r}")
        return layer

    def grid_layer(self, cid: str) -> GridLayerConfig:
        layer = self.grids.get(cid)
        if layer is None:
            if cid in self.layers or cid in self.series or cid in self.aggregates:
                raise DatasetNotFound(f"collection {cid!r} is not a grid: it serves no grid query")
            raise DatasetNotFound(f"no collection {cid!r}")
        return layer


def _json(body: Any, status: int = 200, media: str = JSON, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media, headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _no_params(request: Request) -> None:
    """Metadata resources take no parameters but ``f``; anything else is a 400."""
    extra = sorted(_params(request))
    if extra:
        raise InvalidParameterValue(f"unknown query parameters {extra}; this resource takes only f")


def _params_edr(request: Request) -> dict[str, str]:
    """EDR query parameters, each at most once (``f`` is the query's own)."""
    params: dict[str, str] = {}
    for k, v in request.query_params.multi_items():
        if k in params:
            raise InvalidParameterValue(f"parameter {k!r} is given more than once")
        params[k] = v
    return params


def _params(request: Request) -> dict[str, str]:
    """Query parameters, each at most once; ``f`` is json (the default) or html."""
    params = _params_edr(request)
    fmt = params.pop("f", None)
    if fmt not in (None, "json", "geojson", "html"):
        raise InvalidParameterValue(f"f={fmt!r} is not served; use f=json or f=html")
    return params


async def landing(request: Request) -> Response:
    _no_params(request)
    base = _base(request)
    p: Platform = request.app.state.platform
    doc = {
        "title": f"{p.catalog.city.name} spatio-temporal platform",
        "description": p.catalog.city.description or "",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": JSON, "title": "This document"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": JSON, "title": "Conformance"},
            {"href": f"{base}/api", "rel": "service-desc", "type": OPENAPI, "title": "The API definition"},
            {"href": f"{base}/collections", "rel": "data", "type": JSON, "title": "Collections"},
            *TL.landing_links(base),
            {"href": f"{base}/?f=html", "rel": "alternate", "type": HTML, "title": "This document as HTML"},
        ],
    }
    if wants_html(request):
        return await run_in_threadpool(request.app.state.pages.landing, base, doc)
    return _json(doc)


async def api(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.app.state.platform
    specs = {layer.dataset: p.cube.dataset(layer.dataset) for layer in p.layers.values()}
    doc = openapi_document(p.layers, specs, f"{p.catalog.city.name} spatio-temporal platform", _base(request))
    doc["paths"].update(R.openapi_paths())
    doc["paths"].update(E.openapi_paths(p.grids))
    doc["paths"].update(MP.openapi_paths(p.grids))
    doc["paths"].update(CV.openapi_paths(p.grids))
    doc["paths"].update(ES.openapi_paths(p.series))
    doc["paths"].update(EA.openapi_paths(p.aggregates))
    if wants_html(request):
        return await run_in_threadpool(request.app.state.pages.render, _base(request), "openapi/swagger.html",
                                       {"openapi-document-path": f"{_base(request)}/api"})
    return _json(doc, media=OPENAPI)


async def conformance(request: Request) -> Response:
    _no_params(request)
    doc = {"conformsTo": list(CONFORMANCE)}
    if wants_html(request):
        return await run_in_threadpool(request.app.state.pages.conformance, _base(request), doc)
    return _json(doc)


def _collection(p: Platform, layer: LayerConfig, base: str) -> dict[str, Any]:
    rec = describe(p.cube, layer.dataset, history=False)
    temporal = rec["extent"]["temporal"]
    storage = resolve_crs(rec["storage_crs"])
    href = f"{base}/collections/{layer.id}"
    return {
        "id": layer.id,
        "title": layer.title or rec["title"],
        "description": layer.description or rec["description"] or "",
        "keywords": list(layer.keywords or rec["keywords"]),
        "itemType": "feature",
        "extent": {
            "spatial": {"bbox": [rec["extent"]["spatial"]["bbox_crs84"] or [-180, -90, 180, 90]], "crs": F.CRS84},
            "temporal": {"interval": [temporal], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"},
        },
        "crs": [resolve_crs(c).uri or resolve_crs(c).id for c in layer.crs],
        "storageCrs": storage.uri or storage.id,
        "links": [
            {"href": href, "rel": "self", "type": JSON, "title": "This collection"},
            {"href": f"{href}/items", "rel": "items", "type": F.GEOJSON, "title": "Items"},
            {"href": f"{href}/queryables", "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
             "type": "application/schema+json", "title": "Queryables"},
            {"href": f"{href}/schema", "rel": "http://www.opengis.net/def/rel/ogc/1.0/schema",
             "type": "application/schema+json", "title": "Schema of the features"},
            *TL.collection_links(layer, href),
        ],
    }


async def collections(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.app.state.platform
    base = _base(request)
    cols = await run_in_threadpool(lambda: [_collection(p, layer, base) for layer in p.layers.values()])
    cols.append(R.catalog_collection(base, [(c["extent"]["spatial"]["bbox"][0], c["extent"]["temporal"]["interval"][0])
                                            for c in cols]))
    cols[-1:-1] = await run_in_threadpool(lambda: [E.collection(p.cube, g, base) for g in p.grids.values()]
                                          + [ES.collection(p.cube, s, base) for s in p.series.values()]
                                          + [EA.collection(p.cube, a, base) for a in p.aggregates.values()])
    doc = {"collections": cols, "links": [
        {"href": f"{base}/collections", "rel": "self", "type": JSON, "title": "Collections"},
        {"href": f"{base}/collections?f=html", "rel": "alternate", "type": HTML, "title": "Collections as HTML"}]}
    if wants_html(request):
        return await run_in_threadpool(request.app.state.pages.collections, base, doc)
    return _json(doc)


async def collection(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.app.state.platform
    cid = request.path_params["cid"]
    if cid in p.grids:
        doc = await run_in_threadpool(E.collection, p.cube, p.grids[cid], _base(request))
    elif cid in p.series:
        doc = await run_in_threadpool(ES.collection, p.cube, p.series[cid], _base(request))
    elif cid in p.aggregates:
        doc = await run_in_threadpool(EA.collection, p.cube, p.aggregates[cid], _base(request))
    else:
        doc = await run_in_threadpool(_collection, p, p.layer(cid), _base(request))
    if wants_html(request):
        return await run_in_threadpool(request.app.state.pages.collection, _base(request), doc)
    return _json(doc)


async def queryables_(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.app.state.platform
    layer = p.layer(request.path_params["cid"])
    spec = p.cube.dataset(layer.dataset)
    props: dict[str, Any] = {}
    for name, kind in queryables(spec).items():
        if layer.properties is not None and name not in layer.properties and name not in (
                "fid", "geometry", "valid_from", "valid_to", "version"):
            continue
        if kind == "geometry":
            props[name] = {"format": f"geometry-{(spec.geometry_type or 'any').lower()}",
                           "x-ogc-role": "primary-geometry"}
        else:
            props[name] = dict(F.SCHEMA_TYPES[kind])
    href = f"{_base(request)}/collections/{layer.id}/queryables"
    doc = {"$schema": "https://json-schema.org/draft/2019-09/schema", "$id": href, "type": "object",
           "title": layer.title or spec.title or layer.id, "properties": props}
    if wants_html(request):
        return await run_in_threadpool(request.app.state.pages.queryables, _base(request), layer.id, doc)
    return _json(doc, media="application/schema+json")


async def schema_(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.app.state.platform
    base = _base(request)
    cid = request.path_params["cid"]
    if cid in p.grids:
        doc = await run_in_threadpool(CV.schema, p.cube, p.grids[cid], f"{base}/collections/{cid}/schema")
        return _json(doc, media="application/schema+json")
    layer = p.layer(cid)
    doc = F.schema(p.cube.dataset(layer.dataset), layer, f"{base}/collections/{layer.id}/schema")
    if wants_html(request):
        return await run_in_threadpool(request.app.state.pages.schema, base, layer.id, doc)
    return _json(doc, media="application/schema+json")


async def items(request: Request) -> Response:
    p: Platform = request.app.state.platform
    if request.path_params["cid"] in p.series:
        cid = request.path_params["cid"]
        status, headers, body = await run_in_threadpool(ES.items, p.cube, p.series[cid], _params_edr(request), None,
                                                        f"{_base(request)}/collections/{cid}/items")
        return Response(body, status_code=status, headers=headers)
    layer = p.layer(request.path_params["cid"])
    params = _params(request)
    url = f"{_base(request)}/collections/{layer.id}/items"
    html = wants_html(request)
    if html:
        params.pop("crs", None)  # the page's map draws CRS84
    status, headers, body = await run_in_threadpool(F.items, p.cube, layer, params, url)
    if html:
        offset = int(params.get("offset", 0))  # F.items has checked it
        return await run_in_threadpool(request.app.state.pages.items, _base(request), layer.id,
                                       layer.title or layer.id, orjson.loads(body), offset)
    return Response(body, status_code=status, headers=headers)


async def item(request: Request) -> Response:
    p: Platform = request.app.state.platform
    if request.path_params["cid"] in p.series:
        status, headers, body = await run_in_threadpool(ES.items, p.cube, p.series[request.path_params["cid"]],
                                                        _params_edr(request), request.path_params["fid"])
        return Response(body, status_code=status, headers=headers)
    layer = p.layer(request.path_params["cid"])
    fid = request.path_params["fid"]
    url = f"{_base(request)}/collections/{layer.id}/items/{fid}"
    params, html = _params(request), wants_html(request)
    if html:
        params.pop("crs", None)  # the page's map draws CRS84
    status, headers, body = await run_in_threadpool(F.item, p.cube, layer, fid, params, url)
    if html:
        return await run_in_threadpool(request.app.state.pages.item, _base(request), layer.id,
                                       layer.title or layer.id, orjson.loads(body))
    return Response(body, status_code=status, headers=headers)


def _authorised(request: Request) -> None:
    """Writes need the configured API key; with none configured, no writes at all."""
    key = request.app.state.settings.api_key
    if key is None:
        raise Forbidden("this server takes no writes (no API key is configured)")
    given = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if given is None:
        raise Unauthorized("writes need the API key (X-API-Key, or Authorization: Bearer)")
    if not hmac.compare_digest(given, key):
        raise Forbidden("the API key is not valid")


async def create_item(request: Request) -> Response:
    p: Platform = request.app.state.platform
    layer = p.layer(request.path_params["cid"])
    _authorised(request)
    url = f"{_base(request)}/collections/{layer.id}/items"
    body = await request.body()
    status, headers, out = await run_in_threadpool(T.create, p.cube, layer, body, request.headers, url)
    return Response(out, status_code=status, headers=headers)


async def write_item(request: Request) -> Response:
    p: Platform = request.app.state.platform
    layer = p.layer(request.path_params["cid"])
    _authorised(request)
    fid = request.path_params["fid"]
    if request.method == "DELETE":
        result = await run_in_threadpool(T.delete, p.cube, layer, fid, request.headers)
    else:
        body = await request.body()
        fn = T.replace if request.method == "PUT" else T.update
        result = await run_in_threadpool(fn, p.cube, layer, fid, body, request.headers)
    status, headers, out = result
    return Response(out, status_code=status, headers=headers)


async def item_history(request: Request) -> Response:
    p: Platform = request.app.state.platform
    layer = p.layer(request.path_params["cid"])
    fid = request.path_params["fid"]
    if _params(request):
        raise InvalidParameterValue("the history resource takes no query parameters")
    url = f"{_base(request)}/collections/{layer.id}/items/{fid}/history"
    status, headers, body = await run_in_threadpool(F.history, p.cube, layer, fid, url)
    return Response(body, status_code=status, headers=headers)


async def platform_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GeoPlatformError)
    return _json(exc.to_dict(), status=exc.http_status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _json({"code": "NotFound" if exc.status_code == 404 else "NoApplicableCode",
                  "description": str(exc.detail)}, status=exc.status_code)


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    # Requests do their work in anyio's worker threads. Its default of 40 threads lets
    # every waiting request start at once: on a few cores they then share them in GIL
    # convoys, and each new thread builds its own pyproj transformers (0.1 s or more
    # each). A small fixed number of threads serves the same requests with less CPU.
    anyio.to_thread.current_default_thread_limiter().total_tokens = app.state.settings.request_threads
    yield


def create_app(settings: Settings | None = None, *, store: str | Path | None = None,
               catalog: Path | None = None, layers_dir: Path | None = None) -> Starlette:
    """The OGC API app over ``store`` (default ``settings.store``), publishing
    the layers of ``layers_dir`` whose datasets are in the store."""
    settings = settings or Settings()
    cat = load_city_catalog(catalog or ROOT / "catalogs" / "sample_city.yaml")
    cube = open_cube(store if store is not None else settings.store, settings=settings)
    present = {s.name for s in cube.datasets()}
    layers = {k: v for k, v in load_layers(layers_dir or ROOT / "layers", cat).items() if v.dataset in present}
    try:
        stored_grids = set(cube.backend.grids().names())
    except StoreError:  # a backend that keeps no grids
        stored_grids = set()
    grids = {k: v for k, v in load_grid_layers(layers_dir or ROOT / "layers", layers).items() if v.grid in stored_grids}
    series = {k: v for k, v in load_series_layers(layers_dir or ROOT / "layers", [*layers, *grids]).items()
              if v.series in present}
    aggregates = {k: v for k, v in load_aggregate_layers(layers_dir or ROOT / "layers",
                                                         [*layers, *grids, *series]).items() if v.aggregate in present}
    if R.RECORDS in layers:
        raise CatalogError(f"layer id {R.RECORDS!r} is reserved for the dataset catalog")
    app = Starlette(
        debug=settings.debug,
        lifespan=_lifespan,
        routes=[
            Route("/", landing),
            Route("/conformance", conformance),
            Route("/api", api),
            Route("/openapi", api),  # where pygeoapi's pages link to the API definition
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            Route("/collections", collections),
            *R.records_routes(_params),
            *TL.tile_routes(),
            *E.edr_routes(_params_edr),
            *MP.map_routes(_params_edr),
            *CV.coverage_routes(_params_edr),
            Route("/collections/{cid}", collection),
            Route("/collections/{cid}/queryables", queryables_),
            Route("/collections/{cid}/schema", schema_),
            Route("/collections/{cid}/items", items, methods=["GET"]),
            Route("/collections/{cid}/items", create_item, methods=["POST"]),
            Route("/collections/{cid}/items/{fid}", item, methods=["GET"]),
            Route("/collections/{cid}/items/{fid}", write_item, methods=["PUT", "PATCH", "DELETE"]),
            Route("/collections/{cid}/items/{fid}/history", item_history, methods=["GET"]),
        ],
        exception_handlers={GeoPlatformError: platform_error, HTTPException: http_error},
    )
    MP.check_styles(grids)
    app.state.platform = Platform(cube, layers, cat, grids, series, aggregates)
    # pyproj builds a transformer on first use (about half a second or more each): build
    # those the layers offer in the background, not in the first requests.
    pairs = {(cube.dataset(v.dataset).storage_crs, c) for v in layers.values()
             for c in (*v.crs, "OGC:CRS84", "EPSG:3857")}
    pairs |= {(b, a) for a, b in pairs}
    threading.Thread(target=warm_transforms, args=(sorted(pairs),), name="warm-transforms", daemon=True).start()
    app.state.pages = Pages(app.state.platform, Path(store if store is not None else settings.store).resolve())
    app.state.settings = settings
    return app


def app_from_env() -> Starlette:
    """The app for ``geoplatform serve`` (uvicorn calls this in each worker)."""
    import os

    import gc

    layers = os.environ.get("GEOPLATFORM_LAYERS")
    catalog = os.environ.get("GEOPLATFORM_CATALOG")
    app = create_app(Settings(), layers_dir=Path(layers) if layers else None,
                     catalog=Path(catalog) if catalog else None)
    # What start-up built (modules, layers, catalog) lives as long as the worker: freeze
    # it out of the collector's reach, so the full collections that a request's tens of
    # thousands of geometry objects trigger do not walk it each time (a quarter of the
    # CPU of a z12 polygon tile on the benchmark data).
    gc.freeze()
    return app
