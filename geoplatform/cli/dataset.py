"""``geoplatform dataset ...``: create, ingest, list, show, history, delete."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
import yaml

from geoplatform.cli.options import open_store, store_option
from geoplatform.cube.model import DatasetSpec
from geoplatform.errors import CatalogError


@click.group("dataset")
def dataset() -> None:
    """Manage the datasets of a store."""


def _spec_from(spec_file: Path | None, catalog: Path | None, name: str) -> DatasetSpec | None:
    if spec_file is not None:
        try:
            data = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CatalogError(f"{spec_file}: malformed YAML: {exc}") from None
        data = {**data, "name": data.get("name", name)}
        return DatasetSpec.model_validate(data)
    if catalog is not None:
        from geoplatform.catalog import load_city_catalog

        try:
            return load_city_catalog(catalog).dataset(name)
        except KeyError:
            raise click.ClickException(f"{catalog} declares no dataset {name!r}") from None
    return None


@dataset.command("create")
@store_option
@click.argument("name")
@click.option("--spec", "spec_file", type=click.Path(exists=True, path_type=Path), help="Dataset spec (YAML).")
@click.option("--catalog", type=click.Path(exists=True, path_type=Path), help="Take the spec from a city catalog.")
def create(store: Path | None, name: str, spec_file: Path | None, catalog: Path | None) -> None:
    """Declare dataset NAME (schema inferred at the first ingest if not declared)."""
    spec = _spec_from(spec_file, catalog, name) or DatasetSpec(name=name)
    snap = open_store(store).create_dataset(spec)
    click.echo(f"created {spec.name} (snapshot {snap.id})")


@dataset.command("ingest")
@store_option
@click.argument("name")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--mode", type=click.Choice(["upsert", "append", "replace"]), default="upsert", show_default=True)
@click.option("--on-invalid", type=click.Choice(["raise", "warn", "fix", "skip"]), default="raise",
              show_default=True, help="What an invalid geometry does.")
@click.option("--source-crs", default=None, help="CRS of the source when it has none or is wrong (e.g. GCJ-02).")
@click.option("--layer", default=None, help="Layer of a multi-layer file.")
@click.option("--x", "csv_x", default=None, help="CSV: x / longitude column.")
@click.option("--y", "csv_y", default=None, help="CSV: y / latitude column.")
@click.option("--wkt", "csv_wkt", default=None, help="CSV: WKT geometry column.")
@click.option("--create", "create_missing", is_flag=True, help="Create the dataset first if it is missing.")
@click.option("--spec", "spec_file", type=click.Path(exists=True, path_type=Path), help="Spec for --create.")
@click.option("--catalog", type=click.Path(exists=True, path_type=Path), help="Catalog for --create.")
def ingest(store: Path | None, name: str, source: Path, mode: str, on_invalid: str, source_crs: str | None,
           layer: str | None, csv_x: str | None, csv_y: str | None, csv_wkt: str | None, create_missing: bool,
           spec_file: Path | None, catalog: Path | None) -> None:
    """Load SOURCE into dataset NAME as one snapshot."""
    cube = open_store(store)
    if create_missing and name not in cube:
        cube.create_dataset(_spec_from(spec_file, catalog, name) or DatasetSpec(name=name))
    csv = None
    if csv_wkt or csv_x or csv_y:
        csv = {"wkt": csv_wkt} if csv_wkt else {"x": csv_x, "y": csv_y}
    report = cube.ingest(name, source, mode=mode, on_invalid=on_invalid, source_crs=source_crs, layer=layer,
                         csv=csv)
    click.echo(str(report))
    for item in report.invalid[:20]:
        click.echo(f"  invalid geometry: row {item['row']} (fid {item['fid']}): {item['reason']}", err=True)


@dataset.command("list")
@store_option
def list_(store: Path | None) -> None:
    """List datasets with their row counts."""
    cube = open_store(store)
    rows = [(s.name, s.theme or "", s.department or "", s.open_level, str(cube.stats(s.name).rows), s.title or "")
            for s in cube.datasets()]
    if not rows:
        click.echo("no datasets")
        return
    header = ("name", "theme", "department", "open", "rows", "title")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@dataset.command("show")
@store_option
@click.argument("name")
def show(store: Path | None, name: str) -> None:
    """Show the catalog record of dataset NAME (JSON)."""
    from geoplatform.catalog import describe

    click.echo(orjson.dumps(describe(open_store(store), name), option=orjson.OPT_INDENT_2).decode())


@dataset.command("history")
@store_option
@click.argument("name")
@click.argument("fid", required=False)
def history(store: Path | None, name: str, fid: str | None) -> None:
    """Snapshots of dataset NAME, or the versions of feature FID."""
    cube = open_store(store)
    if fid is None:
        for s in cube.snapshots(name):
            extra = " ".join(f"{k}={v}" for k, v in s.summary.items() if k != "source")
            click.echo(f"{s.id}\t{s.committed_at.isoformat()}\t{s.operation}\t{extra}")
        return
    versions = cube.history(name, fid)
    for row in versions.drop(columns="geometry").itertuples(index=False):
        d = row._asdict()
        click.echo(f"version {d['version']}\trecord {d['record_from']}..{d.get('record_to') or ''}\t"
                   f"valid {d['valid_from']}..{d['valid_to']}")


@dataset.command("compact")
@store_option
@click.argument("name")
def compact(store: Path | None, name: str) -> None:
    """Rewrite dataset NAME's space copy, scattered over one file per commit, as one sorted run.

    What any snapshot reads stays the same; tiles and bbox-only pages read fewer files.
    """
    done = open_store(store).compact(name)
    if done is None:
        click.echo(f"{name}: nothing to compact")
        return
    click.echo(f"{name}: compacted " + ", ".join(f"{k} from {v['files_before']} files to {v['files_after']}"
                                                  for k, v in done.items()))


@dataset.command("delete")
@store_option
@click.argument("name")
@click.option("--feature", "features", multiple=True, help="Delete only these features (ends them; history stays).")
@click.option("--yes", is_flag=True, help="Confirm deleting the whole dataset and its history.")
def delete(store: Path | None, name: str, features: tuple[str, ...], yes: bool) -> None:
    """Delete features of dataset NAME, or the whole dataset with --yes."""
    cube = open_store(store)
    if features:
        snap = cube.delete_features(name, features)
        click.echo(f"{name}: ended {len(features)} features in snapshot {snap.id}")
        return
    if not yes:
        raise click.ClickException(f"deleting dataset {name!r} removes it and its history: pass --yes")
    cube.drop_dataset(name)
    click.echo(f"deleted {name}")
