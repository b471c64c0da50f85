"""OGC API - Environmental Data Retrieval (1.1) over the cube's grids.

A grid layer (``layers/<theme>/<id>.yaml`` with ``grid:``) is an EDR
collection with the position, radius, area, cube, trajectory and corridor
queries. Results are CoverageJSON (the default), GeoJSON or CSV.

* ``coords`` is Well-Known Text in ``crs`` (default CRS84); ``bbox`` too.
* A point takes the value of the cell it falls in; an area, a radius or a
  corridor takes the cells it touches (the others of its bounding box are
  null in a grid result); a cube takes the cells whose centres are in it. Grid results are in the grid's own
  CRS, the only one its cells are square in: ``crs`` names the CRS of the
  coordinates asked and of point results.
* ``datetime`` selects the time steps in an instant or an interval (open ends
  allowed); none given, all of them.
* The grid has no vertical axis: ``z`` is refused, as are unknown parameters.
* A request for more than ``max_cells`` values gets 413, before anything is read.

Framework-free: :func:`collection` and :func:`query` return documents and
bodies; :func:`edr_routes` mounts them on Starlette.
"""

from __future__ import annotations

import csv
import io
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from geoplatform.catalog.layers import GridLayerConfig
from geoplatform.crs import resolve_crs, transform_xy
from geoplatform.cube.times import parse_interval, to_us
from geoplatform.errors import DatasetNotFound, GeoPlatformError, InvalidParameterValue

if TYPE_CHECKING:

    from geoplatform.cube.cube import Cube

COVJSON = "application/prs.coverage+json"
GEOJSON = "application/geo+json"
CSV = "text/csv"
JSON = "application/json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_BASE = "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/"
EDR_CONFORMANCE = tuple(_BASE + c for c in ("core", "collections", "queries", "json", "geojson", "covjson", "oas30"))
QUERY_TYPES = ("position", "radius", "area", "cube", "trajectory", "corridor")
_FORMATS = {"CoverageJSON": COVJSON, "GeoJSON": GEOJSON, "CSV": CSV}
_F = {"covjson": "CoverageJSON", "coveragejson": "CoverageJSON", "json": "CoverageJSON", "geojson": "GeoJSON",
      "csv": "CSV"}
_COMMON = {"datetime", "parameter-name", "crs", "f", "z"}
_ALLOWED = {
    "position": _COMMON | {"coords"},
    "radius": _COMMON | {"coords", "within", "within-units"},
    "area": _COMMON | {"coords", "resolution-x", "resolution-y"},
    "cube": _COMMON | {"bbox", "resolution-x", "resolution-y", "resolution-z"},
    "trajectory": _COMMON | {"coords"},
    "corridor": _COMMON | {"coords", "corridor-width", "width-units", "corridor-height", "height-units",
                           "resolution-x", "resolution-z"},
    "locations": _COMMON,
}
#: what the list of a grid's locations takes
_LOCATION_LIST = {"f", "crs", "bbox"}
_LENGTH = {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048, "nmi": 1852.0}
_WKT_KIND = re.compile(r"^\s*([A-Za-z]+)\s*(ZM|Z|M)?\s*\(", re.I)


class TooLarge(GeoPlatformError):
    """A request for more values than the collection serves at once."""

    http_status = 413
    code = "PayloadTooLarge"


# metadata ----------------------------------------------------------------------

def _offered(cube: "Cube", layer: GridLayerConfig) -> list[Any]:
    """The CRSs a collection takes coordinates in: the layer's, and the grid's own."""
    out = [resolve_crs(c) for c in layer.crs]
    geom = cube.backend.grids().row(layer.grid).geometry
    if geom is not None and resolve_crs(geom.crs) not in out:
        out.append(resolve_crs(geom.crs))
    return out


def _crs_details(cube: "Cube", layer: GridLayerConfig) -> list[dict[str, str]]:
    return [{"crs": c.uri or c.id, "wkt": c.pyproj_crs.to_wkt()} for c in _offered(cube, layer)]


def _parameter(v: Any) -> dict[str, Any]:
    label = v.title or v.name
    out: dict[str, Any] = {"type": "Parameter", "description": {"en": v.description or label},
                           "observedProperty": {"id": v.standard_name or v.name, "label": {"en": label}}}
    if v.units:
        out["unit"] = {"symbol": v.units, "label": {"en": v.units}}
    out["data-type"] = "float" if v.dtype.startswith("float") else "integer"
    return out


def collection(cube: "Cube", layer: GridLayerConfig, base: str) -> dict[str, Any]:
    """The collection's metadata: extents, the queries and their variables, the parameters."""
    g = cube.backend.grids()
    row, sid, steps = g.resolve(layer.grid)
    spec, geom = row.spec, row.geometry
    href = f"{base}/collections/{layer.id}"
    crs = _crs_details(cube, layer)
    out_formats = list(_FORMATS)
    queries = {}
    for q in QUERY_TYPES:
        variables: dict[str, Any] = {"title": f"{q.capitalize()} query", "query_type": q,
                                     "output_formats": out_formats, "default_output_format": "CoverageJSON",
                                     "crs_details": crs}
        if q == "radius":
            variables["within_units"] = list(_LENGTH)
        if q == "corridor":
            variables.update(width_units=list(_LENGTH), height_units=list(_LENGTH))
        queries[q] = {"link": {"href": f"{href}/{q}", "rel": "data", "type": COVJSON, "title": f"{q} query",
                               "templated": False, "variables": variables}}
    if layer.locations:
        queries["locations"] = {"link": {
            "href": f"{href}/locations", "rel": "data", "type": GEOJSON, "title": "locations query",
            "templated": False, "variables": {"title": "Locations query", "query_type": "locations",
                                              "output_formats": out_formats, "default_output_format": "CoverageJSON",
                                              "crs_details": crs}}}
    extent: dict[str, Any] = {}
    if geom is not None:
        b = geom.bounds
        xs, ys = transform_xy(np.array([b[0], b[2], b[0], b[2]]), np.array([b[1], b[1], b[3], b[3]]),
                              geom.crs, "OGC:CRS84")
        extent["spatial"] = {"bbox": [[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]],
                             "crs": CRS84}
        if steps:
            t = g.times_us(row.id, steps)
            iso = [_iso(int(t[0])), _iso(int(t[-1]))]
            extent["temporal"] = {"interval": [iso], "values": [f"{iso[0]}/{iso[1]}"] if steps > 1 else [iso[0]],
                                  "trs": 'TIMECRS["DateTime",TDATUM["Gregorian Calendar"],'
                                         'CS[TemporalDateTime,1],AXIS["Time (T)",future]]'}
    from geoplatform.ogc.coverages import collection_parts

    cov = collection_parts(cube, layer, href)
    if "storageCrsBbox" in cov and "spatial" in extent:
        extent["spatial"]["storageCrsBbox"] = cov.pop("storageCrsBbox")
        extent["spatial"]["grid"] = cov.pop("grid")
    if "temporalGrid" in cov and "temporal" in extent:
        extent["temporal"]["grid"] = cov.pop("temporalGrid")
    return {
        "id": layer.id,
        "title": layer.title or spec.title or layer.id,
        "itemType": "coverage",  # no items: its data are the queries and the coverage
        **({"storageCrs": cov["storageCrs"]} if "storageCrs" in cov else {}),
        "description": layer.description or spec.description or "",
        "keywords": list(layer.keywords or spec.keywords),
        "extent": extent,
        "data_queries": queries,
        "crs": [c["crs"] for c in crs],
        "output_formats": out_formats,
        "parameter_names": {v.name: _parameter(v) for v in spec.variables or ()},
        "links": [{"href": href, "rel": "self", "type": JSON, "title": "This collection"},
                  {"href": f"{href}/map/tiles", "rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-map",
                   "type": JSON, "title": "Map tilesets (PNG)"},
                  *cov["links"],
                  *({"href": f"{href}/{q}", "rel": "data", "type": COVJSON, "title": f"{q} query"}
                    for q in QUERY_TYPES),
                  *([{"href": f"{href}/locations", "rel": "data", "type": GEOJSON, "title": "locations"}]
                    if layer.locations else [])],
    }


def _iso(us: int) -> str:
    return np.datetime64(us, "us").astype("datetime64[s]").astype(str) + "Z"


#: time axes already written, by their microseconds' bytes: the stations of a series
#: answer one year with the same 8,784 steps, a grid every request with its own
_TIMES_JSON: "OrderedDict[bytes, orjson.Fragment]" = OrderedDict()
_TIMES_JSON_MAX = 16  # of at most _TIMES_JSON_STEPS steps: a few MB
_TIMES_JSON_STEPS = 100_000
_TIMES_JSON_LOCK = threading.Lock()


def iso_times_json(us: np.ndarray) -> orjson.Fragment:
    """Times (int64 microseconds, UTC) as the JSON array of their RFC 3339 texts to
    the second, as :func:`_iso` writes one, built in numpy: a year of hourly steps
    is 8,784 strings, and formatting them one by one costs milliseconds. The last
    axes written are kept (a few kilobytes each)."""
    us = np.ascontiguousarray(us, np.int64)
    key = us.tobytes()
    with _TIMES_JSON_LOCK:
        hit = _TIMES_JSON.get(key)
        if hit is not None:
            _TIMES_JSON.move_to_end(key)
            return hit
    out = _format_times(us)
    if len(us) > _TIMES_JSON_STEPS:
        return out
    with _TIMES_JSON_LOCK:
        _TIMES_JSON[key] = out
        while len(_TIMES_JSON) > _TIMES_JSON_MAX:
            _TIMES_JSON.popitem(last=False)
    return out


def _format_times(us: np.ndarray) -> orjson.Fragment:
    s = np.floor_divide(us, 1_000_000)
    days, secs = np.divmod(s, 86_400)
    # civil date from a day count (H. Hinnant's algorithm), vectorised
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    if len(s) and (year.min() < 0 or year.max() > 9999):
        return orjson.Fragment(orjson.dumps([_iso(int(v)) for v in us]))
    out = np.empty((len(s), 23), np.uint8)  # "YYYY-MM-DDTHH:MM:SSZ",
    zero = ord("0")

    def put(col: int, value: np.ndarray, width: int) -> None:
        for k in range(width):
            out[:, col + width - 1 - k] = zero + (value // 10 ** k) % 10

    out[:, 0] = out[:, 21] = ord('"')
    put(1, year, 4)
    out[:, 5] = out[:, 8] = ord("-")
    put(6, month, 2)
    put(9, day, 2)
    out[:, 11] = ord("T")
    put(12, secs // 3600, 2)
    out[:, 14] = out[:, 17] = ord(":")
    put(15, secs // 60 % 60, 2)
    put(18, secs % 60, 2)
    out[:, 20] = ord("Z")
    out[:, 22] = ord(",")
    body = out.tobytes()[:-1] if len(s) else b""
    return orjson.Fragment(b"[" + body + b"]")


# parameters ----------------------------------------------------------------------

def _float(name: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise InvalidParameterValue(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(v):
        raise InvalidParameterValue(f"{name} must be a finite number, not {value!r}")
    return v


def _geometry(value: str, kinds: tuple[str, ...]) -> Any:
    import shapely

    m = _WKT_KIND.match(value or "")
    if m is None or m.group(1).upper() not in kinds:
        raise InvalidParameterValue(f"coords must be Well-Known Text of a {' or '.join(kinds)}, not {value[:80]!r}")
    try:
        geom = shapely.from_wkt(value)
    except shapely.errors.GEOSException as exc:
        raise InvalidParameterValue(f"coords {value[:80]!r} is not valid Well-Known Text: {exc}") from None
    if geom is None or geom.is_empty:
        raise InvalidParameterValue("coords is an empty geometry")
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise InvalidParameterValue("coords holds a coordinate that is not a finite number")
    if geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_valid:
        raise InvalidParameterValue(f"coords is not a valid polygon: {shapely.is_valid_reason(geom)}")
    return geom


def checked_params(params: Mapping[str, str], allowed: set[str] | frozenset[str], kind: str,
                   cid: str) -> tuple[dict[str, str], str]:
    """A query's parameters (OWSLib's ``parameter_names`` read as ``parameter-name``)
    with unknown ones and ``z`` refused, and its output format."""
    params = dict(params)
    if "parameter_names" in params:  # OWSLib's EDR client spells it so
        if "parameter-name" in params:
            raise InvalidParameterValue("give parameter-name or parameter_names, not both")
        params["parameter-name"] = params.pop("parameter_names")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; a {kind} query takes {sorted(allowed)}")
    if "z" in params or "resolution-z" in params:
        raise InvalidParameterValue(f"collection {cid!r} has no vertical axis: z is not served")
    fmt = params.get("f", "CoverageJSON")
    out = _F.get(fmt.lower(), fmt) if fmt else "CoverageJSON"
    if out not in _FORMATS:
        raise InvalidParameterValue(f"f={fmt!r} is not served; use one of {list(_FORMATS)}")
    return params, out


def bbox_param(params: Mapping[str, str]) -> tuple[float, float, float, float]:
    """A cube query's ``bbox`` (four numbers, or six with heights dropped)."""
    if "bbox" not in params:
        raise InvalidParameterValue("a cube query needs bbox")
    parts = params["bbox"].split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameterValue(f"bbox {params['bbox']!r} must be four numbers")
    v = [_float("bbox", p) for p in parts]
    x0, y0, x1, y1 = (v[0], v[1], v[2], v[3]) if len(v) == 4 else (v[0], v[1], v[3], v[4])
    if x0 > x1 or y0 > y1:
        raise InvalidParameterValue(f"bbox {params['bbox']!r}: the lower corner is above the upper")
    return x0, y0, x1, y1


def parameter_names(params: Mapping[str, str], names: list[str], cid: str) -> list[str]:
    """The variables ``parameter-name`` asks for, in its order (none: all of ``names``)."""
    if not params.get("parameter-name"):
        return names
    asked = [p.strip() for p in params["parameter-name"].split(",") if p.strip()]
    bad = [p for p in asked if p not in names]
    if bad or not asked:
        raise InvalidParameterValue(f"parameter-name {bad or params['parameter-name']!r}: the parameters of "
                                    f"{cid!r} are {names}")
    return list(dict.fromkeys(asked))


def request_crs(params: Mapping[str, str], offered: list[Any], cid: str) -> Any:
    """The ``crs`` of the coordinates asked and of point results (default CRS84), one ``offered``."""
    crs = resolve_crs(params.get("crs") or "OGC:CRS84")
    if crs not in offered:
        raise InvalidParameterValue(f"crs {params.get('crs')!r} is not offered by {cid!r}: use one of "
                                    f"{[c.uri or c.id for c in offered]}")
    return crs


def _length(params: Mapping[str, str], value_key: str, unit_key: str) -> float:
    if value_key not in params:
        raise InvalidParameterValue(f"{value_key} is required")
    if unit_key not in params:
        raise InvalidParameterValue(f"{unit_key} is required (one of {sorted(_LENGTH)})")
    unit = params[unit_key]
    if unit not in _LENGTH:
        raise InvalidParameterValue(f"{unit_key}={unit!r} is not one of {sorted(_LENGTH)}")
    v = _float(value_key, params[value_key])
    if v <= 0:
        raise InvalidParameterValue(f"{value_key} must be above 0")
    return v * _LENGTH[unit]


class _Request:
    """One EDR query, checked: the grid's snapshot, time steps, variables, output."""

    def __init__(self, cube: "Cube", layer: GridLayerConfig, query_type: str, params: Mapping[str, str]) -> None:
        if query_type not in _ALLOWED:
            raise InvalidParameterValue(f"no {query_type!r} query: this collection serves {list(QUERY_TYPES)}")
        params, self.format = checked_params(params, _ALLOWED[query_type], query_type, layer.id)
        if not params and query_type != "locations":
            raise InvalidParameterValue(f"a {query_type} query needs parameters "
                                        f"({'bbox' if query_type == 'cube' else 'coords'} at least)")
        self.params = params
        self.query_type = query_type
        self.layer = layer
        g = cube.backend.grids()
        self.row, self.snapshot, self.steps = g.resolve(layer.grid)
        self.spec, self.geom = self.row.spec, self.row.geometry
        if self.geom is None or not self.steps:
            raise InvalidParameterValue(f"collection {layer.id!r} holds no data yet")
        self.variables = parameter_names(params, [v.name for v in self.spec.variables or ()], layer.id)
        self.crs = request_crs(params, _offered(cube, layer), layer.id)
        self.native = resolve_crs(self.geom.crs)
        t = g.times_us(self.row.id, self.steps)
        self.times = t
        interval = parse_interval(params["datetime"]) if params.get("datetime") else None
        if interval is None:
            self.t_index = np.arange(len(t))
        else:
            lo, hi = to_us(interval.start, -2**63), to_us(interval.end, 2**63 - 1)
            self.t_index = np.flatnonzero((t >= lo) & (t <= hi))
            if not len(self.t_index):
                raise InvalidParameterValue(f"datetime {params['datetime']!r} holds no time step of {layer.id!r} "
                                            f"(it has {_iso(int(t[0]))} to {_iso(int(t[-1]))})")
        self.cube = cube

    def check_size(self, cells: int) -> None:
        n = cells * len(self.t_index) * len(self.variables)
        if n > self.layer.max_cells:
            raise TooLarge(f"the request asks for {n:,} values; {self.layer.id!r} returns at most "
                           f"{self.layer.max_cells:,} at once: narrow coords, bbox, datetime or parameter-name")

    def to_native(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transform_xy(np.asarray(x, float), np.asarray(y, float), self.crs, self.native)

    def cell(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row, column of the native points, and whether each is on the grid."""
        g = self.geom
        col = np.floor((x - g.x0) / g.dx).astype(np.int64)
        row = np.floor((y - g.y0) / g.dy).astype(np.int64)
        inside = (col >= 0) & (col < g.width) & (row >= 0) & (row < g.height)
        return row, col, inside


# queries -------------------------------------------------------------------------

def query(cube: "Cube", layer: GridLayerConfig, query_type: str,
          params: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Run one EDR query; (status, headers, body)."""
    r = _Request(cube, layer, query_type, params)
    if query_type == "position":
        geom = _geometry(r.params.get("coords", ""), ("POINT", "MULTIPOINT"))
        return _points(r, geom)
    if query_type == "trajectory":
        geom = _geometry(r.params.get("coords", ""), ("LINESTRING",))
        return _trajectory(r, geom)
    if query_type == "cube":
        import shapely

        return _area(r, shapely.box(*bbox_param(r.params)), whole_box=True)
    if query_type == "area":
        return _area(r, _geometry(r.params.get("coords", ""), ("POLYGON", "MULTIPOLYGON")))
    if query_type == "radius":
        centre = _geometry(r.params.get("coords", ""), ("POINT", "MULTIPOINT"))
        return _area(r, _buffer(r, centre, _length(r.params, "within", "within-units")))
    # corridor
    line = _geometry(r.params.get("coords", ""), ("LINESTRING",))
    width = _length(r.params, "corridor-width", "width-units")
    # required by the query; a grid without a vertical axis lies within any height
    if "corridor-height" not in r.params or "height-units" not in r.params:
        raise InvalidParameterValue("a corridor query needs corridor-height and height-units")
    if r.params["height-units"] not in _LENGTH:
        raise InvalidParameterValue(f"height-units={r.params['height-units']!r} is not one of {sorted(_LENGTH)}")
    if _float("corridor-height", r.params["corridor-height"]) <= 0:
        raise InvalidParameterValue("corridor-height must be above 0")
    return _area(r, _buffer(r, line, width / 2, cap="flat"))


def locations(cube: "Cube", layer: GridLayerConfig, params: Mapping[str, str],
              location: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """The grid's named places (the features of ``layer.locations``) as GeoJSON, or
    the grid's data at one of them: a point's series, the cells of a polygon, the
    cells along a line, as the position, area and trajectory queries answer them."""
    import shapely

    from geoplatform.errors import FeatureNotFound

    if layer.locations is None:
        raise DatasetNotFound(f"collection {layer.id!r} has no locations: it serves {list(QUERY_TYPES)}")
    if location is not None:
        r = _Request(cube, layer, "locations", params)
        try:
            place = cube.get(layer.locations, location, crs=r.crs.id)
        except (FeatureNotFound, InvalidParameterValue):
            raise DatasetNotFound(f"collection {layer.id!r} has no location {location!r}") from None
        geom = place.geometry.iloc[0]
        kind = geom.geom_type
        if kind in ("Point", "MultiPoint"):
            return _points(r, geom)
        if kind in ("LineString", "MultiLineString"):
            return _trajectory(r, shapely.line_merge(geom) if kind == "MultiLineString" else geom)
        return _area(r, geom)
    unknown = sorted(set(params) - _LOCATION_LIST)
    if unknown:
        raise InvalidParameterValue(f"unknown query parameters {unknown}; the locations of {layer.id!r} take "
                                    f"{sorted(_LOCATION_LIST)}")
    if params.get("f") not in (None, "json", "geojson", "GeoJSON"):
        raise InvalidParameterValue(f"f={params['f']!r} is not served; locations are GeoJSON")
    crs = request_crs(params, _offered(cube, layer), layer.id)
    q: dict[str, Any] = {"crs": crs.id}
    if params.get("bbox"):
        q.update(bbox=bbox_param(params), bbox_crs=crs.id)
    frame = cube.query(layer.locations, **q)
    names = frame[layer.location_name] if layer.location_name else frame["fid"]
    feats = [{"type": "Feature", "id": str(i), "geometry": shapely.geometry.mapping(g),
              "properties": {"name": str(n)}}
             for i, n, g in zip(frame["fid"], names, frame.geometry, strict=True)]
    return 200, {"Content-Type": GEOJSON, "Content-Crs": f"<{crs.uri or crs.id}>"}, \
        _dump({"type": "FeatureCollection", "features": feats})


def _buffer(r: _Request, geom: Any, metres: float, cap: str = "round") -> Any:
    """``geom`` (in the request's CRS) grown by ``metres``, in the request's CRS: in
    a local azimuthal equidistant projection when that CRS is not in metres. A
    corridor ends square where its path ends (``cap="flat"``)."""
    import shapely
    from pyproj import CRS, Transformer

    if not r.crs.is_geographic:
        return shapely.buffer(geom, metres, cap_style=cap)
    c = geom.centroid
    lon, lat = transform_xy(np.array([c.x]), np.array([c.y]), r.crs, "OGC:CRS84")
    local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat[0]} +lon_0={lon[0]} +units=m +datum=WGS84")
    fwd = Transformer.from_crs(r.crs.pyproj_crs, local, always_xy=True)
    back = Transformer.from_crs(local, r.crs.pyproj_crs, always_xy=True)
    grown = shapely.buffer(shapely.transform(geom, lambda a: np.column_stack(fwd.transform(a[:, 0], a[:, 1]))),
                           metres, cap_style=cap)
    return shapely.transform(grown, lambda a: np.column_stack(back.transform(a[:, 0], a[:, 1])))


def _resolution(r: _Request, key: str, cells: int) -> np.ndarray | None:
    """The cells (offsets into ``cells``) that ``resolution-x`` / ``-y`` asks for: that
    many points spread evenly from the first cell to the last, never more than the
    grid has (results are not interpolated); None: every cell."""
    if key not in r.params:
        return None
    try:
        n = int(r.params[key])
    except ValueError:
        raise InvalidParameterValue(f"{key}={r.params[key]!r} is not a whole number of points") from None
    if n < 1:
        raise InvalidParameterValue(f"{key} must be at least 1")
    if n >= cells:
        return np.arange(cells)
    return np.unique(np.round(np.linspace(0, cells - 1, n)).astype(np.int64))


def _read(r: _Request, rows: slice | np.ndarray, cols: slice | np.ndarray) -> dict[str, np.ndarray]:
    # a few steps over a wide area: the map copy; many steps over a few cells: the series copy
    def n(a: slice | np.ndarray) -> int:
        return len(a) if isinstance(a, np.ndarray) else a.stop - a.start

    wide = n(rows) * n(cols) > 4 * len(r.t_index)
    g = r.cube.backend.grids()
    return {v: g.read(r.layer.grid, "map" if wide else "series", v, r.t_index, rows, cols) for v in r.variables}


def _points(r: _Request, geom: Any) -> tuple[int, dict[str, str], bytes]:
    import shapely

    pts = shapely.get_coordinates(geom)
    nx, ny = r.to_native(pts[:, 0], pts[:, 1])
    row, col, inside = r.cell(nx, ny)
    if not inside.any():
        raise InvalidParameterValue(f"coords fall outside the grid of {r.layer.id!r}")
    r.check_size(int(inside.sum()))
    g = r.cube.backend.grids()  # a point's whole series is a few chunks of the series copy
    out = []
    for k in np.flatnonzero(inside):
        out.append(((float(pts[k, 0]), float(pts[k, 1])),
                    {v: g.read(r.layer.grid, "series", v, r.t_index, int(row[k]), int(col[k])) for v in r.variables}))
    return _point_series_output(r, out)


def _trajectory(r: _Request, geom: Any) -> tuple[int, dict[str, str], bytes]:
    """The cells along the line (sampled at a cell's spacing), at every selected step."""
    import shapely

    line_native = shapely.transform(geom, lambda a: np.column_stack(r.to_native(a[:, 0], a[:, 1])))
    step = min(abs(r.geom.dx), abs(r.geom.dy))
    n = max(2, int(math.ceil(line_native.length / step)) + 1)
    d = np.linspace(0, line_native.length, n)
    p = shapely.get_coordinates(shapely.line_interpolate_point(line_native, d))
    row, col, inside = r.cell(p[:, 0], p[:, 1])
    keep = np.flatnonzero(inside)
    # a cell once, in path order
    _, first = np.unique(row[keep] * r.geom.width + col[keep], return_index=True)
    keep = keep[np.sort(first)]
    if not len(keep):
        raise InvalidParameterValue(f"the trajectory does not cross the grid of {r.layer.id!r}")
    r.check_size(len(keep))
    cx, cy = r.geom.x[col[keep]], r.geom.y[row[keep]]
    ox, oy = transform_xy(cx, cy, r.native, r.crs)
    r0, r1, c0, c1 = int(row[keep].min()), int(row[keep].max()) + 1, int(col[keep].min()), int(col[keep].max()) + 1
    block = _read(r, slice(r0, r1), slice(c0, c1))
    vals = {v: a[:, row[keep] - r0, col[keep] - c0] for v, a in block.items()}  # (t, points)
    return _trajectory_output(r, ox, oy, vals)


def _area(r: _Request, geom: Any, whole_box: bool = False) -> tuple[int, dict[str, str], bytes]:
    """The cells whose centres fall in ``geom`` (in the request's CRS), as a grid
    over their bounding rows and columns in the grid's CRS (others null)."""
    import shapely

    native = shapely.transform(geom, lambda a: np.column_stack(r.to_native(a[:, 0], a[:, 1])))
    if whole_box and r.crs != r.native:
        # a box in another CRS is a curved shape in the grid's: keep its outline
        native = shapely.transform(shapely.segmentize(geom, max(geom.length / 256, 1e-12)),
                                   lambda a: np.column_stack(r.to_native(a[:, 0], a[:, 1])))
    g = r.geom
    b = native.bounds
    eps = 1e-9  # of a cell: an area that ends on a cell's edge does not take the next cell
    c0 = max(0, int(math.floor((b[0] - g.x0) / g.dx + eps)))
    c1 = min(g.width, int(math.ceil((b[2] - g.x0) / g.dx - eps)))
    ya, yb = (b[3], b[1]) if g.dy < 0 else (b[1], b[3])
    r0 = max(0, int(math.floor((ya - g.y0) / g.dy + eps)))
    r1 = min(g.height, int(math.ceil((yb - g.y0) / g.dy - eps)))
    if c1 <= c0 or r1 <= r0:
        raise InvalidParameterValue(f"the {r.query_type} query does not meet the grid of {r.layer.id!r}")
    if "resolution-x" not in r.params and "resolution-y" not in r.params:
        r.check_size((r1 - r0) * (c1 - c0))
    xs, ys = g.x[c0:c1], g.y[r0:r1]
    if whole_box and r.crs == r.native:
        mask = ((xs >= b[0]) & (xs <= b[2]))[None, :] & ((ys >= b[1]) & (ys <= b[3]))[:, None]
    else:
        from affine import Affine
        from rasterio.features import geometry_mask

        # every cell the area touches (a corridor narrower than a cell still has its cells)
        mask = geometry_mask([native], out_shape=(r1 - r0, c1 - c0), invert=True, all_touched=True,
                             transform=Affine(g.dx, 0, g.x0 + c0 * g.dx, 0, g.dy, g.y0 + r0 * g.dy))
    if not mask.any():
        raise InvalidParameterValue(f"no cell of {r.layer.id!r} meets the {r.query_type} query's area")
    # the result's grid is the rows and columns with a selected cell, no more
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    xs, ys = xs[cols[0]:cols[-1] + 1], ys[rows[0]:rows[-1] + 1]
    r0, r1, c0, c1 = r0 + rows[0], r0 + rows[-1] + 1, c0 + cols[0], c0 + cols[-1] + 1
    pick_r, pick_c = _resolution(r, "resolution-y", int(r1 - r0)), _resolution(r, "resolution-x", int(c1 - c0))
    if pick_r is not None or pick_c is not None:
        pick_r = np.arange(r1 - r0) if pick_r is None else pick_r
        pick_c = np.arange(c1 - c0) if pick_c is None else pick_c
        mask, xs, ys = mask[np.ix_(pick_r, pick_c)], xs[pick_c], ys[pick_r]
        r.check_size(mask.size)
        block = _read(r, pick_r + int(r0), pick_c + int(c0))
        if not mask.any():
            raise InvalidParameterValue(f"no cell of {r.layer.id!r} at that resolution meets the {r.query_type} "
                                        "query's area")
    else:
        block = _read(r, slice(int(r0), int(r1)), slice(int(c0), int(c1)))
    for v, a in block.items():
        if not mask.all():
            a = a.astype(np.float64) if not np.issubdtype(a.dtype, np.floating) else a
            a[:, ~mask] = np.nan
            block[v] = a
    return _grid_output(r, xs, ys, block, mask)


# output --------------------------------------------------------------------------

def _referencing(crs: Any) -> list[dict[str, Any]]:
    kind = "GeographicCRS" if crs.is_geographic else "ProjectedCRS"
    return [{"coordinates": ["x", "y"], "system": {"type": kind, "id": crs.uri or crs.id,
                                                    "wkt": crs.pyproj_crs.to_wkt()}},
            {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}}]


def _times(r: _Request) -> list[str]:
    return [_iso(int(v)) for v in r.times[r.t_index]]


def _times_json(r: _Request) -> orjson.Fragment:
    return iso_times_json(np.asarray(r.times[r.t_index], np.int64))


def _parameters(r: _Request) -> dict[str, Any]:
    return {v: _parameter(r.spec.variable(v)) for v in r.variables}


def _ndarray(values: np.ndarray, axes: list[str]) -> dict[str, Any]:
    floating = np.issubdtype(values.dtype, np.floating)
    return {"type": "NdArray", "dataType": "float" if floating else "integer", "axisNames": axes,
            "shape": list(values.shape), "values": values.ravel()}  # orjson writes NaN as null


def _dump(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def _headers(media: str, r: _Request, crs: Any) -> dict[str, str]:
    return {"Content-Type": media, "Content-Crs": f"<{crs.uri or crs.id}>",
            "Geoplatform-Snapshot": str(r.snapshot)}


def _point_series_output(r: _Request, out: list[tuple[tuple[float, float], dict[str, np.ndarray]]]
                         ) -> tuple[int, dict[str, str], bytes]:
    if r.format == "CoverageJSON":
        times_json = _times_json(r)
        covs = [{"type": "Coverage",
                 "domain": {"type": "Domain", "domainType": "PointSeries",
                            "axes": {"x": {"values": [xy[0]]}, "y": {"values": [xy[1]]},
                                     "t": {"values": times_json}}},
                 "ranges": {v: _ndarray(vals[v], ["t"]) for v in r.variables}} for xy, vals in out]
        if len(covs) == 1:
            doc = {**covs[0], "domain": {**covs[0]["domain"], "referencing": _referencing(r.crs)},
                   "parameters": _parameters(r)}
        else:
            doc = {"type": "CoverageCollection", "domainType": "PointSeries", "parameters": _parameters(r),
                   "referencing": _referencing(r.crs), "coverages": covs}
        return 200, _headers(COVJSON, r, r.crs), _dump(doc)
    times = _times(r)
    rows = [(xy, times[i], {v: vals[v][i] for v in r.variables}) for xy, vals in out for i in range(len(times))]
    return _tabular(r, rows)


def _trajectory_output(r: _Request, x: np.ndarray, y: np.ndarray, vals: dict[str, np.ndarray]
                       ) -> tuple[int, dict[str, str], bytes]:
    times = _times(r)
    nt, npnt = len(times), len(x)
    if r.format == "CoverageJSON":
        tuples = [[times[i], float(x[k]), float(y[k])] for i in range(nt) for k in range(npnt)]
        doc = {"type": "Coverage",
               "domain": {"type": "Domain", "domainType": "Trajectory",
                          "axes": {"composite": {"dataType": "tuple", "coordinates": ["t", "x", "y"],
                                                 "values": tuples}},
                          "referencing": [{"coordinates": ["x", "y"], "system": _referencing(r.crs)[0]["system"]},
                                          {"coordinates": ["t"], "system": {"type": "TemporalRS",
                                                                            "calendar": "Gregorian"}}]},
               "parameters": _parameters(r),
               "ranges": {v: _ndarray(vals[v].reshape(-1), ["composite"]) for v in r.variables}}
        return 200, _headers(COVJSON, r, r.crs), _dump(doc)
    rows = [((float(x[k]), float(y[k])), times[i], {v: vals[v][i, k] for v in r.variables})
            for i in range(nt) for k in range(npnt)]
    return _tabular(r, rows)


def _grid_output(r: _Request, xs: np.ndarray, ys: np.ndarray, block: dict[str, np.ndarray], mask: np.ndarray
                 ) -> tuple[int, dict[str, str], bytes]:
    times = _times(r)
    if r.format == "CoverageJSON":
        doc = {"type": "Coverage",
               "domain": {"type": "Domain", "domainType": "Grid",
                          "axes": {"x": {"values": xs}, "y": {"values": ys}, "t": {"values": times}},
                          "referencing": _referencing(r.native)},
               "parameters": _parameters(r),
               "ranges": {v: _ndarray(block[v], ["t", "y", "x"]) for v in r.variables}}
        return 200, _headers(COVJSON, r, r.native), _dump(doc)
    jj, ii = np.nonzero(mask)
    ox, oy = transform_xy(xs[ii], ys[jj], r.native, r.crs)
    rows = [((float(ox[k]), float(oy[k])), times[t], {v: block[v][t, jj[k], ii[k]] for v in r.variables})
            for t in range(len(times)) for k in range(len(ii))]
    return _tabular(r, rows)


def _plain(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and math.isnan(v) else v


def _tabular(r: _Request, rows: list[tuple[tuple[float, float], str, dict[str, Any]]]
             ) -> tuple[int, dict[str, str], bytes]:
    """GeoJSON (a point feature per cell and step) or CSV (a row each)."""
    if r.format == "GeoJSON":
        feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [xy[0], xy[1]]},
                  "properties": {"datetime": t, **{k: _plain(v) for k, v in vals.items()}}} for xy, t, vals in rows]
        return 200, _headers(GEOJSON, r, r.crs), _dump({"type": "FeatureCollection", "features": feats})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["x", "y", "datetime", *r.variables])
    for xy, t, vals in rows:
        w.writerow([repr(xy[0]), repr(xy[1]), t, *("" if (p := _plain(vals[v])) is None else p for v in r.variables)])
    return 200, _headers(CSV + "; charset=utf-8", r, r.crs), buf.getvalue().encode()


# OpenAPI and routes ----------------------------------------------------------------

_PARAM_DOC = {
    "coords": ("string", "Well-Known Text, in crs (default CRS84)"),
    "bbox": ("string", "minx,miny,maxx,maxy in crs (default CRS84)"),
    "datetime": ("string", "an instant, or an interval with '..' for an open end"),
    "parameter-name": ("string", "comma-separated parameter names"),
    "crs": ("string", "the CRS of coords, bbox and point results"),
    "f": ("string", "CoverageJSON (default), GeoJSON or CSV"),
    "z": ("string", "not served: these grids have no vertical axis"),
    "within": ("number", "radius"), "within-units": ("string", "m, km, mi, ft or nmi"),
    "corridor-width": ("number", "width of the corridor"), "width-units": ("string", "m, km, mi, ft or nmi"),
    "corridor-height": ("number", "height of the corridor"), "height-units": ("string", "m, km, mi, ft or nmi"),
    "resolution-x": ("integer", "points along x, spread evenly over the cells (at most the grid's own)"),
    "resolution-y": ("integer", "points along y, spread evenly over the cells (at most the grid's own)"),
    "resolution-z": ("integer", "not served: these grids have no vertical axis"),
}
_REQUIRED = {"position": {"coords"}, "radius": {"coords", "within", "within-units"}, "area": {"coords"},
             "cube": {"bbox"}, "trajectory": {"coords"},
             "corridor": {"coords", "corridor-width", "width-units", "corridor-height", "height-units"}}


def openapi_paths(layers: Mapping[str, GridLayerConfig]) -> dict[str, Any]:
    """The EDR paths of the grid collections, for the API document."""
    paths: dict[str, Any] = {}
    err = {"description": "A bad request", "content": {JSON: {"schema": {"type": "object"}}}}
    for layer in layers.values():
        op = re.sub(r"[^A-Za-z0-9_]", "_", layer.id)
        paths[f"/collections/{layer.id}"] = {"get": {
            "summary": layer.title or layer.id, "operationId": f"{op}_edr_collection",
            "parameters": [{"name": "f", "in": "query", "required": False, "schema": {"type": "string",
                                                                                  "enum": ["json", "html"]}}],
            "responses": {"200": {"description": "The collection", "content": {JSON: {"schema": {"type": "object"}}}},
                          "400": err}}}
        for q in QUERY_TYPES:
            params = [{"name": n, "in": "query", "required": n in _REQUIRED[q], "description": _PARAM_DOC[n][1],
                       "schema": {"type": _PARAM_DOC[n][0]}} for n in sorted(_ALLOWED[q])]
            paths[f"/collections/{layer.id}/{q}"] = {"get": {
                "summary": f"{q} query of {layer.title or layer.id}", "operationId": f"{op}_{q}",
                "parameters": params,
                "responses": {"200": {"description": "The data", "content": {
                    COVJSON: {"schema": {"type": "object"}}, GEOJSON: {"schema": {"type": "object"}},
                    CSV: {"schema": {"type": "string"}}}},
                    "400": err, "404": err, "413": err}}}
        if layer.locations:
            def param(n: str, where: str = "query") -> dict[str, Any]:
                return {"name": n, "in": where, "required": where == "path",
                        "description": _PARAM_DOC.get(n, ("string", "a location id"))[1],
                        "schema": {"type": _PARAM_DOC.get(n, ("string",))[0]}}

            paths[f"/collections/{layer.id}/locations"] = {"get": {
                "summary": f"the named places of {layer.title or layer.id}", "operationId": f"{op}_locations",
                "parameters": [param(n) for n in sorted(_LOCATION_LIST)],
                "responses": {"200": {"description": "The locations", "content": {
                    GEOJSON: {"schema": {"type": "object"}}}}, "400": err}}}
            paths[f"/collections/{layer.id}/locations/{{locId}}"] = {"get": {
                "summary": f"{layer.title or layer.id} at one location", "operationId": f"{op}_location",
                "parameters": [param("locId", "path"), *(param(n) for n in sorted(_ALLOWED["locations"]))],
                "responses": {"200": {"description": "The data", "content": {
                    COVJSON: {"schema": {"type": "object"}}, GEOJSON: {"schema": {"type": "object"}},
                    CSV: {"schema": {"type": "string"}}}},
                    "400": err, "404": err, "413": err}}}
    return paths


def edr_routes(params_of: Any) -> list[Any]:
    """The Starlette routes of the queries; the app's ``state.platform.grids``
    gives the layers. ``params_of(request)`` gives the query parameters, each once."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from geoplatform.ogc import edr_aggregate as EA
    from geoplatform.ogc import edr_series as ES

    def handler(query_type: str) -> Any:
        async def run(request: Request) -> Response:
            p = request.state.platform
            cid = request.path_params["cid"]
            loc = request.path_params.get("locId")
            if cid in p.series:
                status, headers, body = await run_in_threadpool(ES.query, p.cube, p.series[cid], query_type,
                                                                params_of(request), loc)
            elif cid in p.aggregates:
                status, headers, body = await run_in_threadpool(EA.query, p.cube, p.aggregates[cid], query_type,
                                                                params_of(request))
            else:
                layer = p.grid_layer(cid)  # "no collection" unless the caller sees it
                if query_type == "locations":
                    status, headers, body = await run_in_threadpool(locations, p.cube, layer, params_of(request),
                                                                    loc)
                else:
                    status, headers, body = await run_in_threadpool(query, p.cube, layer, query_type,
                                                                    params_of(request))
            return Response(body, status_code=status, headers=headers)
        return run

    return [*(Route(f"/collections/{{cid}}/{q}", handler(q)) for q in QUERY_TYPES),
            Route("/collections/{cid}/locations", handler("locations")),
            Route("/collections/{cid}/locations/{locId}", handler("locations"))]
