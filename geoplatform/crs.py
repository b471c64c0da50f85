"""Coordinate reference systems: one registry, one way to convert.

Every CRS the platform meets goes through :func:`resolve_crs`, which returns a
:class:`PlatformCRS` with a canonical ``id`` and OGC ``uri``. Accepted spellings:

* EPSG codes: ``"EPSG:4490"``, ``"4490"``, ``4490``,
  ``"http(s)://www.opengis.net/def/crs/EPSG/0/4490"``, ``"urn:ogc:def:crs:EPSG::4490"``;
* CRS84 (WGS84 lon,lat): ``"OGC:CRS84"``, ``"CRS84"``,
  ``"http://www.opengis.net/def/crs/OGC/1.3/CRS84"``, ``"urn:ogc:def:crs:OGC:1.3:CRS84"``;
* a :class:`pyproj.CRS`, or anything else pyproj reads (WKT, PROJ strings).
  A definition that pyproj identifies with an authority code is replaced by
  that code's definition; one it cannot identify gets the id
  ``"CUSTOM:<12 hex digits of its WKT's SHA-1>"`` and no URI;
* the Chinese web-map systems, which have no EPSG code, under the platform's
  own names, matched case-insensitively: id ``"GCJ-02"``, URI
  ``"urn:geoplatform:def:crs:GCJ-02"``, alias ``"GCJ02"``; id ``"BD-09"``, URI
  ``"urn:geoplatform:def:crs:BD-09"``, alias ``"BD09"``. GCJ-02 (Amap/Gaode,
  Tencent) is WGS84 lon,lat shifted by a published obfuscation formula inside
  mainland China; BD-09 (Baidu) is a further shift of GCJ-02. Their
  ``pyproj_crs`` is EPSG:4326, the system they are offsets of, and their axis
  order is lon,lat as in those vendors' APIs.

Accuracy: WGS84 and CGCS2000 (EPSG:4490) are treated as one datum. They
differ by a few centimetres at most, far below the accuracy of the GCJ-02
model, and PROJ itself uses a null "ballpark" transformation between them.

Axis order: every function here takes and returns x = longitude/easting and
y = latitude/northing ("traditional GIS order"), whatever the authority's
axis order; ``axis_order_lat_first`` tells output encoders when to swap.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Callable, Final, Iterable, Mapping, TypeAlias, Union

import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from pyproj.exceptions import CRSError as _PyprojCRSError

from geoplatform.errors import CRSError

__all__ = [
    "CHINA_BOUNDS", "CRSLike", "PlatformCRS", "SUPPORTED_CRS", "check_in_range",
    "crs_from_source", "resolve_crs", "transform_geometries", "transform_xy",
]  # fmt: skip

Bounds: TypeAlias = tuple[float, float, float, float]
FloatArray: TypeAlias = npt.NDArray[np.float64]

#: The "out of China" rectangle of the GCJ-02 formula (lon/lat), also the
#: area of use of GCJ-02 and BD-09.
CHINA_BOUNDS: Final[Bounds] = (72.004, 0.8293, 137.8347, 55.8271)


@dataclass(frozen=True)
class PlatformCRS:
    """A resolved CRS. Two instances are equal when their ``id`` is."""

    id: str
    uri: str | None
    pyproj_crs: pyproj.CRS = field(compare=False, repr=False)
    is_offset_system: bool = field(compare=False)
    is_geographic: bool = field(compare=False)
    axis_order_lat_first: bool = field(compare=False)
    area_of_use_bounds: Bounds | None = field(compare=False)
    bounds_in_crs: Bounds | None = field(compare=False)


CRSLike: TypeAlias = Union[PlatformCRS, pyproj.CRS, str, int]

# --- resolution -------------------------------------------------------------

# Matched against the stripped, lower-cased value.
_EPSG_RE = re.compile(
    r"^(?:epsg:|https?://www\.opengis\.net/def/crs/epsg/0/|urn:ogc:def:crs:epsg:[^:]*:)?(\d+)$"
)
_CRS84_RE = re.compile(
    r"^(?:(?:ogc:)?|https?://www\.opengis\.net/def/crs/ogc/1\.3/"
    r"|urn:ogc:def:crs:ogc:(?:1\.3)?:)crs84$"
)
_OFFSET_NAMES: Final[dict[str, str]] = {
    spelling.lower(): crs_id
    for crs_id in ("GCJ-02", "BD-09")
    for spelling in (crs_id, crs_id.replace("-", ""), f"urn:geoplatform:def:crs:{crs_id}")
}
# Steps away from WGS84: BD-09 -> GCJ-02 -> WGS84.
_OFFSET_LEVEL: Final[dict[str, int]] = {"GCJ-02": 1, "BD-09": 2}


def resolve_crs(value: CRSLike) -> PlatformCRS:
    """Resolve any accepted CRS spelling (see the module docstring).

    Raises :class:`CRSError` naming the value when it is not a CRS.
    """
    if isinstance(value, PlatformCRS):
        return value
    # bool is an int, but True is never meant as EPSG:1
    if isinstance(value, bool) or not isinstance(value, (str, int, pyproj.CRS)):
        raise CRSError(f"unknown CRS {value!r}: expected a string, an EPSG code or a pyproj.CRS")
    return _resolve_cached(value)


@lru_cache(maxsize=256)
def _resolve_cached(value: str | int | pyproj.CRS) -> PlatformCRS:
    if isinstance(value, pyproj.CRS):
        return _from_pyproj(value)
    if isinstance(value, int):
        return _from_authority("EPSG", str(value), value)
    key = value.strip().lower()
    if key in _OFFSET_NAMES:
        return _offset_crs(_OFFSET_NAMES[key])
    if _CRS84_RE.match(key):
        return _from_authority("OGC", "CRS84", value)
    match = _EPSG_RE.match(key)
    if match:
        return _from_authority("EPSG", match.group(1), value)
    if not key:
        raise CRSError("unknown CRS '': empty string")
    try:
        crs = pyproj.CRS.from_user_input(value.strip())
    except _PyprojCRSError as exc:
        raise CRSError(f"unknown CRS {value!r}: {exc}", value=value) from None
    return _from_pyproj(crs)


def _from_pyproj(crs: pyproj.CRS) -> PlatformCRS:
    # A definition with no named datum ("+ellps=GRS80") is no authority CRS,
    # yet PROJ matches some at 70% to CRSs with a real datum (a bare
    # "+proj=utm +zone=50 +ellps=WGS84" to EPSG:23870), after a ~0.2 s search.
    unnamed = crs.datum is not None and crs.datum.name.startswith("Unknown based on")
    # Among equally confident matches prefer EPSG and OGC codes, otherwise keep
    # PROJ's order, which puts the axis-order match first: "+proj=longlat
    # +datum=WGS84" must become OGC:CRS84, not EPSG:4326 or an IGNF code.
    matches = [] if unnamed else sorted(
        crs.list_authority(min_confidence=70),
        key=lambda m: (-m.confidence, m.auth_name not in ("EPSG", "OGC")),
    )  # fmt: skip
    if matches:
        return _from_authority(matches[0].auth_name, matches[0].code, crs)
    digest = hashlib.sha1(crs.to_wkt().encode()).hexdigest()[:12]
    return _build(f"CUSTOM:{digest}", None, crs)


def _from_authority(auth: str, code: str, original: object) -> PlatformCRS:
    auth = auth.upper()
    try:
        crs = pyproj.CRS.from_authority(auth, code)
    except _PyprojCRSError:
        raise CRSError(f"unknown CRS {original!r}: no {auth}:{code}", value=str(original)) from None
    if auth == "EPSG":
        uri: str | None = f"http://www.opengis.net/def/crs/EPSG/0/{code}"
    elif auth == "OGC":
        uri = f"http://www.opengis.net/def/crs/OGC/1.3/{code}"
    else:
        uri = None  # no registered OGC URI for ESRI, IGNF, ... codes
    return _build(f"{auth}:{code}", uri, crs)


def _build(crs_id: str, uri: str | None, crs: pyproj.CRS) -> PlatformCRS:
    area: Bounds | None = crs.area_of_use.bounds if crs.area_of_use else None
    bounds = area if crs.is_geographic else None
    if area is not None and not crs.is_geographic and crs.geodetic_crs is not None:
        # From the CRS's own datum, not WGS84: metres of datum shift do not
        # matter for bounds, and a datum-to-datum search costs ~0.3 s each.
        try:
            to_crs = pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
            bounds = to_crs.transform_bounds(*area, densify_pts=21)
        except pyproj.exceptions.ProjError:
            pass
        if bounds is not None and not np.all(np.isfinite(bounds)):
            bounds = None
    axes = crs.axis_info
    lat_first = bool(axes) and axes[0].direction.lower() in ("north", "south")
    return PlatformCRS(
        crs_id, uri, crs, False, bool(crs.is_geographic), lat_first,
        _floats(area), _floats(bounds),
    )  # fmt: skip


def _floats(bounds: Bounds | None) -> Bounds | None:
    return None if bounds is None else (*map(float, bounds),)  # type: ignore[return-value]


def _offset_crs(crs_id: str) -> PlatformCRS:
    west, south, east, north = CHINA_BOUNDS
    # The area, sampled on a grid and shifted into the offset system.
    gx, gy = np.meshgrid(np.linspace(west, east, 201), np.linspace(south, north, 201))
    sx, sy = _shift(gx, gy, 0, _OFFSET_LEVEL[crs_id])
    bounds = _floats((sx.min(), sy.min(), sx.max(), sy.max()))
    uri, base = f"urn:geoplatform:def:crs:{crs_id}", pyproj.CRS.from_epsg(4326)
    return PlatformCRS(crs_id, uri, base, True, True, False, CHINA_BOUNDS, bounds)


# --- GCJ-02 and BD-09 -------------------------------------------------------

_KRASOVSKY_A: Final = 6378245.0
_KRASOVSKY_EE: Final = 0.00669342162296594323
_X_PI: Final = np.pi * 3000.0 / 180.0
_INVERSE_TOLERANCE_DEG: Final = 1e-9  # about 0.1 mm
_INVERSE_MAX_ITERATIONS: Final = 10


def _wgs84_to_gcj02(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x, y = lon - 105.0, lat - 35.0
    px, py = np.pi * x, np.pi * y
    root = np.sqrt(np.abs(x))
    shared = 20.0 * np.sin(6.0 * px) + 20.0 * np.sin(2.0 * px)
    # The two published polynomials ("transformLat/Lon"), in metres.
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * root
    dlat += (2.0 / 3.0) * (shared + 20.0 * np.sin(py) + 40.0 * np.sin(py / 3.0))
    dlat += (2.0 / 3.0) * (160.0 * np.sin(py / 12.0) + 320.0 * np.sin(py / 30.0))
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * root
    dlon += (2.0 / 3.0) * (shared + 20.0 * np.sin(px) + 40.0 * np.sin(px / 3.0))
    dlon += (2.0 / 3.0) * (150.0 * np.sin(px / 12.0) + 300.0 * np.sin(px / 30.0))
    # Metres to degrees with the Krasovsky ellipsoid's radii of curvature.
    rad_lat = np.radians(lat)
    w2 = 1.0 - _KRASOVSKY_EE * np.sin(rad_lat) ** 2
    w = np.sqrt(w2)
    dlat = dlat * (180.0 / np.pi) * (w2 * w) / (_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE))
    dlon = dlon * (180.0 / np.pi) * w / (_KRASOVSKY_A * np.cos(rad_lat))
    west, south, east, north = CHINA_BOUNDS
    outside = (lon < west) | (lon > east) | (lat < south) | (lat > north)
    if np.any(outside):
        dlon, dlat = np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)
    return lon + dlon, lat + dlat


def _gcj02_to_bd09(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


_Forward = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]


def _invert(
    forward: _Forward, tx: FloatArray, ty: FloatArray, x: FloatArray, y: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Solve forward(p) = (tx, ty) for p, starting at (x, y).

    Fixed-point iteration p <- p - (forward(p) - target): both offsets vary
    slowly (their Jacobian is within 1e-2 of the identity), so each step
    gains two to three digits. Converged points drop out of later rounds.
    """
    shape = np.shape(tx)
    x, y = np.array(x, dtype=np.float64).ravel(), np.array(y, dtype=np.float64).ravel()
    tx, ty = np.ravel(tx), np.ravel(ty)
    active: npt.NDArray[np.intp] | None = None  # None: all points, without a gather
    for _ in range(_INVERSE_MAX_ITERATIONS):
        if active is None:
            fx, fy = forward(x, y)
            ex, ey = fx - tx, fy - ty
            x -= ex
            y -= ey
        else:
            fx, fy = forward(x[active], y[active])
            ex, ey = fx - tx[active], fy - ty[active]
            x[active] -= ex
            y[active] -= ey
        # The step is taken even for points that have converged: it is free
        # and takes them from ~1e-9 to ~1e-11 degrees.
        keep = np.flatnonzero(np.maximum(np.abs(ex), np.abs(ey)) >= _INVERSE_TOLERANCE_DEG)
        active = keep if active is None else active[keep]
        if active.size == 0:
            break
    return x.reshape(shape), y.reshape(shape)


def _gcj02_to_wgs84(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # Starting at the GCJ point itself makes out-of-China points exact fixed
    # points. So within ~0.01 degree outside CHINA_BOUNDS' edges (sea or
    # foreign land), where the forward map is two-to-one, the point itself wins.
    return _invert(_wgs84_to_gcj02, lon, lat, lon, lat)


def _bd09_to_gcj02(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # The published closed-form inverse is off by up to ~0.25 m, so it is
    # only the starting point.
    x, y = lon - 0.0065, lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _invert(_gcj02_to_bd09, lon, lat, z * np.cos(theta), z * np.sin(theta))


_UP: Final[dict[int, _Forward]] = {1: _wgs84_to_gcj02, 2: _gcj02_to_bd09}
_DOWN: Final[dict[int, _Forward]] = {1: _gcj02_to_wgs84, 2: _bd09_to_gcj02}


def _shift(x: FloatArray, y: FloatArray, level: int, target: int) -> tuple[FloatArray, FloatArray]:
    """Walk the chain WGS84 (0) <-> GCJ-02 (1) <-> BD-09 (2)."""
    while level > target:
        x, y = _DOWN[level](x, y)
        level -= 1
    while level < target:
        level += 1
        x, y = _UP[level](x, y)
    return x, y


# --- conversions ------------------------------------------------------------


class _BadCoordinates(Exception):
    """Internal: coordinates failed a check; the caller words the CRSError."""

    def __init__(self, problem: str, bad: npt.NDArray[np.bool_], x: FloatArray, y: FloatArray):
        super().__init__(problem)
        self.problem, self.count = problem, int(bad.sum())
        self.index = int(np.argmax(bad.ravel()))
        self.example = (float(x.ravel()[self.index]), float(y.ravel()[self.index]))

    def to_crs_error(self, where: str = "index", index: int | None = None) -> CRSError:
        index = self.index if index is None else index
        return CRSError(
            f"{self.count} coordinate(s) {self.problem}; first at {where} {index}: {self.example}",
            count=self.count, first_index=index, example=list(self.example),
        )  # fmt: skip


def _as_arrays(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in shape: {xa.shape} != {ya.shape}")
    return xa, ya


def _check_finite(x: FloatArray, y: FloatArray) -> None:
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise _BadCoordinates("are NaN or infinite", bad, x, y)


_WGS84: Final = _from_authority("EPSG", "4326", "EPSG:4326")


@lru_cache(maxsize=128)
def _transformer(src: PlatformCRS, dst: PlatformCRS) -> pyproj.Transformer:
    # pyproj >= 3.1 Transformers are thread-safe, so one cached instance serves all.
    return pyproj.Transformer.from_crs(src.pyproj_crs, dst.pyproj_crs, always_xy=True)


#: PROJ's pipelines between geographic degrees on WGS 84's ellipsoid (CGCS2000's too,
#: within a millimetre) and Web Mercator, as pyproj describes them.
_WEBMERC: Final = "proj=webmerc lat_0=0 lon_0=0 x_0=0 y_0=0 ellps=WGS84"
_TO_WEBMERC: Final = f"proj=pipeline step proj=unitconvert xy_in=deg xy_out=rad step {_WEBMERC}"
_FROM_WEBMERC: Final = f"proj=pipeline step inv {_WEBMERC} step proj=unitconvert xy_in=rad xy_out=deg"
_DEG_TO_RAD: Final = 0.017453292519943296
_RAD_TO_DEG: Final = 57.295779513082321
_WGS84_A: Final = 6378137.0


def _adjlon(lam: FloatArray) -> FloatArray:
    """Longitudes (radians) brought into [-pi, pi], as PROJ's adjlon does."""
    wrap = np.abs(lam) >= np.pi + 1e-12
    if not wrap.any():
        return lam
    w = lam + np.pi
    return np.where(wrap, w - 2 * np.pi * np.floor(w / (2 * np.pi)) - np.pi, lam)


def _to_webmerc(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Degrees to Web Mercator metres: PROJ's formula in numpy (a tile converts
    thousands of vertices; this is ten times faster than the call into PROJ)."""
    lam = _adjlon(lon * _DEG_TO_RAD)
    phi = lat * _DEG_TO_RAD
    x, y = _WGS84_A * lam, _WGS84_A * np.arcsinh(np.tan(phi))
    beyond = np.abs(phi) > np.pi / 2 + 1e-12  # past a pole: PROJ gives no value
    if beyond.any():
        x, y = np.where(beyond, np.inf, x), np.where(beyond, np.inf, y)
    return x, y


def _from_webmerc(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Web Mercator metres to degrees: PROJ's inverse formula in numpy."""
    return _adjlon(x / _WGS84_A) * _RAD_TO_DEG, np.arctan(np.sinh(y / _WGS84_A)) * _RAD_TO_DEG


@lru_cache(maxsize=128)
def _converter(src: PlatformCRS, dst: PlatformCRS) -> _Forward:
    """How to convert coordinates from ``src`` to ``dst``: PROJ's, or the same
    formula in numpy where PROJ's pipeline is Web Mercator's alone."""
    t = _transformer(src, dst)
    return {_TO_WEBMERC: _to_webmerc, _FROM_WEBMERC: _from_webmerc}.get(t.definition, t.transform)


def _transform(
    x: FloatArray, y: FloatArray, src: PlatformCRS, dst: PlatformCRS
) -> tuple[FloatArray, FloatArray]:
    _check_finite(x, y)
    if src == dst:
        return x.copy(), y.copy()
    src_level = _OFFSET_LEVEL.get(src.id, 0)
    dst_level = _OFFSET_LEVEL.get(dst.id, 0)
    if src_level and dst_level:
        return _shift(x, y, src_level, dst_level)
    x0, y0 = x, y
    x, y = _shift(x, y, src_level, 0)
    src_base = _WGS84 if src_level else src
    dst_base = _WGS84 if dst_level else dst
    if src_base != dst_base:
        x, y = _converter(src_base, dst_base)(x, y)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        bad = ~(np.isfinite(x) & np.isfinite(y))
        if bad.any():
            problem = f"could not be transformed from {src.id} to {dst.id}"
            raise _BadCoordinates(problem, bad, x0, y0)
    return _shift(x, y, 0, dst_level)


def transform_xy(
    x: npt.ArrayLike, y: npt.ArrayLike, src: CRSLike, dst: CRSLike
) -> tuple[FloatArray, FloatArray]:
    """Convert coordinates from ``src`` to ``dst``, in x=lon/easting, y=lat/northing order.

    Returns new float64 arrays of the input's shape. Raises :class:`CRSError`
    when an input is NaN or infinite, or an output cannot be computed (the
    point lies outside the target projection's domain), naming the count and
    the first offending index and its input value.
    """
    s, d = resolve_crs(src), resolve_crs(dst)
    xa, ya = _as_arrays(x, y)
    try:
        out_x, out_y = _transform(xa, ya, s, d)
    except _BadCoordinates as bad:
        raise bad.to_crs_error() from None
    return np.asarray(out_x), np.asarray(out_y)  # 0-d arrays, not numpy scalars


def warm_transforms(pairs: Iterable[tuple[CRSLike, CRSLike]]) -> int:
    """Build the transformers for ``pairs`` now (pyproj takes about half a second
    or more for each on first use); returns how many pairs were prepared.

    A server calls this once, off the request path, for the conversions its
    layers offer."""
    done = 0
    for src, dst in pairs:
        s, d = resolve_crs(src), resolve_crs(dst)
        base_s = _WGS84 if _OFFSET_LEVEL.get(s.id, 0) else s
        base_d = _WGS84 if _OFFSET_LEVEL.get(d.id, 0) else d
        if base_s != base_d:
            _transformer(base_s, base_d)
            done += 1
    return done


def transform_geometries(
    geoms: npt.ArrayLike, src: CRSLike, dst: CRSLike
) -> npt.NDArray[np.object_]:
    """Convert an array of shapely geometries; ``None`` entries stay ``None``.

    Z values pass through unchanged and each geometry keeps its
    dimensionality. Errors are as in :func:`transform_xy`, but the index is
    that of the geometry in ``geoms``.
    """
    s, d = resolve_crs(src), resolve_crs(dst)
    arr = np.asarray(geoms, dtype=object)
    # One call with include_z=True keeps every geometry's dimensionality and
    # keeps coordinate positions aligned with get_coordinates() for errors.
    include_z = bool(shapely.has_z(arr).any())

    def convert(x: FloatArray, y: FloatArray, *z: FloatArray) -> tuple[FloatArray, ...]:
        return (*_transform(x, y, s, d), *z)

    try:
        return shapely.transform(arr, convert, include_z=include_z, interleaved=False)
    except _BadCoordinates as bad:
        _, owner = shapely.get_coordinates(arr, include_z=include_z, return_index=True)
        raise bad.to_crs_error("geometry index", int(owner[bad.index])) from None


def check_in_range(x: npt.ArrayLike, y: npt.ArrayLike, crs: CRSLike) -> None:
    """Raise :class:`CRSError` if any coordinate is impossible in ``crs``.

    Geographic systems need lon in [-180, 180] and lat in [-90, 90]. Projected
    ones need to lie in ``bounds_in_crs`` grown by 10% of its size on every
    side (no check beyond finiteness when the CRS has no area of use). This is
    how a wrong declared CRS (metres declared as degrees) is caught at ingest.
    """
    c = resolve_crs(crs)
    xa, ya = _as_arrays(x, y)
    try:
        _check_finite(xa, ya)
        if c.is_geographic:
            lo_x, lo_y, hi_x, hi_y = -180.0, -90.0, 180.0, 90.0
            valid = "lon in [-180, 180], lat in [-90, 90]"
        elif c.bounds_in_crs is not None:
            lo_x, lo_y, hi_x, hi_y = c.bounds_in_crs
            mx, my = 0.1 * (hi_x - lo_x), 0.1 * (hi_y - lo_y)
            lo_x, lo_y, hi_x, hi_y = lo_x - mx, lo_y - my, hi_x + mx, hi_y + my
            valid = f"x in [{lo_x:.0f}, {hi_x:.0f}], y in [{lo_y:.0f}, {hi_y:.0f}]"
        else:
            return
        outside = (xa < lo_x) | (xa > hi_x) | (ya < lo_y) | (ya > hi_y)
        if outside.any():
            problem = f"are outside the valid range of {c.id} ({valid}); is the declared CRS right?"
            raise _BadCoordinates(problem, outside, xa, ya)
    except _BadCoordinates as bad:
        raise bad.to_crs_error() from None


def crs_from_source(source: CRSLike | None, declared: CRSLike | None) -> PlatformCRS:
    """The CRS of incoming data: the ``declared`` one, else the ``source``'s own.

    When both are given they must agree (same id, or the same pyproj CRS up to
    axis order, e.g. EPSG:4326 and CRS84, since all coordinates here are x,y);
    otherwise, or when neither is given, :class:`CRSError` is raised.
    """
    if source is None and declared is None:
        raise CRSError("no CRS: the source has none and none was declared")
    if source is None:
        return resolve_crs(declared)  # type: ignore[arg-type]
    src = resolve_crs(source)
    if declared is None:
        return src
    dec = resolve_crs(declared)
    same = src == dec or (
        not src.is_offset_system
        and not dec.is_offset_system
        and src.pyproj_crs.equals(dec.pyproj_crs, ignore_axis_order=True)
    )
    if not same:
        message = f"the declared CRS {dec.id} disagrees with the source's CRS {src.id}"
        raise CRSError(message, declared=dec.id, source=src.id)
    return dec


#: The systems the platform advertises, keyed by id, CRS84 (the OGC API default) first.
SUPPORTED_CRS: Final[Mapping[str, PlatformCRS]] = MappingProxyType({
    c.id: c for c in map(resolve_crs, [
        "OGC:CRS84", "EPSG:4326", "EPSG:4490", "EPSG:3857",
        "EPSG:4544", "EPSG:4545", "EPSG:4546", "GCJ-02", "BD-09",
    ])
})  # fmt: skip
