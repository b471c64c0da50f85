"""HTML pages, rendered with pygeoapi's templates and its static files.

A browser (``Accept: text/html``) or ``?f=html`` gets the page for a resource:
landing page, conformance, collections, a collection with a map of its
extent, a page of items on a map with their attribute table, one item on a
map, and the queryables. The data on a page is exactly what the JSON resource
says (the page is rendered from the same document), and the templates read
the platform's generated pygeoapi configuration
(:mod:`geoplatform.ogc.pygeoapi_config`) for titles, contact and base map.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pygeoapi
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from geoplatform.ogc.pygeoapi_config import pygeoapi_config

if TYPE_CHECKING:
    from geoplatform.ogc.app import Platform

STATIC_DIR = Path(pygeoapi.__file__).resolve().parent / "static"
HTML = "text/html"
_MACHINE_TYPES = ("application/json", "application/geo+json", "application/schema+json",
                  "application/vnd.oai.openapi+json")


def wants_html(request: Request) -> bool:
    """``f=html``; or, without ``f``, an Accept header that ranks HTML above
    every JSON type (browsers send ``text/html,...,*/*;q=0.8``)."""
    f = request.query_params.get("f")
    if f is not None:
        return f == "html"
    accept = request.headers.get("accept", "")
    best_html, best_json = 0.0, 0.0
    for part in accept.split(","):
        fields = [x.strip() for x in part.split(";")]
        media, q = fields[0].lower(), 1.0
        for p in fields[1:]:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media in (HTML, "application/xhtml+xml"):
            best_html = max(best_html, q)
        elif media.startswith(_MACHINE_TYPES) or media in ("*/*", "application/*"):
            best_json = max(best_json, q if media not in ("*/*", "application/*") else q * 0.99)
    return best_html > 0 and best_html >= best_json


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``</script>`` or
    ``<!--`` can come out of a feature's text (``<``, ``>``, ``&`` and the JS line
    separators are written as ``\\u`` escapes, which JSON and JavaScript read back)."""
    text = orjson.dumps(value, default=str).decode()
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


@functools.lru_cache(maxsize=1)
def _environment() -> Environment:
    """pygeoapi's templates in one Jinja environment for the process (autoescaped),
    with the filters they use; JSON in pages goes through :func:`script_json`."""
    from pygeoapi import util

    env = Environment(loader=FileSystemLoader([util.TEMPLATES]), extensions=["jinja2.ext.i18n"],
                      autoescape=select_autoescape(), auto_reload=False)
    env.install_null_translations(newstyle=False)
    env.filters.update(to_json=script_json, format_datetime=util.format_datetime,
                       format_duration=util.format_duration, human_size=util.human_size,
                       get_path_basename=util.get_path_basename, get_breadcrumbs=util.get_breadcrumbs,
                       filter_dict_by_key_value=util.filter_dict_by_key_value)
    env.globals.update(to_json=script_json, get_path_basename=util.get_path_basename,
                       get_breadcrumbs=util.get_breadcrumbs, filter_dict_by_key_value=util.filter_dict_by_key_value)
    return env


class Pages:
    """Renders the pages of one platform; the pygeoapi configuration is built
    once per base URL the server is reached at."""

    def __init__(self, platform: "Platform", store: str | Path) -> None:
        self.platform = platform
        self.store = store
        self._configs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def config(self, base: str) -> dict[str, Any]:
        with self._lock:
            cfg = self._configs.get(base)
            if cfg is None:
                p = self.platform
                cfg = self._configs[base] = pygeoapi_config(p.cube, p.layers, p.catalog, base, self.store)
            return cfg

    def render(self, base: str, template: str, data: dict[str, Any], status: int = 200) -> HTMLResponse:
        body = _environment().get_template(template).render(
            config=self.config(base), data=data, locale="en-US", version=pygeoapi.__version__)
        return HTMLResponse(body, status_code=status)

    # The documents each template expects, from the JSON resources.

    def landing(self, base: str, doc: dict[str, Any]) -> HTMLResponse:
        return self.render(base, "landing_page.html", {**doc, "collection": True, "process": False,
                                                      "stac-collection": False, "tile": False})

    def conformance(self, base: str, doc: dict[str, Any]) -> HTMLResponse:
        return self.render(base, "conformance.html", {**doc, "links": []})

    def collections(self, base: str, doc: dict[str, Any]) -> HTMLResponse:
        return self.render(base, "collections/index.html", {**doc, "collections_path": f"{base}/collections"})

    def collection(self, base: str, doc: dict[str, Any]) -> HTMLResponse:
        return self.render(base, "collections/collection.html", {**doc, "collections_path": f"{base}/collections"})

    def queryables(self, base: str, cid: str, doc: dict[str, Any]) -> HTMLResponse:
        return self._properties_page(base, cid, doc, "collections/queryables.html")

    def schema(self, base: str, cid: str, doc: dict[str, Any]) -> HTMLResponse:
        return self._properties_page(base, cid, doc, "collections/schema.html")

    def _properties_page(self, base: str, cid: str, doc: dict[str, Any], template: str) -> HTMLResponse:
        return self.render(base, template, {
            **doc, "description": "", "keywords": [], "collections_path": f"{base}/collections",
            "dataset_path": f"{base}/collections/{cid}"})

    def items(self, base: str, cid: str, title: str, doc: dict[str, Any], offset: int) -> HTMLResponse:
        return self.render(base, "collections/items/index.html", {
            **doc, "title": title, "id_field": "fid", "title_field": None, "uri_field": None,
            "offset": offset, "collections_path": f"{base}/collections",
            "dataset_path": f"{base}/collections/{cid}", "items_path": f"{base}/collections/{cid}/items"})

    def item(self, base: str, cid: str, title: str, doc: dict[str, Any]) -> HTMLResponse:
        return self.render(base, "collections/items/item.html", {
            **doc, "title": title, "id_field": "fid", "title_field": None, "uri_field": None,
            "prev": None, "next": None, "collections_path": f"{base}/collections",
            "dataset_path": f"{base}/collections/{cid}", "items_path": f"{base}/collections/{cid}/items"})
