"""The pygeoapi configuration of a platform, generated from its layers and catalog.

Nobody keeps a pygeoapi YAML by hand: :func:`pygeoapi_config` derives one from
``layers/*.yaml`` and the city catalog, with every collection served by
:class:`geoplatform.ogc.provider.CubeProvider` over the store. The same
document drives the HTML pages (pygeoapi's templates read it) and a stock
pygeoapi deployment (``geoplatform pygeoapi-config STORE > pygeoapi.yml``).
It passes pygeoapi's own schema check (``pygeoapi.config.validate_config``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from geoplatform.catalog.describe import describe
from geoplatform.crs import resolve_crs

if TYPE_CHECKING:
    from geoplatform.catalog.layers import LayerConfig
    from geoplatform.catalog.models import CityCatalog
    from geoplatform.cube.cube import Cube

PROVIDER = "geoplatform.ogc.provider.CubeProvider"
# OpenStreetMap's standard tiles as the base map of the HTML pages; the
# attribution is the one OSM's tile usage policy asks for.
BASE_MAP = {
    "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "attribution": '&copy; <a href="https://openstreetmap.org/copyright">OpenStreetMap contributors</a>',
}
LICENCE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
}
MAX_ITEMS = 10_000


def _crs_uri(crs: str) -> str:
    c = resolve_crs(crs)
    return c.uri or c.id


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def resource(cube: "Cube", layer: "LayerConfig", store: str | Path) -> dict[str, Any]:
    """One collection of the pygeoapi configuration."""
    rec = describe(cube, layer.dataset, history=False)
    bbox = rec["extent"]["spatial"]["bbox_crs84"] or [-180.0, -90.0, 180.0, 90.0]
    begin, end = rec["extent"]["temporal"]
    spec = cube.dataset(layer.dataset)
    links = []
    if rec.get("licence"):
        links.append({"type": "text/html", "rel": "license", "title": rec["licence"],
                      "href": LICENCE_URLS.get(rec["licence"], f"https://spdx.org/licenses/{rec['licence']}.html")})
    provider: dict[str, Any] = {
        "type": "feature",
        "name": PROVIDER,
        "data": str(store),
        "id_field": "fid",
        "time_field": "valid_from",
        "options": {"dataset": layer.dataset},
        "crs": [_crs_uri(c) for c in layer.crs],
        "storage_crs": _crs_uri(spec.storage_crs),
        "editable": False,
    }
    if layer.properties is not None:
        provider["properties"] = list(layer.properties)
    return {
        "type": "collection",
        "title": layer.title or rec["title"] or layer.id,
        "description": layer.description or rec["description"] or layer.id,
        "keywords": list(layer.keywords or rec["keywords"]) or [layer.id],
        "links": links,
        "extents": {
            "spatial": {"bbox": [float(v) for v in bbox], "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
            # datetimes, as pygeoapi's YAML loader would give them
            "temporal": {"begin": _instant(begin), "end": _instant(end)},
        },
        "limits": {"default_items": layer.limits.default, "max_items": layer.limits.max},
        "providers": [provider],
    }


def pygeoapi_config(cube: "Cube", layers: dict[str, "LayerConfig"], catalog: "CityCatalog",
                    base_url: str, store: str | Path) -> dict[str, Any]:
    """The whole pygeoapi configuration for ``layers`` over ``store``, served at ``base_url``."""
    parts = urlsplit(base_url)
    resources = {lid: resource(cube, layer, store) for lid, layer in layers.items()}
    city = catalog.city
    title = f"{city.name} spatio-temporal platform"
    return {
        "server": {
            "bind": {"host": parts.hostname or "127.0.0.1", "port": parts.port or (443 if parts.scheme == "https" else 80)},
            "url": base_url.rstrip("/"),
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US", "zh-CN"],
            "limits": {"default_items": 10, "max_items": MAX_ITEMS, "on_exceed": "throttle"},
            "map": dict(BASE_MAP),
            "pretty_print": False,
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": title,
                "description": city.description or title,
                "keywords": ["spatio-temporal", "smart city", "OGC API"],
                "keywords_type": "theme",
                "terms_of_service": "Each collection states its licence.",
                "url": base_url.rstrip("/"),
            },
            "license": {"name": "Per collection (see each collection's licence link)", "url": base_url.rstrip("/") + "/collections"},
            "provider": {"name": f"{city.name} municipal data bureau", "url": base_url.rstrip("/")},
            "contact": {"name": f"{city.name} municipal data bureau", "position": "Data service desk",
                        "url": base_url.rstrip("/"), "role": "pointOfContact"},
        },
        "resources": resources,
    }
