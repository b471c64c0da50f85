"""The dataset catalog for other catalogues: OGC API Records records and STAC.

Both are built from :func:`geoplatform.catalog.describe` records, so the
open-data catalogue, a STAC client and the platform itself tell the same
story about a dataset: what it is, whose it is, its licence and source,
where and when it is, and how to get it.
"""

from __future__ import annotations

from typing import Any

from geoplatform.cube.times import parse_interval, to_us, MAX_US, MIN_US
from geoplatform.errors import InvalidParameterValue

STAC_VERSION = "1.0.0"


def _polygon(b: list[float]) -> dict[str, Any]:
    x0, y0, x1, y1 = b
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def record_feature(rec: dict[str, Any], collection_url: str | None) -> dict[str, Any]:
    """One dataset as an OGC API Records record (a GeoJSON feature)."""
    bbox = rec["extent"]["spatial"]["bbox_crs84"]
    start, end = rec["extent"]["temporal"]
    links = []
    if collection_url:
        links.append({"href": collection_url, "rel": "item", "type": "application/json",
                      "title": "The data, as an OGC API Features collection"})
    return {
        "type": "Feature",
        "id": rec["name"],
        "geometry": _polygon(bbox) if bbox else None,
        "time": {"interval": [start or "..", end or ".."]} if (start or end) else None,
        "conformsTo": ["http://www.opengis.net/spec/ogcapi-records-1/1.0/req/record-core"],
        "properties": {
            "type": "dataset",
            "title": rec["title"],
            "description": rec["description"] or "",
            "keywords": rec["keywords"],
            "themes": [{"concepts": [{"id": rec["theme"]}], "scheme": "geoplatform:themes"}] if rec["theme"] else [],
            "contacts": [{"organization": rec["department"], "roles": ["owner"]}] if rec["department"] else [],
            "license": rec["licence"],
            "rights": rec["open_level"],
            "created": rec["snapshots"][0]["committed_at"] if rec.get("snapshots") else None,
            "updated": rec["snapshots"][-1]["committed_at"] if rec.get("snapshots") else None,
            "externalIds": [],
            "formats": [{"name": "GeoJSON", "mediaType": "application/geo+json"}],
            "department": rec["department"],
            "source": rec["source"],
            "generated": rec["generated"],
            "updateFrequency": rec["update_frequency"],
            "rows": rec["rows"],
        },
        "links": links,
    }


def search_records(records: list[dict[str, Any]], *, q: str | None = None, bbox: list[float] | None = None,
                   datetime: str | None = None, keywords: list[str] | None = None,
                   department: str | None = None) -> list[dict[str, Any]]:
    """Records matching every given criterion: ``q`` (all words, in title,
    description or keywords, any case), ``bbox`` (CRS84, intersects), ``datetime``
    (overlaps the temporal extent), ``keywords`` (any of them), ``department``."""
    words = [w.lower() for w in (q or "").replace(",", " ").split() if w]
    want_kw = {k.lower() for k in keywords or []}
    interval = parse_interval(datetime) if datetime else None
    lo, hi = (to_us(interval.start, MIN_US), to_us(interval.end, MAX_US)) if interval else (MIN_US, MAX_US)
    if bbox is not None and len(bbox) != 4:
        raise InvalidParameterValue("bbox must be 4 numbers (minx,miny,maxx,maxy in CRS84)")
    out = []
    for r in records:
        p = r["properties"]
        text = " ".join([p["title"] or "", p["description"] or "", " ".join(p["keywords"])]).lower()
        if words and not all(w in text for w in words):
            continue
        if want_kw and not want_kw & {k.lower() for k in p["keywords"]}:
            continue
        if department and p["department"] != department:
            continue
        if bbox is not None:
            g = r["geometry"]
            if g is None:
                continue
            ring = g["coordinates"][0]
            x0, y0, x1, y1 = ring[0][0], ring[0][1], ring[2][0], ring[2][1]
            if x1 < bbox[0] or x0 > bbox[2] or y1 < bbox[1] or y0 > bbox[3]:
                continue
        if interval is not None:
            t = r.get("time")
            if t is None:
                continue
            s, e = t["interval"]
            s_us = MIN_US if s == ".." else to_us(parse_interval(s).start, MIN_US)  # type: ignore[union-attr]
            e_us = MAX_US if e == ".." else to_us(parse_interval(e).start, MAX_US)  # type: ignore[union-attr]
            if e_us < lo or s_us > hi:
                continue
        out.append(r)
    return out


def stac_collection(rec: dict[str, Any], self_url: str, root_url: str, data_url: str | None) -> dict[str, Any]:
    """One dataset as a STAC Collection."""
    start, end = rec["extent"]["temporal"]
    links = [{"rel": "self", "href": self_url, "type": "application/json"},
             {"rel": "root", "href": root_url, "type": "application/json"},
             {"rel": "parent", "href": root_url, "type": "application/json"}]
    if data_url:
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
        "summaries": {"geometry_type": [rec["geometry_type"]], "open_level": [rec["open_level"]]},
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
