"""``geoplatform serve --workers N``: the supervisor deals connections to its
worker processes in turn, restarts one that dies and stops them all on SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import geoplatform as gp
from tests.ogc.test_server import _free_port, stop, wait_until_up

WORKERS = 2


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d))
    return out


def _workers(pid: int) -> list[int]:
    """The worker processes of the supervisor ``pid`` (not multiprocessing's helpers)."""
    found = []
    for child in _children(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn" in cmd and b"resource_tracker" not in cmd:
            found.append(child)
    return sorted(found)


def _tcp_sockets(pid: int, port: int) -> int:
    """Established TCP connections of ``pid`` on the server's ``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            local_port = int(f[1].rsplit(":", 1)[1], 16)
            if f[9] in inodes and local_port == port and f[3] == "01":  # 01: ESTABLISHED
                count += 1
    return count


@contextmanager
def supervisor(work: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    gp.open_cube(work / "store").close()  # an empty store: the server needs no data to be dealt connections
    port = _free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(Path(sys.executable).parent / "geoplatform"), "serve", "--store",
                             str(work / "store"), "--port", str(port), "--workers", str(WORKERS)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/conformance", proc, work / "server.log", timeout=120)
        # a fresh connection each: dealt in turn, so every worker has answered (has started)
        for _ in range(2 * WORKERS):
            wait_until_up(f"http://127.0.0.1:{port}/conformance", proc, work / "server.log", timeout=120)
        yield proc, port
    finally:
        stop(proc)
        log.close()


def test_connections_are_dealt_to_the_workers_in_turn(tmp_path: Path) -> None:
    with supervisor(tmp_path) as (proc, port):
        workers = _workers(proc.pid)
        assert len(workers) == WORKERS
        # 8 keep-alive connections opened at once, as a load generator does: under
        # uvicorn's shared accept they could all land on one worker
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(8)]
        for c in conns:
            c.connect()
        for c in conns:
            c.request("GET", "/conformance")
            r = c.getresponse()
            assert r.status == 200 and b"conformsTo" in r.read()
        held = [_tcp_sockets(w, port) for w in workers]
        assert held == [4, 4], held
        assert _tcp_sockets(proc.pid, port) == 0  # the supervisor keeps none of them
        for c in conns:
            c.close()


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(tmp_path: Path) -> None:
    with supervisor(tmp_path) as (proc, port):
        workers = _workers(proc.pid)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = _workers(proc.pid)
            if len(now) == WORKERS and workers[0] not in now:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the killed worker was not replaced: {_workers(proc.pid)}")
        # every connection is answered, the new worker's included
        wait_until_up(f"http://127.0.0.1:{port}/conformance", proc, tmp_path / "server.log", timeout=120)
        for _ in range(4):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/conformance")
            assert c.getresponse().status == 200
            c.close()
        now = _workers(proc.pid)
        proc.terminate()
        assert proc.wait(timeout=60) == 0
        for pid in now:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    gp.open_cube(tmp_path / "store").close()
    bad = tmp_path / "catalog.yaml"
    bad.write_text("city: [this is not a catalog\n")
    p = subprocess.run([str(Path(sys.executable).parent / "geoplatform"), "serve", "--store", str(tmp_path / "store"),
                        "--port", str(_free_port()), "--workers", str(WORKERS), "--catalog", str(bad)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "exited before its app started" in p.stderr


def test_request_threads_bound_the_worker_threads(tmp_path: Path) -> None:
    import anyio.to_thread
    from starlette.testclient import TestClient

    from geoplatform.ogc.app import create_app
    from geoplatform.settings import Settings

    gp.open_cube(tmp_path / "store").close()
    app = create_app(Settings(request_threads=3), store=tmp_path / "store")
    with TestClient(app) as client:
        assert client.get("/conformance").status_code == 200
        assert client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) == 3
