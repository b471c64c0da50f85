"""HTML pages over HTTP: what a browser gets, rendered from the same documents as the JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import httpx
import orjson
import pytest
from starlette.requests import Request

from geoplatform.ogc.html import script_json, wants_html
from tests.ogc.test_server import running_server

KEY = "html-test-key"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("html"), {"GEOPLATFORM_API_KEY": KEY}) as url:
        yield url


def _request(query: str = "", accept: str | None = None) -> Request:
    headers = [(b"accept", accept.encode())] if accept is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": headers})


@pytest.mark.parametrize(("query", "accept", "html"), [
    ("", None, False),                                     # no preference: JSON
    ("", "*/*", False),                                    # httpx, curl
    ("", "application/json", False),
    ("", "application/geo+json, text/html;q=0.5", False),  # GDAL-like clients rank JSON first
    ("", BROWSER["Accept"], True),                         # browsers
    ("", "text/html", True),
    ("", "text/html;q=0.1, application/json;q=0.9", False),
    ("", "text/html;q=0", False),
    ("f=html", "application/json", True),                  # f wins over Accept
    ("f=json", "text/html", False),
])
def test_negotiation(query: str, accept: str | None, html: bool) -> None:
    assert wants_html(_request(query, accept)) is html


def test_script_json_cannot_close_the_script_element() -> None:
    value = {"name": "</script><script>alert(1)</script><!--", "x": "a\u2028b & c"}
    text = script_json(value)
    assert "<" not in text and ">" not in text and "\u2028" not in text
    assert orjson.loads(text) == value


@pytest.mark.parametrize("path", ["/", "/conformance", "/collections", "/collections/incidents",
                                  "/collections/incidents/queryables", "/collections/incidents/schema",
                                  "/collections/incidents/items", "/api"])
def test_every_resource_has_a_page_and_json_stays_the_default(server: str, path: str) -> None:
    page = httpx.get(f"{server}{path}", headers=BROWSER)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<!doctype html>" in page.text[:200].lower()
    assert httpx.get(f"{server}{path}?f=html").headers["content-type"].startswith("text/html")
    plain = httpx.get(f"{server}{path}")
    assert plain.status_code == 200 and "json" in plain.headers["content-type"]


def test_pages_say_what_the_json_says(server: str) -> None:
    cols = httpx.get(f"{server}/collections").json()["collections"]
    page = unescape(httpx.get(f"{server}/collections", headers=BROWSER).text)
    for c in cols:
        assert f"/collections/{c['id']}" in page and c["title"] in page
    conf = httpx.get(f"{server}/conformance").json()["conformsTo"]
    page = httpx.get(f"{server}/conformance?f=html").text
    assert all(c in page for c in conf)
    q = httpx.get(f"{server}/collections/incidents/queryables").json()["properties"]
    page = httpx.get(f"{server}/collections/incidents/queryables?f=html").text
    assert all(name in page for name in q)


def test_items_page_maps_the_same_page_of_features(server: str) -> None:
    params = {"limit": "7", "filter": "severity >= 4", "datetime": "2025-03-01T00:00:00Z/2025-06-30T00:00:00Z",
              "offset": "7"}
    doc = httpx.get(f"{server}/collections/incidents/items", params=params).json()
    page = httpx.get(f"{server}/collections/incidents/items", params={**params, "f": "html"}).text
    # the map's data is the page's features, as GeoJSON in CRS84
    data = re.search(r"var geojson_data = (\[.*?\]);\n", page)
    assert data is not None
    mapped = orjson.loads(data.group(1))
    assert [f["id"] for f in mapped] == [f["id"] for f in doc["features"]] and len(mapped) == 7
    assert mapped[0]["geometry"] == doc["features"][0]["geometry"]
    assert f"Items in this collection: {doc['numberMatched']}" in page
    assert 'id="items-map"' in page and "leaflet" in page
    # paging both ways, keeping the query
    assert "offset=14" in unescape(page) and "offset=0" in unescape(page)


def test_items_page_is_drawn_in_crs84_whatever_crs_is_asked(server: str) -> None:
    url = f"{server}/collections/incidents/items"
    crs84 = httpx.get(url, params={"limit": 1}).json()["features"][0]["geometry"]["coordinates"]
    page = httpx.get(url, params={"limit": 1, "crs": "http://www.opengis.net/def/crs/EPSG/0/4326", "f": "html"}).text
    mapped = orjson.loads(re.search(r"var geojson_data = (\[.*?\]);\n", page).group(1))  # type: ignore[union-attr]
    assert mapped[0]["geometry"]["coordinates"] == crs84


def test_item_page(server: str) -> None:
    feat = httpx.get(f"{server}/collections/incidents/items", params={"limit": 1}).json()["features"][0]
    page = httpx.get(f"{server}/collections/incidents/items/{feat['id']}", headers=BROWSER)
    assert page.status_code == 200 and feat["id"] in page.text and "leaflet" in page.text
    for k, v in feat["properties"].items():
        if isinstance(v, str):
            assert v in page.text, k


def test_errors_stay_json_with_their_status(server: str) -> None:
    r = httpx.get(f"{server}/collections/nope", headers=BROWSER)
    assert r.status_code == 404 and r.json()["code"]
    r = httpx.get(f"{server}/collections/incidents/items?limit=abc&f=html")
    assert r.status_code == 400 and "limit" in r.json()["description"]
    assert httpx.get(f"{server}/collections?f=xml").status_code == 400


def test_static_files_for_the_pages(server: str) -> None:
    page = httpx.get(f"{server}/", headers=BROWSER).text
    css = re.findall(r'href="([^"]+\.css)"', page)
    local = [c for c in css if c.startswith(server)]
    assert local, css
    for href in local:
        r = httpx.get(href)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")


def test_a_feature_cannot_inject_script_into_the_pages(server: str) -> None:
    """Editable layers take text from outside; the pages must not run it."""
    evil = "</script><script>window.pwned=1</script><!--"
    items = f"{server}/collections/water-valves/items"
    body = {"type": "Feature", "id": "V-HTML-1", "geometry": {"type": "Point", "coordinates": [108.95, 34.27]},
            "properties": {"pipe_id": evil, "status": "open", "diameter_mm": 200}}
    r = httpx.post(items, json=body, headers={"X-API-Key": KEY, "Content-Type": "application/geo+json"})
    assert r.status_code == 201, r.text
    for url in (f"{items}/V-HTML-1?f=html", f"{items}?f=html&filter=pipe_id LIKE '%pwned%'"):
        page = httpx.get(url).text
        assert "V-HTML-1" in page
        assert "<script>window.pwned" not in page
        # the text is there, escaped, and reads back as the value
        assert "\\u003c/script\\u003e" in page or "&lt;/script&gt;" in page
