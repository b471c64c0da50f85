"""OGC API - Tiles Part 1 (and the TMS 2.0 documents it serves), one test per
abstract test id (Annex A of 20-057), over HTTP against ``geoplatform serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import mapbox_vector_tile
import pytest
from openapi_spec_validator import validate

from tests.ogc.test_server import running_server
from tests.ogc.test_tiles import SETS, tile_at

CONF = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("tilesconf")) as u:
        yield u


def get(url: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, timeout=60)


def centre_tile(url: str, cid: str = "incidents", tms: str = "WebMercatorQuad", z: str = "14") -> str:
    row, col = tile_at(tms, z)
    return f"/collections/{cid}/tiles/{tms}/{z}/{row}/{col}"


# core ----------------------------------------------------------------------------------

def test_conf_core_conformance_success(url: str) -> None:
    conf = get(url, "/conformance").json()["conformsTo"]
    for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "dataset-tilesets", "collections-selection",
              "datetime", "mvt", "oas30"):
        assert CONF + c in conf


def test_conf_core_tc_op(url: str) -> None:
    meta = get(url, "/collections/incidents/tiles/WebMercatorQuad").json()
    item = next(link for link in meta["links"] if link["rel"] == "item")
    row, col = tile_at("WebMercatorQuad", "14")
    href = item["href"].replace("{tileMatrix}", "14").replace("{tileRow}", str(row)).replace("{tileCol}", str(col))
    assert httpx.get(href).status_code == 200


@pytest.mark.parametrize("name,kind", [("tileMatrix", "string"), ("tileRow", "integer"), ("tileCol", "integer")])
def test_conf_core_tc_tilematrix_tilerow_tilecol_definition(url: str, name: str, kind: str) -> None:
    doc = get(url, "/api").json()
    for path in ("/collections/incidents/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
                 "/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"):
        p = {q["name"]: q for q in doc["paths"][path]["get"]["parameters"]}[name]
        assert p["in"] == "path" and p["required"] and p["schema"]["type"] == kind


@pytest.mark.parametrize("tms_id,z", [("WebMercatorQuad", "14"), ("WorldCRS84Quad", "13"), ("CGCS2000Quad", "13")])
def test_conf_core_tc_success(url: str, tms_id: str, z: str) -> None:
    r = get(url, centre_tile(url, "incidents", tms_id, z))
    assert r.status_code == 200 and r.headers["content-type"] == MVT
    layer = mapbox_vector_tile.decode(r.content)["incidents"]
    assert layer["features"] and layer["extent"] == 4096


def test_conf_core_tc_error(url: str) -> None:
    assert get(url, "/collections/incidents/tiles/WebMercatorQuad/14/0/0").status_code in (400, 404)
    assert get(url, "/collections/incidents/tiles/WebMercatorQuad/30/0/0").status_code in (400, 404)
    empty = get(url, centre_tile(url), datetime="1990-01-01T00:00:00Z")
    assert empty.status_code == 204 and empty.content == b""


# tileset, tilesets list, TMS --------------------------------------------------------------

@pytest.mark.parametrize("path", ["/collections/roads/tiles/WebMercatorQuad", "/tiles/CGCS2000Quad"])
def test_conf_tileset_description(url: str, path: str) -> None:
    r = get(url, path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["dataType"] == "vector" and doc["crs"] and doc["layers"] and doc["tileMatrixSetLimits"]
    rels = {link["rel"]: link for link in doc["links"]}
    scheme = httpx.get(rels[REL + "tiling-scheme"]["href"]).json()
    assert scheme["id"] == path.rsplit("/", 1)[1] and scheme["tileMatrices"]
    item = rels["item"]
    assert item["templated"] is True and item["type"] == MVT
    assert all(v in item["href"] for v in ("{tileMatrix}", "{tileRow}", "{tileCol}"))
    if path.endswith("WebMercatorQuad"):
        assert doc["tileMatrixSetURI"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    for lim in doc["tileMatrixSetLimits"]:
        m = next(t for t in scheme["tileMatrices"] if t["id"] == lim["tileMatrix"])
        assert 0 <= lim["minTileRow"] <= lim["maxTileRow"] < m["matrixHeight"]
        assert 0 <= lim["minTileCol"] <= lim["maxTileCol"] < m["matrixWidth"]


@pytest.mark.parametrize("path", ["/collections/roads/tiles", "/tiles"])
def test_conf_tilesets_list_tileset_links(url: str, path: str) -> None:
    doc = get(url, path).json()
    assert {t["links"][0]["href"].rsplit("/", 1)[1] for t in doc["tilesets"]} == set(SETS)
    for t in doc["tilesets"]:
        rels = {link["rel"] for link in t["links"]}
        assert {"self", REL + "tiling-scheme"} <= rels and t["dataType"] == "vector" and t["crs"]
        self_href = next(link["href"] for link in t["links"] if link["rel"] == "self")
        assert self_href.startswith(f"{url}{path}/")
        assert httpx.get(self_href).status_code == 200


def test_tms_tilematrixset_documents(url: str) -> None:
    listed = get(url, "/tileMatrixSets").json()["tileMatrixSets"]
    assert {t["id"] for t in listed} == set(SETS)
    for t in listed:
        doc = httpx.get(t["links"][0]["href"]).json()
        assert doc["id"] == t["id"] and doc["crs"] == t["crs"] and len(doc["tileMatrices"]) >= 24


# geodata and dataset tilesets, collections selection ------------------------------------------

def test_conf_geodata_tilesets_desc_links_and_operation(url: str) -> None:
    col = get(url, "/collections/roads").json()
    link = next(link for link in col["links"] if link["rel"] == REL + "tilesets-vector")
    assert link["href"] == f"{url}/collections/roads/tiles" and httpx.get(link["href"]).status_code == 200


def test_conf_dataset_tilesets_landingpage_and_operation(url: str) -> None:
    links = get(url, "/").json()["links"]
    link = next(link for link in links if link["rel"] == REL + "tilesets-vector")
    assert link["href"] == f"{url}/tiles" and httpx.get(link["href"]).status_code == 200


def test_conf_collections_selection_query_collections_and_response(url: str) -> None:
    meta = get(url, "/tiles/WebMercatorQuad", collections="roads,incidents").json()
    assert [layer["id"] for layer in meta["layers"]] == ["roads", "incidents"]
    row, col = tile_at("WebMercatorQuad", "14")
    for sel in ("roads,incidents", "incidents,roads", f"{url}/collections/incidents"):
        r = get(url, f"/tiles/WebMercatorQuad/14/{row}/{col}", collections=sel)
        want = [s.rsplit("/", 1)[-1] for s in sel.split(",")]
        assert list(mapbox_vector_tile.decode(r.content)) == want  # first named is first (bottom)


# datetime ----------------------------------------------------------------------------------------

def test_conf_datetime_rc_datetime_definition_and_response(url: str) -> None:
    p = {q["name"]: q for q in get(url, "/api").json()["paths"][
        "/collections/incidents/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"]["get"]["parameters"]}
    assert p["datetime"]["schema"] == {"type": "string"} and p["datetime"]["style"] == "form"
    every = mapbox_vector_tile.decode(get(url, centre_tile(url)).content)["incidents"]["features"]
    march = get(url, centre_tile(url), datetime="2025-03-01T00:00:00Z/2025-03-31T23:59:59Z")
    feats = mapbox_vector_tile.decode(march.content)["incidents"]["features"]
    assert 0 < len(feats) < len(every)
    assert all("2025-03-01" <= f["properties"]["valid_from"][:10] <= "2025-03-31" for f in feats)
    opened = get(url, centre_tile(url), datetime="../2025-03-31T23:59:59Z")
    assert opened.status_code == 200


def test_conf_datetime_axis(url: str) -> None:
    by_subset = get(url, centre_tile(url), subset='datetime("2025-03-01T00:00:00Z":"2025-03-31T23:59:59Z")')
    by_datetime = get(url, centre_tile(url), datetime="2025-03-01T00:00:00Z/2025-03-31T23:59:59Z")
    assert by_subset.status_code == 200 and by_subset.content == by_datetime.content
    assert get(url, centre_tile(url), subset="lat(30:40)").status_code == 400


# mvt, oas30 ----------------------------------------------------------------------------------------

def test_conf_mvt_content(url: str) -> None:
    r = get(url, centre_tile(url, "buildings", "WebMercatorQuad", "15"))
    tile = mapbox_vector_tile.decode(r.content, default_options={"y_coord_down": True})
    assert list(tile) == ["buildings"]
    for f in tile["buildings"]["features"]:
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon") and f["type"] == "Feature"


def test_conf_oas30_completeness_and_operation_ids(url: str) -> None:
    doc = get(url, "/api").json()
    validate(doc)
    ops = {op["operationId"] for p in doc["paths"].values() for op in p.values() if "operationId" in op}
    for suffix in (".dataset.vector.getTileSetsList", ".dataset.vector.getTileSet", ".dataset.vector.getTile",
                   ".collection.vector.getTileSetsList", ".collection.vector.getTileSet",
                   ".collection.vector.getTile"):
        assert any(o.endswith(suffix) for o in ops), suffix
    assert {"/tileMatrixSets", "/tileMatrixSets/{tileMatrixSetId}", "/tiles/{tileMatrixSetId}"} <= set(doc["paths"])


def test_every_tiled_collection_has_a_tileset(url: str, tmp_path: Path) -> None:
    cols = [c["id"] for c in get(url, "/collections").json()["collections"]
            if any(link["rel"].endswith("tilesets-vector") for link in c["links"])]
    assert len(cols) >= 12  # every layer the caller sees (not the restricted population grid; the EDR stations have no vector tiles)
    for cid in cols:
        assert get(url, f"/collections/{cid}/tiles/WebMercatorQuad").status_code == 200, cid
