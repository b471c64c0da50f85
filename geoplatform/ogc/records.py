"""OGC API - Records, Part 1: the dataset catalog as a searchable records collection.

The catalog is the collection ``catalog`` (``itemType: record``): one record
per published dataset (:func:`geoplatform.catalog.export.record_feature`),
searched with the core query parameters (``bbox``, ``datetime``, ``limit``,
``q``, ``type``, ``ids``, ``externalIds``), ``property=value`` queryables,
``sortby`` over its sortables and a CQL2 ``filter``, paged with ``next``/``prev``
links. A filter is parsed into an AST and compiled by the cube's CQL2 engine
against the records' queryables; it never runs as text. The STAC face of the
same catalog lives here too (``/stac``).

The functions are framework-free (plain dicts in, dicts out); the web layer is
:func:`records_routes`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pyarrow as pa
import shapely
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from geoplatform.catalog import export
from geoplatform.catalog.describe import describe, describe_grid
from geoplatform.cube.cql2 import CompiledFilter, compile_filter, evaluate, parse_filter
from geoplatform.cube.query import parse_sortby
from geoplatform.cube.times import MAX_US, MIN_US, parse_instant, parse_interval, to_us
from geoplatform.errors import DatasetNotFound, InvalidParameterValue
from geoplatform.ogc.features import _bbox as _features_bbox

if TYPE_CHECKING:
    from geoplatform.catalog.layers import GridLayerConfig, LayerConfig
    from geoplatform.catalog.models import CityCatalog
    from geoplatform.cube.cube import Cube

RECORDS = "catalog"  # the collection id of the dataset catalog
GEOJSON = "application/geo+json"
CATALOG_MEDIA = "application/ogc-catalog+json"
SCHEMA_MEDIA = "application/schema+json"
CATALOG_PROFILE = "http://www.opengis.net/def/profile/OGC/0/ogc-catalog"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_CONF = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/"
#: The OGC API - Records Part 1 conformance classes the catalog implements.
RECORDS_CONFORMANCE: tuple[str, ...] = tuple(_CONF + c for c in (
    "record-core",
    "record-collection",
    "record-core-query-parameters",
    "records-api",
    "json",
    "oas30",
    "sorting",
    "cql-filter",
    "searchable-catalog",
    "searchable-catalog/sorting",
    "searchable-catalog/filtering",
))
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def _prop(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: r["properties"].get(key)


def _when(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda r: None if r["properties"].get(key) is None else parse_instant(r["properties"][key])


def _time_end(i: int) -> Callable[[dict[str, Any]], Any]:
    def get(r: dict[str, Any]) -> Any:
        t = r.get("time")
        v = None if t is None else t["interval"][i]
        return None if v in (None, "..") else parse_instant(v)
    return get


_STR = {"type": "string"}
#: name -> (JSON schema of the queryable, CQL2 type, value of a record)
QUERYABLES: dict[str, tuple[dict[str, Any], str, Callable[[dict[str, Any]], Any]]] = {
    "id": ({**_STR, "title": "Record id (the dataset name)"}, "string", lambda r: r["id"]),
    "type": ({**_STR, "title": "Resource type", "enum": ["dataset"]}, "string", _prop("type")),
    "title": ({**_STR, "title": "Title"}, "string", _prop("title")),
    "description": ({**_STR, "title": "Description"}, "string", _prop("description")),
    "keywords": ({"type": "array", "items": _STR, "title": "Keywords",
                  "description": "keywords=a,b matches any; in a filter, the keywords joined by ', '"},
                 "string", lambda r: ", ".join(r["properties"]["keywords"])),
    "department": ({**_STR, "title": "Owner department id"}, "string", _prop("department")),
    "theme": ({**_STR, "title": "Theme id"}, "string", _prop("theme")),
    "license": ({**_STR, "title": "Licence (SPDX id)"}, "string", _prop("license")),
    "rights": ({**_STR, "title": "Open level", "enum": ["public", "shared", "restricted"]}, "string", _prop("rights")),
    "updateFrequency": ({**_STR, "title": "Update frequency"}, "string", _prop("updateFrequency")),
    "source": ({**_STR, "title": "Source"}, "string", _prop("source")),
    "generated": ({"type": "boolean", "title": "Generated (not real) data"}, "boolean", _prop("generated")),
    "rows": ({"type": "integer", "title": "Current features"}, "integer", _prop("rows")),
    "created": ({**_STR, "format": "date-time", "title": "Record created"}, "datetime", _when("created")),
    "updated": ({**_STR, "format": "date-time", "title": "Record updated"}, "datetime", _when("updated")),
    "time_start": ({**_STR, "format": "date-time", "title": "Start of the temporal extent"}, "datetime",
                   _time_end(0)),
    "time_end": ({**_STR, "format": "date-time", "title": "End of the temporal extent"}, "datetime", _time_end(1)),
}
#: Queryables that are also query parameters (``department=water``; a comma list matches any).
PROPERTY_PARAMS = frozenset({"keywords", "department", "theme", "license", "rights", "updateFrequency"})
SORTABLES = ("id", "type", "title", "department", "theme", "license", "rights", "updateFrequency", "rows",
             "created", "updated", "time_start", "time_end")
ITEMS_PARAMS = frozenset({"bbox", "datetime", "limit", "offset", "q", "type", "ids", "externalIds", "sortby",
                          "filter", "filter-lang", "filter-crs", *PROPERTY_PARAMS})
# CQL2's `datetime` reads these copies of time_start/time_end, so a record without a
# temporal extent is told apart from one open at both ends (its `datetime` is NULL).
_VALID_TIME = {"valid_from": "_valid_from", "valid_to": "_valid_to"}
_ARROW = {"string": pa.string(), "boolean": pa.bool_(), "integer": pa.int64(), "datetime": pa.timestamp("us", "UTC")}


@dataclass(frozen=True)
class RecordSearch:
    """A parsed records query: every given criterion must hold (logical AND)."""

    phrases: tuple[re.Pattern[str], ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    interval: tuple[int, int] | None = None
    types: frozenset[str] | None = None
    ids: frozenset[str] | None = None
    external_ids: tuple[tuple[str | None, str | None], ...] | None = None
    properties: tuple[tuple[str, frozenset[str]], ...] = ()
    sortby: tuple[tuple[str, bool], ...] = (("id", True),)
    filter: CompiledFilter | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _list(name: str, value: str, max_len: int | None = None) -> frozenset[str]:
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise InvalidParameterValue(f"{name} has an empty entry: {value!r}")
    if max_len is not None and any(len(v) > max_len for v in items):
        raise InvalidParameterValue(f"{name} values are at most {max_len} characters")
    return frozenset(items)


_DIGITS = re.compile(r"[0-9]{1,18}")


def _int(name: str, value: str, low: int) -> int:
    if not _DIGITS.fullmatch(value):  # ASCII digits only: no signs, 1e3, '1_000' or '³'
        raise InvalidParameterValue(f"{name} must be a whole number >= {low}, not {value!r}")
    n = int(value)
    if n < low:
        raise InvalidParameterValue(f"{name} must be >= {low}, not {n}")
    return n


def _bbox(value: str) -> tuple[float, float, float, float]:
    b = _features_bbox(value)  # 4 or 6 finite numbers; with 6, the heights are left out
    x0, y0, x1, y1 = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
    if y0 > y1:
        raise InvalidParameterValue(f"bbox: the lower corner's latitude {y0} is above the upper's {y1}")
    return x0, y0, x1, y1


def _phrase(term: str) -> re.Pattern[str]:
    # Words separated by white space are a phrase: in that order, any white space between.
    return re.compile(r"\s+".join(re.escape(w) for w in term.split()), re.IGNORECASE)


def _external_id(term: str) -> tuple[str | None, str | None]:
    # "scheme:value" (split at the last colon, so URI schemes work), "value", or "scheme:".
    scheme, sep, value = term.rpartition(":")
    return (scheme or None, value or None) if sep else (None, term)


def _filter(params: Mapping[str, str]) -> CompiledFilter | None:
    if "filter" not in params:
        if "filter-lang" in params or "filter-crs" in params:
            raise InvalidParameterValue("filter-lang and filter-crs need a filter")
        return None
    lang = params.get("filter-lang", "cql2-text")
    if lang not in ("cql2-text", "cql2-json"):
        raise InvalidParameterValue(f"filter-lang must be cql2-text or cql2-json, not {lang!r}")
    if params.get("filter-crs") not in (None, CRS84, "OGC:CRS84"):
        raise InvalidParameterValue(f"filter-crs: only {CRS84} geometry literals are supported")
    ast = parse_filter(params["filter"], lang)  # type: ignore[arg-type]
    types = {name: q[1] for name, q in QUERYABLES.items()} | {"geometry": "geometry"}
    return compile_filter(ast, types, "geometry", _VALID_TIME)


def parse_search(params: Mapping[str, str]) -> RecordSearch:
    """The search that the query parameters of ``/collections/catalog/items`` ask
    for. Raises :class:`InvalidParameterValue` naming the parameter at fault.

    >>> parse_search({"q": "water mains,valve", "limit": "5"}).limit
    5
    """
    unknown = sorted(set(params) - ITEMS_PARAMS)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; the catalog takes {sorted(ITEMS_PARAMS)}")
    interval = None
    if "datetime" in params:
        iv = parse_interval(params["datetime"])
        assert iv is not None
        interval = (to_us(iv.start, MIN_US), to_us(iv.end, MAX_US))
    if "sortby" in params:
        sortby = tuple((k.name, k.ascending) for k in parse_sortby(params["sortby"], set(SORTABLES), RECORDS))
    else:
        sortby = RecordSearch.sortby
    return RecordSearch(
        phrases=tuple(_phrase(t) for t in _list("q", params["q"])) if "q" in params else (),
        bbox=_bbox(params["bbox"]) if "bbox" in params else None,
        interval=interval,
        types=_list("type", params["type"], 64) if "type" in params else None,
        ids=_list("ids", params["ids"]) if "ids" in params else None,
        external_ids=tuple(_external_id(t) for t in _list("externalIds", params["externalIds"]))
        if "externalIds" in params else None,
        properties=tuple((k, _list(k, params[k])) for k in sorted(PROPERTY_PARAMS & set(params))),
        sortby=sortby,
        filter=_filter(params),
        limit=min(_int("limit", params["limit"], 1), MAX_LIMIT) if "limit" in params else DEFAULT_LIMIT,
        offset=_int("offset", params["offset"], 0) if "offset" in params else 0,
    )


def _geometries(records: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([None if r["geometry"] is None else shapely.geometry.shape(r["geometry"]) for r in records],
                    dtype=object)


def _text(r: dict[str, Any]) -> str:
    p = r["properties"]
    return "\n".join([p["title"] or "", p["description"] or "", *p["keywords"], p.get("theme") or "",
                      *(c.get("organization", "") for c in p.get("contacts", []))])


def _matches(r: dict[str, Any], s: RecordSearch, geom: Any) -> bool:
    p = r["properties"]
    if s.phrases and not any(ph.search(_text(r)) for ph in s.phrases):
        return False
    if s.types is not None and p.get("type") not in s.types:
        return False
    if s.ids is not None and r["id"] not in s.ids:
        return False
    if s.external_ids is not None and not any(
            (scheme is None or e.get("scheme") == scheme) and (value is None or e.get("value") == value)
            for e in p.get("externalIds", []) for scheme, value in s.external_ids):
        return False
    for name, wanted in s.properties:
        have = set(p.get(name) or []) if name == "keywords" else {p.get(name)}
        if not {str(v).lower() for v in have if v is not None} & {w.lower() for w in wanted}:
            return False
    if s.bbox is not None and (geom is None or not shapely.intersects(geom, shapely.box(*s.bbox))):
        return False
    if s.interval is not None:
        start, end = QUERYABLES["time_start"][2](r), QUERYABLES["time_end"][2](r)
        if r.get("time") is None or to_us(end, MAX_US) < s.interval[0] or to_us(start, MIN_US) > s.interval[1]:
            return False
    return True


def _sort_key(r: dict[str, Any], name: str) -> Any:
    return QUERYABLES[name][2](r)


def search(records: Sequence[dict[str, Any]], s: RecordSearch) -> list[dict[str, Any]]:
    """The records that meet every criterion of ``s``, in its sort order
    (absent values last); not yet paged."""
    geoms = _geometries(records)
    keep = np.array([_matches(r, s, g) for r, g in zip(records, geoms)], dtype=bool)
    if s.filter is not None and len(records):
        columns = {n: pa.array([q[2](r) for r in records], _ARROW[q[1]]) for n, q in QUERYABLES.items()}
        columns.update({"_valid_from": columns["time_start"], "_valid_to": columns["time_end"]})
        keep &= evaluate(pa.table(columns), geoms, s.filter)
        if s.filter.properties & set(_VALID_TIME.values()):
            keep &= np.array([r.get("time") is not None for r in records], dtype=bool)
    hits = [r for r, k in zip(records, keep) if k]
    for name, asc in reversed(s.sortby):  # stable sorts, last key first
        present = [r for r in hits if _sort_key(r, name) is not None]
        absent = [r for r in hits if _sort_key(r, name) is None]
        hits = sorted(present, key=lambda r: _sort_key(r, name), reverse=not asc) + absent
    return hits


def _link(url: str, params: Mapping[str, str], rel: str, title: str, **over: Any) -> dict[str, str]:
    query = urlencode({**params, **{k: str(v) for k, v in over.items()}})
    return {"href": f"{url}?{query}" if query else url, "rel": rel, "type": GEOJSON, "title": title}


def records_page(records: Sequence[dict[str, Any]], params: Mapping[str, str], url: str,
                 catalog_url: str) -> dict[str, Any]:
    """``/collections/catalog/items``: a page of matching records with
    ``numberMatched``/``numberReturned`` and ``next``/``prev`` links."""
    s = parse_search(params)
    hits = search(records, s)
    page = hits[s.offset:s.offset + s.limit]
    links = [_link(url, params, "self", "This page"),
             {"href": catalog_url, "rel": "collection", "type": CATALOG_MEDIA, "title": "The catalog"}]
    if s.offset + len(page) < len(hits):
        links.append(_link(url, params, "next", "Next page", offset=s.offset + s.limit, limit=s.limit))
    if s.offset > 0:
        links.append(_link(url, params, "prev", "Previous page", offset=max(0, s.offset - s.limit), limit=s.limit))
    return {"type": "FeatureCollection", "features": page, "numberMatched": len(hits), "numberReturned": len(page),
            "timeStamp": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"), "links": links}


def catalog_records(cube: "Cube", layers: Mapping[str, "LayerConfig"], catalog: "CityCatalog",
                    base: str, grids: Mapping[str, "GridLayerConfig"] | None = None) -> list[dict[str, Any]]:
    """One record per published dataset and grid, by name."""
    by_dataset = {layer.dataset: layer.id for layer in layers.values()}
    by_grid = {layer.grid: layer.id for layer in (grids or {}).values()}
    departments = {d.id: d.name for d in catalog.departments}
    themes = {t.id: t.title for t in catalog.themes}
    href = f"{base}/collections/{RECORDS}"
    described = [(describe(cube, spec.name), by_dataset[spec.name]) for spec in cube.datasets()
                 if spec.name in by_dataset]
    described += [(describe_grid(cube, name), cid) for name, cid in sorted(by_grid.items())]
    return [export.record_feature(rec, f"{base}/collections/{cid}", record_url=f"{href}/items/{rec['name']}",
                                  catalog_url=href, organisation=departments.get(rec["department"]),
                                  theme_title=themes.get(rec["theme"]))
            for rec, cid in sorted(described, key=lambda d: d[0]["name"])]


def _extent(r: dict[str, Any], geom: Any) -> tuple[list[float] | None, list[str | None]]:
    """A record's (CRS84 bbox, [start, end]) for :func:`catalog_collection`."""
    interval = (r.get("time") or {"interval": [None, None]})["interval"]
    return ([float(v) for v in shapely.bounds(geom)] if geom is not None else None,
            [None if t == ".." else t for t in interval])


def catalog_collection(base: str, extents: Sequence[tuple[list[float] | None, Sequence[str | None]]]
                       ) -> dict[str, Any]:
    """The records collection (a catalog); ``extents`` are the (CRS84 bbox,
    [start, end]) of the datasets it describes, for its own extent."""
    href = f"{base}/collections/{RECORDS}"
    boxes = [b for b, _ in extents if b]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes)] if boxes else [-180.0, -90.0, 180.0, 90.0]
    starts = [export.utc_text(t[0]) for _, t in extents if t[0]]
    ends = [export.utc_text(t[1]) for _, t in extents if t[1]]
    rel = "http://www.opengis.net/def/rel/ogc/1.0/"
    return {
        "id": RECORDS, "type": "Collection", "itemType": "record", "title": "Dataset catalog",
        "description": "Every published dataset: owner department, theme, licence, source, extent",
        "conformsTo": [export.RECORD_CORE], "language": {"code": "en", "name": "English"},
        "keywords": ["catalog", "datasets"], "crs": [CRS84],
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84},
                   "temporal": {"interval": [[min(starts) if starts else None, max(ends) if ends else None]],
                                "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}},
        "defaultSortOrder": [{"field": "id", "direction": "asc"}],
        "links": [{"href": href, "rel": "self", "type": CATALOG_MEDIA, "title": "This catalog"},
                  {"href": CATALOG_PROFILE, "rel": "profile", "title": "OGC API Records catalog"},
                  {"href": f"{href}/items", "rel": "items", "type": GEOJSON, "title": "Records"},
                  {"href": f"{href}/queryables", "rel": rel + "queryables", "type": SCHEMA_MEDIA,
                   "title": "Queryables"},
                  {"href": f"{href}/sortables", "rel": rel + "sortables", "type": SCHEMA_MEDIA, "title": "Sortables"}],
    }


def queryables_schema(base: str, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON Schema of the catalog's queryables (or, with ``names``, of those:
    the sortables). ``datetime`` and ``geometry`` are the record's time and extent."""
    which = "sortables" if names is not None else "queryables"
    props = {n: QUERYABLES[n][0] for n in (names if names is not None else QUERYABLES)}
    if names is None:
        props["geometry"] = {"format": "geometry-polygon", "x-ogc-role": "primary-geometry",
                             "title": "Spatial extent (CRS84)"}
        props["datetime"] = {"type": "string", "format": "date-time", "title": "Temporal extent (an interval)"}
    return {"$schema": "https://json-schema.org/draft/2019-09/schema",
            "$id": f"{base}/collections/{RECORDS}/{which}", "type": "object",
            "title": f"Dataset catalog {which}", "properties": props, "additionalProperties": False}


def openapi_paths() -> dict[str, Any]:
    """The catalog's operations, for the server's OpenAPI document."""
    from geoplatform.ogc.openapi import _EXCEPTION, _json_response, _param

    arr = {"type": "array", "items": {"type": "string"}}
    params = [
        _param("f", {"type": "string", "enum": ["json", "geojson"]}, "Output format"),
        _param("bbox", {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
               "Bounding box (CRS84): records whose extent meets it", "form", False),
        _param("datetime", {"type": "string"}, "Instant or interval (RFC 3339; .. for an open end)"),
        _param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
               "Records per page"),
        _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Records to skip"),
        _param("q", arr, "Search terms: comma for any, white space for a phrase", "form", False),
        _param("type", {"type": "array", "items": {"type": "string", "maxLength": 64}}, "Resource types",
               "form", False),
        _param("ids", arr, "Record ids", "form", False),
        _param("externalIds", arr, "External ids: scheme:value, value or scheme:", "form", False),
        *(_param(n, arr, f"{QUERYABLES[n][0]['title']}: any of the values", "form", False)
          for n in sorted(PROPERTY_PARAMS)),
        _param("sortby", {"type": "array", "items": {"type": "string", "enum": [
            f"{sign}{p}" for p in SORTABLES for sign in ("", "+", "-")]}}, "Sort keys, - for descending",
               "form", False),
        _param("filter", {"type": "string"}, "CQL2 filter on the queryables"),
        _param("filter-lang", {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
               "Language of filter"),
        _param("filter-crs", {"type": "string", "enum": [CRS84]}, "CRS of geometry literals in filter"),
    ]
    base = f"/collections/{RECORDS}"
    schema = {"200": _json_response("JSON Schema", SCHEMA_MEDIA)}
    return {
        base: {"get": {"summary": "The dataset catalog", "operationId": "catalog_collection",
                       "responses": {"200": _json_response("Catalog description", CATALOG_MEDIA)}}},
        f"{base}/items": {"get": {"summary": "Search the catalog", "operationId": "catalog_records",
                                  "parameters": params,
                                  "responses": {"200": _json_response("A page of records", GEOJSON),
                                                "400": _EXCEPTION}}},
        f"{base}/items/{{recordId}}": {"get": {
            "summary": "One record", "operationId": "catalog_record",
            "parameters": [{"name": "recordId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json_response("A record", GEOJSON), "404": _EXCEPTION}}},
        f"{base}/queryables": {"get": {"summary": "Catalog queryables", "operationId": "catalog_queryables",
                                       "responses": schema}},
        f"{base}/sortables": {"get": {"summary": "Catalog sortables", "operationId": "catalog_sortables",
                                      "responses": schema}},
    }


# --------------------------------------------------------------------------
# The web layer
# --------------------------------------------------------------------------

ParamsReader = Callable[[Request], dict[str, str]]


def _json(body: Any, media: str = "application/json") -> Response:
    return Response(orjson.dumps(body), media_type=media)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def records_routes(read_params: ParamsReader) -> list[Route]:
    """The catalog's routes (Records and STAC). ``read_params`` is the app's
    reader of query parameters (each at most once, ``f`` checked and removed)."""

    def none_but_f(request: Request) -> None:
        extra = sorted(read_params(request))
        if extra:
            raise InvalidParameterValue(f"unknown query parameters {extra}; this resource takes only f")

    async def records_of(request: Request) -> list[dict[str, Any]]:
        p = request.state.platform
        return await run_in_threadpool(catalog_records, p.cube, p.layers, p.catalog, _base(request), p.grids)

    async def collection(request: Request) -> Response:
        none_but_f(request)
        records = await records_of(request)
        extents = [_extent(r, g) for r, g in zip(records, _geometries(records))]
        return _json(catalog_collection(_base(request), extents), CATALOG_MEDIA)

    async def items(request: Request) -> Response:
        params = read_params(request)
        parse_search(params)  # a bad request fails before any dataset is described
        records = await records_of(request)
        href = f"{_base(request)}/collections/{RECORDS}"
        body = await run_in_threadpool(records_page, records, params, f"{href}/items", href)
        return _json(body, GEOJSON)

    async def record(request: Request) -> Response:
        if read_params(request):
            raise InvalidParameterValue("a record takes no query parameters but f")
        rid = request.path_params["rid"]
        for r in await records_of(request):
            if r["id"] == rid:
                return _json(r, GEOJSON)
        raise DatasetNotFound(f"the catalog has no record {rid!r}")

    async def queryables(request: Request) -> Response:
        none_but_f(request)
        return _json(queryables_schema(_base(request)), SCHEMA_MEDIA)

    async def sortables(request: Request) -> Response:
        none_but_f(request)
        return _json(queryables_schema(_base(request), SORTABLES), SCHEMA_MEDIA)

    async def stac_root(request: Request) -> Response:
        none_but_f(request)
        p = request.state.platform
        base = _base(request)
        children = [(layer.title or layer.dataset, f"{base}/stac/collections/{layer.dataset}")
                    for layer in p.layers.values()]
        children += [(layer.title or layer.grid, f"{base}/stac/collections/{layer.grid}")
                     for layer in p.grids.values()]
        return _json(export.stac_root(f"{p.catalog.city.name} spatio-temporal platform",
                                      p.catalog.city.description or "", f"{base}/stac", children))

    async def stac_collection(request: Request) -> Response:
        none_but_f(request)
        p = request.state.platform
        name = request.path_params["name"]
        layer: Any = next((v for v in p.layers.values() if v.dataset == name), None)
        how: Any = describe
        if layer is None:
            layer, how = next((v for v in p.grids.values() if v.grid == name), None), describe_grid
        if layer is None:
            raise DatasetNotFound(f"the STAC catalog has no collection {name!r}")
        base = _base(request)
        rec = await run_in_threadpool(how, p.cube, name, history=False)
        return _json(export.stac_collection(rec, f"{base}/stac/collections/{name}", f"{base}/stac",
                                            f"{base}/collections/{layer.id}"))

    base = f"/collections/{RECORDS}"
    return [
        Route(base, collection),
        Route(f"{base}/items", items, methods=["GET"]),
        Route(f"{base}/items/{{rid}}", record, methods=["GET"]),
        Route(f"{base}/queryables", queryables),
        Route(f"{base}/sortables", sortables),
        Route("/stac", stac_root),
        Route("/stac/collections/{name}", stac_collection),
    ]
