"""Base geography of the sample city: the street grid, roads and districts.

How it is generated
-------------------
* **Street grid.** A 17 x 17 lattice of junctions 1,250 m apart covers the
  20 x 20 km square. Interior junctions are jittered by a clipped normal
  (sd 70 m, at most 180 m); junctions on the city edge only slide along it.
  Every lattice edge is a potential road; collectors and locals get a bent
  mid vertex (sd 12 m) so the network does not look ruled.
* **Road classes.** Lines 2 and 14 in both directions form an inner ring
  *expressway* between them; every fourth line is an *arterial*, the other
  even lines *collectors*, odd lines *locals*. About 15 % of interior local
  segments are dropped (superblocks). Each road is one LineString between two
  junctions; a line keeps one name (a generic Chinese street name stem plus a
  class suffix), lanes follow the class.
* **Blocks.** The cells of the lattice, bounded by exactly the same edge
  polylines as the roads (so parcels and roads meet without slivers).
* **Districts.** Seven seeds (an old-town centre and six around it at about
  6.5 km); each block goes to its nearest seed, a district is the union of its
  blocks, and blocks cut off from their district's main part are handed to a
  neighbour until every district is a single polygon. Codes use the unused
  province prefix ``99`` so they can never be mistaken for real codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from .common import HALF_SIZE_M, PROJECTED_CRS, local_to_projected

N_LINES = 17
SPACING_M = 2 * HALF_SIZE_M / (N_LINES - 1)  # 1,250 m
RING = (2, 14)  # lattice lines carrying the ring expressway

ROAD_CLASSES = ("expressway", "arterial", "collector", "local")
_LANES = {"expressway": (6, 8), "arterial": (4, 6), "collector": (2, 4), "local": (2, 2)}
_SUFFIX = {
    "arterial": ("Avenue", "大道"),
    "collector": ("Road", "路"),
    "local": ("Street", "街"),
}

#: Generic street-name stems (pinyin, Chinese), used by one lattice line each.
NAME_STEMS: tuple[tuple[str, str], ...] = (
    ("Heping", "和平"), ("Jianshe", "建设"), ("Renmin", "人民"), ("Wenhua", "文化"),
    ("Xingfu", "幸福"), ("Chaoyang", "朝阳"), ("Dongfeng", "东风"), ("Minzhu", "民主"),
    ("Gongye", "工业"), ("Kexue", "科学"), ("Youyi", "友谊"), ("Tuanjie", "团结"),
    ("Changle", "长乐"), ("Anding", "安定"), ("Qingnian", "青年"), ("Xinhua", "新华"),
    ("Jinhua", "锦华"), ("Taiping", "太平"), ("Yongning", "永宁"), ("Guangming", "光明"),
    ("Hongxing", "红星"), ("Lanxi", "兰溪"), ("Qingshan", "青山"), ("Baiyun", "白云"),
    ("Songlin", "松林"), ("Liuyin", "柳荫"), ("Taoyuan", "桃源"), ("Meilin", "梅林"),
    ("Zhuxi", "竹溪"), ("Hehua", "荷花"), ("Yingbin", "迎宾"), ("Jinxiu", "锦绣"),
    ("Fenghuang", "凤凰"), ("Shuiyun", "水云"),
)

#: District seeds: code, English name, Chinese name, (x, y) offset in km from the centre.
DISTRICT_SEEDS: tuple[tuple[str, str, str, tuple[float, float]], ...] = (
    ("990102", "Chengzhong", "城中区", (0.0, 0.0)),
    ("990103", "Beiyuan", "北苑区", (0.0, 6.5)),
    ("990104", "Donghu", "东湖区", (5.6, 3.25)),
    ("990105", "Gaoxin", "高新区", (5.6, -3.25)),
    ("990106", "Nanshan", "南山区", (0.0, -6.5)),
    ("990107", "Lanjiang", "蓝江区", (-5.6, -3.25)),
    ("990108", "Xiling", "西岭区", (-5.6, 3.25)),
)


@dataclass(frozen=True)
class StreetGrid:
    """The lattice everything else hangs on (EPSG:4545 metres)."""

    node_x: np.ndarray  # (N_LINES, N_LINES): [i, j] is column i (x), row j (y)
    node_y: np.ndarray
    roads: gpd.GeoDataFrame  # kept roads, with start/end lattice node indices
    blocks: gpd.GeoDataFrame  # one polygon per lattice cell, column ``block`` = (i, j) flat
    all_edges: dict[tuple[int, int, int, int], LineString]  # every lattice edge, kept or not


def node_index(i: int, j: int) -> int:
    """Flat index of lattice node (i, j)."""
    return j * N_LINES + i


def _road_class(vertical: bool, line: int, k: int) -> str:
    """Class of the edge on lattice ``line`` between positions ``k`` and ``k+1``."""
    if line in RING and RING[0] <= k < RING[1]:
        return "expressway"
    if line % 4 == 0 or line in RING:
        return "arterial"
    if line % 2 == 0:
        return "collector"
    return "local"


def build_street_grid(rng: np.random.Generator) -> StreetGrid:
    """Jittered lattice, its road segments and its blocks (see module docstring)."""
    base = np.linspace(-HALF_SIZE_M, HALF_SIZE_M, N_LINES)
    gx, gy = np.meshgrid(base, base, indexing="ij")
    jx = np.clip(rng.normal(0.0, 70.0, gx.shape), -180.0, 180.0)
    jy = np.clip(rng.normal(0.0, 70.0, gy.shape), -180.0, 180.0)
    jx[0, :] = jx[-1, :] = 0.0  # west/east edge nodes stay on the edge
    jy[:, 0] = jy[:, -1] = 0.0  # south/north edge nodes too
    nx, ny = local_to_projected(gx + jx, gy + jy)

    stems = list(NAME_STEMS)
    order = rng.permutation(len(stems))
    line_stem = {("v", i): stems[order[i]] for i in range(N_LINES)}
    line_stem.update({("h", j): stems[order[N_LINES + j]] for j in range(N_LINES)})

    records: list[dict[str, object]] = []
    edges: dict[tuple[int, int, int, int], LineString] = {}
    for vertical in (True, False):
        for line in range(N_LINES):
            for k in range(N_LINES - 1):
                (i0, j0), (i1, j1) = ((line, k), (line, k + 1)) if vertical else ((k, line), (k + 1, line))
                cls = _road_class(vertical, line, k)
                p0 = (float(nx[i0, j0]), float(ny[i0, j0]))
                p1 = (float(nx[i1, j1]), float(ny[i1, j1]))
                on_edge = line in (0, N_LINES - 1)
                bend = 0.0 if cls in ("expressway", "arterial") or on_edge else float(
                    np.clip(rng.normal(0.0, 12.0), -30.0, 30.0)
                )
                keep_draw = rng.random()
                lanes_lo, lanes_hi = _LANES[cls]
                lanes = int(rng.choice(np.arange(lanes_lo, lanes_hi + 1, 2)))
                if bend:
                    mx, my = (p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2
                    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
                    norm = float(np.hypot(dx, dy))
                    coords = [p0, (mx - dy / norm * bend, my + dx / norm * bend), p1]
                else:
                    coords = [p0, p1]
                geom = LineString(coords)
                edges[(i0, j0, i1, j1)] = geom
                if cls == "local" and not on_edge and keep_draw < 0.15:
                    continue
                stem_en, stem_zh = line_stem[("v" if vertical else "h", line)]
                if cls == "expressway":
                    name, name_zh = "Lanshan Ring Expressway", "蓝山绕城快速路"
                else:
                    suf_en, suf_zh = _SUFFIX[cls]
                    name, name_zh = f"{stem_en} {suf_en}", f"{stem_zh}{suf_zh}"
                records.append(
                    {
                        "road_class": cls,
                        "name": name,
                        "name_zh": name_zh,
                        "lanes": lanes,
                        "start_node": node_index(i0, j0),
                        "end_node": node_index(i1, j1),
                        "geometry": geom,
                    }
                )
    roads = gpd.GeoDataFrame(records, geometry="geometry", crs=PROJECTED_CRS)
    roads.insert(0, "road_id", [f"RD-{n:04d}" for n in range(1, len(roads) + 1)])

    blocks = []
    for j in range(N_LINES - 1):
        for i in range(N_LINES - 1):
            south = list(edges[(i, j, i + 1, j)].coords)
            east = list(edges[(i + 1, j, i + 1, j + 1)].coords)
            north = list(edges[(i, j + 1, i + 1, j + 1)].coords)[::-1]
            west = list(edges[(i, j, i, j + 1)].coords)[::-1]
            ring = south + east[1:] + north[1:] + west[1:]
            blocks.append({"block": j * (N_LINES - 1) + i, "i": i, "j": j, "geometry": Polygon(ring)})
    block_frame = gpd.GeoDataFrame(blocks, geometry="geometry", crs=PROJECTED_CRS)
    return StreetGrid(node_x=nx, node_y=ny, roads=roads, blocks=block_frame, all_edges=edges)


def _neighbours(i: int, j: int) -> list[tuple[int, int]]:
    n = N_LINES - 1
    return [(a, b) for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)) if 0 <= a < n and 0 <= b < n]


def build_districts(grid: StreetGrid, rng: np.random.Generator) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """District polygons (EPSG:4545) and the district index of every block.

    ``population`` is left for :func:`geoplatform.samples.city.build_sample_city`
    to fill from the population grid.
    """
    n = N_LINES - 1
    seeds = np.array([s[3] for s in DISTRICT_SEEDS]) * 1000.0
    seeds = seeds + rng.normal(0.0, 400.0, seeds.shape)
    sx, sy = local_to_projected(seeds[:, 0], seeds[:, 1])
    cent = shapely.centroid(grid.blocks.geometry.to_numpy())
    cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    dist = np.hypot(cx[:, None] - sx[None, :], cy[:, None] - sy[None, :])
    dist[:, 0] *= 1.15  # keep the old town compact
    owner = dist.argmin(axis=1).reshape(n, n).T  # owner[i, j]

    for _ in range(20):  # hand detached blocks to a neighbour until all connected
        changed = False
        for d in range(len(DISTRICT_SEEDS)):
            cells = {(int(i), int(j)) for i, j in zip(*np.nonzero(owner == d), strict=True)}
            if not cells:
                continue
            parts: list[set[tuple[int, int]]] = []
            todo = set(cells)
            while todo:
                stack = [todo.pop()]
                part = set(stack)
                while stack:
                    c = stack.pop()
                    for nb in _neighbours(*c):
                        if nb in todo:
                            todo.remove(nb)
                            part.add(nb)
                            stack.append(nb)
                parts.append(part)
            parts.sort(key=len, reverse=True)
            for part in parts[1:]:
                for i, j in sorted(part):
                    others = [owner[a, b] for a, b in _neighbours(i, j) if owner[a, b] != d]
                    if others:
                        owner[i, j] = int(np.bincount(others).argmax())
                        changed = True
        if not changed:
            break

    block_owner = np.array([owner[i, j] for i, j in zip(grid.blocks["i"], grid.blocks["j"], strict=True)])
    rows = []
    for d, (code, name, name_zh, _) in enumerate(DISTRICT_SEEDS):
        geom = shapely.union_all(grid.blocks.geometry.to_numpy()[block_owner == d])
        geom = shapely.make_valid(shapely.normalize(geom))
        rows.append({"district_code": code, "name": name, "name_zh": name_zh, "geometry": geom})
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=PROJECTED_CRS)
    return frame, block_owner
