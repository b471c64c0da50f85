"""What access control costs the server: the same requests with the checks on and off.

"On" is this checkout's server, asked with a user's API key (each request: the
key's hash looked up in the access file, the principal's view of the platform).
"Off" is the server at the commit before access control (7ea3ce5), from a git
worktree, on the same store. Both serve the sample city with one worker; wrk
sends the same paths to each, in two alternating rounds. The target: the
checks cost at most 10% of the throughput (on / off >= 0.90).

    .venv/bin/python benchmarks/bench_access.py [--duration 15] [--connections 8]

Results: ``results/access.md`` and ``results/access.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import servers as S  # noqa: E402
from bench_server import run_wrk  # noqa: E402

OFF_COMMIT = "7ea3ce5"
DATA = HERE / "data" / "access_city"
TILE = "/collections/buildings/tiles/WebMercatorQuad/14/{y}/{x}"
# 108.95 E, 34.27 N is tile x 13150, y 6530 at z14: the nine tiles around it
PATH_SETS = {
    "items, public layer, limit 10": [f"/collections/districts/items?limit=10&offset={k}" for k in range(8)],
    "items, shared layer, limit 100": [f"/collections/water-pipes/items?limit=100&offset={100 * k}"
                                       for k in range(20)],
    "vector tiles z14, shared layer": [TILE.format(y=y, x=x) for y in range(6529, 6532) for x in range(13149, 13152)],
}


def build_store() -> Path:
    store = DATA / "store"
    if not (store / "catalog.sqlite").exists():
        import geoplatform as gp
        from geoplatform.catalog import load_city_catalog, publish
        from geoplatform.samples.city import build_sample_city

        with gp.open_cube(store) as cube:
            publish(cube, load_city_catalog(ROOT / "catalogs" / "sample_city.yaml"), build_sample_city(DATA / "src"),
                    progress=False)
    return store


def off_tree() -> Path:
    where = Path("/tmp/geoplatform-bench-access-off")
    if not (where / "geoplatform").exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(where), OFF_COMMIT], cwd=ROOT, check=True,
                       capture_output=True)
    return where


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    store = build_store()
    access = DATA / "access.yaml"
    access.unlink(missing_ok=True)
    from geoplatform.access.credentials import AccessFile

    key = AccessFile.load(access).add_key("bench", {"planning": "reader", "water": "reader"})
    exe = str(ROOT / ".venv" / "bin" / "geoplatform")
    off = off_tree()
    servers = {
        "off": S.Server("off", [exe, "serve", "--store", str(store), "--port", str(S.free_port())],
                        0, env={"PYTHONPATH": str(off), "GEOPLATFORM_ANONYMOUS_ROLES": "{}"},
                        log_path=DATA / "off.log"),
        "on": S.Server("on", [exe, "serve", "--store", str(store), "--port", str(S.free_port())],
                       0, env={"GEOPLATFORM_ACCESS_FILE": str(access)}, log_path=DATA / "on.log"),
    }
    for s in servers.values():
        s.port = int(s.cmd[-1])
        s.start()
    results: dict[str, dict[str, list[dict]]] = {}
    try:
        for s in servers.values():
            s.wait_ready("/collections", timeout=300)
        for name, paths in PATH_SETS.items():
            pf = DATA / "paths.txt"
            pf.write_text("\n".join(paths) + "\n")
            results[name] = {"off": [], "on": []}
            for _ in range(a.rounds):
                for which in ("off", "on"):
                    s = servers[which]
                    header = ["-H", f"X-API-Key: {key}"] if which == "on" else []
                    run_wrk_with(s.base, pf, a.warmup, a.connections, header)
                    r = run_wrk_with(s.base, pf, a.duration, a.connections, header)
                    ok = r["requests"] - sum(r[k] for k in r if k.startswith("errors_"))
                    results[name][which].append({"rps": ok / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
                                                 "p95_ms": r["p95_us"] / 1000, "requests": r["requests"],
                                                 "non_2xx": r.get("errors_status", 0)})
                    print(f"{name:34s} {which:3s} {results[name][which][-1]['rps']:8.1f} req/s "
                          f"p50 {results[name][which][-1]['p50_ms']:6.1f} ms", flush=True)
    finally:
        for s in servers.values():
            s.stop()
    write(results, a, key_user="bench")
    return 0


def run_wrk_with(base: str, paths_file: Path, seconds: int, connections: int, header: list[str]) -> dict:
    """``run_wrk`` with extra wrk options (a header)."""
    if not header:
        return run_wrk(base, paths_file, seconds, connections, 60)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=60s", "--latency", *header, "-s",
           str(HERE / "wrk_paths.lua"), base, "--", str(paths_file)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    for line in p.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
    raise RuntimeError(f"wrk printed no result: {p.stdout[-300:]} {p.stderr[-300:]}")


def write(results: dict, a: argparse.Namespace, key_user: str) -> None:
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    lines = ["# Access control: the cost of the checks", "",
             f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}, {os.cpu_count()} cores; geoplatform {git.strip()} (on) against {OFF_COMMIT} (off, before access "
             f"control), one worker each, the sample city's store; wrk, {a.connections} connections, "
             f"{a.warmup} s warm-up then {a.duration} s, {a.rounds} alternating rounds. On: every request carries the "
             f"API key of a user ({key_user!r}, reader of planning and water). Throughput counts only 2xx answers.", "",
             "| requests | off req/s | on req/s | on / off | off p50 ms | on p50 ms | target |",
             "|---|---|---|---|---|---|---|"]
    summary = {}
    for name, r in results.items():
        off = sum(x["rps"] for x in r["off"]) / len(r["off"])
        on = sum(x["rps"] for x in r["on"]) / len(r["on"])
        p50_off = sorted(x["p50_ms"] for x in r["off"])[len(r["off"]) // 2]
        p50_on = sorted(x["p50_ms"] for x in r["on"])[len(r["on"]) // 2]
        ratio = on / off if off else float("nan")
        summary[name] = ratio
        lines.append(f"| {name} | {off:.1f} | {on:.1f} | {ratio:.3f} | {p50_off:.1f} | {p50_on:.1f} | "
                     f"{'met' if ratio >= 0.90 else 'NOT MET'} (>= 0.90) |")
    (HERE / "results" / "access.md").write_text("\n".join(lines) + "\n")
    (HERE / "results" / "access.json").write_text(json.dumps({"results": results, "ratios": summary,
                                                              "on_commit": git.strip(), "off_commit": OFF_COMMIT},
                                                             indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
