"""The geoplatform command, driven as a user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner

from geoplatform.cli.main import cli


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    g = gpd.GeoDataFrame({
        "incident_id": ["I1", "I2", "I3"],
        "type": ["fire", "flood", "fire"],
        "severity": [3, 5, 1],
        "reported_at": ["2025-03-04 14:22:10", "2025-03-05 08:00:00", "2025-04-01 12:00:00"],
    }, geometry=shapely.points([108.95, 108.96, 109.0], [34.27, 34.28, 34.3]), crs="EPSG:4326")
    src = tmp_path / "incidents.geojson"
    g.to_file(src, driver="GeoJSON")
    spec = tmp_path / "incidents.yaml"
    spec.write_text(
        "title: Incidents\nfid: incident_id\nvalid_from: reported_at\ninstant: true\n"
        "time_zone: Asia/Shanghai\ntime_partition: month\ngeometry_type: Point\n"
        "schema:\n  - {name: type, type: string, enum: [fire, flood]}\n  - {name: severity, type: integer}\n",
        encoding="utf-8")
    return {"src": src, "spec": spec, "store": tmp_path / "store"}


def run(*args: str, ok: bool = True) -> str:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    else:
        assert res.exit_code == 1, res.output
    return res.output


def test_create_ingest_list_show_history(files: dict[str, Path]) -> None:
    store = str(files["store"])
    assert "created incidents" in run("dataset", "create", "incidents", "--spec", str(files["spec"]), "--store", store)
    out = run("dataset", "ingest", "incidents", str(files["src"]), "--store", store)
    assert "3 added" in out
    assert "nothing changed" in run("dataset", "ingest", "incidents", str(files["src"]), "--store", store)
    listing = run("dataset", "list", "--store", store)
    assert "incidents" in listing and " 3 " in listing
    record = json.loads(run("dataset", "show", "incidents", "--store", store))
    assert record["rows"] == 3 and record["title"] == "Incidents" and record["storage_crs"] == "EPSG:4490"
    assert record["extent"]["temporal"][0].startswith("2025-03-04T06:22:10")
    hist = run("dataset", "history", "incidents", "--store", store)
    assert "create" in hist and "ingest" in hist
    assert "version 1" in run("dataset", "history", "incidents", "I1", "--store", store)


def test_query_formats(files: dict[str, Path], tmp_path: Path) -> None:
    store = str(files["store"])
    run("dataset", "ingest", "incidents", str(files["src"]), "--create", "--spec", str(files["spec"]), "--store", store)
    fc = json.loads(run("query", "incidents", "--datetime", "2025-03-01T00:00:00Z/2025-03-31T23:59:59Z",
                        "--filter", "type = 'fire'", "--store", store))
    assert [f["id"] for f in fc["features"]] == ["I1"]
    assert fc["features"][0]["geometry"]["coordinates"] == pytest.approx([108.95, 34.27])
    csv_out = run("query", "incidents", "--format", "csv", "--sortby", "-severity", "--store", store)
    assert csv_out.splitlines()[1].startswith("I2,")
    pq = tmp_path / "out.parquet"
    run("query", "incidents", "--bbox", "108.9,34.2,108.97,34.29", "--format", "parquet", "-o", str(pq),
        "--store", store)
    assert sorted(gpd.read_parquet(pq)["fid"]) == ["I1", "I2"]


def test_delete(files: dict[str, Path]) -> None:
    store = str(files["store"])
    run("dataset", "ingest", "incidents", str(files["src"]), "--create", "--spec", str(files["spec"]), "--store", store)
    assert "ended 1" in run("dataset", "delete", "incidents", "--feature", "I2", "--store", store)
    assert len(json.loads(run("query", "incidents", "--store", store))["features"]) == 2
    assert "--yes" in run("dataset", "delete", "incidents", "--store", store, ok=False)
    run("dataset", "delete", "incidents", "--yes", "--store", store)
    assert "no datasets" in run("dataset", "list", "--store", store)


def test_errors_are_one_clear_line(files: dict[str, Path], tmp_path: Path) -> None:
    store = str(files["store"])
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [],}', encoding="utf-8")
    run("dataset", "create", "incidents", "--spec", str(files["spec"]), "--store", store)
    out = run("dataset", "ingest", "incidents", str(bad), "--store", store, ok=False)
    assert "malformed JSON at line 1" in out and "Traceback" not in out
    out = run("query", "nope", "--store", store, ok=False)
    assert "DatasetNotFound" in out
    res = CliRunner().invoke(cli, ["query", "incidents", "--bbox", "1,2,x,4", "--store", store])
    assert res.exit_code == 2 and "--bbox" in res.output


def test_console_script_is_installed() -> None:
    exe = shutil.which("geoplatform", path=str(Path(sys.executable).parent))
    assert exe is not None
    res = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "dataset" in res.stdout and "query" in res.stdout


def test_compact(files: dict[str, Path], tmp_path: Path) -> None:
    store = str(files["store"])
    spec = tmp_path / "copy.yaml"
    spec.write_text(files["spec"].read_text(encoding="utf-8") + "space_copy: true\n", encoding="utf-8")
    run("dataset", "create", "incidents", "--spec", str(spec), "--store", store)
    g = gpd.read_file(files["src"])
    for i in range(3):  # three commits: three space-copy files
        part = files["src"].with_name(f"part{i}.geojson")
        g.iloc[i:i + 1].to_file(part, driver="GeoJSON")
        run("dataset", "ingest", "incidents", str(part), "--store", store)
    before = run("query", "incidents", "--store", store, "--bbox", "108.9,34.2,109.1,34.4")
    out = run("dataset", "compact", "incidents", "--store", store)
    assert "compacted space from 3 files to 1" in out
    assert run("query", "incidents", "--store", store, "--bbox", "108.9,34.2,109.1,34.4") == before
    assert "nothing to compact" in run("dataset", "compact", "incidents", "--store", store)
    run("dataset", "compact", "nosuch", "--store", store, ok=False)
