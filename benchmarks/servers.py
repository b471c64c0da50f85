"""The OGC API servers of the server benchmark: the same rows in each, set up by script.

* Data (cached in ``benchmarks/data/server/``): the generator's point parts
  rewritten with a dataset id ``obs_id`` (1-based feed order; the point rows
  have no unique column of their own) and flat ``x`` / ``y`` columns, and the
  polygons with ``minx``/``miny``/``maxx``/``maxy`` beside ``zone_id``.  The
  flat columns are what pygeoapi's Parquet provider filters a bbox on; the
  other systems ignore them (the cube drops them on ingest).  A 5-million-row
  point dataset is the first five of the ten parts (symlinks).
* PostGIS: one table per dataset, loaded with COPY, primary key on the id,
  GiST on ``geom``, btree on ``observed_at``, VACUUM ANALYZE.  Kept between
  runs (``bench_meta`` records which file each table holds).
* The cube: one store, ``benchmarks/data/server_store``, with one dataset per
  benchmark dataset, ingested part by part; kept between runs the same way.
* Servers, each a child process on 127.0.0.1 with ``WORKERS`` worker processes
  (two: one per core of the benchmark machine), its output in
  a log file, stopped by :meth:`Server.stop` (its own process group):
  ``geoplatform serve``; stock pygeoapi (``pygeoapi.starlette_app`` under
  uvicorn) once with its ``Parquet`` provider and once with its
  ``PostgreSQL`` provider; tipg (own virtualenv, ``benchmarks/.venv-tipg``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import anchors as A  # noqa: E402
import generate as G  # noqa: E402

SRV = G.DATA / "server"
STORE = G.DATA / "server_store"
#: Worker processes of every server: one per core. tipg's work is mostly in
#: PostgreSQL, which runs a process per connection, so it used both cores with one.
WORKERS = 2
TIPG_VENV = HERE / ".venv-tipg"
TIPG_VERSION = "1.6.1"
HOST = "127.0.0.1"
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class BenchDataset:
    """One dataset served by every system under the same name."""

    name: str  # collection id (tipg: public.<name>), PostGIS table, cube dataset
    kind: str  # "points" | "polygons"
    rows: int
    parquet: Path  # a file or a directory of parts (prepared form, with the id and flat columns)
    parts: tuple[Path, ...]  # what the cube ingests, in order
    id_field: str

    @property
    def glob(self) -> str:
        return str(self.parquet / "*.parquet") if self.parquet.is_dir() else str(self.parquet)

    def source_key(self) -> str:
        return f"{self.name}: " + ", ".join(f"{p.name} {p.stat().st_size}" for p in self.parts)


# --------------------------------------------------------------------------- data files

def _geo_metadata_without_covering(schema: pa.Schema) -> bytes:
    geo = json.loads(schema.metadata[b"geo"])
    for col in geo["columns"].values():
        col.pop("covering", None)
    return json.dumps(geo).encode()


def _rewrite(src: Path, dst: Path, first_id: int | None, log) -> int:
    """src with the bbox covering replaced by flat columns (and an obs_id when first_id is set)."""
    if dst.exists():
        return pq.ParquetFile(dst).metadata.num_rows
    pf = pq.ParquetFile(src)
    geo = _geo_metadata_without_covering(pf.schema_arrow)
    tmp = dst.with_suffix(".tmp")
    writer = None
    n = 0
    try:
        for i in range(pf.num_row_groups):
            t = pf.read_row_group(i)
            bbox = t.column("bbox").combine_chunks()
            t = t.drop_columns(["bbox"])
            if first_id is not None:  # points: x / y
                t = t.add_column(0, "obs_id", pa.array(np.arange(first_id + n, first_id + n + len(t), dtype=np.int64)))
                t = t.append_column("x", bbox.field("xmin")).append_column("y", bbox.field("ymin"))
            else:
                for a, b in (("minx", "xmin"), ("miny", "ymin"), ("maxx", "xmax"), ("maxy", "ymax")):
                    t = t.append_column(a, bbox.field(b))
            t = t.replace_schema_metadata({b"geo": geo})
            if writer is None:
                writer = pq.ParquetWriter(tmp, t.schema)
            writer.write_table(t, row_group_size=G.ROW_GROUP)
            n += len(t)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, dst)
    log(f"  wrote {dst.relative_to(G.DATA)} ({n:,} rows)")
    return n


def prepare_data(rows: int, count_rows: int, log=print) -> dict[str, BenchDataset]:
    """The point datasets (``rows`` and ``count_rows``, a multiple of a tenth of it) and the polygons."""
    pts = G.point_files(rows, log=log)
    polys = G.polygon_files(log=log)
    SRV.mkdir(parents=True, exist_ok=True)
    pdir = SRV / f"pts_{rows}"
    pdir.mkdir(exist_ok=True)
    parts = []
    first = 1
    for src in pts.parts:
        dst = pdir / src.name
        first += _rewrite(src, dst, first, log)
        parts.append(dst)
    out = {f"pts_{rows}": BenchDataset(f"pts_{rows}", "points", rows, pdir, tuple(parts), "obs_id")}
    if count_rows != rows:
        k = count_rows * len(parts) // rows
        if k * rows != count_rows * len(parts):
            raise ValueError(f"{count_rows} is not a whole number of the {len(parts)} parts of {rows}")
        cdir = SRV / f"pts_{count_rows}_of_{rows}"
        cdir.mkdir(exist_ok=True)
        for p in parts[:k]:
            link = cdir / p.name
            if not link.exists():
                link.symlink_to(p)
        name = f"pts_{count_rows}"
        out[name] = BenchDataset(name, "points", count_rows, cdir, tuple(cdir / p.name for p in parts[:k]), "obs_id")
    pfile = SRV / f"polys_{polys.rows}.parquet"
    _rewrite(polys.geoparquet, pfile, None, log)
    out[f"polys_{polys.rows}"] = BenchDataset(f"polys_{polys.rows}", "polygons", polys.rows, pfile, (pfile,), "zone_id")
    return out


# --------------------------------------------------------------------------- PostGIS

def pg_load(ds: BenchDataset, log=print) -> dict:
    """COPY the dataset into table ``ds.name`` (cached), PK + GiST + btree, VACUUM ANALYZE."""
    import duckdb

    key = ds.source_key()
    A.pg_create_db()
    with A.pg_connect() as c:
        row = c.execute("SELECT value FROM bench_meta WHERE key = %s", (ds.name,)).fetchone()
        if row and row[0] == key:
            log(f"  PostGIS table {ds.name} already loaded")
            return {"cached": True}
    t0 = time.perf_counter()
    csv = SRV / f"{ds.name}.csv"
    if ds.kind == "points":
        cols = "obs_id int8, sensor_id int4, observed_at timestamptz, value float4, quality text, x float8, y float8"
        sel = "obs_id, sensor_id, observed_at, value, quality, x, y"
        make = (f"obs_id, sensor_id, observed_at, value, quality, "
                f"ST_SetSRID(ST_MakePoint(x, y), {A.SRID})::geometry(Point, {A.SRID})")
        table = (f"obs_id int8 PRIMARY KEY, sensor_id int4, observed_at timestamptz, value float4, "
                 f"quality text, geom geometry(Point, {A.SRID})")
    else:
        cols = "zone_id int4, observed_at timestamptz, value float4, quality text, wkb text"
        sel = "zone_id, observed_at, value, quality, hex(geometry::BLOB)"
        make = (f"zone_id, observed_at, value, quality, "
                f"ST_GeomFromWKB(decode(wkb, 'hex'), {A.SRID})::geometry(Polygon, {A.SRID})")
        table = (f"zone_id int4 PRIMARY KEY, observed_at timestamptz, value float4, quality text, "
                 f"geom geometry(Polygon, {A.SRID})")
    with duckdb.connect() as d:
        d.execute(f"COPY (SELECT {sel} FROM read_parquet('{ds.glob}')) TO '{csv}' (HEADER false, DELIMITER ',')")
    try:
        with A.pg_connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {ds.name}")
            c.execute(f"DROP TABLE IF EXISTS {ds.name}_staging")
            c.execute(f"CREATE UNLOGGED TABLE {ds.name}_staging ({cols})")
            with c.cursor() as cur, cur.copy(f"COPY {ds.name}_staging FROM STDIN WITH (FORMAT csv)") as cp, \
                    open(csv, "rb") as f:
                while block := f.read(8 << 20):
                    cp.write(block)
            c.execute(f"CREATE TABLE {ds.name} ({table})")
            c.execute(f"INSERT INTO {ds.name} SELECT {make} FROM {ds.name}_staging")
            c.execute(f"DROP TABLE {ds.name}_staging")
            c.execute("SET maintenance_work_mem = '1GB'")
            c.execute(f"CREATE INDEX {ds.name}_geom_gist ON {ds.name} USING gist (geom)")
            c.execute(f"CREATE INDEX {ds.name}_t_btree ON {ds.name} (observed_at)")
            c.execute(f"VACUUM ANALYZE {ds.name}")
            c.execute("CHECKPOINT")
            n = c.execute(f"SELECT count(*) FROM {ds.name}").fetchone()[0]
            c.execute("INSERT INTO bench_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                      (ds.name, key))
    finally:
        csv.unlink(missing_ok=True)
    secs = time.perf_counter() - t0
    if n != ds.rows:
        raise RuntimeError(f"PostGIS table {ds.name} holds {n:,} rows, expected {ds.rows:,}")
    log(f"  PostGIS: {ds.name} loaded, {n:,} rows in {secs:.0f}s (COPY, PK, GiST, btree, VACUUM ANALYZE)")
    return {"cached": False, "seconds": secs}


def pg_copy_4326(ds: BenchDataset, log=print) -> dict:
    """The same rows labelled SRID 4326, for pygeoapi's PostgreSQL provider (cached).

    pygeoapi reads a ``storage_crs`` of EPSG:4490 in its authority axis order
    (lat, lon) and swaps the bbox before ``ST_MakeEnvelope``, so over a lon/lat
    4490 table every bbox query finds nothing.  CGCS2000 and WGS 84 coordinates
    are the same numbers here, so the copy differs only in its SRID label; it
    gets the same primary key, GiST, btree and VACUUM ANALYZE.
    """
    table = f"{ds.name}_4326"
    key = ds.source_key() + " srid 4326"
    with A.pg_connect() as c:
        row = c.execute("SELECT value FROM bench_meta WHERE key = %s", (table,)).fetchone()
        if row and row[0] == key:
            log(f"  PostGIS table {table} already loaded")
            return {"cached": True}
        t0 = time.perf_counter()
        gtype = "Point" if ds.kind == "points" else "Polygon"
        cols = [r[0] for r in c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND column_name <> 'geom' "
            "ORDER BY ordinal_position", (ds.name,)).fetchall()]
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} AS SELECT {', '.join(cols)}, "
                  f"ST_SetSRID(geom, 4326)::geometry({gtype}, 4326) AS geom FROM {ds.name}")
        c.execute("SET maintenance_work_mem = '1GB'")
        c.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({ds.id_field})")
        c.execute(f"CREATE INDEX {table}_geom_gist ON {table} USING gist (geom)")
        c.execute(f"CREATE INDEX {table}_t_btree ON {table} (observed_at)")
        c.execute(f"VACUUM ANALYZE {table}")
        c.execute("CHECKPOINT")
        c.execute("INSERT INTO bench_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                  (table, key))
    secs = time.perf_counter() - t0
    log(f"  PostGIS: {table} (SRID 4326 label for pygeoapi) made in {secs:.0f}s")
    return {"cached": False, "seconds": secs}


# --------------------------------------------------------------------------- the cube

def cube_spec(ds: BenchDataset):
    import geoplatform as gp

    fields = ([gp.Field(name="sensor_id", type="integer")] if ds.kind == "points" else []) + [
        gp.Field(name="value", type="number"), gp.Field(name="quality", type="string")]
    return gp.DatasetSpec(
        name=ds.name, title=f"Benchmark {ds.kind} ({ds.rows:,})", department="data_bureau", theme="sensing",
        licence="CC0-1.0", source="benchmarks/generate.py (seeded)", generated=True,
        geometry_type="Point" if ds.kind == "points" else "Polygon", storage_crs="EPSG:4490",
        # weekly files for the time-windowed queries, and a space copy for those
        # without a time filter (tiles, bbox-only pages)
        fid=ds.id_field, valid_from="observed_at", instant=True, time_partition="week", space_copy=True,
        schema=fields, extra_columns="drop",  # the flat bbox columns are for pygeoapi
    )


def cube_load(datasets: list[BenchDataset], log=print) -> dict:
    """Ingest each dataset into the benchmark store (cached by the source files)."""
    import geoplatform as gp

    from geoplatform.settings import Settings

    cube = gp.open_cube(str(STORE))
    # the store is reloaded when its layout setting changes, not only its sources
    s = Settings()
    layout = f" row groups {s.row_group_size} space copy + samples, {s.space_row_group_size} {s.space_compression}"
    marker = STORE / "bench_sources.json"
    loaded = json.loads(marker.read_text()) if marker.exists() else {}
    out = {}
    present = {s.name for s in cube.datasets()}
    for ds in datasets:
        if loaded.get(ds.name) == ds.source_key() + layout and ds.name in present:
            log(f"  cube dataset {ds.name} already loaded")
            out[ds.name] = {"cached": True}
            continue
        if ds.name in present:
            cube.drop_dataset(ds.name)
        cube.create_dataset(cube_spec(ds))
        t = time.perf_counter()
        added = 0
        for p in ds.parts:
            rep = cube.ingest(ds.name, str(p))
            added += rep.rows_added
        secs = time.perf_counter() - t
        if added != ds.rows:
            raise RuntimeError(f"cube dataset {ds.name}: {added:,} rows added, expected {ds.rows:,}")
        log(f"  cube: {ds.name} ingested, {added:,} rows in {secs:.0f}s ({len(ds.parts)} ingests)")
        loaded[ds.name] = ds.source_key() + layout
        marker.write_text(json.dumps(loaded, indent=1))
        out[ds.name] = {"cached": False, "seconds": secs}
    for ds in datasets:
        # after a bulk load, as a deployment would: one space-copy run instead of one per ingest
        t = time.perf_counter()
        done = cube.compact(ds.name)
        if done is not None:
            secs = time.perf_counter() - t
            log(f"  cube: {ds.name} compacted in {secs:.0f}s: " + ", ".join(
                f"{k} {v['files_before']} -> {v['files_after']} files" for k, v in done.items()))
            out[ds.name].update(compact_seconds=secs, compacted=done)
    return out


# --------------------------------------------------------------------------- configurations

def geoplatform_config(datasets: list[BenchDataset], where: Path) -> tuple[Path, Path]:
    """A catalog (with the project's departments and themes) and a layers folder."""
    import yaml

    cat_dir = where / "catalog"
    cat_dir.mkdir(parents=True, exist_ok=True)
    for f in ("departments.yaml", "themes.yaml"):
        shutil.copy(ROOT / "catalogs" / f, cat_dir / f)
    catalog = {"city": {"name": "Benchmark city", "generated": True, "generator": "benchmarks/generate.py"},
               "datasets": [cube_spec(d).to_json_dict() for d in datasets]}
    cat = cat_dir / "bench_city.yaml"
    cat.write_text(yaml.safe_dump(catalog, sort_keys=False, allow_unicode=True))
    layers = where / "layers"
    (layers / "sensing").mkdir(parents=True, exist_ok=True)
    for d in datasets:
        (layers / "sensing" / f"{d.name}.yaml").write_text(yaml.safe_dump({
            "id": d.name, "dataset": d.name, "limits": {"default": 10, "max": MAX_LIMIT},
            "tiles": {"enabled": True, "min_zoom": 0, "max_zoom": 22}}, sort_keys=False))
    return cat, layers


def pygeoapi_config(datasets: list[BenchDataset], provider: str, port: int, where: Path) -> Path:
    """A pygeoapi configuration serving every dataset with one provider ("Parquet" or "PostgreSQL")."""
    import yaml

    c = G.city()
    resources = {}
    for d in datasets:
        if provider == "Parquet":
            prov = {"type": "feature", "name": "Parquet", "data": {"source": str(d.parquet)},
                    "id_field": d.id_field, "time_field": "observed_at"}
            if d.kind == "points":
                prov |= {"x_field": "x", "y_field": "y"}
            else:
                prov |= {"x_field": ["minx", "maxx"], "y_field": ["miny", "maxy"]}
        else:
            prov = {"type": "feature", "name": "PostgreSQL",
                    "data": {"host": A.PG_HOST, "port": A.PG_PORT, "dbname": A.PG_DB, "user": A.PG_USER,
                             "password": "", "search_path": ["public"]},
                    "id_field": d.id_field, "table": f"{d.name}_4326", "geom_field": "geom",
                    "time_field": "observed_at"}  # see pg_copy_4326
        resources[d.name] = {
            "type": "collection", "title": d.name, "description": f"benchmark {d.kind}", "keywords": [d.kind],
            "extents": {"spatial": {"bbox": list(c.bounds_deg), "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [prov]}
    cfg = {
        "server": {"bind": {"host": HOST, "port": port}, "url": f"http://{HOST}:{port}",
                   "mimetype": "application/json; charset=UTF-8", "encoding": "utf-8", "language": "en-US",
                   "pretty_print": False, "limits": {"default_items": 10, "max_items": MAX_LIMIT},
                   "map": {"url": f"http://{HOST}/{{z}}/{{x}}/{{y}}.png", "attribution": "none"}},
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": "benchmark", "description": "benchmark", "keywords": ["benchmark"],
                               "keywords_type": "theme", "terms_of_service": f"http://{HOST}/",
                               "url": f"http://{HOST}/"},
            "license": {"name": "CC0-1.0", "url": f"http://{HOST}/"},
            "provider": {"name": "benchmark", "url": f"http://{HOST}/"},
            "contact": {"name": "benchmark", "position": "none", "address": "none", "city": "none",
                        "stateorprovince": "none", "postalcode": "none", "country": "none", "phone": "none",
                        "fax": "none", "email": "none@example.invalid", "url": f"http://{HOST}/",
                        "hours": "none", "instructions": "none", "role": "pointOfContact"}},
        "resources": resources,
    }
    path = where / f"pygeoapi-{provider.lower()}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    openapi = path.with_suffix(".openapi.yml")
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "pygeoapi"), "openapi", "generate", str(path),
                        "--output-file", str(openapi)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYGEOAPI_CONFIG": str(path)})
    if p.returncode:
        raise RuntimeError(f"pygeoapi openapi generate failed: {p.stderr[-2000:]}")
    return path


# --------------------------------------------------------------------------- processes

def ensure_tipg(log=print) -> Path:
    """tipg in its own virtualenv (it pins its own FastAPI / Starlette / pydantic)."""
    py = TIPG_VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", f"import tipg, uvicorn; assert tipg.__version__ == '{TIPG_VERSION}'"],
                                        capture_output=True, timeout=120).returncode == 0
    if not ok:
        log(f"  installing tipg {TIPG_VERSION} into {TIPG_VENV.relative_to(ROOT)}")
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True, timeout=300)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", f"tipg=={TIPG_VERSION}", "uvicorn[standard]"],
                       check=True, timeout=900)
    return TIPG_VENV / "bin"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One server process on 127.0.0.1 (its own process group, output to a log file)."""

    name: str
    cmd: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(ROOT))

    def wait_ready(self, path: str = "/", timeout: float = 600) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:] if self.log_path else ""
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before answering:\n{tail}")
            try:
                with urllib.request.urlopen(self.base + path, timeout=30) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        raise TimeoutError(f"{self.name} did not answer {path} within {timeout:.0f}s")

    def cpu_seconds(self) -> float:
        """utime + stime of every process of the server (its own process group:
        the uvicorn supervisor and its workers), reaped children included."""
        if self.proc is None or self.proc.poll() is not None:
            return float("nan")
        return group_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
        except ProcessLookupError:
            pass


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> tuple[str, list[str]]:
    """A process's name and the fields after it in /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        head, rest = f.read().rsplit(")", 1)
    return head.split("(", 1)[1], rest.split()


def _cpu(fields_: list[str]) -> float:
    return (int(fields_[11]) + int(fields_[12]) + int(fields_[13]) + int(fields_[14])) / _TICK


def proc_cpu_seconds(pid: int) -> float:
    return _cpu(_stat(pid)[1])


def _cpu_where(keep) -> float:
    """CPU seconds of every process on the machine whose (name, stat fields) ``keep`` accepts."""
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            name, fields_ = _stat(d)
            if keep(name, fields_):
                total += _cpu(fields_)
        except (OSError, IndexError, ValueError):
            continue
    return total


def group_cpu_seconds(pgid: int) -> float:
    return _cpu_where(lambda _name, f: int(f[2]) == pgid)


def postgres_cpu_seconds() -> float:
    """CPU of every postgres process on the machine (the anchors' database work)."""
    return _cpu_where(lambda name, _f: name.startswith("postgres"))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return float(sum(v) - idle), float(sum(v))


def make_servers(datasets: list[BenchDataset], where: Path, log=print) -> list[Server]:
    """The servers (not started): ours (twice: tile cache on and off), pygeoapi Parquet, pygeoapi
    PostgreSQL, tipg."""
    venv = ROOT / ".venv" / "bin"
    servers = []
    cat, layers = geoplatform_config(datasets, where)
    for name, env in (("geoplatform", {}), ("geoplatform-nocache", {"GEOPLATFORM_TILES_CACHE_BYTES": "0"})):
        # the second instance has its tile cache off: the tile cells measure both
        p = free_port()
        servers.append(Server(name, [str(venv / "geoplatform"), "serve", "--store", str(STORE), "--host", HOST,
                                     "--port", str(p), "--workers", str(WORKERS), "--layers", str(layers),
                                     "--catalog", str(cat)], p, env=env, log_path=where / f"{name}.log"))
    for provider in ("Parquet", "PostgreSQL"):
        p = free_port()
        cfg = pygeoapi_config(datasets, provider, p, where)
        servers.append(Server(f"pygeoapi-{provider.lower()}",
                              [str(venv / "uvicorn"), "pygeoapi.starlette_app:APP", "--host", HOST, "--port", str(p),
                               "--workers", str(WORKERS)], p,
                              env={"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(cfg.with_suffix(".openapi.yml"))},
                              log_path=where / f"pygeoapi-{provider.lower()}.log"))
    tbin = ensure_tipg(log)
    p = free_port()
    servers.append(Server("tipg", [str(tbin / "uvicorn"), "tipg.main:app", "--host", HOST, "--port", str(p),
                                   "--workers", str(WORKERS)], p,
                          env={"TIPG_NAME": "tipg benchmark",
                               "DATABASE_URL": f"postgresql://{A.PG_USER}@{A.PG_HOST}:{A.PG_PORT}/{A.PG_DB}",
                               "TIPG_DB_SCHEMAS": '["public"]',
                               "TIPG_DB_TABLES": json.dumps([f"public.{d.name}" for d in datasets]),
                               "TIPG_CATALOG_TTL": "86400", "TIPG_DEBUG": "FALSE"},
                          log_path=where / "tipg.log"))
    return servers


def package_version(python: Path, module: str) -> str:
    p = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version('{module}'))"],
                       capture_output=True, text=True, timeout=60)
    return p.stdout.strip() or "not installed"


def server_versions() -> dict[str, dict[str, str]]:
    ours = ROOT / ".venv" / "bin" / "python"
    tp = TIPG_VENV / "bin" / "python"
    common = ("uvicorn", "starlette", "uvloop", "httptools")
    return {
        "geoplatform": {m: package_version(ours, m) for m in ("geoplatform", *common, "pyarrow", "duckdb")},
        "pygeoapi": {m: package_version(ours, m) for m in ("pygeoapi", *common, "SQLAlchemy", "psycopg2-binary",
                                                           "GeoAlchemy2", "pyarrow", "s3fs")},
        "tipg": {m: package_version(tp, m) for m in ("tipg", *common, "fastapi", "asyncpg")},
    }
