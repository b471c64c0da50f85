"""Valid-time values: parsing query intervals, and the microsecond integers
that storage compares.

Stored times are ``timestamp[us, UTC]``; an open end is stored as null and
compared as the smallest or largest int64.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

import numpy as np

from geoplatform.cube.model import TimeInterval
from geoplatform.errors import InvalidParameterValue

MIN_US = np.iinfo(np.int64).min
MAX_US = np.iinfo(np.int64).max
_OPEN = {"", ".."}


def parse_instant(value: Any, *, end_of_day: bool = False) -> datetime:
    """One instant as an aware UTC datetime.

    Accepts aware datetimes, RFC 3339 strings (``Z`` or an offset) and dates
    (a date stands for its first instant, or its last with ``end_of_day``).
    Naive times are refused: the caller decides their zone.

    >>> parse_instant("2025-03-01T08:00:00+08:00").isoformat()
    '2025-03-01T00:00:00+00:00'
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time.max if end_of_day else time.min, tzinfo=timezone.utc)
    elif isinstance(value, np.datetime64):
        dt = datetime.fromtimestamp(value.astype("datetime64[us]").astype(np.int64) / 1e6, timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            try:
                return parse_instant(date.fromisoformat(text), end_of_day=end_of_day)
            except ValueError:
                pass
        try:
            dt = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterValue(
                f"{value!r} is not an RFC 3339 date-time (e.g. 2025-03-01T08:00:00Z)"
            ) from None
    else:
        raise InvalidParameterValue(f"{value!r} is not a date-time")
    if dt.tzinfo is None:
        raise InvalidParameterValue(f"date-time {value!r} has no time zone (add Z or an offset)")
    return dt.astimezone(timezone.utc)


def parse_interval(value: Any) -> TimeInterval | None:
    """A query's ``datetime``: an instant, ``start/end`` with ``..`` open ends,
    or a ``(start, end)`` pair; ``None`` means no time filter.

    >>> parse_interval("2025-01-01T00:00:00Z/..").end is None
    True
    """
    if value is None:
        return None
    if isinstance(value, TimeInterval):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InvalidParameterValue("a datetime interval has two ends")
        start = None if value[0] is None or value[0] in _OPEN else parse_instant(value[0])
        end = None if value[1] is None or value[1] in _OPEN else parse_instant(value[1], end_of_day=True)
        return TimeInterval(start, end)
    if isinstance(value, str) and "/" in value:
        parts = value.split("/")
        if len(parts) != 2:
            raise InvalidParameterValue(f"datetime {value!r} has more than one '/'")
        a, b = (p.strip() for p in parts)
        if a in _OPEN and b in _OPEN:
            raise InvalidParameterValue(f"datetime {value!r} is open at both ends")
        start = None if a in _OPEN else parse_instant(a)
        end = None if b in _OPEN else parse_instant(b, end_of_day=True)
        return TimeInterval(start, end)
    if isinstance(value, str) and len(value.strip()) == 10:
        # A bare date is the whole day.
        return TimeInterval(parse_instant(value), parse_instant(value, end_of_day=True))
    t = parse_instant(value)
    return TimeInterval(t, t)


def to_us(dt: datetime | None, default: int) -> int:
    """Microseconds since the epoch, or ``default`` for an open end."""
    if dt is None:
        return default
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def interval_us(interval: TimeInterval | None) -> tuple[int, int]:
    if interval is None:
        return MIN_US, MAX_US
    return to_us(interval.start, MIN_US), to_us(interval.end, MAX_US)


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + np.timedelta64(int(us), "us").item()
