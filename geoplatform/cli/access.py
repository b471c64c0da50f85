"""``geoplatform access``: the platform's users and their API keys."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def access() -> None:
    """Users, their roles per department, and their API keys."""


def _file(path: Path | None) -> Path:
    from geoplatform.settings import Settings

    got = path or Settings().access_file
    if got is None:
        raise click.UsageError("give --file or set GEOPLATFORM_ACCESS_FILE")
    return got


@access.command("key")
@click.argument("name")
@click.option("--role", "roles", multiple=True, metavar="DEPARTMENT=ROLE",
              help="A role in a department (reader, editor, steward, admin; '*' for every department's shared "
                   "data). Repeatable; needed for a new user, replaces the roles of a known one.")
@click.option("--file", "path", type=click.Path(path_type=Path), envvar="GEOPLATFORM_ACCESS_FILE",
              help="The access file (default GEOPLATFORM_ACCESS_FILE).")
@click.option("--catalog", type=click.Path(path_type=Path, exists=True), default=None,
              help="City catalog whose departments the roles must name (default the sample city's).")
def key(name: str, roles: tuple[str, ...], path: Path | None, catalog: Path | None) -> None:
    """Make an API key for NAME, print it once, and add its hash to the access file."""
    from geoplatform.access.credentials import AccessFile
    from geoplatform.catalog.models import load_city_catalog
    from geoplatform.ogc.app import ROOT

    parsed = {}
    for r in roles:
        dep, sep, role = r.partition("=")
        if not sep or not dep or not role:
            raise click.BadParameter(f"{r!r} is not DEPARTMENT=ROLE", param_hint="--role")
        parsed[dep] = role
    cat = load_city_catalog(catalog or ROOT / "catalogs" / "sample_city.yaml")
    departments = {d.id for d in cat.departments}
    f = _file(path)
    made = AccessFile.load(f, departments).add_key(name, parsed or None, departments)
    click.echo(made)
    click.echo(f"(the key of {name!r}; only its SHA-256 is kept, in {f})", err=True)


@access.command("list")
@click.option("--file", "path", type=click.Path(path_type=Path), envvar="GEOPLATFORM_ACCESS_FILE")
def list_(path: Path | None) -> None:
    """The users of the access file with their roles and how many keys they hold."""
    from geoplatform.access.credentials import AccessFile

    for u in AccessFile.load(_file(path)).users:
        roles = ", ".join(f"{d}={r}" for d, r in sorted(u.roles.items()))
        click.echo(f"{u.name}  {roles}  keys: {len(u.keys)}")
