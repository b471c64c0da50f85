"""The OGC API web application: ``create_app(settings)``.

One Starlette app per call, holding its own open cube and layer table: no
module state, nothing built per request. Cube calls are blocking (Parquet,
SQLite), so they run in Starlette's thread pool.

Served so far: landing page, conformance, the OpenAPI 3.0 document,
collections and each collection's metadata, items and single items (Features
Part 1 core and GeoJSON, Part 2 CRS, Part 3 CQL2 filtering), queryables, and
create / replace / update / delete of items on editable layers (Part 4, with
ETag / If-Match).

Every request passes through :class:`_Access` first: its credentials (API key
or JWT) make a principal, and the request sees the platform as that principal
may (:meth:`Platform.view`): collections it may not read are absent from every
route and listing. Writes need an editor of the dataset's department; writes
and reads of restricted data go to the audit log.
"""

from __future__ import annotations

import contextlib
import re
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

from geoplatform.access.audit import AuditLog
from geoplatform.access.credentials import AccessFile, JwtConfig, anonymous, authenticate
from geoplatform.access.policy import Principal, can_read, can_write
from geoplatform.catalog.describe import describe
from geoplatform.catalog.layers import (
    AggregateLayerConfig, GridLayerConfig, LayerConfig, SeriesLayerConfig, load_aggregate_layers, load_grid_layers,
    load_layers, load_series_layers,
)
from geoplatform.catalog.models import CityCatalog, load_city_catalog
from geoplatform.crs import resolve_crs, warm_transforms
from geoplatform.cube.cql2 import SUPPORTED_CONFORMANCE
from geoplatform.cube.cube import Cube, is_database_url, open_cube
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
    #: per collection, the specs (datasets, grids) whose open levels decide who sees it
    entries: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    pages: Any = None
    _views: dict[Any, "Platform"] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def visible(self, who: Principal, cid: str) -> bool:
        return all(can_read(who, e) for e in self.entries.get(cid, ()))

    def view(self, who: Principal) -> "Platform":
        """What ``who`` may see of the platform: only the collections whose every
        dataset it may read (the others do not exist for it)."""
        key = who.key
        v = self._views.get(key)
        if v is None:
            def keep(d: dict[str, Any]) -> dict[str, Any]:
                return {k: x for k, x in d.items() if self.visible(who, k)}

            v = Platform(self.cube, keep(self.layers), self.catalog, keep(self.grids), keep(self.series),
                         keep(self.aggregates), self.entries)
            if self.pages is not None:
                v.pages = Pages(v, self.pages.store)
            with self._lock:
                v = self._views.setdefault(key, v)
        return v

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
    p: Platform = request.state.platform
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
        return await run_in_threadpool(request.state.pages.landing, base, doc)
    return _json(doc)


async def api(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.state.platform
    specs = {layer.dataset: p.cube.dataset(layer.dataset) for layer in p.layers.values()}
    doc = openapi_document(p.layers, specs, f"{p.catalog.city.name} spatio-temporal platform", _base(request))
    doc["paths"].update(R.openapi_paths())
    doc["paths"].update(E.openapi_paths(p.grids))
    doc["paths"].update(MP.openapi_paths(p.grids))
    doc["paths"].update(CV.openapi_paths(p.grids))
    doc["paths"].update(ES.openapi_paths(p.series))
    doc["paths"].update(EA.openapi_paths(p.aggregates))
    if wants_html(request):
        return await run_in_threadpool(request.state.pages.render, _base(request), "openapi/swagger.html",
                                       {"openapi-document-path": f"{_base(request)}/api"})
    return _json(doc, media=OPENAPI)


async def conformance(request: Request) -> Response:
    _no_params(request)
    doc = {"conformsTo": list(CONFORMANCE)}
    if wants_html(request):
        return await run_in_threadpool(request.state.pages.conformance, _base(request), doc)
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
    p: Platform = request.state.platform
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
        return await run_in_threadpool(request.state.pages.collections, base, doc)
    return _json(doc)


async def collection(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.state.platform
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
        return await run_in_threadpool(request.state.pages.collection, _base(request), doc)
    return _json(doc)


async def queryables_(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.state.platform
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
        return await run_in_threadpool(request.state.pages.queryables, _base(request), layer.id, doc)
    return _json(doc, media="application/schema+json")


async def schema_(request: Request) -> Response:
    _no_params(request)
    p: Platform = request.state.platform
    base = _base(request)
    cid = request.path_params["cid"]
    if cid in p.grids:
        doc = await run_in_threadpool(CV.schema, p.cube, p.grids[cid], f"{base}/collections/{cid}/schema")
        return _json(doc, media="application/schema+json")
    layer = p.layer(cid)
    doc = F.schema(p.cube.dataset(layer.dataset), layer, f"{base}/collections/{layer.id}/schema")
    if wants_html(request):
        return await run_in_threadpool(request.state.pages.schema, base, layer.id, doc)
    return _json(doc, media="application/schema+json")


async def items(request: Request) -> Response:
    p: Platform = request.state.platform
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
        return await run_in_threadpool(request.state.pages.items, _base(request), layer.id,
                                       layer.title or layer.id, orjson.loads(body), offset)
    return Response(body, status_code=status, headers=headers)


async def item(request: Request) -> Response:
    p: Platform = request.state.platform
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
        return await run_in_threadpool(request.state.pages.item, _base(request), layer.id,
                                       layer.title or layer.id, orjson.loads(body))
    return Response(body, status_code=status, headers=headers)


def _authorised(request: Request, layer: LayerConfig) -> None:
    """Writes need an editor (or above) of the dataset's department, or the server's own key."""
    who: Principal = request.state.principal
    if who.anonymous:
        raise Unauthorized("writes need credentials: an API key (X-API-Key) or a bearer token")
    p: Platform = request.state.platform
    if not all(can_write(who, e) for e in p.entries.get(layer.id, ())):
        raise Forbidden(f"{who.name!r} may not change {layer.id!r}: that needs an editor of its department")


async def create_item(request: Request) -> Response:
    p: Platform = request.state.platform
    layer = p.layer(request.path_params["cid"])
    _authorised(request, layer)
    url = f"{_base(request)}/collections/{layer.id}/items"
    body = await request.body()
    status, headers, out = await run_in_threadpool(T.create, p.cube, layer, body, request.headers, url)
    return Response(out, status_code=status, headers=headers)


async def write_item(request: Request) -> Response:
    p: Platform = request.state.platform
    layer = p.layer(request.path_params["cid"])
    _authorised(request, layer)
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
    p: Platform = request.state.platform
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


_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_COLLECTION = re.compile(r"^/collections/([^/]+)")


class _Access:
    """Who is asking, and what of the platform it sees: every request gets its
    principal and its view of the platform in ``request.state``; bad credentials are
    a 401 before anything else runs. Writes and reads of restricted data go to the
    audit log."""

    def __init__(self, app: Any, platform: "Platform", access: AccessFile | None, jwt_cfg: JwtConfig,
                 platform_key: str | None, audit: AuditLog | None, nobody: Principal) -> None:
        self.app, self.platform, self.access, self.jwt = app, platform, access, jwt_cfg
        self.platform_key, self.audit, self.nobody = platform_key, audit, nobody

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
                   if k in (b"authorization", b"x-api-key")}
        try:
            who = authenticate(headers, self.access, self.jwt, self.platform_key, self.nobody)
        except Unauthorized as exc:
            body = orjson.dumps(exc.to_dict())
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"www-authenticate", b'Bearer realm="geoplatform"'),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        view = self.platform.view(who)
        state = scope.setdefault("state", {})
        state["principal"], state["platform"], state["pages"] = who, view, view.pages
        audit = self._audited(scope, view)
        if audit is None:
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            assert self.audit is not None
            action, cid, specs = audit
            self.audit.record(who, action, method=scope["method"], path=scope["path"],
                              query=scope.get("query_string", b"").decode("latin-1"), collection=cid,
                              datasets=[s.name for s in specs], open_level=[s.open_level for s in specs],
                              status=status[0])

    def _audited(self, scope: Any, view: "Platform") -> tuple[str, str, tuple[Any, ...]] | None:
        if self.audit is None:
            return None
        m = _COLLECTION.match(scope["path"])
        cid = m.group(1) if m else ""
        specs = self.platform.entries.get(cid, ())
        if scope["method"] in _WRITES:
            return "write", cid, specs
        if cid and any(s.open_level == "restricted" for s in specs) \
                and (cid in view.layers or cid in view.grids or cid in view.series or cid in view.aggregates):
            return "read", cid, specs
        return None


def _entries(cube: Cube, layers: dict[str, LayerConfig], grids: dict[str, GridLayerConfig],
             series: dict[str, SeriesLayerConfig], aggregates: dict[str, AggregateLayerConfig]
             ) -> dict[str, tuple[Any, ...]]:
    """Each collection's specs: its dataset (a series: also its stations), or its grid; an
    aggregate opened wider than its dataset, its own open level."""
    out: dict[str, tuple[Any, ...]] = {k: (cube.dataset(v.dataset),) for k, v in layers.items()}
    if grids:
        store = cube.backend.grids()
        for k, v in grids.items():
            try:
                places = (cube.dataset(v.locations),) if v.locations else ()
            except DatasetNotFound:
                raise CatalogError(f"layer {k!r}: its locations dataset {v.locations!r} is not in the store") from None
            out[k] = (store.row(v.grid).spec, *places)
    out.update({k: tuple(cube.dataset(n) for n in (v.series, v.stations) if n) for k, v in series.items()})
    out.update({k: EA.check_layer(v, cube.dataset(v.aggregate)) for k, v in aggregates.items()})
    return out


def create_app(settings: Settings | None = None, *, store: str | Path | None = None,
               catalog: Path | None = None, layers_dir: Path | None = None) -> Starlette:
    """The OGC API app over ``store`` (default ``settings.store``), publishing
    the layers of ``layers_dir`` whose datasets are in the store."""
    settings = settings or Settings()
    cat = load_city_catalog(catalog or ROOT / "catalogs" / "sample_city.yaml")
    where = store if store is not None else (settings.database_url or settings.store)
    cube = open_cube(where, settings=settings)
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
    platform = Platform(cube, layers, cat, grids, series, aggregates, _entries(cube, layers, grids, series,
                                                                              aggregates))
    app.state.platform = platform
    # pyproj builds a transformer on first use (about half a second or more each): build
    # those the layers offer in the background, not in the first requests.
    pairs = {(cube.dataset(v.dataset).storage_crs, c) for v in layers.values()
             for c in (*v.crs, "OGC:CRS84", "EPSG:3857")}
    pairs |= {(b, a) for a, b in pairs}
    threading.Thread(target=warm_transforms, args=(sorted(pairs),), name="warm-transforms", daemon=True).start()
    platform.pages = Pages(platform, where if is_database_url(str(where)) else Path(where).resolve())
    app.state.settings = settings
    departments = {d.id for d in cat.departments}
    access = AccessFile.load(settings.access_file, departments) if settings.access_file else None
    audit = AuditLog(settings.audit_log) if settings.audit_log else None
    jwt_cfg = JwtConfig(settings.jwt_secret, settings.jwt_public_key, settings.jwt_audience, settings.jwt_issuer)
    app.add_middleware(_Access, platform=platform, access=access, jwt_cfg=jwt_cfg,
                       platform_key=settings.api_key, audit=audit, nobody=anonymous(settings.anonymous_roles))
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
