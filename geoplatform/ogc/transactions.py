"""OGC API Features Part 4 (create, replace, update, delete) over the cube.

Every write is a new snapshot: a new version of the feature, or the end of
its current one, so the history of an edited feature stays in the store.
Optimistic locking uses the feature's version as its entity tag: a write with
``If-Match`` lands only on the version it names, otherwise 412.
Framework-free like :mod:`geoplatform.ogc.features`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import orjson
import shapely

from geoplatform.catalog.layers import LayerConfig
from geoplatform.ogc.features import etag
from geoplatform.crs import resolve_crs
from geoplatform.errors import (
    FeatureExists, FeatureNotFound, InvalidParameterValue, NotEditable, PreconditionFailed,
)
from geoplatform.storage.records import coerce_fid

if TYPE_CHECKING:
    from geoplatform.cube.cube import Cube

SYSTEM_PROPERTIES = ("version", "record_from")
#: how many times a PATCH without If-Match is applied again when another write got in first
_PATCH_ATTEMPTS = 20


def current_etag(cube: "Cube", layer: LayerConfig, fid: str) -> str:
    gdf = cube.get(layer.dataset, fid)
    return etag(gdf["fid"].iat[0], int(gdf["version"].iat[0]))


def _check_if_match(cube: "Cube", layer: LayerConfig, fid: str, headers: Mapping[str, str]) -> int | None:
    """The version ``If-Match`` names (412 if it is not the current one), for the write
    to expect under the dataset's lock; None without ``If-Match`` (or ``*``)."""
    wanted = headers.get("if-match")
    if wanted is None or wanted.strip() == "*":
        return None
    gdf = cube.get(layer.dataset, fid)
    version = int(gdf["version"].iat[0])
    now = etag(gdf["fid"].iat[0], version)
    if now not in [t.strip() for t in wanted.split(",")]:
        raise PreconditionFailed(f"item {fid!r} is at {now}, not {wanted}: it changed since it was read")
    return version


def _feature(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameterValue(f"the request body is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        raise InvalidParameterValue("the request body must be one GeoJSON Feature")
    if not isinstance(doc.get("properties") or {}, dict):
        raise InvalidParameterValue("the feature's properties must be an object")
    return doc


def _geometry(feature: dict[str, Any], content_crs: str | None) -> tuple[Any, Any]:
    """The body's geometry in x = east order, and its CRS (``Content-Crs``, default CRS84)."""
    crs = resolve_crs(content_crs.strip().strip("<>") if content_crs else "OGC:CRS84")
    if not feature.get("geometry"):
        raise InvalidParameterValue("the feature has no geometry")
    try:
        geom = shapely.geometry.shape(feature["geometry"])
    except Exception as exc:  # shapely raises several kinds for malformed geometry
        raise InvalidParameterValue(f"the feature's geometry is not valid GeoJSON: {exc}") from None
    if crs.axis_order_lat_first:  # the body uses the CRS's axis order
        geom = shapely.transform(geom, lambda xy: xy[:, ::-1])
    return geom, crs


def _frame(cube: "Cube", layer: LayerConfig, properties: Mapping[str, Any], fid: str, geom: Any,
           crs: Any) -> gpd.GeoDataFrame:
    """One input row of the dataset: the id and valid-time properties under
    the dataset's own column names."""
    spec = cube.dataset(layer.dataset)
    if spec.fid is None:
        raise NotEditable(f"collection {layer.id!r} has store-assigned ids: its items cannot be written by id")
    props = {k: v for k, v in properties.items() if k not in SYSTEM_PROPERTIES}
    # valid_from / valid_to are the platform's names for the dataset's own time columns
    start, end = props.pop("valid_from", None), props.pop("valid_to", None)
    if spec.valid_from and start is not None:
        props[spec.valid_from] = start
    if spec.valid_to and end is not None:
        props[spec.valid_to] = end
    props[spec.fid] = fid
    frame = gpd.GeoDataFrame({k: [v] for k, v in props.items()}, geometry=[geom])
    return frame.set_crs(crs.pyproj_crs if not crs.is_offset_system else "EPSG:4326")


def _require(layer: LayerConfig) -> None:
    if not layer.editable:
        raise NotEditable(f"collection {layer.id!r} is not editable")


def create(cube: "Cube", layer: LayerConfig, body: bytes, headers: Mapping[str, str],
           base_url: str) -> tuple[int, dict[str, str], bytes]:
    """POST: a new item; its id is the feature's ``id``."""
    _require(layer)
    feature = _feature(body)
    fid = feature.get("id")
    if fid is None or str(fid).strip() == "":
        raise InvalidParameterValue("a new item needs an id (the feature's 'id' member)")
    fid = str(fid)
    try:
        cube.get(layer.dataset, fid)
    except FeatureNotFound:
        pass
    else:
        raise FeatureExists(f"collection {layer.id!r} already has item {fid!r}; use PUT to replace it")
    geom, crs = _geometry(feature, headers.get("content-crs"))
    frame = _frame(cube, layer, feature.get("properties") or {}, fid, geom, crs)
    report = cube.ingest(layer.dataset, frame, mode="append", progress=False, source_crs=crs.id)
    return 201, {"Location": f"{base_url}/{fid}", "ETag": etag(fid, 1), "X-Snapshot": str(report.snapshot_id)}, b""


def replace(cube: "Cube", layer: LayerConfig, fid: str, body: bytes, headers: Mapping[str, str]
            ) -> tuple[int, dict[str, str], bytes]:
    """PUT: a new version of an existing item, from a whole feature."""
    _require(layer)
    expected = _check_if_match(cube, layer, fid, headers)
    feature = _feature(body)
    if feature.get("id") not in (None, fid):
        raise InvalidParameterValue(f"the body's id {feature.get('id')!r} is not the item's id {fid!r}")
    geom, crs = _geometry(feature, headers.get("content-crs"))
    return _write(cube, layer, fid, _frame(cube, layer, feature.get("properties") or {}, fid, geom, crs), crs,
                  expected)


def update(cube: "Cube", layer: LayerConfig, fid: str, body: bytes, headers: Mapping[str, str]
           ) -> tuple[int, dict[str, str], bytes]:
    """PATCH: a new version of an existing item with some properties (and/or
    the geometry) changed; what the body leaves out stays as it was."""
    _require(layer)
    expected = _check_if_match(cube, layer, fid, headers)
    patch = _feature_like(body)
    if not isinstance(patch.get("properties") or {}, dict):
        raise InvalidParameterValue("the patch's properties must be an object")
    for attempt in range(_PATCH_ATTEMPTS):
        # the patch applies to the version read here; the write expects that version, so a
        # write in between is never overwritten: with If-Match that is a 412, without it the
        # patch is applied again to the newer version
        current = cube.get(layer.dataset, fid)
        base = int(current["version"].iat[0])
        if expected is not None and base != expected:
            raise PreconditionFailed(f"item {fid!r} is at version {base}, not {expected}: it changed since it was read")
        props = {k: _plain(current[k].iat[0]) for k in current.columns
                 if k not in ("geometry", "fid", *SYSTEM_PROPERTIES)}
        props.update(patch.get("properties") or {})
        if patch.get("geometry"):
            geom, crs = _geometry(patch, headers.get("content-crs"))
        else:
            geom, crs = current.geometry.iat[0], resolve_crs(cube.dataset(layer.dataset).storage_crs)
        try:
            return _write(cube, layer, fid, _frame(cube, layer, props, fid, geom, crs), crs, base)
        except PreconditionFailed:
            if expected is not None or attempt == _PATCH_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _feature_like(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameterValue(f"the request body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidParameterValue("the request body must be a JSON object")
    return doc


def _plain(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return None if str(v) == "NaT" else v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return None if v != v else v  # NaN to null


def _write(cube: "Cube", layer: LayerConfig, fid: str, frame: gpd.GeoDataFrame,
           crs: Any, expected: int | None = None) -> tuple[int, dict[str, str], bytes]:
    cube.get(layer.dataset, fid)  # 404 before any write
    report = cube.ingest(layer.dataset, frame, mode="upsert", progress=False, source_crs=crs.id,
                         expect=None if expected is None else {fid: expected})
    # the version this write made (or left, if it changed nothing), not a later writer's
    now = cube.get(layer.dataset, fid, as_of=report.snapshot_id) if report.snapshot_id is not None \
        else cube.get(layer.dataset, fid)
    headers = {"ETag": etag(fid, int(now["version"].iat[0]))}
    if report.snapshot_id is not None:
        headers["X-Snapshot"] = str(report.snapshot_id)
    return 204, headers, b""


def delete(cube: "Cube", layer: LayerConfig, fid: str, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
    """DELETE: the item's current version ends; its history stays."""
    _require(layer)
    spec = cube.dataset(layer.dataset)
    coerce_fid(spec, fid)
    expected = _check_if_match(cube, layer, fid, headers)
    snap = cube.delete_features(layer.dataset, [fid], expect=None if expected is None else {fid: expected})
    return 204, {"X-Snapshot": str(snap.id)}, b""
