"""Declarative catalogs: departments, themes and the datasets a city publishes.

They live as YAML in ``catalogs/`` and are validated on load: a dataset that
names an unknown department or theme, a duplicate name or a malformed field
is an error that names the file and the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from geoplatform.cube.model import DatasetSpec
from geoplatform.grids.model import GridSpec
from geoplatform.errors import CatalogError


class Department(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    name_zh: str | None = None
    description: str | None = None


class Theme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    title_zh: str | None = None
    description: str | None = None


class City(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    name_zh: str | None = None
    description: str | None = None
    generated: bool = False
    generator: str | None = None


class CityCatalog(BaseModel):
    """A city's published datasets, with the departments and themes they refer to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    city: City
    datasets: tuple[DatasetSpec, ...]
    grids: tuple[GridSpec, ...] = ()
    departments: tuple[Department, ...] = ()
    themes: tuple[Theme, ...] = ()

    def dataset(self, name: str) -> DatasetSpec:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)

    def department(self, ident: str) -> Department:
        for d in self.departments:
            if d.id == ident:
                return d
        raise KeyError(ident)

    def theme(self, ident: str) -> Theme:
        for t in self.themes:
            if t.id == ident:
                return t
        raise KeyError(ident)


def _load_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise CatalogError(f"{path}: no such catalog file") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: malformed YAML: {exc}") from None


def _validate(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
        raise CatalogError(f"{where}: {problems}") from None


def _load_list(path: Path, key: str, model: type[BaseModel], what: str) -> tuple[Any, ...]:
    data = _load_yaml(path) or {}
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise CatalogError(f"{path}: expected a '{key}' list")
    out = tuple(_validate(model, d, f"{path}: {key}[{i}]") for i, d in enumerate(items))
    _unique([d.id for d in out], path, what)
    return out


def load_departments(path: Path) -> tuple[Department, ...]:
    return _load_list(path, "departments", Department, "department")


def load_themes(path: Path) -> tuple[Theme, ...]:
    return _load_list(path, "themes", Theme, "theme")


def load_city_catalog(path: Path, catalogs_dir: Path | None = None) -> CityCatalog:
    """Load a city catalog and check it against ``departments.yaml`` and
    ``themes.yaml`` beside it (or in ``catalogs_dir``)."""
    base = catalogs_dir or path.parent
    departments = load_departments(base / "departments.yaml")
    themes = load_themes(base / "themes.yaml")
    data = _load_yaml(path)
    if not isinstance(data, dict) or "datasets" not in data or "city" not in data:
        raise CatalogError(f"{path}: expected 'city' and 'datasets'")
    unknown = sorted(set(data) - {"city", "datasets", "grids", "departments", "themes"})
    if unknown:
        raise CatalogError(f"{path}: unknown top-level keys {unknown}")
    city = _validate(City, data["city"], f"{path}: city")
    datasets = []
    for i, d in enumerate(data["datasets"] or []):
        name = d.get("name", f"#{i}") if isinstance(d, dict) else f"#{i}"
        datasets.append(_validate(DatasetSpec, d, f"{path}: dataset {name}"))
    grids = []
    for i, g in enumerate(data.get("grids") or []):
        name = g.get("name", f"#{i}") if isinstance(g, dict) else f"#{i}"
        grids.append(_validate(GridSpec, g, f"{path}: grid {name}"))
    _unique([d.name for d in datasets] + [g.name for g in grids], path, "dataset or grid")
    dep_ids = {d.id for d in departments}
    theme_ids = {t.id for t in themes}
    for d in [*datasets, *grids]:
        if d.department is not None and d.department not in dep_ids:
            raise CatalogError(f"{path}: dataset {d.name}: unknown department {d.department!r} "
                               f"(known: {sorted(dep_ids)})")
        if d.theme is not None and d.theme not in theme_ids:
            raise CatalogError(f"{path}: dataset {d.name}: unknown theme {d.theme!r} (known: {sorted(theme_ids)})")
        bad = [s for s in d.shared_with if s not in dep_ids]
        if bad:
            raise CatalogError(f"{path}: dataset {d.name}: shared_with names unknown departments {bad}")
        if not d.licence or not d.source:
            raise CatalogError(f"{path}: dataset {d.name}: every dataset says its licence and its source")
    return CityCatalog(city=city, datasets=tuple(datasets), grids=tuple(grids), departments=departments,
                       themes=themes)


def _unique(ids: list[str], path: Path, what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise CatalogError(f"{path}: {what} {i!r} is declared twice")
        seen.add(i)
