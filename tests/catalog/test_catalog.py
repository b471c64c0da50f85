"""Declarative catalogs are validated on load; describe() reports the computed extent."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import yaml

import geoplatform as gp
from geoplatform.catalog import describe, load_city_catalog
from geoplatform.errors import CatalogError

CATALOGS = Path(__file__).resolve().parents[2] / "catalogs"


def test_the_sample_city_catalog_loads() -> None:
    cat = load_city_catalog(CATALOGS / "sample_city.yaml")
    assert cat.city.generated
    names = [d.name for d in cat.datasets]
    assert {"water_pipes", "incidents", "parcels", "air_quality"} <= set(names)
    for d in cat.datasets:
        assert d.licence and d.source and d.department and d.theme
        assert d.generated  # the sample city is generated data, and says so


def _write_catalog(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    for f in ("departments.yaml", "themes.yaml"):
        shutil.copy(CATALOGS / f, tmp_path / f)
    data = yaml.safe_load((CATALOGS / "sample_city.yaml").read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d["datasets"][0].update(department="nowhere"), "unknown department 'nowhere'"),
    (lambda d: d["datasets"][0].update(theme="nothing"), "unknown theme 'nothing'"),
    (lambda d: d["datasets"].append(dict(d["datasets"][0])), "declared twice"),
    (lambda d: d["datasets"][0].update(licence=None), "licence and its source"),
    (lambda d: d["datasets"][0].update(open_level="secret"), "open_level"),
    (lambda d: d["datasets"][0].update(name="Bad Name"), "must match"),
    (lambda d: d["datasets"][0].update(colour="red"), "colour"),
    (lambda d: d["datasets"][0].update(schema=[{"name": "x", "type": "complex"}]), "schema"),
])
def test_bad_catalogs_name_the_problem(tmp_path: Path, mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    path = _write_catalog(tmp_path, mutate)
    with pytest.raises(CatalogError, match=match) as err:
        load_city_catalog(path)
    assert str(path) in str(err.value)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = _write_catalog(tmp_path, lambda d: None)
    path.write_text("city: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="malformed YAML"):
        load_city_catalog(path)


def test_describe_reports_extent_rows_and_history(tmp_path: Path) -> None:
    cube = gp.open_cube(tmp_path / "s")
    cube.create_dataset(gp.DatasetSpec(name="sites", title="Sites", department="water", theme="pipelines",
                                       licence="CC0-1.0", source="test", valid_from="t", instant=True))
    g = gpd.GeoDataFrame({"t": ["2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"]},
                         geometry=shapely.points([108.9, 109.0], [34.2, 34.3]), crs="EPSG:4490")
    cube.ingest("sites", g)
    rec = describe(cube, "sites")
    assert rec["rows"] == 2 and rec["title"] == "Sites" and rec["department"] == "water"
    assert rec["extent"]["spatial"]["bbox"] == pytest.approx([108.9, 34.2, 109.0, 34.3])
    assert rec["extent"]["spatial"]["bbox_crs84"] == pytest.approx([108.9, 34.2, 109.0, 34.3])
    assert rec["extent"]["temporal"] == ["2025-01-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00"]
    assert [s["operation"] for s in rec["snapshots"]] == ["create", "ingest"]
    assert rec["snapshots"][1]["rows_added"] == 2
    assert {f["name"] for f in rec["schema"]} == set()  # t is the valid time, not an attribute
