"""Map tiles (PNG) of grids over HTTP, decoded by GDAL's PNG driver (through rasterio)."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
import rasterio
from rasterio.io import MemoryFile

from geoplatform.ogc.tms import load_tile_matrix_sets
from tests.ogc.test_edr import get, server  # noqa: F401  (the running server fixture)

WMQ = load_tile_matrix_sets()["WebMercatorQuad"]
GREEN, YELLOW, DARK_RED = (0, 228, 0, 255), (255, 255, 0, 255), (126, 0, 35, 255)


def pixel_of(lon: float, lat: float, z: str) -> tuple[int, int, int, int]:
    """(tileRow, tileCol, pixel row, pixel column) of a lon/lat in WebMercatorQuad."""
    x, y = pyproj.Transformer.from_crs("OGC:CRS84", "EPSG:3857", always_xy=True).transform(lon, lat)
    r, c = WMQ.tile_for_point(z, x, y)
    b = WMQ.tile_bounds(z, r, c)
    return r, c, int((b[3] - y) / (b[3] - b[1]) * 256), int((x - b[0]) / (b[2] - b[0]) * 256)


def decode(body: bytes) -> np.ndarray:
    with MemoryFile(body) as mem, mem.open() as src:
        assert src.driver == "PNG" and src.count == 4
        return np.moveaxis(src.read(), 0, -1)  # (256, 256, 4)


def map_tile(server: str, z: str, r: int, c: int, **params: str):  # noqa: F811
    return get(server, f"/collections/air-grid/map/tiles/WebMercatorQuad/{z}/{r}/{c}", **params)


def test_tilesets_and_tileset_metadata(server: str) -> None:  # noqa: F811
    sets = get(server, "/collections/air-grid/map/tiles").json()["tilesets"]
    assert {s["dataType"] for s in sets} == {"map"} and len(sets) == 3
    doc = get(server, "/collections/air-grid/map/tiles/WebMercatorQuad").json()
    assert doc["dataType"] == "map" and doc["mediaTypes"] == ["image/png"]
    r, c, _, _ = pixel_of(116.2, 39.85, "12")
    lim = next(v for v in doc["tileMatrixSetLimits"] if v["tileMatrix"] == "12")
    assert lim["minTileRow"] <= r <= lim["maxTileRow"] and lim["minTileCol"] <= c <= lim["maxTileCol"]
    item = next(link for link in doc["links"] if link["rel"] == "item")
    assert item["type"] == "image/png" and item["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}")
    assert "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/png" in get(server, "/conformance").json()["conformsTo"]
    col = get(server, "/collections/air-grid").json()
    assert any(link["rel"].endswith("tilesets-map") for link in col["links"])


def test_pixels_take_their_cells_colour(server: str) -> None:  # noqa: F811
    r, c, pr, pc = pixel_of(116.005, 39.995, "12")  # the centre of cell (0, 0)
    resp = map_tile(server, "12", r, c, datetime="2025-01-01T00:00:00Z")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    first = decode(resp.content)
    assert tuple(first[pr, pc]) == GREEN  # pm25 0 at step 0: "good"
    r2, c2, pr2, pc2 = pixel_of(116.365, 39.995, "12")  # column 36: pm25 36, "moderate"
    assert tuple(decode(map_tile(server, "12", r2, c2, datetime="2025-01-01").content)[pr2, pc2]) == YELLOW
    r3, c3, pr3, pc3 = pixel_of(116.005, 40.003, "12")  # above the grid: transparent
    assert decode(map_tile(server, "12", r3, c3, datetime="2025-01-01").content)[pr3, pc3, 3] == 0
    later = decode(map_tile(server, "12", r, c, datetime="2025-01-02T12:00:00Z").content)
    assert tuple(later[pr, pc]) == DARK_RED  # step 1 (the last at or before): 10,000
    newest = decode(map_tile(server, "12", r, c).content)  # no datetime: the newest step
    assert tuple(newest[pr, pc]) == DARK_RED


def test_other_variable_default_style(server: str) -> None:  # noqa: F811
    r, c, pr, pc = pixel_of(116.005, 39.995, "12")
    img = decode(map_tile(server, "12", r, c, datetime="2025-01-01T00:00:00Z", **{"parameter-name": "no2"}).content)
    assert tuple(img[pr, pc]) == (68, 1, 84, 255)  # no2's lowest value at step 0: viridis's first stop


def test_bad_map_tile_requests(server: str) -> None:  # noqa: F811
    r, c, _, _ = pixel_of(116.2, 39.85, "12")
    assert map_tile(server, "12", r, c, datetime="2025-01-01/2025-01-02").status_code == 400
    assert map_tile(server, "12", r, c, datetime="2020-01-01T00:00:00Z").status_code == 400
    assert map_tile(server, "12", r, c, **{"parameter-name": "o3"}).status_code == 400
    assert map_tile(server, "12", r, c, colour="red").status_code == 400
    assert map_tile(server, "12", r, c, f="jpeg").status_code == 400
    assert map_tile(server, "12", 99999, c).status_code == 404
    assert map_tile(server, "99", 0, 0).status_code == 404
    assert get(server, "/collections/air-grid/map/tiles/NoSuchSet/0/0/0").status_code == 404
    assert get(server, "/collections/incidents/map/tiles").status_code == 404


@pytest.mark.parametrize("tms", ["WorldCRS84Quad", "CGCS2000Quad"])
def test_far_tiles_are_transparent_and_other_sets_work(server: str, tms: str) -> None:  # noqa: F811
    empty = decode(get(server, f"/collections/air-grid/map/tiles/{tms}/3/0/0").content)
    assert (empty[..., 3] == 0).all()
    low = decode(get(server, "/collections/air-grid/map/tiles/WebMercatorQuad/2/1/3").content)
    assert (low[..., 3] == 255).any()  # the grid is a few pixels of the z2 tile over east Asia
    assert rasterio  # the decoder
