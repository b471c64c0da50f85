"""``geoplatform city build`` and ``geoplatform demo``: the bundled sample city."""

from __future__ import annotations

import time
from pathlib import Path

import click

from geoplatform.cli.options import open_store, store_option

DEFAULT_CATALOGS = Path(__file__).resolve().parents[2] / "catalogs"


def build_city(store: Path | None, sources: Path, catalogs: Path, seed: int) -> list[str]:
    from geoplatform.catalog import load_city_catalog, publish
    from geoplatform.samples.city import build_sample_city

    catalog = load_city_catalog(catalogs / "sample_city.yaml", catalogs)
    t0 = time.perf_counter()
    build_sample_city(sources, seed=seed)
    lines = [f"generated the sample city's source files in {sources} ({time.perf_counter() - t0:.1f} s)"]
    cube = open_store(store)
    for report in publish(cube, catalog, sources):
        lines.append(f"  {report}")
    return lines


@click.group("city")
def city() -> None:
    """The bundled sample city (generated, seeded)."""


@city.command("build")
@store_option
@click.option("--sources", type=click.Path(path_type=Path), default=Path("var/sample_city"), show_default=True,
              help="Where the generated source files go.")
@click.option("--catalogs", type=click.Path(exists=True, path_type=Path), default=DEFAULT_CATALOGS,
              show_default=True)
@click.option("--seed", type=int, default=20261127, show_default=True)
def build(store: Path | None, sources: Path, catalogs: Path, seed: int) -> None:
    """Generate the sample city's files and publish them into the store."""
    for line in build_city(store, sources, catalogs, seed):
        click.echo(line)


@click.command("demo")
@store_option
@click.option("--sources", type=click.Path(path_type=Path), default=Path("var/sample_city"), show_default=True)
@click.option("--catalogs", type=click.Path(exists=True, path_type=Path), default=DEFAULT_CATALOGS)
def demo(store: Path | None, sources: Path, catalogs: Path) -> None:
    """Build the sample city into the store, then run a cross-sector space-time query."""
    for line in build_city(store, sources, catalogs, 20261127):
        click.echo(line)
    cube = open_store(store)
    # Incidents of March 2025 within 1 km of the city centre, with the water mains
    # and shelters around them: one question across three departments' data.
    centre = "POINT(108.95 34.27)"
    t0 = time.perf_counter()
    hits = cube.search(["incidents", "water_pipes", "shelters"], geometry=centre, geometry_crs="EPSG:4490",
                       predicate="dwithin", distance=1000.0, datetime="2025-03-01T00:00:00Z/2025-03-31T23:59:59Z")
    ms = (time.perf_counter() - t0) * 1000
    click.echo(f"\nwithin 1 km of {centre}, valid in March 2025 ({ms:.0f} ms):")
    for name, n in hits.groupby("dataset").size().items():
        click.echo(f"  {name}: {n}")
    inc = cube.count("incidents", datetime="2025-03-01T00:00:00Z/2025-03-31T23:59:59Z", filter="severity >= 4")
    click.echo(f"severe incidents (severity >= 4) in March 2025, city-wide: {inc}")
