"""``geoplatform query``: a space-time query, written as GeoJSON, CSV or GeoParquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geoplatform.cli.options import open_store, query_options, query_params, store_option
from geoplatform.cli.output import write


@click.command("query")
@store_option
@click.argument("names", nargs=-1, required=True)
@query_options
@click.option("--crs", default=None, help="Output CRS (default: CRS84 for GeoJSON, else the storage CRS).")
@click.option("--format", "fmt", type=click.Choice(["geojson", "csv", "parquet"]), default="geojson",
              show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="File (default: stdout).")
def query(store: Path | None, names: tuple[str, ...], crs: str | None, fmt: str, output: Path | None,
          **opts: Any) -> None:
    """Query one dataset, or several at once (adds a dataset column)."""
    cube = open_store(store)
    params = query_params(**opts)
    out_crs = crs or ("OGC:CRS84" if fmt == "geojson" else None)
    if len(names) == 1:
        gdf = cube.query(names[0], crs=out_crs, **params)
    else:
        gdf = cube.search(list(names), crs=out_crs or "EPSG:4490", **params)
    write(gdf, fmt, output)
    if output is not None:
        click.echo(f"{len(gdf)} features written to {output}", err=True)
