"""The dataset catalog for other catalogues: OGC API Records records and STAC.

Both are built from :func:`geoplatform.catalog.describe` records, so the
open-data catalogue, a STAC client and the platform itself tell the same
story about a dataset: what it is, whose it is, its licence and source,
where and when it is, and how to get it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

STAC_VERSION = "1.0.0"


def _polygon(b: list[float]) -> dict[str, Any]:
    x0, y0, x1, y1 = b
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


RECORD_CORE = "http://www.opengis.net/spec/ogcapi-records-1/1.0/req/record-core"
RECORD_PROFILE = "http://www.opengis.net/def/profile/OGC/0/ogc-record"


def utc_text(value: str | None) -> str | None:
    """An ISO date-time as RFC 3339 in UTC with ``Z`` (records want no offsets)."""
    if value is None:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def record_feature(rec: dict[str, Any], collection_url: str | None, *, record_url: str | None = None,
                   catalog_url: str | None = None, organisation: str | None = None,
                   theme_title: str | None = None) -> dict[str, Any]:
    """One dataset as an OGC API Records record (the record GeoJSON encoding).

    ``collection_url`` is the dataset's Features collection, ``record_url`` the
    record itself and ``catalog_url`` the records collection it is a member of;
    ``organisation`` names the owner department and ``theme_title`` the theme.
    """
    bbox = rec["extent"]["spatial"]["bbox_crs84"]
    start, end = (utc_text(t) for t in rec["extent"]["temporal"])
    links = []
    if record_url:
        links.append({"href": record_url, "rel": "self", "type": "application/geo+json", "title": "This record"})
    if catalog_url:
        links.append({"href": catalog_url, "rel": "collection", "type": "application/ogc-catalog+json",
                      "title": "The catalog"})
    links.append({"href": RECORD_PROFILE, "rel": "profile", "title": "OGC API Records record"})
    grid = rec.get("kind") == "grid"
    if collection_url and grid:
        links.append({"href": collection_url, "rel": "item", "type": "application/json",
                      "title": "The data, as an OGC API EDR and Coverages collection"})
        links.append({"href": f"{collection_url}/coverage", "rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage",
                      "type": "application/prs.coverage+json", "title": "The coverage"})
    elif collection_url:
        links.append({"href": collection_url, "rel": "item", "type": "application/json",
                      "title": "The data, as an OGC API Features collection"})
        links.append({"href": f"{collection_url}/items", "rel": "items", "type": "application/geo+json",
                      "title": "The features"})
    snapshots = rec.get("snapshots") or []
    theme = {"id": rec["theme"], **({"title": theme_title} if theme_title else {})}
    contact = {"organization": organisation or rec["department"], "identifier": rec["department"],
               "roles": ["owner"]}
    return {
        "type": "Feature",
        "id": rec["name"],
        "geometry": _polygon(bbox) if bbox else None,
        "time": {"interval": [start or "..", end or ".."]} if (start or end) else None,
        "conformsTo": [RECORD_CORE],
        "properties": {
            "type": "dataset",
            "title": rec["title"],
            "description": rec["description"] or "",
            "keywords": rec["keywords"],
            "themes": [{"concepts": [theme], "scheme": "geoplatform:themes"}] if rec["theme"] else [],
            "contacts": [contact] if rec["department"] else [],
            "license": rec["licence"],
            "rights": rec["open_level"],
            "language": {"code": "en", "name": "English"},
            "created": utc_text(snapshots[0]["committed_at"]) if snapshots else None,
            "updated": utc_text(snapshots[-1]["committed_at"]) if snapshots else None,
            "externalIds": [],
            "formats": ([{"name": "CoverageJSON", "mediaType": "application/prs.coverage+json"},
                         {"name": "GeoTIFF", "mediaType": "image/tiff; application=geotiff"}] if grid
                        else [{"name": "GeoJSON", "mediaType": "application/geo+json"}]),
            "department": rec["department"],
            "theme": rec["theme"],
            "source": rec["source"],
            "generated": rec["generated"],
            "updateFrequency": rec["update_frequency"],
            "rows": rec["rows"],
            **({"grid": rec["grid"], "variables": [v["name"] for v in rec["variables"]]} if grid else {}),
        },
        "links": links,
    }


def stac_collection(rec: dict[str, Any], self_url: str, root_url: str, data_url: str | None) -> dict[str, Any]:
    """One dataset as a STAC Collection."""
    start, end = rec["extent"]["temporal"]
    links = [{"rel": "self", "href": self_url, "type": "application/json"},
             {"rel": "root", "href": root_url, "type": "application/json"},
             {"rel": "parent", "href": root_url, "type": "application/json"}]
    grid = rec.get("kind") == "grid"
    if data_url and grid:
        links.append({"rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage", "href": f"{data_url}/coverage",
                      "type": "application/prs.coverage+json"})
    elif data_url:
        links.append({"rel": "items", "href": f"{data_url}/items", "type": "application/geo+json"})
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "id": rec["name"],
        "title": rec["title"],
        "description": rec["description"] or rec["title"],
        "keywords": rec["keywords"],
        "license": rec["licence"] or "other",
        "providers": [{"name": rec["department"], "roles": ["producer", "licensor"]}] if rec["department"] else [],
        "extent": {
            "spatial": {"bbox": [rec["extent"]["spatial"]["bbox_crs84"] or [-180, -90, 180, 90]]},
            "temporal": {"interval": [[start, end]]},
        },
        "summaries": ({"variables": [v["name"] for v in rec["variables"]], "open_level": [rec["open_level"]]}
                      if grid else {"geometry_type": [rec["geometry_type"]], "open_level": [rec["open_level"]]}),
        "links": links,
    }


def stac_root(title: str, description: str, root_url: str, children: list[tuple[str, str]]) -> dict[str, Any]:
    """The STAC root Catalog: one child link per dataset collection."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "geoplatform",
        "title": title,
        "description": description or title,
        "links": [{"rel": "self", "href": root_url, "type": "application/json"},
                  {"rel": "root", "href": root_url, "type": "application/json"},
                  *({"rel": "child", "href": href, "type": "application/json", "title": t} for t, href in children)],
    }
