"""Tests of geoplatform.crs: identifiers, axis order, GCJ-02/BD-09, ranges."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geoplatform.crs import (
    CHINA_BOUNDS,
    SUPPORTED_CRS,
    PlatformCRS,
    check_in_range,
    crs_from_source,
    resolve_crs,
    transform_geometries,
    transform_xy,
)
from geoplatform.errors import CRSError

GEOD = pyproj.Geod(ellps="WGS84")
CM = 0.01
MM = 0.001


def distance_m(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """Geodesic distance in metres between lon/lat points."""
    return np.asarray(GEOD.inv(x1, y1, x2, y2)[2])


def points(lon: tuple[float, float], lat: tuple[float, float], max_size: int = 50) -> st.SearchStrategy:
    """Lists of (lon, lat) as two arrays."""
    coord = st.tuples(
        st.floats(*lon, allow_nan=False, allow_infinity=False),
        st.floats(*lat, allow_nan=False, allow_infinity=False),
    )
    return st.lists(coord, min_size=1, max_size=max_size).map(lambda pts: tuple(np.array(pts).T))


# The GCJ-02 "in China" rectangle shrunk by 0.1 degree: the offset (at most
# ~0.011 degree) must not carry a point across the rectangle's edge, where
# the forward formula is discontinuous and the inverse ambiguous.
WEST, SOUTH, EAST, NORTH = CHINA_BOUNDS
IN_CHINA = points((WEST + 0.1, EAST - 0.1), (SOUTH + 0.1, NORTH - 0.1))
SLOW_SETTINGS = settings(deadline=None, max_examples=200)


# --- GCJ-02 and BD-09 -------------------------------------------------------


@SLOW_SETTINGS
@given(IN_CHINA)
def test_gcj02_round_trip_under_1cm(pts: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = pts
    gx, gy = transform_xy(lon, lat, "EPSG:4326", "GCJ-02")
    # The offset is real (metres to ~1 km), so a no-op inverse cannot pass.
    assert np.all(distance_m(lon, lat, gx, gy) > 1.0)
    wx, wy = transform_xy(gx, gy, "GCJ-02", "EPSG:4326")
    error = distance_m(lon, lat, wx, wy).max()
    assert error < CM
    # The module iterates to 1e-9 degrees (~0.1 mm), well inside the promise.
    assert error < 0.1 * MM


@SLOW_SETTINGS
@given(IN_CHINA)
def test_bd09_round_trips_under_1cm(pts: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = pts
    bx, by = transform_xy(lon, lat, "GCJ-02", "BD-09")
    assert np.all(distance_m(lon, lat, bx, by) > 1.0)
    gx, gy = transform_xy(bx, by, "BD-09", "GCJ-02")
    assert distance_m(lon, lat, gx, gy).max() < CM
    # And the whole chain WGS84 -> BD-09 -> CGCS2000.
    bx, by = transform_xy(lon, lat, "EPSG:4326", "BD-09")
    wx, wy = transform_xy(bx, by, "BD-09", "EPSG:4490")
    assert distance_m(lon, lat, wx, wy).max() < CM


def test_inverse_at_the_square_root_kink() -> None:
    # The formula has sqrt(|lon - 105|); its derivative is unbounded at 105 E.
    lon = np.array([105.0, 105.0 + 1e-12, 105.0 - 1e-12, 105.0 + 1e-7])
    lat = np.full(4, 35.0)
    gx, gy = transform_xy(lon, lat, "EPSG:4326", "GCJ-02")
    wx, wy = transform_xy(gx, gy, "GCJ-02", "EPSG:4326")
    assert distance_m(lon, lat, wx, wy).max() < MM


@pytest.mark.parametrize(
    ("src", "dst", "given_xy", "expected", "tolerance"),
    [
        # Widely published pairs (checked here against our formula).
        ("EPSG:4326", "GCJ-02", (116.391275, 39.907359), (116.397518, 39.908761), 1e-5),
        ("EPSG:4326", "GCJ-02", (116.404, 39.915), (116.41024449916938, 39.91640428150164), 1e-9),
        ("EPSG:4326", "BD-09", (116.404, 39.915), (116.41662724378733, 39.922699552216216), 1e-9),
        ("GCJ-02", "BD-09", (116.404, 39.915), (116.41036949371029, 39.92133699351022), 1e-9),
        ("EPSG:4326", "GCJ-02", (116.0, 40.0), (116.006141221789, 40.001213650174), 1e-6),
        ("GCJ-02", "BD-09", (123.0, 45.0), (123.00636499, 45.00636899), 1e-7),
        # Our own forward values, frozen (Shanghai, Guangzhou, Chengdu, Urumqi, Harbin).
        ("EPSG:4326", "GCJ-02", (121.4737, 31.2304), (121.47822305927693, 31.22845773757727), 1e-9),
        ("EPSG:4326", "GCJ-02", (113.2644, 23.1291), (113.26972959210308, 23.126423339922844), 1e-9),
        ("EPSG:4326", "GCJ-02", (104.0665, 30.5723), (104.06900490567072, 30.569845540719605), 1e-9),
        ("EPSG:4326", "BD-09", (87.6168, 43.8256), (87.62609977081571, 43.83294979479328), 1e-9),
        ("EPSG:4326", "BD-09", (126.5349, 45.8038), (126.54755961849878, 45.81139597011796), 1e-9),
    ],
)
def test_reference_values_forward_and_inverse(
    src: str, dst: str, given_xy: tuple[float, float], expected: tuple[float, float], tolerance: float
) -> None:
    x, y = transform_xy(*given_xy, src, dst)
    assert abs(float(x) - expected[0]) < tolerance
    assert abs(float(y) - expected[1]) < tolerance
    bx, by = transform_xy(*expected, dst, src)
    # A looser reference gives a looser inverse: tolerance degrees ~ 1e5 * tolerance metres.
    assert distance_m(bx, by, *given_xy) < max(CM, tolerance * 1.2e5)


@settings(deadline=None)
@given(
    st.one_of(
        points((-180.0, WEST - 1e-9), (-90.0, 90.0)),
        points((EAST + 1e-9, 180.0), (-90.0, 90.0)),
        points((-180.0, 180.0), (NORTH + 1e-9, 90.0)),
        points((-180.0, 180.0), (-90.0, SOUTH - 1e-9)),
    )
)
def test_outside_china_gcj02_is_wgs84(pts: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = pts
    for src, dst in [("EPSG:4326", "GCJ-02"), ("GCJ-02", "EPSG:4326")]:
        x, y = transform_xy(lon, lat, src, dst)
        np.testing.assert_array_equal(x, lon)
        np.testing.assert_array_equal(y, lat)


def test_offset_systems_metadata() -> None:
    for name in ("GCJ-02", "BD-09"):
        crs = resolve_crs(name)
        assert crs.is_offset_system and crs.is_geographic and not crs.axis_order_lat_first
        assert crs.pyproj_crs == pyproj.CRS("EPSG:4326")
        assert crs.area_of_use_bounds == CHINA_BOUNDS
        west, south, east, north = crs.bounds_in_crs
        # Shifted east and north by the offset, by less than ~0.02 degree.
        assert WEST < west < WEST + 0.02 and EAST < east < EAST + 0.02
        assert SOUTH < south < SOUTH + 0.02 and NORTH < north < NORTH + 0.02


# --- identifiers ------------------------------------------------------------

EPSG_4490 = ("EPSG:4490", "http://www.opengis.net/def/crs/EPSG/0/4490")
CRS84 = ("OGC:CRS84", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")
GCJ02 = ("GCJ-02", "urn:geoplatform:def:crs:GCJ-02")
BD09 = ("BD-09", "urn:geoplatform:def:crs:BD-09")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("EPSG:4490", EPSG_4490),
        ("epsg:4490", EPSG_4490),
        ("4490", EPSG_4490),
        (4490, EPSG_4490),
        ("  EPSG:4490 ", EPSG_4490),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", EPSG_4490),
        ("https://www.opengis.net/def/crs/EPSG/0/4490", EPSG_4490),
        ("urn:ogc:def:crs:EPSG::4490", EPSG_4490),
        ("urn:ogc:def:crs:EPSG:9.8.15:4490", EPSG_4490),
        (pyproj.CRS.from_epsg(4490), EPSG_4490),
        (pyproj.CRS.from_epsg(4490).to_wkt(), EPSG_4490),
        (pyproj.CRS.from_epsg(4490).to_wkt(version="WKT1_GDAL"), EPSG_4490),
        ("OGC:CRS84", CRS84),
        ("CRS84", CRS84),
        ("crs84", CRS84),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", CRS84),
        ("https://www.opengis.net/def/crs/OGC/1.3/CRS84", CRS84),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", CRS84),
        ("+proj=longlat +datum=WGS84 +no_defs", CRS84),
        (pyproj.CRS("OGC:CRS84"), CRS84),
        ("GCJ-02", GCJ02),
        ("gcj-02", GCJ02),
        ("GCJ02", GCJ02),
        ("Gcj02", GCJ02),
        ("urn:geoplatform:def:crs:GCJ-02", GCJ02),
        ("URN:GEOPLATFORM:DEF:CRS:gcj-02", GCJ02),
        ("BD-09", BD09),
        ("bd09", BD09),
        ("urn:geoplatform:def:crs:BD-09", BD09),
        (
            "+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m "
            "+nadgrids=@null +wktext +no_defs",
            ("EPSG:3857", "http://www.opengis.net/def/crs/EPSG/0/3857"),
        ),
        (
            pyproj.CRS.from_epsg(4545).to_wkt(version="WKT1_ESRI"),
            ("EPSG:4545", "http://www.opengis.net/def/crs/EPSG/0/4545"),
        ),
    ],
)
def test_resolve_every_spelling(value: object, expected: tuple[str, str]) -> None:
    crs = resolve_crs(value)  # type: ignore[arg-type]
    assert (crs.id, crs.uri) == expected
    assert resolve_crs(crs) is crs
    assert resolve_crs(crs.id) == crs and resolve_crs(crs.uri) == crs


def test_unidentified_definition_gets_a_custom_id_and_still_converts() -> None:
    # CGCS2000 GK CM 108E spelled as a PROJ string without a datum name.
    proj = "+proj=tmerc +lat_0=0 +lon_0=108 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    crs = resolve_crs(proj)
    assert crs.id.startswith("CUSTOM:") and crs.uri is None
    assert resolve_crs(proj) == crs
    x, y = transform_xy(108.0, 30.0, "EPSG:4490", crs)
    ex, ey = transform_xy(108.0, 30.0, "EPSG:4490", "EPSG:4545")
    assert abs(x - ex) < MM and abs(y - ey) < MM
    # No datum named: not passed off as an authority CRS that has one (PROJ
    # would offer EPSG:23870, DGN95 / UTM 50N, at 70% confidence).
    assert resolve_crs("+proj=utm +zone=50 +ellps=WGS84").id.startswith("CUSTOM:")
    assert resolve_crs("+proj=utm +zone=50 +datum=WGS84").id == "EPSG:32650"


@pytest.mark.parametrize(
    "value",
    ["EPSG:99999", "99999", 99999, "not a crs", "", "GCJ-03", "urn:geoplatform:def:crs:WGS-84",
     "http://www.opengis.net/def/crs/EPSG/0/abc", None, True, 4490.0, ["EPSG:4490"]],
)  # fmt: skip
def test_unknown_crs_raises_naming_the_value(value: object) -> None:
    with pytest.raises(CRSError) as info:
        resolve_crs(value)  # type: ignore[arg-type]
    assert repr(value) in str(info.value)
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    ("value", "lat_first", "geographic"),
    [
        ("EPSG:4326", True, True),
        ("EPSG:4490", True, True),
        ("OGC:CRS84", False, True),
        ("EPSG:4545", True, False),  # CGCS2000 GK: northing first
        ("EPSG:4544", True, False),
        ("EPSG:4546", True, False),
        ("EPSG:3857", False, False),
        ("GCJ-02", False, True),
    ],
)
def test_axis_order_flags(value: str, lat_first: bool, geographic: bool) -> None:
    crs = resolve_crs(value)
    assert crs.axis_order_lat_first is lat_first
    assert crs.is_geographic is geographic


def test_supported_crs_registry() -> None:
    assert list(SUPPORTED_CRS) == [
        "OGC:CRS84", "EPSG:4326", "EPSG:4490", "EPSG:3857",
        "EPSG:4544", "EPSG:4545", "EPSG:4546", "GCJ-02", "BD-09",
    ]  # fmt: skip
    for crs_id, crs in SUPPORTED_CRS.items():
        assert isinstance(crs, PlatformCRS) and crs.id == crs_id and crs.uri
        assert crs.area_of_use_bounds is not None and crs.bounds_in_crs is not None
    # Gauss-Kruger zones without zone prefix: eastings around the 500 km false easting.
    west, south, east, north = SUPPORTED_CRS["EPSG:4545"].bounds_in_crs
    assert 300_000 < west < 500_000 < east < 700_000
    assert 1_900_000 < south < north < 4_800_000
    x_min, _, x_max, _ = SUPPORTED_CRS["EPSG:3857"].bounds_in_crs
    assert x_min == pytest.approx(-20037508.34) and x_max == pytest.approx(20037508.34)
    with pytest.raises(TypeError):
        SUPPORTED_CRS["EPSG:1"] = SUPPORTED_CRS["EPSG:4326"]  # type: ignore[index]


# --- pyproj conversions -----------------------------------------------------


@settings(deadline=None)
@given(points((106.5, 109.5), (18.2, 42.4)))
def test_cgcs2000_gauss_kruger_round_trip_under_1mm(pts: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = pts
    e, n = transform_xy(lon, lat, "EPSG:4490", "EPSG:4545")
    # x is the easting whatever EPSG's northing-first axis order says.
    assert np.all((e > 300_000) & (e < 700_000)) and np.all(n > 2_000_000)
    blon, blat = transform_xy(e, n, "EPSG:4545", "EPSG:4490")
    assert distance_m(lon, lat, blon, blat).max() < MM


def test_known_projected_values_in_xy_order() -> None:
    e, n = transform_xy(108.0, 30.0, "EPSG:4490", "EPSG:4545")
    assert e == pytest.approx(500_000.0, abs=1e-6)  # central meridian
    assert n == pytest.approx(3_320_113.398, abs=1.0)
    x, y = transform_xy([0.0, 180.0], [0.0, 0.0], "OGC:CRS84", "EPSG:3857")
    np.testing.assert_allclose(x, [0.0, 20037508.342789244])
    np.testing.assert_allclose(y, [0.0, 0.0], atol=1e-6)
    # EPSG:4326 is lat,lon in its definition but lon,lat here.
    x, y = transform_xy(116.0, 40.0, "EPSG:4326", "OGC:CRS84")
    assert (float(x), float(y)) == (116.0, 40.0)


def test_shapes_are_kept() -> None:
    x, y = transform_xy(116.4, 39.9, "EPSG:4490", "GCJ-02")
    assert isinstance(x, np.ndarray) and x.shape == () and y.shape == ()
    grid = np.meshgrid(np.linspace(100, 110, 4), np.linspace(20, 30, 3))
    for dst in ("EPSG:3857", "GCJ-02", "BD-09"):
        x, y = transform_xy(*grid, "EPSG:4490", dst)
        assert x.shape == y.shape == (3, 4)
        bx, by = transform_xy(x, y, dst, "EPSG:4490")
        assert distance_m(bx.ravel(), by.ravel(), grid[0].ravel(), grid[1].ravel()).max() < CM


def test_gcj02_to_projected_goes_through_wgs84() -> None:
    gx, gy = transform_xy(116.404, 39.915, "EPSG:4326", "GCJ-02")
    x, y = transform_xy(gx, gy, "GCJ-02", "EPSG:3857")
    ex, ey = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(116.404, 39.915)
    assert abs(x - ex) < CM and abs(y - ey) < CM


# --- geometries -------------------------------------------------------------


def test_transform_geometries_matches_transform_xy() -> None:
    geoms = np.array(
        [
            shapely.Point(116.4, 39.9),
            None,
            shapely.LineString([(121.47, 31.23), (121.5, 31.25)]),
            shapely.Polygon([(113, 23), (113.1, 23), (113.1, 23.1), (113, 23)]),
            shapely.Point(104.06, 30.57, 512.5),
            shapely.Point(),
        ],
        dtype=object,
    )
    out = transform_geometries(geoms, "EPSG:4490", "GCJ-02")
    assert out[1] is None and out[5].is_empty
    assert shapely.has_z(out).tolist() == shapely.has_z(geoms).tolist()
    assert shapely.get_coordinates(out[4], include_z=True)[0, 2] == 512.5
    coords = shapely.get_coordinates(geoms)
    ex, ey = transform_xy(coords[:, 0], coords[:, 1], "EPSG:4490", "GCJ-02")
    np.testing.assert_array_equal(shapely.get_coordinates(out), np.column_stack([ex, ey]))
    back = transform_geometries(out, "GCJ-02", "EPSG:4490")
    got = shapely.get_coordinates(back)
    assert distance_m(got[:, 0], got[:, 1], coords[:, 0], coords[:, 1]).max() < CM


# --- errors -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dst", ["EPSG:3857", "GCJ-02", "EPSG:4490"])
def test_non_finite_input_names_count_and_first_index(bad: float, dst: str) -> None:
    x = np.array([116.0, 116.1, bad, 116.3, bad])
    y = np.full(5, 39.9)
    with pytest.raises(CRSError, match=r"^2 coordinate\(s\) are NaN or infinite; first at index 2") as info:
        transform_xy(x, y, "EPSG:4490", dst)
    assert info.value.details["count"] == 2 and info.value.details["first_index"] == 2


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_geometry_names_the_geometry() -> None:
    geoms = np.array([shapely.Point(116, 39), shapely.LineString([(116, 39), (np.nan, 40)])])
    with pytest.raises(CRSError, match=r"1 coordinate\(s\) are NaN or infinite; first at geometry index 1"):
        transform_geometries(geoms, "EPSG:4490", "EPSG:3857")


def test_untransformable_points_raise() -> None:
    # PROJ returns inf for a latitude beyond the pole.
    message = r"could not be transformed from EPSG:4490 to EPSG:4545; first at index 1: \(108.0, 100.0\)"
    with pytest.raises(CRSError, match=message):
        transform_xy([108.0, 108.0], [30.0, 100.0], "EPSG:4490", "EPSG:4545")


def test_check_in_range_catches_metres_declared_as_degrees() -> None:
    lon, lat = np.array([108.0, 108.5]), np.array([30.0, 31.0])
    e, n = transform_xy(lon, lat, "EPSG:4490", "EPSG:4545")
    check_in_range(lon, lat, "EPSG:4490")
    check_in_range(e, n, "EPSG:4545")
    check_in_range(lon, lat, "GCJ-02")
    with pytest.raises(CRSError, match=r"^2 coordinate\(s\) are outside the valid range of EPSG:4490") as info:
        check_in_range(e, n, "EPSG:4490")
    assert info.value.details["first_index"] == 0
    assert info.value.details["example"] == [float(e[0]), float(n[0])]
    with pytest.raises(CRSError, match=r"outside the valid range of EPSG:4545.*first at index 0: \(108.0, 30.0\)"):
        check_in_range(lon, lat, "EPSG:4545")  # degrees declared as metres
    with pytest.raises(CRSError, match=r"^1 coordinate\(s\) .* first at index 1: \(10.0, 91.0\)"):
        check_in_range([10.0, 10.0], [0.0, 91.0], "OGC:CRS84")
    with pytest.raises(CRSError, match="NaN"):
        check_in_range([np.nan], [0.0], "OGC:CRS84")


def test_check_in_range_margin_is_ten_percent() -> None:
    west, south, east, north = resolve_crs("EPSG:4545").bounds_in_crs
    width = east - west
    check_in_range([east + 0.09 * width], [south], "EPSG:4545")
    with pytest.raises(CRSError):
        check_in_range([east + 0.11 * width], [south], "EPSG:4545")


def test_crs_from_source() -> None:
    assert crs_from_source(None, "EPSG:4545").id == "EPSG:4545"
    assert crs_from_source("EPSG:4490", None).id == "EPSG:4490"
    assert crs_from_source(pyproj.CRS(4490), "4490").id == "EPSG:4490"
    # Same CRS up to axis order: the declared spelling is kept.
    assert crs_from_source("EPSG:4326", "OGC:CRS84").id == "OGC:CRS84"
    with pytest.raises(CRSError, match="declared CRS EPSG:4545 disagrees with the source's CRS EPSG:4490"):
        crs_from_source("EPSG:4490", "EPSG:4545")
    with pytest.raises(CRSError, match="disagrees"):
        crs_from_source("EPSG:4326", "GCJ-02")
    with pytest.raises(CRSError, match="no CRS"):
        crs_from_source(None, None)


def test_warm_transforms_builds_each_transformer_once() -> None:
    from geoplatform.crs import _transformer, warm_transforms

    pairs = [("EPSG:4490", "EPSG:4546"), ("EPSG:4546", "EPSG:4490"), ("GCJ-02", "EPSG:4546"),
             ("EPSG:4490", "EPSG:4490")]
    assert warm_transforms(pairs) == 3  # the same CRS twice needs none
    before = _transformer.cache_info()
    transform_xy([111.0], [34.0], "EPSG:4490", "EPSG:4546")
    after = _transformer.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


@pytest.mark.parametrize("geographic", ["EPSG:4326", "EPSG:4490"])
def test_web_mercator_in_numpy_matches_proj(geographic: str) -> None:
    # Conversions to and from Web Mercator use PROJ's formula in numpy: the same
    # values, the same wrapping of longitudes and the same refusal past a pole.
    fwd = pyproj.Transformer.from_crs(geographic, "EPSG:3857", always_xy=True)
    inv = pyproj.Transformer.from_crs("EPSG:3857", geographic, always_xy=True)
    rng = np.random.default_rng(4)
    lon = np.concatenate([rng.uniform(-180, 180, 20_000), [-180.0, 180.0, 0.0, 190.0, -200.0, 540.0, 179.9999999]])
    lat = np.concatenate([rng.uniform(-89.99, 89.99, 20_000), [0.0, 0.0, 90.0, 10.0, -45.0, -90.0, 85.0511287798]])
    x, y = transform_xy(lon, lat, geographic, "EPSG:3857")
    px, py = fwd.transform(lon, lat)
    assert np.allclose(x, px, rtol=1e-14, atol=1e-8) and np.allclose(y, py, rtol=1e-14, atol=1e-8)
    ex = np.concatenate([px[:-7], [2.1e7, -2.0037508342789244e7, 0.0, 3.9e7]])
    ey = np.concatenate([py[:-7], [0.0, 5e6, 3e7, -1e6]])
    lo, la = transform_xy(ex, ey, "EPSG:3857", geographic)
    plo, pla = inv.transform(ex, ey)
    assert np.allclose(lo, plo, rtol=0, atol=1e-12) and np.allclose(la, pla, rtol=0, atol=1e-12)
    with pytest.raises(CRSError, match="could not be transformed"):
        transform_xy([10.0], [91.0], geographic, "EPSG:3857")
