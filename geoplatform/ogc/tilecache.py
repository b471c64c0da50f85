"""An in-process LRU of encoded tiles that stays valid across commits.

A tile is cached under its request (collections, tile matrix set, tile,
datetime, filter, as-of) together with the snapshot of each dataset it was
made from. When a later request sees other snapshots, the tile is still good
if nothing those snapshots wrote or ended meets the tile's query box: the
backend says where (``StorageBackend.changed_bounds``), one question per
(dataset, old, new), asked once and remembered. So a commit that edits one
feature retires only the tiles over it; every other tile is served again and
moves on to the new snapshot.

>>> cache = TileCache(max_bytes=1 << 20)
>>> key = ("roads", "WebMercatorQuad", "14", 1, 2)
>>> cache.put(key, CachedTile(b"x", '"e"', {}, (("roads", 5),), ((0.0, 0.0, 1.0, 1.0),)))
>>> cache.get(key, (("roads", 6),), lambda name, a, b: np.array([[5.0, 5.0, 6.0, 6.0]])).body
b'x'
>>> cache.hits, cache.revalidated
(1, 1)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

import numpy as np

Bounds = tuple[float, float, float, float]
#: ``changed(dataset, since, until)``: boxes (n, 4) that changed, or None for "anything".
ChangedBounds = Callable[[str, int, int], "np.ndarray | None"]
_MEMO_SIZE = 1024


@dataclass(frozen=True)
class CachedTile:
    body: bytes
    etag: str
    headers: dict[str, str]
    snapshots: tuple[tuple[str, int], ...]  # (dataset, snapshot) per layer of the tile
    boxes: tuple[Bounds, ...]  # per layer: the box its query read, in the dataset's storage CRS

    @property
    def size(self) -> int:
        return len(self.body) + 256


def _meets(boxes: np.ndarray, box: Bounds) -> bool:
    if not len(boxes):
        return False
    return bool(((boxes[:, 2] >= box[0]) & (boxes[:, 0] <= box[2]) &
                 (boxes[:, 3] >= box[1]) & (boxes[:, 1] <= box[3])).any())


class TileCache:
    """Tiles by request, bounded in bytes, least recently used out first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = self.revalidated = self.invalidated = 0
        self._tiles: OrderedDict[Hashable, CachedTile] = OrderedDict()
        self._changed: OrderedDict[tuple[str, int, int], np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tiles)

    def _changed_between(self, changed: ChangedBounds, name: str, a: int, b: int) -> np.ndarray | None:
        key = (name, min(a, b), max(a, b))
        with self._lock:
            if key in self._changed:
                return self._changed[key]
        boxes = changed(name, key[1], key[2])
        with self._lock:
            self._changed[key] = boxes
            while len(self._changed) > _MEMO_SIZE:
                self._changed.popitem(last=False)
        return boxes

    def get(self, key: Hashable, snapshots: tuple[tuple[str, int], ...],
            changed: ChangedBounds) -> CachedTile | None:
        """The tile for ``key`` if it is still what ``snapshots`` would make."""
        with self._lock:
            tile = self._tiles.get(key)
        if tile is None:
            self.misses += 1
            return None
        if tile.snapshots != snapshots:
            for (name, old), (_, new), box in zip(tile.snapshots, snapshots, tile.boxes):
                if old == new:
                    continue
                boxes = self._changed_between(changed, name, old, new)
                if boxes is None or _meets(boxes, box):
                    with self._lock:
                        if self._tiles.get(key) is tile:
                            del self._tiles[key]
                            self.bytes -= tile.size
                    self.invalidated += 1
                    self.misses += 1
                    return None
            tile = replace(tile, snapshots=snapshots)
            self.revalidated += 1
            with self._lock:
                if key in self._tiles:
                    self._tiles[key] = tile
        with self._lock:
            if key in self._tiles:
                self._tiles.move_to_end(key)
        self.hits += 1
        return tile

    def put(self, key: Hashable, tile: CachedTile) -> None:
        if tile.size > self.max_bytes:
            return
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self.bytes -= old.size
            self._tiles[key] = tile
            self.bytes += tile.size
            while self.bytes > self.max_bytes:
                _, gone = self._tiles.popitem(last=False)
                self.bytes -= gone.size
