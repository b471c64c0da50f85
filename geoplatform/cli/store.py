"""``geoplatform store``: whole stores, e.g. moving one between backends."""

from __future__ import annotations

import click

from geoplatform.errors import GeoPlatformError


@click.group()
def store() -> None:
    """Work on whole stores."""


@store.command("copy")
@click.argument("source")
@click.argument("target")
@click.option("--dataset", "datasets", multiple=True, help="Copy only this dataset (repeatable; default all).")
def copy(source: str, target: str, datasets: tuple[str, ...]) -> None:
    """Copy the datasets of SOURCE into TARGET with their whole history, then check the copy.

    SOURCE and TARGET are store folders (the embedded store) or postgresql://
    database URLs (PostGIS). Each dataset's snapshots are replayed in order with
    their commit times; the check compares the snapshots, every record ever held
    and each snapshot's rows by count and checksum. Exits 1 if any differ.
    """
    import geoplatform as gp
    from geoplatform.settings import Settings
    from geoplatform.storage.copy import copy_store

    settings = Settings()
    src = gp.open_cube(source, settings=settings)
    dst = gp.open_cube(target, settings=settings)
    reports = copy_store(src.backend, dst.backend, list(datasets) or None, progress=lambda m: click.echo(m, err=True))
    header = ("dataset", "snapshots", "records", "current", "checksum", "check")
    rows = [(r.name, str(r.snapshots), str(r.records), str(r.current), r.checksum, "same" if r.ok else "DIFFERS")
            for r in reports]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    bad = [r for r in reports if not r.ok]
    for r in bad:
        for p in r.problems:
            click.echo(f"{r.name}: {p}", err=True)
    if bad:
        raise GeoPlatformError(f"{len(bad)} of {len(reports)} datasets differ after the copy")
