"""Interoperability checks for any OGC API - Features server, by URL.

Each check is a plain function ``check(base_url, collection) -> CheckResult``
that says whether the server passed and shows the evidence (the requests and
what came back), so the same checks run against this platform's server and
against other servers (stock pygeoapi, in ``test_interop_checks.py``). They
cover what a client relies on and servers get wrong: the GeoJSON media type,
``datetime`` and ``filter`` actually applied, ``filter-lang=cql2-text``
accepted, client errors answered as 4xx rather than 500 (a non-numeric item
id, text in a numeric parameter, an empty ``sortby``, a tile outside its tile
matrix), and correct answers under eight parallel clients.

Run them by hand against a server::

    python -m tests.ogc.interop_checks http://127.0.0.1:5000 incidents
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

TIMEOUT = 30.0


@dataclass(frozen=True)
class Collection:
    """What the checks need to know of the collection they exercise."""

    id: str
    #: a property and a value that some, not all, features have (for ``filter``)
    filter_property: str
    filter_value: str | int
    #: an interval (RFC 3339, inside the collection's temporal extent) that some, not all, features meet
    interval: str = "2025-03-01T00:00:00Z/2025-03-01T06:00:00Z"
    #: the properties holding each feature's time: its start and (if any) its end
    time_start: str = "valid_from"
    time_end: str | None = "valid_to"
    #: whether the server offers vector tiles of the collection at all
    tiles: bool = True


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    evidence: str
    skipped: str | None = None  # why the check could not run on this server

    def __str__(self) -> str:
        state = "skipped" if self.skipped else ("pass" if self.passed else "FAIL")
        return f"{state:7} {self.name}: {self.skipped or self.evidence}"


def _get(base: str, path: str, params: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return httpx.get(f"{base}{path}", params=params, timeout=TIMEOUT, **kw)


def _brief(r: httpx.Response) -> str:
    body = r.text[:160].replace("\n", " ")
    return f"{r.request.method} {r.request.url} -> {r.status_code} {r.headers.get('content-type', '')}: {body}"


def _features(r: httpx.Response) -> list[dict[str, Any]]:
    return list(r.json().get("features", []))


def _literal(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def geojson_when_asked(base: str, c: Collection) -> CheckResult:
    """Items and an item asked for as ``application/geo+json`` come as that media type."""
    accept = {"Accept": "application/geo+json"}
    page = _get(base, f"/collections/{c.id}/items", {"limit": 2}, headers=accept)
    ok = page.status_code == 200 and page.headers.get("content-type", "").split(";")[0] == "application/geo+json"
    evidence = [_brief(page)]
    if page.status_code == 200 and _features(page):
        one = _get(base, f"/collections/{c.id}/items/{_features(page)[0]['id']}", headers=accept)
        ok = ok and one.headers.get("content-type", "").split(";")[0] == "application/geo+json"
        evidence.append(_brief(one))
    return CheckResult("geojson-media-type", ok, " | ".join(evidence))


def _instant(value: Any) -> datetime | None:
    """A feature's time as an aware datetime (a value without a zone is taken as UTC)."""
    if value is None:
        return None
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def datetime_applied(base: str, c: Collection) -> CheckResult:
    """``datetime`` selects: every feature returned has a time that meets the interval."""
    lo, hi = (_instant(t) for t in c.interval.split("/"))
    r = _get(base, f"/collections/{c.id}/items", {"limit": 50, "datetime": c.interval})
    if r.status_code != 200:
        return CheckResult("datetime-applied", False, f"refused: {_brief(r)}")
    outside = []
    for f in _features(r):
        start = _instant(f["properties"].get(c.time_start))
        end = _instant(f["properties"].get(c.time_end)) if c.time_end else start
        if start is None or start > hi or (end is not None and end < lo):  # type: ignore[operator]
            outside.append(f"{f['id']}: {f['properties'].get(c.time_start)}")
    ok = bool(_features(r)) and not outside
    return CheckResult("datetime-applied", ok,
                       f"datetime={c.interval}: {len(_features(r))} features, {len(outside)} of them outside it "
                       f"(e.g. {outside[:2]})" + ("" if ok else " - ignored"))


def filter_applied(base: str, c: Collection) -> CheckResult:
    """``filter`` selects: every feature returned meets it, and one that nothing meets gives nothing."""
    expr = f"{c.filter_property} = {_literal(c.filter_value)}"
    r = _get(base, f"/collections/{c.id}/items", {"limit": 50, "filter": expr})
    if r.status_code != 200:
        return CheckResult("filter-applied", False, f"refused: {_brief(r)}")
    feats = _features(r)
    others = [f["properties"].get(c.filter_property) for f in feats
              if f["properties"].get(c.filter_property) != c.filter_value]
    nothing = _get(base, f"/collections/{c.id}/items",
                   {"limit": 5, "filter": f"{c.filter_property} = {_literal('no such value')}"})
    left = len(_features(nothing)) if nothing.status_code == 200 else None
    ok = bool(feats) and not others and left == 0
    return CheckResult("filter-applied", ok,
                       f"filter={expr}: {len(feats)} features, {len(others)} of them with other values "
                       f"(e.g. {others[:3]}); a filter nothing meets gave {left} features"
                       + ("" if ok else " - ignored"))


def cql2_text_accepted(base: str, c: Collection) -> CheckResult:
    """``filter-lang=cql2-text`` (the default language, named) is accepted."""
    r = _get(base, f"/collections/{c.id}/items", {"limit": 1, "filter-lang": "cql2-text",
                                                  "filter": f"{c.filter_property} = {_literal(c.filter_value)}"})
    return CheckResult("filter-lang-cql2-text", r.status_code == 200, _brief(r))


def _client_error(name: str, responses: list[httpx.Response]) -> CheckResult:
    ok = all(400 <= r.status_code < 500 for r in responses)
    return CheckResult(name, ok, " | ".join(_brief(r) for r in responses))


def non_numeric_item_id(base: str, c: Collection) -> CheckResult:
    """An item id that is not a number (or not an id at all) is a 4xx, not a 500."""
    return _client_error("non-numeric-item-id", [_get(base, f"/collections/{c.id}/items/not-a-number")])


def text_in_numeric_param(base: str, c: Collection) -> CheckResult:
    """Text where a number belongs (``limit``, ``offset``, ``bbox``) is a 400."""
    rs = [_get(base, f"/collections/{c.id}/items", {p: v})
          for p, v in (("limit", "abc"), ("offset", "abc"), ("bbox", "a,b,c,d"))]
    return CheckResult("text-in-numeric-param", all(r.status_code == 400 for r in rs),
                       " | ".join(_brief(r) for r in rs))


def empty_sortby(base: str, c: Collection) -> CheckResult:
    """An empty ``sortby`` is a 400 (or is ignored), never a 500."""
    r = _get(base, f"/collections/{c.id}/items", {"sortby": ""})
    return CheckResult("empty-sortby", r.status_code in (200, 400), _brief(r))


def out_of_range_tile(base: str, c: Collection) -> CheckResult:
    """A tile outside the WebMercatorQuad tile matrix (row or column past
    2^z, a zoom past the set's) is a 4xx, not a 500."""
    if not c.tiles:
        return CheckResult("out-of-range-tile", True, "", skipped=f"{c.id} has no tiles on this server")
    sets = _get(base, f"/collections/{c.id}/tiles")
    if sets.status_code == 404:
        return CheckResult("out-of-range-tile", True, "", skipped=f"no tiles endpoint: {_brief(sets)}")
    path = f"/collections/{c.id}/tiles/WebMercatorQuad"
    mvt = {"Accept": "application/vnd.mapbox-vector-tile"}
    return _client_error("out-of-range-tile", [_get(base, f"{path}/{z}/{y}/{x}", headers=mvt)
                                               for z, y, x in ((2, 9, 1), (2, 1, 9), (30, 0, 0), (2, -1, 0))])


def parallel_clients(base: str, c: Collection, clients: int = 8, rounds: int = 6) -> CheckResult:
    """Eight clients at once, each paging through items and fetching single
    items, get the same answers as one client alone, and no 5xx or dropped
    connection. Bounded: ``clients * rounds * 2`` requests to ``base``."""
    def job(i: int) -> tuple[int, list[Any] | str]:
        params = {"limit": 20, "offset": 20 * (i % 4)}
        try:
            with httpx.Client(timeout=TIMEOUT) as http:
                page = http.get(f"{base}/collections/{c.id}/items", params=params)
                if page.status_code >= 500:
                    return i, f"{page.status_code} on {params}"
                ids = [f["id"] for f in page.json()["features"]]
                one = http.get(f"{base}/collections/{c.id}/items/{ids[0]}")
                if one.status_code >= 500:
                    return i, f"{one.status_code} on item {ids[0]}"
                return i, ids + [one.json()["id"]]
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            return i, f"{type(exc).__name__}: {exc}"

    alone = {i: job(i)[1] for i in range(4)}
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(job, range(clients * rounds)))
    errors = [f"request {i}: {got}" for i, got in results if isinstance(got, str)]
    wrong = [i for i, got in results if not isinstance(got, str) and got != alone[i % 4]]
    ok = not errors and not wrong and all(not isinstance(v, str) for v in alone.values())
    return CheckResult("parallel-clients", ok,
                       f"{len(results)} rounds of 2 requests on {clients} threads: {len(errors)} errors "
                       f"{errors[:3]}, {len(wrong)} answers differing from one client alone")


CHECKS: tuple[Callable[[str, Collection], CheckResult], ...] = (
    geojson_when_asked, datetime_applied, filter_applied, cql2_text_accepted, non_numeric_item_id,
    text_in_numeric_param, empty_sortby, out_of_range_tile, parallel_clients,
)


def run_checks(base: str, c: Collection) -> dict[str, CheckResult]:
    """Every check against ``c`` on the server at ``base``, by check name."""
    results = [check(base.rstrip("/"), c) for check in CHECKS]
    return {r.name: r for r in results}


if __name__ == "__main__":  # python -m tests.ogc.interop_checks URL COLLECTION [PROPERTY VALUE]
    url, cid = sys.argv[1], sys.argv[2]
    prop, value = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("type", "flood")
    for result in run_checks(url, Collection(cid, prop, int(value) if value.isdigit() else value)).values():
        print(result)
