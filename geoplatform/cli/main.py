"""The ``geoplatform`` command: ``geoplatform <noun> <verb>``."""

from __future__ import annotations

import click

from geoplatform.cli.access import access
from geoplatform.cli.city import city, demo
from geoplatform.cli.dataset import dataset
from geoplatform.cli.options import PlatformGroup
from geoplatform.cli.query import query
from geoplatform.cli.serve import pygeoapi_config, serve
from geoplatform.cli.store import store


@click.group(cls=PlatformGroup)
@click.version_option(package_name="geoplatform")
def cli() -> None:
    """geoplatform: a city spatio-temporal data platform."""


cli.add_command(dataset)
cli.add_command(query)
cli.add_command(city)
cli.add_command(demo)
cli.add_command(serve)
cli.add_command(pygeoapi_config)
cli.add_command(store)
cli.add_command(access)
