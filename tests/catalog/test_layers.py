"""Layer files are validated on load, against their model and against the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoplatform.catalog import load_city_catalog
from geoplatform.catalog.layers import LayerConfig, load_layers
from geoplatform.errors import CatalogError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_city_catalog(ROOT / "catalogs" / "sample_city.yaml")


def test_every_sample_dataset_is_published_once(catalog) -> None:  # type: ignore[no-untyped-def]
    layers = load_layers(ROOT / "layers", catalog)
    assert sorted(layer.dataset for layer in layers.values()) == sorted(d.name for d in catalog.datasets)
    pipes = layers["water-pipes"]
    assert pipes.editable and pipes.limits.max == 10_000 and "EPSG:4490" in pipes.crs


def _tree(tmp_path: Path, name: str, text: str, theme: str = "pipelines") -> Path:
    (tmp_path / theme).mkdir(parents=True, exist_ok=True)
    (tmp_path / theme / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("theme,text,match", [
    ("pipelines", "id: pipes\ndataset: nowhere\n", "does not declare"),
    ("planning", "id: pipes\ndataset: water_pipes\n", "belongs in layers/pipelines"),
    ("pipelines", "id: pipes\ndataset: water_pipes\nproperties: [material, colour]\n", r"\['colour'\]"),
    ("pipelines", "id: Pipes!\ndataset: water_pipes\n", "must match"),
    ("pipelines", "id: pipes\ndataset: water_pipes\nlimits: {default: 500, max: 100}\n", "above limits.max"),
    ("pipelines", "id: pipes\ndataset: water_pipes\ntiles: {min_zoom: 15, max_zoom: 3}\n", "above tiles.max_zoom"),
    ("pipelines", "id: pipes\ndataset: water_pipes\ncrs: [EPSG:999999]\n", "EPSG:999999"),
    ("pipelines", "id: pipes\ndataset: water_pipes\ncolour: blue\n", "colour"),
    ("pipelines", "id: [unclosed\n", "malformed YAML"),
])
def test_bad_layer_files_name_the_file_and_problem(tmp_path: Path, catalog, theme: str, text: str,  # type: ignore[no-untyped-def]
                                                   match: str) -> None:
    root = _tree(tmp_path, "bad.yaml", text, theme)
    with pytest.raises(CatalogError, match=match) as err:
        load_layers(root, catalog)
    assert "bad.yaml" in str(err.value)


def test_duplicate_ids(tmp_path: Path, catalog) -> None:  # type: ignore[no-untyped-def]
    _tree(tmp_path, "a.yaml", "id: pipes\ndataset: water_pipes\n")
    _tree(tmp_path, "b.yaml", "id: pipes\ndataset: water_valves\n")
    with pytest.raises(CatalogError, match="already used"):
        load_layers(tmp_path, catalog)


def test_defaults() -> None:
    layer = LayerConfig(id="x", dataset="x")
    assert layer.limits.default == 100 and not layer.editable and layer.tiles.enabled
    assert layer.crs[0] == "OGC:CRS84"
