"""OGC API Features items/item semantics, independent of the web layer."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
import shapely
from pyproj import Transformer

import geoplatform as gp
from geoplatform.catalog.layers import LayerConfig, PageLimits
from geoplatform.errors import FeatureNotFound, FilterError, InvalidParameterValue
from geoplatform.ogc import features as F

N = 250
BASE = "http://localhost/collections/incidents/items"


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> gp.Cube:
    rng = np.random.default_rng(11)
    g = gpd.GeoDataFrame({
        "incident_id": [f"I{i:04d}" for i in range(N)],
        "type": rng.choice(["fire", "flood", "traffic"], N),
        "severity": rng.integers(1, 6, N),
        "reported_at": pd.Timestamp("2025-03-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 30 * 24, N), unit="h"),
    }, geometry=shapely.points(108.9 + rng.random(N) * 0.1, 34.2 + rng.random(N) * 0.1), crs="EPSG:4490")
    c = gp.open_cube(tmp_path_factory.mktemp("store"))
    c.create_dataset(gp.DatasetSpec(name="incidents", fid="incident_id", valid_from="reported_at", instant=True))
    c.ingest("incidents", g)
    c.test_frame = g  # type: ignore[attr-defined]
    return c


LAYER = LayerConfig(id="incidents", dataset="incidents", limits=PageLimits(default=20, max=100))


def call(cube: gp.Cube, **params: str) -> tuple[int, dict, dict]:
    status, headers, body = F.items(cube, LAYER, params, BASE)
    return status, headers, orjson.loads(body)


def test_paging_follows_next_to_the_end(cube: gp.Cube) -> None:
    seen: list[str] = []
    params: dict[str, str] = {"limit": "37"}
    pages = 0
    while True:
        status, headers, fc = call(cube, **params)
        assert status == 200 and headers["Content-Type"] == "application/geo+json"
        assert fc["numberMatched"] == N and fc["numberReturned"] == len(fc["features"])
        seen += [f["id"] for f in fc["features"]]
        pages += 1
        nxt = [link for link in fc["links"] if link["rel"] == "next"]
        if not nxt:
            break
        params = {k: v[0] for k, v in parse_qs(urlparse(nxt[0]["href"]).query).items()}
    assert pages == 7 and len(seen) == N == len(set(seen))
    _, _, first = call(cube, limit="37")
    _, _, second = call(cube, limit="37", offset="37")
    prev = [link for link in second["links"] if link["rel"] == "prev"][0]
    assert "offset=0" in prev["href"]
    assert not [link for link in first["links"] if link["rel"] == "prev"]


def test_default_limit_and_max(cube: gp.Cube) -> None:
    assert call(cube)[2]["numberReturned"] == 20
    capped = call(cube, limit="5000")[2]  # above the maximum: a full page of the maximum, and a next link
    assert capped["numberReturned"] == 100
    nxt = [link for link in capped["links"] if link["rel"] == "next"][0]["href"]
    assert "limit=100" in nxt and "offset=100" in nxt


def test_bbox_and_crs_axis_order(cube: gp.Cube) -> None:
    g = cube.test_frame  # type: ignore[attr-defined]
    box = (108.92, 34.22, 108.96, 34.26)
    want = set(g.cx[box[0]:box[2], box[1]:box[3]]["incident_id"])
    _, headers, fc = call(cube, bbox=",".join(map(str, box)), limit="100")
    assert {f["id"] for f in fc["features"]} == want and fc["numberMatched"] == len(want)
    assert headers["Content-Crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
    # EPSG:4490 is latitude first, for the bbox and for the coordinates returned
    lat_first = f"{box[1]},{box[0]},{box[3]},{box[2]}"
    _, headers, fc2 = call(cube, bbox=lat_first, **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4490"},
                           crs="http://www.opengis.net/def/crs/EPSG/0/4490", limit="100")
    assert {f["id"] for f in fc2["features"]} == want
    assert headers["Content-Crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    a = {f["id"]: f["geometry"]["coordinates"] for f in fc["features"]}
    b = {f["id"]: f["geometry"]["coordinates"] for f in fc2["features"]}
    for k in a:
        assert b[k] == pytest.approx(a[k][::-1])
    _, _, merc = call(cube, crs="http://www.opengis.net/def/crs/EPSG/0/3857", limit="5")
    t = Transformer.from_crs("EPSG:4490", "EPSG:3857", always_xy=True)
    one = merc["features"][0]
    lon, lat = g.set_index("incident_id").loc[one["id"]].geometry.coords[0]
    assert one["geometry"]["coordinates"] == pytest.approx(list(t.transform(lon, lat)), abs=1e-3)


def test_datetime_filter_and_cql2(cube: gp.Cube) -> None:
    g = cube.test_frame  # type: ignore[attr-defined]
    lo, hi = pd.Timestamp("2025-03-05T00:00:00Z"), pd.Timestamp("2025-03-10T00:00:00Z")
    want = g[(g.reported_at >= lo) & (g.reported_at <= hi) & (g["type"] == "fire") & (g["severity"] >= 3)]
    for lang, text in (("cql2-text", "type = 'fire' AND severity >= 3"),
                       ("cql2-json", orjson.dumps({"op": "and", "args": [
                           {"op": "=", "args": [{"property": "type"}, "fire"]},
                           {"op": ">=", "args": [{"property": "severity"}, 3]}]}).decode())):
        _, _, fc = call(cube, datetime="2025-03-05T00:00:00Z/2025-03-10T00:00:00Z", filter=text,
                        **{"filter-lang": lang}, limit="100")
        assert {f["id"] for f in fc["features"]} == set(want["incident_id"])
        assert fc["numberMatched"] == len(want)


def test_properties_skip_geometry_and_sortby(cube: gp.Cube) -> None:
    _, _, fc = call(cube, properties="severity", skipGeometry="true", sortby="-severity", limit="50")
    f = fc["features"][0]
    assert f["geometry"] is None and "severity" in f["properties"] and "type" not in f["properties"]
    sev = [x["properties"]["severity"] for x in fc["features"]]
    assert sev == sorted(sev, reverse=True)


@pytest.mark.parametrize("params,error,match", [
    ({"limit": "ten"}, InvalidParameterValue, "limit must be an integer"),
    ({"limit": "0"}, InvalidParameterValue, "limit must be >= 1"),
    ({"offset": "-1"}, InvalidParameterValue, "offset"),
    ({"bbox": "1,2,3"}, InvalidParameterValue, "bbox"),
    ({"bbox": "a,b,c,d"}, InvalidParameterValue, "bbox"),
    ({"bbox-crs": "EPSG:4490"}, InvalidParameterValue, "needs a bbox"),
    ({"colour": "red"}, InvalidParameterValue, "unknown query parameters"),
    ({"filter": "severity >"}, FilterError, "cql2-text"),
    ({"filter": "x = 1", "filter-lang": "ecql"}, InvalidParameterValue, "filter-lang"),
    ({"sortby": ""}, InvalidParameterValue, "empty"),
    ({"skipGeometry": "maybe"}, InvalidParameterValue, "skipGeometry"),
    ({"crs": "EPSG:999999"}, Exception, "999999"),
    ({"datetime": "last week"}, InvalidParameterValue, "RFC 3339"),
])
def test_bad_parameters_are_400s(cube: gp.Cube, params: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as err:
        call(cube, **params)
    assert getattr(err.value, "http_status", 400) == 400


def test_single_item(cube: gp.Cube) -> None:
    status, headers, body = F.item(cube, LAYER, "I0007", {}, BASE + "/I0007")
    f = orjson.loads(body)
    assert status == 200 and f["id"] == "I0007" and f["type"] == "Feature"
    with pytest.raises(FeatureNotFound) as err:
        F.item(cube, LAYER, "nope", {}, BASE + "/nope")
    assert err.value.http_status == 404


RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z"


def test_times_are_full_rfc3339_date_times(cube: gp.Cube) -> None:
    """Whole hours and midnights too (reported_at is on the hour here)."""
    import re

    _, _, fc = call(cube, limit="100")
    times = [f["properties"]["valid_from"] for f in fc["features"]]
    assert times and all(re.fullmatch(RFC3339, t) for t in times), times[:5]
    want = cube.test_frame.set_index("incident_id")["reported_at"]  # type: ignore[attr-defined]
    for f in fc["features"]:
        assert pd.Timestamp(f["properties"]["valid_from"]) == want[f["id"]]
    # sub-second times keep their fraction
    t = pa.chunked_array([pa.array([pd.Timestamp("2025-01-01T00:00:00.25Z"), None], pa.timestamp("us", tz="UTC"))])
    assert F._iso(t).to_pylist() == ["2025-01-01T00:00:00.250000Z", None]
