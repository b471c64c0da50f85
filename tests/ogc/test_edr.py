"""OGC API - EDR over the cube's grids, driven over HTTP: a conformance module that
follows the EDR 1.1 abstract tests (each test named by its id), and OWSLib's EDR
client. The server is ``geoplatform serve`` over a store holding two grids: one on
CRS84 cells and one on a CGCS2000 Gauss-Kruger grid."""

from __future__ import annotations

import json
from collections.abc import Iterator

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
import xarray as xr

import geoplatform as gp
from tests.ogc.test_server import ROOT, serving

NT, NY, NX = 10, 30, 40
EDR = "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/"


def value(t: int, row: int, col: int) -> float:
    """The air grid's pm25 at step t, row, column: each cell says where it is."""
    return t * 10000.0 + row * 100.0 + col


def air() -> xr.Dataset:
    t = pd.date_range("2025-01-01", periods=NT, freq="D")
    x = 116.0 + (np.arange(NX) + 0.5) * 0.01
    y = 40.0 - (np.arange(NY) + 0.5) * 0.01
    pm = np.fromfunction(value, (NT, NY, NX)).astype("float32")
    pm[3, 5, 5] = np.nan  # a missing cell
    return xr.Dataset({"pm25": (("time", "lat", "lon"), pm, {"units": "ug m-3", "long_name": "PM2.5"}),
                       "no2": (("time", "lat", "lon"), pm / 2, {"units": "ug m-3", "long_name": "NO2"})},
                      coords={"time": t, "lat": y, "lon": x})


def flood() -> xr.Dataset:
    x = 500_000 + (np.arange(20) + 0.5) * 100.0
    y = 3_800_000 - (np.arange(10) + 0.5) * 100.0
    d = np.arange(2 * 10 * 20, dtype=np.float64).reshape(2, 10, 20)
    ds = xr.Dataset({"depth": (("time", "y", "x"), d, {"units": "m", "grid_mapping": "crs"})},
                    coords={"time": pd.date_range("2025-07-01T00:00", periods=2, freq="h"), "y": y, "x": x})
    ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": pyproj.CRS("EPSG:4545").to_wkt()})
    return ds


PARK = "POLYGON((116.05 39.8, 116.1 39.8, 116.1 39.85, 116.05 39.8))"
STATIONS = {"S1": (116.40, 39.90), "S2": (116.30, 40.00), "S3": (116.50, 39.80)}


def observations() -> gpd.GeoDataFrame:
    """Hourly PM2.5 at three stations for a day; S2 misses hour 3."""

    rows = []
    for k, (sid, (lon, lat)) in enumerate(sorted(STATIONS.items())):
        for h in range(24):
            if (sid, h) != ("S2", 3):
                rows.append({"obs_id": f"{sid}-{h}", "station": sid, "pm25": 10.0 * (k + 1) + h,
                             "observed_at": pd.Timestamp("2025-03-01T00:00:00Z") + pd.Timedelta(hours=h),
                             "geometry": shapely.Point(lon, lat)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


def incidents() -> gpd.GeoDataFrame:
    """500 incidents over 3 days in a 5 x 5 km square of EPSG:4545 (seeded)."""

    rng = np.random.default_rng(7)
    n = 500
    return gpd.GeoDataFrame({"incident_id": np.arange(n), "severity": rng.integers(1, 6, n),
                             "reported_at": pd.Timestamp("2025-03-01T00:00:00Z")
                             + pd.to_timedelta(rng.integers(0, 3 * 86400, n), unit="s")},
                            geometry=shapely.points(rng.uniform(500_000, 505_000, n),
                                                    rng.uniform(3_800_000, 3_805_000, n)), crs="EPSG:4545")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("edr")
    with gp.open_cube(work / "store") as cube:
        cube.create_grid({"name": "air_grid", "title": "Air quality grid", "theme": "sensing"})
        cube.ingest_grid("air_grid", air())
        cube.create_grid({"name": "flood_depth", "title": "Flood depth"})
        cube.ingest_grid("flood_depth", flood())
        cube.create_dataset(gp.DatasetSpec(name="air_obs", fid="obs_id", geometry_type="Point",
                                           valid_from="observed_at", instant=True, storage_crs="EPSG:4326"))
        cube.ingest("air_obs", observations())
        cube.create_dataset(gp.DatasetSpec(name="incidents", fid="incident_id", geometry_type="Point",
                                           valid_from="reported_at", instant=True, storage_crs="EPSG:4545"))
        cube.ingest("incidents", incidents())
        cube.create_dataset(gp.DatasetSpec(name="places", fid="place_id", storage_crs="EPSG:4326",
                                           geometry_type="Geometry"))
        cube.ingest("places", gpd.GeoDataFrame(
            {"place_id": ["park", "mast", "canal"], "name": ["Lake park", "Radio mast", "Canal"]},
            geometry=[shapely.from_wkt(PARK), shapely.Point(116.123, 39.955),
                      shapely.LineString([(116.2, 39.75), (116.26, 39.75)])], crs="EPSG:4326"))
    layers = work / "layers"
    (layers / "sensing").mkdir(parents=True)
    (layers / "sensing" / "air-grid.yaml").write_text(
        "id: air-grid\ngrid: air_grid\ncrs: [OGC:CRS84, EPSG:4326, EPSG:3857]\nmax_cells: 20000\n"
        "styles:\n  pm25: {colormap: aqi_pm25}\nlocations: places\nlocation_name: name\n")
    (layers / "sensing" / "flood.yaml").write_text("id: flood\ngrid: flood_depth\n")
    (layers / "sensing" / "incidents-daily.yaml").write_text(
        "id: incidents-daily\naggregate: incidents\nresolution: 1000\ngrid_crs: EPSG:4545\nfreq: 1D\n"
        "crs: [OGC:CRS84, EPSG:4545]\nmax_cells: 5000\n")
    (layers / "sensing" / "incidents-daily-k.yaml").write_text(
        "id: incidents-daily-k\naggregate: incidents\nresolution: 1000\ngrid_crs: EPSG:4545\nfreq: 1D\n"
        "crs: [OGC:CRS84, EPSG:4545]\nmin_count: 5\n")
    (layers / "sensing" / "severity-daily.yaml").write_text(
        "id: severity-daily\naggregate: incidents\nresolution: 1000\nfreq: 1D\nagg: mean\nvariable: severity\n"
        "crs: [OGC:CRS84, EPSG:4545]\n")
    (layers / "sensing" / "air-stations.yaml").write_text(
        "id: air-stations\nseries: air_obs\nstation: station\ncrs: [OGC:CRS84, EPSG:3857]\n")
    with serving(work, ["--layers", str(layers), "--catalog", str(ROOT / "catalogs" / "sample_city.yaml")],
                 probe="/collections/air-grid") as url:
        yield url


def get(server: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server}{path}", params=params, timeout=60)


def q(server: str, kind: str, cid: str = "air-grid", **params: str) -> httpx.Response:
    return get(server, f"/collections/{cid}/{kind}", **params)


# Core and collections ------------------------------------------------------------------

def test_conf_core_conformance_success(server: str) -> None:
    conf = get(server, "/conformance").json()["conformsTo"]
    for c in ("core", "collections", "queries", "json", "geojson", "covjson", "oas30"):
        assert EDR + c in conf
    assert EDR + "edr-geojson" not in conf and EDR + "instances" not in conf  # not implemented, not declared


def test_conf_edr_rc_collection_info(server: str) -> None:
    cols = {c["id"]: c for c in get(server, "/collections").json()["collections"]}
    assert {"air-grid", "flood"} <= set(cols)
    c = cols["air-grid"]
    assert c["extent"]["spatial"]["bbox"][0] == pytest.approx([116.0, 39.7, 116.4, 40.0])
    assert c["extent"]["temporal"]["interval"][0] == ["2025-01-01T00:00:00Z", "2025-01-10T00:00:00Z"]
    assert set(c["parameter_names"]) == {"pm25", "no2"}
    assert all({"rel", "type", "href"} <= set(link) for link in c["links"])  # /conf/edr/rc-md-query-links
    assert get(server, "/collections/air-grid").json() == c


def test_conf_edr_rc_data_queries_and_common_query_type(server: str) -> None:
    c = get(server, "/collections/air-grid").json()
    assert set(c["data_queries"]) == {"position", "radius", "area", "cube", "trajectory", "corridor", "locations"}
    assert set(get(server, "/collections/flood").json()["data_queries"]) == {
        "position", "radius", "area", "cube", "trajectory", "corridor"}  # a grid without named places
    for kind, dq in c["data_queries"].items():
        link = dq["link"]
        assert link["href"].endswith(f"/collections/air-grid/{kind}") and link["rel"] == "data"
        v = link["variables"]
        assert v["query_type"] == kind and "CoverageJSON" in v["output_formats"]
        assert {d["crs"] for d in v["crs_details"]} >= {"http://www.opengis.net/def/crs/OGC/1.3/CRS84"}
    assert "within_units" in c["data_queries"]["radius"]["link"]["variables"]  # /conf/edr/rc-radius-variables
    corridor = c["data_queries"]["corridor"]["link"]["variables"]  # /conf/edr/rc-corridor-variables
    assert "width_units" in corridor and "height_units" in corridor


def test_conf_edr_rc_parameters(server: str) -> None:
    params = get(server, "/collections/air-grid").json()["parameter_names"]
    for name, p in params.items():
        assert p["type"] == "Parameter"
        assert p["observedProperty"]["id"] and p["observedProperty"]["label"]["en"]
    assert params["pm25"]["unit"]["symbol"] == "ug m-3"


# Position ------------------------------------------------------------------------------

def test_conf_position_no_query_params(server: str) -> None:
    assert q(server, "position").status_code == 400


def test_conf_position_no_coords_param(server: str) -> None:
    r = q(server, "position", datetime="2025-01-02")
    assert r.status_code == 400 and "coords" in r.json()["description"]


@pytest.mark.parametrize("coords", ["POINT(116.1)", "POINT(116.1 abc)", "LINESTRING(116 39.9, 116.1 39.9)",
                                    "POINT(nan 39.9)", "hello"])
def test_conf_position_coords_param_invalid(server: str, coords: str) -> None:
    assert q(server, "position", coords=coords).status_code == 400


def test_conf_position_valid_query_params(server: str) -> None:
    r = q(server, "position", coords="POINT(116.125 39.875)")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/prs.coverage+json")
    cov = r.json()
    assert cov["type"] == "Coverage" and cov["domain"]["domainType"] == "PointSeries"
    assert len(cov["domain"]["axes"]["t"]["values"]) == NT
    assert cov["ranges"]["pm25"]["values"] == [value(t, 12, 12) for t in range(NT)]
    assert cov["ranges"]["no2"]["values"] == [value(t, 12, 12) / 2 for t in range(NT)]


def test_conf_core_datetime_response_position(server: str) -> None:
    cov = q(server, "position", coords="POINT(116.055 39.945)", datetime="2025-01-03T00:00:00Z/2025-01-05T00:00:00Z").json()
    assert cov["domain"]["axes"]["t"]["values"] == ["2025-01-03T00:00:00Z", "2025-01-04T00:00:00Z",
                                                    "2025-01-05T00:00:00Z"]
    assert cov["ranges"]["pm25"]["values"][1] is None  # the missing cell is null
    open_end = q(server, "position", coords="POINT(116.055 39.945)", datetime="2025-01-08T00:00:00Z/..").json()
    assert len(open_end["domain"]["axes"]["t"]["values"]) == 3
    outside = q(server, "position", coords="POINT(116.055 39.945)", datetime="2030-01-01T00:00:00Z")
    assert outside.status_code == 400 and "holds no time step" in outside.json()["description"]


def test_conf_edr_rc_parameter_name_response_position(server: str) -> None:
    cov = q(server, "position", coords="POINT(116.125 39.875)", **{"parameter-name": "no2"}).json()
    assert set(cov["ranges"]) == {"no2"} and set(cov["parameters"]) == {"no2"}
    bad = q(server, "position", coords="POINT(116.125 39.875)", **{"parameter-name": "pm10"})
    assert bad.status_code == 400 and "pm25" in bad.json()["description"]


def test_conf_edr_rc_crs_response_position(server: str) -> None:
    x, y = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True).transform(116.125, 39.875)
    r = q(server, "position", coords=f"POINT({x} {y})", crs="EPSG:3857")
    assert r.status_code == 200 and r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/3857>"
    assert r.json()["ranges"]["pm25"]["values"][0] == value(0, 12, 12)
    assert q(server, "position", coords="POINT(116.125 39.875)", crs="EPSG:4546").status_code == 400  # not offered
    assert q(server, "position", coords="POINT(116.125 39.875)", crs="EPSG:99999").status_code == 400


def test_conf_collections_rc_f_response_position(server: str) -> None:
    gj = q(server, "position", coords="POINT(116.125 39.875)", f="GeoJSON")
    assert gj.headers["content-type"].startswith("application/geo+json")
    feats = gj.json()["features"]
    assert len(feats) == NT and feats[2]["properties"]["pm25"] == value(2, 12, 12)
    text = q(server, "position", coords="POINT(116.125 39.875)", f="CSV")
    assert text.headers["content-type"].startswith("text/csv")
    lines = text.text.strip().splitlines()
    assert lines[0] == "x,y,datetime,pm25,no2" and len(lines) == NT + 1
    assert q(server, "position", coords="POINT(116.125 39.875)", f="xml").status_code == 400


def test_position_multipoint_and_outside(server: str) -> None:
    col = q(server, "position", coords="MULTIPOINT((116.125 39.875),(116.005 39.995))", datetime="2025-01-02").json()
    assert col["type"] == "CoverageCollection" and len(col["coverages"]) == 2
    assert col["coverages"][1]["ranges"]["pm25"]["values"] == [value(1, 0, 0)]
    assert q(server, "position", coords="POINT(10 10)").status_code == 400


def test_z_and_unknown_parameters_are_refused(server: str) -> None:
    r = q(server, "position", coords="POINT(116.125 39.875)", z="10")
    assert r.status_code == 400 and "vertical" in r.json()["description"]
    assert q(server, "position", coords="POINT(116.125 39.875)", colour="red").status_code == 400
    r = httpx.get(f"{server}/collections/air-grid/position?coords=POINT(116.1%2039.9)&coords=POINT(116.2%2039.9)")
    assert r.status_code == 400


# Area, cube, radius --------------------------------------------------------------------

def test_conf_area_no_coords_param(server: str) -> None:
    assert q(server, "area").status_code == 400
    assert q(server, "area", datetime="2025-01-02").status_code == 400


@pytest.mark.parametrize("coords", ["POLYGON((116 39.9, 116.1 39.9, 116.1 40))",  # not closed
                                    "POLYGON((116 39.9, 116.1 40, 116.1 39.9, 116 40, 116 39.9))",  # self-crossing
                                    "POINT(116 39.9)"])
def test_conf_area_coords_param_invalid(server: str, coords: str) -> None:
    r = q(server, "area", coords=coords)
    assert r.status_code == 400 and r.json()["description"]


def test_conf_area_valid_query_params(server: str) -> None:
    tri = "POLYGON((116.0 39.9, 116.05 39.9, 116.05 40.0, 116.0 39.9))"
    cov = q(server, "area", coords=tri, datetime="2025-01-05").json()
    assert cov["domain"]["domainType"] == "Grid"
    xs, ys = cov["domain"]["axes"]["x"]["values"], cov["domain"]["axes"]["y"]["values"]
    vals = np.array(cov["ranges"]["pm25"]["values"], dtype=float).reshape(cov["ranges"]["pm25"]["shape"])
    assert vals.shape == (1, len(ys), len(xs))
    # the corner above the diagonal is outside the triangle; the cell by its right-angle corner is in
    assert np.isnan(vals[0, 0, 0])
    assert [round(y, 3) for y in (ys[0], ys[-1])] == [39.995, 39.905]  # rows 0 to 9: the edge at 39.9 takes no more
    assert vals[0, -1, -1] == value(4, 9, 4)  # by the right-angle corner


def test_conf_cube_bbox_params(server: str) -> None:
    assert q(server, "cube", datetime="2025-01-02").status_code == 400  # /conf/cube/no-bbox-param
    assert q(server, "cube", bbox="116,39.9,116.1").status_code == 400  # /conf/cube/bbox-param-invalid
    assert q(server, "cube", bbox="116.1,39.9,116.0,40.0").status_code == 400
    cov = q(server, "cube", bbox="116.0,39.96,116.03,40.0", datetime="2025-01-02/2025-01-03").json()
    vals = np.array(cov["ranges"]["pm25"]["values"], dtype=float).reshape(cov["ranges"]["pm25"]["shape"])
    assert vals.shape == (2, 4, 3)  # cell centres inside the box
    assert vals[1, 0, 0] == value(2, 0, 0) and vals[0, 3, 2] == value(1, 3, 2)


def _grid(cov: dict) -> np.ndarray:
    r = cov["ranges"]["pm25"]
    return np.array([np.nan if v is None else v for v in r["values"]], dtype=float).reshape(r["shape"])


def test_conf_cube_resolution_x_y(server: str) -> None:
    """resolution-x / -y: that many points spread evenly over the cells, each a grid cell's own value."""
    box = {"bbox": "116.0,39.9,116.1,40.0", "datetime": "2025-01-02"}
    full = q(server, "cube", **box).json()
    coarse = q(server, "cube", **box, **{"resolution-x": "4", "resolution-y": "3"}).json()
    fx, fy = full["domain"]["axes"]["x"]["values"], full["domain"]["axes"]["y"]["values"]
    cx, cy = coarse["domain"]["axes"]["x"]["values"], coarse["domain"]["axes"]["y"]["values"]
    assert (len(fx), len(fy)) == (10, 10) and (len(cx), len(cy)) == (4, 3)
    assert (cx[0], cx[-1], cy[0], cy[-1]) == (fx[0], fx[-1], fy[0], fy[-1])  # from the first cell to the last
    ix, iy = [fx.index(v) for v in cx], [fy.index(v) for v in cy]
    np.testing.assert_array_equal(_grid(coarse), _grid(full)[:, iy][:, :, ix])
    assert q(server, "cube", **box, **{"resolution-x": "1000"}).json()["domain"]["axes"]["x"]["values"] == fx
    for bad in ("0", "-2", "2.5", "many"):
        r = q(server, "cube", **box, **{"resolution-x": bad})
        assert r.status_code == 400 and "resolution-x" in r.json()["description"], bad
    # a coarse view of an area too big at full resolution fits the limit
    big = {"bbox": "116.0,39.7,116.4,40.0"}  # 10 steps x 30 x 40 cells x 2 parameters
    assert q(server, "cube", **big).status_code == 413
    assert q(server, "cube", **big, **{"resolution-x": "8", "resolution-y": "6"}).status_code == 200


def test_conf_locations_on_a_grid(server: str) -> None:
    """A grid's named places: a polygon's cells, a point's series, a line's path, each as
    the area, position and trajectory queries answer the same geometry."""
    places = get(server, "/collections/air-grid/locations").json()
    assert {f["id"]: f["properties"]["name"] for f in places["features"]} == {
        "park": "Lake park", "mast": "Radio mast", "canal": "Canal"}
    assert "locations" in get(server, "/collections/air-grid").json()["data_queries"]
    when = {"datetime": "2025-01-02/2025-01-04"}
    park = get(server, "/collections/air-grid/locations/park", **when).json()
    np.testing.assert_array_equal(_grid(park), _grid(q(server, "area", coords=PARK, **when).json()))
    mast = get(server, "/collections/air-grid/locations/mast", **when).json()
    assert mast["ranges"] == q(server, "position", coords="POINT(116.123 39.955)", **when).json()["ranges"]
    canal = get(server, "/collections/air-grid/locations/canal", **when).json()
    assert canal["ranges"] == q(server, "trajectory", coords="LINESTRING(116.2 39.75, 116.26 39.75)",
                                **when).json()["ranges"]
    assert get(server, "/collections/air-grid/locations/nowhere").status_code == 404
    assert get(server, "/collections/flood/locations").status_code == 404  # a grid without places
    assert get(server, "/collections/air-grid/locations", bogus="1").status_code == 400
    assert get(server, "/collections/air-grid/locations/park", coords="POINT(1 2)").status_code == 400


def test_request_too_large_is_413(server: str) -> None:
    r = q(server, "cube", bbox="116.0,39.7,116.4,40.0")  # 10 x 30 x 40 x 2 values > 20,000
    assert r.status_code == 413 and "at most 20,000" in r.json()["description"]
    assert q(server, "cube", bbox="116.0,39.7,116.4,40.0", datetime="2025-01-01",
             **{"parameter-name": "pm25"}).status_code == 200


def test_radius(server: str) -> None:
    assert q(server, "radius", coords="POINT(116.2 39.85)").status_code == 400  # within missing
    assert q(server, "radius", coords="POINT(116.2 39.85)", within="1", **{"within-units": "parsec"}).status_code == 400
    gj = q(server, "radius", coords="POINT(116.205 39.855)", within="0.6", f="GeoJSON",
           datetime="2025-01-01", **{"within-units": "km"}).json()
    cells = {(round(f["geometry"]["coordinates"][0], 3), round(f["geometry"]["coordinates"][1], 3))
             for f in gj["features"]}
    # cells of about 0.85 x 1.1 km: the circle reaches the four beside its cell (edges 430 and 555 m away),
    # not the corners of the diagonal ones (700 m away)
    assert cells == {(116.205, 39.855), (116.195, 39.855), (116.215, 39.855), (116.205, 39.845), (116.205, 39.865)}


# Trajectory and corridor -----------------------------------------------------------

def test_conf_trajectory(server: str) -> None:
    assert q(server, "trajectory").status_code == 400
    assert q(server, "trajectory", coords="POINT(116 39.9)").status_code == 400
    cov = q(server, "trajectory", coords="LINESTRING(116.005 39.995, 116.035 39.995)", datetime="2025-01-02").json()
    assert cov["domain"]["domainType"] == "Trajectory"
    tuples = cov["domain"]["axes"]["composite"]["values"]
    assert [round(t[1], 3) for t in tuples] == [116.005, 116.015, 116.025, 116.035]
    assert cov["ranges"]["pm25"]["values"] == [value(1, 0, c) for c in range(4)]


def test_conf_corridor(server: str) -> None:
    line = "LINESTRING(116.0 39.905, 116.095 39.905)"  # ends in the middle of column 9
    ok = {"coords": line, "corridor-width": "1", "width-units": "km", "corridor-height": "10", "height-units": "m",
          "datetime": "2025-01-05"}
    for missing in ("corridor-width", "width-units", "corridor-height", "height-units"):
        r = q(server, "corridor", **{k: v for k, v in ok.items() if k != missing})
        assert r.status_code == 400, missing
    assert q(server, "corridor", **{**ok, "width-units": "furlong"}).status_code == 400
    assert q(server, "corridor", **{**ok, "height-units": "furlong"}).status_code == 400
    cov = q(server, "corridor", **ok).json()
    ys = cov["domain"]["axes"]["y"]["values"]
    assert [round(y, 3) for y in ys] == [39.905]  # a band half a kilometre each side stays in row 9
    assert len(cov["domain"]["axes"]["x"]["values"]) == 10


def test_projected_grid_takes_crs84_coords(server: str) -> None:
    x, y = 500_150.0, 3_799_750.0  # column 1, row 2
    lon, lat = pyproj.Transformer.from_crs("EPSG:4545", "OGC:CRS84", always_xy=True).transform(x, y)
    cov = q(server, "position", "flood", coords=f"POINT({lon} {lat})").json()
    assert cov["ranges"]["depth"]["values"] == [41.0, 241.0]
    grid = q(server, "cube", "flood", bbox="500000,3799500,500300,3800000", crs="EPSG:4545").json()
    assert grid["domain"]["referencing"][0]["system"]["id"].endswith("/EPSG/0/4545")
    assert len(grid["domain"]["axes"]["x"]["values"]) == 3 and len(grid["domain"]["axes"]["y"]["values"]) == 5


def test_features_endpoints_refuse_a_grid(server: str) -> None:
    r = get(server, "/collections/air-grid/items")
    assert r.status_code == 404 and "grid" in r.json()["description"]


def test_conf_oas30_oas_definition(server: str) -> None:
    from openapi_spec_validator import validate

    doc = get(server, "/api").json()
    validate(doc)  # a valid OpenAPI 3.0 document, with the EDR and map tile paths
    op = doc["paths"]["/collections/air-grid/position"]["get"]
    assert any(p["name"] == "coords" and p["required"] for p in op["parameters"])
    assert "413" in doc["paths"]["/collections/air-grid/cube"]["get"]["responses"]


# OWSLib ---------------------------------------------------------------------------

def test_owslib_edr_client(server: str) -> None:
    from owslib.ogcapi.edr import EnvironmentalDataRetrieval

    api = EnvironmentalDataRetrieval(server)
    assert {"air-grid", "flood"} <= set(api.data())
    pos = api.query_data("air-grid", "position", coords="POINT(116.125 39.875)", parameter_names=["pm25"])
    assert pos["ranges"]["pm25"]["values"][0] == value(0, 12, 12) and set(pos["ranges"]) == {"pm25"}
    area = api.query_data("air-grid", "area", coords="POLYGON((116 39.9, 116.05 39.9, 116.05 40, 116 40, 116 39.9))",
                          datetime_="2025-01-01")
    assert area["domain"]["domainType"] == "Grid"
    cube = api.query_data("air-grid", "cube", bbox=[116.0, 39.96, 116.03, 40.0], datetime_="2025-01-02")
    assert cube["ranges"]["no2"]["shape"] == [1, 4, 3]
    traj = api.query_data("air-grid", "trajectory", coords="LINESTRING(116.005 39.995, 116.035 39.995)",
                          datetime_="2025-01-02")
    assert len(traj["ranges"]["pm25"]["values"]) == 4
    corr = api.query_data("air-grid", "corridor", coords="LINESTRING(116.0 39.905, 116.1 39.905)",
                          corridor_width="1", width_units="km", corridor_height="10", height_units="m",
                          datetime_="2025-01-05")
    assert corr["domain"]["domainType"] == "Grid"
    assert json.dumps(corr)


def test_schemathesis_no_server_errors_on_the_queries(server: str) -> None:
    """schemathesis against the server's own OpenAPI document, on the grid paths (EDR, Coverages,
    map tiles): no 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{server}/api")
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if op.path.split("/")[-1] in ("position", "radius", "area", "cube", "trajectory",
                                                          "corridor", "coverage") or op.path == "/collections/air-grid"
           or op.path.startswith("/collections/air-grid/map/") or op.path == "/collections/air-grid/schema"]
    # six queries and a coverage on two grids, a grid collection, its schema, its three map tile paths,
    # the radius, area and cube of the sensor series, and four queries on each of three aggregates
    assert len(ops) == 34
    for op in ops:

        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        run()


# Sensor series ------------------------------------------------------------------------

def test_series_collection_and_locations(server: str) -> None:
    c = get(server, "/collections/air-stations").json()
    assert set(c["data_queries"]) == {"radius", "area", "cube", "locations", "items"}
    assert set(c["parameter_names"]) == {"pm25"}
    assert c["extent"]["temporal"]["interval"][0] == ["2025-03-01T00:00:00Z", "2025-03-01T23:00:00Z"]
    locs = q(server, "locations", "air-stations").json()["features"]
    assert sorted(f["id"] for f in locs) == ["S1", "S2", "S3"]
    one = get(server, "/collections/air-stations/locations/S2",
              datetime="2025-03-01T02:00:00Z/2025-03-01T04:00:00Z").json()
    # the station's own observation times: hour 3 is missing, so it is not a step of its series
    assert one["domain"]["domainType"] == "PointSeries" and one["ranges"]["pm25"]["values"] == [22.0, 24.0]
    assert one["domain"]["axes"]["t"]["values"] == ["2025-03-01T02:00:00Z", "2025-03-01T04:00:00Z"]
    assert one["domain"]["axes"]["x"]["values"] == [116.30]
    assert get(server, "/collections/air-stations/locations/S9").status_code == 404  # /conf/locations/location-identifier-invalid
    assert get(server, "/collections/flood/locations").status_code == 404  # a grid without named places


def test_series_area_radius_cube_items(server: str) -> None:
    col = q(server, "area", "air-stations", coords="POLYGON((116.35 39.85, 116.45 39.85, 116.45 39.95, 116.35 39.95, "
            "116.35 39.85))", datetime="2025-03-01T05:00:00Z").json()
    assert col["type"] == "CoverageCollection" and [c["id"] for c in col["coverages"]] == ["S1"]
    assert col["coverages"][0]["ranges"]["pm25"]["values"] == [15.0]
    near = q(server, "radius", "air-stations", coords="POINT(116.31 40.0)", within="2", f="CSV",
             datetime="2025-03-01T00:00:00Z/2025-03-01T01:00:00Z", **{"within-units": "km"}).text.splitlines()
    assert near[0] == "station,x,y,datetime,pm25" and [r.split(",")[0] for r in near[1:]] == ["S2", "S2"]
    box = q(server, "cube", "air-stations", bbox="116.2,39.7,116.6,40.1", f="GeoJSON",
            datetime="2025-03-01T00:00:00Z").json()
    assert sorted(f["properties"]["station"] for f in box["features"]) == ["S1", "S2", "S3"]
    assert q(server, "cube", "air-stations", bbox="0,0,1,1").status_code == 400  # no station there
    assert q(server, "position", "air-stations", coords="POINT(116.4 39.9)").status_code == 404
    items = get(server, "/collections/air-stations/items").json()
    assert items["numberMatched"] == 3
    page = get(server, "/collections/air-stations/items", limit="2").json()
    assert page["numberReturned"] == 2 and any(link["rel"] == "next" for link in page["links"])
    assert get(server, "/collections/air-stations/items", limit="0").status_code == 400
    import pyogrio  # GDAL's OAPIF driver reads the stations to the end through the pages

    df = pyogrio.read_dataframe(f"OAPIF:{server}", layer="air-stations")
    assert sorted(df["name"]) == ["S1", "S2", "S3"]
    assert get(server, "/collections/air-stations/items/S3").json()["geometry"]["coordinates"] == [116.5, 39.8]
    assert get(server, "/collections/air-stations/items/S9").status_code == 404
    x, _ = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True).transform(116.40, 39.90)
    merc = get(server, "/collections/air-stations/locations/S1", crs="EPSG:3857", datetime="2025-03-01T00:00:00Z").json()
    assert merc["domain"]["axes"]["x"]["values"][0] == pytest.approx(x)


def test_owslib_reads_series(server: str) -> None:
    from owslib.ogcapi.edr import EnvironmentalDataRetrieval

    api = EnvironmentalDataRetrieval(server)
    assert "air-stations" in api.data()
    got = api.query_data("air-stations", "cube", bbox=[116.2, 39.7, 116.6, 40.1], parameter_names=["pm25"],
                         datetime_="2025-03-01T00:00:00Z")
    assert len(got["coverages"]) == 3


# Aggregated vector data -------------------------------------------------------------

def test_aggregate_cube_counts_every_incident_once(server: str) -> None:
    inc = incidents()
    day2 = inc[(inc.reported_at >= "2025-03-02T00:00:00Z") & (inc.reported_at < "2025-03-03T00:00:00Z")]
    c = get(server, "/collections/incidents-daily").json()
    assert set(c["data_queries"]) == {"position", "radius", "area", "cube"} and list(c["parameter_names"]) == ["count"]
    doc = q(server, "cube", "incidents-daily", bbox="500000,3800000,505000,3805000", crs="EPSG:4545",
            datetime="2025-03-02T00:00:00Z/2025-03-02T23:59:59Z").json()
    vals = np.array(doc["ranges"]["count"]["values"], dtype=float).reshape(doc["ranges"]["count"]["shape"])
    assert vals.shape == (1, 5, 5) and vals.sum() == len(day2)
    # the cell of row 0, column 0: x 500-501 km, y 3804-3805 km
    x, y = day2.geometry.x.values, day2.geometry.y.values
    assert vals[0, 0, 0] == ((x >= 500_000) & (x < 501_000) & (y >= 3_804_000) & (y < 3_805_000)).sum()
    # a point's cell over the three days, by CRS84 coordinates: the same lattice cell
    lon, lat = pyproj.Transformer.from_crs("EPSG:4545", "OGC:CRS84", always_xy=True).transform(500_500, 3_804_500)
    pos = q(server, "position", "incidents-daily", coords=f"POINT({lon} {lat})").json()
    days = pos["domain"]["axes"]["t"]["values"]
    assert days == ["2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z", "2025-03-03T00:00:00Z"]
    assert pos["ranges"]["count"]["values"][1] == vals[0, 0, 0]
    in_cell = ((inc.geometry.x >= 500_000) & (inc.geometry.x < 501_000) & (inc.geometry.y >= 3_804_000)
               & (inc.geometry.y < 3_805_000))
    assert sum(pos["ranges"]["count"]["values"]) == int(in_cell.sum())


def test_aggregate_with_min_count_keeps_whole_steps_and_withholds_small_counts(server: str) -> None:
    """With min_count, a request's datetime picks whole days of the fixed calendar (it cannot
    cut a shorter window to difference), and counts of 1 to 4 are withheld."""
    box = {"bbox": "500000,3800000,505000,3805000", "crs": "EPSG:4545"}
    part = "2025-03-01T12:00:00Z/2025-03-02T06:00:00Z"
    k = q(server, "cube", "incidents-daily-k", datetime=part, **box).json()
    assert k["domain"]["axes"]["t"]["values"] == ["2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z"]
    whole = q(server, "cube", "incidents-daily", datetime="2025-03-01T00:00:00Z/2025-03-02T23:59:59Z", **box).json()
    clipped = q(server, "cube", "incidents-daily", datetime=part, **box).json()
    got, full = _counts(k), _counts(whole)
    assert np.nansum(_counts(clipped)) < np.nansum(full)  # without min_count the window is cut as asked
    small = (full > 0) & (full < 5)
    assert small.any() and np.isnan(got[small]).all()
    np.testing.assert_array_equal(got[~small], full[~small])
    assert "counts below 5 are withheld" in str(get(server, "/collections/incidents-daily-k").json())
    assert q(server, "cube", "incidents-daily-k", datetime="2024-01-01/2024-01-02", **box).status_code == 400


def _counts(cov: dict) -> np.ndarray:
    r = cov["ranges"]["count"]
    return np.array([np.nan if v is None else v for v in r["values"]], dtype=float).reshape(r["shape"])


def test_aggregate_mean_area_and_limits(server: str) -> None:
    inc = incidents()
    area = q(server, "area", "severity-daily", crs="EPSG:4545", datetime="2025-03-01T00:00:00Z/2025-03-03T23:59:59Z",
             coords="POLYGON((500100 3800100, 501900 3800100, 501900 3801900, 500100 3801900, 500100 3800100))").json()
    assert list(area["ranges"]) == ["mean_severity"]
    vals = np.array(area["ranges"]["mean_severity"]["values"], dtype=float).reshape(area["ranges"]["mean_severity"]["shape"])
    assert vals.shape == (3, 2, 2)
    d1 = inc[inc.reported_at < "2025-03-02T00:00:00Z"]
    sel = (d1.geometry.x >= 500_000) & (d1.geometry.x < 501_000) & (d1.geometry.y >= 3_800_000) & (d1.geometry.y < 3_801_000)
    assert vals[0, 1, 0] == pytest.approx(d1[sel].severity.mean())  # row 1 from the north: 3800-3801 km
    big = q(server, "cube", "incidents-daily", bbox="400000,3700000,600000,3900000", crs="EPSG:4545")
    assert big.status_code == 413
    assert q(server, "cube", "incidents-daily", bbox="500000,3800000,505000,3805000", crs="EPSG:4545",
             **{"parameter-name": "severity"}).status_code == 400
    assert q(server, "trajectory", "incidents-daily", coords="LINESTRING(1 1, 2 2)").status_code == 404
    assert get(server, "/collections/incidents-daily/items").status_code == 404


def test_time_axis_texts_built_in_numpy_match_one_by_one() -> None:
    """The t axis of a long series is formatted in numpy; it writes what the one-time formatter writes."""
    import orjson

    from geoplatform.ogc.edr import _iso, iso_times_json

    rng = np.random.default_rng(5)
    us = np.r_[rng.integers(-62135596800000000, 253402300799000000, 5000), 0, -1, 951782400000000,
               946684799999999, 4102444800000000, 1456704000000000]
    assert orjson.loads(orjson.dumps({"t": iso_times_json(us)}))["t"] == [_iso(int(v)) for v in us]
    assert orjson.loads(orjson.dumps(iso_times_json(us[:0]))) == []
    again = iso_times_json(us.copy())  # the same axis again: written once, kept
    assert again is iso_times_json(us) and iso_times_json(us[:10]) is not again
