"""Access control over HTTP: who sees which collections, who may write, and the audit log.

The sample city is served to the public (no roles without credentials), with an
access file of users holding API keys, HS256 bearer tokens and an audit log.
What each caller may see is worked out here from the catalog's own open levels
(public; shared with the owner, the departments named and the platform's
operators; restricted to the owner), independently of the server's policy code,
and every route of every collection is called as each caller: a collection a
caller may not see must answer 404 everywhere and be named in no listing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from geoplatform.access.audit import read_audit
from geoplatform.access.credentials import AccessFile
from tests.ogc.test_server import ROOT, running_server

SECRET = "a-test-signing-secret-of-32-bytes!!"
PLATFORM_KEY = "platform-key-for-access-tests"
CITY = yaml.safe_load((ROOT / "catalogs" / "sample_city.yaml").read_text())
LEVELS = {d["name"]: (d.get("department"), d.get("open_level", "public"), tuple(d.get("shared_with") or ()),
                      d.get("personal")) for d in CITY["datasets"]}
LEVELS.update({g["name"]: (g.get("department"), g.get("open_level", "public"), tuple(g.get("shared_with") or ()),
                           None) for g in CITY.get("grids") or ()})
SUPERUSER = {"superuser": "yes"}  # the roles of the caller holding the server's own key


def layer_sources() -> dict[str, list[tuple[Any, ...]]]:
    """Each collection of the layers folder and the open levels of what it shows: its datasets
    (or grid), or, for an aggregate layer that declares its own, the layer's."""
    out = {}
    for f in sorted((ROOT / "layers").rglob("*.yaml")):
        d = yaml.safe_load(f.read_text())
        names = [d[k] for k in ("dataset", "grid", "series", "aggregate", "stations") if d.get(k)]
        out[d["id"]] = [LEVELS[n] for n in names]
        if d.get("open_level"):
            out[d["id"]] = [(LEVELS[names[0]][0], d["open_level"], tuple(d.get("shared_with") or ()), None)]
    return out


def may_see(roles: dict[str, str], level: tuple[Any, ...]) -> bool:
    dep, level, shared, personal = level
    if personal:  # personal data, row by row: its own department only
        return dep in roles
    if level == "public" or roles == SUPERUSER:
        return True
    if dep in roles:
        return True
    if level == "shared":
        return "*" in roles or any(d in roles for d in shared)
    return False


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("access")
    access_file = work / "access.yaml"
    deps = {d["id"] for d in yaml.safe_load((ROOT / "catalogs" / "departments.yaml").read_text())["departments"]}
    af = AccessFile.load(access_file, deps)
    keys = {"wu": af.add_key("wu", {"water": "editor"}, deps),
            "guo": af.add_key("guo", {"public_security": "reader"}, deps),
            "shen": af.add_key("shen", {"housing": "steward", "planning": "reader"}, deps)}
    exp = int(time.time()) + 3600
    tokens = {"zhao": jwt.encode({"sub": "zhao", "exp": exp, "department": "planning", "role": "reader"}, SECRET),
              "ops": jwt.encode({"sub": "ops", "exp": exp, "roles": {"*": "reader"}}, SECRET)}
    env = {"GEOPLATFORM_ANONYMOUS_ROLES": "{}", "GEOPLATFORM_ACCESS_FILE": str(access_file),
           "GEOPLATFORM_JWT_SECRET": SECRET, "GEOPLATFORM_AUDIT_LOG": str(work / "audit.log"),
           "GEOPLATFORM_API_KEY": PLATFORM_KEY}
    callers = {
        "anonymous": ({}, {}),
        "water editor (API key)": ({"water": "editor"}, {"X-API-Key": keys["wu"]}),
        "public security reader (API key, bearer)": ({"public_security": "reader"},
                                                     {"Authorization": f"Bearer {keys['guo']}"}),
        "housing steward and planning reader (API key)": ({"housing": "steward", "planning": "reader"},
                                                          {"X-API-Key": keys["shen"]}),
        "planning reader (JWT)": ({"planning": "reader"}, {"Authorization": f"Bearer {tokens['zhao']}"}),
        "operator (JWT)": ({"*": "reader"}, {"Authorization": f"Bearer {tokens['ops']}"}),
        "the server's own key": (SUPERUSER, {"X-API-Key": PLATFORM_KEY}),
    }
    with running_server(work, env) as url:
        yield {"url": url, "callers": callers, "work": work, "keys": keys}


def routes(cid: str) -> list[str]:
    c = f"/collections/{cid}"
    return [c, f"{c}?f=html", f"{c}/items?limit=2", f"{c}/items/1", f"{c}/queryables", f"{c}/schema",
            f"{c}/items/1/history", f"{c}/tiles", f"{c}/tiles/WebMercatorQuad", f"{c}/tiles/WebMercatorQuad/12/1650/3329",
            f"{c}/position?coords=POINT(108.95 34.27)", f"{c}/locations", f"{c}/area?coords=POLYGON((108.9 34.2,"
            f"109 34.2,109 34.3,108.9 34.2))", f"{c}/coverage?bbox=108.9,34.2,109,34.3", f"{c}/map/tiles/"
            f"WebMercatorQuad/12/1650/3329", f"{c}/cube?bbox=108.9,34.2,109,34.3"]


def test_no_caller_sees_a_collection_it_may_not(city: dict[str, Any]) -> None:
    url, callers = city["url"], city["callers"]
    layers = layer_sources()
    checks = leaks = shown = 0
    problems: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for who, (roles, headers) in callers.items():
            visible = {cid for cid, levels in layers.items() if all(may_see(roles, lv) for lv in levels)}
            hidden = set(layers) - visible
            listed = {c["id"] for c in http.get("/collections", headers=headers).json()["collections"]}
            checks += 1
            if listed - {"catalog"} != visible:
                leaks += len((listed - {"catalog"}) - visible)
                problems.append(f"{who}: /collections lists {sorted(listed - {'catalog'} - visible)} it may not see"
                                f" and misses {sorted(visible - listed)}")
            shown += len(listed & visible)
            texts = {p: http.get(p, headers=headers).text for p in
                     ("/", "/api", "/tiles", "/collections?f=html", "/collections/catalog/items?limit=100",
                      "/collections/catalog")}
            records = {f["id"] for f in http.get("/collections/catalog/items?limit=100", headers=headers)
                       .json()["features"]}
            for cid in hidden:
                for path, text in texts.items():
                    checks += 1
                    if f"/collections/{cid}\"" in text or f"/collections/{cid}/" in text \
                            or f"/collections/{cid}?" in text:
                        leaks += 1
                        problems.append(f"{who}: {path} names {cid}")
                for name in (n for n, lv in LEVELS.items() if lv in layers[cid]):
                    checks += 1
                    if name in records and not may_see(roles, LEVELS[name]):
                        leaks += 1
                        problems.append(f"{who}: the catalog holds a record of {name}")
                for path in routes(cid):
                    checks += 1
                    r = http.get(path, headers=headers)
                    if r.status_code != 404:
                        leaks += 1
                        problems.append(f"{who}: {path} answered {r.status_code}")
                    elif cid in r.text and "no collection" not in r.text:
                        leaks += 1
                        problems.append(f"{who}: {path}'s 404 says more than that it does not exist: {r.text[:120]}")
            for cid in visible:
                checks += 1
                if http.get(f"/collections/{cid}", headers=headers).status_code != 200:
                    problems.append(f"{who}: may see {cid} but /collections/{cid} is not 200")
    print(f"\naccess leak test: {checks} checks over {len(callers)} callers and {len(layers)} collections, "
          f"{shown} collections shown where allowed, {leaks} leaks")
    assert not problems, "\n".join(problems[:20])
    assert leaks == 0


def test_bad_credentials_are_refused_never_taken_as_anonymous(city: dict[str, Any]) -> None:
    url = city["url"]
    expired = jwt.encode({"sub": "zhao", "exp": int(time.time()) - 10, "department": "planning"}, SECRET)
    forged = jwt.encode({"sub": "zhao", "exp": int(time.time()) + 60, "department": "planning"}, "not-the-secret-"
                        "but-just-as-long-!!")
    for headers, why in (({"X-API-Key": "gpk_not-a-key"}, "API key is not valid"),
                         ({"Authorization": f"Bearer {expired}"}, "expired"),
                         ({"Authorization": f"Bearer {forged}"}, "not valid"),
                         ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer")):
        r = httpx.get(f"{url}/collections/districts", headers=headers)
        assert r.status_code == 401 and why in r.json()["description"], (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")


def _valve(fid: str) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [108.95, 34.27]},
            "properties": {"pipe_id": "JS-000001", "status": "open", "diameter_mm": 200}}


def test_writes_need_an_editor_of_the_department_and_are_audited(city: dict[str, Any]) -> None:
    url, callers, work = city["url"], city["callers"], city["work"]
    items = f"{url}/collections/water-valves/items"
    h = {"Content-Type": "application/geo+json"}
    before = len(read_audit(work / "audit.log"))  # what the other tests of the module did
    # anonymous: the shared layer does not even exist for it
    assert httpx.post(items, json=_valve("V-A1"), headers=h).status_code == 404
    # a planning reader sees the water valves (shared with planning) but may not change them
    planner = callers["planning reader (JWT)"][1]
    r = httpx.post(items, json=_valve("V-A2"), headers={**h, **planner})
    assert r.status_code == 403 and "editor" in r.json()["description"]
    # the water department's editor may
    editor = callers["water editor (API key)"][1]
    r = httpx.post(items, json=_valve("V-A3"), headers={**h, **editor})
    assert r.status_code == 201, r.text
    assert httpx.get(f"{items}/V-A3", headers=planner).status_code == 200
    # a restricted read by its owner is audited; a public read is not
    owner = callers["public security reader (API key, bearer)"][1]
    assert httpx.get(f"{url}/collections/population-grid/items?limit=1", headers=owner).status_code == 200
    assert httpx.get(f"{url}/collections/districts/items?limit=1", headers=owner).status_code == 200
    log = read_audit(work / "audit.log")[before:]
    writes = [e for e in log if e["action"] == "write"]
    # every attempt, refused ones too
    assert [(e["who"], e["method"], e["collection"], e["status"]) for e in writes] == [
        (None, "POST", "water-valves", 404), ("zhao", "POST", "water-valves", 403),
        ("wu", "POST", "water-valves", 201)]
    assert writes[2]["roles"] == {"water": "editor"} and writes[2]["via"] == "api-key"
    reads = [e for e in log if e["action"] == "read"]
    assert [(e["who"], e["collection"], e["datasets"], e["status"]) for e in reads] == [
        ("guo", "population-grid", ["population_grid"], 200)]
    assert all(e["at"].endswith("Z") for e in log)


def test_access_file_keeps_only_hashes(city: dict[str, Any]) -> None:
    text = Path(city["work"] / "access.yaml").read_text()
    assert all(k not in text for k in city["keys"].values())
    assert text.count("sha256:") == 3



def _suppressed_counts_hold(url: str, cid: str, src: Path, by: str, res: float) -> str:
    """Ask ``cid`` for the whole city; check every shown count against the register's
    own records, and that small counts are withheld as the rules say. Says what it saw."""
    import geopandas as gpd
    import numpy as np

    rec = gpd.read_parquet(src).to_crs("EPSG:4545")
    r = httpx.get(f"{url}/collections/{cid}/cube", params={"bbox": "108.83,34.17,109.07,34.37",
                                                           "f": "CoverageJSON"}, timeout=120)
    assert r.status_code == 200, r.text
    cov = r.json()
    axes = cov["domain"]["axes"]
    # a register has no valid time: its one step is its state when read (the snapshot's commit time)
    assert len(axes["t"]["values"]) == 1 and not axes["t"]["values"][0].startswith("1970")
    xs, ys = (np.array(axes[a]["values"]) if "values" in axes[a] else
              np.linspace(axes[a]["start"], axes[a]["stop"], axes[a]["num"]) for a in ("x", "y"))
    col, row = np.floor(xs / res).astype(np.int64), np.floor(ys / res).astype(np.int64)
    cells = np.floor(np.column_stack([rec.geometry.x, rec.geometry.y]) / res).astype(np.int64)
    classes = {p: p.removeprefix("count_") for p in cov["ranges"] if p != "count"}
    truth, got = {}, {}
    for p in cov["ranges"]:
        v = rec[by].astype(str).str.replace("+", "plus", regex=False).str.replace("-", "_", regex=False)
        pick = cells if p == "count" else cells[v.to_numpy() == classes[p]]
        t = np.zeros((len(ys), len(xs)))
        np.add.at(t, (len(row) - 1 - np.searchsorted(row[::-1], pick[:, 1]), np.searchsorted(col, pick[:, 0])), 1)
        truth[p] = t
        got[p] = np.array([np.nan if v is None else v for v in cov["ranges"][p]["values"]],
                          float).reshape(len(ys), len(xs))
    assert truth["count"].sum() == len(rec)  # the box holds every record
    assert sum(truth[p].sum() for p in classes) == len(rec)  # and every class is a parameter
    for p in truth:
        shown = ~np.isnan(got[p])
        assert np.array_equal(got[p][shown], truth[p][shown]), p
        assert not ((got[p][shown] > 0) & (got[p][shown] < 10)).any(), p
        assert np.isnan(got[p][(truth[p] > 0) & (truth[p] < 10)]).all(), p
    shown_total = ~np.isnan(got["count"])
    withheld = sum(np.isnan(got[p]) for p in classes)
    assert not (shown_total & (withheld == 1)).any()  # never one class alone beside its total
    return (f"{cid}: {int((truth['count'] > 0).sum())} cells with records, {int((~shown_total).sum())} withheld "
            f"whole, {int(withheld[shown_total].sum())} classes withheld in shown cells, "
            f"{int(np.nansum(got['count'])):,} of {len(rec):,} records in shown totals, 0 shown counts below 10")


def test_personal_data_leaves_only_as_suppressed_counts(city: dict[str, Any]) -> None:
    """The resident and company registers: row by row to their departments only (not to the
    server's own key); to everyone else, counts per cell and class that are the truth where
    shown, with every small count withheld and no withheld class recoverable from a total."""
    url, callers = city["url"], city["callers"]
    police = callers["public security reader (API key, bearer)"][1]
    for who in ("anonymous", "water editor (API key)", "operator (JWT)", "the server's own key", "public security "
                "reader (API key, bearer)"):
        r = httpx.get(f"{url}/collections/companies/items?limit=1", headers=callers[who][1])
        assert r.status_code == 404, (who, r.status_code)
        if who.startswith("public security"):
            continue
        r = httpx.get(f"{url}/collections/residents/items?limit=1", headers=callers[who][1])
        assert r.status_code == 404, (who, r.status_code)
    rows = httpx.get(f"{url}/collections/residents/items?limit=5", headers=police).json()
    assert len(rows["features"]) == 5 and {"age_band", "sex"} <= set(rows["features"][0]["properties"])
    src = city["work"] / "src"
    print()
    print(_suppressed_counts_hold(url, "residents-by-age", src / "residents.parquet", "age_band", 250))
    print(_suppressed_counts_hold(url, "companies-by-industry", src / "companies.parquet", "industry", 500))
    # nobody but the register's department writes to it: not even the server's own key
    server = callers["the server's own key"][1]
    r = httpx.post(f"{url}/collections/residents/items", headers={**server, "Content-Type": "application/geo+json"},
                   json={"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.95, 34.27]},
                         "properties": {"age_band": "65+", "sex": "F", "building_id": "BLD-000001"}})
    assert r.status_code == 404


def test_the_server_calls_no_url_a_caller_gives(city: dict[str, Any]) -> None:
    """URLs put in every parameter, header and body the routes take (callbacks, subscribers,
    links, sources) never make the server call them: a listener on loopback sees nothing.
    The server's only outbound path is geoplatform.net, which refuses loopback (tests/test_net.py)."""
    from tests.test_net import _Canary

    url, callers = city["url"], city["callers"]
    canary = _Canary()
    hook = canary.url + "/hook"
    sent = 0
    try:
        ops = callers["operator (JWT)"][1]
        with httpx.Client(base_url=url, timeout=60, headers=ops) as http:
            ids = [c["id"] for c in http.get("/collections").json()["collections"]]
            for cid in ids:
                for path in routes(cid):
                    for key in ("callback", "href", "url", "subscriber", "successUri", "source", "f", "crs",
                                "filter", "datetime", "coords"):
                        value = hook if key != "filter" else f"S_INTERSECTS(geometry, '{hook}')"
                        http.get(path, params={key: value}, headers={"Referer": hook, "Link": f"<{hook}>"})
                        sent += 1
            body = {"type": "Feature", "id": "V-hook", "geometry": {"type": "Point", "coordinates": [108.95, 34.27]},
                    "properties": {"pipe_id": "JS-000001", "status": "open", "diameter_mm": 200},
                    "links": [{"href": hook, "rel": "describedby"}], "href": hook}
            editor = callers["water editor (API key)"][1]
            for method, path, payload in (
                    ("POST", "/collections/water-valves/items", body),
                    ("PUT", "/collections/water-valves/items/V-hook", body),
                    ("POST", "/processes/network-trace/execution",
                     {"inputs": {"source": {"href": hook}}, "subscriber": {"successUri": hook, "failedUri": hook}}),
                    ("POST", "/jobs", {"href": hook})):
                http.request(method, path, json=payload, headers={**editor, "Content-Type": "application/geo+json"})
                sent += 1
    finally:
        canary.close()
    print(f"\noutbound check: {sent} requests carrying a loopback URL, {len(canary.hits)} calls to it")
    assert canary.hits == []
