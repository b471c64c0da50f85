"""OGC API - Coverages on grids over HTTP: subsetting, field selection, scaling,
CoverageJSON and GeoTIFF (decoded by GDAL through rasterio)."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.io import MemoryFile

from tests.ogc.test_edr import NT, get, server, value  # noqa: F401  (the running server fixture)

C = "https://www.opengis.net/spec/ogcapi-coverages-1/1.0/conf/"


def cov(server: str, cid: str = "air-grid", **params: str):  # noqa: F811
    return get(server, f"/collections/{cid}/coverage", **params)


def grid(doc: dict, field: str = "pm25") -> np.ndarray:
    r = doc["ranges"][field]
    return np.array(r["values"], dtype=float).reshape(r["shape"])


def test_conformance_and_collection_description(server: str) -> None:  # noqa: F811
    conf = get(server, "/conformance").json()["conformsTo"]
    for c in ("core", "subsetting-spatial", "subsetting-temporal", "field-selection", "scaling-spatial", "geotiff",
              "coveragejson"):
        assert C + c in conf
    col = get(server, "/collections/air-grid").json()
    rels = {link["rel"] for link in col["links"]}
    assert {"http://www.opengis.net/def/rel/ogc/1.0/coverage", "http://www.opengis.net/def/rel/ogc/1.0/schema"} <= rels
    assert col["storageCrs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    gx, gy = col["extent"]["spatial"]["grid"]
    assert (gx["cellsCount"], gy["cellsCount"]) == (40, 30) and gx["resolution"] == pytest.approx(0.01)
    assert col["extent"]["temporal"]["grid"]["cellsCount"] == NT
    flood = get(server, "/collections/flood").json()
    assert flood["storageCrs"].endswith("/EPSG/0/4545")
    assert flood["extent"]["spatial"]["storageCrsBbox"][0] == pytest.approx([500000, 3799000, 502000, 3800000])
    schema = get(server, "/collections/air-grid/schema").json()
    assert schema["properties"]["pm25"]["type"] == "number" and schema["properties"]["pm25"]["x-ogc-unit"] == "ug m-3"


def test_whole_coverage_is_limited_then_field_selected(server: str) -> None:  # noqa: F811
    big = cov(server)
    assert big.status_code == 413 and "at most 20,000" in big.json()["description"]
    doc = cov(server, properties="pm25").json()
    assert list(doc["ranges"]) == ["pm25"] and list(doc["parameters"]) == ["pm25"]
    a = grid(doc)
    assert a.shape == (NT, 30, 40) and a[4, 7, 9] == value(4, 7, 9) and np.isnan(a[3, 5, 5])
    ex = cov(server, **{"exclude-properties": "pm25"}).json()
    assert list(ex["ranges"]) == ["no2"]
    assert cov(server, properties="o3").status_code == 400
    assert cov(server, properties="pm25", **{"exclude-properties": "no2"}).status_code == 400
    assert cov(server, **{"exclude-properties": "pm25,no2"}).status_code == 400


def test_subsetting_spatial_and_temporal(server: str) -> None:  # noqa: F811
    doc = cov(server, properties="pm25", subset="Lon(116.0:116.03),Lat(39.96:40.0),time(\"2025-01-02\":\"2025-01-03\")").json()
    a = grid(doc)
    assert a.shape == (2, 4, 3) and a[0, 0, 0] == value(1, 0, 0) and a[1, 3, 2] == value(2, 3, 2)
    assert doc["domain"]["axes"]["t"]["values"] == ["2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"]
    sliced = grid(cov(server, properties="pm25", subset="Lat(39.955),time(\"2025-01-01\")").json())
    assert sliced.shape == (1, 1, 40) and sliced[0, 0, 10] == value(0, 4, 10)  # the row holding 39.955
    open_end = grid(cov(server, properties="pm25", subset="Lon(116.37:*)", datetime="2025-01-10").json())
    assert open_end.shape == (1, 30, 3)
    same = grid(cov(server, properties="pm25", bbox="116.0,39.96,116.03,40.0", datetime="2025-01-02/2025-01-03").json())
    assert np.array_equal(same, a)
    assert cov(server, subset="Lon(116:116.1)", bbox="116,39.9,116.1,40").status_code == 400
    assert cov(server, subset="E(1:2)").status_code == 400  # CRS84 has Lon and Lat
    assert cov(server, subset="Lon(116.1:116.0)").status_code == 400
    assert cov(server, subset="Lon(a:b)").status_code == 400
    assert cov(server, subset="Lon(116:116.1").status_code == 400
    assert cov(server, subset='time("2025-01-02")', datetime="2025-01-02").status_code == 400
    assert cov(server, properties="pm25", subset="Lon(10:11)").status_code == 204  # outside the coverage
    assert cov(server, properties="pm25", datetime="2030-01-01").status_code == 204
    assert cov(server, colour="red").status_code == 400
    assert cov(server, properties="pm25", crs="EPSG:3857").status_code == 400  # served in its own CRS only


def test_scaling(server: str) -> None:  # noqa: F811
    doc = cov(server, properties="pm25", datetime="2025-01-01", width="20", height="15").json()
    a = grid(doc)
    assert a.shape == (1, 15, 20)
    assert a[0, 0, 0] == value(0, 1, 1) and a[0, 14, 19] == value(0, 29, 39)  # nearest: the centre's cell
    xs = doc["domain"]["axes"]["x"]["values"]
    assert xs[0] == pytest.approx(116.01) and xs[1] - xs[0] == pytest.approx(0.02)
    res = grid(cov(server, properties="pm25", datetime="2025-01-01", resolution="Lon(0.02),Lat(0.02)").json())
    assert np.array_equal(res, a)
    assert np.array_equal(grid(cov(server, properties="pm25", datetime="2025-01-01", **{"scale-factor": "2"}).json()), a)
    assert cov(server, width="0").status_code == 400
    assert cov(server, resolution="E(100)").status_code == 400
    assert cov(server, **{"scale-factor": "-1"}).status_code == 400


def test_geotiff(server: str) -> None:  # noqa: F811
    r = cov(server, f="geotiff", subset="Lon(116.0:116.03),Lat(39.96:40.0)", datetime="2025-01-02/2025-01-03")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/tiff")
    with MemoryFile(r.content) as mem, mem.open() as src:
        assert src.driver == "GTiff" and src.count == 4 and (src.width, src.height) == (3, 4)
        assert src.crs.to_epsg() == 4326 or src.crs.to_string().endswith("CRS84") or src.crs.is_geographic
        assert src.transform.c == pytest.approx(116.0) and src.transform.f == pytest.approx(40.0)
        assert src.descriptions == ("pm25 2025-01-02T00:00:00Z", "pm25 2025-01-03T00:00:00Z",
                                    "no2 2025-01-02T00:00:00Z", "no2 2025-01-03T00:00:00Z")
        b = src.read()
    assert b[0, 0, 0] == value(1, 0, 0) and b[3, 3, 2] == value(2, 3, 2) / 2
    by_accept = get(server, "/collections/air-grid/coverage", properties="pm25", datetime="2025-01-01")
    assert by_accept.headers["content-type"] == "application/prs.coverage+json"
    import httpx

    tif = httpx.get(f"{server}/collections/air-grid/coverage", params={"properties": "pm25", "datetime": "2025-01-01"},
                    headers={"Accept": "image/tiff; application=geotiff"})
    assert tif.headers["content-type"].startswith("image/tiff")


def test_projected_subset(server: str) -> None:  # noqa: F811
    doc = cov(server, "flood", subset="E(500000:500300),N(3799500:3800000)", **{"subset-crs": "EPSG:4545"}).json()
    a = grid(doc, "depth")
    assert a.shape == (2, 5, 3) and a[1, 0, 0] == 200.0 and a[0, 4, 2] == 4 * 20 + 2
    assert doc["domain"]["referencing"][0]["system"]["id"].endswith("/EPSG/0/4545")
    assert cov(server, "flood", subset="Lon(500000:500300)", **{"subset-crs": "EPSG:4545"}).status_code == 400
