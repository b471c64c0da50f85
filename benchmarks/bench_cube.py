"""The cube benchmark, with its anchors measured in the same run.

    python benchmarks/bench_cube.py [--rows 10000000] [--quick] [--reps 30]
                                    [--backends embedded,postgis]

The cube is measured on both of its storage backends in the same run: the
embedded store (GeoParquet files in benchmarks/data/cube) and the PostGIS
backend (schema ``cube`` of the benchmark database, opened with a
``postgresql://`` URL).

Sections (each printed as a Markdown table, and written to
benchmarks/results/cube.md + cube.json; a --quick run writes cube-quick.*):

1. ingest: 1M points and 1M polygons into the cube on each backend
   (committed) vs ``ogr2ogr`` into PostGIS (COPY, GiST index) of the same rows;
2. bbox + time queries (small 2 km / 7 d, medium 10 km / 30 d, large 25 km /
   90 d) at seeded random positions: the cube on each backend (Arrow,
   GeoDataFrame, count) vs PostGIS (rows fetched, count(*)), DuckDB over the
   unsorted Parquet (Arrow) and geopandas read_parquet(bbox=) + time filter;
3. as_of overhead, on each backend: the same small / medium queries without
   as_of, with the latest snapshot and with the 5th of 10 snapshots (the
   windows are chosen inside the data that snapshot already holds, so all
   three return the same rows);
4. targets (the embedded store's): met / not met.

Every query's row count is compared across systems; a mismatch is printed
loudly and recorded.  Only 127.0.0.1 is contacted; every step ends by itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import anchors as A  # noqa: E402
import generate as G  # noqa: E402

RESULTS = HERE / "results"
CUBE_DIR = G.DATA / "cube"
UTC = dt.timezone.utc

SIZES = {  # name: (side km, days)
    "small": (2.0, 7),
    "medium": (10.0, 30),
    "large": (25.0, 90),
}
TARGET_ARROW_P95_MS = 50.0
TARGET_GDF_P95_MS = 250.0
TARGET_GDF_MAX_ROWS = 100_000
TARGET_POINTS_PER_S = 500_000
TARGET_POLYGONS_PER_S = 200_000
TARGET_ASOF_OVERHEAD = 0.20

MISMATCHES: list[str] = []
FAILURES: list[str] = []

BACKENDS = ("embedded", "postgis")
PG_CUBE_SCHEMA = "cube"  # the PostGIS backend's tables, beside the anchor tables in public
# per backend: the prefix of its rows' names and the key of its results in the JSON
PREFIX = {"embedded": "ours", "postgis": "ours on PostGIS"}
KEY = {"embedded": "", "postgis": "_postgis"}


def write_results(out_stem: Path | str, res: dict, md: str, log) -> None:
    """Print the Markdown report and write it and the raw results beside the benchmark."""
    log("\n" + md)
    Path(out_stem).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out_stem}.md").write_text(md + "\n")
    Path(f"{out_stem}.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    log(f"wrote {out_stem}.md and {out_stem}.json in {res['seconds_total']:.0f}s")


def log(*a):
    print(*a, flush=True)


def fail(what: str, exc: BaseException) -> None:
    msg = f"{what}: {type(exc).__name__}: {exc}"
    FAILURES.append(msg)
    log(f"!!! FAILED {msg}")
    log("".join(traceback.format_exception(exc)[-6:]))


# --------------------------------------------------------------------------- queries

def make_queries(n: int, seed: int, city: G.City, t_end: np.datetime64,
                 sizes=SIZES) -> dict[str, list[tuple[tuple, tuple]]]:
    """n seeded (bbox, window) pairs per size, boxes inside the city, windows inside [T0, t_end]."""
    rng = np.random.default_rng(seed)
    minlon, minlat, maxlon, maxlat = city.bounds_deg
    t0 = G.T0.astype("datetime64[s]").astype("int64")
    t1 = t_end.astype("datetime64[s]").astype("int64")
    out = {}
    for name, (km, days) in sizes.items():
        w = km * city.deg_per_km_lon
        h = km * city.deg_per_km_lat
        qs = []
        for _ in range(n):
            x = float(rng.uniform(minlon, maxlon - w))
            y = float(rng.uniform(minlat, maxlat - h))
            s = int(rng.integers(t0, t1 - days * 86400))
            start = dt.datetime.fromtimestamp(s, UTC)
            qs.append(((x, y, x + w, y + h), (start, start + dt.timedelta(days=days))))
        out[name] = qs
    return out


def timed(fn, *args):
    t = time.perf_counter()
    r = fn(*args)
    return (time.perf_counter() - t) * 1000.0, r


def nrows(r) -> int:
    if isinstance(r, int):
        return r
    if hasattr(r, "num_rows"):
        return r.num_rows
    return len(r)


def run_system(name: str, fn, queries, warm: bool = True) -> dict:
    """Warm-up pass (untimed) then one timed pass over all positions."""
    if warm:
        for bbox, win in queries:
            fn(bbox, win)
    ms, rows = [], []
    gc.collect()
    for bbox, win in queries:
        t, r = timed(fn, bbox, win)
        ms.append(t)
        rows.append(nrows(r))
        del r
    return summarise(name, ms, rows)


def summarise(name, ms, rows) -> dict:
    a = np.array(ms)
    return {
        "system": name,
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
        "n": len(ms),
        "rows_median": float(np.median(rows)),
        "rows_max": int(max(rows)),
        "rows": [int(r) for r in rows],
        "ms": [round(float(x), 3) for x in ms],
    }


def check_counts(section: str, results: list[dict]) -> None:
    base = None
    for r in results:
        if "rows" not in r:
            continue
        if base is None:
            base = r
            continue
        if r["rows"] != base["rows"]:
            bad = [i for i, (a, b) in enumerate(zip(base["rows"], r["rows"])) if a != b]
            msg = (f"{section}: {r['system']} returned different row counts from {base['system']} "
                   f"at {len(bad)} of {len(r['rows'])} positions, e.g. #{bad[0]}: "
                   f"{r['rows'][bad[0]]} vs {base['rows'][bad[0]]}")
            MISMATCHES.append(msg)
            log("\n" + "!" * 78 + f"\n!!! ROW COUNT MISMATCH  {msg}\n" + "!" * 78 + "\n")


# --------------------------------------------------------------------------- the cube (ours)

def import_cube():
    import geoplatform as gp

    if not hasattr(gp, "open_cube"):
        raise ImportError("geoplatform has no open_cube yet")
    return gp


def postgis_cube_url() -> str:
    """The benchmark database, with the cube's tables in a schema of their own."""
    return (f"postgresql://{A.PG_USER}@{A.PG_HOST}:{A.PG_PORT}/{A.PG_DB}"
            f"?options=-csearch_path%3D{PG_CUBE_SCHEMA},public")


def open_backend(gp, backend: str):
    """The cube on ``backend``; the PostGIS one starts from an empty schema."""
    if backend == "embedded":
        return gp.open_cube(str(CUBE_DIR))
    with A.pg_connect() as c:
        c.execute(f"DROP SCHEMA IF EXISTS {PG_CUBE_SCHEMA} CASCADE")
        c.execute(f"CREATE SCHEMA {PG_CUBE_SCHEMA}")
    return gp.open_cube(postgis_cube_url())


def point_spec(gp, name: str):
    return gp.DatasetSpec(
        name=name, title="Benchmark observations", geometry_type="Point",
        storage_crs="EPSG:4490", fid=None, valid_from="observed_at", valid_to=None, instant=True,
        time_partition="week",
        schema=[gp.Field(name="sensor_id", type="integer"), gp.Field(name="value", type="number"),
                gp.Field(name="quality", type="string")],
    )


def polygon_spec(gp, name: str):
    return gp.DatasetSpec(
        name=name, title="Benchmark footprints", geometry_type="Polygon",
        storage_crs="EPSG:4490", fid=None, valid_from="observed_at", valid_to=None, instant=True,
        time_partition="week",
        schema=[gp.Field(name="zone_id", type="integer"), gp.Field(name="value", type="number"),
                gp.Field(name="quality", type="string")],
    )


def fresh_dataset(gp, cube, spec):
    try:
        cube.drop_dataset(spec.name)
    except gp.errors.DatasetNotFound:
        pass
    except KeyError:
        pass
    cube.create_dataset(spec)


def cube_ingest_bench(gp, cube, spec_fn, name, src: Path, rows: int, reps: int, who: str = "ours") -> dict:
    runs = []
    for i in range(reps):
        fresh_dataset(gp, cube, spec_fn(gp, name))
        gc.collect()
        t = time.perf_counter()
        rep = cube.ingest(name, str(src))
        secs = time.perf_counter() - t
        added = getattr(rep, "rows_added", None)
        if added is not None and added != rows:
            MISMATCHES.append(f"ingest {name}: rows_added {added} != {rows}")
            log(f"!!! ROW COUNT MISMATCH ingest {name}: rows_added {added} != {rows}")
        runs.append({"seconds": secs, "report_seconds": getattr(rep, "seconds", None),
                     "rows_added": added, "rows_per_s": rows / secs})
        log(f"  {who} {name}: {rows:,} rows in {secs:.2f}s = {rows / secs:,.0f} rows/s")
    cube.drop_dataset(name)
    return {"runs": runs, "rows_per_s": float(np.median([r["rows_per_s"] for r in runs])),
            "seconds": float(np.median([r["seconds"] for r in runs]))}


def load_obs(gp, cube, parts: list[Path], rows: int, who: str) -> tuple[dict, list]:
    """The ``obs`` dataset as one ingest per part (one snapshot each); returns the
    load's figures and the snapshot ids."""
    log(f"\n## {who}: loading {rows:,} points as {len(parts)} ingests")
    fresh_dataset(gp, cube, point_spec(gp, "obs"))
    chunks, snap_ids = [], []
    n = rows // len(parts)
    for i, part in enumerate(parts):
        t = time.perf_counter()
        rep = cube.ingest("obs", str(part))
        secs = time.perf_counter() - t
        snap_ids.append(rep.snapshot_id)
        chunks.append({"part": part.name, "seconds": secs, "rows_per_s": n / secs,
                       "rows_added": getattr(rep, "rows_added", None), "snapshot_id": rep.snapshot_id})
        log(f"  ingest {i + 1}/{len(parts)}: {n:,} rows in {secs:.2f}s "
            f"({n / secs:,.0f} rows/s), snapshot {rep.snapshot_id}")
    out = {"chunks": chunks, "rows_per_s_median": float(np.median([c["rows_per_s"] for c in chunks])),
           "seconds_total": float(sum(c["seconds"] for c in chunks))}
    try:
        out["snapshots"] = [getattr(s, "id", None) for s in cube.snapshots("obs")]
    except Exception as e:  # noqa: BLE001
        fail(f"{who}: cube.snapshots", e)
    try:
        st = cube.stats("obs")
        out["stored_rows"] = st.rows
        if st.rows != rows:
            MISMATCHES.append(f"{who} obs: {st.rows} rows stored, expected {rows}")
            log(f"!!! ROW COUNT MISMATCH {who} obs: {st.rows} != {rows}")
    except Exception as e:  # noqa: BLE001
        fail(f"{who}: cube.stats", e)
    return out, snap_ids


def postgis_vacuum_analyze(name: str = "obs") -> dict:
    """VACUUM ANALYZE and CHECKPOINT a dataset's table in the PostGIS backend, as the
    anchor table gets, and as autovacuum would after a bulk load where it is on."""
    with A.pg_connect() as c:
        row = c.execute(f"SELECT id FROM {PG_CUBE_SCHEMA}.gp_datasets WHERE name = %s", (name,)).fetchone()
        table = f"{PG_CUBE_SCHEMA}.gp_data_{row[0]}"
        t = time.perf_counter()
        c.execute(f"VACUUM ANALYZE {table}")
        c.execute("CHECKPOINT")
        secs = time.perf_counter() - t
        out = {"table": table, "seconds": secs, "autovacuum": c.execute("SHOW autovacuum").fetchone()[0],
               "table_bytes": c.execute("SELECT pg_relation_size(%s::regclass)", (table,)).fetchone()[0],
               "total_bytes": c.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()[0]}
    log(f"  VACUUM ANALYZE {table}: {secs:.1f}s (autovacuum is {out['autovacuum']} on this server)")
    return out


def as_of_bench(cube, aq: dict, snap_ids: list, who: str) -> dict:
    """The small / medium queries without as_of, at the latest and at the 5th
    snapshot, interleaved per position in rotated order over two timed passes."""
    latest, earlier = snap_ids[-1], snap_ids[4]
    variants = [("current (no as_of)", {}), (f"as_of latest ({latest})", {"as_of": latest}),
                (f"as_of 5th snapshot ({earlier})", {"as_of": earlier})]
    sizes = {}
    for size, qs in aq.items():
        log(f"\n## as_of {size}, {who} ({len(qs)} positions inside the first 5 ingests' time range)")
        try:
            ms = {v[0]: [] for v in variants}
            rws = {v[0]: [] for v in variants}
            for bbox, win in qs:  # warm-up
                for _, kw in variants:
                    cube.query("obs", bbox=bbox, datetime=win, output="arrow", **kw)
            passes = 2
            for p in range(passes):
                for qi, (bbox, win) in enumerate(qs):
                    order = variants[(qi + p) % 3:] + variants[:(qi + p) % 3]  # rotate to cancel drift
                    for vname, kw in order:
                        t, r = timed(lambda: cube.query("obs", bbox=bbox, datetime=win, output="arrow", **kw))
                        ms[vname].append(t)
                        rws[vname].append(r.num_rows)
            summ = [summarise(v, ms[v], rws[v]) for v, _ in variants]
            check_counts(f"as_of {size} ({who})", summ)
            base = summ[0]
            for s in summ:
                s["overhead_p50"] = s["p50_ms"] / base["p50_ms"] - 1
                s["overhead_p95"] = s["p95_ms"] / base["p95_ms"] - 1
                log(f"  {s['system']:<30} p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f} ms  "
                    f"overhead p50 {s['overhead_p50'] * 100:+.1f}%  rows median {s['rows_median']:,.0f}")
            sizes[size] = summ
        except Exception as e:  # noqa: BLE001
            fail(f"as_of {size} ({who})", e)
    return {"latest_snapshot": latest, "earlier_snapshot": earlier, "sizes": sizes}


# --------------------------------------------------------------------------- machine facts

def machine_facts() -> dict:
    import duckdb
    import geopandas
    import pandas
    import psycopg
    import pyarrow
    import pyproj
    import shapely

    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts = {
        "date_utc": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "ram_gib": round(mem / 2**30, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "duckdb": duckdb.__version__,
        "geopandas": geopandas.__version__,
        "shapely": shapely.__version__,
        "pyproj": pyproj.__version__,
        "psycopg": psycopg.__version__,
        "gdal": A.gdal_version(),
    }
    try:
        v = A.pg_versions()
        facts["postgresql"] = v["postgresql"]
        facts["postgis"] = v["postgis"]
    except Exception as e:  # noqa: BLE001
        facts["postgresql"] = f"unavailable: {e}"
    try:
        facts["geoplatform_git"] = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10).stdout.strip() or "uncommitted"
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "geoplatform"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if dirty:
            facts["geoplatform_git"] += " + uncommitted changes in geoplatform/"
    except Exception:  # noqa: BLE001
        facts["geoplatform_git"] = "unknown"
    return facts


# --------------------------------------------------------------------------- markdown

def md_table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def fmt_ms(x):
    return "—" if x is None else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def fmt_ratio(x):
    return "—" if x is None or not np.isfinite(x) else f"{x:.2f}×"


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="cube benchmark with anchors; prints Markdown")
    ap.add_argument("--rows", type=int, default=10_000_000, help="points (multiple of 1000)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1M points, fewer reps")
    ap.add_argument("--reps", type=int, default=None, help="query positions per size (default 30; quick 10)")
    ap.add_argument("--ingest-reps", type=int, default=None, help="ingest repetitions (default 3; quick 1)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--anchors-only", action="store_true", help="do not touch the cube")
    ap.add_argument("--backends", default=",".join(BACKENDS),
                    help=f"the cube's storage backends to measure, comma-separated (default {','.join(BACKENDS)})")
    ap.add_argument("--keep-db", action="store_true",
                    help="keep the geoplatform_bench database (reused by the next run)")
    ap.add_argument("--out", type=Path, default=None, help="results file stem (default results/cube[-quick])")
    ap.add_argument("--render", type=Path, default=None, help="only re-render a results .json as Markdown")
    a = ap.parse_args(argv)
    if a.render:
        res = json.loads(a.render.read_text())
        md = render(res)
        a.render.with_suffix(".md").write_text(md + "\n")
        log(md)
        return 0

    rows = 1_000_000 if a.quick else a.rows
    reps = a.reps or (10 if a.quick else 30)
    ingest_reps = a.ingest_reps or (1 if a.quick else 3)
    out_stem = a.out or RESULTS / ("cube-quick" if a.quick else "cube")
    backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    if unknown := [b for b in backends if b not in BACKENDS]:
        ap.error(f"unknown backend(s) {', '.join(unknown)}: choose from {', '.join(BACKENDS)}")
    t_start = time.perf_counter()

    log(f"# cube benchmark: {rows:,} points, {reps} positions per query size, seed {a.seed}\n")
    log("## data")
    pts = G.point_files(rows, log=log)
    polys = G.polygon_files(log=log)
    city = G.city()

    A.pg_create_db()
    facts = machine_facts()
    facts["ogr2ogr_has_parquet"] = A.ogr2ogr_has_parquet()
    facts["loadavg_start"] = os.getloadavg()

    gp = None
    cubes: dict = {}  # backend -> the cube on it (only those that opened)
    if not a.anchors_only:
        try:
            gp = import_cube()
        except Exception as e:  # noqa: BLE001
            fail("import geoplatform", e)
        for b in (backends if gp is not None else ()):
            try:
                cubes[b] = open_backend(gp, b)
            except Exception as e:  # noqa: BLE001
                fail(f"open the cube on the {b} backend (geoplatform.open_cube)", e)

    res: dict = {"config": {"rows": rows, "sensors": pts.sensors, "steps": pts.steps, "reps": reps,
                            "ingest_reps": ingest_reps, "seed": a.seed, "quick": a.quick,
                            "backends": list(backends), "postgis_cube_url": postgis_cube_url(),
                            "city_bounds_epsg4490": city.bounds_deg, "sizes": SIZES,
                            "row_group_rows": G.ROW_GROUP},
                 "machine": facts}

    # ---------------------------------------------------------------- 1. ingest
    log("\n## ingest")
    ingest = {}
    for kind, src, fgb, n in (("points", pts.ingest_1m, pts.ingest_1m_fgb, 1_000_000),
                              ("polygons", polys.geoparquet, polys.fgb, polys.rows)):
        runs = []
        for _ in range(ingest_reps):
            try:
                r = A.ogr2ogr_ingest(fgb, f"ingest_{kind}")
                if r["rows"] != n:
                    MISMATCHES.append(f"ogr2ogr {kind}: {r['rows']} rows loaded, expected {n}")
                    log(f"!!! ROW COUNT MISMATCH ogr2ogr {kind}: {r['rows']} != {n}")
                r["rows_per_s"] = n / r["seconds"]
                runs.append(r)
                log(f"  ogr2ogr {kind}: {n:,} rows in {r['seconds']:.2f}s = {r['rows_per_s']:,.0f} rows/s "
                    f"(gist index: {r['gist']})")
            except Exception as e:  # noqa: BLE001
                fail(f"ogr2ogr {kind}", e)
        entry = {"rows": n, "source": src.name, "anchor_source": fgb.name}
        if runs:
            entry["ogr2ogr"] = {"runs": runs, "rows_per_s": float(np.median([r["rows_per_s"] for r in runs])),
                                "seconds": float(np.median([r["seconds"] for r in runs])),
                                "command": runs[0]["command"]}
        for b, cube in cubes.items():
            try:
                spec_fn = point_spec if kind == "points" else polygon_spec
                entry["ours" + KEY[b]] = cube_ingest_bench(gp, cube, spec_fn, f"bench_ingest_{kind}", src, n,
                                                           ingest_reps, PREFIX[b])
            except Exception as e:  # noqa: BLE001
                fail(f"cube ingest {kind} ({b})", e)
        ingest[kind] = entry
    res["ingest"] = ingest

    # ---------------------------------------------------------------- the PostGIS anchor table
    log("\n## PostGIS anchor table")
    res["postgis_load"] = A.pg_load_points(pts.xy, log=log)

    # ---------------------------------------------------------------- build the obs dataset
    snap_ids: dict[str, list] = {}
    for b, cube in list(cubes.items()):
        try:
            res["cube_load" + KEY[b]], snap_ids[b] = load_obs(gp, cube, pts.parts, rows, PREFIX[b])
            if b == "postgis":
                res["cube_load" + KEY[b]]["vacuum_analyze"] = postgis_vacuum_analyze()
            else:  # the store's folder holds obs alone by now
                res["cube_load" + KEY[b]]["folder_bytes"] = sum(
                    f.stat().st_size for f in CUBE_DIR.rglob("*") if f.is_file())
        except Exception as e:  # noqa: BLE001
            fail(f"cube load of obs ({b})", e)
            del cubes[b]

    # ---------------------------------------------------------------- 2. queries
    t_end = G.T0 + np.timedelta64(G.STEPS * G.STEP_HOURS, "h")
    queries = make_queries(reps, a.seed, city, t_end)
    res["queries"] = {}
    pg = A.pg_connect()
    duck = A.duckdb_connect()
    for size, qs in queries.items():
        km, days = SIZES[size]
        log(f"\n## query {size}: {km:g} x {km:g} km, {days} days, {len(qs)} positions")
        results = []

        def run(name, fn, warm=True):
            try:
                r = run_system(name, fn, qs, warm)
                results.append(r)
                log(f"  {name:<34} p50 {r['p50_ms']:8.1f} ms  p95 {r['p95_ms']:8.1f} ms  "
                    f"rows median {r['rows_median']:,.0f} max {r['rows_max']:,}")
            except Exception as e:  # noqa: BLE001
                fail(f"query {size} {name}", e)

        for b, cube in cubes.items():
            run(f"{PREFIX[b]} (Arrow)", lambda bb, w, c=cube: c.query("obs", bbox=bb, datetime=w, output="arrow"))
            run(f"{PREFIX[b]} (GeoDataFrame)",
                lambda bb, w, c=cube: c.query("obs", bbox=bb, datetime=w, output="geodataframe"))
            run(f"{PREFIX[b]} count", lambda bb, w, c=cube: c.count("obs", bbox=bb, datetime=w))
        run("PostGIS fetch rows (psycopg binary)", lambda b, w: A.pg_fetch(pg, b, w))
        run("PostGIS count(*)", lambda b, w: A.pg_count(pg, b, w))
        run("DuckDB Parquet (Arrow)", lambda b, w: A.duckdb_query(duck, pts.xy, b, w))
        run("geopandas read_parquet(bbox=)", lambda b, w: A.geopandas_query(pts.geoparquet, b, w), warm=False)
        check_counts(f"query {size}", results)
        res["queries"][size] = {"side_km": km, "days": days, "systems": results}

    # ---------------------------------------------------------------- 3. as_of
    t_snap5 = G.T0 + np.timedelta64((G.STEPS // len(pts.parts)) * 5 * G.STEP_HOURS, "h") - np.timedelta64(1, "h")
    aq = make_queries(reps, a.seed + 1, city, t_snap5, {k: SIZES[k] for k in ("small", "medium")})
    for b, cube in cubes.items():
        if len(snap_ids[b]) < 5:
            FAILURES.append(f"as_of ({b}): fewer than 5 snapshots were made")
            continue
        res["as_of" + KEY[b]] = as_of_bench(cube, aq, snap_ids[b], PREFIX[b])
        res["as_of" + KEY[b]]["windows_end_before"] = np.datetime_as_string(t_snap5, unit="m") + "Z"
    for cube in cubes.values():
        cube.close()
    pg.close()
    duck.close()

    # ---------------------------------------------------------------- 4. targets
    res["targets"] = targets(res)
    res["mismatches"] = MISMATCHES
    res["failures"] = FAILURES
    res["seconds_total"] = time.perf_counter() - t_start
    facts["loadavg_end"] = os.getloadavg()

    write_results(out_stem, res, render(res), log)

    if not a.keep_db:
        A.pg_drop_db()
    return 1 if (MISMATCHES or FAILURES) else 0


def _sys(res, size, name):
    for s in res.get("queries", {}).get(size, {}).get("systems", []):
        if s["system"] == name:
            return s
    return None


def targets(res) -> list[dict]:
    t = []

    def add(what, target, measured, ok):
        t.append({"target": what, "goal": target, "measured": "—" if measured is None else measured,
                  "status": "not measured" if ok is None else ("met" if ok else "NOT MET")})

    for size in ("small", "medium"):
        s = _sys(res, size, "ours (Arrow)")
        add(f"{size} query, Arrow, p95 warm", f"<= {TARGET_ARROW_P95_MS:g} ms",
            None if s is None else f"{s['p95_ms']:.1f} ms", None if s is None else s["p95_ms"] <= TARGET_ARROW_P95_MS)
    ms = []
    for size in SIZES:
        s = _sys(res, size, "ours (GeoDataFrame)")
        if s:
            ms += [m for m, r in zip(s["ms"], s["rows"]) if r <= TARGET_GDF_MAX_ROWS]
    p95 = float(np.percentile(ms, 95)) if ms else None
    add(f"GeoDataFrame, <= {TARGET_GDF_MAX_ROWS:,} rows, p95 warm (all sizes, {len(ms)} queries)",
        f"<= {TARGET_GDF_P95_MS:g} ms", None if p95 is None else f"{p95:.1f} ms",
        None if p95 is None else p95 <= TARGET_GDF_P95_MS)
    for kind, goal in (("points", TARGET_POINTS_PER_S), ("polygons", TARGET_POLYGONS_PER_S)):
        o = res.get("ingest", {}).get(kind, {}).get("ours")
        add(f"ingest 1M {kind}", f">= {goal:,} rows/s", None if o is None else f"{o['rows_per_s']:,.0f} rows/s",
            None if o is None else o["rows_per_s"] >= goal)
    asof = res.get("as_of", {}).get("sizes", {})
    for size in ("small", "medium"):
        for idx, label in ((1, "latest"), (2, "5th")):
            s = asof.get(size)
            v = None if not s else s[idx]
            add(f"as_of {label} snapshot overhead, {size} (p50)", f"<= {TARGET_ASOF_OVERHEAD * 100:.0f}%",
                None if v is None else f"{v['overhead_p50'] * 100:+.1f}% (p95 {v['overhead_p95'] * 100:+.1f}%)",
                None if v is None else v["overhead_p50"] <= TARGET_ASOF_OVERHEAD)
    add("same row counts from every system", "0 mismatches", f"{len(MISMATCHES)} mismatches", not MISMATCHES)
    return t


REF = {  # which of our rows each system is compared with
    "PostGIS fetch rows (psycopg binary)": "ours (Arrow)",
    "DuckDB Parquet (Arrow)": "ours (Arrow)",
    "geopandas read_parquet(bbox=)": "ours (GeoDataFrame)",
    "PostGIS count(*)": "ours count",
    "ours (GeoDataFrame)": "ours (Arrow)",
    # the PostGIS backend's rows against the embedded store's
    "ours on PostGIS (Arrow)": "ours (Arrow)",
    "ours on PostGIS (GeoDataFrame)": "ours (GeoDataFrame)",
    "ours on PostGIS count": "ours count",
}
INGEST_LABEL = {"embedded": "ours: cube.ingest({}) (sorted, committed)",
                "postgis": "ours on PostGIS: cube.ingest({}) (committed, indexes maintained)"}


def _get(d: dict | None, key: str):
    return None if not d else d.get(key)


def _versus(x: float, others: list[tuple[str, float | None]], show) -> str:
    """", 0.42× the embedded store's (5.6 ms)" for each (name, figure) with a figure."""
    return "".join(f", {x / y:.2f}× {name} ({show(y)})" for name, y in others if y)


def postgis_paragraph(res) -> str:
    """What the PostGIS backend is, and how it compares with the embedded store, in this run's figures."""
    c = res["config"]
    out = [
        "The PostGIS backend (`geoplatform.open_cube(\"postgresql://...\")`, here the schema "
        f"`{PG_CUBE_SCHEMA}` of the benchmark database) keeps each dataset in one table, `gp_data_<id>`, that "
        "holds every version of every feature: `record_from` is the snapshot that wrote a row and `record_to` "
        "the one that ended it (null while current), so a snapshot reads `record_from <= s AND (record_to IS "
        "NULL OR record_to > s)`. The geometry is a PostGIS `geometry` in the storage CRS's SRID with a GiST "
        "index (its float8 bbox in four columns for the exact box test), the valid time `timestamptz` with a "
        "btree on (valid_from, valid_to). An ingest is one transaction (COPY into a staging table, one INSERT "
        "... SELECT into the indexed table, the snapshot row); a query is one SELECT streamed back through "
        "COPY as CSV and decoded by Arrow, with the same planning and exact filtering in Python as on the "
        "embedded store, which reads sorted GeoParquet files in-process."]
    rate, ms = (lambda y: f"{y:,.0f} rows/s"), (lambda y: f"{fmt_ms(y)} ms")
    figs = []
    for kind, e in res.get("ingest", {}).items():
        p = e.get("ours_postgis")
        if p:
            figs.append(f"ingest of 1M {kind}: {p['rows_per_s']:,.0f} rows/s" + _versus(
                p["rows_per_s"], [("the embedded store's rate", _get(e.get("ours"), "rows_per_s")),
                                  ("ogr2ogr's rate", _get(e.get("ogr2ogr"), "rows_per_s"))], rate))
    lp, le = res.get("cube_load_postgis"), res.get("cube_load")
    if lp:
        t = (f"loading the {c['rows']:,}-point `obs` dataset (10 ingests): median {lp['rows_per_s_median']:,.0f} "
             "rows/s per ingest" + _versus(lp["rows_per_s_median"],
                                           [("the embedded store's rate", _get(le, "rows_per_s_median"))], rate))
        if lp.get("vacuum_analyze") and _get(le, "folder_bytes"):
            t += (f"; on disk {lp['vacuum_analyze']['total_bytes'] / 2**20:,.0f} MiB (its table with its indexes) "
                  f"against {le['folder_bytes'] / 2**20:,.0f} MiB (the embedded store's folder)")
        figs.append(t)
    for size in res.get("queries", {}):
        p, pc = _sys(res, size, "ours on PostGIS (Arrow)"), _sys(res, size, "ours on PostGIS count")
        if not p:
            continue
        t = f"{size} query, Arrow: p50 {fmt_ms(p['p50_ms'])} ms" + _versus(
            p["p50_ms"], [("the embedded store's", _get(_sys(res, size, "ours (Arrow)"), "p50_ms")),
                          ("the PostGIS anchor's fetch",
                           _get(_sys(res, size, "PostGIS fetch rows (psycopg binary)"), "p50_ms"))], ms)
        if pc:
            t += f"; count p50 {fmt_ms(pc['p50_ms'])} ms" + _versus(
                pc["p50_ms"], [("the embedded store's", _get(_sys(res, size, "ours count"), "p50_ms")),
                               ("PostGIS count(*)", _get(_sys(res, size, "PostGIS count(*)"), "p50_ms"))], ms)
        figs.append(t)
    asof = res.get("as_of_postgis", {}).get("sizes", {})
    for size, summ in asof.items():
        figs.append(f"as_of on PostGIS, {size}: p50 overhead {summ[1]['overhead_p50'] * 100:+.1f}% (latest), "
                    f"{summ[2]['overhead_p50'] * 100:+.1f}% (5th snapshot)")
    if figs:
        out += ["", "In this run (a ratio is the PostGIS backend's figure over the other one's: of rows/s for "
                "loading, where above 1× is faster, and of milliseconds for queries, where above 1× is slower):",
                ""]
        out += [f"- {f};" for f in figs[:-1]] + [f"- {figs[-1]}."]
    return "\n".join(out)

def _la(x):
    return "?" if not x else " ".join(f"{v:.2f}" for v in x)


def render(res) -> str:
    c, m = res["config"], res["machine"]
    parts = [f"# Cube benchmark results{' (quick)' if c['quick'] else ''}", ""]
    parts.append(
        f"{c['rows']:,} points ({c['sensors']:,} sensors x {c['steps']:,} steps of 6 h from 2025-01-01Z), "
        f"EPSG:4490, 50 x 50 km around lon 108.95 lat 34.27; {c['reps']} seeded positions per query size "
        f"(seed {c['seed']}), one untimed warm-up pass then one timed pass; run {m['date_utc']}.")
    parts += ["", "## Machine", "", md_table(["fact", "value"], [
        ["nproc", m["nproc"]], ["RAM", f"{m['ram_gib']} GiB"], ["CPU", m["cpu"]], ["Python", m["python"]],
        ["pyarrow", m["pyarrow"]], ["duckdb", m["duckdb"]], ["geopandas", m["geopandas"]],
        ["shapely", m["shapely"]], ["psycopg", m["psycopg"]],
        ["PostgreSQL", m.get("postgresql")], ["PostGIS", m.get("postgis")], ["GDAL", m["gdal"]],
        ["ogr2ogr reads Parquet", m.get("ogr2ogr_has_parquet")], ["geoplatform", m.get("geoplatform_git")],
        ["load average at start / end", f"{_la(m.get('loadavg_start'))} / {_la(m.get('loadavg_end'))}"],
    ])]

    parts += ["", "## Ingest (1M features, committed)", ""]
    rows = []
    for kind, e in res.get("ingest", {}).items():
        g = e.get("ogr2ogr")
        for b in c.get("backends", ["embedded"]):
            o = e.get("ours" + KEY[b])
            if o:
                rows.append([kind, INGEST_LABEL[b].format(e["source"]), f"{e['rows']:,}",
                             f"{o['seconds']:.2f}", f"{o['rows_per_s']:,.0f}",
                             fmt_ratio(o["rows_per_s"] / g["rows_per_s"]) if g else "—"])
            else:
                rows.append([kind, PREFIX[b], f"{e['rows']:,}", "failed / not run", "—", "—"])
        if g:
            rows.append([kind, f"ogr2ogr {e['anchor_source']} → PostGIS (COPY, GiST)", f"{e['rows']:,}",
                         f"{g['seconds']:.2f}", f"{g['rows_per_s']:,.0f}", "1.00×"])
    parts.append(md_table(["data", "system", "rows", "seconds (median)", "rows/s", "speed vs ogr2ogr"], rows))
    parts.append("\nogr2ogr here is GDAL 3.6 without a Parquet driver, so its source is a FlatGeobuf copy of "
                 "the same rows; its time includes reading, COPY and building the GiST index.")
    for b in c.get("backends", ["embedded"]):
        cl = res.get("cube_load" + KEY[b])
        if cl:
            where = "" if b == "embedded" else " on the PostGIS backend"
            parts.append(f"\nLoading the {c['rows']:,}-point `obs` dataset{where} as {len(cl['chunks'])} ingests: "
                         "rows/s per ingest " + ", ".join(f"{x['rows_per_s']:,.0f}" for x in cl["chunks"])
                         + f" (median {cl['rows_per_s_median']:,.0f}"
                         + (f"; {cl['seconds_total']:.0f}s in all" if "seconds_total" in cl else "") + ").")
            va = cl.get("vacuum_analyze")
            if va:
                parts[-1] += (f" Then VACUUM ANALYZE and CHECKPOINT of its table, as for the anchor table "
                              f"(autovacuum is {va['autovacuum']} on this server): {va['seconds']:.1f}s.")
    pl = res.get("postgis_load", {})
    if pl and not pl.get("cached"):
        parts.append(f"\nPostGIS anchor table loaded with COPY: {pl['copy_s']:.1f}s copy+insert, "
                     f"{pl['index_s']:.1f}s GiST + btree + VACUUM ANALYZE.")

    for size, q in res.get("queries", {}).items():
        parts += ["", f"## Query {size}: {q['side_km']:g} x {q['side_km']:g} km, {q['days']} days", ""]
        by = {s["system"]: s for s in q["systems"]}
        rows = []
        for s in q["systems"]:
            ref = by.get(REF.get(s["system"], ""))
            ratio = s["p50_ms"] / ref["p50_ms"] if ref else None
            rows.append([s["system"], f"{s['rows_median']:,.0f} (max {s['rows_max']:,})",
                         fmt_ms(s["p50_ms"]), fmt_ms(s["p95_ms"]),
                         (f"{fmt_ratio(ratio)} (vs {ref['system']})" if ref else "—")])
        parts.append(md_table(["system", "rows returned (median)", "p50 ms", "p95 ms",
                               "p50 ÷ ours p50 (> 1: ours faster)"], rows))

    asofs = [(b, res["as_of" + KEY[b]]) for b in c.get("backends", ["embedded"]) if res.get("as_of" + KEY[b])]
    if asofs:
        parts += ["", "## as_of overhead (cube, Arrow output)", "",
                  f"Windows end before {asofs[0][1]['windows_end_before']}, inside the data of the 5th of 10 "
                  "ingests, so all three variants return the same rows; positions interleaved and rotated, "
                  "2 timed passes. Snapshot ids are each store's own.", ""]
        rows = []
        for b, asof in asofs:
            for size, summ in asof["sizes"].items():
                for s in summ:
                    rows.append([PREFIX[b], size, s["system"], f"{s['rows_median']:,.0f}", fmt_ms(s["p50_ms"]),
                                 fmt_ms(s["p95_ms"]), f"{s['overhead_p50'] * 100:+.1f}%",
                                 f"{s['overhead_p95'] * 100:+.1f}%"])
        parts.append(md_table(["store", "size", "variant", "rows (median)", "p50 ms", "p95 ms", "overhead p50",
                               "overhead p95"], rows))

    if "postgis" in c.get("backends", []):
        parts += ["", "## The PostGIS backend", "", postgis_paragraph(res)]

    parts += ["", "## Targets", "", md_table(["target", "goal", "measured", "status"],
                                            [[t["target"], t["goal"], t["measured"], t["status"]]
                                             for t in res["targets"]])]
    if res["mismatches"]:
        parts += ["", "## ROW COUNT MISMATCHES", ""] + [f"- {x}" for x in res["mismatches"]]
    if res["failures"]:
        parts += ["", "## Failures", ""] + [f"- {x}" for x in res["failures"]]
    parts.append(f"\nTotal run time {res['seconds_total']:.0f}s.")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
