"""OGC API Features (Parts 1-3) items and item responses over the cube.

Framework-free: each function takes the query parameters as given in the URL
and returns ``(status, headers, body)``. The web layer only routes requests
here, so the semantics (parameter checks, paging, counts, CRS axis order) are
tested without a server and are the same for every route that serves items.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import shapely

from geoplatform.catalog.layers import LayerConfig
from geoplatform.crs import resolve_crs
from geoplatform.errors import FeatureNotFound, InvalidParameterValue

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube
    from geoplatform.cube.model import DatasetSpec

GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Parameters of the items resource (Features Parts 1-3); anything else is a 400.
ITEMS_PARAMS = frozenset({"f", "bbox", "bbox-crs", "datetime", "limit", "offset", "properties", "sortby",
                          "skipGeometry", "filter", "filter-lang", "filter-crs", "crs", "as-of"})
ITEM_PARAMS = frozenset({"f", "crs", "properties", "skipGeometry", "as-of"})


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise InvalidParameterValue(f"{name} must be true or false, not {value!r}")


def _int(name: str, value: str, low: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise InvalidParameterValue(f"{name} must be an integer, not {value!r}") from None
    if n < low:
        raise InvalidParameterValue(f"{name} must be >= {low}, not {n}")
    return n


def _bbox(value: str) -> list[float]:
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        raise InvalidParameterValue(f"bbox must be 4 or 6 comma-separated numbers, not {value!r}") from None
    if len(parts) not in (4, 6) or not all(np.isfinite(parts)):
        raise InvalidParameterValue(f"bbox must be 4 or 6 finite numbers, not {value!r}")
    return parts


def _output_crs(layer: LayerConfig, value: str | None) -> Any:
    if value is None:
        return resolve_crs("OGC:CRS84")
    offered = {resolve_crs(c) for c in layer.crs}
    crs = resolve_crs(value)
    if crs not in offered:
        raise InvalidParameterValue(f"crs {value!r} is not offered by collection {layer.id!r}")
    return crs


def query_params(layer: LayerConfig, params: Mapping[str, str]) -> tuple[dict[str, Any], Any, bool, int, int]:
    """The cube query for an items request: (query keywords, output CRS,
    skipGeometry, limit, offset). Raises InvalidParameterValue naming the parameter."""
    unknown = sorted(set(params) - ITEMS_PARAMS)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; this resource takes "
                                    f"{sorted(ITEMS_PARAMS)}")
    limit = _int("limit", params["limit"], 1) if "limit" in params else layer.limits.default
    # Asking for more than the maximum is not an error: the page holds the
    # maximum and a next link leads on (OGC API Features, the limit parameter).
    limit = min(limit, layer.limits.max)
    offset = _int("offset", params["offset"], 0) if "offset" in params else 0
    q: dict[str, Any] = {}
    if "bbox" in params:
        q["bbox"] = _bbox(params["bbox"])
        q["bbox_crs"] = str(resolve_crs(params.get("bbox-crs", "OGC:CRS84")).id)
        crs = resolve_crs(q["bbox_crs"])
        if crs.axis_order_lat_first:  # bbox follows the CRS's axis order (Part 2)
            b = q["bbox"]
            q["bbox"] = [b[1], b[0], b[3], b[2]] if len(b) == 4 else [b[1], b[0], b[2], b[4], b[3], b[5]]
    elif "bbox-crs" in params:
        raise InvalidParameterValue("bbox-crs needs a bbox")
    if "datetime" in params:
        q["datetime"] = params["datetime"]
    if "as-of" in params:  # record time: what the platform knew then (a snapshot id or a date-time)
        q["as_of"] = params["as-of"]
    if "properties" in params:
        q["properties"] = [p.strip() for p in params["properties"].split(",") if p.strip()]
    if "sortby" in params:
        q["sortby"] = params["sortby"]
    if "filter" in params:
        lang = params.get("filter-lang", "cql2-text")
        if lang not in ("cql2-text", "cql2-json"):
            raise InvalidParameterValue(f"filter-lang must be cql2-text or cql2-json, not {lang!r}")
        if params.get("filter-crs") not in (None, CRS84, "OGC:CRS84"):
            raise InvalidParameterValue("filter-crs: only CRS84 geometry literals are supported")
        q["filter"], q["filter_lang"] = params["filter"], lang
    elif "filter-lang" in params or "filter-crs" in params:
        raise InvalidParameterValue("filter-lang and filter-crs need a filter")
    skip = _bool("skipGeometry", params["skipGeometry"]) if "skipGeometry" in params else False
    if layer.properties is not None:
        asked = q.get("properties")
        hidden = [p for p in asked or () if p not in layer.properties]
        if hidden:
            raise InvalidParameterValue(f"unknown properties {hidden} for collection {layer.id!r}")
        q["properties"] = list(layer.properties) if asked is None else asked
    return q, _output_crs(layer, params.get("crs")), skip, limit, offset


def etag(fid: Any, version: int) -> str:
    """An item's entity tag: its id and version."""
    return f'"{fid}@{version}"'


def _plain(v: Any) -> Any:
    if v is None or v is pd.NaT or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, np.generic):
        return v.item()
    return v


def features(rows: Any, crs: Any, skip_geometry: bool) -> list[dict[str, Any]]:
    """GeoJSON features from an Arrow table (WKB ``geometry``) or a GeoDataFrame,
    coordinates in the axis order of ``crs``. Times are RFC 3339 UTC strings."""
    table = rows if isinstance(rows, pa.Table) else _arrow(rows)
    n = len(table)
    if skip_geometry or not n:
        texts: Any = [None] * n
    else:
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        if crs.axis_order_lat_first:
            geoms = shapely.transform(geoms, lambda xy: xy[:, ::-1])
        texts = shapely.to_geojson(geoms)
    ids = table.column("fid").to_pylist()
    props = table.drop_columns([c for c in ("geometry", "fid", "record_from", "bbox", "_hash")
                                if c in table.column_names])
    for i, field in enumerate(props.schema):
        if pa.types.is_timestamp(field.type):
            props = props.set_column(i, field.name, _iso(props.column(i)))
    values = props.to_pylist()
    return [{"type": "Feature", "id": ids[i],
             "geometry": orjson.Fragment(texts[i]) if texts[i] is not None else None,
             "properties": values[i]} for i in range(n)]


def _iso(col: pa.ChunkedArray) -> pa.Array:
    """RFC 3339 UTC date-times to the second (``2025-03-01T00:00:00Z``), to the
    microsecond where there is a fraction; nulls stay null."""
    v = col.to_numpy(zero_copy_only=False).astype("datetime64[us]")
    text = np.datetime_as_string(v, unit="s", timezone="UTC")
    fraction = ~np.isnat(v) & (v.astype(np.int64) % 1_000_000 != 0)
    if fraction.any():
        text[fraction] = np.datetime_as_string(v[fraction], unit="us", timezone="UTC")
    return pa.array(text, pa.string(), mask=np.isnat(v))


def _arrow(gdf: Any) -> pa.Table:
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    wkb = shapely.to_wkb(np.asarray(gdf.geometry.array, dtype=object))
    return table.append_column("geometry", pa.array(wkb, pa.binary()))


def _link(base: str, params: Mapping[str, str], rel: str, **over: Any) -> dict[str, str]:
    query = {**params, **{k: str(v) for k, v in over.items()}}
    return {"href": f"{base}?{urlencode(query)}", "rel": rel, "type": GEOJSON,
            "title": {"self": "This page", "next": "Next page", "prev": "Previous page"}[rel]}


def items(cube: "Cube", layer: LayerConfig, params: Mapping[str, str],
          base_url: str) -> tuple[int, dict[str, str], bytes]:
    """``/collections/{id}/items``: a page of features, with exact
    ``numberMatched`` and ``next``/``prev`` links."""
    q, crs, skip, limit, offset = query_params(layer, params)
    # the page and its exact numberMatched from one scan
    page, matched = cube.query_page(layer.dataset, output="arrow", crs=crs.id, limit=limit, offset=offset, **q)
    links = [_link(base_url, params, "self")]
    if offset + len(page) < matched:
        links.append(_link(base_url, params, "next", offset=offset + limit, limit=limit))
    if offset > 0:
        links.append(_link(base_url, params, "prev", offset=max(0, offset - limit), limit=limit))
    body = {
        "type": "FeatureCollection",
        "features": features(page, crs, skip),
        "numberMatched": matched,
        "numberReturned": len(page),
        "timeStamp": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    return 200, _headers(crs), orjson.dumps(body)


def item(cube: "Cube", layer: LayerConfig, fid: str, params: Mapping[str, str],
         base_url: str) -> tuple[int, dict[str, str], bytes]:
    """``/collections/{id}/items/{fid}``; an id the dataset does not have is a 404."""
    unknown = sorted(set(params) - ITEM_PARAMS)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; this resource takes {sorted(ITEM_PARAMS)}")
    crs = _output_crs(layer, params.get("crs"))
    skip = _bool("skipGeometry", params["skipGeometry"]) if "skipGeometry" in params else False
    try:
        gdf = cube.get(layer.dataset, fid, crs=crs.id, as_of=params.get("as-of"))
    except FeatureNotFound:
        raise FeatureNotFound(f"collection {layer.id!r} has no item {fid!r}") from None
    if layer.properties is not None:
        gdf = gdf[[c for c in gdf.columns if c in ("fid", "geometry", "version", "valid_from", "valid_to")
                   or c in layer.properties]]
    feature = features(gdf, crs, skip)[0]
    feature["links"] = [{"href": base_url, "rel": "self", "type": GEOJSON, "title": "This feature"}]
    return 200, {**_headers(crs), "ETag": etag(fid, int(gdf["version"].iat[0]))}, orjson.dumps(feature)


def history(cube: "Cube", layer: LayerConfig, fid: str, base_url: str) -> tuple[int, dict[str, str], bytes]:
    """``/collections/{id}/items/{fid}/history``: every version of the item,
    each with its valid time and the snapshots that wrote and ended it."""
    try:
        gdf = cube.history(layer.dataset, fid)
    except FeatureNotFound:
        raise FeatureNotFound(f"collection {layer.id!r} has no item {fid!r}") from None
    crs = resolve_crs("OGC:CRS84")
    gdf = gdf.to_crs(crs.pyproj_crs) if gdf.crs is not None else gdf
    if layer.properties is not None:
        gdf = gdf[[c for c in gdf.columns if c in ("fid", "geometry", "version", "valid_from", "valid_to",
                                                   "record_from", "record_to") or c in layer.properties]]
    feats = features(gdf, crs, False)
    for f, rf in zip(feats, gdf["record_from"]):
        f["properties"]["record_from"] = _plain(rf)
    body = {"type": "FeatureCollection", "features": feats, "numberReturned": len(feats),
            "links": [{"href": base_url, "rel": "self", "type": GEOJSON, "title": "Versions of this item"}]}
    return 200, _headers(crs), orjson.dumps(body)


def _headers(crs: Any) -> dict[str, str]:
    return {"Content-Type": GEOJSON, "Content-Crs": f"<{crs.uri or crs.id}>"}


#: JSON Schema of each attribute type (queryables, schema, the pygeoapi provider's fields).
SCHEMA_TYPES = {"integer": {"type": "integer"}, "number": {"type": "number"}, "boolean": {"type": "boolean"},
                 "string": {"type": "string"}, "datetime": {"type": "string", "format": "date-time"},
                 "date": {"type": "string", "format": "date"}}


def schema(spec: "DatasetSpec", layer: LayerConfig, href: str) -> dict[str, Any]:
    """``/collections/{id}/schema``: the JSON Schema of the features' properties as
    served (Features Part 5), with the roles of id, geometry and valid time."""
    props: dict[str, Any] = {
        "fid": {**SCHEMA_TYPES["integer" if spec.fid is None else "string"], "x-ogc-role": "id",
                "title": "Feature id" if spec.fid is None else f"Feature id (the source's {spec.fid})"},
        "geometry": {"format": f"geometry-{(spec.geometry_type or 'any').lower()}", "x-ogc-role": "primary-geometry"},
        "version": {"type": "integer", "readOnly": True, "title": "Version of the feature (1, 2, ...)"},
    }
    if spec.valid_from:
        if spec.instant:
            props["valid_from"] = {**SCHEMA_TYPES["datetime"], "x-ogc-role": "primary-instant",
                                   "title": f"Valid time (the source's {spec.valid_from})"}
        else:
            props["valid_from"] = {**SCHEMA_TYPES["datetime"], "x-ogc-role": "primary-interval-start",
                                   "title": f"Valid from (the source's {spec.valid_from})"}
            props["valid_to"] = {**SCHEMA_TYPES["datetime"], "x-ogc-role": "primary-interval-end",
                                 "title": f"Valid to (the source's {spec.valid_to}); null while open"}
    for f in spec.fields:
        if layer.properties is not None and f.name not in layer.properties:
            continue
        p: dict[str, Any] = dict(SCHEMA_TYPES[f.type])
        if f.description:
            p["description"] = f.description
        if f.enum is not None:
            p["enum"] = list(f.enum)
        if f.minimum is not None:
            p["minimum"] = f.minimum
        if f.maximum is not None:
            p["maximum"] = f.maximum
        if f.unit:
            p["x-ogc-unit"] = f.unit
        props[f.name] = p
    required = [f.name for f in spec.fields if f.required and (layer.properties is None or f.name in layer.properties)]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": href, "type": "object",
            "title": layer.title or spec.title or layer.id, "properties": props, "required": required}
