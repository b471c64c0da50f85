"""Concurrent editors over HTTP: no lost update, and a complete history.

Eight processes edit the same twelve valves through the API for a minute
(``GEOPLATFORM_TEST_EDIT_SECONDS``, default 60). Half send ``If-Match`` with
the tag they read and retry on 412; half send a PATCH without it, which the
server applies to the version current when it writes. Every write the server
acknowledged must then be one version in the valve's history, in a gap-free
sequence, and each acknowledged write's tag must name that version.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import geoplatform as gp
from tests.ogc.test_server import running_server

KEY = "concurrent-edits-key"
VALVES = [f"V-EDIT-{k}" for k in range(12)]
WORKERS = 8
SECONDS = float(os.environ.get("GEOPLATFORM_TEST_EDIT_SECONDS", "60"))
CTX = mp.get_context("spawn")


def _valve(fid: str) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [108.95, 34.27]},
            "properties": {"pipe_id": "JS-000001", "status": "open", "diameter_mm": 100}}


def _editor(url: str, wid: int, seconds: float, out: Any) -> None:
    """Edit the valves in turn until the time is up; send back every acknowledged write."""
    try:
        acked: list[tuple[str, str, str, int | None]] = []
        conflicts = 0
        n = 0
        end = time.monotonic() + seconds
        headers = {"X-API-Key": KEY, "Content-Type": "application/geo+json"}
        with httpx.Client(base_url=url, timeout=120, headers=headers) as http:
            while time.monotonic() < end:
                fid = VALVES[(wid + n) % len(VALVES)]
                n += 1
                value = f"JS-W{wid}-{n}"  # a value only this write writes
                body = {"properties": {"pipe_id": value}}
                read = None
                if wid % 2 == 0:  # optimistic: read, then write against that version
                    while True:
                        tag = http.get(f"/collections/water-valves/items/{fid}").headers["etag"]
                        read = int(tag.strip('"').rsplit("@", 1)[1])
                        r = http.patch(f"/collections/water-valves/items/{fid}", json=body,
                                       headers={"If-Match": tag})
                        if r.status_code != 412:
                            break
                        conflicts += 1
                else:
                    r = http.patch(f"/collections/water-valves/items/{fid}", json=body)
                if r.status_code != 204:
                    raise AssertionError(f"worker {wid}: PATCH {fid} answered {r.status_code}: {r.text}")
                acked.append((fid, value, r.headers["etag"], read))
        out.put(("ok", wid, acked, conflicts))
    except BaseException:
        out.put(("error", wid, traceback.format_exc(), 0))


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("edits")
    # two server processes: writers in different processes take turns by the store's own lock
    with running_server(work, {"GEOPLATFORM_API_KEY": KEY}, ["--workers", "2"]) as url:
        yield url, work / "store"


def test_eight_editors_for_a_minute_lose_no_update(city: tuple[str, Path]) -> None:
    url, store = city
    for fid in VALVES:
        r = httpx.post(f"{url}/collections/water-valves/items", json=_valve(fid),
                       headers={"X-API-Key": KEY, "Content-Type": "application/geo+json"})
        assert r.status_code == 201, r.text
    out = CTX.Queue()
    procs = [CTX.Process(target=_editor, args=(url, w, SECONDS, out)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=SECONDS + 600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r[2] for r in results if r[0] != "ok"]
    assert not errors, "\n".join(errors)
    acked = [a for r in results for a in r[2]]
    conflicts = sum(r[3] for r in results)
    with gp.open_cube(store) as cube:
        for fid in VALVES:
            h = cube.history("water_valves", fid)
            versions = h["version"].tolist()
            mine = [a for a in acked if a[0] == fid]
            # created, then one version per acknowledged write: none lost, none doubled
            assert versions == list(range(1, 2 + len(mine))), fid
            written = h["pipe_id"].tolist()[1:]
            assert sorted(written) == sorted(a[1] for a in mine), fid
            # each acknowledged tag names the version that holds its value
            by_value = dict(zip(h["pipe_id"].tolist(), versions))
            assert all(tag == f'"{fid}@{by_value[v]}"' for _, v, tag, _ in mine), fid
            # a write with If-Match landed on the version its writer read: nothing came in between
            assert all(by_value[v] == read + 1 for _, v, _, read in mine if read is not None), fid
            # exactly one version is current, the last
            assert h["record_to"].isna().tolist() == [False] * (len(versions) - 1) + [True]
    print(f"\n{WORKERS} editors for {SECONDS:.0f} s: {len(acked)} acknowledged writes, {conflicts} answered 412 "
          "and retried, 0 lost")
    assert len(acked) > len(VALVES)
