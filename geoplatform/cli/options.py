"""Options shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from geoplatform.errors import GeoPlatformError
from geoplatform.settings import Settings


def store_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--store", type=str, envvar="GEOPLATFORM_STORE", default=None, show_envvar=True,
                        help="Store folder, or a postgresql:// database URL for the PostGIS backend "
                             "(default: settings, GEOPLATFORM_DATABASE_URL or var/store).")(f)


def user_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--api-key / --token: act as that user, under the access policy."""
    f = click.option("--token", envvar="GEOPLATFORM_USER_TOKEN", default=None, show_envvar=True,
                     help="Act as the user of this bearer token (JWT), under the access policy.")(f)
    return click.option("--api-key", envvar="GEOPLATFORM_USER_API_KEY", default=None, show_envvar=True,
                        help="Act as the user of this API key (from the access file), under the access "
                             "policy: only what that user may see and change.")(f)


def open_store(store: str | Path | None) -> Any:
    """The store, as the user of the command's --api-key / --token sees it (if given)."""
    import geoplatform as gp

    settings = Settings()
    ctx = click.get_current_context(silent=True)
    user = (ctx.find_root().obj if ctx is not None else None) or {}
    return gp.open_cube(store or settings.database_url or settings.store, settings=settings,
                        api_key=user.get("api_key") or None, token=user.get("token") or None)


def query_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--bbox", help="minx,miny,maxx,maxy (in --bbox-crs)."),
        click.option("--bbox-crs", default=None, help="CRS of --bbox (default: the storage CRS)."),
        click.option("--datetime", "datetime_", default=None,
                     help="Instant or interval on valid time: 2025-01-01T00:00:00Z/.. (open ends with ..)."),
        click.option("--as-of", default=None, help="Snapshot id or time: what the platform knew then."),
        click.option("--filter", "filter_", default=None, help="CQL2 filter."),
        click.option("--filter-lang", type=click.Choice(["cql2-text", "cql2-json"]), default=None),
        click.option("--properties", default=None, help="Comma-separated properties to return."),
        click.option("--sortby", default=None, help="e.g. -height,name"),
        click.option("--limit", type=click.IntRange(min=0), default=None),
        click.option("--offset", type=click.IntRange(min=0), default=0),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def query_params(bbox: str | None, bbox_crs: str | None, datetime_: str | None, as_of: str | None,
                 filter_: str | None, filter_lang: str | None, properties: str | None, sortby: str | None,
                 limit: int | None, offset: int) -> dict[str, Any]:
    params: dict[str, Any] = {"offset": offset}
    if bbox:
        try:
            params["bbox"] = [float(v) for v in bbox.split(",")]
        except ValueError:
            raise click.BadParameter(f"{bbox!r} is not minx,miny,maxx,maxy", param_hint="--bbox") from None
    for key, val in (("bbox_crs", bbox_crs), ("datetime", datetime_), ("as_of", as_of), ("filter", filter_),
                     ("filter_lang", filter_lang), ("sortby", sortby), ("limit", limit)):
        if val is not None:
            params[key] = val
    if properties:
        params["properties"] = [p.strip() for p in properties.split(",") if p.strip()]
    return params


class PlatformGroup(click.Group):
    """Turns the platform's errors into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GeoPlatformError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
