"""``geoplatform serve``: the OGC API over a store, under uvicorn."""

from __future__ import annotations

from pathlib import Path

import click

from geoplatform.cli.options import store_option


@click.command("serve")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--layers", "layers_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Layer files (default: the project's layers/).")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="City catalog (default: catalogs/sample_city.yaml).")
@click.option("--debug", is_flag=True, default=False,
              help="Tracebacks in error responses (development only; off unless asked for).")
def serve(store: Path | None, host: str, port: int, workers: int, layers_dir: Path | None,
          catalog: Path | None, debug: bool) -> None:
    """Serve the store's published layers as OGC API Features."""
    import os

    import uvicorn

    from geoplatform.settings import Settings

    settings = Settings()
    # The app factory reads these in each worker process.
    from geoplatform.cube.cube import is_database_url

    where = str(store or settings.database_url or settings.store)
    if is_database_url(where):  # a PostGIS store
        os.environ["GEOPLATFORM_DATABASE_URL"] = where
    else:
        os.environ["GEOPLATFORM_STORE"] = where
    if layers_dir is not None:
        os.environ["GEOPLATFORM_LAYERS"] = str(layers_dir)
    if catalog is not None:
        os.environ["GEOPLATFORM_CATALOG"] = str(catalog)
    if debug:
        os.environ["GEOPLATFORM_DEBUG"] = "1"
    app = "geoplatform.ogc.app:app_from_env"
    if workers == 1:
        uvicorn.run(app, factory=True, host=host, port=port, log_level="info")
    else:  # connections dealt to the workers in turn (geoplatform/ogc/workers.py)
        from geoplatform.ogc.workers import serve as serve_workers

        serve_workers(app, host=host, port=port, workers=workers, factory=True, log_level="info")


@click.command("pygeoapi-config")
@store_option
@click.option("--url", "base_url", default="http://127.0.0.1:5000", show_default=True,
              help="The URL pygeoapi will be served at.")
@click.option("--layers", "layers_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Layer files (default: the project's layers/).")
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="City catalog (default: catalogs/sample_city.yaml).")
def pygeoapi_config(store: Path | None, base_url: str, layers_dir: Path | None, catalog: Path | None) -> None:
    """Write a stock pygeoapi configuration (YAML, to stdout) that serves the
    store's published layers with geoplatform's provider."""
    import yaml

    from geoplatform.catalog.layers import load_layers
    from geoplatform.catalog.models import load_city_catalog
    from geoplatform.cli.options import open_store
    from geoplatform.ogc.app import ROOT
    from geoplatform.ogc.pygeoapi_config import pygeoapi_config as build
    from geoplatform.settings import Settings

    cube = open_store(store)
    cat = load_city_catalog(catalog or ROOT / "catalogs" / "sample_city.yaml")
    present = {s.name for s in cube.datasets()}
    layers = {k: v for k, v in load_layers(layers_dir or ROOT / "layers", cat).items() if v.dataset in present}
    root = Path(store or Settings().store).resolve()
    click.echo(yaml.safe_dump(build(cube, layers, cat, base_url, root), sort_keys=False, allow_unicode=True))
