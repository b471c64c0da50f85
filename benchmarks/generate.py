"""Synthetic city data for the cube benchmark.

A 50 x 50 km city in CGCS2000 geographic coordinates (EPSG:4490) centred on
lon 108.95, lat 34.27.  Positions are drawn in EPSG:4545 metres (CGCS2000 /
3-degree Gauss-Kruger CM 108E) and converted with pyproj; the city is the
50 x 50 km square of that projection, and its extent in degrees (the bounding
box of that square) is what query boxes are drawn inside.

Points: ``sensors`` fixed sensors (a mixture of Gaussian clusters around a
dense centre plus a uniform background), each reporting every 6 hours from
2025-01-01T00:00Z for ``steps`` time steps, with a fixed per-sensor clock
offset of 0-599 s.  Rows are ordered by time step, then sensor, as a feed
would deliver them ("unsorted" from the point of view of space).  Columns:
``sensor_id`` int32, ``observed_at`` timestamp[us, UTC], ``value`` float32,
``quality`` string (good / suspect / bad), ``geometry`` (WKB Point) and the
GeoParquet 1.1 ``bbox`` covering column written by geopandas.

Polygons: 1 million small rotated rectangles (building-footprint sized,
8-40 m) centred on the same clustered distribution.

Everything is seeded (per time step for points, so any subset of steps is
reproducible) and generated in chunks so that 10 million points never sit in
memory at once.  Files are cached in ``benchmarks/data/`` and only made when
missing.

Run alone: ``python benchmarks/generate.py [--rows 10000000] [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

CENTRE_LON, CENTRE_LAT = 108.95, 34.27
CITY_KM = 50.0
STEPS = 1000
STEP_HOURS = 6
T0 = np.datetime64("2025-01-01T00:00:00", "us")
STORAGE_CRS = "EPSG:4490"
METRIC_CRS = "EPSG:4545"
QUALITY = np.array(["good", "suspect", "bad"], dtype=object)
QUALITY_P = [0.90, 0.08, 0.02]
ROW_GROUP = 100_000  # rows per Parquet row group of every generated file
SEED = 20250101


# --------------------------------------------------------------------------- geometry helpers

def _transformers():
    from pyproj import Transformer

    fwd = Transformer.from_crs(STORAGE_CRS, METRIC_CRS, always_xy=True)
    inv = Transformer.from_crs(METRIC_CRS, STORAGE_CRS, always_xy=True)
    return fwd, inv


@dataclass(frozen=True)
class City:
    """The city square in metres (EPSG:4545) and its extent in degrees."""

    cx: float  # centre, EPSG:4545 metres
    cy: float
    half: float  # half side, metres
    bounds_deg: tuple[float, float, float, float]  # (minlon, minlat, maxlon, maxlat)
    deg_per_km_lon: float  # local scale at the centre
    deg_per_km_lat: float

    @property
    def bounds_m(self) -> tuple[float, float, float, float]:
        return (self.cx - self.half, self.cy - self.half, self.cx + self.half, self.cy + self.half)


def city() -> City:
    from pyproj import Geod

    fwd, inv = _transformers()
    cx, cy = fwd.transform(CENTRE_LON, CENTRE_LAT)
    half = CITY_KM * 1000 / 2
    # bounding box in degrees of the projected square (densified edges)
    s = np.linspace(-half, half, 201)
    ex = np.concatenate([cx + s, cx + s, np.full_like(s, cx - half), np.full_like(s, cx + half)])
    ey = np.concatenate([np.full_like(s, cy - half), np.full_like(s, cy + half), cy + s, cy + s])
    lon, lat = inv.transform(ex, ey)
    g = Geod(ellps="GRS80")  # CGCS2000 ellipsoid is GRS80 for all practical purposes
    lon_e, _, _ = g.fwd(CENTRE_LON, CENTRE_LAT, 90, 1000.0)
    _, lat_n, _ = g.fwd(CENTRE_LON, CENTRE_LAT, 0, 1000.0)
    return City(
        cx=float(cx),
        cy=float(cy),
        half=half,
        bounds_deg=(float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())),
        deg_per_km_lon=float(lon_e - CENTRE_LON),
        deg_per_km_lat=float(lat_n - CENTRE_LAT),
    )


def clustered_xy(n: int, rng: np.random.Generator, c: City) -> tuple[np.ndarray, np.ndarray]:
    """n positions in EPSG:4545 metres: dense centre, satellite clusters, uniform background."""
    # (dx km, dy km, sigma km, weight); the last weight is the uniform background
    clusters = [
        (0, 0, 3.0, 0.30),  # old town / CBD
        (0, 0, 7.0, 0.20),  # inner ring
        (-9, 6, 2.5, 0.07),
        (10, -4, 3.0, 0.08),
        (6, 11, 2.0, 0.05),
        (-12, -10, 3.5, 0.06),
        (15, 14, 2.0, 0.04),
    ]
    w = np.array([k[3] for k in clusters] + [1 - sum(k[3] for k in clusters)])
    comp = rng.choice(len(w), size=n, p=w)
    x = np.empty(n)
    y = np.empty(n)
    lo_x, lo_y, hi_x, hi_y = c.bounds_m
    for i in range(len(w)):
        m = comp == i
        k = int(m.sum())
        if i == len(clusters):
            x[m] = rng.uniform(lo_x, hi_x, k)
            y[m] = rng.uniform(lo_y, hi_y, k)
            continue
        dx, dy, sg, _ = clusters[i]
        x[m] = c.cx + dx * 1000 + rng.normal(0, sg * 1000, k)
        y[m] = c.cy + dy * 1000 + rng.normal(0, sg * 1000, k)
    # anything that fell outside the square is redrawn uniformly
    out = (x < lo_x) | (x > hi_x) | (y < lo_y) | (y > hi_y)
    x[out] = rng.uniform(lo_x, hi_x, int(out.sum()))
    y[out] = rng.uniform(lo_y, hi_y, int(out.sum()))
    return x, y


# --------------------------------------------------------------------------- points

@dataclass
class Sensors:
    lon: np.ndarray
    lat: np.ndarray
    offset_us: np.ndarray  # per-sensor clock offset
    base: np.ndarray  # per-sensor baseline value
    amp: np.ndarray  # per-sensor daily amplitude


def sensors(n: int, seed: int = SEED) -> Sensors:
    rng = np.random.default_rng([seed, 0, n])
    c = city()
    x, y = clustered_xy(n, rng, c)
    _, inv = _transformers()
    lon, lat = inv.transform(x, y)
    return Sensors(
        lon=np.asarray(lon, dtype="float64"),
        lat=np.asarray(lat, dtype="float64"),
        offset_us=rng.integers(0, 600, n).astype("int64") * 1_000_000,
        base=rng.normal(15, 3, n),
        amp=rng.uniform(2, 8, n),
    )


def step_table(s: Sensors, step: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """The columns (numpy) of one time step: one row per sensor, in sensor order."""
    n = len(s.lon)
    rng = np.random.default_rng([seed, 1, step])
    t_us = T0.astype("int64") + step * STEP_HOURS * 3_600_000_000 + s.offset_us
    hours = step * STEP_HOURS
    season = -8 * np.cos(2 * np.pi * hours / (24 * 365))
    daily = np.sin(2 * np.pi * (hours % 24) / 24)
    value = (s.base + season + s.amp * daily + rng.normal(0, 1.0, n)).astype("float32")
    quality = QUALITY[rng.choice(3, size=n, p=QUALITY_P)]
    return {
        "sensor_id": np.arange(n, dtype="int32"),
        "observed_at": t_us.astype("datetime64[us]"),
        "value": value,
        "quality": quality,
        "x": s.lon,
        "y": s.lat,
    }


def _geo_table(cols: dict[str, np.ndarray], geometry) -> pa.Table:
    """A pyarrow table with GeoParquet metadata and the bbox covering, made by geopandas."""
    import geopandas as gpd
    import pandas as pd

    df = pd.DataFrame(
        {
            "sensor_id": cols["sensor_id"],
            "observed_at": pd.DatetimeIndex(cols["observed_at"]).tz_localize("UTC"),
            "value": cols["value"],
            "quality": cols["quality"],
        }
    ) if "sensor_id" in cols else pd.DataFrame({k: v for k, v in cols.items()})
    gdf = gpd.GeoDataFrame(df, geometry=geometry, crs=STORAGE_CRS)
    buf = io.BytesIO()
    gdf.to_parquet(buf, index=False, write_covering_bbox=True)
    buf.seek(0)
    return pq.read_table(buf)


def _fix_geo_bbox(table: pa.Table, bbox: list[float]) -> pa.Table:
    md = dict(table.schema.metadata or {})
    geo = json.loads(md[b"geo"])
    geo["columns"][geo["primary_column"]]["bbox"] = bbox
    md[b"geo"] = json.dumps(geo).encode()
    return table.replace_schema_metadata(md)


@dataclass
class PointFiles:
    rows: int
    sensors: int
    steps: int
    geoparquet: Path  # all rows, unsorted, GeoParquet with bbox covering
    xy: Path  # same rows + x, y columns, plain Parquet with WKB geometry (DuckDB anchor)
    parts: list[Path] = field(default_factory=list)  # 10 time-ordered chunks (cube ingest)
    ingest_1m: Path | None = None  # first 1M rows (ingest benchmark), GeoParquet
    ingest_1m_fgb: Path | None = None  # same rows as FlatGeobuf (ogr2ogr anchor)


def point_files(rows: int, n_parts: int = 10, seed: int = SEED, log=print) -> PointFiles:
    """Make (or find) every point file for a run of ``rows`` points."""
    if rows % STEPS:
        raise ValueError(f"rows must be a multiple of {STEPS} (steps)")
    n_sensors = rows // STEPS
    if STEPS % n_parts:
        raise ValueError("parts must divide the number of steps")
    DATA.mkdir(parents=True, exist_ok=True)
    stem = f"points_{rows}"
    pf = PointFiles(
        rows=rows,
        sensors=n_sensors,
        steps=STEPS,
        geoparquet=DATA / f"{stem}.parquet",
        xy=DATA / f"{stem}_xy.parquet",
        parts=[DATA / f"{stem}_parts" / f"part-{i:03d}.parquet" for i in range(n_parts)],
    )
    steps_per_part = STEPS // n_parts
    targets = [pf.geoparquet, pf.xy, *pf.parts]
    if not all(p.exists() for p in targets):
        t = time.perf_counter()
        s = sensors(n_sensors, seed)
        bbox = [float(s.lon.min()), float(s.lat.min()), float(s.lon.max()), float(s.lat.max())]
        tmp = {p: p.with_suffix(".tmp") for p in targets}
        pf.parts[0].parent.mkdir(parents=True, exist_ok=True)
        writers: dict[Path, pq.ParquetWriter] = {}
        try:
            import shapely

            for pi, part in enumerate(pf.parts):
                steps = range(pi * steps_per_part, (pi + 1) * steps_per_part)
                blocks = [step_table(s, st, seed) for st in steps]
                cols = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
                del blocks
                geom = shapely.points(cols["x"], cols["y"])
                gt = _fix_geo_bbox(_geo_table(cols, geom), bbox)
                del geom
                xy = gt.drop_columns(["bbox"]).append_column("x", pa.array(cols["x"])).append_column(
                    "y", pa.array(cols["y"])
                )
                xy = xy.replace_schema_metadata(None)  # plain Parquet: numeric x/y + WKB blob
                for path, tbl in ((pf.geoparquet, gt), (pf.xy, xy), (part, gt)):
                    w = writers.get(path)
                    if w is None:
                        w = writers[path] = pq.ParquetWriter(tmp[path], tbl.schema)
                    w.write_table(tbl, row_group_size=ROW_GROUP)
                writers.pop(part).close()
                os.replace(tmp[part], part)
                log(f"  points: part {pi + 1}/{n_parts} ({(pi + 1) * steps_per_part * n_sensors:,} rows) "
                    f"{time.perf_counter() - t:.0f}s")
            for path, w in writers.items():
                w.close()
                os.replace(tmp[path], path)
            writers.clear()
        finally:
            for w in writers.values():
                w.close()
        log(f"  generated {rows:,} points in {time.perf_counter() - t:.1f}s")
    # the 1M-point ingest source: the first million rows of the same stream
    if rows == 1_000_000:
        pf.ingest_1m = pf.geoparquet
    elif rows // n_parts == 1_000_000:
        pf.ingest_1m = pf.parts[0]
    else:
        pf.ingest_1m = point_files(1_000_000, n_parts, seed, log).geoparquet
    pf.ingest_1m_fgb = pf.ingest_1m.with_suffix(".fgb")
    _fgb_copy(pf.ingest_1m, pf.ingest_1m_fgb, log)
    return pf


def _fgb_copy(src: Path, dst: Path, log=print) -> None:
    """FlatGeobuf copy (ogr2ogr 3.6 here cannot read Parquet).  Remade if src changed."""
    stamp = dst.with_suffix(dst.suffix + ".src")
    key = f"{src.name} {src.stat().st_size}"
    if dst.exists() and stamp.exists() and stamp.read_text() == key:
        return
    import geopandas as gpd

    t = time.perf_counter()
    gdf = gpd.read_parquet(src)
    gdf = gdf.drop(columns=[c for c in ("bbox",) if c in gdf.columns])
    tmp = dst.with_suffix(".tmp.fgb")
    gdf.to_file(tmp, driver="FlatGeobuf", engine="pyogrio", SPATIAL_INDEX="YES")
    os.replace(tmp, dst)
    stamp.write_text(key)
    log(f"  wrote {dst.name} ({len(gdf):,} rows) in {time.perf_counter() - t:.1f}s")


# --------------------------------------------------------------------------- polygons

@dataclass
class PolygonFiles:
    rows: int
    geoparquet: Path
    fgb: Path


def polygon_files(rows: int = 1_000_000, seed: int = SEED, log=print) -> PolygonFiles:
    """1M small rotated rectangles ("building footprints"), GeoParquet + FlatGeobuf."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    DATA.mkdir(parents=True, exist_ok=True)
    pf = PolygonFiles(rows=rows, geoparquet=DATA / f"polygons_{rows}.parquet",
                      fgb=DATA / f"polygons_{rows}.fgb")
    if not pf.geoparquet.exists():
        t = time.perf_counter()
        rng = np.random.default_rng([seed, 2, rows])
        c = city()
        _, inv = _transformers()
        writer = None
        tmp = pf.geoparquet.with_suffix(".tmp")
        chunk = 250_000
        bboxes = []
        tables = []
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cx, cy = clustered_xy(n, rng, c)
            w = rng.uniform(8, 40, n)
            h = w * rng.uniform(0.4, 1.0, n)
            a = rng.uniform(0, np.pi, n)
            # corners (counter-clockwise), closed ring
            ux = np.array([-1, 1, 1, -1, -1]) / 2
            uy = np.array([-1, -1, 1, 1, -1]) / 2
            lx = w[:, None] * ux[None, :]
            ly = h[:, None] * uy[None, :]
            px = cx[:, None] + lx * np.cos(a)[:, None] - ly * np.sin(a)[:, None]
            py = cy[:, None] + lx * np.sin(a)[:, None] + ly * np.cos(a)[:, None]
            lon, lat = inv.transform(px.ravel(), py.ravel())
            coords = np.stack([np.asarray(lon).reshape(n, 5), np.asarray(lat).reshape(n, 5)], axis=-1)
            geom = shapely.polygons(coords)
            df = pd.DataFrame({
                "zone_id": np.arange(start, start + n, dtype="int32"),
                "observed_at": pd.DatetimeIndex(
                    (T0 + rng.integers(0, STEPS * STEP_HOURS * 3600, n).astype("timedelta64[s]"))
                    .astype("datetime64[us]")).tz_localize("UTC"),
                "value": rng.uniform(3, 120, n).astype("float32"),
                "quality": QUALITY[rng.choice(3, size=n, p=QUALITY_P)],
            })
            gdf = gpd.GeoDataFrame(df, geometry=geom, crs=STORAGE_CRS)
            buf = io.BytesIO()
            gdf.to_parquet(buf, index=False, write_covering_bbox=True)
            buf.seek(0)
            tbl = pq.read_table(buf)
            b = gdf.total_bounds
            bboxes.append(b)
            tables.append(tbl)
        bb = np.array(bboxes)
        box = [float(bb[:, 0].min()), float(bb[:, 1].min()), float(bb[:, 2].max()), float(bb[:, 3].max())]
        for tbl in tables:
            tbl = _fix_geo_bbox(tbl, box)
            if writer is None:
                writer = pq.ParquetWriter(tmp, tbl.schema)
            writer.write_table(tbl, row_group_size=ROW_GROUP)
        writer.close()
        os.replace(tmp, pf.geoparquet)
        log(f"  generated {rows:,} polygons in {time.perf_counter() - t:.1f}s")
    _fgb_copy(pf.geoparquet, pf.fgb, log)
    return pf


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--quick", action="store_true", help="1M points")
    a = ap.parse_args(argv)
    rows = 1_000_000 if a.quick else a.rows
    c = city()
    print(f"city bounds (EPSG:4490): {c.bounds_deg}; deg/km lon {c.deg_per_km_lon:.6f} lat {c.deg_per_km_lat:.6f}")
    p = point_files(rows)
    print(p)
    print(polygon_files())


if __name__ == "__main__":
    main()
