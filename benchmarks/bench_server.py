"""The OGC API server benchmark: geoplatform against pygeoapi and tipg, same rows, same run.

    python benchmarks/bench_server.py            # 10M points (+ their first 5M), 1M polygons, 20 s per cell
    python benchmarks/bench_server.py --quick    # 1M points, 1M polygons, 5 s per cell -> results/server-quick.*

Systems, each two workers (one per core) on 127.0.0.1 (``servers.py`` sets them up): ours
(``geoplatform serve`` over a cube store), stock pygeoapi with its Parquet
provider, stock pygeoapi with its PostgreSQL provider, tipg over PostGIS.

Cells, every one measured for every system that serves it, one after the other:

1. items, bbox (about 2 x 2 km) + datetime (7 days, closed) on the points and
   bbox only on the polygons, at limit 10, 100 and 1000: wrk, 8 connections,
   a warm-up on other URLs, then a fixed duration walking a seeded URL list
   that is the same for every system but for the collection path;
2. vector tiles, WebMercatorQuad z10 / 12 / 14 / 16, at tiles that hold data
   (ours ``{z}/{y}/{x}``, tipg ``{z}/{x}/{y}``); a system whose tile endpoint
   does not answer is "not available";
3. ``numberMatched`` with limit=1000 on the 5M-row dataset: one client,
   requests in sequence, p50 / p95, and the value checked against a count;
4. correctness, per system, with the evidence: closed datetime interval,
   limit, numberMatched, bbox intersects, feature ids, tile completeness.

Results: benchmarks/results/server.md + server.json (quick: server-quick.*).
Only 127.0.0.1 is contacted; every subprocess has a timeout; the servers are
stopped at the end whatever happens.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import anchors as A  # noqa: E402
import bench_cube as BC  # noqa: E402
import generate as G  # noqa: E402
import servers as S  # noqa: E402

RESULTS = HERE / "results"
LUA = HERE / "wrk_paths.lua"
UTC = dt.timezone.utc
SYSTEMS = ("geoplatform", "geoplatform-nocache", "pygeoapi-parquet", "pygeoapi-postgresql", "tipg")
OURS = "geoplatform"
NOCACHE = "geoplatform-nocache"  # the same server with its tile cache off; only in the tile cells
ANCHORS = SYSTEMS[2:]
TILE_SYSTEMS = ("geoplatform", NOCACHE, "tipg")  # pygeoapi's Parquet and PostgreSQL providers serve no tiles
LIMITS = (10, 100, 1000)
ZOOMS = (10, 12, 14, 16)
BOX_KM, WINDOW_DAYS = 2.0, 7
TARGET_ITEMS_X, TARGET_TILES_X, TARGET_COUNT_MS = 5.0, 2.0, 100.0
FAILURES: list[str] = []


def log(*a):
    print(*a, flush=True)


def fail(what: str, exc: BaseException) -> None:
    FAILURES.append(f"{what}: {type(exc).__name__}: {exc}")
    log(f"!!! FAILED {what}: {type(exc).__name__}: {exc}")
    log("".join(traceback.format_exception(exc)[-4:]))


# --------------------------------------------------------------------------- URLs

def collection(system: str, name: str) -> str:
    return f"/collections/public.{name}" if system == "tipg" else f"/collections/{name}"


def fmt_param(system: str) -> str:
    return "f=geojson" if system == "tipg" else "f=json"


def iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def items_path(system: str, name: str, bbox=None, window=None, limit: int | None = None) -> str:
    q = []
    if bbox is not None:
        q.append("bbox=" + ",".join(f"{v:.7f}" for v in bbox))
    if window is not None:
        q.append(f"datetime={iso(window[0])}/{iso(window[1])}")
    if limit is not None:
        q.append(f"limit={limit}")
    q.append(fmt_param(system))
    return f"{collection(system, name)}/items?" + "&".join(q)


def tile_path(system: str, name: str, z: int, x: int, y: int) -> str:
    if system == "tipg":  # tipg's path is {z}/{x}/{y}
        return f"{collection(system, name)}/tiles/WebMercatorQuad/{z}/{x}/{y}"
    return f"{collection(system, name)}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def _round(v: float) -> float:
    return float(f"{v:.7f}")


def sensor_positions(n_sensors: int) -> tuple[np.ndarray, np.ndarray]:
    s = G.sensors(n_sensors)
    return s.lon, s.lat


def item_queries(n: int, seed: int, lon: np.ndarray, lat: np.ndarray, with_time: bool,
                 km: float = BOX_KM, days: int = WINDOW_DAYS) -> list[tuple]:
    """n (bbox, window) pairs: boxes of km x km around seeded sensor positions (so they
    follow the clustered city), windows of ``days`` inside the 250 days, whole seconds."""
    rng = np.random.default_rng(seed)
    c = G.city()
    w, h = km * c.deg_per_km_lon, km * c.deg_per_km_lat
    t0 = int(G.T0.astype("datetime64[s]").astype("int64"))
    t1 = t0 + G.STEPS * G.STEP_HOURS * 3600
    out = []
    for _ in range(n):
        i = int(rng.integers(0, len(lon)))
        cx = lon[i] + rng.uniform(-0.5, 0.5) * w
        cy = lat[i] + rng.uniform(-0.5, 0.5) * h
        bbox = tuple(_round(v) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        window = None
        if with_time:
            s = int(rng.integers(t0, t1 - days * 86400))
            start = dt.datetime.fromtimestamp(s, UTC)
            window = (start, start + dt.timedelta(days=days))
        out.append((bbox, window))
    return out


def lonlat_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def tile_list(n: int, seed: int, lon: np.ndarray, lat: np.ndarray, z: int) -> list[tuple[int, int, int]]:
    """n tiles at zoom z, each the tile of a seeded data position (dense areas come up more often)."""
    rng = np.random.default_rng([seed, z])
    return [(z, *lonlat_tile(float(lon[i]), float(lat[i]), z)) for i in rng.integers(0, len(lon), n)]


# --------------------------------------------------------------------------- brute force (DuckDB / shapely / PostGIS)

class Truth:
    """Counts and ids straight from the prepared Parquet files (and PostGIS for tile envelopes)."""

    def __init__(self, datasets: dict[str, S.BenchDataset]):
        import duckdb

        self.ds = datasets
        self.con = duckdb.connect()
        self._polys = None

    def points(self, name: str, bbox, window, what: str = "count(*)"):
        minx, miny, maxx, maxy = bbox
        sql = f"SELECT {what} FROM read_parquet('{self.ds[name].glob}') WHERE x BETWEEN ? AND ? AND y BETWEEN ? AND ?"
        params = [minx, maxx, miny, maxy]
        if window is not None:
            sql += " AND observed_at BETWEEN ? AND ?"
            params += list(window)
        return self.con.execute(sql, params).fetchall()

    def point_count(self, name: str, bbox, window) -> int:
        if bbox is None and window is None:
            return int(self.con.execute(f"SELECT count(*) FROM read_parquet('{self.ds[name].glob}')").fetchone()[0])
        return int(self.points(name, bbox, window)[0][0])

    def polygons_intersecting(self, name: str, bbox) -> set[int]:
        import shapely

        if self._polys is None:
            t = self.con.sql(f"SELECT zone_id, minx, miny, maxx, maxy, geometry::BLOB AS g "
                             f"FROM read_parquet('{self.ds[name].glob}')").to_arrow_table()
            self._polys = {k: t.column(k).to_numpy() for k in ("zone_id", "minx", "miny", "maxx", "maxy")}
            self._polys["geom"] = shapely.from_wkb(t.column("g").to_pylist())
        p = self._polys
        minx, miny, maxx, maxy = bbox
        cand = (p["maxx"] >= minx) & (p["minx"] <= maxx) & (p["maxy"] >= miny) & (p["miny"] <= maxy)
        hit = shapely.intersects(p["geom"][cand], shapely.box(*bbox))
        return {int(v) for v in p["zone_id"][cand][hit]}

    def rows_by_id(self, name: str, ids: list[int]) -> dict[int, dict]:
        d = self.ds[name]
        cols = "obs_id, sensor_id, value" if d.kind == "points" else "zone_id, NULL, value"
        if not ids:
            return {}
        rows = self.con.execute(f"SELECT {cols} FROM read_parquet('{d.glob}') WHERE {d.id_field} IN "
                                f"({','.join(str(int(i)) for i in ids)})").fetchall()
        return {int(r[0]): {"sensor_id": r[1], "value": float(r[2])} for r in rows}

    @staticmethod
    def tile_count(name: str, z: int, x: int, y: int) -> int:
        with A.pg_connect() as c:
            return int(c.execute(f"SELECT count(*) FROM {name} WHERE ST_Intersects(geom, "
                                 f"ST_Transform(ST_TileEnvelope(%s, %s, %s), {A.SRID}))", (z, x, y)).fetchone()[0])


# --------------------------------------------------------------------------- HTTP helpers

def get(base: str, path: str, timeout: float = 120) -> tuple[int, dict, bytes, float]:
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as r:
            body = r.read()
            return r.status, dict(r.headers), body, (time.perf_counter() - t) * 1000
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers or {}), e.read(), (time.perf_counter() - t) * 1000


def get_json(base: str, path: str, timeout: float = 120) -> tuple[int, dict | None, str]:
    status, _, body, _ = get(base, path, timeout)
    try:
        return status, json.loads(body), ""
    except ValueError:
        return status, None, body[:300].decode(errors="replace")


def feature_ids(doc: dict) -> list[str]:
    return [str(f.get("id")) for f in doc.get("features", [])]


# --------------------------------------------------------------------------- wrk cells

def run_wrk(base: str, paths_file: Path, seconds: int, connections: int, timeout_s: int) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "--latency", "-s", str(LUA),
           base, "--", str(paths_file)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 60)
    for line in p.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    raise RuntimeError(f"wrk printed no result (exit {p.returncode}): {p.stdout[-500:]} {p.stderr[-500:]}")


def measure(server: S.Server, paths: list[str], warm: list[str], a, tmp: Path, cell: str) -> dict:
    """Probe one URL, warm up on other URLs, then a timed wrk run over ``paths``."""
    status, _, body, _ = get(server.base, paths[0], timeout=180)
    if status == 404 and "/tiles/" in paths[0]:
        return {"status": "not available", "detail": f"HTTP 404 for {paths[0]}"}
    if status != 200:
        return {"status": "error", "detail": f"HTTP {status} for {paths[0]}: {body[:200].decode(errors='replace')}"}
    pf, wf = tmp / f"{cell}-{server.name}.txt", tmp / f"{cell}-{server.name}-warm.txt"
    pf.write_text("\n".join(paths) + "\n")
    wf.write_text("\n".join(warm) + "\n")
    run_wrk(server.base, wf, a.warmup, a.connections, a.timeout)
    drained = drain(server)
    cpu0, pg0, m0 = server.cpu_seconds(), S.postgres_cpu_seconds(), S.machine_cpu()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run_wrk(server.base, pf, a.duration, a.connections, a.timeout)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1, pg1, m1 = server.cpu_seconds(), S.postgres_cpu_seconds(), S.machine_cpu()
    drained_after = drain(server)  # what is still in flight must not fall on the next system's run
    secs = r["duration_us"] / 1e6
    if r["requests"] == 0:
        drain(server)
        return {"status": "no response", "detail": f"no response completed within the {a.duration} s run "
                f"({sum(r[k] for k in r if k.startswith('errors_'))} errors)", "wrk": r}
    n = r["requests"]
    errors = sum(r[k] for k in r if k.startswith("errors_"))
    out = {
        "status": "ok", "requests": r["requests"], "seconds": secs, "rps": r["requests"] / secs,
        "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p95_ms": r["p95_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000, "mean_ms": r["mean_us"] / 1000,
        "errors": errors, "errors_detail": {k[7:]: r[k] for k in r if k.startswith("errors_") and r[k]},
        "bytes_per_request": r["bytes"] / n,
        "server_cpu_ms_per_request": (cpu1 - cpu0) * 1000 / n,
        "postgres_cpu_ms_per_request": (pg1 - pg0) * 1000 / n,
        "wrk_cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "machine_busy_cores": (m1[0] - m0[0]) / (m1[1] - m0[1]) * (os.cpu_count() or 1),
        "drain_s": drained, "drain_after_s": drained_after,
    }
    return out


def run_cell(cell: str, servers: list[S.Server], paths, queries: list, warm: list, a, tmp: Path) -> dict:
    """One cell for each server in turn: ``paths(server, queries)`` gives its URL list."""
    out = {}
    for s in servers:
        try:
            r = measure(s, paths(s, queries), paths(s, warm), a, tmp, cell.replace(" ", "_"))
        except Exception as e:  # noqa: BLE001
            fail(f"{cell} {s.name}", e)
            r = {"status": "error", "detail": f"{type(e).__name__}: {e}"}
            drain(s)
        out[s.name] = r
        show(cell, s.name, r)
    return out


def drain(server: S.Server, limit_s: float = 60.0) -> float:
    """Wait until the server (and PostgreSQL) finished what the warm-up left in flight:
    wrk closes its connections at the end of a run, the server goes on computing."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        c0, p0 = server.cpu_seconds(), S.postgres_cpu_seconds()
        time.sleep(0.5)
        if (server.cpu_seconds() - c0) + (S.postgres_cpu_seconds() - p0) < 0.05:
            break
    return time.perf_counter() - t0


def show(cell: str, system: str, r: dict) -> None:
    if r.get("status") != "ok":
        log(f"  {cell:<28} {system:<20} {r.get('status')}: {r.get('detail', '')[:150]}")
        return
    log(f"  {cell:<28} {system:<20} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
        f"errors {r['errors']}  server cpu {r['server_cpu_ms_per_request']:.1f} ms/req  "
        f"pg cpu {r['postgres_cpu_ms_per_request']:.1f} ms/req  machine {r['machine_busy_cores']:.2f} cores")


# --------------------------------------------------------------------------- numberMatched latency

def count_latency(server: S.Server, name: str, variants: dict, truth: Truth, reps: int) -> dict:
    """One client, keep-alive, requests in sequence: p50/p95 and the numberMatched values."""
    out = {}
    for label, (bbox, window, expected) in variants.items():
        path = items_path(server.name, name, bbox, window, 1000)
        conn = http.client.HTTPConnection(S.HOST, server.port, timeout=120)
        ms, matched, statuses = [], set(), set()
        try:
            for i in range(reps + 3):
                t = time.perf_counter()
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                el = (time.perf_counter() - t) * 1000
                statuses.add(resp.status)
                if resp.status == 200:
                    doc = json.loads(body)
                    matched.add(doc.get("numberMatched"))
                if i >= 3:
                    ms.append(el)
        finally:
            conn.close()
        a = np.array(ms)
        r = {"path": path, "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
             "n": len(ms), "statuses": sorted(statuses), "numberMatched": sorted(matched, key=str),
             "expected": expected}
        r["correct"] = statuses == {200} and matched == {expected}
        out[label] = r
        log(f"  numberMatched {label:<26} {server.name:<20} p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
            f"numberMatched {r['numberMatched']} (true {expected:,})")
    return out


# --------------------------------------------------------------------------- correctness

def _verdict(ok: bool | None, evidence: str) -> dict:
    return {"status": "n/a" if ok is None else ("pass" if ok else "FAIL"), "evidence": evidence}


def check_closed_interval(server, pts: S.BenchDataset, truth: Truth) -> dict:
    """A window ending exactly on an observation: that observation must be returned."""
    n_sensors = pts.rows // G.STEPS
    s = G.sensors(n_sensors)
    i = int(np.argmin((s.lon - G.CENTRE_LON) ** 2 + (s.lat - G.CENTRE_LAT) ** 2))
    step = G.STEPS // 10
    t_us = int(G.T0.astype("datetime64[us]").astype("int64")) + step * G.STEP_HOURS * 3_600_000_000 + int(s.offset_us[i])
    end = dt.datetime.fromtimestamp(t_us / 1e6, UTC)
    window = (end - dt.timedelta(days=2), end)
    d = 0.0003
    bbox = tuple(_round(v) for v in (s.lon[i] - d, s.lat[i] - d, s.lon[i] + d, s.lat[i] + d))
    want_id = step * n_sensors + i + 1
    rows = truth.points(pts.name, bbox, window, "obs_id, sensor_id, value")
    expected = {int(r[0]) for r in rows}
    end_key = next((int(r[1]), round(float(r[2]), 3)) for r in rows if int(r[0]) == want_id)
    status, doc, err = get_json(server.base, items_path(server.name, pts.name, bbox, window, 1000))
    if status != 200 or doc is None:
        return _verdict(False, f"HTTP {status} {err}")
    feats = doc.get("features", [])
    # the end-instant row is found by its id or, where a system's ids are not the dataset's, by its attributes
    keys = {(f.get("properties", {}).get("sensor_id"), round(float(f.get("properties", {}).get("value", math.nan)), 3))
            for f in feats}
    has_end = str(want_id) in set(feature_ids(doc)) or end_key in keys
    return _verdict(has_end and len(feats) == len(expected),
                    f"datetime {iso(window[0])}/{iso(end)} ends on observation {want_id}; true matches "
                    f"{len(expected)}, returned {len(feats)}; end-instant feature returned: {'yes' if has_end else 'NO'}")


def check_limit(server, pts: S.BenchDataset, q, truth: Truth) -> dict:
    bbox, window = q
    true_n = truth.point_count(pts.name, bbox, window)
    notes, ok = [], True
    for limit in (10, 1000):
        status, doc, err = get_json(server.base, items_path(server.name, pts.name, bbox, window, limit))
        if status != 200 or doc is None:
            return _verdict(False, f"limit={limit}: HTTP {status} {err}")
        n = len(doc.get("features", []))
        want = min(limit, true_n)
        ok &= n == want and doc.get("numberReturned", n) == n
        notes.append(f"limit={limit}: {n} features, numberReturned {doc.get('numberReturned')} (expected {want})")
    return _verdict(ok, f"{true_n:,} matches; " + "; ".join(notes))


def check_number_matched(server, pts: S.BenchDataset, qs, truth: Truth) -> dict:
    notes, ok = [], True
    for bbox, window in qs:
        true_n = truth.point_count(pts.name, bbox, window)
        status, doc, err = get_json(server.base, items_path(server.name, pts.name, bbox, window, 10))
        if status != 200 or doc is None:
            return _verdict(False, f"HTTP {status} {err}")
        nm = doc.get("numberMatched")
        ok &= nm == true_n
        notes.append(f"{nm} vs {true_n}")
    return _verdict(ok, "numberMatched vs true count at limit=10: " + ", ".join(notes))


def pick_crossing_polygon(truth: Truth, polys: S.BenchDataset) -> tuple[int, tuple]:
    """A polygon near the centre and a bbox whose west edge cuts it in half."""
    r = truth.con.execute(
        f"SELECT zone_id, minx, miny, maxx, maxy FROM read_parquet('{polys.glob}') "
        f"ORDER BY (minx - {G.CENTRE_LON}) ^ 2 + (miny - {G.CENTRE_LAT}) ^ 2 LIMIT 1").fetchone()
    zid, minx, miny, maxx, maxy = int(r[0]), *map(float, r[1:])
    cx = (minx + maxx) / 2
    return zid, tuple(_round(v) for v in (cx, miny - 0.0005, cx + 0.003, maxy + 0.0005))


def check_bbox_intersects(server, polys: S.BenchDataset, truth: Truth, zid: int, bbox) -> dict:
    expected = truth.polygons_intersecting(polys.name, bbox)
    status, doc, err = get_json(server.base, items_path(server.name, polys.name, bbox, None, 1000))
    if status != 200 or doc is None:
        return _verdict(False, f"HTTP {status} {err}")
    feats = doc.get("features", [])
    got = set(feature_ids(doc))
    # whichever id the system uses, look for the polygon by its zone_id property too
    crossing = str(zid) in got or any(f.get("properties", {}).get("zone_id") == zid for f in feats)
    return _verdict(crossing and len(feats) == len(expected),
                    f"bbox {bbox} cuts polygon {zid} in half: returned {'yes' if crossing else 'NO'}; "
                    f"{len(feats)} features returned, {len(expected)} polygons intersect the bbox")


def check_ids(server, pts: S.BenchDataset, polys: S.BenchDataset, q, truth: Truth, poly_bbox) -> dict:
    """Each returned id must name the dataset row with the same attributes."""
    notes, ok = [], True
    for ds, bbox, window in ((pts, q[0], q[1]), (polys, poly_bbox, None)):
        status, doc, err = get_json(server.base, items_path(server.name, ds.name, bbox, window, 50))
        if status != 200 or doc is None:
            return _verdict(False, f"{ds.name}: HTTP {status} {err}")
        feats = doc.get("features", [])
        ids = []
        for f in feats:
            try:
                ids.append(int(f.get("id")))
            except (TypeError, ValueError):
                pass
        rows = truth.rows_by_id(ds.name, ids)
        same = 0
        for f in feats:
            try:
                row = rows.get(int(f.get("id")))
            except (TypeError, ValueError):
                row = None
            p = f.get("properties", {})
            if row is not None and abs(float(p.get("value", math.nan)) - row["value"]) <= 1e-4 * max(1, abs(row["value"])) \
                    and (row["sensor_id"] is None or p.get("sensor_id") == row["sensor_id"]):
                same += 1
        ok &= bool(feats) and same == len(feats)
        eg = ", ".join(str(f.get("id")) for f in feats[:3])
        notes.append(f"{ds.name}: {same} of {len(feats)} ids name the row with the same attributes (ids e.g. {eg})")
    return _verdict(ok, "; ".join(notes))


def decode_tile(body: bytes) -> int:
    import mapbox_vector_tile

    layers = mapbox_vector_tile.decode(body)
    return sum(len(v.get("features", [])) for v in layers.values())


def check_tile(server, name: str, z: int, x: int, y: int, truth: Truth) -> dict:
    status, headers, body, _ = get(server.base, tile_path(server.name, name, z, x, y))
    if status == 404:
        return _verdict(None, "tile endpoint not available (HTTP 404)")
    if status not in (200, 204):
        return _verdict(False, f"HTTP {status}: {body[:200].decode(errors='replace')}")
    n = decode_tile(body) if body else 0
    true_n = truth.tile_count(name, z, x, y)
    if n >= true_n:
        return _verdict(True, f"z{z}/x{x}/y{y}: {n:,} features in the tile, {true_n:,} geometries intersect it: complete")
    ts_status, _, ts_body, _ = get(server.base, f"{collection(server.name, name)}/tiles/WebMercatorQuad")
    text = ts_body.decode(errors="replace")
    words = [w for w in ("featureLimit", "whenExceeded", "thinn", "generalis", "generaliz") if w.lower() in text.lower()]
    declared = ts_status == 200 and bool(words)
    hdr = {k: v for k, v in headers.items() if any(w in k.lower() for w in ("thinn", "general"))}
    return _verdict(declared,
                    f"z{z}/x{x}/y{y}: {n:,} features in the tile, {true_n:,} geometries intersect it; "
                    f"tileset metadata (HTTP {ts_status}) " + (f"declares it ({', '.join(words)})" if declared else
                                                               "does NOT declare a feature limit or generalisation")
                    + f"; tile headers: {hdr if hdr else 'none saying so'}")


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="OGC API server benchmark with its anchors; prints Markdown")
    ap.add_argument("--quick", action="store_true", help="1M points, 5 s cells, results/server-quick.*")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--count-rows", type=int, default=5_000_000, help="rows of the numberMatched dataset")
    ap.add_argument("--duration", type=int, default=None, help="seconds per cell (default 20; quick 5)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up seconds per cell (default 5; quick 2)")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--timeout", type=int, default=10, help="wrk request timeout, seconds")
    ap.add_argument("--urls", type=int, default=2000, help="URLs per cell list")
    ap.add_argument("--count-reps", type=int, default=None, help="numberMatched requests (default 30; quick 10)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--render", type=Path, default=None, help="only re-render a results .json as Markdown")
    ap.add_argument("--note", action="append", default=[],
                    help="with --render: add a note on the run to the .json and the .md (e.g. a harness defect)")
    a = ap.parse_args(argv)
    if a.render:
        res = json.loads(a.render.read_text())
        if a.note:
            res.setdefault("notes", []).extend(a.note)
            a.render.write_text(json.dumps(res, indent=1, default=str) + "\n")
        a.render.with_suffix(".md").write_text(render(res) + "\n")
        return 0
    if a.quick:
        a.rows, a.count_rows = 1_000_000, 1_000_000
    a.duration = a.duration or (5 if a.quick else 20)
    a.warmup = a.warmup or (2 if a.quick else 5)
    a.count_reps = a.count_reps or (10 if a.quick else 30)
    out_stem = a.out or RESULTS / ("server-quick" if a.quick else "server")
    systems = [s for s in a.systems.split(",") if s]
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    log(f"# server benchmark: {a.rows:,} points, numberMatched on {a.count_rows:,}, 1M polygons; "
        f"{a.connections} connections, {a.duration}s per cell after {a.warmup}s warm-up\n")

    log("## data")
    datasets = S.prepare_data(a.rows, a.count_rows, log=log)
    pts, cnt, polys = datasets[f"pts_{a.rows}"], datasets[f"pts_{a.count_rows}"], datasets["polys_1000000"]
    log("## PostGIS")
    load = {"postgis": {d.name: S.pg_load(d, log=log) for d in datasets.values()}}
    load["postgis_4326"] = {d.name: S.pg_copy_4326(d, log=log) for d in datasets.values()}
    log("## cube")
    load["cube"] = S.cube_load(list(datasets.values()), log=log)
    facts = BC.machine_facts()
    facts["loadavg_before"] = load_start
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=30)
    facts["wrk"] = (wrk_v.stdout + wrk_v.stderr).strip().splitlines()[0]
    res: dict = {
        "config": {"rows": a.rows, "count_rows": a.count_rows, "polygons": polys.rows, "quick": a.quick,
                   "duration_s": a.duration, "warmup_s": a.warmup, "connections": a.connections, "wrk_threads": 1,
                   "timeout_s": a.timeout, "urls_per_cell": a.urls, "count_reps": a.count_reps, "seed": a.seed,
                   "box_km": BOX_KM, "workers": S.WORKERS, "window_days": WINDOW_DAYS, "limits": LIMITS, "zooms": ZOOMS,
                   "systems": systems,
                   "command": " ".join([".venv/bin/python", "benchmarks/bench_server.py", *map(shlex.quote, sys.argv[1:])])},
        "machine": facts, "load": load, "cells": {}, "count": {}, "correctness": {}, "servers": {}}
    truth = Truth(datasets)

    # the URL lists: same queries for every system
    s_lon, s_lat = sensor_positions(a.rows // G.STEPS)
    c_lon, c_lat = sensor_positions(10_000)  # the polygons follow the same clustered distribution
    q_pts = item_queries(a.urls, a.seed, s_lon, s_lat, True)
    q_pts_warm = item_queries(a.urls, a.seed + 1000, s_lon, s_lat, True)
    q_polys = item_queries(a.urls, a.seed + 1, c_lon, c_lat, False)
    q_polys_warm = item_queries(a.urls, a.seed + 1001, c_lon, c_lat, False)

    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmpd:
        tmp = Path(tmpd)
        servers = [s for s in S.make_servers(list(datasets.values()), tmp, log=log) if s.name in systems]
        try:
            log("\n## servers")
            for s in servers:
                s.start()
            for s in servers:
                ready = s.wait_ready(collection(s.name, pts.name) + ("?f=json" if s.name.startswith("pygeoapi") else ""))
                res["servers"][s.name] = {"command": " ".join(map(shlex.quote, s.cmd)), "port": s.port,
                                          "env": s.env, "ready_s": ready}
                log(f"  {s.name:<20} {s.base} ready in {ready:.1f}s")
            res["versions"] = S.server_versions()

            # ---------------------------------------------------------- correctness
            log("\n## correctness")
            zid, pbbox = pick_crossing_polygon(truth, polys)
            medium = item_queries(1, a.seed + 7, s_lon, s_lat, True, km=10.0, days=30)[0]
            for s in servers:
                if s.name == NOCACHE:
                    continue
                checks = {}
                for label, fn in (
                    ("closed datetime interval includes its end instant", lambda: check_closed_interval(s, pts, truth)),
                    ("limit honoured", lambda: check_limit(s, pts, medium, truth)),
                    ("numberMatched is a true count", lambda: check_number_matched(s, pts, q_pts[:5] + [medium], truth)),
                    ("bbox means intersects (polygon crossing the edge returned)",
                     lambda: check_bbox_intersects(s, polys, truth, zid, pbbox)),
                    ("feature ids are the dataset's ids", lambda: check_ids(s, pts, polys, q_pts[0], truth, pbbox)),
                ):
                    try:
                        checks[label] = fn()
                    except Exception as e:  # noqa: BLE001
                        checks[label] = _verdict(False, f"check crashed: {type(e).__name__}: {e}")
                    log(f"  {s.name:<20} {checks[label]['status']:<5} {label}: {checks[label]['evidence'][:200]}")
                tiles = {}
                for ds in (pts, polys):
                    lon, lat = (s_lon, s_lat) if ds is pts else (c_lon, c_lat)
                    for z in ZOOMS:
                        zt = tile_list(1, a.seed, lon, lat, z)[0]
                        if s.name not in TILE_SYSTEMS:
                            v = _verdict(None, "serves no vector tiles")
                        else:
                            try:
                                v = check_tile(s, ds.name, *zt, truth)
                            except Exception as e:  # noqa: BLE001
                                v = _verdict(False, f"check crashed: {type(e).__name__}: {e}")
                        tiles[f"{ds.name} z{z}"] = v
                        log(f"  {s.name:<20} {v['status']:<5} tile {ds.name} z{z}: {v['evidence'][:200]}")
                checks["tile complete, or generalised and declared"] = tiles
                res["correctness"][s.name] = checks

            # ---------------------------------------------------------- items
            log("\n## items (wrk)")
            for ds, qs, warm in ((pts, q_pts, q_pts_warm), (polys, q_polys, q_polys_warm)):
                for limit in LIMITS:
                    cell = f"items {ds.kind} limit={limit}"
                    res["cells"][cell] = run_cell(
                        cell, [s for s in servers if s.name != NOCACHE],
                        lambda s, q: [items_path(s.name, ds.name, b, w, limit) for b, w in q], qs, warm, a, tmp)

            # ---------------------------------------------------------- tiles
            log("\n## tiles (wrk)")
            for ds in (pts, polys):
                lon, lat = (s_lon, s_lat) if ds is pts else (c_lon, c_lat)
                for z in ZOOMS:
                    cell = f"tiles {ds.kind} z{z}"
                    tl = tile_list(a.urls, a.seed, lon, lat, z)
                    tw = tile_list(a.urls, a.seed + 1000, lon, lat, z)
                    res["cells"][cell] = {"distinct_tiles": len(set(tl)), **run_cell(
                        cell, [s for s in servers if s.name in TILE_SYSTEMS],
                        lambda s, q: [tile_path(s.name, ds.name, *t) for t in q], tl, tw, a, tmp)}

            # ---------------------------------------------------------- numberMatched
            log(f"\n## numberMatched, limit=1000, {cnt.rows:,} rows, one client")
            mq = item_queries(1, a.seed + 9, s_lon, s_lat, True, km=10.0, days=30)[0]
            variants = {"no filter": (None, None, cnt.rows),
                        "bbox 10 km + 30 days": (mq[0], mq[1], truth.point_count(cnt.name, *mq))}
            res["count"] = {"dataset": cnt.name, "rows": cnt.rows, "variants": {}}
            for s in servers:
                if s.name == NOCACHE:
                    continue
                try:
                    res["count"]["variants"][s.name] = count_latency(s, cnt.name, variants, truth, a.count_reps)
                except Exception as e:  # noqa: BLE001
                    fail(f"numberMatched {s.name}", e)
        finally:
            for s in servers:
                s.stop()
            for s in servers:
                try:
                    res["servers"].setdefault(s.name, {})["log_tail"] = s.log_path.read_text(errors="replace")[-1500:]
                except OSError:
                    pass

    facts["loadavg_after"] = os.getloadavg()
    res["targets"] = targets(res)
    res["failures"] = FAILURES
    res["seconds_total"] = time.perf_counter() - t_start
    BC.write_results(out_stem, res, render(res), log)
    return 1 if FAILURES else 0


# --------------------------------------------------------------------------- targets and report

def _ok(r) -> bool:
    return isinstance(r, dict) and r.get("status") == "ok"


def targets(res) -> list[dict]:
    t = []

    def add(what, goal, measured, ok):
        t.append({"target": what, "goal": goal, "measured": measured,
                  "status": "not measured" if ok is None else ("met" if ok else "NOT MET")})

    for cell, by in res["cells"].items():
        tiles = cell.startswith("tiles")
        # tiles are judged with our tile cache off (tipg keeps none); the cached figure is shown beside
        ours, tipg = by.get(NOCACHE if tiles else OURS), by.get("tipg")
        goal = TARGET_TILES_X if tiles else TARGET_ITEMS_X
        what = f"{cell}: throughput vs tipg" + (" (ours with its tile cache off)" if tiles else "")
        if _ok(ours) and _ok(tipg) and ours["errors"] >= ours["requests"]:
            add(what, f">= {goal:g}x", f"every request failed ({ours['errors_detail']})", False)
        elif _ok(ours) and _ok(tipg):
            x = ours["rps"] / tipg["rps"]
            cached = by.get(OURS)
            extra = f" (tile cache on: {cached['rps'] / tipg['rps']:.2f}x)" if tiles and _ok(cached) else ""
            add(what, f">= {goal:g}x", f"{x:.2f}x{extra}", x >= goal)
        else:
            add(what, f">= {goal:g}x",
                (ours or {}).get("status", "—") if not _ok(ours) else (tipg or {}).get("status", "—"), None)
    v = res.get("count", {}).get("variants", {}).get(OURS, {}).get("no filter")
    add(f"numberMatched, limit=1000, {res['config']['count_rows']:,} rows (p95, one client)",
        f"<= {TARGET_COUNT_MS:g} ms", "—" if not v else f"{v['p95_ms']:.1f} ms (p50 {v['p50_ms']:.1f})",
        None if not v else v["p95_ms"] <= TARGET_COUNT_MS)
    c = res.get("correctness", {}).get(OURS)
    if c:
        flat = [x for k, x in c.items() if "status" in x] + list(c.get("tile complete, or generalised and declared", {}).values())
        bad = [x for x in flat if x["status"] == "FAIL"]
        add("ours: every correctness check", "pass", f"{len(flat) - len(bad)} of {len(flat)} pass "
            f"({sum(x['status'] == 'n/a' for x in flat)} n/a)", not bad)
    return t


def _ms(x):
    return BC.fmt_ms(x)


def _cell_txt(r) -> str:
    if not isinstance(r, dict) or "status" not in r:
        return "—"
    if r["status"] != "ok":
        return r["status"]
    if r["errors"] >= r["requests"]:
        return f"all {r['requests']} failed ({', '.join(f'{k} {v}' for k, v in r['errors_detail'].items())})"
    return f"{r['rps']:.1f} / {_ms(r['p50_ms'])} / {_ms(r['p95_ms'])}" + (f" ({r['errors']} err)" if r["errors"] else "")


def _v(x: str) -> str:
    return "not installed" if x == "?" else x


def render(res) -> str:
    c, m = res["config"], res["machine"]
    la = BC._la
    out = [f"# OGC API server benchmark{' (quick)' if c['quick'] else ''}", "",
           f"{c['rows']:,} points and {c['polygons']:,} polygons (the cube benchmark's data, `benchmarks/generate.py`), "
           f"the same rows loaded into each system; numberMatched on the first {c['count_rows']:,} points. "
           f"wrk, {c['connections']} connections (1 thread) over loopback, {c['warmup_s']} s warm-up on other URLs, "
           f"then {c['duration_s']} s per cell walking {c['urls_per_cell']:,} seeded URLs (the same queries for every "
           f"system). Every server runs {c.get('workers', 1)} worker process(es) (`--workers`). Run {m['date_utc']}, {res.get('seconds_total', 0):.0f} s.", "",
           f"Command: `{c['command']}`", "", "## Machine", "",
           BC.md_table(["fact", "value"], [
               ["cores", m["nproc"]], ["RAM", f"{m['ram_gib']} GiB"], ["CPU", m["cpu"]],
               ["load average before / after (1, 5, 15 min)", f"{la(m.get('loadavg_before'))} / {la(m.get('loadavg_after'))}"],
               ["PostgreSQL / PostGIS", f"{m.get('postgresql')} / {m.get('postgis')}"],
               ["load generator", m.get("wrk")], ["geoplatform commit", m.get("geoplatform_git")]])]
    v = res.get("versions", {})
    if v:
        out += ["", "## Systems", "", BC.md_table(["system", "versions", "serves from"], [
            ["geoplatform (ours)", ", ".join(f"{k} {_v(x)}" for k, x in v["geoplatform"].items()),
             f"`geoplatform serve --workers {c.get('workers', 1)}` over a cube store (GeoParquet + SQLite)"],
            ["pygeoapi-parquet", ", ".join(f"{k} {_v(x)}" for k, x in v["pygeoapi"].items()),
             "stock `pygeoapi.starlette_app` under uvicorn, `Parquet` provider over the same Parquet rows"],
            ["pygeoapi-postgresql", "same as above", "stock pygeoapi, `PostgreSQL` provider over the PostGIS tables"],
            ["tipg", ", ".join(f"{k} {_v(x)}" for k, x in v["tipg"].items()),
             "`tipg.main:app` under uvicorn (own virtualenv) over the PostGIS tables"]])]

    out += ["", "## Headline: requests/s, p50 ms, p95 ms", "",
            "Each cell: `req/s / p50 / p95`; ratio = ours req/s ÷ the anchor's (above 1: ours faster).", ""]
    hdr = (["cell", "ours", "ours, tile cache off"] + list(ANCHORS) + [f"ours ÷ {s}" for s in ANCHORS]
           + ["ours (tile cache off) ÷ tipg"])
    rows = []
    for cell, by in res["cells"].items():
        ours, nc = by.get(OURS), by.get(NOCACHE)
        ratios = []
        for s in ANCHORS:
            r = by.get(s)
            ratios.append(f"{ours['rps'] / r['rps']:.2f}×" if _ok(ours) and _ok(r) and r["rps"] > 0 else "—")
        t = by.get("tipg")
        ratios.append(f"{nc['rps'] / t['rps']:.2f}×" if _ok(nc) and _ok(t) and t["rps"] > 0 else "—")
        rows.append([cell + (f" ({by['distinct_tiles']} distinct tiles)" if "distinct_tiles" in by else ""),
                     _cell_txt(ours), _cell_txt(nc)] + [_cell_txt(by.get(s)) for s in ANCHORS] + ratios)
    out.append(BC.md_table(hdr, rows))
    out += ["", "The tile cells walk tiles drawn at data positions, so dense tiles repeat (the number of distinct "
            "tiles is given): our server keeps an LRU tile cache, tipg keeps none, so ours is measured twice, with "
            "its cache (as deployed) and with `GEOPLATFORM_TILES_CACHE_BYTES=0`; the tile targets are judged on "
            "the second. pygeoapi's Parquet and PostgreSQL providers serve no vector tiles."]

    out += ["", "## Where the CPU goes, per request", "",
            "Server process CPU and the CPU of every PostgreSQL process on the machine (other work's included) "
            "per request during the timed run, the load generator's own CPU (seconds over the run), and how many "
            "of the cores the whole machine was busy (other work's included).", ""]
    rows = []
    for cell, by in res["cells"].items():
        for s in SYSTEMS:
            r = by.get(s)
            if _ok(r):
                rows.append([cell, s, f"{r['rps']:.1f}", f"{r['server_cpu_ms_per_request']:.1f}",
                             f"{r['postgres_cpu_ms_per_request']:.1f}", f"{r['wrk_cpu_s']:.2f}",
                             f"{r['machine_busy_cores']:.2f}", f"{r['bytes_per_request'] / 1024:.1f}",
                             f"{_ms(r['p99_ms'])}", f"{r['errors']}" + (f" {r['errors_detail']}" if r["errors"] else "")])
            elif isinstance(r, dict) and r.get("status"):
                rows.append([cell, s, r["status"], "", "", "", "", "", "", r.get("detail", "")[:120]])
    out.append(BC.md_table(["cell", "system", "req/s", "server CPU ms/req", "PostgreSQL CPU ms/req", "wrk CPU s",
                            "machine busy (cores)", "KiB/response", "p99 ms", "errors"], rows))

    cnt = res.get("count", {})
    if cnt.get("variants"):
        out += ["", f"## numberMatched, limit=1000, on {cnt['rows']:,} rows (one client, sequential)", ""]
        rows = []
        for s, vs in cnt["variants"].items():
            for label, r in vs.items():
                rows.append([label, s, _ms(r["p50_ms"]), _ms(r["p95_ms"]), ", ".join(map(str, r["numberMatched"])),
                             f"{r['expected']:,}", "yes" if r["correct"] else "NO", ",".join(map(str, r["statuses"]))])
        out.append(BC.md_table(["query", "system", "p50 ms", "p95 ms", "numberMatched", "true count", "correct",
                                "HTTP"], rows))

    if res.get("correctness"):
        out += ["", "## Correctness (same run)", ""]
        rows = []
        for s, checks in res["correctness"].items():
            for label, v in checks.items():
                if "status" in v:
                    rows.append([label, s, v["status"], v["evidence"]])
                else:
                    for sub, w in v.items():
                        rows.append([f"{label}: {sub}", s, w["status"], w["evidence"]])
        out.append(BC.md_table(["check", "system", "result", "evidence"], rows))

    out += ["", "## Targets", "", BC.md_table(["target", "goal", "measured", "status"],
                                             [[t["target"], t["goal"], t["measured"], t["status"]] for t in res["targets"]])]
    if res.get("failures"):
        out += ["", "## Failures", ""] + [f"- {x}" for x in res["failures"]]
    if res.get("notes"):
        out += ["", "## Notes on this run", ""] + [f"- {x}" for x in res["notes"]]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
