"""The grid benchmark: the gridded-data store and the station series, with their anchors in the same run.

    python benchmarks/bench_grid.py            # 365 x 1000 x 1000 float32 daily grid, 25 positions per query
    python benchmarks/bench_grid.py --quick    # 60 x 200 x 200, 8 positions -> results/grid-quick.*
    python benchmarks/bench_grid.py --render benchmarks/results/grid.json   # re-render the .md

Data (cached in benchmarks/data/, gitignored):

* a seeded daily grid for 2025 (one variable ``pm25``, float32, lon/lat on
  OGC:CRS84, 0.5 x 0.5 degrees around lon 108.95 lat 34.27, north-up): smooth
  background and season, drifting Gaussian plumes, white noise and a few
  missing rectangles (NaN). Written once, in blocks, as a map-chunked NetCDF
  (chunks of one step x the whole map, uncompressed), the anchors' file, and
  ingested from it into a cube store (``data/grid_store``), reused while its
  marker says it holds the same data in the same layout;
* the Beijing air-quality stations (12 stations, hourly, 2013-03 to 2017-02),
  read from their CSVs into a cube dataset of point observations and into a
  Parquet file for the pandas anchor.

Queries on the grid, each at seeded random positions, the same for every system:

1. a point's series over the whole year;
2. the whole map of one day;
3. the mean over 30 days and a square of 10% of the grid (one number: the mean
   of every cell of the 30 x 316 x 316 block that holds a value).

Systems: ours through the Python API (``cube.grid(...)`` opened inside each
call, both copies: map and series), plain ``xarray.open_dataset`` on the
NetCDF (opened inside each call), pygeoapi's xarray EDR provider on the same
NetCDF as a real server over HTTP (``/position`` and ``/cube``, one client in
sequence), and ours over EDR once the project's EDR endpoints exist (one more
entry in ``http_systems``). Every answer is compared with plain xarray's.

Station queries: one station's 4-year series, one station's year, all
stations for one month, daily means over the 4 years: ``cube.series`` against
pandas on a Parquet file, and pygeoapi's xarray EDR provider on a (station,
time) NetCDF if it can serve one.

Results: benchmarks/results/grid.md + grid.json (quick: grid-quick.*); the
exit status is 1 if anything failed or any answer disagreed. Only 127.0.0.1
is contacted; the servers are stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_cube as BC  # noqa: E402
import generate as G  # noqa: E402
import servers as S  # noqa: E402

RESULTS = HERE / "results"
GRID_DIR = G.DATA / "grid"
STORE = G.DATA / "grid_store"
MARKER = STORE / "bench_grid.json"
BEIJING_SRC = Path("/work/shared/data/beijing_air_quality")
UTC = dt.timezone.utc

#: Generator version: a change to the data's recipe makes a new file and a reload.
GEN_VERSION = 1
#: lon/lat box of the grid (OGC:CRS84): 0.5 x 0.5 degrees around lon 108.95, lat 34.27.
BOX = (108.70, 34.02, 109.20, 34.52)
YEAR_START = np.datetime64("2025-01-01T00:00:00", "s")
VAR = "pm25"
AREA_DAYS = 30
AREA_FRACTION = 0.10
WRITE_BLOCK = 32  # time steps generated and written at a time

TARGET_SERIES_MS, TARGET_MAP_MS, TARGET_AREA_MS, TARGET_SERIES_X = 20.0, 100.0, 500.0, 10.0

BJ_DATASET = "bj_air"
BJ_VARS = ["pm25", "pm10", "no2", "o3"]
BJ_COLUMNS = {"PM2.5": "pm25", "PM10": "pm10", "SO2": "so2", "NO2": "no2", "CO": "co", "O3": "o3",
              "TEMP": "temp", "PRES": "pres", "DEWP": "dewp", "RAIN": "rain", "wd": "wd", "WSPM": "wspm"}
BJ_YEAR = 2016

QUERIES = ("series", "map", "area")
QUERY_TITLES = {"series": "Point series over the whole year",
                "map": "One-day map (the whole grid)",
                "area": f"{AREA_DAYS}-day mean over 10% of the grid"}
OURS_MAP, OURS_SERIES = "ours, map copy (Python API)", "ours, series copy (Python API)"
XARRAY = "xarray.open_dataset (NetCDF)"
PYGEOAPI = "pygeoapi xarray-edr (EDR over HTTP)"
OURS_EDR = "ours (EDR over HTTP)"
#: The copy each query's target is judged on (the store's docstring: map copy for maps and
#: area statistics, series copy for the series of a point).
TARGET_COPY = {"series": OURS_SERIES, "map": OURS_MAP, "area": OURS_MAP}
EDR_NOT_BUILT = "not measured: no EDR answer in this run"
BJ_EDR_NOT_RUN = "not measured: no EDR answer for the stations in this run"

FAILURES: list[str] = []
MISMATCHES: list[str] = []


log = BC.log


def fail(what: str, exc: BaseException) -> str:
    BC.fail(what, exc)
    FAILURES.append(BC.FAILURES[-1])
    return f"fails: {type(exc).__name__}: {str(exc)[:300]}"


def summarise(ms: list[float]) -> dict:
    a = np.asarray(ms, float)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "n": int(len(a)), "ms": [round(float(x), 3) for x in a]}


# --------------------------------------------------------------------------- the grid's data

@dataclass(frozen=True)
class GridShape:
    steps: int
    ny: int
    nx: int
    seed: int

    @property
    def key(self) -> str:
        return f"bench grid v{GEN_VERSION}: {self.steps}x{self.ny}x{self.nx} float32 seed {self.seed} box {BOX}"

    @property
    def netcdf(self) -> Path:
        return GRID_DIR / f"grid_{self.steps}x{self.ny}x{self.nx}_s{self.seed}.nc"

    @property
    def grid_name(self) -> str:
        return f"bench_daily_{self.steps}x{self.ny}x{self.nx}"

    @property
    def dx(self) -> float:
        return (BOX[2] - BOX[0]) / self.nx

    @property
    def dy(self) -> float:
        return (BOX[3] - BOX[1]) / self.ny

    @property
    def lon(self) -> np.ndarray:
        return BOX[0] + (np.arange(self.nx) + 0.5) * self.dx

    @property
    def lat(self) -> np.ndarray:  # north first: a north-up grid
        return BOX[3] - (np.arange(self.ny) + 0.5) * self.dy

    @property
    def area_cells(self) -> int:
        return int(round(math.sqrt(AREA_FRACTION) * min(self.nx, self.ny)))

    def day(self, i: int) -> np.datetime64:
        return YEAR_START + np.timedelta64(int(i), "D")


def _plumes(seed: int, k: int = 8) -> np.ndarray:
    """k plumes: (x0, y0, radius, angular speed per day, phase, width, amplitude), in grid units (0..1)."""
    rng = np.random.default_rng([seed, 1])
    return np.column_stack([rng.uniform(0.2, 0.8, k), rng.uniform(0.2, 0.8, k), rng.uniform(0.05, 0.3, k),
                            rng.uniform(0.005, 0.05, k) * rng.choice([-1, 1], k), rng.uniform(0, 2 * np.pi, k),
                            rng.uniform(0.03, 0.12, k), rng.uniform(20, 80, k)])


def make_block(shape: GridShape, i: int, j: int) -> np.ndarray:
    """Days i..j-1 of the grid as a (j - i, ny, nx) float32 array (each day from its own seeded generator)."""
    u = ((np.arange(shape.nx) + 0.5) / shape.nx).astype(np.float32)
    v = ((np.arange(shape.ny) + 0.5) / shape.ny).astype(np.float32)
    base = (25.0 + 12.0 * u[None, :] + 6.0 * np.sin(2 * np.pi * v)[:, None]).astype(np.float32)
    plumes = _plumes(shape.seed)
    out = np.empty((j - i, shape.ny, shape.nx), np.float32)
    tmp = np.empty((shape.ny, shape.nx), np.float32)
    for k, d in enumerate(range(i, j)):
        rng = np.random.default_rng([shape.seed, 2, d])
        season = np.float32(1.0 + 0.6 * np.cos(2 * np.pi * (d - 10) / 365.0))  # winter high
        m = out[k]
        np.multiply(base, season, out=m)
        for x0, y0, r, w, ph, s, a in plumes:
            cx, cy = x0 + r * np.cos(w * d + ph), y0 + r * np.sin(w * d + ph)
            amp = np.float32(a * season * rng.lognormal(0.0, 0.35))
            gx = np.exp(-((u - cx) ** 2) / (2 * s * s)).astype(np.float32)
            gy = (amp * np.exp(-((v - cy) ** 2) / (2 * s * s))).astype(np.float32)
            np.multiply.outer(gy, gx, out=tmp)
            m += tmp
        m += rng.standard_normal((shape.ny, shape.nx), dtype=np.float32) * np.float32(3.0)
        if rng.random() < 0.08:  # a missing rectangle (an outage): NaN
            h, w_ = shape.ny // 6, shape.nx // 4
            y0_, x0_ = int(rng.integers(0, shape.ny - h)), int(rng.integers(0, shape.nx - w_))
            m[y0_:y0_ + h, x0_:x0_ + w_] = np.nan
        np.maximum(m, 0, out=m)
    return out


def netcdf_file(shape: GridShape) -> dict:
    """The map-chunked NetCDF (chunks of one step x the whole map, uncompressed), made once."""
    import netCDF4

    path = shape.netcdf
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        with netCDF4.Dataset(path) as nc:
            same = getattr(nc, "bench_key", None) == shape.key
        if same and meta.get("key") == shape.key:
            log(f"  {path.relative_to(G.DATA)} already made ({path.stat().st_size / 2**20:,.0f} MiB)")
            return {**meta, "cached": True}
    GRID_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.nc")
    t0 = time.perf_counter()
    gen_s = 0.0
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.Conventions = "CF-1.8"
        nc.title = "Benchmark daily grid (synthetic PM2.5)"
        nc.source = "benchmarks/bench_grid.py (seeded)"
        nc.bench_key = shape.key
        nc.createDimension("time", shape.steps)
        nc.createDimension("lat", shape.ny)
        nc.createDimension("lon", shape.nx)
        t = nc.createVariable("time", "i4", ("time",))
        t.units, t.calendar, t.standard_name, t.axis = "days since 2025-01-01 00:00:00", "standard", "time", "T"
        t[:] = np.arange(shape.steps, dtype=np.int32)
        la = nc.createVariable("lat", "f8", ("lat",))
        la.units, la.standard_name, la.axis = "degrees_north", "latitude", "Y"
        la[:] = shape.lat
        lo = nc.createVariable("lon", "f8", ("lon",))
        lo.units, lo.standard_name, lo.axis = "degrees_east", "longitude", "X"
        lo[:] = shape.lon
        var = nc.createVariable(VAR, "f4", ("time", "lat", "lon"), chunksizes=(1, shape.ny, shape.nx),
                                zlib=False, fill_value=np.float32(np.nan))
        var.units, var.long_name = "ug m-3", "PM2.5 concentration (synthetic)"
        for i in range(0, shape.steps, WRITE_BLOCK):
            j = min(shape.steps, i + WRITE_BLOCK)
            g = time.perf_counter()
            block = make_block(shape, i, j)
            gen_s += time.perf_counter() - g
            var[i:j] = block
            del block
    os.replace(tmp, path)
    secs = time.perf_counter() - t0
    meta = {"key": shape.key, "path": str(path.relative_to(HERE.parent)), "bytes": path.stat().st_size,
            "seconds": secs, "generate_seconds": gen_s, "made_utc": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "chunks": [1, shape.ny, shape.nx], "compression": "none"}
    meta_path.write_text(json.dumps(meta, indent=1))
    log(f"  wrote {path.relative_to(G.DATA)}: {meta['bytes'] / 2**20:,.0f} MiB in {secs:.1f}s "
        f"({gen_s:.1f}s of it generating)")
    return {**meta, "cached": False}


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _layout_key() -> str:
    """What the store's layout is: chunk shapes and codecs (a change reloads the grid)."""
    from geoplatform.grids.model import GridSpec

    spec = GridSpec(name="x")
    try:
        from geoplatform.grids import store as gstore

        codecs = repr(gstore._codecs())
    except Exception as e:  # noqa: BLE001
        codecs = f"unknown ({e})"
    return f"map chunk {spec.map_chunk} series chunk {spec.series_chunk} codecs {codecs}"


def _marker() -> dict:
    return json.loads(MARKER.read_text()) if MARKER.exists() else {}


def _save_marker(m: dict) -> None:
    STORE.mkdir(parents=True, exist_ok=True)
    MARKER.write_text(json.dumps(m, indent=1))


def load_grid(cube, shape: GridShape, nc_meta: dict) -> dict:
    """The grid ingested from the NetCDF into the store (kept while the marker matches)."""
    name = shape.grid_name
    nc = shape.netcdf
    key = f"{shape.key}; {nc.name} {nc.stat().st_size} {nc.stat().st_mtime_ns}; {_layout_key()}"
    m = _marker()
    have = {g.name for g in cube.grids()}
    if name in have and m.get(name, {}).get("key") == key:
        try:
            steps = cube.grid(name).sizes.get("time", 0)
        except Exception as e:  # noqa: BLE001
            steps = f"unreadable: {e}"
        if steps == shape.steps:
            log(f"  grid {name} already loaded ({steps} steps)")
            return {**m[name], "cached": True}
        log(f"  grid {name}: the store holds {steps} steps, expected {shape.steps}: reloading")
    if name in have:
        cube.drop_grid(name)
    cube.create_grid({"name": name, "title": "Benchmark daily grid (synthetic PM2.5)",
                      "source": "benchmarks/bench_grid.py (seeded)", "generated": True})
    t0 = time.perf_counter()
    snap = cube.ingest_grid(name, str(nc))
    secs = time.perf_counter() - t0
    base = STORE / "grids" / name
    sizes = {c: _du(base / f"{c}.zarr") for c in ("map", "series")}
    if not base.exists():  # the store's folder layout, found rather than assumed
        found = [p for p in STORE.rglob(f"{name}") if p.is_dir()]
        if found:
            sizes = {c: _du(found[0] / f"{c}.zarr") for c in ("map", "series")}
    raw = shape.steps * shape.ny * shape.nx * 4
    entry = {"key": key, "seconds": secs, "raw_bytes": raw, "mb_per_s": raw / 2**20 / secs,
             "steps_per_s": shape.steps / secs, "snapshot": snap.id, "summary": snap.summary,
             "store_bytes": sizes, "loaded_utc": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    m[name] = entry
    _save_marker(m)
    log(f"  ingested {name}: {shape.steps} steps, {raw / 2**20:,.0f} MiB raw in {secs:.1f}s "
        f"({entry['mb_per_s']:.0f} MiB/s); map copy {sizes['map'] / 2**20:,.0f} MiB, "
        f"series copy {sizes['series'] / 2**20:,.0f} MiB on disk")
    return {**entry, "cached": False}


# --------------------------------------------------------------------------- grid queries

@dataclass(frozen=True)
class GridQueries:
    """Seeded positions, the same for every system: cells, days, and (30-day window, square) areas."""

    series: list[tuple[float, float]]  # (lon, lat) of cell centres
    map: list[int]  # day index
    area: list[tuple[int, tuple[float, float, float, float]]]  # (first day, (xmin, ymin, xmax, ymax) cell edges)


def make_grid_queries(shape: GridShape, n: int, seed: int) -> GridQueries:
    rng = np.random.default_rng([seed, 3])
    lon, lat = shape.lon, shape.lat
    series = [(float(lon[int(rng.integers(0, shape.nx))]), float(lat[int(rng.integers(0, shape.ny))]))
              for _ in range(n)]
    days = [int(rng.integers(0, shape.steps)) for _ in range(n)]
    a = shape.area_cells
    areas = []
    for _ in range(n):
        d = int(rng.integers(0, shape.steps - AREA_DAYS + 1))
        ix, iy = int(rng.integers(0, shape.nx - a + 1)), int(rng.integers(0, shape.ny - a + 1))
        # edges on cell boundaries: every system selects the same a x a cells by coordinate
        xmin, xmax = BOX[0] + ix * shape.dx, BOX[0] + (ix + a) * shape.dx
        ymax, ymin = BOX[3] - iy * shape.dy, BOX[3] - (iy + a) * shape.dy
        areas.append((d, (xmin, ymin, xmax, ymax)))
    return GridQueries(series, days, areas)


def _yslice(y: np.ndarray, lo: float, hi: float) -> slice:
    return slice(hi, lo) if y[0] > y[-1] else slice(lo, hi)


def ours_fns(cube, name: str, layout: str, shape: GridShape) -> dict[str, Callable]:
    """The three queries through the Python API, the grid opened inside each call."""

    def series(q):
        lon, lat = q
        ds = cube.grid(name, layout=layout)
        return ds[VAR].sel(x=lon, y=lat, method="nearest").values

    def map_(d):
        ds = cube.grid(name, layout=layout)
        return ds[VAR].sel(time=shape.day(d)).values

    def area(q):
        d, (xmin, ymin, xmax, ymax) = q
        ds = cube.grid(name, layout=layout)
        sub = ds[VAR].sel(time=slice(shape.day(d), shape.day(d + AREA_DAYS - 1)),
                          y=_yslice(ds["y"].values, ymin, ymax), x=slice(xmin, xmax))
        return float(sub.mean().values), int(sub.size)

    return {"series": series, "map": map_, "area": area}


def xarray_fns(path: Path, shape: GridShape) -> dict[str, Callable]:
    """The same queries with plain xarray on the NetCDF (netCDF4 engine, no dask), opened inside each call."""
    import xarray as xr

    def series(q):
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds[VAR].sel(lon=q[0], lat=q[1], method="nearest").values

    def map_(d):
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds[VAR].sel(time=shape.day(d)).values

    def area(q):
        d, (xmin, ymin, xmax, ymax) = q
        with xr.open_dataset(path, engine="netcdf4") as ds:
            sub = ds[VAR].sel(time=slice(shape.day(d), shape.day(d + AREA_DAYS - 1)),
                              lat=_yslice(ds["lat"].values, ymin, ymax), lon=slice(xmin, xmax))
            return float(sub.mean().values), int(sub.size)

    return {"series": series, "map": map_, "area": area}


def run_python(name: str, fn: Callable, positions: list, keep: Callable[[int, Any], None]) -> dict:
    """One untimed warm-up pass over every position, then one timed pass; keep(i, answer) sees each answer."""
    for p in positions:
        fn(p)
    gc.collect()
    ms = []
    for i, p in enumerate(positions):
        t = time.perf_counter()
        r = fn(p)
        ms.append((time.perf_counter() - t) * 1000.0)
        keep(i, r)
        del r
    return {"system": name, "status": "ok", **summarise(ms)}


# --------------------------------------------------------------------------- HTTP

def http_latency(base_url: str, paths: list[str], *, warm: bool = True, timeout: float = 900,
                 keep: Callable[[int, int, bytes], None] | None = None) -> dict:
    """Each path requested once, in order, by one client (a ``requests.Session``, keep-alive),
    after an untimed warm-up pass over the same paths. The time of a request is from sending it
    to its whole body received; ``keep(i, status, body)`` runs after the clock stops.
    Returns p50 / p95 / mean ms, the status counts and the body sizes."""
    import requests

    with requests.Session() as s:
        if warm:
            for p in paths:
                s.get(base_url + p, timeout=timeout).content  # noqa: B018 - read the whole body
        ms, statuses, sizes = [], [], []
        for i, p in enumerate(paths):
            t = time.perf_counter()
            r = s.get(base_url + p, timeout=timeout)
            body = r.content
            ms.append((time.perf_counter() - t) * 1000.0)
            statuses.append(r.status_code)
            sizes.append(len(body))
            if keep is not None:
                keep(i, r.status_code, body)
    out = summarise(ms)
    out.update({"statuses": {str(k): v for k, v in Counter(statuses).items()},
                "all_200": all(s == 200 for s in statuses), "bytes_median": float(np.median(sizes))})
    return out


def _iso(t: np.datetime64) -> str:
    return np.datetime_as_string(t.astype("datetime64[s]"), unit="s") + "Z"


def edr_paths(collection: str, shape: GridShape, day_form: str = "instant") -> dict[str, Callable]:
    """OGC API EDR paths of the three queries: /position for the series, /cube for the map and the area."""
    full = ",".join(repr(float(v)) for v in BOX)
    year = f"{_iso(shape.day(0))}/{_iso(shape.day(shape.steps - 1))}"

    def series(q):
        return f"/collections/{collection}/position?coords=POINT({q[0]!r} {q[1]!r})&parameter-name={VAR}&datetime={year}"

    def map_(d):
        when = _iso(shape.day(d)) if day_form == "instant" else \
            f"{_iso(shape.day(d))}/{_iso(shape.day(d) + np.timedelta64(86399, 's'))}"
        return f"/collections/{collection}/cube?bbox={full}&parameter-name={VAR}&datetime={when}"

    def area(q):
        d, b = q
        bbox = ",".join(repr(float(v)) for v in b)
        return (f"/collections/{collection}/cube?bbox={bbox}&parameter-name={VAR}"
                f"&datetime={_iso(shape.day(d))}/{_iso(shape.day(d + AREA_DAYS - 1))}")

    return {"series": series, "map": map_, "area": area}


def covjson_values(body: bytes, var: str = VAR) -> np.ndarray:
    """The values of ``var`` in a CoverageJSON Coverage, nulls as NaN, flattened in the document's order."""
    doc = json.loads(body)
    if doc.get("type") != "Coverage":
        raise ValueError(f"not a CoverageJSON Coverage: type {doc.get('type')!r}")
    vals = doc["ranges"][var]["values"]
    return np.array([np.nan if v is None else v for v in vals], dtype=np.float64)


def _http_error(status: int, body: bytes) -> str:
    try:
        d = json.loads(body)
        msg = d.get("description") or d.get("detail") or d.get("title") or body[:200].decode(errors="replace")
    except Exception:  # noqa: BLE001
        msg = body[:200].decode(errors="replace")
    return f"HTTP {status}: {str(msg)[:300]}"


@dataclass
class HttpSystem:
    """A server measured over HTTP: how to start it on the benchmark's data, and its paths.

    ``start(workdir)`` returns a started, ready ``servers.Server`` (None, with
    ``not_available`` set: the system is listed as not measured)."""

    name: str
    start: Callable[[Path], Any] | None
    paths: Callable[[str], dict[str, Callable]] | None  # day form -> query -> position -> path
    not_available: str = ""
    server: Any = None
    notes: list[str] = field(default_factory=list)


def pygeoapi_config(resources: dict, port: int, where: Path, stem: str) -> Path:
    """A pygeoapi configuration with the server benchmark's server, logging and metadata blocks
    (servers.pygeoapi_config) and the given resources, and its OpenAPI document."""
    import yaml

    base = S.pygeoapi_config([], "Parquet", port, where)  # no resources: only its common blocks are used
    cfg = yaml.safe_load(base.read_text())
    cfg["resources"] = resources
    path = where / f"{stem}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    openapi = path.with_suffix(".openapi.yml")
    p = subprocess.run([str(HERE.parent / ".venv" / "bin" / "pygeoapi"), "openapi", "generate", str(path),
                        "--output-file", str(openapi)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYGEOAPI_CONFIG": str(path)})
    if p.returncode:
        raise RuntimeError(f"pygeoapi openapi generate failed: {p.stderr[-2000:]}")
    return path


def edr_resource(title: str, nc: Path, bbox: list[float], begin: dt.datetime, end: dt.datetime) -> dict:
    return {"type": "collection", "title": title, "description": title, "keywords": ["benchmark"],
            "extents": {"spatial": {"bbox": bbox, "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
                        "temporal": {"begin": begin, "end": end}},
            "providers": [{"type": "edr", "name": "xarray-edr", "data": str(nc),
                           "x_field": "lon", "y_field": "lat", "time_field": "time",
                           "format": {"name": "netcdf", "mimetype": "application/x-netcdf"}}]}


def start_pygeoapi(name: str, resources: dict, where: Path) -> Any:
    port = S.free_port()
    cfg = pygeoapi_config(resources, port, where, name)
    srv = S.Server(name, [str(HERE.parent / ".venv" / "bin" / "uvicorn"), "pygeoapi.starlette_app:APP",
                          "--host", S.HOST, "--port", str(port), "--workers", "1"], port,
                   env={"PYGEOAPI_CONFIG": str(cfg), "PYGEOAPI_OPENAPI": str(cfg.with_suffix(".openapi.yml"))},
                   log_path=where / f"{name}.log")
    srv.start()
    try:
        srv.wait_ready("/collections?f=json", timeout=300)
    except Exception:
        srv.stop()
        raise
    return srv


def start_ours(name: str, where: Path, layer_id: str, layer_body: str) -> Any:
    """``geoplatform serve`` (one worker) on ``STORE``, publishing one layer file: ``id``
    ``layer_id`` and the rest of ``layer_body``; started and ready."""
    layers = where / "layers" / "sensing"
    layers.mkdir(parents=True, exist_ok=True)
    (layers / f"{layer_id}.yaml").write_text(f"id: {layer_id}\n{layer_body}")
    port = S.free_port()
    srv = S.Server(name, [str(HERE.parent / ".venv" / "bin" / "geoplatform"), "serve", "--store", str(STORE),
                          "--host", S.HOST, "--port", str(port), "--workers", "1", "--layers", str(where / "layers"),
                          "--catalog", str(HERE.parent / "catalogs" / "sample_city.yaml")], port,
                   log_path=where / "geoplatform.log")
    srv.start()
    try:
        srv.wait_ready(f"/collections/{layer_id}", timeout=300)
    except Exception:
        srv.stop()
        raise
    return srv


def http_systems(shape: GridShape, collection: str) -> list[HttpSystem]:
    """The systems measured over HTTP on the grid, with the same EDR paths: pygeoapi's
    xarray-edr provider on the NetCDF, and ``geoplatform serve`` on ``STORE`` with the grid
    published as ``collection``."""

    def pygeoapi_start(where: Path):
        t0, t1 = shape.day(0).astype(dt.datetime), shape.day(shape.steps - 1).astype(dt.datetime)
        res = {collection: edr_resource("Benchmark daily grid", shape.netcdf, list(BOX),
                                        t0.replace(tzinfo=UTC), t1.replace(tzinfo=UTC))}
        return start_pygeoapi("pygeoapi-edr-grid", res, where)

    def ours_start(where: Path):
        # the grid published by a grid layer file, as a deployment would; one worker, as pygeoapi
        return start_ours(OURS_EDR, where, collection, f"grid: {shape.grid_name}\nmax_cells: 50000000\n")

    return [
        HttpSystem(PYGEOAPI, pygeoapi_start, lambda form: edr_paths(collection, shape, form)),
        HttpSystem(OURS_EDR, ours_start, lambda form: edr_paths(collection, shape, form)),
    ]


# --------------------------------------------------------------------------- agreement

class Agreement:
    """Every system's answers against the reference's (plain xarray on the NetCDF), per query."""

    def __init__(self) -> None:
        self.ref: dict[str, dict[int, Any]] = {q: {} for q in QUERIES}
        self.bad: dict[tuple[str, str], list[str]] = {}
        self.checked: dict[tuple[str, str], int] = {}

    def keep_ref(self, query: str) -> Callable[[int, Any], None]:
        def keep(i, r):
            self.ref[query][i] = r
        return keep

    def check(self, query: str, system: str, i: int, got: Any) -> None:
        k = (query, system)
        self.checked[k] = self.checked.get(k, 0) + 1
        want = self.ref[query].get(i)
        if want is None:
            self.bad.setdefault(k, []).append(f"position {i}: no reference answer")
            return
        if query == "area":
            (gm, gn), (wm, wn) = got, want
            ok = gn == wn and np.allclose(gm, wm, rtol=1e-5, atol=0, equal_nan=True)
            why = f"mean {gm!r} over {gn} cells, reference {wm!r} over {wn} cells"
        else:
            g, w = np.asarray(got, np.float64), np.asarray(want, np.float64)
            if g.size == w.size and g.shape != w.shape:
                g = g.reshape(w.shape)  # a flat CoverageJSON range
            ok = g.shape == w.shape and np.allclose(g, w, rtol=1e-6, atol=0, equal_nan=True)
            why = (f"shape {g.shape} vs {w.shape}" if g.shape != w.shape else
                   f"{int((~np.isclose(g, w, rtol=1e-6, atol=0, equal_nan=True)).sum())} of {w.size} values differ")
        if not ok:
            self.bad.setdefault(k, []).append(f"position {i}: {why}")

    def keeper(self, query: str, system: str) -> Callable[[int, Any], None]:
        return lambda i, r: self.check(query, system, i, r)

    def verdict(self, query: str, system: str) -> dict:
        k = (query, system)
        bad = self.bad.get(k, [])
        return {"checked": self.checked.get(k, 0), "disagree": len(bad), "examples": bad[:3]}


# --------------------------------------------------------------------------- the grid section

def grid_section(a, shape: GridShape, cube, res: dict) -> None:
    q = make_grid_queries(shape, a.reps, a.seed)
    positions = {"series": q.series, "map": q.map, "area": q.area}
    agree = Agreement()
    out: dict[str, dict] = {k: {"systems": []} for k in QUERIES}
    out["series"]["what"] = f"all {shape.steps} steps of one cell (nearest to a cell centre)"
    out["map"]["what"] = f"all {shape.ny} x {shape.nx} cells of one day"
    out["area"]["what"] = (f"mean of every cell with a value in {AREA_DAYS} days x {shape.area_cells} x "
                           f"{shape.area_cells} cells ({shape.area_cells ** 2 / (shape.nx * shape.ny) * 100:.1f}% "
                           "of the grid), one number")
    res["grid"] = out

    def add(query, entry, verdict=None):
        if verdict is not None:
            entry["agreement"] = verdict
        out[query]["systems"].append(entry)
        if entry.get("status") == "ok":
            log(f"  {query:<6} {entry['system']:<40} p50 {entry['p50_ms']:9.1f} ms  p95 {entry['p95_ms']:9.1f} ms"
                + (f"  (n={entry['n']})" if entry['n'] != len(positions[query]) else ""))
        else:
            log(f"  {query:<6} {entry['system']:<40} {entry.get('status')}")

    # the reference: plain xarray on the NetCDF
    log(f"\n## grid queries: {a.reps} positions each, one warm-up pass then one timed pass")
    xf = xarray_fns(shape.netcdf, shape)
    for query in QUERIES:
        try:
            e = run_python(XARRAY, xf[query], positions[query], agree.keep_ref(query))
            add(query, e, {"reference": True})
        except Exception as e:  # noqa: BLE001
            add(query, {"system": XARRAY, "status": fail(f"grid {query}: {XARRAY}", e)})
    # ours, both copies
    for layout, label in (("map", OURS_MAP), ("series", OURS_SERIES)):
        if cube is None:
            for query in QUERIES:
                add(query, {"system": label, "status": "not run: the cube did not open"})
            continue
        of = ours_fns(cube, shape.grid_name, layout, shape)
        for query in QUERIES:
            try:
                e = run_python(label, of[query], positions[query], agree.keeper(query, label))
                add(query, e, agree.verdict(query, label))
            except Exception as e:  # noqa: BLE001
                add(query, {"system": label, "status": fail(f"grid {query}: {label}", e)})

    # over HTTP
    where = Path(tempfile.mkdtemp(prefix="bench_grid_"))
    res["http_notes"] = {}
    try:
        for hs in http_systems(shape, "bench_daily"):
            if a.skip_pygeoapi and hs.name == PYGEOAPI:
                hs.not_available = "not run (--skip-pygeoapi)"
            if hs.start is None or hs.not_available:
                for query in QUERIES:
                    add(query, {"system": hs.name, "status": hs.not_available or "not available"})
                continue
            try:
                hs.server = hs.start(where)
            except Exception as e:  # noqa: BLE001
                msg = fail(f"start {hs.name}", e)
                for query in QUERIES:
                    add(query, {"system": hs.name, "status": msg})
                continue
            try:
                run_http_system(a, hs, shape, positions, agree, add, res["http_notes"])
            finally:
                hs.server.stop()
    finally:
        shutil.rmtree(where, ignore_errors=True)

    for (query, system), bad in agree.bad.items():
        MISMATCHES.append(f"grid {query} / {system}: {len(bad)} answers differ from plain xarray's, e.g. {bad[0]}")
        log(f"!!! ANSWERS DIFFER grid {query} / {system}: {bad[:3]}")


def run_http_system(a, hs: HttpSystem, shape: GridShape, positions: dict, agree: Agreement, add, notes: dict) -> None:
    import requests

    base = hs.server.base
    day_form = "instant"
    # probes: one request per query (and the alternatives when the first form fails), untimed
    probe: dict[str, dict] = {}
    with requests.Session() as s:
        for query in QUERIES:
            paths = hs.paths(day_form)
            p = paths[query](positions[query][0])
            t = time.perf_counter()
            r = s.get(base + p, timeout=900)
            secs = time.perf_counter() - t
            probe[query] = {"status": r.status_code, "seconds": secs, "path": p}
            if r.status_code != 200:
                probe[query]["error"] = _http_error(r.status_code, r.content)
                if query == "map":  # an instant may not be served where a one-day interval is
                    p2 = hs.paths("interval")["map"](positions["map"][0])
                    t = time.perf_counter()
                    r2 = s.get(base + p2, timeout=900)
                    secs2 = time.perf_counter() - t
                    if r2.status_code == 200:
                        day_form = "interval"
                        hs.notes.append(f"one-day map: the instant form `datetime={p.split('datetime=')[1]}` "
                                        f"fails ({probe['map']['error']}); the one-day interval "
                                        f"`datetime={p2.split('datetime=')[1]}` is used")
                        probe[query] = {"status": 200, "seconds": secs2, "path": p2, "instant_error":
                                        probe[query]["error"]}
        # /area, which the requirement names for the area mean
        d, (xmin, ymin, xmax, ymax) = positions["area"][0]
        poly = f"POLYGON(({xmin!r} {ymin!r},{xmax!r} {ymin!r},{xmax!r} {ymax!r},{xmin!r} {ymax!r},{xmin!r} {ymin!r}))"
        ap = (f"/collections/bench_daily/area?coords={poly}&parameter-name={VAR}"
              f"&datetime={_iso(shape.day(d))}/{_iso(shape.day(d + AREA_DAYS - 1))}")
        r = s.get(base + ap, timeout=900)
        area_note = ("`/area` answers 200" if r.status_code == 200 else
                     f"`/area` is not served ({_http_error(r.status_code, r.content)}); the area mean is read "
                     "with `/cube` (bbox + 30-day interval) and computed by the client")
        hs.notes.append(area_note)
    notes[hs.name] = {"probes": probe, "notes": hs.notes}
    for k, v in probe.items():
        log(f"  probe {hs.name} {k}: HTTP {v['status']} in {v['seconds']:.2f}s" + (f" {v.get('error', '')}"))
    paths = hs.paths(day_form)
    for query in QUERIES:
        pr = probe[query]
        if pr["status"] != 200:
            add(query, {"system": hs.name, "status": f"fails: {pr.get('error')}"})
            continue
        pos = positions[query]
        # a time budget per query: a system slower than budget / positions is timed on fewer of them
        n = len(pos)
        if pr["seconds"] * n > a.http_budget:
            n = max(min(5, len(pos)), int(a.http_budget // max(pr["seconds"], 1e-3)))
            n = min(n, len(pos))
        ps = [paths[query](p) for p in pos[:n]]
        parse_ms: list[float] = []
        errors: list[str] = []

        def keep(i, status, body, query=query):
            if status != 200:
                errors.append(_http_error(status, body))
                return
            t = time.perf_counter()
            try:
                vals = covjson_values(body)
            except Exception as e:  # noqa: BLE001
                errors.append(f"position {i}: unreadable answer: {e}")
                return
            got = (float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"), int(vals.size)) \
                if query == "area" else vals
            parse_ms.append((time.perf_counter() - t) * 1000.0)
            agree.check(query, hs.name, i, got)

        try:
            e = http_latency(base, ps, keep=keep)
        except Exception as ex:  # noqa: BLE001
            add(query, {"system": hs.name, "status": fail(f"grid {query}: {hs.name}", ex)})
            continue
        e = {"system": hs.name, "status": "ok" if e["all_200"] else
             f"fails: {errors[0] if errors else e['statuses']}", **e,
             "client_decode_ms_median": float(np.median(parse_ms)) if parse_ms else None,
             "probe_seconds": pr["seconds"]}
        if n < len(pos):
            e["note"] = (f"timed on the first {n} of the {len(pos)} positions: the probe took {pr['seconds']:.1f}s "
                         f"and each (system, query) has a budget of {a.http_budget:.0f}s")
        if not e["status"] == "ok":
            FAILURES.append(f"grid {query}: {hs.name}: {e['status']}")
        add(query, e, agree.verdict(query, hs.name))


# --------------------------------------------------------------------------- Beijing stations

def beijing_frame():
    """The 12 stations' hourly rows as one pandas frame: obs_id, station, observed_at (UTC), the
    variables, lon, lat. The CSVs' times are Beijing time (UTC+8)."""
    import pandas as pd

    st = pd.read_csv(BEIJING_SRC / "stations_from_cnemc_airnow.csv").set_index("station")
    frames = []
    for f in sorted(BEIJING_SRC.glob("PRSA_Data_*_20130301-20170228.csv")):
        d = pd.read_csv(f)
        local = pd.to_datetime(d[["year", "month", "day", "hour"]])
        out = pd.DataFrame({"obs_id": d["station"] + "-" + d["No"].astype(str), "station": d["station"],
                            "observed_at": local.dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC")})
        for src, dst in BJ_COLUMNS.items():
            out[dst] = d[src]
        out["lon"] = st.loc[d["station"], "lon"].to_numpy()
        out["lat"] = st.loc[d["station"], "lat"].to_numpy()
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def beijing_data(cube) -> dict:
    """The Parquet file of the pandas anchor and the cube dataset (both kept while their sources are unchanged)."""
    import geopandas as gpd
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(BEIJING_SRC.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no Beijing CSVs in {BEIJING_SRC}")
    key = "bj v2 space copy: " + ", ".join(f"{p.name} {p.stat().st_size}" for p in files)
    out_dir = G.DATA / "beijing"
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = out_dir / "bj_air.parquet"
    meta = out_dir / "bj_air.json"
    info: dict = {"parquet": str(parquet.relative_to(HERE.parent))}
    df = None
    if not (parquet.exists() and meta.exists() and json.loads(meta.read_text()).get("key") == key):
        t = time.perf_counter()
        df = beijing_frame()
        # in station then time order, as the CSVs are: a station's rows are a few row groups
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), parquet, row_group_size=50_000)
        meta.write_text(json.dumps({"key": key, "rows": len(df)}))
        log(f"  wrote {parquet.relative_to(G.DATA)}: {len(df):,} rows in {time.perf_counter() - t:.1f}s")
    info["rows"] = json.loads(meta.read_text())["rows"]
    if cube is None:
        return info
    m = _marker()
    present = {s.name for s in cube.datasets()}
    if BJ_DATASET in present and m.get(BJ_DATASET, {}).get("key") == key:
        log(f"  cube dataset {BJ_DATASET} already loaded")
        info["ingest"] = {**m[BJ_DATASET], "cached": True}
        return info
    import geoplatform as gp
    import pandas as pd

    if df is None:
        df = pd.read_parquet(parquet)
    if BJ_DATASET in present:
        cube.drop_dataset(BJ_DATASET)
    cube.create_dataset(gp.DatasetSpec(name=BJ_DATASET, title="Beijing air quality (12 stations, hourly)",
                                       fid="obs_id", geometry_type="Point", valid_from="observed_at", instant=True,
                                       storage_crs="EPSG:4326", time_partition="month",
                                       # as the sample city's air-quality readings: a copy sorted by
                                       # place then time, where a station's whole series is a few row groups
                                       space_copy=True))
    gdf = gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=gpd.points_from_xy(df["lon"], df["lat"]),
                           crs="EPSG:4326")
    t = time.perf_counter()
    rep = cube.ingest(BJ_DATASET, gdf)
    secs = time.perf_counter() - t
    entry = {"key": key, "seconds": secs, "rows": len(gdf), "rows_per_s": len(gdf) / secs,
             "rows_added": getattr(rep, "rows_added", None), "report": str(rep),
             "loaded_utc": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    m[BJ_DATASET] = entry
    _save_marker(m)
    log(f"  ingested {BJ_DATASET}: {len(gdf):,} rows in {secs:.1f}s ({entry['rows_per_s']:,.0f} rows/s)")
    info["ingest"] = {**entry, "cached": False}
    return info


def _ts(s: str):
    import pandas as pd

    return pd.Timestamp(s)


def beijing_queries(n: int, seed: int) -> dict[str, list]:
    import pandas as pd

    stations = sorted(p.name.split("_")[2] for p in BEIJING_SRC.glob("PRSA_Data_*.csv"))
    rng = np.random.default_rng([seed, 4])
    months = pd.date_range("2013-03-01", "2017-02-01", freq="MS", tz="UTC")
    st = [stations[i % len(stations)] for i in rng.permutation(max(n, len(stations)))[:n]]
    st2 = [stations[i % len(stations)] for i in rng.permutation(max(n, len(stations)))[:n]]
    mo = [months[int(rng.integers(0, len(months)))] for _ in range(n)]
    return {"station_4y": st, "station_year": st2,
            "month_all": [(m, m + pd.offsets.MonthBegin(1) - pd.Timedelta(seconds=1)) for m in mo],
            "daily_means": [None] * max(3, min(n // 3, 6))}


BJ_TITLES = {"station_4y": "One station's whole series (4 years, hourly)",
             "station_year": f"One station's series over one year ({BJ_YEAR}, hourly)",
             "month_all": "All stations for one month (hourly)",
             "daily_means": "Daily means of every station over the 4 years"}


def _z(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def beijing_ours(cube) -> dict[str, Callable]:
    yr = f"{BJ_YEAR}-01-01T00:00:00Z/{BJ_YEAR}-12-31T23:59:59Z"

    def station_4y(s):
        return cube.series(BJ_DATASET, station="station", variables=BJ_VARS, filter=f"station = '{s}'")

    def station_year(s):
        return cube.series(BJ_DATASET, station="station", variables=BJ_VARS, filter=f"station = '{s}'",
                           datetime=yr)

    def month_all(w):
        return cube.series(BJ_DATASET, station="station", variables=BJ_VARS, datetime=f"{_z(w[0])}/{_z(w[1])}")

    def daily_means(_):
        return cube.series(BJ_DATASET, station="station", variables=BJ_VARS, freq="1D", agg="mean")

    return {"station_4y": station_4y, "station_year": station_year, "month_all": month_all,
            "daily_means": daily_means}


def beijing_pandas(parquet: Path) -> dict[str, Callable]:
    """pandas on the Parquet file (read inside each call): filters pushed to the reader, then pivot / groupby."""
    import pandas as pd

    cols = ["station", "observed_at", *BJ_VARS]

    def _station(s, lo=None, hi=None):
        f = [("station", "==", s)]
        if lo is not None:
            f += [("observed_at", ">=", lo), ("observed_at", "<=", hi)]
        d = pd.read_parquet(parquet, columns=cols, filters=f)
        return d.set_index("observed_at").sort_index()[BJ_VARS]

    def station_4y(s):
        return _station(s)

    def station_year(s):
        return _station(s, _ts(f"{BJ_YEAR}-01-01T00:00:00Z"), _ts(f"{BJ_YEAR}-12-31T23:59:59Z"))

    def month_all(w):
        d = pd.read_parquet(parquet, columns=cols, filters=[("observed_at", ">=", w[0]), ("observed_at", "<=", w[1])])
        return d.pivot(index="station", columns="observed_at", values=BJ_VARS)

    def daily_means(_):
        d = pd.read_parquet(parquet, columns=cols)
        day = d["observed_at"].dt.floor("1D")
        return d.groupby(["station", day])[BJ_VARS].mean().unstack("observed_at")

    return {"station_4y": station_4y, "station_year": station_year, "month_all": month_all,
            "daily_means": daily_means}


def _naive(idx):
    import pandas as pd

    idx = pd.DatetimeIndex(idx)
    return idx.tz_convert(None) if idx.tz is not None else idx


def beijing_compare(query: str, ours, ref) -> str | None:
    """None when ours (an xarray Dataset over (station, time)) holds what pandas computed; else why not."""
    import pandas as pd

    for v in BJ_VARS:
        if query.startswith("station"):
            s = str(ours.station.values[0]) if ours.sizes["station"] == 1 else None
            if s is None:
                return f"{ours.sizes['station']} stations, expected 1"
            got = pd.Series(ours[v].values[0], index=_naive(ours.time.values).as_unit("ns"))
            want = pd.Series(ref[v].to_numpy(float), index=_naive(ref.index).as_unit("ns"))
            if not got.index.equals(want.index):
                return f"{v}: {len(got)} times, pandas {len(want)} (or different times)"
            a, b = got.to_numpy(float), want.to_numpy(float)
        else:
            w = ref[v]
            w.columns = _naive(w.columns).as_unit("ns")
            times = _naive(ours.time.values).as_unit("ns")
            w = w.reindex(index=ours.station.values, columns=times)
            if w.shape != ours[v].shape:
                return f"{v}: shape {ours[v].shape}, pandas {w.shape}"
            if len(ref[v].columns) != len(times):
                return f"{v}: {len(times)} times, pandas {len(ref[v].columns)}"
            a, b = ours[v].values.astype(float), w.to_numpy(float)
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True):
            n = int((~np.isclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)).sum()) if a.shape == b.shape else -1
            return f"{v}: {n} of {a.size} values differ"
    return None


def beijing_nc(parquet: Path, path: Path) -> Path:
    """The stations as a (station, time) NetCDF: what pygeoapi's xarray provider would have to serve."""
    import pandas as pd
    import xarray as xr

    if path.exists():
        return path
    d = pd.read_parquet(parquet, columns=["station", "observed_at", "lon", "lat", *BJ_VARS])
    d["observed_at"] = d["observed_at"].dt.tz_convert(None)
    pos = d.groupby("station")[["lon", "lat"]].first()
    data = {v: (("station", "time"), d.pivot(index="station", columns="observed_at", values=v).to_numpy(np.float32))
            for v in BJ_VARS}
    times = np.sort(d["observed_at"].unique())
    ds = xr.Dataset(data, coords={"station": pos.index.to_numpy(str), "time": times,
                                  "lon": ("station", pos["lon"].to_numpy(), {"units": "degrees_east"}),
                                  "lat": ("station", pos["lat"].to_numpy(), {"units": "degrees_north"})})
    tmp = path.with_suffix(".tmp.nc")
    ds.to_netcdf(tmp)
    os.replace(tmp, path)
    return path


def beijing_pygeoapi(a, parquet: Path, qs: dict) -> dict:
    """pygeoapi's xarray EDR provider on the (station, time) NetCDF: probed once per query type."""
    import pandas as pd
    import requests

    out: dict = {}
    where = Path(tempfile.mkdtemp(prefix="bench_grid_bj_"))
    srv = None
    try:
        nc = beijing_nc(parquet, G.DATA / "beijing" / "bj_air_stations.nc")
        st = pd.read_csv(BEIJING_SRC / "stations_from_cnemc_airnow.csv").set_index("station")
        res = {BJ_DATASET: edr_resource("Beijing air quality", nc,
                                        [float(st.lon.min()), float(st.lat.min()), float(st.lon.max()),
                                         float(st.lat.max())],
                                        dt.datetime(2013, 2, 28, 16, tzinfo=UTC), dt.datetime(2017, 2, 28, 15, tzinfo=UTC))}
        # the provider loaded in this process first: its own error says why it cannot serve the stations
        import logging

        from pygeoapi.provider.xarray_edr import XarrayEDRProvider

        logging.getLogger("pygeoapi").setLevel(logging.ERROR)  # its warning repeats the error recorded below
        try:
            XarrayEDRProvider(res[BJ_DATASET]["providers"][0])
        except Exception as e:  # noqa: BLE001
            cause = e.__cause__ or e.__context__ or e
            frames = [f for f in traceback.extract_tb(cause.__traceback__) if "pygeoapi" in f.filename]
            where_ = f" in {frames[-1].name} (`{frames[-1].line}`)" if frames else ""
            msg = (f"fails: the provider does not load a (station, time) dataset: {type(e).__name__} from "
                   f"{type(cause).__name__} {cause}{where_}")
            log(f"  pygeoapi on the stations: {msg}")
            return {k: msg for k in BJ_TITLES}
        try:
            srv = start_pygeoapi("pygeoapi-edr-stations", res, where)
        except Exception as e:  # noqa: BLE001
            last = [ln for ln in str(e).splitlines() if ln.strip()][-1:] or [""]
            msg = f"fails: the server does not start with the (station, time) NetCDF: {type(e).__name__}: {last[0]}"
            log(f"  pygeoapi on the stations: {msg}")
            return {k: msg for k in BJ_TITLES}
        s0 = qs["station_4y"][0]
        lon, lat = float(st.loc[s0, "lon"]), float(st.loc[s0, "lat"])
        w = qs["month_all"][0]
        probes = {
            "station_4y": f"/collections/{BJ_DATASET}/position?coords=POINT({lon!r} {lat!r})&parameter-name=pm25"
                          "&datetime=2013-02-28T16:00:00Z/2017-02-28T15:00:00Z",
            "station_year": f"/collections/{BJ_DATASET}/position?coords=POINT({lon!r} {lat!r})&parameter-name=pm25"
                            f"&datetime={BJ_YEAR}-01-01T00:00:00Z/{BJ_YEAR}-12-31T23:59:59Z",
            "month_all": f"/collections/{BJ_DATASET}/cube?bbox=116.0,39.5,117.0,40.5&parameter-name=pm25"
                         f"&datetime={_z(w[0])}/{_z(w[1])}",
        }
        with requests.Session() as s:
            for k, p in probes.items():
                r = s.get(srv.base + p, timeout=600)
                if r.status_code == 200:
                    try:
                        vals = covjson_values(r.content, "pm25")
                        out[k] = (f"answers HTTP 200 with {vals.size} values; not timed (the station dimension "
                                  "is not one the provider declares: see the probe)")
                    except Exception as e:  # noqa: BLE001
                        out[k] = f"fails: HTTP 200 but not a readable coverage: {e}"
                else:
                    out[k] = f"fails: {_http_error(r.status_code, r.content)}"
                log(f"  pygeoapi on the stations, {k}: {out[k]}")
        out["daily_means"] = "not an EDR query (a client would fetch every station's 4 years and resample)"
        tail = (where / "pygeoapi-edr-stations.log").read_text(errors="replace")[-1500:] \
            if (where / "pygeoapi-edr-stations.log").exists() else ""
        out["_log_tail"] = tail
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(where, ignore_errors=True)
    return out


BJ_OURS_EDR = "ours (EDR over HTTP, /locations/{station})"


def beijing_ours_edr(stations: list[str], refs: dict[int, Any]) -> dict:
    """A station's year through our EDR series collection (``geoplatform serve`` on the
    store, the observations published by a series layer), checked against pandas."""
    import urllib.parse

    where = Path(tempfile.mkdtemp(prefix="bench_grid_bj_edr_"))
    srv = start_ours(BJ_OURS_EDR, where, "bj-stations", f"series: {BJ_DATASET}\nstation: station\n")
    try:
        yr = f"{BJ_YEAR}-01-01T00:00:00Z/{BJ_YEAR}-12-31T23:59:59Z"
        paths = [f"/collections/bj-stations/locations/{urllib.parse.quote(st)}?datetime={yr}"
                 f"&parameter-name={','.join(BJ_VARS)}" for st in stations]
        bad: list[str] = []

        def keep(i: int, status: int, body: bytes) -> None:
            if status != 200:
                bad.append(f"position {i}: {_http_error(status, body)}")
                return
            doc = json.loads(body)
            ref = refs.get(i)
            if ref is None:
                return
            for v in BJ_VARS:
                got = np.array([np.nan if x is None else x for x in doc["ranges"][v]["values"]], float)
                want = ref[v].to_numpy(float)
                if got.shape != want.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True):
                    bad.append(f"position {i}: {v} differs ({got.shape} vs {want.shape})")
                    return

        e = {"system": BJ_OURS_EDR, "status": "ok", **http_latency(srv.base, paths, keep=keep), "n": len(paths)}
        e["agreement"] = {"checked": len(paths), "disagree": len(bad), "examples": bad[:3]}
        if bad:
            MISMATCHES.append(f"beijing station_year / ours over EDR: {len(bad)} answers differ, e.g. {bad[0]}")
        return e
    finally:
        srv.stop()
        shutil.rmtree(where, ignore_errors=True)


def beijing_section(a, cube, res: dict) -> None:
    log("\n## Beijing stations")
    info = beijing_data(cube)
    parquet = HERE.parent / info["parquet"]
    qs = beijing_queries(a.bj_reps, a.seed)
    out: dict = {"data": info, "queries": {}}
    res["beijing"] = out
    ours = beijing_ours(cube) if cube is not None else None
    pdf = beijing_pandas(parquet)
    all_refs: dict[str, dict[int, Any]] = {}
    for query, positions in qs.items():
        entries = []
        refs: dict[int, Any] = all_refs.setdefault(query, {})
        try:
            e = run_python("pandas (read_parquet + pivot / groupby)", pdf[query], positions,
                           lambda i, r: refs.__setitem__(i, r))
            entries.append(e)
        except Exception as ex:  # noqa: BLE001
            entries.append({"system": "pandas (read_parquet + pivot / groupby)",
                            "status": fail(f"beijing {query}: pandas", ex)})
        if ours is not None:
            bad: list[str] = []
            shapes: list = []

            def keep(i, r, query=query):
                shapes.append(f"{r.sizes['station']} x {r.sizes['time']}")
                if i in refs:
                    why = beijing_compare(query, r, refs[i])
                    if why:
                        bad.append(f"position {i}: {why}")

            try:
                e = run_python("ours (cube.series)", ours[query], positions, keep)
                e["shape"] = Counter(shapes).most_common(1)[0][0] if shapes else None
                e["agreement"] = {"checked": len(positions), "disagree": len(bad), "examples": bad[:3]}
                if bad:
                    MISMATCHES.append(f"beijing {query}: {len(bad)} answers differ from pandas', e.g. {bad[0]}")
                    log(f"!!! ANSWERS DIFFER beijing {query}: {bad[:3]}")
                entries.insert(0, e)
            except Exception as ex:  # noqa: BLE001
                entries.insert(0, {"system": "ours (cube.series)", "status": fail(f"beijing {query}: ours", ex)})
        for e in entries:
            if e.get("status") == "ok":
                log(f"  {query:<12} {e['system']:<42} p50 {e['p50_ms']:8.1f} ms  p95 {e['p95_ms']:8.1f} ms"
                    + (f"  {e.get('shape')} cells" if e.get("shape") else ""))
        out["queries"][query] = {"n": len(positions), "systems": entries}
    if cube is not None:
        try:
            e = beijing_ours_edr(qs["station_year"], all_refs["station_year"])
        except Exception as ex:  # noqa: BLE001
            e = {"system": BJ_OURS_EDR, "status": fail("beijing station_year: ours over EDR", ex)}
        if e.get("status") == "ok":
            log(f"  station_year {e['system']:<42} p50 {e['p50_ms']:8.1f} ms  p95 {e['p95_ms']:8.1f} ms")
        out["queries"]["station_year"]["systems"].insert(1, e)
    if a.skip_pygeoapi:
        out["pygeoapi"] = {k: "not run (--skip-pygeoapi)" for k in BJ_TITLES}
    else:
        try:
            out["pygeoapi"] = beijing_pygeoapi(a, parquet, qs)
        except Exception as ex:  # noqa: BLE001
            msg = fail("beijing: pygeoapi", ex)
            out["pygeoapi"] = {k: msg for k in BJ_TITLES}


# --------------------------------------------------------------------------- targets

def _entry(res, query, system):
    for e in res.get("grid", {}).get(query, {}).get("systems", []):
        if e["system"] == system:
            return e
    return None


def _ok(e) -> bool:
    return e is not None and e.get("status") == "ok"


def targets(res) -> list[dict]:
    t = []

    def add(what, goal, measured, ok, note=""):
        t.append({"target": what, "goal": goal, "measured": measured,
                  "status": ok if isinstance(ok, str) else ("met" if ok else "NOT MET"), "note": note})

    for query, goal, label in (("series", TARGET_SERIES_MS, "point series, whole year"),
                               ("map", TARGET_MAP_MS, "one-day map"),
                               ("area", TARGET_AREA_MS, f"{AREA_DAYS}-day area mean, 10% of the grid")):
        systems = [OURS_MAP, OURS_SERIES] if query == "area" else [TARGET_COPY[query]]
        for system in systems:
            e = _entry(res, query, system)
            copy = "map copy" if system == OURS_MAP else "series copy"
            if _ok(e):
                add(f"{label}, Python API ({copy}), p95 warm", f"<= {goal:g} ms",
                    f"p95 {e['p95_ms']:.1f} ms (p50 {e['p50_ms']:.1f})", e["p95_ms"] <= goal)
            else:
                add(f"{label}, Python API ({copy}), p95 warm", f"<= {goal:g} ms", "—",
                    (e or {}).get("status", "not measured"))
        e = _entry(res, query, OURS_EDR)
        if _ok(e):
            add(f"{label}, EDR over HTTP, p95 warm", f"<= {goal:g} ms",
                f"p95 {e['p95_ms']:.1f} ms (p50 {e['p50_ms']:.1f})", e["p95_ms"] <= goal)
        else:
            add(f"{label}, EDR over HTTP, p95 warm", f"<= {goal:g} ms", "—", (e or {}).get("status", EDR_NOT_BUILT))
    ours, pg = _entry(res, "series", OURS_SERIES), _entry(res, "series", PYGEOAPI)
    if _ok(ours) and _ok(pg):
        x = pg["p50_ms"] / ours["p50_ms"]
        add("point series >= 10x pygeoapi's xarray EDR provider (p50): ours through the Python API against "
            "pygeoapi over HTTP, NOT the real comparison (ours over HTTP)", f">= {TARGET_SERIES_X:g}x",
            f"{x:,.1f}x ({pg['p50_ms']:.1f} / {ours['p50_ms']:.1f} ms)", x >= TARGET_SERIES_X,
            "ours pays no HTTP or JSON here; pygeoapi does")
    else:
        add("point series >= 10x pygeoapi's xarray EDR provider (p50), ours through the Python API",
            f">= {TARGET_SERIES_X:g}x", "—", "not measured: " + ("pygeoapi " + pg["status"] if pg else "missing"))
    oe = _entry(res, "series", OURS_EDR)
    if _ok(oe) and _ok(pg):
        x = pg["p50_ms"] / oe["p50_ms"]
        add("point series >= 10x pygeoapi's xarray EDR provider (p50), both over HTTP", f">= {TARGET_SERIES_X:g}x",
            f"{x:,.1f}x", x >= TARGET_SERIES_X)
    else:
        add("point series >= 10x pygeoapi's xarray EDR provider (p50), both over HTTP", f">= {TARGET_SERIES_X:g}x",
            "—", (oe or {}).get("status", EDR_NOT_BUILT))
    bj = res.get("beijing", {}).get("queries", {}).get("station_year", {}).get("systems", [])
    e = next((s for s in bj if s["system"] == "ours (cube.series)"), None)
    if _ok(e):
        add(f"Beijing stations: one station's series over a whole year ({BJ_YEAR}), Python API, p95 warm",
            f"<= {TARGET_SERIES_MS:g} ms", f"p95 {e['p95_ms']:.1f} ms (p50 {e['p50_ms']:.1f})",
            e["p95_ms"] <= TARGET_SERIES_MS)
    else:
        add(f"Beijing stations: one station's series over a whole year ({BJ_YEAR}), Python API, p95 warm",
            f"<= {TARGET_SERIES_MS:g} ms", "—", (e or {}).get("status", "not measured"))
    e = next((s for s in bj if s["system"] == BJ_OURS_EDR), None)
    if _ok(e):
        add(f"Beijing stations: one station's series over a whole year ({BJ_YEAR}), EDR over HTTP, p95 warm",
            f"<= {TARGET_SERIES_MS:g} ms", f"p95 {e['p95_ms']:.1f} ms (p50 {e['p50_ms']:.1f})",
            e["p95_ms"] <= TARGET_SERIES_MS)
    else:
        add("Beijing stations: one station's series over a whole year, EDR over HTTP", f"<= {TARGET_SERIES_MS:g} ms",
            "—", (e or {}).get("status", BJ_EDR_NOT_RUN))
    add("every answer agrees with the reference (xarray on the NetCDF; pandas for the stations)", "0 disagreements",
        f"{len(res.get('mismatches', []))} disagreeing (system, query) pairs", not res.get("mismatches"))
    return t


# --------------------------------------------------------------------------- markdown

def _ratio(a, b):
    return None if a is None or b is None or not b else a / b


def _fmt_ratio(x):
    return "—" if x is None or not np.isfinite(x) else f"{x:,.2f}×"


def _agree(e) -> str:
    ag = e.get("agreement")
    if not ag:
        return "—"
    if ag.get("reference"):
        return "reference"
    if ag["disagree"]:
        return f"**NO**: {ag['disagree']} of {ag['checked']} differ ({ag['examples'][0]})"
    return f"yes ({ag['checked']} of {ag['checked']})"


def _la(x):
    return "?" if not x else " ".join(f"{v:.2f}" for v in x)


def render(res) -> str:
    c, m = res["config"], res["machine"]
    fm, md_table = BC.fmt_ms, BC.md_table
    T = c["steps"], c["ny"], c["nx"]
    parts = [f"# Grid benchmark results{' (quick)' if c['quick'] else ''}", ""]
    parts.append(
        f"A {T[0]} x {T[1]} x {T[2]} float32 daily grid for 2025 (seeded, seed {c['seed']}; lon/lat OGC:CRS84, "
        f"0.5 x 0.5 degrees around lon 108.95 lat 34.27, cells of {c['cell_deg']:g} degrees, north-up) and the "
        f"Beijing air-quality stations. {c['reps']} seeded positions per grid query, {c['bj_reps']} per station "
        "query; every system runs one untimed warm-up pass over the positions, then one timed pass; "
        f"run {m.get('date_utc', '?')}. Times are milliseconds of wall clock per query, warm.")
    parts += ["", "## Machine", "", md_table(["fact", "value"], [
        [k, m.get(k)] for k in ("nproc", "ram_gib", "cpu", "python", "numpy", "pandas", "xarray", "dask", "zarr",
                                "netCDF4", "pygeoapi", "geoplatform_git")] + [
        ["load average at start / end", f"{_la(m.get('loadavg_start'))} / {_la(m.get('loadavg_end'))}"]])]

    d = res.get("data", {})
    nc = d.get("netcdf", {})
    ing = d.get("ingest", {})
    parts += ["", "## Data", ""]
    if nc:
        parts.append(f"* NetCDF (the anchors' file): `{nc.get('path')}`, {nc.get('bytes', 0) / 2**20:,.0f} MiB, "
                     f"variable `{VAR}` in chunks of {tuple(nc.get('chunks', []))} (one step x the whole map), "
                     f"{'uncompressed' if nc.get('compression') == 'none' else nc.get('compression')}; written in blocks of {WRITE_BLOCK} steps in "
                     f"{nc.get('seconds', 0):.1f}s ({nc.get('generate_seconds', 0):.1f}s of it generating)"
                     + (f", made by an earlier run ({nc.get('made_utc')}) and reused" if nc.get("cached") else
                        " in this run") + ".")
    if ing and "seconds" in ing:
        sb = ing.get("store_bytes", {})
        parts.append(f"* Ingest into the store (`cube.ingest_grid(name, netcdf_path)`, both copies, one snapshot): "
                     f"**{ing['seconds']:.1f} s** for {ing['raw_bytes'] / 2**20:,.0f} MiB of float32 "
                     f"({ing['mb_per_s']:.0f} MiB/s, {ing['steps_per_s']:.1f} steps/s)"
                     + (f", measured when the store was loaded ({ing.get('loaded_utc')}); this run reused it"
                        if ing.get("cached") else ", measured in this run")
                     + f". On disk: map copy {sb.get('map', 0) / 2**20:,.0f} MiB, series copy "
                     f"{sb.get('series', 0) / 2**20:,.0f} MiB (Blosc LZ4 behind a byte shuffle).")
    elif ing:
        parts.append(f"* Ingest: {ing.get('status')}")
    parts.append(f"* Store chunks: map copy (1, 512, 512), series copy (128, 32, 32) (the GridSpec defaults; "
                 f"layout key `{d.get('layout', '?')}`).")

    parts += ["", "## Grid queries", ""]
    parts.append("Ours: `cube.grid(name, layout=...)` opened inside each timed call, then `.sel(...)` and "
                 "`.values` / `.mean()`. xarray: `xr.open_dataset(netcdf)` (netCDF4 engine, no dask) opened inside "
                 "each timed call. pygeoapi: stock pygeoapi 0.21 (`pygeoapi.starlette_app` under uvicorn, one "
                 "worker) with its `xarray-edr` provider on the same NetCDF; one client (`requests.Session`, "
                 "keep-alive) in sequence; a request's time is until its whole body is read; the client's "
                 "CoverageJSON decoding (and the mean, for the area) is not timed and is shown apart. "
                 "Ratios are a row's p50 divided by ours' p50 (above 1×: ours faster).")
    for query in QUERIES:
        q = res.get("grid", {}).get(query)
        if not q:
            continue
        parts += ["", f"### {QUERY_TITLES[query]}", "", f"What: {q.get('what')}.", ""]
        om, os_ = _entry(res, query, OURS_MAP), _entry(res, query, OURS_SERIES)
        rows = []
        for e in q["systems"]:
            if e.get("status") == "ok":
                extra = []
                if e.get("client_decode_ms_median") is not None:
                    extra.append(f"client decode {fm(e['client_decode_ms_median'])} ms")
                if e.get("bytes_median"):
                    b = e["bytes_median"]
                    extra.append(f"{b / 2**20:,.1f} MiB per answer" if b >= 2**20 else f"{b / 2**10:,.1f} KiB per answer")
                if e.get("note"):
                    extra.append(e["note"])
                rows.append([e["system"], fm(e["p50_ms"]), fm(e["p95_ms"]), fm(e["mean_ms"]), e["n"],
                             _fmt_ratio(_ratio(e["p50_ms"], om["p50_ms"] if _ok(om) else None)),
                             _fmt_ratio(_ratio(e["p50_ms"], os_["p50_ms"] if _ok(os_) else None)),
                             _agree(e), "; ".join(extra)])
            else:
                rows.append([e["system"], e.get("status"), "", "", "", "", "", "", ""])
        parts.append(md_table(["system", "p50 ms", "p95 ms", "mean ms", "n", "p50 ÷ ours map copy",
                               "p50 ÷ ours series copy", "agrees with xarray", "notes"], rows))
    for name, hn in res.get("http_notes", {}).items():
        if hn.get("notes"):
            parts += ["", f"{name}: " + "; ".join(hn["notes"]) + "."]

    bj = res.get("beijing")
    if bj:
        parts += ["", "## Beijing stations", ""]
        di = bj.get("data", {})
        bi = di.get("ingest", {})
        parts.append(f"{di.get('rows', 0):,} hourly rows of 12 stations (2013-03-01 to 2017-02-28, Beijing time "
                     "converted to UTC), variables " + ", ".join(f"`{v}`" for v in BJ_VARS) + " asked for. Ours: "
                     "a point dataset (`fid` obs_id, `valid_from` observed_at, instant, EPSG:4326, monthly time "
                     "partitions and a space copy, as the sample city's air-quality readings) read with `cube.series(..., station=\"station\")` (a station by the CQL2 filter "
                     "`station = '<name>'`, a window by `datetime`, daily means by `freq=\"1D\", agg=\"mean\"`, "
                     "days in UTC); pandas: `pd.read_parquet` of one Parquet file (station then time order, "
                     "50,000-row row groups; station and time filters pushed to the reader) inside each call, then "
                     "`pivot` / `groupby(...).mean().unstack()`. The answers are compared value by value.")
        if bi and "seconds" in bi:
            parts.append(f"\nIngest (`cube.ingest` of a GeoDataFrame): {bi['seconds']:.1f} s for {bi['rows']:,} rows "
                         f"({bi['rows_per_s']:,.0f} rows/s)"
                         + (f", measured when loaded ({bi.get('loaded_utc')}); reused by this run" if bi.get("cached")
                            else ", measured in this run") + ".")
        for query, qq in bj.get("queries", {}).items():
            parts += ["", f"### {BJ_TITLES[query]}", ""]
            ours = next((e for e in qq["systems"] if e["system"] == "ours (cube.series)"), None)
            rows = []
            for e in qq["systems"]:
                if e.get("status") == "ok":
                    rows.append([e["system"], fm(e["p50_ms"]), fm(e["p95_ms"]), e["n"], e.get("shape") or "",
                                 _fmt_ratio(_ratio(e["p50_ms"], ours["p50_ms"] if _ok(ours) else None)),
                                 _agree(e) if e.get("agreement") else "reference"])
                else:
                    rows.append([e["system"], e.get("status"), "", "", "", "", ""])
            pg = bj.get("pygeoapi", {}).get(query)
            if pg:
                rows.append([PYGEOAPI + ", (station, time) NetCDF", pg, "", "", "", "", ""])
            parts.append(md_table(["system", "p50 ms", "p95 ms", "n", "stations x times", "p50 ÷ ours",
                                   "agrees with pandas"], rows))

    parts += ["", "## Targets", "", md_table(["target", "goal", "measured", "status"],
                                            [[t["target"], t["goal"], t["measured"], t["status"]]
                                             for t in res["targets"]])]
    if res.get("mismatches"):
        parts += ["", "## ANSWERS THAT DISAGREE", ""] + [f"- {x}" for x in res["mismatches"]]
    if res.get("failures"):
        parts += ["", "## Failures", ""] + [f"- {x}" for x in res["failures"]]
    parts.append(f"\nTotal run time {res['seconds_total']:.0f}s.")
    return "\n".join(parts)


# --------------------------------------------------------------------------- main

def facts() -> dict:
    import importlib.metadata as im

    try:
        f = BC.machine_facts()
    except Exception as e:  # noqa: BLE001 - a missing ogr2ogr or database is no reason to stop here
        f = {"date_utc": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "nproc": os.cpu_count(),
             "machine_facts": f"partial: {e}"}
    for mod in ("xarray", "dask", "zarr", "netCDF4", "pygeoapi", "requests", "uvicorn"):
        try:
            f[mod] = im.version(mod)
        except im.PackageNotFoundError:
            f[mod] = "not installed"
    return f


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="grid benchmark with its anchors; prints Markdown")
    ap.add_argument("--quick", action="store_true", help="60 x 200 x 200 grid, 8 positions -> results/grid-quick.*")
    ap.add_argument("--steps", type=int, default=365)
    ap.add_argument("--size", type=int, default=1000, help="cells along x and y")
    ap.add_argument("--reps", type=int, default=None, help="positions per grid query (default 25; quick 8)")
    ap.add_argument("--bj-reps", type=int, default=None, help="queries per station query type (default 48: each of the 12 stations 4 times, so that p95 is not the single slowest; quick 4)")
    ap.add_argument("--http-budget", type=float, default=240.0,
                    help="seconds of timed requests per (HTTP system, query): a slower system is timed on fewer "
                         "positions (at least 5)")
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--skip-pygeoapi", action="store_true")
    ap.add_argument("--skip-beijing", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="results file stem (default results/grid[-quick])")
    ap.add_argument("--render", type=Path, default=None, help="only re-render a results .json as Markdown")
    a = ap.parse_args(argv)
    if a.render:
        res = json.loads(a.render.read_text())
        md = render(res)
        a.render.with_suffix(".md").write_text(md + "\n")
        log(md)
        return 0
    if a.quick:
        a.steps, a.size = 60, 200
    a.reps = a.reps or (8 if a.quick else 25)
    a.bj_reps = a.bj_reps or (4 if a.quick else 48)
    out_stem = a.out or RESULTS / ("grid-quick" if a.quick else "grid")
    shape = GridShape(a.steps, a.size, a.size, a.seed)
    t_start = time.perf_counter()
    log(f"# grid benchmark: {shape.steps} x {shape.ny} x {shape.nx} float32, {a.reps} positions per query, "
        f"seed {a.seed}\n")
    f = facts()
    f["loadavg_start"] = os.getloadavg()
    res: dict = {"config": {"steps": shape.steps, "ny": shape.ny, "nx": shape.nx, "seed": a.seed, "quick": a.quick,
                            "reps": a.reps, "bj_reps": a.bj_reps, "box_crs84": BOX, "cell_deg": shape.dx,
                            "area_cells": shape.area_cells, "area_days": AREA_DAYS, "variable": VAR,
                            "http_budget_s": a.http_budget, "grid": shape.grid_name},
                 "machine": f, "data": {}}

    log("## data")
    try:
        res["data"]["netcdf"] = netcdf_file(shape)
    except Exception as e:  # noqa: BLE001
        fail("NetCDF generation", e)
        return _finish(res, out_stem, t_start, f)
    cube = None
    try:
        import geoplatform as gp

        cube = gp.open_cube(str(STORE))
        res["data"]["layout"] = _layout_key()
        res["data"]["ingest"] = load_grid(cube, shape, res["data"]["netcdf"])
    except Exception as e:  # noqa: BLE001
        res["data"]["ingest"] = {"status": fail("grid ingest", e)}
        cube = cube if cube is not None and shape.grid_name in {g.name for g in cube.grids()} else None

    grid_section(a, shape, cube, res)
    if not a.skip_beijing:
        try:
            beijing_section(a, cube, res)
        except Exception as e:  # noqa: BLE001
            fail("Beijing stations", e)
    return _finish(res, out_stem, t_start, f)


def _finish(res, out_stem, t_start, f) -> int:
    res["mismatches"] = MISMATCHES
    res["targets"] = targets(res)
    res["failures"] = FAILURES
    f["loadavg_end"] = os.getloadavg()
    res["seconds_total"] = time.perf_counter() - t_start
    BC.write_results(out_stem, res, render(res), log)
    return 1 if (FAILURES or MISMATCHES) else 0


if __name__ == "__main__":
    sys.exit(main())
