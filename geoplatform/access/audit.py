"""The audit log: every write, and every read of restricted data, with who, what and when.

One JSON object per line, appended and flushed as each request ends (an
``fsync`` each time would cost a disk flush per read)::

    {"at": "2026-12-07T01:02:03.456789Z", "who": "li.wei", "via": "api-key",
     "roles": {"water": "editor"}, "action": "write", "method": "PUT",
     "path": "/collections/water-mains/items/W-1", "collection": "water-mains",
     "dataset": "water_mains", "open_level": "shared", "status": 200}
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from geoplatform.access.policy import Principal


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._f = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open for the server's life

    def record(self, who: Principal, action: str, **what: Any) -> None:
        entry = {"at": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                 "who": who.name, "via": who.via, "roles": dict(who.roles), "action": action, **what}
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            self._f.write(line)

    def close(self) -> None:
        self._f.close()


def read_audit(path: Path) -> list[dict[str, Any]]:
    """The entries of an audit log, oldest first."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
