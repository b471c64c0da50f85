"""The ``geoplatform`` command: ``geoplatform <noun> <verb>``."""

from __future__ import annotations

import click

from geoplatform.cli.access import access
from geoplatform.cli.city import city, demo
from geoplatform.cli.dataset import dataset
from geoplatform.cli.options import PlatformGroup, user_options
from geoplatform.cli.query import query
from geoplatform.cli.serve import pygeoapi_config, serve
from geoplatform.cli.store import store


@click.group(cls=PlatformGroup)
@click.version_option(package_name="geoplatform")
@user_options
@click.pass_context
def cli(ctx: click.Context, api_key: str | None, token: str | None) -> None:
    """geoplatform: a city spatio-temporal data platform.

    With --api-key or --token, every command acts as that user: it lists, reads and
    changes only what the user may (the same access policy as the server's).
    """
    ctx.obj = {"api_key": api_key, "token": token}


cli.add_command(dataset)
cli.add_command(query)
cli.add_command(city)
cli.add_command(demo)
cli.add_command(serve)
cli.add_command(pygeoapi_config)
cli.add_command(store)
cli.add_command(access)
