"""Vector tiles: the MVT encoder (read back by mapbox-vector-tile and GDAL),
the feature cap, the snapshot-keyed cache, and the tile endpoints over HTTP
against a real ``geoplatform serve`` of the sample city."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import pytest
import shapely
from starlette.testclient import TestClient

import geoplatform as gp
from geoplatform.catalog import load_city_catalog, publish
from geoplatform.catalog.layers import LayerConfig
from geoplatform.crs import transform_xy
from geoplatform.ogc import mvt
from geoplatform.ogc import tiles as tiles_module
from geoplatform.ogc.app import create_app
from geoplatform.ogc.tms import load_tile_matrix_sets
from geoplatform.samples.city import build_sample_city
from geoplatform.settings import Settings
from geoplatform.storage.geoparquet import SAMPLES, fid_hash
from tests.ogc.test_server import ROOT, running_server

SETS = load_tile_matrix_sets()
#: served as an intranet: callers without credentials read every department's shared data
INTRANET = Settings(anonymous_roles={"*": "reader"})
XIAN = (108.95, 34.27)  # the middle of the sample city, lon/lat


def tile_at(tms_id: str, z: str, lon: float = XIAN[0], lat: float = XIAN[1]) -> tuple[int, int]:
    tms = SETS[tms_id]
    x, y = transform_xy([lon], [lat], "OGC:CRS84", tms.crs_info.id)
    rc = tms.tile_for_point(z, float(x[0]), float(y[0]))
    assert rc is not None
    return rc


def tile_bbox_crs84(z: str, row: int, col: int) -> tuple[float, ...]:
    tms = SETS["WebMercatorQuad"]
    b = tms.tile_bounds(z, row, col)
    x, y = transform_xy([b[0], b[2]], [b[1], b[3]], tms.crs_info.id, "OGC:CRS84")
    return float(x[0]), float(y[0]), float(x[1]), float(y[1])


def decode(body: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def to_tile(xy: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    return mvt.tile_points(np.asarray(xy, float).reshape(-1, 2), bounds)


# encoding ---------------------------------------------------------------------------

def test_points_and_properties_read_back() -> None:
    rng = np.random.default_rng(1)
    bounds = (1000.0, 2000.0, 1100.0, 2100.0)
    xy = rng.uniform([990, 1990], [1110, 2110], size=(500, 2))
    props = pa.table({"name": [f"n{i % 7}" if i % 5 else None for i in range(500)],
                      "v": rng.normal(size=500), "k": rng.integers(-5, 5, 500), "ok": rng.random(500) > 0.5})
    layer = mvt.TileLayer("pts", mvt.prepare(shapely.points(xy), bounds), props, np.arange(500, dtype=np.uint64))
    got = decode(mvt.encode_tile([layer]))["pts"]
    assert got["extent"] == 4096 and got["version"] == 2
    want_xy = np.rint(to_tile(xy, bounds))
    inside = ((want_xy >= -64) & (want_xy <= 4096 + 64)).all(axis=1)
    assert [f["id"] for f in got["features"]] == list(np.flatnonzero(inside))
    for f in got["features"]:
        i = f["id"]
        assert f["geometry"]["coordinates"] == list(want_xy[i])
        assert f["properties"].get("name") == props["name"][i].as_py()
        assert f["properties"]["v"] == pytest.approx(props["v"][i].as_py())
        assert f["properties"]["k"] == props["k"][i].as_py() and f["properties"]["ok"] == props["ok"][i].as_py()


@pytest.mark.parametrize("longest", [125, 126, 20_000])
def test_strings_of_every_length_read_back(longest: int) -> None:
    # header bytes change at 126 (the entry's length needs a second varint byte)
    rng = np.random.default_rng(longest)
    lengths = [0, 1, 2, 60, 124, 125, longest] + list(rng.integers(0, longest + 1, 200))
    text = [("路" * (n // 3)) + ("x" * (n % 3)) for n in lengths]  # three UTF-8 bytes a character
    n = len(text)
    bounds = (0.0, 0.0, 100.0, 100.0)
    geo = mvt.prepare(shapely.points(rng.uniform(1, 99, size=(n, 2))), bounds)
    layer = mvt.TileLayer("s", geo, pa.table({"t": text}), np.arange(n, dtype=np.uint64))
    got = decode(mvt.encode_tile([layer]))["s"]["features"]
    assert len(got) == n
    for f in got:
        assert f["properties"]["t"] == text[f["id"]]


def _shoelace(ring: list[list[float]]) -> float:
    a = np.asarray(ring, float)
    return float(np.sum(a[:-1, 0] * a[1:, 1] - a[1:, 0] * a[:-1, 1]) / 2)


def test_the_value_table_is_shared_by_keys_and_numbers_read_back_exactly() -> None:
    bounds = (0.0, 0.0, 100.0, 100.0)
    n = 300
    rng = np.random.default_rng(5)
    stamp = pa.array((1735689600 + np.arange(n)).astype("datetime64[s]").astype("datetime64[us]"),
                     pa.timestamp("us", tz="UTC"))
    single = rng.normal(size=n).astype(np.float32).astype(np.float64)  # float32 values held as doubles
    double = rng.normal(size=n)
    props = pa.table({"valid_from": stamp, "valid_to": stamp, "a": single, "b": double,
                      "i": np.arange(n), "j": np.arange(n)})
    geo = mvt.prepare(shapely.points(rng.uniform(1, 99, size=(n, 2))), bounds)
    body = mvt.encode_tile([mvt.TileLayer("pts", geo, props, np.arange(n, dtype=np.uint64))])
    # one entry per distinct value of a kind, whichever keys use it
    assert body.count(b"2025-01-01T00:00:07Z") == 1
    got = decode(body)["pts"]["features"]
    assert len(got) == n
    for f in got:
        p, i = f["properties"], f["id"]
        assert p["valid_from"] == p["valid_to"] == mvt.iso_seconds(stamp[i:i + 1])[0].as_py()
        assert p["a"] == single[i] and p["b"] == double[i]  # exact: float_value only where it is lossless
        assert p["i"] == p["j"] == i
    unshared = sum(len(mvt.encode_tile([mvt.TileLayer("pts", geo, props.select([c]), None)])) for c in props.column_names)
    assert len(body) < unshared


def test_polygons_are_clipped_and_wound_exterior_clockwise_on_screen() -> None:
    bounds = (0.0, 0.0, 100.0, 100.0)
    donut = shapely.from_wkt("POLYGON((-50 10, 60 10, 60 90, -50 90, -50 10),(10 30, 40 30, 40 60, 10 60, 10 30))")
    ccw_in_y_up = shapely.orient_polygons(donut)
    got = decode(mvt.encode_tile([mvt.TileLayer("p", mvt.prepare([ccw_in_y_up], bounds))]))["p"]["features"][0]
    outer, hole = got["geometry"]["coordinates"]
    assert _shoelace(outer) > 0 > _shoelace(hole)  # surveyor's formula in tile coordinates, y down
    xs = [p[0] for p in outer]
    assert min(xs) == -64 and max(xs) == round(60 * 40.96)  # clipped at the buffer


def test_tiny_polygons_are_drawn_as_their_boxes_on_whole_units() -> None:
    bounds = (0.0, 0.0, 4096.0, 4096.0)  # one CRS unit is one tile unit; tile y runs down from 4096
    polys = [shapely.box(10.2, 20.3, 13.7, 21.1), shapely.Polygon([(100.1, 100.1), (100.4, 100.1), (100.2, 100.3)]),
             shapely.box(-90, 50, -80, 60), shapely.box(-70, 50, -60, 60)]  # the third is beyond the buffer
    b = shapely.bounds(np.asarray(polys))
    geo = mvt.prepare_boxes(b, bounds)
    assert list(geo.keep) == [0, 1, 3]
    layer = mvt.TileLayer("p", mvt.concat([(geo, np.array([5, 6, 7, 8]))]), pa.table({"n": np.arange(9)}))
    got = decode(mvt.encode_tile([layer]))["p"]["features"]
    assert [f["properties"]["n"] for f in got] == [5, 6, 8]
    rings = [f["geometry"]["coordinates"][0] for f in got]
    assert all(_shoelace(r) > 0 for r in rings)  # exterior: clockwise on screen
    boxes = [(min(p[0] for p in r), min(p[1] for p in r), max(p[0] for p in r), max(p[1] for p in r)) for r in rings]
    # widened outward to whole units (tile y = 4096 - y); the sub-unit triangle is one unit a side
    assert boxes == [(10, 4096 - 22, 14, 4096 - 20), (100, 4096 - 101, 101, 4096 - 100), (-64, 4036, -60, 4046)]


def _mixed_polygons(n: int, seed: int) -> np.ndarray:
    """Rotated rectangles and triangles of every size from sub-unit slivers up, some across
    the tile edge or outside it, bow-ties, polygons with more corners or a hole, multipolygons."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cx, cy = rng.uniform(-0.2, 1.2, 2) * 1000
        w, h = 10 ** rng.uniform(-2.5, 2.2, 2)
        a = rng.uniform(0, np.pi)
        kind = i % 10
        if kind < 5:
            pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        elif kind < 7:
            pts = np.array([[-w, -h], [w, -h], [0, h]]) / 2
        elif kind == 7:
            pts = np.array([[-w, -h], [w, h], [w, -h], [-w, h]]) / 2  # bow-tie
        elif kind == 8:
            pts = np.column_stack([np.cos(np.linspace(0, 6, 9)) * w, np.sin(np.linspace(0, 6, 9)) * h])
        else:
            pts = None
        if pts is not None:
            rot = pts @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
            ring = rot + [cx, cy]
            out.append(shapely.Polygon(ring[::-1] if i % 3 == 0 else ring))
        elif i % 20 == 9:
            out.append(shapely.box(cx, cy, cx + w * 50, cy + h * 50).difference(
                shapely.box(cx + w * 10, cy + h * 10, cx + w * 20, cy + h * 20)))
        else:
            out.append(shapely.MultiPolygon([shapely.box(cx, cy, cx + w, cy + h),
                                             shapely.box(cx + 2 * w, cy, cx + 3 * w, cy + h)]))
    return np.array(out, dtype=object)


def test_the_wkb_path_draws_what_the_geometry_path_draws() -> None:
    bounds = (0.0, 0.0, 1000.0, 1000.0)
    geoms = _mixed_polygons(3000, seed=8)
    wkb = pa.array(shapely.to_wkb(geoms), pa.binary())

    def shapes(geo: mvt.TileGeometries) -> dict[int, Any]:
        body = mvt.encode_tile([mvt.TileLayer("p", geo, None, np.arange(len(geoms), dtype=np.uint64))])
        return {f["id"]: shapely.geometry.shape(f["geometry"]) for f in decode(body)["p"]["features"]}

    for tolerance in (0.0, 16.0):
        for convert in (None, lambda x, y: (x * 1.0, y * 1.0)):
            fast = mvt.prepare_wkb(wkb, bounds, tolerance=tolerance, convert=convert)
            slow = mvt.prepare(shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)), bounds, tolerance=tolerance,
                               convert=convert)
            a, b = shapes(fast), shapes(slow)
            assert len(a) > 1000
            # the same inside the tile; the numpy path does not cut at the buffer, so past the
            # tile edge it may hold more (and a polygon that only its bbox brings near)
            tile = shapely.box(0, 0, 4096, 4096)
            empty = shapely.Polygon()
            for i in a.keys() | b.keys():
                ga, gb = a.get(i, empty).intersection(tile), b.get(i, empty).intersection(tile)
                if ga.is_empty or gb.is_empty:
                    assert ga.area < 1 and gb.area < 1, i
                else:
                    # snapped before or after the cut: a few units apart at most (16 units a pixel)
                    assert ga.hausdorff_distance(gb) <= 2.5, i
            assert set(b) <= set(a)
    # the numpy path took most of them, and its rings come out exterior-positive (y down) like prepare's
    rows, geo = mvt._convex_quads(wkb, bounds, 4096, 64, None)
    assert len(rows) > 400  # of the 2,100 quads and triangles; the rest are sub-unit, outside or cut
    cmds = geo.commands
    for f in range(len(geo)):
        c = cmds[geo.offsets[f]:geo.offsets[f + 1]]
        z = c[[1, 2, 4, 5, 6, 7, 8, 9] if len(c) == 11 else [1, 2, 4, 5, 6, 7]].astype(np.int64)
        d = ((z >> 1) ^ -(z & 1)).reshape(-1, 2)
        ring = np.cumsum(d, axis=0)
        assert _shoelace([*ring.tolist(), ring[0].tolist()]) > 0


def test_a_convex_polygon_whose_bbox_alone_meets_the_tile_draws_nothing() -> None:
    # Diamonds and triangles around the buffered tile's corners: the bbox of each meets
    # the buffered tile, the shape only when its centre is close enough. Tiles query by
    # bbox alone, so the numpy path must tell the two apart (as GEOS's clip does).
    bounds = (0.0, 0.0, 4096.0, 4096.0)  # a map unit a tile unit; flipping y maps the
    lo, hi = -64.0, 4096.0 + 64.0       # buffered tile onto itself
    rng = np.random.default_rng(3)
    corners = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
    n = 2000
    centres = corners[rng.integers(0, 4, n)] + rng.uniform(-300, 300, size=(n, 2))
    r = rng.uniform(20, 250, n)
    tri = rng.random(n) < 0.3
    geoms = np.array([shapely.Polygon([(cx, cy - rr), (cx + rr, cy), (cx, cy + rr)] + ([] if t else [(cx - rr, cy)]))
                      for (cx, cy), rr, t in zip(centres, r, tri)], dtype=object)
    wkb = pa.array(shapely.to_wkb(geoms), pa.binary())
    rows, geo = mvt._convex_quads(wkb, bounds, 4096, 64, None)
    assert len(rows) == n  # every one is handled by the numpy path
    drawn = set(rows[geo.keep].tolist())
    box = shapely.box(lo, lo, hi, hi)
    gap = shapely.distance(geoms, box)
    overlap = shapely.area(shapely.intersection(geoms, box))
    bbox_meets = shapely.intersects(shapely.envelope(geoms), box)
    assert (bbox_meets & (gap > 1)).sum() > 40  # the case in question comes up
    assert (overlap > 4).sum() > 100
    for i in range(n):
        if gap[i] > 1:  # clearly apart (a unit of snapping either way)
            assert i not in drawn, i
        elif overlap[i] > 4:
            assert i in drawn, i


def test_concat_joins_parts_through_their_positions() -> None:
    bounds = (0.0, 0.0, 100.0, 100.0)
    big = mvt.prepare([shapely.box(10, 10, 60, 60)], bounds)
    small = mvt.prepare_boxes(np.array([[1.0, 1.0, 1.01, 1.01], [2.0, 2.0, 2.01, 2.01]]), bounds)
    geo = mvt.concat([(big, np.array([1])), (small, np.array([0, 2]))])
    assert list(geo.keep) == [1, 0, 2] and list(np.diff(geo.offsets)) == [int(np.diff(big.offsets)[0]), 11, 11]
    with pytest.raises(ValueError, match="MVT types"):
        mvt.concat([(big, np.array([0])), (mvt.prepare([shapely.Point(1, 1)], bounds), np.array([1]))])


def test_lines_keep_their_vertices_within_the_simplification_tolerance() -> None:
    bounds = (0.0, 0.0, 100.0, 100.0)
    t = np.linspace(0, 1, 400)
    wiggly = shapely.linestrings(100 * t, 50 + 20 * np.sin(t * 12))
    geo = mvt.prepare([wiggly], bounds, tolerance=16.0)
    got = decode(mvt.encode_tile([mvt.TileLayer("l", geo)]))["l"]["features"][0]["geometry"]["coordinates"]
    assert 3 < len(got) < 400
    back = shapely.linestrings(np.asarray(got, float))
    src = shapely.transform(wiggly, lambda c: to_tile(c, bounds))
    assert shapely.hausdorff_distance(back, src) <= 16.0 + 1.0


def test_gdal_reads_a_web_mercator_tile_where_its_features_are(tmp_path: Path) -> None:
    z = "15"
    row, col = tile_at("WebMercatorQuad", z)
    bounds = SETS["WebMercatorQuad"].tile_bounds(z, row, col)
    rng = np.random.default_rng(2)
    xy = rng.uniform(bounds[:2], bounds[2:], size=(200, 2))
    polys = shapely.buffer(shapely.points(xy[:20]), 15.0, quad_segs=4)
    tile = mvt.encode_tile([
        mvt.TileLayer("pts", mvt.prepare(shapely.points(xy), bounds), pa.table({"n": np.arange(200)})),
        mvt.TileLayer("polys", mvt.prepare(polys, bounds), pa.table({"n": np.arange(20)}))])
    path = tmp_path / z / str(col) / f"{row}.pbf"  # GDAL georeferences z/x/y paths as WebMercatorQuad
    path.parent.mkdir(parents=True)
    path.write_bytes(tile)
    assert {n for n, _ in pyogrio.list_layers(path)} == {"pts", "polys"}
    pixel = (bounds[2] - bounds[0]) / 4096
    pts = pyogrio.read_dataframe(path, layer="pts")
    assert pts.crs.to_epsg() == 3857 and len(pts) == 200
    order = pts["n"].to_numpy()
    assert np.abs(shapely.get_coordinates(pts.geometry.array) - xy[order]).max() <= pixel
    got = pyogrio.read_dataframe(path, layer="polys").sort_values("n")
    dist = shapely.hausdorff_distance(np.asarray(got.geometry.array), polys[got["n"].to_numpy()])
    assert (dist <= 17 * pixel).all()  # one tile pixel of simplification, half a unit of snapping


def test_timestamps_are_written_as_arrow_formats_them() -> None:
    rng = np.random.default_rng(3)
    secs = np.concatenate([rng.integers(-200 * 365 * 86400, 300 * 365 * 86400, 5000),
                           [0, 951782400, 951868799, 4102444800, 253402300799, -62135596800]])
    ts = pa.array(secs.astype("datetime64[s]").astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))
    ts = pc.if_else(pa.array(np.arange(len(secs)) % 7 != 3), ts, pa.scalar(None, ts.type))
    arrow = pc.strftime(pc.cast(ts, pa.timestamp("s", tz="UTC"), safe=False), format="%Y-%m-%dT%H:%M:%SZ")
    assert mvt.iso_seconds(ts).equals(arrow)
    # a fraction of a second is in the second it falls in, before 1970 too
    us = rng.integers(0, 1_000_000, len(secs))
    frac = pa.array(secs * 1_000_000 + us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    want = [t.replace(microsecond=0, tzinfo=None).isoformat() + "Z" for t in frac.to_pylist()]
    assert mvt.iso_seconds(frac).to_pylist() == want
    assert mvt.iso_seconds(pa.array([-500_000], pa.timestamp("us", tz="UTC"))).to_pylist() == ["1969-12-31T23:59:59Z"]
    far = pa.array([253402300800 * 1_000_000], pa.timestamp("us", tz="UTC"))  # year 10000: Arrow's own way
    assert mvt.iso_seconds(far).to_pylist() == pc.strftime(pc.cast(far, pa.timestamp("s", tz="UTC")),
                                                           format="%Y-%m-%dT%H:%M:%SZ").to_pylist()


def test_varints_match_the_scalar_encoding() -> None:
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.integers(0, 2**63, 300, dtype=np.uint64), np.array([0, 1, 127, 128, 2**64 - 1],
                                                                                  np.uint64)])
    assert mvt.varints(v) == b"".join(mvt._varint(int(n)) for n in v)
    # values that fit in 32 bits take another path: every byte count, each side of its limit
    edges = np.array([(1 << (7 * k)) + d for k in range(1, 5) for d in (-1, 0)] + [0, 2**32 - 1], np.uint64)
    small = np.concatenate([rng.integers(0, 2**32, 300, dtype=np.uint64), edges])
    assert mvt.varints(small) == b"".join(mvt._varint(int(n)) for n in small)
    assert mvt.varints(small % 128) == (small % 128).astype(np.uint8).tobytes()  # one byte each


def test_thinning_keeps_at_most_the_limit_one_per_cell_deterministically() -> None:
    bounds = (0.0, 0.0, 1.0, 1.0)
    rng = np.random.default_rng(5)
    geoms = shapely.points(rng.uniform(0, 1, size=(30_000, 2)))
    key = rng.permutation(30_000)
    keep, grid = mvt.thin_by_grid(geoms, bounds, 1000, key)
    assert len(keep) <= 1000 and grid in (16, 32)
    cells = np.floor(to_tile(shapely.get_coordinates(geoms[keep]), bounds) / (4096 / grid))
    assert len(np.unique(cells, axis=0)) == len(keep)  # one per cell
    again, _ = mvt.thin_by_grid(geoms[::-1], bounds, 1000, key[::-1])
    assert set(key[keep]) == set(key[::-1][again])  # the same features, whatever the order


# the cache --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def city_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("tilecity")
    with gp.open_cube(work / "store") as cube:
        publish(cube, load_city_catalog(ROOT / "catalogs" / "sample_city.yaml"), build_sample_city(work / "src"),
                progress=False)
    return work / "store"


def test_a_commit_invalidates_only_the_tiles_over_what_it_changed(city_store: Path) -> None:
    client = TestClient(create_app(INTRANET, store=city_store))
    z, (row, col) = "15", tile_at("WebMercatorQuad", "15")
    grid = [(row + dr, col + dc) for dr in range(-2, 3) for dc in range(-2, 3)]

    def fetch() -> dict[tuple[int, int], httpx.Response]:
        return {rc: client.get(f"/collections/buildings/tiles/WebMercatorQuad/{z}/{rc[0]}/{rc[1]}") for rc in grid}

    first = fetch()
    assert {r.headers["geoplatform-tile-cache"] for r in first.values()} == {"miss"}
    assert {r.headers["geoplatform-tile-cache"] for r in fetch().values()} == {"hit"}
    # Another writer ends one building in the middle tile.
    mid = decode(first[(row, col)].content)["buildings"]["features"]
    fid = next(f["properties"]["fid"] for f in mid if "fid" in f["properties"])
    with gp.open_cube(city_store) as cube:
        gone = cube.get("buildings", fid).geometry.iat[0]
        cube.delete_features("buildings", [fid])
    after = fetch()
    tms = SETS["WebMercatorQuad"]
    x, y = transform_xy(*shapely.get_coordinates(gone).T, "EPSG:4490", "EPSG:3857")
    gb = (x.min(), y.min(), x.max(), y.max())
    for (r, c), resp in after.items():
        b = tms.tile_bounds(z, r, c)
        pad = (b[2] - b[0]) * 64 / 4096
        over = gb[2] >= b[0] - pad and gb[0] <= b[2] + pad and gb[3] >= b[1] - pad and gb[1] <= b[3] + pad
        assert resp.headers["geoplatform-tile-cache"] == ("miss" if over else "hit"), (r, c)
        if not over:
            assert resp.content == first[(r, c)].content
    ids = {f["properties"].get("fid") for f in decode(after[(row, col)].content)["buildings"]["features"]}
    assert fid not in ids and len(ids) == len(mid) - 1
    assert sum(r.headers["geoplatform-tile-cache"] == "hit" for r in after.values()) >= 16
    # The snapshot before the edit is still served, and still holds the building.
    with gp.open_cube(city_store) as cube:
        before = cube.snapshots("buildings")[-2].id
    old = client.get(f"/collections/buildings/tiles/WebMercatorQuad/{z}/{row}/{col}", params={"as-of": before})
    assert fid in {f["properties"].get("fid") for f in decode(old.content)["buildings"]["features"]}
    assert "immutable" in old.headers["cache-control"]


def test_the_storage_crs_pre_test_of_tiny_polygons_changes_no_tile(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Polygons within the simplification tolerance are drawn as their boxes; only those
    # small in the storage CRS too are taken to the tile's CRS to be tested. The tiles
    # must be the bytes they are when every polygon is tested. Rotated squares and
    # triangles from 1 m to 2 km across (a box draws unlike them), in CGCS2000.
    rng = np.random.default_rng(12)
    n = 4000
    lon = XIAN[0] + rng.normal(0, 0.05, n)
    lat = XIAN[1] + rng.normal(0, 0.05, n)
    r = 10 ** rng.uniform(0, 3.3, n) / 111_000  # degrees, about
    a = rng.uniform(0, np.pi, n)
    polys = []
    for i in range(n):
        k = 3 if i % 2 else 4
        ang = a[i] + np.arange(k) * 2 * np.pi / k
        polys.append(shapely.Polygon(np.column_stack([lon[i] + r[i] * np.cos(ang), lat[i] + r[i] * np.sin(ang)])))
    frame = gpd.GeoDataFrame({"pid": np.arange(n), "t": pd.Timestamp("2025-01-01", tz="UTC")},
                             geometry=polys, crs="EPSG:4490")
    with gp.open_cube(tmp_path / "store") as cube:
        cube.create_dataset({"name": "shapes", "geometry_type": "Polygon", "fid": "pid", "valid_from": "t",
                             "instant": True})
        cube.ingest("shapes", frame)
        layer = LayerConfig(id="shapes", dataset="shapes")
        svc = tiles_module.TileService.create(tiles_module.TileSettings(cache_bytes=0))
        tms = SETS["WebMercatorQuad"]
        wanted = []
        for z in ("5", "8", "10", "12", "13", "14", "15", "16"):  # tiles at shapes
            wanted += sorted({(z, *tile_at("WebMercatorQuad", z, lon[i], lat[i])) for i in range(0, n, n // 6)})

        def render() -> list[bytes]:
            return [tiles_module.tile(svc, cube, [layer], tms, z, str(row), str(col), {})[2]
                    for z, row, col in wanted]

        with_pre_test = render()
        assert sum(len(b) > 0 for b in with_pre_test) >= 24
        monkeypatch.setattr(tiles_module, "_TINY_MARGINS", ())
        assert render() == with_pre_test


def test_the_feature_cap_thins_and_says_so(city_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOPLATFORM_TILES_MAX_FEATURES", "500")
    monkeypatch.setenv("GEOPLATFORM_TILES_SAMPLE_MIN_FEATURES", "500")
    client = TestClient(create_app(INTRANET, store=city_store))
    meta = client.get("/collections/air-quality/tiles/WebMercatorQuad").json()
    assert meta["layers"][0]["featureLimit"]["maxFeaturesPerTile"] == 500
    z = meta["tileMatrixSetLimits"][0]["tileMatrix"]
    row, col = tile_at("WebMercatorQuad", z)
    r = client.get(f"/collections/air-quality/tiles/WebMercatorQuad/{z}/{row}/{col}")
    assert r.status_code == 200
    thinned = r.headers["geoplatform-tile-thinned"]
    m = re.fullmatch(r"air-quality matched=(~?)(\d+) kept=(\d+) grid=(\d+)(?: sample=1/(\d+))?", thinned)
    assert m is not None, thinned
    feats = decode(r.content)["air-quality"]["features"]
    matched, kept = int(m.group(2)), len(feats)
    assert matched > 500 >= kept > 0 and int(m.group(3)) == kept
    # air quality keeps a space copy: a tile this full is made from a feature-id sample
    k = int(m.group(5))
    assert m.group(1) == "~" and k in SAMPLES
    assert (fid_hash(pa.array([f["id"] for f in feats], pa.int64())) % np.uint64(k) == 0).all()
    full = client.get(f"/collections/air-quality/items?bbox={','.join(map(str, tile_bbox_crs84(z, row, col)))}"
                      "&limit=1").json()["numberMatched"]
    assert full / 3 < matched < full * 3  # the estimate is of the right size
    again = client.get(f"/collections/air-quality/tiles/WebMercatorQuad/{z}/{row}/{col}?datetime=2025-01-01T00:00:00Z")
    assert "geoplatform-tile-thinned" not in again.headers  # a small query is complete


# over HTTP ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("tileserver")
    with running_server(work) as url:
        yield url, work / "store"


def _fids(body: bytes, layer: str) -> set[Any]:
    feats = decode(body).get(layer, {"features": []})["features"]
    return {f["properties"].get("fid", f.get("id")) for f in feats}


@pytest.mark.parametrize("tms_id,z", [("WebMercatorQuad", "14"), ("WorldCRS84Quad", "13"), ("CGCS2000Quad", "13")])
@pytest.mark.parametrize("params", [{}, {"datetime": "2025-03-01T00:00:00Z/2025-04-01T00:00:00Z"},
                                    {"filter": "severity >= 4"},
                                    {"subset": 'datetime("2025-03-01T00:00:00Z":*)', "filter": "type = 'fire'"}])
def test_tiles_hold_what_a_brute_force_query_finds(served: tuple[str, Path], tms_id: str, z: str,
                                                   params: dict[str, str]) -> None:
    url, store = served
    tms = SETS[tms_id]
    row, col = tile_at(tms_id, z)
    r = httpx.get(f"{url}/collections/incidents/tiles/{tms_id}/{z}/{row}/{col}", params=params)
    b = tms.tile_bounds(z, row, col)
    pad = (b[2] - b[0]) * 64 / 4096, (b[3] - b[1]) * 64 / 4096
    q: dict[str, Any] = {"bbox_crs": tms.crs_info.id, "crs": tms.crs_info.id}
    if "datetime" in params:
        q["datetime"] = params["datetime"]
    if "subset" in params:
        q["datetime"] = "2025-03-01T00:00:00Z/.."
    if "filter" in params:
        q["filter"] = params["filter"]
    with gp.open_cube(store) as cube:
        inner = cube.query("incidents", bbox=b, **q)
        outer = cube.query("incidents", bbox=(b[0] - pad[0], b[1] - pad[1], b[2] + pad[0], b[3] + pad[1]), **q)
    assert len(inner) > 0
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    got = decode(r.content)["incidents"]["features"]
    fids = {f["properties"]["fid"] for f in got}
    assert set(inner["fid"]) <= fids <= set(outer["fid"])
    where = dict(zip(outer["fid"], shapely.get_coordinates(outer.geometry.array)))
    for f in got:  # every point where it is, to the tile unit
        assert np.abs(np.asarray(f["geometry"]["coordinates"]) - to_tile(where[f["properties"]["fid"]], b)[0]).max() <= 0.5


def test_gdal_reads_served_tiles_of_several_collections(served: tuple[str, Path], tmp_path: Path) -> None:
    url, store = served
    z = "15"
    row, col = tile_at("WebMercatorQuad", z)
    r = httpx.get(f"{url}/tiles/WebMercatorQuad/{z}/{row}/{col}", params={"collections": "buildings,roads,incidents"})
    assert r.status_code == 200
    path = tmp_path / z / str(col) / f"{row}.pbf"
    path.parent.mkdir(parents=True)
    path.write_bytes(r.content)
    assert [n for n, _ in pyogrio.list_layers(path)] == ["buildings", "roads", "incidents"]  # in the order asked
    got = pyogrio.read_dataframe(path, layer="buildings")
    b = SETS["WebMercatorQuad"].tile_bounds(z, row, col)
    with gp.open_cube(store) as cube:
        want = cube.query("buildings", bbox=b, bbox_crs="EPSG:3857", crs="EPSG:3857")
    assert set(want["fid"]) <= set(got["fid"])
    pixel = (b[2] - b[0]) / 256
    src = dict(zip(want["fid"], want.geometry.array))
    box = shapely.box(*b)
    for fid, geom in zip(got["fid"], got.geometry.array):
        if fid in src:  # within a tile pixel of the source, inside the tile
            assert shapely.hausdorff_distance(geom.intersection(box), src[fid].intersection(box)) <= 1.5 * pixel
        assert isinstance(fid, str)
    only_roads = httpx.get(f"{url}/tiles/WebMercatorQuad/{z}/{row}/{col}", params={"collections": "roads"})
    assert set(decode(only_roads.content)) == {"roads"}


def test_gdal_ogcapi_driver_reads_every_feature_from_tiles(served: tuple[str, Path]) -> None:
    """GDAL's OGCAPI driver picks the WorldCRS84Quad tileset (a layer per level)
    and reads the tiles across the limits, 204s included."""
    url, store = served
    df = pyogrio.read_dataframe(f"OGCAPI:{url}/collections/shelters", layer="Zoom level 14", API="TILES")
    with gp.open_cube(store) as cube:
        want = cube.query("shelters", crs="OGC:CRS84")
    assert df.crs.to_string() == "OGC:CRS84" and sorted(df["fid"]) == sorted(want["fid"])
    pixel = 0.703125 / 2**14 / 16  # one MVT unit at level 14
    got = dict(zip(df["fid"], shapely.get_coordinates(df.geometry.array)))
    for fid, xy in zip(want["fid"], shapely.get_coordinates(want.geometry.array)):
        assert np.abs(got[fid] - xy).max() <= pixel


def test_an_empty_tile_is_204_and_says_nothing_is_below(served: tuple[str, Path]) -> None:
    url, _ = served
    limits = httpx.get(f"{url}/collections/incidents/tiles/WebMercatorQuad").json()["tileMatrixSetLimits"]
    z = next(lim for lim in limits if lim["tileMatrix"] == "14")
    r = httpx.get(f"{url}/collections/incidents/tiles/WebMercatorQuad/14/{z['minTileRow']}/{z['minTileCol']}",
                  params={"datetime": "1990-01-01T00:00:00Z"})
    assert r.status_code == 204 and r.content == b"" and r.headers["oatiles-hint"] == "empty"


def test_etag_and_conditional_requests(served: tuple[str, Path]) -> None:
    url, _ = served
    row, col = tile_at("WebMercatorQuad", "14")
    u = f"{url}/collections/roads/tiles/WebMercatorQuad/14/{row}/{col}"
    r = httpx.get(u)
    assert r.headers["etag"] and r.headers["cache-control"] == "no-cache"
    assert httpx.get(u, headers={"If-None-Match": r.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path,status", [
    ("/collections/incidents/tiles/NoSuchTMS", 404),
    ("/collections/incidents/tiles/NoSuchTMS/1/0/0", 404),
    ("/collections/nope/tiles", 404),
    ("/collections/nope/tiles/WebMercatorQuad/14/0/0", 404),
    ("/collections/incidents/tiles/WebMercatorQuad/25/0/0", 404),  # no such tile matrix
    ("/collections/incidents/tiles/WebMercatorQuad/3/0/0", 404),  # below the layer's zoom range
    ("/collections/incidents/tiles/WebMercatorQuad/14/0/0", 404),  # outside tileMatrixSetLimits
    ("/collections/incidents/tiles/WebMercatorQuad/1/9/9", 404),  # outside the matrix
    ("/collections/incidents/tiles/WebMercatorQuad/14/x/0", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/-1/0", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/99999999999/0", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/{row}/{col}?filter=severity%20%3E", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/{row}/{col}?datetime=yesterday", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/{row}/{col}?subset=lat(1:2)", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/{row}/{col}?as-of=999999999", 404),
    ("/collections/incidents/tiles/WebMercatorQuad/14/{row}/{col}?colour=red", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/{row}/{col}?f=png", 400),
    ("/collections/incidents/tiles/WebMercatorQuad/14/{row}/{col}?collections=roads", 400),
    ("/collections/incidents/tiles/WorldCRS84Quad?f=tilejson", 400),
    ("/tiles/WebMercatorQuad/14/{row}/{col}?collections=nope", 400),
    ("/tiles?limit=3", 400),
    ("/tileMatrixSets/Nope", 404),
    ("/tileMatrixSets?x=1", 400),
])
def test_errors_are_clean(served: tuple[str, Path], path: str, status: int) -> None:
    url, _ = served
    row, col = tile_at("WebMercatorQuad", "14")
    r = httpx.get(f"{url}{path.replace('{row}', str(row)).replace('{col}', str(col))}")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json") and r.json()["description"]


def test_tilejson_for_web_mercator(served: tuple[str, Path]) -> None:
    url, _ = served
    tj = httpx.get(f"{url}/tiles/WebMercatorQuad", params={"f": "tilejson", "collections": "roads,incidents",
                                                           "datetime": "2025-03-01T00:00:00Z/.."}).json()
    assert tj["tilejson"] == "3.0.0" and [v["id"] for v in tj["vector_layers"]] == ["roads", "incidents"]
    assert tj["tiles"][0].endswith("/tiles/WebMercatorQuad/{z}/{y}/{x}?collections=roads%2Cincidents&"
                                   "datetime=2025-03-01T00%3A00%3A00Z%2F..")
    assert tj["vector_layers"][1]["fields"]["severity"] == "Number"
    lo, hi = tj["bounds"][:2], tj["bounds"][2:]
    assert 108.5 < lo[0] < hi[0] < 109.5 and 34.0 < lo[1] < hi[1] < 34.6
    x = tj["tiles"][0].replace("{z}", "14").replace("{y}", str(tile_at("WebMercatorQuad", "14")[0]))
    assert httpx.get(x.replace("{x}", str(tile_at("WebMercatorQuad", "14")[1]))).status_code == 200


def test_the_point_path_encodes_as_the_geometry_path() -> None:
    """Point layers skip geometry objects (prepare_points, thin_boxes); the tile is the same."""
    bounds = (0.0, 0.0, 1000.0, 1000.0)
    rng = np.random.default_rng(9)
    xy = np.round(rng.uniform(-20, 1020, size=(5000, 2)), 1)
    geoms = shapely.points(xy)
    a, b = mvt.prepare(geoms, bounds), mvt.prepare_points(xy, bounds)
    assert np.array_equal(a.keep, b.keep) and np.array_equal(a.commands, b.commands)
    key = rng.permutation(5000)
    ka, ga = mvt.thin_by_grid(geoms, bounds, 300, key)
    kb, gb = mvt.thin_boxes(np.column_stack([xy, xy]), bounds, 300, key)
    assert ga == gb and np.array_equal(ka, kb)
