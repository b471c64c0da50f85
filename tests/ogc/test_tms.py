"""Tile matrix sets: the declared documents, the loader's errors and the tile math."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoplatform.errors import CatalogError
from geoplatform.ogc.tms import TMS_DIR, TileMatrixSet, load_tile_matrix_sets, parse_tile_matrix_set

SETS = load_tile_matrix_sets()


def test_the_three_sets_are_declared() -> None:
    assert set(SETS) == {"WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"}
    assert SETS["CGCS2000Quad"].crs_info.id == "EPSG:4490"
    assert SETS["CGCS2000Quad"].crs_info.axis_order_lat_first


@pytest.mark.parametrize("tms_id", sorted(SETS))
def test_level_zero_covers_the_crs(tms_id: str) -> None:
    tms = SETS[tms_id]
    b = tms.matrix_bounds("0")
    if tms_id == "WebMercatorQuad":
        assert b == pytest.approx((-20037508.3427892, -20037508.3427892, 20037508.3427892, 20037508.3427892))
    else:
        assert b == pytest.approx((-180, -90, 180, 90))


def test_cgcs2000_origin_is_written_latitude_first_and_read_east_first() -> None:
    doc = json.loads((TMS_DIR / "CGCS2000Quad.json").read_text())
    assert doc["orderedAxes"] == ["Lat", "Lon"] and doc["tileMatrices"][0]["pointOfOrigin"] == [90, -180]
    cg, crs84 = SETS["CGCS2000Quad"], SETS["WorldCRS84Quad"]
    for z, row, col in [("0", 0, 0), ("5", 3, 40), ("13", 2538, 13151)]:
        assert cg.tile_bounds(z, row, col) == crs84.tile_bounds(z, row, col)
    # Xi'an, 108.95E 34.27N: a tile in the northern half, east of Greenwich.
    row, col = cg.tile_for_point("1", 108.95, 34.27)
    assert (row, col) == (0, 3)


def test_bottom_left_origin_numbers_rows_northwards() -> None:
    doc = json.loads((TMS_DIR / "WorldCRS84Quad.json").read_text())
    doc["id"] = "BottomUp"
    for m in doc["tileMatrices"]:
        m["cornerOfOrigin"], m["pointOfOrigin"] = "bottomLeft", [-180, -90]
    tms = parse_tile_matrix_set(doc, "BottomUp.json")
    assert tms.tile_bounds("0", 0, 0) == (-180, -90, 0, 90)
    assert tms.tile_for_point("1", 10.0, -80.0) == (0, 2)
    assert tms.tile_for_point("1", 10.0, 80.0) == (1, 2)


@pytest.mark.parametrize("change,field", [
    (lambda d: d["tileMatrices"][3].update(cellSize=-1), "tileMatrices.3.cellSize"),
    (lambda d: d.update(crs="http://www.opengis.net/def/crs/EPSG/0/999999"), "crs"),
    (lambda d: d["tileMatrices"][0].pop("matrixWidth"), "tileMatrices.0.matrixWidth"),
    (lambda d: d.update(orderedAxes=["Lon", "Lat"]), "orderedAxes"),
    (lambda d: d["tileMatrices"][1].update(id="0"), "identifiers repeat"),
])
def test_a_broken_document_names_the_file_and_the_field(change, field, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((TMS_DIR / "CGCS2000Quad.json").read_text())
    change(doc)
    (tmp_path / "CGCS2000Quad.json").write_text(json.dumps(doc))
    with pytest.raises(CatalogError) as err:
        load_tile_matrix_sets(tmp_path)
    assert "CGCS2000Quad.json" in str(err.value) and field in str(err.value)


def test_the_file_name_is_the_id(tmp_path: Path) -> None:
    (tmp_path / "Other.json").write_text((TMS_DIR / "WebMercatorQuad.json").read_text())
    with pytest.raises(CatalogError, match="Other.json: id"):
        load_tile_matrix_sets(tmp_path)


def _tile(tms: TileMatrixSet) -> st.SearchStrategy[tuple[str, int, int]]:
    def pick(z: int) -> st.SearchStrategy[tuple[str, int, int]]:
        m = tms.tile_matrices[z]
        return st.tuples(st.just(m.id), st.integers(0, m.matrix_height - 1), st.integers(0, m.matrix_width - 1))
    return st.integers(0, len(tms.tile_matrices) - 1).flatmap(pick)


@pytest.mark.parametrize("tms_id", sorted(SETS))
@settings(max_examples=200, deadline=None)
@given(data=st.data(), fx=st.floats(0.001, 0.999), fy=st.floats(0.001, 0.999))
def test_tile_bounds_and_tile_for_point_round_trip(tms_id: str, data: st.DataObject, fx: float, fy: float) -> None:
    tms = SETS[tms_id]
    z, row, col = data.draw(_tile(tms))
    x0, y0, x1, y1 = tms.tile_bounds(z, row, col)
    assert x1 > x0 and y1 > y0
    assert tms.tile_for_point(z, x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)) == (row, col)
    # A box inside the tile is in that tile alone; the tile's own box, shrunk a little, too.
    assert tms.tile_range(z, (x0 + fx * (x1 - x0) * 0.5, y0 + fy * (y1 - y0) * 0.5,
                              x1 - (x1 - x0) * 0.01, y1 - (y1 - y0) * 0.01)) == (row, row, col, col)


@pytest.mark.parametrize("tms_id", sorted(SETS))
@settings(max_examples=100, deadline=None)
@given(data=st.data(), w=st.integers(1, 5), h=st.integers(1, 5))
def test_tile_range_of_a_block_of_tiles_is_that_block(tms_id: str, data: st.DataObject, w: int, h: int) -> None:
    tms = SETS[tms_id]
    z, row, col = data.draw(_tile(tms))
    m = tms.matrix(z)
    r1, c1 = min(row + h - 1, m.matrix_height - 1), min(col + w - 1, m.matrix_width - 1)
    a, b = tms.tile_bounds(z, row, col), tms.tile_bounds(z, r1, c1)
    box = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    span = (box[2] - box[0]) * 1e-9, (box[3] - box[1]) * 1e-9
    inner = (box[0] + span[0], box[1] + span[1], box[2] - span[0], box[3] - span[1])
    assert tms.tile_range(z, inner) == (row, r1, col, c1)


def test_outside_the_matrix() -> None:
    tms = SETS["WorldCRS84Quad"]
    assert tms.tile_for_point("0", 200.0, 0.0) is None
    assert tms.tile_range("0", (190.0, 0.0, 200.0, 10.0)) is None
    assert not tms.contains("0", 0, 2) and tms.contains("0", 0, 1)
    with pytest.raises(KeyError):
        tms.tile_bounds("99", 0, 0)
