"""A pygeoapi feature provider over the cube.

``CubeProvider`` lets a stock pygeoapi serve a geoplatform store: name it in a
pygeoapi configuration (``geoplatform pygeoapi-config`` writes one) with
``data`` the store and ``options.dataset`` the dataset::

    providers:
      - type: feature
        name: geoplatform.ogc.provider.CubeProvider
        data: /srv/geoplatform/lanshan
        id_field: fid
        options: {dataset: incidents}

pygeoapi builds a provider per request, so the provider itself is light: the
open cube is shared by every provider of the process (one per store), and
a provider only looks up its dataset's schema.

Queries go to :meth:`Cube.query` / :meth:`Cube.count`: ``datetime`` filters
the dataset's valid time, pygeoapi's parsed filter is handed over as
cql2-json (and compiled by the cube, never run as text), and ``numberMatched``
is an exact count.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
from pygeoapi.provider.base import (
    BaseProvider, ProviderInvalidQueryError, ProviderItemNotFoundError, ProviderQueryError,
)

from geoplatform.crs import resolve_crs
from geoplatform.cube.cube import Cube, open_cube
from geoplatform.cube.query import queryables
from geoplatform.errors import FeatureNotFound, GeoPlatformError
from geoplatform.ogc.features import SCHEMA_TYPES
from geoplatform.ogc.features import features as to_features

_CUBES: dict[str, Cube] = {}
_LOCK = threading.Lock()


def shared_cube(store: str | Path) -> Cube:
    """The process's open cube over ``store`` (opened on first use)."""
    key = str(Path(store).resolve())
    with _LOCK:
        cube = _CUBES.get(key)
        if cube is None:
            cube = _CUBES[key] = open_cube(key)
        return cube


def _datetime(value: str | None) -> str | None:
    """pygeoapi's datetime string in the cube's form (``..`` open ends)."""
    if not value:
        return None
    if "/" in value:
        a, b = value.split("/", 1)
        return f"{a or '..'}/{b or '..'}"
    return value


class CubeProvider(BaseProvider):
    """pygeoapi feature provider for one dataset of a geoplatform store."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        options = provider_def.get("options") or {}
        self.dataset = options.get("dataset")
        if not self.dataset:
            raise ProviderQueryError("CubeProvider needs options.dataset, the dataset to serve")
        self.cube = shared_cube(self.data)
        try:
            self.spec = self.cube.dataset(self.dataset)
        except GeoPlatformError as exc:
            raise ProviderQueryError(str(exc)) from exc
        self.id_field = "fid"
        self.get_fields()

    def get_fields(self) -> dict[str, dict[str, Any]]:
        if not self._fields:
            wanted = set(self.properties) if self.properties else None
            for name, kind in queryables(self.spec).items():
                if kind == "geometry" or (wanted is not None and name not in wanted and name != "fid"):
                    continue
                self._fields[name] = dict(SCHEMA_TYPES[kind])
        return self._fields

    def _params(self, bbox: list[float], datetime_: str | None, properties: list[tuple[str, str]],
                filterq: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if bbox:
            # pygeoapi has transformed the bbox to the storage CRS, in that CRS's
            # axis order; the cube takes x (east) first
            vals = [float(v) for v in bbox]
            x0, y0, x1, y1 = vals[:4] if len(vals) == 4 else (vals[0], vals[1], vals[3], vals[4])
            if resolve_crs(self.spec.storage_crs).axis_order_lat_first:
                x0, y0, x1, y1 = y0, x0, y1, x1
            params["bbox"] = (x0, y0, x1, y1)
            params["bbox_crs"] = self.spec.storage_crs
        if datetime_:
            params["datetime"] = _datetime(datetime_)
        clauses = []
        for name, value in properties:
            if name not in self.fields:
                raise ProviderInvalidQueryError(user_msg=f"unknown property {name!r}")
            arg: Any = value
            if self.fields[name]["type"] in ("integer", "number"):
                try:
                    arg = int(value) if self.fields[name]["type"] == "integer" else float(value)
                except ValueError:
                    raise ProviderInvalidQueryError(user_msg=f"{name}={value!r} is not a number") from None
            clauses.append({"op": "=", "args": [{"property": name}, arg]})
        if filterq is not None:
            from pygeofilter.backends.cql2_json import to_cql2

            clauses.append(orjson.loads(to_cql2(filterq)))
        if clauses:
            params["filter"] = clauses[0] if len(clauses) == 1 else {"op": "and", "args": clauses}
            params["filter_lang"] = "cql2-json"
        return params

    def query(self, offset: int = 0, limit: int = 10, resulttype: str = "results", bbox: list[float] | None = None,
              datetime_: str | None = None, properties: list[tuple[str, str]] | None = None,
              sortby: list[dict[str, str]] | None = None, select_properties: list[str] | None = None,
              skip_geometry: bool = False, q: str | None = None, filterq: Any = None,
              crs_transform_spec: Any = None, **kwargs: Any) -> dict[str, Any]:
        try:
            params = self._params(bbox or [], datetime_, properties or [], filterq)
            matched = self.cube.count(self.dataset, **params)
            fc: dict[str, Any] = {"type": "FeatureCollection", "features": [], "numberMatched": matched}
            if resulttype == "hits":
                fc["numberReturned"] = 0
                return fc
            if sortby:
                params["sortby"] = ",".join(("-" if s["order"] == "-" else "") + s["property"] for s in sortby)
            chosen = select_properties or (list(self.properties) if self.properties else None)
            if chosen:
                params["properties"] = [p for p in chosen if p != "fid"]
            crs = resolve_crs(crs_transform_spec.target_crs_uri if crs_transform_spec else "OGC:CRS84")
            gdf = self.cube.query(self.dataset, crs=crs.id, limit=limit, offset=offset, **params)
        except GeoPlatformError as exc:
            raise ProviderInvalidQueryError(user_msg=str(exc)) from exc
        # pygeoapi serialises with the json module: plain objects only
        fc["features"] = orjson.loads(orjson.dumps(to_features(gdf, crs, skip_geometry)))
        fc["numberReturned"] = len(fc["features"])
        return fc

    def get(self, identifier: str, crs_transform_spec: Any = None, **kwargs: Any) -> dict[str, Any]:
        crs = resolve_crs(crs_transform_spec.target_crs_uri if crs_transform_spec else "OGC:CRS84")
        try:
            gdf = self.cube.get(self.dataset, identifier, crs=crs.id)
        except FeatureNotFound as exc:
            raise ProviderItemNotFoundError(user_msg=f"no item {identifier!r}") from exc
        if self.properties:
            gdf = gdf[[c for c in gdf.columns if c in ("fid", "geometry") or c in self.properties]]
        return orjson.loads(orjson.dumps(to_features(gdf, crs, False)[0]))

    def __repr__(self) -> str:
        return f"<CubeProvider {self.data}:{self.dataset}>"
