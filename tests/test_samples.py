"""The bundled sample city: its generator, its files and the catalogs that describe them."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
import yaml

from geoplatform.samples import (
    DEFAULT_SEED,
    FILES,
    build_sample_city,
    city_bbox_lonlat,
    gcj02_to_wgs84,
    wgs84_to_gcj02,
)

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "catalogs"
CATALOG: dict[str, Any] = yaml.safe_load((CATALOGS / "sample_city.yaml").read_text(encoding="utf-8"))
DATASETS: dict[str, dict[str, Any]] = {d["name"]: d for d in CATALOG["datasets"]}
DEPARTMENT_IDS = {d["id"] for d in yaml.safe_load((CATALOGS / "departments.yaml").read_text("utf-8"))["departments"]}
THEME_IDS = {t["id"] for t in yaml.safe_load((CATALOGS / "themes.yaml").read_text("utf-8"))["themes"]}

MAX_BYTES = 15 * 1024 * 1024

EXPECTED_ROWS: dict[str, tuple[int, int]] = {
    "districts": (6, 8),
    "roads": (300, 700),
    "buildings": (2900, 3000),
    "parcels": (350, 520),
    "water_pipes": (1700, 2300),
    "water_valves": (400, 400),
    "incidents": (5000, 5000),
    "shelters": (55, 60),
    "sensors": (280, 320),
    "air_quality": (43200, 43200),
    "population_grid": (300, 6400),
    "residents": (300_000, 420_000),
    "companies": (5_000, 15_000),
    "indoor_levels": (3, 3),
    "indoor_units": (40, 100),
}
ISO_FREQUENCIES = {
    "continual", "daily", "weekly", "fortnightly", "monthly", "quarterly", "biannually",
    "annually", "asNeeded", "irregular", "notPlanned", "unknown",
}
GEOMETRY_TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}
FIELD_TYPES = {"string", "integer", "number", "boolean", "datetime", "date"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def city_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lanshan_a")
    build_sample_city(out)
    return out


@pytest.fixture(scope="module")
def city_again(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_city(tmp_path_factory.mktemp("lanshan_b"), seed=DEFAULT_SEED)


def load(root: Path, entry: dict[str, Any]) -> gpd.GeoDataFrame:
    """Read one dataset as the catalog says, in its storage CRS."""
    path = root / entry["file"]
    suffix = path.suffix
    if suffix == ".parquet":
        frame = gpd.read_parquet(path)
    elif suffix == ".csv":
        strings = {f["name"]: str for f in entry["schema"] if f["type"] == "string"}
        if entry["fid"]:
            strings[entry["fid"]] = str
        table = pd.read_csv(path, dtype=strings, encoding="utf-8")
        spec = entry["csv"]
        if "wkt" in spec:
            geoms = shapely.from_wkt(table.pop(spec["wkt"]).to_numpy())
            x = y = None
        else:
            x, y = table.pop(spec["x"]).to_numpy(), table.pop(spec["y"]).to_numpy()
            if entry["source_crs"] == "GCJ-02":
                x, y = gcj02_to_wgs84(x, y)
            geoms = shapely.points(x, y)
        crs = "EPSG:4490" if entry["source_crs"] == "GCJ-02" else entry["source_crs"]
        frame = gpd.GeoDataFrame(table, geometry=geoms, crs=crs)
    else:
        frame = gpd.read_file(path, layer=entry.get("layer"), engine="pyogrio")
    if entry["source_crs"] and entry["source_crs"] != "GCJ-02":
        frame = frame.set_crs(entry["source_crs"], allow_override=True)
    assert frame.crs is not None
    return frame.to_crs(entry["storage_crs"])


# --------------------------------------------------------------------------- catalogs


def test_departments_and_themes() -> None:
    departments = yaml.safe_load((CATALOGS / "departments.yaml").read_text("utf-8"))["departments"]
    assert len(DEPARTMENT_IDS) == len(departments)
    required = {
        "planning", "water", "gas", "power", "emergency", "transport", "environment",
        "public_security", "civil_affairs", "housing", "data_bureau",
    }
    assert required <= DEPARTMENT_IDS
    for d in departments:
        assert set(d) == {"id", "name", "name_zh", "description"}
        assert all(isinstance(d[k], str) and d[k].strip() for k in d)
    by_id = {d["id"]: d for d in departments}
    assert by_id["data_bureau"]["name_zh"] == "大数据局"
    assert by_id["planning"]["name_zh"] == "自然资源和规划局"
    assert by_id["water"]["name_zh"] == "水务局"

    themes = yaml.safe_load((CATALOGS / "themes.yaml").read_text("utf-8"))["themes"]
    assert len(THEME_IDS) == len(themes)
    assert {"positioning", "pipelines", "planning", "emergency", "sensing", "base", "population"} <= THEME_IDS
    for t in themes:
        assert set(t) == {"id", "title", "title_zh", "description"}


def test_city_header() -> None:
    city = CATALOG["city"]
    assert city["name"] == "Lanshan" and city["name_zh"] == "蓝山市"
    assert city["generated"] is True
    assert city["generator"] == f"geoplatform.samples.city:build_sample_city (seed {DEFAULT_SEED})"


def test_catalog_lists_every_generated_file() -> None:
    assert len(DATASETS) == len(CATALOG["datasets"])  # names unique
    grids = {g["name"]: g["file"] for g in CATALOG.get("grids", [])}
    assert {d["file"] for d in CATALOG["datasets"]} | set(grids.values()) == set(FILES.values())
    assert {**{name: d["file"] for name, d in DATASETS.items()}, **grids} == FILES


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_catalog_entry_well_formed(name: str) -> None:
    e = DATASETS[name]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
    assert e["title"] and e["description"]
    assert e["department"] in DEPARTMENT_IDS
    assert e["theme"] in THEME_IDS
    assert e["open_level"] in {"public", "shared", "restricted"}
    if e["open_level"] == "shared":
        assert e["shared_with"] and set(e["shared_with"]) <= DEPARTMENT_IDS
        assert e["department"] not in e["shared_with"]
    else:
        assert "shared_with" not in e
    assert e["licence"] == "CC0-1.0" and e["generated"] is True
    assert f"seed {DEFAULT_SEED}" in e["source"]
    assert all(isinstance(k, str) for k in e["keywords"])
    assert e["update_frequency"] in ISO_FREQUENCIES
    assert e["geometry_type"] in GEOMETRY_TYPES
    assert e["storage_crs"] == "EPSG:4490"
    assert e["time_partition"] in {"none", "year", "month", "week", "day"}
    assert e["time_zone"] == "Asia/Shanghai"
    assert ("csv" in e) == e["file"].endswith(".csv")
    if e["file"].endswith(".csv"):
        assert e["source_crs"], "a CSV carries no CRS: the catalog must declare one"
    if e.get("instant"):
        assert e["valid_from"] and e["valid_to"] is None
    names = [f["name"] for f in e["schema"]]
    assert len(names) == len(set(names))
    reserved = {e["fid"], e["valid_from"], e["valid_to"], "geometry"} - {None}
    assert not reserved & set(names), "geometry, fid and time columns are not listed in schema"
    for field in e["schema"]:
        assert set(field) <= {"name", "type", "required", "enum", "minimum", "maximum", "unit"}
        assert field["type"] in FIELD_TYPES


def test_catalog_loads_with_the_platform_models() -> None:
    models = pytest.importorskip("geoplatform.catalog.models")
    catalog = models.load_city_catalog(CATALOGS / "sample_city.yaml")
    assert [d.name for d in catalog.datasets] == list(DATASETS)


def test_time_rules_of_catalog() -> None:
    assert DATASETS["incidents"]["valid_from"] == "reported_at"
    assert DATASETS["incidents"]["valid_to"] == "closed_at"
    assert DATASETS["incidents"]["instant"] is False
    assert DATASETS["air_quality"]["instant"] is True
    assert DATASETS["water_valves"]["source_crs"] == "GCJ-02"
    assert DATASETS["population_grid"]["open_level"] == "restricted"
    assert DATASETS["population_grid"]["theme"] == "population"


# --------------------------------------------------------------------------- generator


def test_generation_is_small_and_complete(city_dir: Path) -> None:
    root = city_dir
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < MAX_BYTES
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == sorted(FILES.values())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_deterministic(name: str, city_dir: Path, city_again: Path) -> None:
    entry = DATASETS[name]
    a, b = city_dir / entry["file"], city_again / entry["file"]
    # Text formats are byte-identical by construction; the binary ones are too
    # with the same GDAL/Arrow (the generator pins their timestamps), and must
    # in any case hold the same frames.
    assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between runs"
    fa, fb = load(city_dir, entry), load(city_again, entry)
    pd.testing.assert_frame_equal(fa.drop(columns="geometry"), fb.drop(columns="geometry"))
    assert (fa.geometry.to_wkb() == fb.geometry.to_wkb()).all()


def test_another_seed_gives_another_city(tmp_path: Path, city_dir: Path) -> None:
    other = build_sample_city(tmp_path, seed=DEFAULT_SEED + 1)
    assert (other / "districts.geojson").read_bytes() != (city_dir / "districts.geojson").read_bytes()


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_matches_catalog(name: str, city_dir: Path) -> None:
    entry = DATASETS[name]
    frame = load(city_dir, entry)
    lo, hi = EXPECTED_ROWS[name]
    assert lo <= len(frame) <= hi

    declared = {f["name"] for f in entry["schema"]}
    special = {entry["fid"], entry["valid_from"], entry["valid_to"]} - {None}
    assert set(frame.columns) - {"geometry"} == declared | special, "undeclared or missing columns"

    if entry["fid"]:
        ids = frame[entry["fid"]]
        assert ids.notna().all() and ids.is_unique
    if entry["valid_from"]:
        start = pd.to_datetime(frame[entry["valid_from"]])
        assert start.notna().all()
        if entry["valid_to"]:
            end = pd.to_datetime(frame[entry["valid_to"]])
            both = end.notna()
            assert (end[both] >= start[both]).all()

    for field in entry["schema"]:
        col = frame[field["name"]]
        present = col[col.notna()]
        if field.get("required", True):
            assert col.notna().all(), f"{name}.{field['name']} is required"
        kind = field["type"]
        if kind == "string":
            assert present.map(lambda v: isinstance(v, str)).all()
            assert (present.str.strip() != "").all(), f"{name}.{field['name']} has empty strings"
        elif kind == "integer":
            assert pd.api.types.is_integer_dtype(col) or (present == np.round(present)).all()
        elif kind == "number":
            assert pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        elif kind == "boolean":
            assert pd.api.types.is_bool_dtype(col)
        if "enum" in field:
            assert set(present) <= set(field["enum"]), f"{name}.{field['name']} outside its enum"
        if "minimum" in field:
            assert (present >= field["minimum"]).all()
        if "maximum" in field:
            assert (present <= field["maximum"]).all()

    geoms = frame.geometry.to_numpy()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    allowed = {entry["geometry_type"]}
    if entry["geometry_type"].startswith("Multi"):
        allowed.add(entry["geometry_type"][5:])
    assert set(frame.geom_type) <= allowed
    if entry["geometry_type"].endswith("Polygon"):
        assert (shapely.area(geoms) > 0).all()
    if entry["geometry_type"].endswith("LineString"):
        assert (shapely.length(geoms) > 0).all()
    minx, miny, maxx, maxy = city_bbox_lonlat(margin_deg=1e-5)  # ~1 m: file coordinates are rounded
    bx0, by0, bx1, by1 = frame.total_bounds
    assert minx <= bx0 and miny <= by0 and bx1 <= maxx and by1 <= maxy


def test_readers_see_declared_crs(city_dir: Path) -> None:
    assert pyogrio.read_info(city_dir / "roads.gpkg", layer="roads")["crs"] == "EPSG:4545"
    assert pyogrio.read_info(city_dir / "water_pipes.gpkg", layer="water_pipes")["crs"] == "EPSG:4545"
    assert pyogrio.read_info(city_dir / "parcels.zip")["crs"] == "EPSG:4545"
    assert gpd.read_parquet(city_dir / "buildings.parquet").crs.to_epsg() == 4490
    assert gpd.read_parquet(city_dir / "population_grid.parquet").crs.to_epsg() == 4545
    for name in ("districts.geojson", "sensors.geojson", "indoor/level.geojson"):
        doc = json.loads((city_dir / name).read_text("utf-8"))
        assert doc["type"] == "FeatureCollection" and "crs" not in doc
    with zipfile.ZipFile(city_dir / "parcels.zip") as zf:
        assert {Path(n).suffix for n in zf.namelist()} >= {".shp", ".shx", ".dbf", ".prj", ".cpg"}
    info = pyogrio.read_info(city_dir / "parcels.zip")
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    assert types["valid_from"] == "OFTDate" and types["valid_to"] == "OFTDate"


# --------------------------------------------------------------------------- content


def test_water_network_topology(city_dir: Path) -> None:
    pipes = gpd.read_file(city_dir / "water_pipes.gpkg", layer="water_pipes")
    assert pipes["pipe_id"].str.fullmatch(r"JS-\d{6}").all()
    starts = shapely.get_coordinates(shapely.get_point(pipes.geometry.to_numpy(), 0))
    ends = shapely.get_coordinates(shapely.get_point(pipes.geometry.to_numpy(), -1))
    position: dict[str, tuple[float, float]] = {}
    for node, xy in list(zip(pipes["start_node"], map(tuple, starts), strict=True)) + list(
        zip(pipes["end_node"], map(tuple, ends), strict=True)
    ):
        assert position.setdefault(node, xy) == xy, f"node {node} has two positions"
    degree = pd.concat([pipes["start_node"], pipes["end_node"]]).value_counts()
    assert (degree >= 3).sum() > 100  # real junctions, not a bag of separate lines
    assert pipes["depth_m"].isna().any() and pipes["depth_m"].notna().mean() > 0.9


def test_valves_sit_on_their_pipes_after_gcj02_conversion(city_dir: Path) -> None:
    valves = load(city_dir, DATASETS["water_valves"]).to_crs("EPSG:4545")
    pipes = gpd.read_file(city_dir / "water_pipes.gpkg", layer="water_pipes").set_index("pipe_id")
    own = pipes.loc[valves["pipe_id"], "geometry"].to_numpy()
    assert (shapely.distance(valves.geometry.to_numpy(), own) < 1.0).all()
    raw = pd.read_csv(city_dir / "water_valves.csv")
    # read naively as WGS84, the valves would be hundreds of metres off
    naive = gpd.GeoDataFrame(geometry=shapely.points(raw["lon"], raw["lat"]), crs="EPSG:4490").to_crs("EPSG:4545")
    assert (shapely.distance(naive.geometry.to_numpy(), valves.geometry.to_numpy()) > 100.0).all()


def test_gcj02_round_trip() -> None:
    lon = np.array([108.85, 108.95, 109.05])
    lat = np.array([34.18, 34.27, 34.36])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert np.all(np.abs(glon - lon) > 1e-3)  # a real offset (hundreds of metres)
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    assert np.allclose(back_lon, lon, atol=1e-8) and np.allclose(back_lat, lat, atol=1e-8)


def test_parcels_in_force_tile_the_districts(city_dir: Path) -> None:
    parcels = gpd.read_file(city_dir / "parcels.zip").to_crs("EPSG:4545")
    districts = load(city_dir, DATASETS["districts"]).to_crs("EPSG:4545")
    for day in ("2019-01-01", "2024-01-01"):
        t = pd.Timestamp(day)
        live = parcels[(parcels["valid_from"] <= t) & (parcels["valid_to"].isna() | (parcels["valid_to"] > t))]
        union = shapely.union_all(live.geometry.to_numpy())
        assert live.area.sum() == pytest.approx(union.area, rel=1e-6)  # no overlaps
        assert union.area == pytest.approx(districts.area.sum(), rel=1e-6)  # no gaps
    superseded = parcels[parcels["valid_to"].notna()]
    assert len(superseded) > 0 and set(superseded["plan_ver"]) == {"LS-KG-2018"}
    assert (parcels.loc[parcels["plan_ver"] == "LS-KG-2018-A1", "valid_to"].isna()).all()


def test_incident_times_are_naive_local_strings(city_dir: Path) -> None:
    lines = (city_dir / "incidents.geojsons").read_text("utf-8").splitlines()
    assert len(lines) == 5000
    stamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    props = [json.loads(line)["properties"] for line in lines]
    assert all(stamp.fullmatch(p["reported_at"]) for p in props)
    assert all(p["closed_at"] is None or stamp.fullmatch(p["closed_at"]) for p in props)
    reported = pd.to_datetime([p["reported_at"] for p in props])
    assert reported.min() >= pd.Timestamp("2025-01-01") and reported.max() < pd.Timestamp("2026-01-01")
    open_share = sum(p["closed_at"] is None for p in props) / len(props)
    assert 0.0 < open_share < 0.05
    floods = reported[[p["type"] == "flood" for p in props]]
    assert ((floods.month >= 6) & (floods.month <= 9)).mean() > 0.8


def test_air_quality_is_hourly_utc(city_dir: Path) -> None:
    air = gpd.read_parquet(city_dir / "air_quality.parquet")
    assert str(air["observed_at"].dt.tz) == "UTC"
    assert air["sensor_id"].nunique() == 20
    per_sensor = air.groupby("sensor_id")["observed_at"]
    assert (per_sensor.count() == 90 * 24).all()
    assert air["observed_at"].min() == pd.Timestamp("2025-01-01T00:00Z")
    assert air["observed_at"].max() == pd.Timestamp("2025-03-31T23:00Z")
    assert not air.duplicated(["sensor_id", "observed_at"]).any()
    sensors = gpd.read_file(city_dir / "sensors.geojson")
    feed = sensors[sensors["sensor_id"].isin(air["sensor_id"].unique())]
    assert (feed["kind"] == "air").all() and feed["removed_at"].isna().all()
    local_hour = (air["observed_at"].dt.hour + 8) % 24
    by_hour = air.groupby(local_hour)[["no2", "o3"]].mean()
    assert by_hour["o3"].idxmax() in range(12, 18)  # afternoon ozone peak
    assert by_hour["no2"].loc[[8, 19]].min() > by_hour["no2"].loc[[3, 14]].max()  # rush hours
    assert (air["pm10"].dropna() >= air["pm25"].dropna()).all()


def test_indoor_units_tile_their_levels(city_dir: Path) -> None:
    levels = load(city_dir, DATASETS["indoor_levels"]).to_crs("EPSG:4545")
    units = load(city_dir, DATASETS["indoor_units"]).to_crs("EPSG:4545")
    assert sorted(levels["ordinal"]) == [0, 1, 2]
    assert levels["building_id"].nunique() == 1
    for level in levels.itertuples():
        mine = units[units["level_id"] == level.level_id]
        assert set(mine["ordinal"]) == {level.ordinal}
        # coordinates are rounded to 1e-7 degree (about 1 cm) in the file
        assert mine.area.sum() == pytest.approx(level.geometry.area, rel=1e-4)
        assert shapely.union_all(mine.geometry.to_numpy()).area == pytest.approx(level.geometry.area, rel=1e-4)
        assert {"walkway", "stairs", "elevator"} <= set(mine["category"])


def test_districts_and_population_agree(city_dir: Path) -> None:
    districts = load(city_dir, DATASETS["districts"])
    grid = gpd.read_parquet(city_dir / "population_grid.parquet")
    assert districts["population"].sum() == grid["count_total"].sum()
    assert (grid["count_65plus"] <= grid["count_total"]).all()
    assert districts["district_code"].str.fullmatch(r"99\d{4}").all()


def test_registers_agree_with_the_population_grid(city_dir: Path) -> None:
    """The resident register holds the residents the population grid counts, cell by cell,
    and every company sits in a non-residential building."""
    import geopandas as gpd

    grid = gpd.read_parquet(city_dir / "population_grid.parquet")
    people = gpd.read_parquet(city_dir / "residents.parquet")
    assert len(people) == grid["count_total"].sum()
    assert (people["age_band"] == "65+").sum() == grid["count_65plus"].sum()
    cells = gpd.sjoin(people[["geometry"]], grid[["cell_id", "geometry"]], predicate="within")
    assert (cells.groupby("cell_id").size().reindex(grid["cell_id"]).to_numpy() == grid["count_total"]).all()
    firms = gpd.read_parquet(city_dir / "companies.parquet")
    buildings = gpd.read_parquet(city_dir / "buildings.parquet").set_index("building_id")
    assert (buildings.loc[firms["building_id"], "use"] != "residential").all()
