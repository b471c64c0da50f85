"""Child process of ``test_crash``: ingest one file into a store and report
each phase on stdout, until the parent kills it.

Usage: ``python _crash_child.py STORE SOURCE SETTINGS_JSON``. Prints
``ready`` once imported and the store is open, waits for a line on stdin,
then prints ``<phase> <seconds since that line>`` as it goes: ``go``,
``read``, ``normalise``, ``write``, ``file`` (one per data file),
``written``, ``commit``, ``committed``, ``done``; then one JSON line with
the snapshot id.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any


def main() -> None:
    store, source, settings_json = sys.argv[1:4]
    import geoplatform.ingest.pipeline as pipeline
    from geoplatform.cube.cube import open_cube
    from geoplatform.settings import Settings
    from geoplatform.storage.geoparquet import GeoParquetBackend

    cube = open_cube(store, settings=Settings(**json.loads(settings_json)), backend="geoparquet")
    started = [0.0]

    def mark(label: str) -> None:
        sys.stdout.write(f"{label} {time.perf_counter() - started[0]:.6f}\n")
        sys.stdout.flush()

    def wrap(owner: Any, name: str, before: str | None, after: str) -> None:
        real: Callable[..., Any] = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before:
                mark(before)
            out = real(*args, **kwargs)
            mark(after)
            return out

        setattr(owner, name, wrapped)

    wrap(pipeline, "read_source", "read", "normalise")
    wrap(GeoParquetBackend, "_write_files", "write", "written")
    wrap(GeoParquetBackend, "_write_one", None, "file")
    wrap(GeoParquetBackend, "_commit", "commit", "committed")
    print("ready", flush=True)
    sys.stdin.readline()
    started[0] = time.perf_counter()
    mark("go")
    report = cube.ingest("pts", source)
    mark("done")
    print(json.dumps({"snapshot": report.snapshot_id}), flush=True)


if __name__ == "__main__":
    main()
