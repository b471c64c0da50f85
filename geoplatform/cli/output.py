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


def feature_collection(gdf: gpd.GeoDataFrame) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (the same encoding the OGC API serves)."""
    from geoplatform.crs import resolve_crs
    from geoplatform.ogc.features import features

    feats = features(gdf, resolve_crs("OGC:CRS84"), False)
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
