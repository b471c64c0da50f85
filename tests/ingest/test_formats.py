"""Every input format ingests and round-trips; CRS and time normalisation;
versioning on re-ingest; schema inference; invalid-geometry policies; progress."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from shapely.geometry import Point, Polygon, mapping

from geoplatform import Cube
from geoplatform.crs import transform_xy
from geoplatform.errors import InvalidGeometryError, SchemaError

TOL = 1e-9  # degrees

ATTRS: list[dict[str, Any]] = [
    {"id": "a", "name": "钟楼 Bell Tower", "floors": 3, "height": 36.0},
    {"id": "b", "name": "Big Goose Pagoda", "floors": 7, "height": 64.5},
    {"id": "c", "name": "south gate, city wall", "floors": 2, "height": 0.25},
]
POINTS = [Point(108.94231234567891, 34.26101234567891), Point(108.96412345678912, 34.21851234567891),
          Point(108.94701234567891, 34.25131234567891)]
POLYGONS = [
    Polygon([(108.9410, 34.2600), (108.9437, 34.2600), (108.9437, 34.2621), (108.9410, 34.2621)]),
    Polygon([(108.9630, 34.2170), (108.9655, 34.2172), (108.9650, 34.2199), (108.9628, 34.2196)],
            [[(108.9638, 34.2180), (108.9645, 34.2180), (108.9642, 34.2188)]]),  # with a hole
    Polygon([(108.94612345678912, 34.25012345678912), (108.94898765432198, 34.25023456789123),
             (108.94787654321987, 34.25234567891234)]),
]
GEOMS = {"point": POINTS, "polygon": POLYGONS}
ATTR_COLUMNS = ["name", "floors", "height"]


def frame(kind: str, crs: str = "EPSG:4490") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(ATTRS), geometry=GEOMS[kind], crs=crs)


def features(kind: str, feature_ids: bool = False) -> list[dict[str, Any]]:
    """GeoJSON features; with ``feature_ids`` the id is the Feature's ``id`` member."""
    out = []
    for attrs, g in zip(ATTRS, GEOMS[kind]):
        props = dict(attrs)
        feat: dict[str, Any] = {"type": "Feature", "geometry": mapping(g), "properties": props}
        if feature_ids:
            feat["id"] = props.pop("id")
        out.append(feat)
    return out


# writers: (kind, folder) -> (path, ingest options) --------------------------------
def write_geojson(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features(kind)}, ensure_ascii=False),
                 encoding="utf-8")
    return p, {}


def write_geojson_feature_ids(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.json"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": features(kind, feature_ids=True)}))
    return p, {}


def write_geojsonl(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.geojsonl"
    p.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in features(kind)), encoding="utf-8")
    return p, {}


def write_geojsonseq_rfc8142(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.geojsons"
    p.write_bytes(b"".join(b"\x1e" + json.dumps(f).encode() + b"\n" for f in features(kind)))
    return p, {}


def write_gpkg(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.gpkg"
    frame(kind).to_file(p, driver="GPKG", engine="pyogrio")
    return p, {}


def write_shapefile(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.shp"
    frame(kind).to_file(p, engine="pyogrio")
    return p, {}


def write_zipped_shapefile(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    (d / "parts").mkdir()
    shp, _ = write_shapefile(kind, d / "parts")
    p = d / "sites.zip"
    with zipfile.ZipFile(p, "w") as z:
        for part in sorted(shp.parent.iterdir()):
            z.write(part, f"sites/{part.name}")
    return p, {}


def write_geoparquet(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.parquet"
    frame(kind).to_parquet(p)
    return p, {}


def write_csv_xy(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.csv"
    df = pd.DataFrame(ATTRS).assign(lon=[g.x for g in POINTS], lat=[g.y for g in POINTS])
    df.to_csv(p, index=False, float_format="%.17g")
    return p, {"csv": {"x": "lon", "y": "lat"}, "source_crs": "EPSG:4490"}


def write_csv_wkt(kind: str, d: Path) -> tuple[Path, dict[str, Any]]:
    p = d / "sites.csv"
    df = pd.DataFrame(ATTRS).assign(wkt=shapely.to_wkt(np.array(GEOMS[kind], dtype=object),
                                                       rounding_precision=-1))
    df.to_csv(p, index=False)
    return p, {"csv": {"wkt": "wkt"}, "source_crs": "EPSG:4490"}


def pass_geodataframe(kind: str, d: Path) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    return frame(kind), {}


WRITERS: dict[str, Callable[[str, Path], tuple[Any, dict[str, Any]]]] = {
    "geojson": write_geojson,
    "geojson-feature-ids": write_geojson_feature_ids,
    "geojsonl": write_geojsonl,
    "geojsonseq-rfc8142": write_geojsonseq_rfc8142,
    "gpkg": write_gpkg,
    "shapefile": write_shapefile,
    "zipped-shapefile": write_zipped_shapefile,
    "geoparquet": write_geoparquet,
    "csv-xy": write_csv_xy,
    "csv-wkt": write_csv_wkt,
    "geodataframe": pass_geodataframe,
}
CASES = [(fmt, kind) for fmt in WRITERS for kind in GEOMS if not (fmt == "csv-xy" and kind == "polygon")]


def assert_same_geometries(got: Any, expected: list[Any]) -> None:
    got = np.asarray(got, dtype=object)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.geom_type == e.geom_type, f"feature {i}: {g.geom_type} != {e.geom_type}"
        # normalised: a Shapefile stores rings clockwise, GeoJSON counter-clockwise
        assert shapely.equals_exact(shapely.normalize(g), shapely.normalize(e), tolerance=TOL), \
            f"feature {i}: {g.wkt} != {e.wkt}"


def sites(cube: Cube, **query: Any) -> gpd.GeoDataFrame:
    return cube.query("sites", sortby="fid", **query)


@pytest.mark.parametrize("fmt,kind", CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_format_round_trips(cube: Cube, tmp_path: Path, fmt: str, kind: str) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})
    path, options = WRITERS[fmt](kind, tmp_path)

    report = cube.ingest("sites", path, **options)

    assert (report.rows_read, report.rows_added, report.rows_skipped) == (3, 3, 0)
    assert report.snapshot_id == cube.snapshots("sites")[-1].id
    spec = cube.dataset("sites")
    assert spec.geometry_type == {"point": "Point", "polygon": "Polygon"}[kind]
    assert {f.name: f.type for f in spec.fields} == {"name": "string", "floors": "integer", "height": "number"}
    out = sites(cube)
    assert out.crs == pyproj.CRS.from_epsg(4490)
    assert list(out.columns) == ["fid", "version", "valid_from", "valid_to", *ATTR_COLUMNS, "record_from",
                                 "geometry"]
    assert out["fid"].tolist() == ["a", "b", "c"]
    assert out["version"].tolist() == [1, 1, 1]
    assert out[ATTR_COLUMNS].to_dict("records") == [{k: r[k] for k in ATTR_COLUMNS} for r in ATTRS]
    assert_same_geometries(out.geometry, GEOMS[kind])
    assert cube.count("sites") == 3


@pytest.mark.parametrize("declared", [None, "LineString"])
def test_linear_rings_are_stored_as_line_strings(cube: Cube, declared: str | None) -> None:
    cube.create_dataset({"name": "rings", "fid": "id", "geometry_type": declared})
    rings = [p.exterior for p in POLYGONS]

    cube.ingest("rings", gpd.GeoDataFrame({"id": ["a", "b", "c"]}, geometry=rings, crs="EPSG:4490"))

    assert cube.dataset("rings").geometry_type == "LineString"
    out = cube.query("rings", sortby="fid")
    assert out.geom_type.tolist() == ["LineString"] * 3
    assert_same_geometries(out.geometry, [shapely.LineString(r.coords) for r in rings])


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_attribute_types_with_missing_values(cube: Cube, tmp_path: Path, fmt: str) -> None:
    cube.create_dataset({"name": "sites", "fid": "id", "schema": [
        {"name": "open", "type": "boolean"}, {"name": "opened", "type": "date"},
        {"name": "floors", "type": "integer"}, {"name": "note", "type": "string"}]})
    values = [("a", True, "2020-05-01", 3, "x"), ("b", None, None, None, None), ("c", False, "2021-06-02", 7, " y ")]
    if fmt == "geojson":
        path = _write(tmp_path / "sites.geojson", [dict(zip(["id", "open", "opened", "floors", "note"], v))
                                                   for v in values])
        options: dict[str, Any] = {}
    else:
        path = tmp_path / "sites.csv"
        path.write_text("id,open,opened,floors,note,lon,lat\n" + "".join(
            f"{i},{'' if o is None else str(o).lower()},{d or ''},{'' if n is None else n},{t or ''},{p.x},{p.y}\n"
            for (i, o, d, n, t), p in zip(values, POINTS)))
        options = {"csv": {"x": "lon", "y": "lat"}, "source_crs": "EPSG:4490"}

    cube.ingest("sites", path, **options)

    out = cube.query("sites", sortby="fid", output="arrow")
    assert out.column("open").to_pylist() == [True, None, False]
    assert [str(d) if d else None for d in out.column("opened").to_pylist()] == ["2020-05-01", None, "2021-06-02"]
    assert out.column("floors").to_pylist() == [3, None, 7]
    assert out.column("note").to_pylist() == ["x", None, "y"]


def test_json_booleans_with_nulls_are_inferred_as_boolean(cube: Cube, tmp_path: Path) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})

    cube.ingest("sites", _write(tmp_path / "sites.geojson", [{"id": "a", "open": True}, {"id": "b", "open": None},
                                                             {"id": "c", "open": False}]))

    assert [(f.name, f.type) for f in cube.dataset("sites").fields] == [("open", "boolean")]
    assert cube.query("sites", sortby="fid", output="arrow").column("open").to_pylist() == [True, None, False]


# CRS ------------------------------------------------------------------------------
def _to_4545(geoms: list[Any]) -> list[Any]:
    t = pyproj.Transformer.from_crs("EPSG:4490", "EPSG:4545", always_xy=True)
    return [shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1]))) for g in geoms]


@pytest.mark.parametrize("how", ["gpkg-point", "gpkg-polygon", "csv-declared", "geojson-2008-named-crs"])
def test_projected_source_converts_to_storage_crs(cube: Cube, tmp_path: Path, how: str) -> None:
    kind = "polygon" if how == "gpkg-polygon" else "point"
    projected = _to_4545(GEOMS[kind])
    x0 = shapely.get_coordinates(projected[0])[0, 0]
    assert 400_000 < x0 < 600_000  # metres around the 108E central meridian: the test data is projected
    if how == "csv-declared":
        path = tmp_path / "sites.csv"
        pd.DataFrame(ATTRS).assign(x=[g.x for g in projected], y=[g.y for g in projected]).to_csv(
            path, index=False, float_format="%.17g")
        options: dict[str, Any] = {"csv": {"x": "x", "y": "y"}, "source_crs": "EPSG:4545"}
    elif how == "geojson-2008-named-crs":  # the pre-RFC 7946 "crs" member, still written by many tools
        path = tmp_path / "sites.geojson"
        feats = [{"type": "Feature", "geometry": mapping(g), "properties": a} for a, g in zip(ATTRS, projected)]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": feats,
                                    "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4545"}}}))
        options = {}
    else:  # the file declares its CRS
        path = tmp_path / "sites.gpkg"
        gpd.GeoDataFrame(pd.DataFrame(ATTRS), geometry=projected, crs="EPSG:4545").to_file(path, driver="GPKG")
        options = {}
    cube.create_dataset({"name": "sites", "fid": "id"})

    cube.ingest("sites", path, **options)

    back = pyproj.Transformer.from_crs("EPSG:4545", "EPSG:4490", always_xy=True)
    out = sites(cube)
    for got, src in zip(out.geometry, projected):
        xy = shapely.get_coordinates(src)
        ex, ey = back.transform(xy[:, 0], xy[:, 1])
        assert np.allclose(shapely.get_coordinates(got), np.column_stack([ex, ey]), rtol=0, atol=TOL)
    assert_same_geometries(out.geometry, GEOMS[kind])  # and the round trip lands where it started


WGS84_TRUTH = np.array([[108.94231, 34.26101], [116.39748, 39.90872], [121.47370, 31.23037],
                        [113.26436, 23.12908], [87.61688, 43.82663], [126.53400, 45.80380]])


def _metres(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    return np.asarray(pyproj.Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)[2])


@pytest.mark.parametrize("how", ["csv-point", "geojson-polygon"])
def test_gcj02_input_lands_on_wgs84_truth(cube: Cube, tmp_path: Path, how: str) -> None:
    gx, gy = transform_xy(WGS84_TRUTH[:, 0], WGS84_TRUTH[:, 1], "EPSG:4326", "GCJ-02")
    assert _metres(WGS84_TRUTH[:, 0], WGS84_TRUTH[:, 1], gx, gy).min() > 100  # the offset is real
    ids = [f"p{i}" for i in range(len(gx))]
    if how == "csv-point":
        path = tmp_path / "amap.csv"
        pd.DataFrame({"id": ids, "lon": gx, "lat": gy}).to_csv(path, index=False, float_format="%.17g")
        options: dict[str, Any] = {"csv": {"x": "lon", "y": "lat"}}
    else:  # a small triangle per point, its first vertex on the point
        path = tmp_path / "amap.geojson"
        feats = [{"type": "Feature", "properties": {"id": i},
                  "geometry": mapping(Polygon([(x, y), (x + 0.001, y), (x, y + 0.001)]))}
                 for i, x, y in zip(ids, gx, gy)]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
        options = {}
    cube.create_dataset({"name": "amap", "fid": "id"})

    cube.ingest("amap", path, source_crs="GCJ-02", **options)

    out = cube.query("amap", sortby="fid")
    assert out["fid"].tolist() == sorted(ids)
    first = np.array([shapely.get_coordinates(g)[0] for g in out.geometry])
    truth = WGS84_TRUTH[np.argsort(ids)]
    err = _metres(first[:, 0], first[:, 1], truth[:, 0], truth[:, 1])
    assert err.max() < 0.01, err


# time -----------------------------------------------------------------------------
UTC_TRUTH = pd.Timestamp("2025-03-04T06:22:10Z")
TIME_FORMS = ["2025-03-04 14:22:10", "2025-03-04T14:22:10", "2025-03-04T14:22:10+08:00",
              "2025-03-04T06:22:10Z", "2025-03-04T01:22:10-05:00", "2025-03-04T06:22:10.000000+00:00"]


def _events(cube: Cube) -> None:
    cube.create_dataset({"name": "events", "fid": "id", "valid_from": "t", "instant": True,
                         "time_zone": "Asia/Shanghai",
                         "schema": [{"name": "updated", "type": "datetime"}]})


def _assert_all_utc_truth(out: pd.DataFrame) -> None:
    for col in ("valid_from", "valid_to", "updated"):
        assert str(out[col].dt.tz) == "UTC", col
        assert out[col].tolist() == [UTC_TRUTH] * len(out), col


@pytest.mark.parametrize("forms", [[f, f] for f in TIME_FORMS] + [TIME_FORMS],
                         ids=[*TIME_FORMS, "mixed"])
def test_times_from_text(cube: Cube, tmp_path: Path, forms: list[str]) -> None:
    _events(cube)
    path = tmp_path / "events.geojson"
    feats = [{"type": "Feature", "geometry": mapping(POINTS[0]),
              "properties": {"id": f"e{i}", "t": t, "updated": t}} for i, t in enumerate(forms)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))

    cube.ingest("events", path)

    _assert_all_utc_truth(cube.query("events"))


@pytest.mark.parametrize("zone", [None, "Asia/Shanghai", "Europe/Berlin", "UTC"])
def test_times_from_datetime_columns(cube: Cube, tmp_path: Path, zone: str | None) -> None:
    _events(cube)
    local = pd.Series(pd.to_datetime(["2025-03-04 14:22:10"] * 2))  # naive: the dataset's zone
    if zone is not None:
        local = local.dt.tz_localize("Asia/Shanghai").dt.tz_convert(zone)
    path = tmp_path / "events.parquet"
    gpd.GeoDataFrame({"id": ["e0", "e1"], "t": local, "updated": local}, geometry=POINTS[:2],
                     crs="EPSG:4490").to_parquet(path)

    cube.ingest("events", path)

    _assert_all_utc_truth(cube.query("events"))


# versions -------------------------------------------------------------------------
def _write(path: Path, attrs: list[dict[str, Any]], geoms: list[Any] = POINTS) -> Path:
    feats = [{"type": "Feature", "geometry": mapping(g), "properties": a} for a, g in zip(attrs, geoms)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def test_reingesting_the_same_file_is_a_noop(cube: Cube, tmp_path: Path) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})
    path = _write(tmp_path / "sites.geojson", ATTRS)
    first = cube.ingest("sites", path)
    before = cube.snapshots("sites")

    again = cube.ingest("sites", path)

    assert again.noop and again.rows_unchanged == 3 and again.snapshot_id == first.snapshot_id
    assert cube.snapshots("sites") == before
    assert sites(cube)["version"].tolist() == [1, 1, 1]
    # the same content from another file is a no-op too (by hash of features, not of the file)
    copy = _write(tmp_path / "copy.geojson", list(reversed(ATTRS)), list(reversed(POINTS)))
    assert cube.ingest("sites", copy).noop
    assert cube.snapshots("sites") == before


def test_one_changed_feature_makes_one_new_version(cube: Cube, tmp_path: Path) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})
    old = cube.ingest("sites", _write(tmp_path / "v1.geojson", ATTRS))
    changed = [dict(a, height=70.0) if a["id"] == "b" else a for a in ATTRS]

    report = cube.ingest("sites", _write(tmp_path / "v2.geojson", changed))

    assert (report.rows_added, report.rows_changed, report.rows_unchanged) == (0, 1, 2)
    snaps = cube.snapshots("sites")
    assert [s.id for s in snaps][-2:] == [old.snapshot_id, report.snapshot_id]
    assert len(snaps) == 3  # create, v1, v2
    hist = cube.history("sites", "b").sort_values("version")
    assert hist["version"].tolist() == [1, 2]
    assert hist["height"].tolist() == [64.5, 70.0]
    assert len(cube.history("sites", "a")) == 1
    assert sites(cube)["height"].tolist() == [36.0, 70.0, 0.25]
    assert sites(cube, as_of=old.snapshot_id)["height"].tolist() == [36.0, 64.5, 0.25]
    assert cube.count("sites") == 3


def test_geometry_change_alone_makes_a_new_version(cube: Cube, tmp_path: Path) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})
    cube.ingest("sites", _write(tmp_path / "v1.geojson", ATTRS))
    moved = [POINTS[0], Point(108.97, 34.22), POINTS[2]]

    report = cube.ingest("sites", _write(tmp_path / "v2.geojson", ATTRS, moved))

    assert (report.rows_changed, report.rows_unchanged) == (1, 2)
    assert cube.history("sites", "b")["version"].max() == 2
    assert_same_geometries(sites(cube).geometry, moved)


@pytest.mark.parametrize("mode", ["upsert", "replace"])
def test_replace_ends_features_missing_from_the_input(cube: Cube, tmp_path: Path, mode: str) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})
    old = cube.ingest("sites", _write(tmp_path / "v1.geojson", ATTRS))

    report = cube.ingest("sites", _write(tmp_path / "v2.geojson", ATTRS[:2], POINTS[:2]), mode=mode)

    if mode == "replace":
        assert report.rows_deleted == 1 and report.snapshot_id is not None
        assert sites(cube)["fid"].tolist() == ["a", "b"]
    else:
        assert report.noop and report.rows_deleted == 0
        assert sites(cube)["fid"].tolist() == ["a", "b", "c"]
    assert sites(cube, as_of=old.snapshot_id)["fid"].tolist() == ["a", "b", "c"]
    assert len(cube.history("sites", "c")) == 1


def test_schema_is_inferred_at_the_first_ingest_then_enforced(cube: Cube, tmp_path: Path) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})
    assert cube.dataset("sites").schema_ is None and cube.dataset("sites").geometry_type is None
    cube.ingest("sites", _write(tmp_path / "v1.geojson", ATTRS))
    spec = cube.dataset("sites")
    assert [(f.name, f.type) for f in spec.fields] == [("name", "string"), ("floors", "integer"),
                                                       ("height", "number")]
    assert spec.geometry_type == "Point"
    before = cube.snapshots("sites")

    with pytest.raises(SchemaError, match=r"row 1 column 'floors': not a valid integer \(got 7\.5\)"):
        cube.ingest("sites", _write(tmp_path / "v2.geojson", [dict(a, floors=a["floors"] + 0.5) for a in ATTRS]))
    with pytest.raises(SchemaError, match=r"row 2 column 'geometry': is not a Point"):
        cube.ingest("sites", _write(tmp_path / "v3.geojson", ATTRS, [*POINTS[:2], POLYGONS[2]]))
    with pytest.raises(SchemaError, match=r"\['colour'\] are not in the schema"):
        cube.ingest("sites", _write(tmp_path / "v4.geojson", [dict(a, colour="red") for a in ATTRS]))

    assert cube.snapshots("sites") == before
    assert cube.dataset("sites") == spec
    # a column the schema has may be absent (it is not required): stored as null
    cube.ingest("sites", _write(tmp_path / "v5.geojson", [{"id": "d", "name": "new"}], [POINTS[0]]))
    assert sites(cube).set_index("fid").loc["d", "floors"] is pd.NA or pd.isna(
        sites(cube).set_index("fid").loc["d", "floors"])


# invalid geometries ---------------------------------------------------------------
BOWTIE = Polygon([(108.90, 34.20), (108.91, 34.21), (108.91, 34.20), (108.90, 34.21), (108.90, 34.20)])
SQUARE = Polygon([(108.92, 34.20), (108.93, 34.20), (108.93, 34.21), (108.92, 34.21)])


@pytest.mark.parametrize("policy", ["raise", "warn", "fix", "skip"])
def test_on_invalid(cube: Cube, tmp_path: Path, policy: str) -> None:
    assert not BOWTIE.is_valid
    cube.create_dataset({"name": "parcels", "fid": "id"})
    cube.ingest("parcels", _write(tmp_path / "base.geojson", [{"id": "base"}], [SQUARE]))
    before = cube.snapshots("parcels")
    path = _write(tmp_path / "parcels.geojson", [{"id": "ok"}, {"id": "bow"}], [SQUARE.buffer(0.001), BOWTIE])

    if policy == "raise":
        with pytest.raises(InvalidGeometryError, match=r"parcels\.geojson: 1 invalid.*row 1 \(fid bow\): "
                                                       r"Self-intersection"):
            cube.ingest("parcels", path, on_invalid="raise")
        assert cube.snapshots("parcels") == before
        assert cube.query("parcels")["fid"].tolist() == ["base"]
        return
    if policy == "warn":
        with pytest.warns(UserWarning, match=r"parcels\.geojson: 1 invalid geometries kept.*fid bow"):
            report = cube.ingest("parcels", path, on_invalid="warn")
    else:
        report = cube.ingest("parcels", path, on_invalid=policy)

    assert [r["fid"] for r in report.invalid] == ["bow"]
    assert "Self-intersection" in report.invalid[0]["reason"]
    out = cube.query("parcels", sortby="fid").set_index("fid")
    if policy == "skip":
        assert report.rows_skipped == 1 and report.rows_added == 1
        assert sorted(out.index) == ["base", "ok"]
        return
    assert report.rows_skipped == 0 and sorted(out.index) == ["base", "bow", "ok"]
    stored = out.geometry["bow"]
    if policy == "warn":
        assert not stored.is_valid and shapely.equals_exact(stored, BOWTIE, tolerance=TOL)
    else:
        assert stored.is_valid and abs(stored.area - 2 * 0.005 * 0.01 / 2) < 1e-12  # two triangles


# progress -------------------------------------------------------------------------
@pytest.mark.parametrize("progress", [None, True])
def test_progress_bar_only_on_a_terminal(cube: Cube, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         progress: bool | None) -> None:
    cube.create_dataset({"name": "sites", "fid": "id"})
    capsys.readouterr()

    cube.ingest("sites", _write(tmp_path / "sites.geojson", ATTRS), progress=progress)

    captured = capsys.readouterr()
    assert captured.out == ""
    if progress is None:  # capsys' stderr is not a terminal
        assert captured.err == ""
    else:  # shows that capsys would see the bar if there were one
        assert "ingest sites" in captured.err


def test_fix_widens_a_polygon_dataset_to_multipolygon(cube: Cube, tmp_path: Path) -> None:
    cube.create_dataset({"name": "parcels", "fid": "id"})
    cube.ingest("parcels", _write(tmp_path / "base.geojson", [{"id": "base"}], [SQUARE]))
    assert cube.dataset("parcels").geometry_type == "Polygon"
    report = cube.ingest("parcels", _write(tmp_path / "bow.geojson", [{"id": "bow"}], [BOWTIE]), on_invalid="fix")
    assert report.invalid[0]["action"] == "fixed"
    assert cube.dataset("parcels").geometry_type == "MultiPolygon"
    # what the store now holds goes back in as it is
    again = cube.query("parcels").rename(columns={"fid": "id"})[["id", "geometry"]]
    assert cube.ingest("parcels", again).noop
