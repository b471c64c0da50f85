"""Writing query results: GeoJSON, CSV (geometry as WKT) or GeoParquet."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import shapely


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, np.generic):
        return v.item()
    return v


def feature_collection(gdf: gpd.GeoDataFrame) -> dict[str, Any]:
    """A GeoJSON FeatureCollection; the feature id is the dataset's fid."""
    props = [c for c in gdf.columns if c not in ("geometry", "fid")]
    geoms = shapely.to_geojson(np.asarray(gdf.geometry.array, dtype=object))
    feats = []
    for i, row in enumerate(gdf[props].itertuples(index=False, name=None)):
        feats.append({
            "type": "Feature",
            "id": _plain(gdf["fid"].iat[i]) if "fid" in gdf.columns else i,
            "geometry": orjson.Fragment(geoms[i]) if geoms[i] is not None else None,
            "properties": {k: _plain(v) for k, v in zip(props, row)},
        })
    return {"type": "FeatureCollection", "numberReturned": len(feats), "features": feats}


def write(gdf: gpd.GeoDataFrame, fmt: str, out: Path | None) -> None:
    if fmt == "geojson":
        data = orjson.dumps(feature_collection(gdf), option=orjson.OPT_INDENT_2 if out is None else 0)
        _emit(data, out)
    elif fmt == "csv":
        frame = pd.DataFrame(gdf.drop(columns="geometry"))
        frame["wkt"] = shapely.to_wkt(np.asarray(gdf.geometry.array, dtype=object), rounding_precision=-1)
        _emit(frame.to_csv(index=False).encode(), out)
    elif fmt == "parquet":
        if out is None:
            raise ValueError("GeoParquet output needs --output FILE")
        gdf.to_parquet(out, write_covering_bbox=True)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _emit(data: bytes, out: Path | None) -> None:
    if out is None:
        stream: IO[bytes] = sys.stdout.buffer
        stream.write(data)
        stream.write(b"\n")
        stream.flush()
    else:
        out.write_bytes(data)
