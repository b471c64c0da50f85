"""OGC API - EDR over sensor series: a point dataset of observations, published
by a series layer (``series:``), as a collection of stations.

* ``locations`` lists the stations (GeoJSON); ``locations/{id}`` is one
  station's series;
* ``radius``, ``area`` and ``cube`` take the stations inside;
* ``items`` are the stations as features.

A station's series is a CoverageJSON PointSeries (several stations: a
CoverageCollection), or GeoJSON or CSV, over the observation times in
``datetime``; ``parameter-name`` picks the variables. The series come from
:meth:`Cube.series` at the snapshot the request resolves once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import shapely

from geoplatform.catalog.layers import SeriesLayerConfig
from geoplatform.crs import resolve_crs, transform_xy
from geoplatform.cube.query import resolve_snapshot
from geoplatform.errors import DatasetNotFound, InvalidParameterValue
from geoplatform.grids.series import series_arrays
from geoplatform.ogc import edr as E

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube

QUERY_TYPES = ("radius", "area", "cube", "locations")
_COMMON = {"datetime", "parameter-name", "parameter_names", "crs", "f", "z"}
_ALLOWED = {"radius": _COMMON | {"coords", "within", "within-units"}, "area": _COMMON | {"coords"},
            "cube": _COMMON | {"bbox"}, "locations": _COMMON, "location": _COMMON}
_NUMERIC = ("integer", "number")


def _variables(cube: "Cube", layer: SeriesLayerConfig) -> list[Any]:
    spec = cube.dataset(layer.series)
    numeric = [f for f in spec.fields if f.type in _NUMERIC and f.name != layer.station]
    if layer.variables is not None:
        known = {f.name for f in numeric}
        bad = [v for v in layer.variables if v not in known]
        if bad:
            raise InvalidParameterValue(f"layer {layer.id!r}: {bad} are not numeric attributes of {layer.series!r}")
        numeric = [f for f in numeric if f.name in layer.variables]
    return numeric


def _parameter(f: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Parameter", "description": {"en": f.description or f.name},
                           "observedProperty": {"id": f.name, "label": {"en": f.description or f.name}},
                           "data-type": "integer" if f.type == "integer" else "float"}
    if f.unit:
        out["unit"] = {"symbol": f.unit, "label": {"en": f.unit}}
    return out


def crs_details(crs: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"crs": c.uri or c.id, "wkt": c.pyproj_crs.to_wkt()} for c in map(resolve_crs, crs)]


def data_queries(href: str, kinds: tuple[str, ...], crs: list[dict[str, str]]) -> dict[str, Any]:
    """A collection's ``data_queries``: each query's link and its variables."""
    queries = {}
    for q in kinds:
        v: dict[str, Any] = {"title": f"{q.capitalize()} query", "query_type": q,
                             "output_formats": list(E._FORMATS), "default_output_format": "CoverageJSON",
                             "crs_details": crs}
        if q == "radius":
            v["within_units"] = list(E._LENGTH)
        queries[q] = {"link": {"href": f"{href}/{q}", "rel": "data", "type": E.COVJSON, "title": f"{q} query",
                               "templated": False, "variables": v}}
    return queries


def vector_extent(cube: "Cube", name: str) -> dict[str, Any]:
    """The spatial (CRS84) and temporal extent of a vector dataset, as EDR writes them."""
    spec, stats = cube.dataset(name), cube.stats(name)
    extent: dict[str, Any] = {}
    if stats.extent is not None:
        b = stats.extent
        xs, ys = transform_xy(np.array([b[0], b[2]]), np.array([b[1], b[3]]), spec.storage_crs, "OGC:CRS84")
        extent["spatial"] = {"bbox": [[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]],
                             "crs": E.CRS84}
    if stats.t_min is not None and stats.t_max is not None:
        extent["temporal"] = {"interval": [[E._iso(stats.t_min), E._iso(stats.t_max)]],
                              "trs": 'TIMECRS["DateTime",TDATUM["Gregorian Calendar"],'
                                     'CS[TemporalDateTime,1],AXIS["Time (T)",future]]'}
    return extent


def collection(cube: "Cube", layer: SeriesLayerConfig, base: str) -> dict[str, Any]:
    spec = cube.dataset(layer.series)
    href = f"{base}/collections/{layer.id}"
    crs = crs_details(layer.crs)
    queries = data_queries(href, QUERY_TYPES, crs)
    queries["items"] = {"link": {"href": f"{href}/items", "rel": "data", "type": E.GEOJSON, "title": "Stations",
                                 "templated": False, "variables": {"title": "Items query", "query_type": "items",
                                                                   "output_formats": ["GeoJSON"],
                                                                   "default_output_format": "GeoJSON"}}}
    extent = vector_extent(cube, layer.series)
    return {"id": layer.id, "title": layer.title or spec.title or layer.id, "itemType": "feature",
            "storageCrs": E.CRS84,  # the stations' positions are served in CRS84 unless asked otherwise
            "description": layer.description or spec.description or "",
            "keywords": list(layer.keywords or spec.keywords), "extent": extent, "data_queries": queries,
            "crs": [c["crs"] for c in crs], "output_formats": ["CoverageJSON", "GeoJSON", "CSV"],
            "parameter_names": {f.name: _parameter(f) for f in _variables(cube, layer)},
            "links": [{"href": href, "rel": "self", "type": E.JSON, "title": "This collection"},
                      {"href": f"{href}/items", "rel": "items", "type": E.GEOJSON, "title": "Stations"},
                      *({"href": f"{href}/{q}", "rel": "data", "type": E.COVJSON, "title": f"{q} query"}
                        for q in QUERY_TYPES)]}


class _Series:
    """One checked request: snapshot, variables, output, and the series read once."""

    def __init__(self, cube: "Cube", layer: SeriesLayerConfig, kind: str, params: Mapping[str, str]) -> None:
        params, self.format = E.checked_params(params, _ALLOWED[kind] - {"parameter_names"}, kind, layer.id)
        self.variables = E.parameter_names(params, [f.name for f in _variables(cube, layer)], layer.id)
        self.crs = E.request_crs(params, [resolve_crs(c) for c in layer.crs], layer.id)
        self.params, self.layer, self.cube = params, layer, cube
        self.snapshot = resolve_snapshot(cube.backend, layer.series, None)
        self.fields = {f.name: f for f in _variables(cube, layer)}

    def read(self, location: str | None = None) -> Any:
        kw: dict[str, Any] = {"as_of": self.snapshot}
        if self.params.get("datetime"):
            kw["datetime"] = self.params["datetime"]
        if location is not None:
            # one station's observations only, by a filter built as CQL2 JSON (never as text)
            kind = self.cube.dataset(self.layer.series).field(self.layer.station).type
            value: Any = location
            if kind == "integer":
                if not location.lstrip("-").isdigit():
                    raise DatasetNotFound(f"collection {self.layer.id!r} has no location {location!r}")
                value = int(location)
            kw.update(filter={"op": "=", "args": [{"property": self.layer.station}, value]}, filter_lang="cql2-json")
        ds = series_arrays(self.cube, self.layer.series, station=self.layer.station, variables=self.variables,
                           stations=self.layer.stations, station_id=self.layer.station_id, crs=self.crs.id, **kw)
        n = len(ds.station) * len(ds.time) * len(self.variables)
        if n > self.layer.max_values:
            raise E.TooLarge(f"the request asks for {n:,} values; {self.layer.id!r} returns at most "
                             f"{self.layer.max_values:,} at once: narrow datetime, the area or parameter-name")
        return ds


def _output(s: _Series, ds: Any, pick: np.ndarray, single: bool) -> tuple[int, dict[str, str], bytes]:
    t_us = ds.time.astype("datetime64[us]").astype(np.int64)
    stations = [str(v) for v in ds.station[pick]]
    xs, ys = ds.x[pick], ds.y[pick]
    headers = {"Content-Crs": f"<{s.crs.uri or s.crs.id}>", "Geoplatform-Snapshot": str(s.snapshot)}
    if s.format == "CoverageJSON":
        covs = []
        times_json = E.iso_times_json(t_us)
        for k, i in enumerate(pick):
            covs.append({"type": "Coverage", "id": stations[k],
                         "domain": {"type": "Domain", "domainType": "PointSeries",
                                    "axes": {"x": {"values": [float(xs[k])]}, "y": {"values": [float(ys[k])]},
                                             "t": {"values": times_json}}},
                         "ranges": {v: E._ndarray(ds.data[v][i], ["t"]) for v in s.variables}})
        params = {v: _parameter(s.fields[v]) for v in s.variables}
        ref = E._referencing(s.crs)
        if single and len(covs) == 1:
            doc = {**covs[0], "domain": {**covs[0]["domain"], "referencing": ref}, "parameters": params}
        else:
            doc = {"type": "CoverageCollection", "domainType": "PointSeries", "parameters": params,
                   "referencing": ref, "coverages": covs}
        return 200, {**headers, "Content-Type": E.COVJSON}, E._dump(doc)
    times = [E._iso(int(v)) for v in t_us]
    rows = []
    for k, i in enumerate(pick):
        for j, t in enumerate(times):
            vals = {v: ds.data[v][i, j] for v in s.variables}
            if all(np.isnan(x) for x in vals.values()):
                continue  # no observation of the station then
            rows.append(((float(xs[k]), float(ys[k])), t, {"station": stations[k], **vals}))
    if s.format == "GeoJSON":
        feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": list(xy)},
                  "properties": {"datetime": t, **{k: E._plain(v) for k, v in vals.items()}}} for xy, t, vals in rows]
        return 200, {**headers, "Content-Type": E.GEOJSON}, E._dump({"type": "FeatureCollection", "features": feats})
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["station", "x", "y", "datetime", *s.variables])
    for xy, t, vals in rows:
        w.writerow([vals["station"], repr(xy[0]), repr(xy[1]), t,
                    *("" if (p := E._plain(vals[v])) is None else p for v in s.variables)])
    return 200, {**headers, "Content-Type": E.CSV + "; charset=utf-8"}, buf.getvalue().encode()


def query(cube: "Cube", layer: SeriesLayerConfig, kind: str, params: Mapping[str, str],
          location: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One EDR query of a series collection: radius, area, cube, locations (with or
    without a location id)."""
    if kind not in _ALLOWED:
        raise DatasetNotFound(f"collection {layer.id!r} serves no {kind} query: it serves {list(QUERY_TYPES)}")
    s = _Series(cube, layer, "location" if location is not None else kind, params)
    if kind == "locations" and location is None:
        return locations(s)
    area = None
    if kind == "locations":
        pass
    elif kind == "cube":
        v = E.bbox_param(s.params)
        area = shapely.box(*v)
    elif kind == "area":
        area = E._geometry(s.params.get("coords", ""), ("POLYGON", "MULTIPOLYGON"))
    else:
        centre = E._geometry(s.params.get("coords", ""), ("POINT", "MULTIPOINT"))
        area = E._buffer(s, centre, E._length(s.params, "within", "within-units"))  # type: ignore[arg-type]
    ds = s.read(location)
    if location is not None:
        ids = [str(v) for v in ds.station]
        if location not in ids:
            raise DatasetNotFound(f"collection {layer.id!r} has no location {location!r}")
        pick = np.array([ids.index(location)])
    else:
        inside = shapely.contains_xy(area, ds.x, ds.y) | shapely.intersects_xy(area.boundary, ds.x, ds.y)
        pick = np.flatnonzero(inside)
        if not len(pick):
            raise InvalidParameterValue(f"no station of {layer.id!r} is in the {kind} query's area")
    return _output(s, ds, pick, single=location is not None)


def locations(s: _Series) -> tuple[int, dict[str, str], bytes]:
    """The stations, as GeoJSON features whose ids are the location ids."""
    ds = series_arrays(s.cube, s.layer.series, station=s.layer.station, variables=s.variables[:1],
                       stations=s.layer.stations, station_id=s.layer.station_id, crs=s.crs.id,
                       as_of=s.snapshot, datetime=s.params.get("datetime"))
    feats = [{"type": "Feature", "id": str(st), "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
              "properties": {"name": str(st)}}
             for st, x, y in zip(ds.station, ds.x, ds.y)]
    return 200, {"Content-Type": E.GEOJSON, "Content-Crs": f"<{s.crs.uri or s.crs.id}>"}, \
        E._dump({"type": "FeatureCollection", "features": feats})


def items(cube: "Cube", layer: SeriesLayerConfig, params: Mapping[str, str], fid: str | None = None,
          url: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """The stations as features (EDR items), paged by ``limit`` and ``offset`` with
    ``next`` links (as GDAL's OAPIF driver follows them); one of them by its id."""
    allowed = {"f", "crs"} | ({"limit", "offset"} if fid is None else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; this resource takes {sorted(allowed)}")
    if params.get("f") not in (None, "json", "geojson"):
        raise InvalidParameterValue(f"f={params['f']!r} is not served; stations are GeoJSON")
    status, headers, body = query(cube, layer, "locations", {"crs": params["crs"]} if "crs" in params else {})
    feats = orjson.loads(body)["features"]
    if fid is not None:
        for f in feats:
            if f["id"] == fid:
                return status, headers, E._dump(f)
        raise DatasetNotFound(f"collection {layer.id!r} has no station {fid!r}")
    limit, offset = 10, 0
    for name in ("limit", "offset"):
        v = params.get(name)
        if v is not None:
            if not v.isdigit() or (name == "limit" and not 1 <= int(v) <= 10_000):
                raise InvalidParameterValue(f"{name} must be {'an integer from 1 to 10000' if name == 'limit' else 'a non-negative integer'}, not {v!r}")
            limit, offset = (int(v), offset) if name == "limit" else (limit, int(v))
    page = feats[offset:offset + limit]
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": page, "numberMatched": len(feats),
                           "numberReturned": len(page), "links": []}
    if url is not None:
        extra = f"&crs={params['crs']}" if "crs" in params else ""
        doc["links"].append({"href": f"{url}?limit={limit}&offset={offset}{extra}", "rel": "self", "type": E.GEOJSON})
        if offset + limit < len(feats):
            doc["links"].append({"href": f"{url}?limit={limit}&offset={offset + limit}{extra}", "rel": "next",
                                 "type": E.GEOJSON, "title": "Next page"})
    return status, headers, E._dump(doc)


def openapi_paths(layers: Mapping[str, SeriesLayerConfig]) -> dict[str, Any]:
    """The EDR paths of the series collections, for the API document."""
    import re

    err = {"description": "A bad request", "content": {E.JSON: {"schema": {"type": "object"}}}}
    ok = {"description": "The data", "content": {E.COVJSON: {"schema": {"type": "object"}},
                                                 E.GEOJSON: {"schema": {"type": "object"}},
                                                 E.CSV: {"schema": {"type": "string"}}}}
    req = {"radius": {"coords", "within", "within-units"}, "area": {"coords"}, "cube": {"bbox"}}
    paths: dict[str, Any] = {}
    for layer in layers.values():
        op = re.sub(r"[^A-Za-z0-9_]", "_", layer.id)
        base = f"/collections/{layer.id}"
        paths[base] = {"get": {"summary": layer.title or layer.id, "operationId": f"{op}_series_collection",
                               "responses": {"200": {"description": "The collection"}, "400": err}}}
        for q in ("radius", "area", "cube"):
            params = [{"name": n, "in": "query", "required": n in req[q], "description": E._PARAM_DOC[n][1],
                       "schema": {"type": E._PARAM_DOC[n][0]}} for n in sorted(_ALLOWED[q] - {"parameter_names"})]
            paths[f"{base}/{q}"] = {"get": {"summary": f"{q} query of {layer.id}", "operationId": f"{op}_series_{q}",
                                            "parameters": params, "responses": {"200": ok, "400": err, "413": err}}}
        common = [{"name": n, "in": "query", "required": False, "description": E._PARAM_DOC[n][1],
                   "schema": {"type": E._PARAM_DOC[n][0]}} for n in sorted(_COMMON - {"parameter_names"})]
        paths[f"{base}/locations"] = {"get": {"summary": f"Stations of {layer.id}", "operationId": f"{op}_locations",
                                              "parameters": common, "responses": {"200": ok, "400": err}}}
        paths[f"{base}/locations/{{locId}}"] = {"get": {
            "summary": f"A station's series of {layer.id}", "operationId": f"{op}_location",
            "parameters": [{"name": "locId", "in": "path", "required": True, "schema": {"type": "string"}}, *common],
            "responses": {"200": ok, "400": err, "404": err, "413": err}}}
        paths[f"{base}/items"] = {"get": {"summary": f"Stations of {layer.id}", "operationId": f"{op}_station_items",
                                          "parameters": [
                                              {"name": "limit", "in": "query", "required": False,
                                               "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                                              {"name": "offset", "in": "query", "required": False,
                                               "schema": {"type": "integer", "minimum": 0}}],
                                          "responses": {"200": ok, "400": err}}}
        paths[f"{base}/items/{{featureId}}"] = {"get": {
            "summary": f"A station of {layer.id}", "operationId": f"{op}_station_item",
            "parameters": [{"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": ok, "400": err, "404": err}}}
    return paths
