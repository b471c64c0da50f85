"""Reading sources into a GeoDataFrame, with errors that name the file and place.

Formats: GeoJSON, GeoJSON text sequences (RFC 8142, or one feature per
line), GeoPackage, Shapefile (also zipped), GeoParquet, CSV with x/y columns
or a WKT column, and GeoDataFrames passed in directly.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import shapely

from geoplatform.cube.model import CsvOptions
from geoplatform.errors import IngestError, SchemaError

GEOJSON = {".geojson", ".json"}
GEOJSONSEQ = {".geojsons", ".geojsonl", ".geojsonseq", ".ndjson", ".jsonl"}
OGR = {".gpkg", ".shp", ".zip", ".fgb", ".gml", ".kml"}
PARQUET = {".parquet", ".geoparquet"}
CSV = {".csv", ".tsv", ".txt"}


@dataclass
class Source:
    """What a reader found: the rows, the CRS the file declares (if any),
    a name for messages and a content hash for no-op detection."""

    frame: pd.DataFrame  # the attributes
    geometry: Any  # WKB as an arrow array, or an array of shapely geometries
    crs: Any | None
    name: str
    content_hash: str | None
    default_crs: str | None = None  # what the format implies when it declares nothing


def _from_geodataframe(frame: gpd.GeoDataFrame, name: str, digest: str | None, **kw: Any) -> Source:
    frame = frame.reset_index(drop=True)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    return Source(pd.DataFrame(frame.drop(columns=[frame.geometry.name])), geoms, frame.crs, name, digest, **kw)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_source(source: Any, *, layer: str | None = None, csv: CsvOptions | None = None,
                fmt: str | None = None) -> Source:
    """Read ``source`` (a path or a GeoDataFrame)."""
    if isinstance(source, gpd.GeoDataFrame):
        return _from_geodataframe(source, "<GeoDataFrame>", None)
    path = Path(source)
    if not path.exists():
        raise IngestError(f"{path}: no such file", file=str(path))
    if path.is_file() and path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty", file=str(path))
    suffix = (fmt and f".{fmt.lstrip('.')}") or path.suffix.lower()
    digest = file_hash(path) if path.is_file() else None
    if suffix in GEOJSON:
        frame, crs = _read_geojson(path)
        src = _from_geodataframe(frame, str(path), digest, default_crs="OGC:CRS84")
        src.crs = crs
        return src
    if suffix in GEOJSONSEQ:
        return _from_geodataframe(_read_geojsonseq(path), str(path), digest, default_crs="OGC:CRS84")
    if suffix in PARQUET:
        return _read_geoparquet(path, digest)
    if suffix in CSV:
        return _from_geodataframe(_read_csv(path, csv, sep="\t" if suffix == ".tsv" else ","), str(path), digest)
    if suffix in OGR or path.is_dir():
        return _read_ogr(path, layer, digest)
    raise IngestError(f"{path}: unsupported format {suffix!r} (GeoJSON, GeoJSON sequence, GeoPackage, "
                      "Shapefile or zipped Shapefile, GeoParquet, CSV)", file=str(path))


def _json_error(path: Path, exc: orjson.JSONDecodeError, line_offset: int = 0) -> IngestError:
    where = f"line {exc.lineno + line_offset}, column {exc.colno}"
    return IngestError(f"{path}: malformed JSON at {where}: {exc.msg}", file=str(path),
                       line=exc.lineno + line_offset, column=exc.colno)


def _read_geojson(path: Path) -> tuple[gpd.GeoDataFrame, Any]:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise _json_error(path, exc) from None
    if not isinstance(doc, dict) or "type" not in doc:
        raise IngestError(f"{path}: not a GeoJSON object (no 'type' member)", file=str(path))
    if doc["type"] == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise IngestError(f"{path}: FeatureCollection has no 'features' array", file=str(path))
    elif doc["type"] == "Feature":
        feats = [doc]
    else:
        raise IngestError(f"{path}: GeoJSON type {doc['type']!r} is not a Feature or FeatureCollection",
                          file=str(path))
    crs = None
    legacy = doc.get("crs")  # GeoJSON 2008 named CRS, still written by many tools
    if isinstance(legacy, dict):
        crs = (legacy.get("properties") or {}).get("name")
    return _features_to_frame(path, feats), crs


def _read_geojsonseq(path: Path) -> gpd.GeoDataFrame:
    feats = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip().lstrip(b"\x1e").strip()
            if not line:
                continue
            try:
                feats.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise IngestError(f"{path}: malformed JSON on line {lineno}: {exc.msg}", file=str(path),
                                  line=lineno) from None
    if not feats:
        raise IngestError(f"{path}: no features", file=str(path))
    return _features_to_frame(path, feats)


def _features_to_frame(path: Path, feats: list[Any]) -> gpd.GeoDataFrame:
    props: list[dict[str, Any]] = []
    geoms: list[Any] = []
    ids: list[Any] = []
    for i, feat in enumerate(feats):
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise IngestError(f"{path}: feature {i} is not a GeoJSON Feature", file=str(path), row=i)
        g = feat.get("geometry")
        try:
            geoms.append(None if g is None else shapely.geometry.shape(g))
        except Exception as exc:  # shapely raises several kinds for bad coordinates
            raise IngestError(f"{path}: feature {i} has an unreadable geometry: {exc}", file=str(path),
                              row=i) from None
        p = feat.get("properties") or {}
        if not isinstance(p, dict):
            raise IngestError(f"{path}: feature {i} has properties that are not an object", file=str(path), row=i)
        props.append(p)
        ids.append(feat.get("id"))
    frame = pd.DataFrame.from_records(props) if props else pd.DataFrame(index=range(0))
    if any(v is not None for v in ids) and "id" not in frame.columns:
        frame["id"] = ids
    return _with_geometry(path, frame, np.array(geoms, dtype=object))


def _read_csv(path: Path, csv: CsvOptions | None, sep: str) -> gpd.GeoDataFrame:
    if csv is None:
        raise IngestError(f"{path}: a CSV source needs its geometry columns declared "
                          "(csv: {x: lon, y: lat} or {wkt: wkt})", file=str(path))
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: malformed CSV: {exc}", file=str(path)) from None
    except pd.errors.EmptyDataError:
        raise IngestError(f"{path}: the file is empty", file=str(path)) from None
    if csv.wkt:
        if csv.wkt not in df.columns:
            raise IngestError(f"{path}: no WKT column {csv.wkt!r} (columns: {list(df.columns)})", file=str(path))
        text = df.pop(csv.wkt)
        geoms = np.empty(len(df), dtype=object)
        for i, w in enumerate(text):
            if isinstance(w, str):
                try:
                    geoms[i] = shapely.from_wkt(w)
                except shapely.errors.GEOSException as exc:
                    raise IngestError(f"{path}: row {i}: unreadable WKT {w[:60]!r}: {exc}", file=str(path),
                                      row=i) from None
    else:
        missing = [c for c in (csv.x, csv.y) if c not in df.columns]
        if missing:
            raise IngestError(f"{path}: no coordinate columns {missing} (columns: {list(df.columns)})",
                              file=str(path))
        xs = pd.to_numeric(df.pop(csv.x), errors="coerce").to_numpy(float)  # type: ignore[arg-type]
        ys = pd.to_numeric(df.pop(csv.y), errors="coerce").to_numpy(float)  # type: ignore[arg-type]
        bad = np.flatnonzero(~(np.isfinite(xs) & np.isfinite(ys)))
        if len(bad):
            raise IngestError(f"{path}: {len(bad)} rows have missing or non-numeric coordinates, "
                              f"first at row {int(bad[0])}", file=str(path), rows=bad[:20].tolist())
        geoms = shapely.points(xs, ys)
    return _with_geometry(path, df, geoms)


def _with_geometry(path: Path, frame: pd.DataFrame, geoms: np.ndarray) -> gpd.GeoDataFrame:
    if "geometry" in frame.columns:  # the GeoDataFrame would silently overwrite it
        raise SchemaError(f"{path}: a column is named 'geometry', a name the cube reserves; rename it",
                          file=str(path), columns=["geometry"])
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, index=frame.index))


def _read_geoparquet(path: Path, digest: str | None) -> Source:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several kinds for damaged files
        raise IngestError(f"{path}: not a readable Parquet file: {exc}", file=str(path)) from None
    meta = (schema.metadata or {}).get(b"geo")
    if meta is None:
        raise IngestError(f"{path}: a Parquet file without GeoParquet 'geo' metadata", file=str(path))
    try:
        geo = orjson.loads(meta)
        name = geo["primary_column"]
        col = geo["columns"][name]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise IngestError(f"{path}: malformed GeoParquet 'geo' metadata", file=str(path)) from None
    if col.get("encoding", "WKB").upper() != "WKB":
        raise IngestError(f"{path}: geometry encoding {col.get('encoding')!r} is not supported (WKB)",
                          file=str(path))
    # The bbox covering is recomputed on ingest: do not spend time reading it.
    covering = {path_[0] for path_ in (col.get("covering", {}).get("bbox", {}) or {}).values()
                if isinstance(path_, list) and path_}
    columns = [n for n in schema.names if n not in covering]
    try:
        table = pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several kinds for damaged files
        raise IngestError(f"{path}: not a readable Parquet file: {exc}", file=str(path)) from None
    # GeoParquet: a missing crs means OGC:CRS84; an explicit null means unknown.
    crs = col["crs"] if "crs" in col else "OGC:CRS84"
    if isinstance(crs, dict):
        import pyproj

        crs = pyproj.CRS.from_json_dict(crs)
    frame = table.drop_columns([name]).to_pandas(types_mapper=None)
    return Source(frame, table.column(name), crs, str(path), digest)


def _read_ogr(path: Path, layer: str | None, digest: str | None) -> Source:
    import pyogrio

    target = str(path)
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                shps = [n for n in z.namelist() if n.lower().endswith(".shp")]
        except zipfile.BadZipFile:
            raise IngestError(f"{path}: not a readable zip archive", file=str(path)) from None
        if not shps:
            raise IngestError(f"{path}: the zip archive holds no .shp file", file=str(path))
        target = f"/vsizip/{path}/{shps[0]}"
    try:
        meta, table = pyogrio.read_arrow(target, layer=layer)
    except Exception as exc:  # pyogrio's DataSourceError, DataLayerError, ...
        raise IngestError(f"{path}: cannot read: {exc}", file=str(path)) from None
    gname = meta.get("geometry_name") or "wkb_geometry"
    if gname not in table.column_names:
        raise IngestError(f"{path}: the layer has no geometry column", file=str(path))
    frame = table.drop_columns([gname]).to_pandas()
    return Source(frame, table.column(gname), meta.get("crs"), str(path), digest)
