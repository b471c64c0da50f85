"""Bad input: each gets an error of the right class naming the problem and the
file, row or feature, and the store is exactly as it was before."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, Polygon, mapping

from geoplatform import Cube
from geoplatform.errors import CRSError, GeoPlatformError, IngestError, InvalidGeometryError, SchemaError

SITES = {
    "name": "sites", "fid": "id", "valid_from": "start", "valid_to": "end", "time_zone": "Asia/Shanghai",
    "geometry_type": "Point",
    "schema": [{"name": "name", "type": "string", "required": True},
               {"name": "kind", "type": "string", "enum": ["school", "hospital", "park"]},
               {"name": "floors", "type": "integer"},
               {"name": "height", "type": "number"}],
}
GOOD: list[dict[str, Any]] = [
    {"id": "a", "name": "No. 1 Middle School", "kind": "school", "floors": 4, "height": 18.5,
     "start": "2024-01-01 08:00:00", "end": None},
    {"id": "b", "name": "Provincial Hospital", "kind": "hospital", "floors": 12, "height": 48.0,
     "start": "2024-02-01 08:00:00", "end": "2030-01-01 00:00:00"},
    {"id": "c", "name": "Xingqing Park", "kind": "park", "floors": None, "height": None,
     "start": "2023-06-01", "end": None},
]
POINTS = [Point(108.9423, 34.2610), Point(108.9641, 34.2185), Point(108.9780, 34.2600)]
SQUARE = Polygon([(108.92, 34.20), (108.93, 34.20), (108.93, 34.21), (108.92, 34.21)])
METRE_TRIANGLE = Polygon([(498_000, 3_790_000), (499_000, 3_790_000), (499_000, 3_791_000)])  # EPSG:4545
BOWTIE = Polygon([(108.90, 34.20), (108.91, 34.21), (108.91, 34.20), (108.90, 34.21), (108.90, 34.20)])


# the store's state ----------------------------------------------------------------
def store_state(cube: Cube, name: str) -> dict[str, Any]:
    """Everything an ingest could change about a dataset, as a comparable value."""
    data = Path(cube.backend.location) / "data" / name
    return {
        "spec": cube.dataset(name),
        "snapshots": cube.snapshots(name),
        "stats": cube.stats(name),
        "features": cube.query(name, output="arrow").sort_by("fid").to_pylist(),
        "files": sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()) if data.exists() else [],
    }


def assert_unchanged(cube: Cube, name: str, before: dict[str, Any]) -> None:
    after = store_state(cube, name)
    for key in before:
        assert after[key] == before[key], f"the failed ingest changed the dataset's {key}"


# writers --------------------------------------------------------------------------
def rows(*changes: dict[str, Any], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """GOOD with row ``i`` updated by ``changes[i]`` and the ``drop`` columns removed."""
    out = [dict(r, **(changes[i] if i < len(changes) else {})) for i, r in enumerate(GOOD)]
    return [{k: v for k, v in r.items() if k not in drop} for r in out]


def geojson(path: Path, attrs: list[dict[str, Any]], geoms: list[Any] = POINTS) -> Path:
    feats = [{"type": "Feature", "geometry": None if g is None else mapping(g), "properties": a}
             for a, g in zip(attrs, geoms)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def csv(path: Path, attrs: list[dict[str, Any]], xy: list[tuple[Any, Any]] | None = None) -> Path:
    xy = xy or [(p.x, p.y) for p in POINTS]
    pd.DataFrame(attrs).assign(lon=[c[0] for c in xy], lat=[c[1] for c in xy]).to_csv(path, index=False)
    return path


def geoparquet(path: Path, attrs: list[dict[str, Any]], geoms: list[Any]) -> Path:
    gpd.GeoDataFrame(pd.DataFrame(attrs), geometry=geoms, crs="EPSG:4490").to_parquet(path)
    return path


TRAILING_COMMA = """{"type": "FeatureCollection",
 "features": [
  {"type": "Feature", "geometry": null, "properties": {}},
 ]
}"""
CSV_XY = {"csv": {"x": "lon", "y": "lat"}}


@dataclass
class Case:
    write: Callable[[Path], Path]
    error: type[GeoPlatformError]
    patterns: list[str]  # regular expressions the message must match, besides the file's name
    options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "sites"


def _write_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name
    return write


def _zip_without_shp(d: Path) -> Path:
    with zipfile.ZipFile(d / "parcels.zip", "w") as z:
        z.writestr("parcels/readme.txt", "the shapefile is on the other disk")
        z.writestr("parcels/parcels.dbf", b"\x03")
    return d / "parcels.zip"


def _csv_with_bad_wkt(d: Path) -> Path:
    pd.DataFrame(rows()).assign(wkt=["POINT (108.9 34.2)", "POINT (108.9", "POINT (108.9 34.3)"]).to_csv(
        d / "sites.csv", index=False)
    return d / "sites.csv"


CASES: dict[str, Case] = {
    # unreadable files
    "json-trailing-comma": Case(_write_bytes("sites.geojson", TRAILING_COMMA.encode()), IngestError,
                                [r"malformed JSON at line 3, column 58", "trailing comma"]),
    "geojsonl-malformed-line": Case(_write_bytes("sites.geojsonl", b'{"type": "Feature"}\n\n{"type": \n'),
                                    IngestError, [r"malformed JSON on line 3"]),
    **{f"empty-file-{ext}": Case(_write_bytes(f"sites.{ext}", b""), IngestError, ["the file is empty"],
                                 dict(CSV_XY, source_crs="EPSG:4490") if ext == "csv" else {})
       for ext in ("geojson", "geojsonl", "csv", "gpkg", "parquet", "shp")},
    "empty-featurecollection": Case(_write_bytes("sites.geojson", b'{"type": "FeatureCollection", "features": []}'),
                                    IngestError, ["no features"]),
    "blank-geojsonl": Case(_write_bytes("sites.geojsonl", b"\n  \n\x1e\n"), IngestError, ["no features"]),
    "header-only-csv": Case(_write_bytes("sites.csv", b"id,name,lon,lat\n"), IngestError, ["no features"],
                            dict(CSV_XY, source_crs="EPSG:4490")),
    "not-geojson": Case(_write_bytes("sites.json", b"[1, 2, 3]"), IngestError, ["not a GeoJSON object"]),
    "zip-without-shp": Case(_zip_without_shp, IngestError, [r"holds no \.shp file"]),
    "not-a-zip": Case(_write_bytes("sites.zip", b"PK but not really"), IngestError, ["not a readable zip"]),
    "no-such-file": Case(lambda d: d / "nowhere" / "sites.geojson", IngestError, ["no such file"]),
    "unsupported-extension": Case(_write_bytes("sites.xlsx", b"PK\x03\x04 a spreadsheet"), IngestError,
                                  [r"unsupported format '\.xlsx'"]),
    # CRS
    "csv-without-crs": Case(lambda d: csv(d / "sites.csv", rows()), CRSError,
                            ["declares no CRS", "declare source_crs"], CSV_XY),
    "wrong-declared-crs": Case(lambda d: csv(d / "sites.csv", rows(), [(498_000.0, 3_790_000.0)] * 3), CRSError,
                               ["outside the valid range of EPSG:4490", r"first in row 0: \(498000\.0, 3790000\.0\)"],
                               dict(CSV_XY, source_crs="EPSG:4490")),
    "unknown-declared-crs": Case(lambda d: csv(d / "sites.csv", rows()), CRSError, ["unknown CRS 'EPSG:999999'"],
                                 dict(CSV_XY, source_crs="EPSG:999999")),
    # coordinates
    "nan-coordinate": Case(lambda d: geoparquet(d / "sites.parquet", rows(), [POINTS[0], Point(108.9, float("nan")),
                                                                              POINTS[2]]),
                           SchemaError, ["row 1: has NaN or infinite coordinates"]),
    "infinite-coordinate": Case(lambda d: geoparquet(d / "sites.parquet", rows(),
                                                     [*POINTS[:2], Point(float("inf"), 34.2)]),
                                SchemaError, ["row 2: has NaN or infinite coordinates"]),
    "nan-in-polygon": Case(lambda d: geoparquet(d / "areas.parquet", [{"id": "p"}, {"id": "q"}],
                                                [SQUARE, Polygon([(108.9, 34.2), (108.91, float("nan")),
                                                                  (108.92, 34.21)])]),
                           SchemaError, ["row 1: has NaN or infinite coordinates"], dataset="fresh"),
    "non-numeric-csv-coordinate": Case(lambda d: csv(d / "sites.csv", rows(), [(108.9, 34.2), ("east", 34.2),
                                                                              (108.9, 34.2)]),
                                       IngestError, ["missing or non-numeric coordinates, first at row 1"],
                                       dict(CSV_XY, source_crs="EPSG:4490")),
    "bad-wkt": Case(_csv_with_bad_wkt, IngestError, [r"row 1: unreadable WKT 'POINT \(108.9'"],
                    {"csv": {"wkt": "wkt"}, "source_crs": "EPSG:4490"}),
    "geojson-in-metres": Case(lambda d: geojson(d / "areas.geojson", [{"id": "p"}], [METRE_TRIANGLE]),
                              CRSError, ["outside the valid range of OGC:CRS84", "is the declared CRS right"],
                              dataset="fresh"),
    "wrong-declared-crs-polygon": Case(lambda d: geojson(d / "areas.geojson", [{"id": "p"}, {"id": "q"}],
                                                         [SQUARE, METRE_TRIANGLE]),
                                       CRSError, [r"4 coordinate\(s\) are outside the valid range of EPSG:4490",
                                                  r"first in row 1: \(498000\.0, 3790000\.0\)"],
                                       {"source_crs": "EPSG:4490"}, dataset="fresh"),
    # geometry types
    "null-geometry": Case(lambda d: geojson(d / "sites.geojson", rows(), [POINTS[0], None, POINTS[2]]),
                          SchemaError, ["row 1: has no geometry"]),
    "mixed-types-undeclared": Case(lambda d: geojson(d / "areas.geojson", [{"id": "p"}, {"id": "q"}],
                                                     [POINTS[0], SQUARE]),
                                   SchemaError, [r"mixed geometry types \{'Point': 1, 'Polygon': 1\}",
                                                 "declare geometry_type"], dataset="fresh"),
    "polygon-in-point-dataset": Case(lambda d: geojson(d / "sites.geojson", rows(), [POINTS[0], SQUARE, POINTS[2]]),
                                     SchemaError, [r"row 1 column 'geometry': is not a Point \(got 'Polygon'\)"]),
    "invalid-geometry": Case(lambda d: geojson(d / "areas.geojson", [{"id": "p"}, {"id": "bow"}], [SQUARE, BOWTIE]),
                             InvalidGeometryError, [r"row 1 \(fid bow\): Self-intersection"], dataset="fresh"),
    # attributes
    "misspelt-column": Case(lambda d: geojson(d / "sites.geojson", [dict(r, hieght=r.pop("height")) for r in rows()]),
                            SchemaError, [r"columns \['hieght'\] are not in the schema", "check their spelling"]),
    "non-integer-string": Case(lambda d: geojson(d / "sites.geojson", rows({}, {"floors": "three"})),
                               SchemaError, [r"row 1 column 'floors': not a valid integer \(got 'three'\)"]),
    "non-integer-string-csv": Case(lambda d: csv(d / "sites.csv", rows({}, {}, {"floors": "12a"})), SchemaError,
                                   [r"row 2 column 'floors': not a valid integer \(got '12a'\)"],
                                   dict(CSV_XY, source_crs="EPSG:4490")),
    "non-number": Case(lambda d: geojson(d / "sites.geojson", rows({"height": "tall"})), SchemaError,
                       [r"row 0 column 'height': not a valid number \(got 'tall'\)"]),
    "unparseable-times": Case(lambda d: geojson(d / "sites.geojson", rows({}, {"start": "next tuesday"},
                                                                          {"start": "2025-02-30 10:00:00"})),
                              SchemaError, [r"row 1 column 'start': not a date-time \(ISO 8601 expected\) "
                                            r"\(got 'next tuesday'\)",
                                            r"row 2 column 'start': not a date-time .*"
                                            r"\(got '2025-02-30 10:00:00'\)"]),
    "existing-ids-in-append-mode": Case(lambda d: geojson(d / "sites.geojson", rows({"id": "z"}, {"id": "b"})),
                                        SchemaError, [r"append: 2 ids already exist in 'sites', e.g. \['b', 'c'\]"],
                                        {"mode": "append"}),
    "unusable-column-name": Case(lambda d: geojson(d / "areas.geojson", [{"id": "p", "名称": "钟楼"}], [SQUARE]),
                                 SchemaError, [r"column '名称' cannot be a field: field name '名称' must match"],
                                 dataset="fresh"),
    "reserved-column-name": Case(lambda d: geojson(d / "areas.geojson", [{"id": "p", "version": 3}], [SQUARE]),
                                 SchemaError, [r"column 'version' uses a name the cube reserves"], dataset="fresh"),
    "property-named-geometry": Case(lambda d: geojson(d / "areas.geojson", [{"id": "p", "geometry": "square"}],
                                                      [SQUARE]),
                                    SchemaError, [r"a column is named 'geometry'"], dataset="fresh"),
    "duplicate-fid": Case(lambda d: geojson(d / "sites.geojson", rows({}, {}, {"id": "a"})), SchemaError,
                          [r"row 0 column 'id': duplicate id in this input \(got 'a'\)",
                           r"row 2 column 'id': duplicate id in this input \(got 'a'\)"]),
    "missing-fid": Case(lambda d: geojson(d / "sites.geojson", rows({}, {"id": None})), SchemaError,
                        [r"row 1 column 'id': has no id"]),
    "missing-fid-column": Case(lambda d: geojson(d / "sites.geojson", rows(drop=("id",))), SchemaError,
                               [r"missing columns \['id'\]"]),
    "missing-required-value": Case(lambda d: geojson(d / "sites.geojson", rows({}, {"name": None}, {"name": "  "})),
                                   SchemaError, [r"row 1 column 'name': required value is missing",
                                                 r"row 2 column 'name': required value is missing"]),
    "missing-required-column": Case(lambda d: geojson(d / "sites.geojson", rows(drop=("name",))), SchemaError,
                                    [r"required columns \['name'\] are missing"]),
    "enum-violation": Case(lambda d: geojson(d / "sites.geojson", rows({}, {"kind": "castle"})), SchemaError,
                           [r"row 1 column 'kind': not one of \['hospital', 'park', 'school'\] \(got 'castle'\)"]),
    "valid-to-before-valid-from": Case(lambda d: geojson(d / "sites.geojson",
                                                         rows({"start": "2025-03-04", "end": "2025-03-01"})),
                                       SchemaError, [r"row 0 column 'end': valid_to is before valid_from"]),
}


@pytest.fixture
def populated(cube: Cube, tmp_path: Path) -> Cube:
    """``sites`` (declared schema, two snapshots) and ``fresh`` (nothing declared or loaded)."""
    cube.create_dataset(SITES)
    cube.create_dataset({"name": "fresh", "fid": "id"})
    good = tmp_path / "good"
    good.mkdir()
    cube.ingest("sites", geojson(good / "v1.geojson", GOOD[:2], POINTS[:2]))
    cube.ingest("sites", geojson(good / "v2.geojson", GOOD))
    assert cube.count("sites") == 3 and len(cube.snapshots("sites")) == 3
    return cube


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # shapely, on NaN input
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_and_changes_nothing(populated: Cube, tmp_path: Path, case: Case) -> None:
    cube = populated
    path = case.write(tmp_path)
    before = store_state(cube, case.dataset)

    with pytest.raises(case.error) as info:
        cube.ingest(case.dataset, path, **case.options)

    message = str(info.value)
    assert str(path) in message, f"the message does not name the file: {message}"
    for pattern in case.patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert_unchanged(cube, case.dataset, before)


def test_row_problems_are_all_listed_in_details(populated: Cube, tmp_path: Path) -> None:
    path = geojson(tmp_path / "sites.geojson", rows({"floors": "x"}, {"kind": "castle"}, {"name": None}))

    with pytest.raises(SchemaError) as info:
        populated.ingest("sites", path)

    listed = {(r["row"], r["column"]) for r in info.value.details["rows"]}
    assert listed == {(0, "floors"), (1, "kind"), (2, "name")}
    assert "3 problems" in str(info.value)


def test_unknown_options_are_refused(populated: Cube, tmp_path: Path) -> None:
    path = geojson(tmp_path / "sites.geojson", rows())
    before = store_state(populated, "sites")
    with pytest.raises(IngestError, match="mode must be upsert, append or replace, not 'merge'"):
        populated.ingest("sites", path, mode="merge")
    with pytest.raises(ValueError, match="on_invalid must be raise, warn, fix or skip"):
        populated.ingest("fresh", geojson(tmp_path / "bow.geojson", [{"id": "p"}], [BOWTIE]), on_invalid="mend")
    assert_unchanged(populated, "sites", before)


FIRST_FAILURES: dict[str, tuple[Callable[[Path], Path], dict[str, Any]]] = {
    "duplicate-fid": (lambda d: geojson(d / "bad.geojson", [{"id": "p", "code": 1}, {"id": "p", "code": 2}],
                                        POINTS[:2]), {}),
    "invalid-geometry": (lambda d: geojson(d / "bad.geojson", [{"id": "p", "code": 1}, {"id": "q", "code": 2}],
                                           [SQUARE, BOWTIE]), {}),
    "wrong-crs": (lambda d: csv(d / "bad.csv", [{"id": "p", "code": 1}, {"id": "q", "code": 2}],
                                [(498_000.0, 3_790_000.0)] * 2), dict(CSV_XY, source_crs="EPSG:4490")),
}


@pytest.mark.parametrize("cause", list(FIRST_FAILURES))
def test_failed_first_ingest_leaves_the_schema_uninferred(cube: Cube, tmp_path: Path, cause: str) -> None:
    cube.create_dataset({"name": "fresh", "fid": "id"})
    write, options = FIRST_FAILURES[cause]
    before = store_state(cube, "fresh")

    with pytest.raises(GeoPlatformError):
        cube.ingest("fresh", write(tmp_path), **options)

    assert_unchanged(cube, "fresh", before)
    spec = cube.dataset("fresh")
    assert spec.schema_ is None and spec.geometry_type is None
    # "code" was an integer and the geometry a point or polygon in the failed file:
    # had either been kept, this text and this line would be refused
    good = geojson(tmp_path / "good.geojson", [{"id": "p", "code": "K-7"}, {"id": "q", "code": "K-8"}],
                   [LineString(SQUARE.exterior.coords)] * 2)
    report = cube.ingest("fresh", good)
    assert report.rows_added == 2
    spec = cube.dataset("fresh")
    assert [(f.name, f.type) for f in spec.fields] == [("code", "string")]
    assert spec.geometry_type == "LineString"
    assert cube.query("fresh", sortby="fid")["code"].tolist() == ["K-7", "K-8"]


def test_assert_unchanged_notices_a_change(populated: Cube, tmp_path: Path) -> None:
    before = store_state(populated, "sites")
    populated.ingest("sites", geojson(tmp_path / "v3.geojson", rows({}, {"height": 50.0})))
    with pytest.raises(AssertionError, match="changed the dataset's snapshots"):
        assert_unchanged(populated, "sites", before)
