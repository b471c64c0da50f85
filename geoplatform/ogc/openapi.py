"""The server's OpenAPI 3.0 document, built from the published layers.

Each collection gets its own paths, so a client (or a fuzzer) sees exactly
the parameters that collection takes: its page limits, its CRS list and its
queryable properties for ``sortby`` and ``properties``.
"""

from __future__ import annotations

from typing import Any

from geoplatform.catalog.layers import LayerConfig
from geoplatform.crs import resolve_crs
from geoplatform.cube.model import DatasetSpec
from geoplatform.ogc.tiles import openapi_paths as tile_paths
from geoplatform.ogc.tms import load_tile_matrix_sets

_EXCEPTION = {"description": "An error, as an OGC exception",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}}


def _param(name: str, schema: dict[str, Any], description: str, style: str | None = None,
           explode: bool | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema,
                         "description": description}
    if style:
        p["style"] = style
    if explode is not None:
        p["explode"] = explode
    return p


def _json_response(description: str, media: str = "application/json", html: bool = True) -> dict[str, Any]:
    """A 200 in ``media``, and (``html``) as an HTML page for browsers and ``f=html``."""
    content: dict[str, Any] = {media: {"schema": {"type": "object"}}}
    if html:
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": description, "content": content}


def _items_params(layer: LayerConfig, spec: DatasetSpec) -> list[dict[str, Any]]:
    crs = [resolve_crs(c).uri or resolve_crs(c).id for c in layer.crs]
    props = [f.name for f in spec.fields if layer.properties is None or f.name in layer.properties]
    sortable = ["fid", "version", "valid_from", "valid_to", *props]
    return [
        _param("f", {"type": "string", "enum": ["json", "geojson", "html"]}, "Output format"),
        _param("bbox", {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
               "Bounding box: minx,miny,maxx,maxy in bbox-crs (its axis order)", "form", False),
        _param("bbox-crs", {"type": "string", "format": "uri", "enum": crs}, "CRS of bbox (default CRS84)"),
        _param("datetime", {"type": "string"},
               "Instant or interval on valid time (RFC 3339; open ends as ..)"),
        _param("limit", {"type": "integer", "minimum": 1, "maximum": layer.limits.max,
                         "default": layer.limits.default}, "Items per page"),
        _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Items to skip"),
        _param("properties", {"type": "array", "items": {"type": "string", "enum": props}},
               "Properties to return", "form", False),
        _param("sortby", {"type": "array", "items": {"type": "string", "enum": [
            f"{sign}{p}" for p in sortable for sign in ("", "+", "-")]}}, "Sort keys, - for descending",
               "form", False),
        _param("skipGeometry", {"type": "boolean", "default": False}, "Leave geometries out"),
        _param("filter", {"type": "string"}, "CQL2 filter"),
        _param("filter-lang", {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
               "Language of filter"),
        _param("filter-crs", {"type": "string", "enum": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]},
               "CRS of geometry literals in filter"),
        _param("crs", {"type": "string", "format": "uri", "enum": crs}, "Output CRS (default CRS84)"),
        _param("as-of", {"type": "string"},
               "Record time: a snapshot id or an RFC 3339 date-time; the items as the platform knew them then"),
    ]


def _write_op(op_id: str, summary: str, ok: str, *, body: bool = True, path_id: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "operationId": op_id, "security": [{"apiKey": []}, {"bearer": []}],
        "responses": {ok: {"description": "Done"}, "400": _EXCEPTION, "401": _EXCEPTION, "403": _EXCEPTION,
                      "404": _EXCEPTION, "405": _EXCEPTION, "409": _EXCEPTION, "412": _EXCEPTION},
    }
    if path_id:
        op["parameters"] = [{"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}},
                            {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}]
    if body:
        op["requestBody"] = {"required": True, "content": {"application/geo+json": {"schema": {"type": "object"}}}}
    return op


def openapi_document(layers: dict[str, LayerConfig], specs: dict[str, DatasetSpec], title: str,
                     server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document for ``layers`` (each with its dataset's spec)."""
    paths: dict[str, Any] = {
        "/": {"get": {"summary": "Landing page", "operationId": "landing",
                      "responses": {"200": _json_response("Links to the API")}}},
        "/conformance": {"get": {"summary": "Conformance classes", "operationId": "conformance",
                                 "responses": {"200": _json_response("The classes implemented")}}},
        "/api": {"get": {"summary": "This document", "operationId": "api",
                         "responses": {"200": _json_response("OpenAPI 3.0", "application/vnd.oai.openapi+json;version=3.0")}}},
        "/collections": {"get": {"summary": "Collections", "operationId": "collections",
                                 "responses": {"200": _json_response("The published collections")}}},
    }
    for layer in layers.values():
        spec = specs[layer.dataset]
        base = f"/collections/{layer.id}"
        op = layer.id.replace("-", "_")
        paths[base] = {"get": {"summary": f"{layer.title or spec.title or layer.id}", "operationId": f"{op}_collection",
                               "responses": {"200": _json_response("Collection metadata"), "404": _EXCEPTION}}}
        paths[f"{base}/queryables"] = {"get": {
            "summary": "Queryable properties", "operationId": f"{op}_queryables",
            "responses": {"200": _json_response("JSON Schema of the queryables", "application/schema+json")}}}
        paths[f"{base}/schema"] = {"get": {
            "summary": "Schema of the features", "operationId": f"{op}_schema",
            "responses": {"200": _json_response("JSON Schema of the features' properties", "application/schema+json"),
                          "404": _EXCEPTION}}}
        paths[f"{base}/items"] = {"get": {
            "summary": f"Items of {layer.id}", "operationId": f"{op}_items",
            "parameters": _items_params(layer, spec),
            "responses": {"200": _json_response("A page of features", "application/geo+json"),
                          "400": _EXCEPTION, "404": _EXCEPTION}}}
        if layer.editable:
            paths[f"{base}/items"]["post"] = _write_op(f"{op}_create", "Create an item", "201", path_id=False)
        paths[f"{base}/items/{{featureId}}"] = {"get": {
            "summary": f"One item of {layer.id}", "operationId": f"{op}_item",
            "parameters": [
                {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}},
                _param("crs", {"type": "string", "format": "uri",
                               "enum": [resolve_crs(c).uri or resolve_crs(c).id for c in layer.crs]}, "Output CRS"),
                _param("skipGeometry", {"type": "boolean", "default": False}, "Leave the geometry out"),
                _param("as-of", {"type": "string"}, "Record time: a snapshot id or an RFC 3339 date-time"),
            ],
            "responses": {"200": _json_response("A feature", "application/geo+json"),
                          "400": _EXCEPTION, "404": _EXCEPTION}}}
    for layer in layers.values():
        op = layer.id.replace("-", "_")
        paths[f"/collections/{layer.id}/items/{{featureId}}/history"] = {"get": {
            "summary": "Every version of an item", "operationId": f"{op}_item_history",
            "parameters": [{"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json_response("The versions, oldest first", "application/geo+json", html=False),
                          "404": _EXCEPTION}}}
        if layer.editable:
            item_path = paths[f"/collections/{layer.id}/items/{{featureId}}"]
            op = layer.id.replace("-", "_")
            item_path["put"] = _write_op(f"{op}_replace", "Replace an item (a new version)", "204")
            item_path["patch"] = _write_op(f"{op}_update", "Update some properties (a new version)", "204")
            item_path["delete"] = _write_op(f"{op}_delete", "End the item (its history stays)", "204", body=False)
    paths.update(tile_paths(layers, sorted(load_tile_matrix_sets())))
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "0.1.0",
                 "description": "OGC API Features over the geoplatform cube"},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {"exception": {
                "type": "object", "required": ["code"],
                "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API key"}}},
    }
