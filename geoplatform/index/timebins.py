"""Calendar time bins over epoch-microsecond (UTC) timestamps.

A bin id is the number of whole units since the Unix epoch, floored, so ids
are plain int64 that sort in time order and are negative before 1970:
year 2024 is bin 54, month 2024-03 is bin 650. Weeks are ISO weeks (Monday
00:00 UTC to the next Monday); week 0 starts Monday 1969-12-29, the Monday
before the epoch. The unit ``"none"`` puts everything in bin 0.

Calendar units go through numpy's datetime64 casting (which floors and knows
leap years), fixed units through integer floor division; neither loops in
Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from geoplatform.errors import InvalidParameterValue
from geoplatform.index import _grid

__all__ = ["TimeBinning", "TimeUnit"]

TimeUnit = Literal["none", "year", "month", "week", "day", "hour"]

_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
# 1970-01-01 was a Thursday, so the Monday that starts week 0 is day -3.
_WEEK_OFFSET_DAYS = 3
_INT64_MIN = int(np.iinfo(np.int64).min)
_INT64_MAX = int(np.iinfo(np.int64).max)
_CALENDAR = {"year": "Y", "month": "M"}
_WEEK_LABEL = re.compile(r"^(-?\d{4,})-W(\d{2})$")


def _raw_ids(unit: str, us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bin ids of int64 microsecond times, without range checks."""
    if unit == "none":
        return np.zeros(us.shape, dtype=np.int64)
    if unit == "hour":
        return us // _HOUR_US
    if unit == "day":
        return us // _DAY_US
    if unit == "week":
        return (us // _DAY_US + _WEEK_OFFSET_DAYS) // 7
    return us.view("datetime64[us]").astype(f"datetime64[{_CALENDAR[unit]}]").view(np.int64)


def _starts(unit: str, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Start (microseconds) of each bin; ids must already be in range."""
    if unit == "hour":
        return ids * _HOUR_US
    if unit == "day":
        return ids * _DAY_US
    if unit == "week":
        return (ids * 7 - _WEEK_OFFSET_DAYS) * _DAY_US
    return ids.astype(f"datetime64[{_CALENDAR[unit]}]").astype("datetime64[us]").view(np.int64)


@lru_cache(maxsize=None)
def _id_range(unit: str) -> tuple[int, int]:
    if unit == "none":
        return (0, 0)
    edges = _raw_ids(unit, np.array([_INT64_MIN + 1, _INT64_MAX], dtype=np.int64))
    return (int(edges[0]) + 1, int(edges[1]) - 1)


@dataclass(frozen=True)
class TimeBinning:
    """Time binning by a calendar ``unit`` (UTC).

    >>> weeks = TimeBinning("week")
    >>> ids = weeks.bin_ids(np.array(["2024-03-03T23:59", "2024-03-04"], dtype="datetime64[us]"))
    >>> [weeks.bin_label(i) for i in ids]
    ['2024-W09', '2024-W10']
    >>> TimeBinning("month").bin_label(650)
    '2024-03'
    """

    unit: TimeUnit

    def __post_init__(self) -> None:
        if self.unit not in get_args(TimeUnit):
            raise InvalidParameterValue(
                f"time bin unit must be one of {list(get_args(TimeUnit))}, got {self.unit!r}"
            )

    @property
    def id_range(self) -> tuple[int, int]:
        """The smallest and largest valid bin id.

        Valid bins lie wholly inside the int64 microsecond range (about
        290,000 years either side of 1970); the two partial bins at its ends
        are excluded so that :meth:`bin_bounds` never overflows.
        """
        return _id_range(self.unit)

    def bin_ids(self, times: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Bin id of each time (datetime64, or int64 epoch microseconds).

        >>> TimeBinning("day").bin_ids(np.array([-1, 0], dtype=np.int64)).tolist()
        [-1, 0]
        """
        us = _grid.as_microseconds(times, "times")
        ids = _raw_ids(self.unit, us)
        if ids.size and self.unit != "none":
            self._check_ids(ids, "times", "lie beyond the representable bins")
        return ids

    def bin_bounds(self, bin_id: int) -> tuple[int, int]:
        """Half-open ``[start, end)`` of a bin in epoch microseconds.

        For ``"none"`` the single bin 0 is ``(-2**63, 2**63)``, which holds
        every int64 time.

        >>> TimeBinning("year").bin_bounds(0)
        (0, 31536000000000)
        """
        ids = self._id_array(bin_id)
        if ids.ndim != 0:
            raise InvalidParameterValue(f"bin_id must be one integer, got {bin_id!r}")
        if self.unit == "none":
            return (_INT64_MIN, _INT64_MAX + 1)
        start = int(_starts(self.unit, ids.reshape(1))[0])
        end = int(_starts(self.unit, ids.reshape(1) + 1)[0])
        return (start, end)

    def bin_label(self, bin_id: int) -> str:
        """Human label of a bin: ``"2024"``, ``"2024-03"``, ``"2024-W09"``,
        ``"2024-03-05"``, ``"2024-03-05T07"``, or ``"all"`` for ``"none"``."""
        ids = self._id_array(bin_id)
        if ids.ndim != 0:
            raise InvalidParameterValue(f"bin_id must be one integer, got {bin_id!r}")
        i = int(ids)
        if self.unit == "none":
            return "all"
        if self.unit == "week":
            # The ISO year of a week is the year of its Thursday, which is
            # day 7 * id since Monday is 7 * id - 3.
            thursday = np.datetime64(7 * i, "D")
            iso_year = thursday.astype("datetime64[Y]")
            week = (thursday - iso_year.astype("datetime64[D]")).astype(np.int64) // 7 + 1
            return f"{np.datetime_as_string(iso_year)}-W{int(week):02d}"
        unit = {"year": "Y", "month": "M", "day": "D", "hour": "h"}[self.unit]
        return str(np.datetime_as_string(np.datetime64(i, unit)))

    def parse_label(self, label: str) -> int:
        """The bin id of a label made by :meth:`bin_label` (its inverse).

        >>> TimeBinning("week").parse_label("2020-W53")
        2661
        """
        if self.unit == "none":
            if label != "all":
                raise InvalidParameterValue(f"time bin label must be 'all', got {label!r}")
            return 0
        try:
            if self.unit == "week":
                match = _WEEK_LABEL.match(label)
                if match is None:
                    raise ValueError(label)
                # 4 January is always in ISO week 1 of its year.
                jan4 = np.datetime64(f"{match.group(1)}-01-04", "D").astype(np.int64)
                bin_id = int((jan4 + _WEEK_OFFSET_DAYS) // 7) + int(match.group(2)) - 1
            else:
                unit = {"year": "Y", "month": "M", "day": "D", "hour": "h"}[self.unit]
                bin_id = int(np.datetime64(label, unit).astype(np.int64))
        except ValueError as exc:
            raise InvalidParameterValue(
                f"{label!r} is not a {self.unit} time bin label"
            ) from exc
        # Round-tripping rejects "2024-W54", "2024-3" and other near misses.
        if self.bin_label(bin_id) != label:
            raise InvalidParameterValue(f"{label!r} is not a {self.unit} time bin label")
        return bin_id

    def bins_for_interval(
        self, start_us: Any | None, end_us: Any | None, known_bins: npt.ArrayLike
    ) -> npt.NDArray[np.int64]:
        """The ids in ``known_bins`` whose bins overlap the closed interval
        ``[start_us, end_us]`` (either end ``None`` for unbounded), in the
        order given. Ends may also be datetime64 or datetime.

        >>> TimeBinning("year").bins_for_interval(0, 0, [-1, 0, 1]).tolist()
        [0]
        """
        known = self._id_array(known_bins).reshape(-1)
        start = None if start_us is None else int(_grid.as_microseconds(start_us, "start"))
        end = None if end_us is None else int(_grid.as_microseconds(end_us, "end"))
        if start is not None and end is not None and start > end:
            raise InvalidParameterValue(
                f"interval start {start_us!r} is after its end {end_us!r}"
            )
        if self.unit == "none" or known.size == 0:
            return known.copy()
        keep = np.ones(known.shape, dtype=bool)
        # A bin [s, e) meets [start, end] when s <= end and e > start.
        if end is not None:
            keep &= _starts(self.unit, known) <= end
        if start is not None:
            keep &= _starts(self.unit, known + 1) > start
        return known[keep]

    def _id_array(self, ids: Any) -> npt.NDArray[np.int64]:
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu":
            raise InvalidParameterValue(f"bin ids must be integers, got {ids!r}")
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
            raise InvalidParameterValue("bin ids beyond int64")
        out = arr.astype(np.int64)
        if out.size:
            self._check_ids(out, "bin ids", "are out of range")
        return out

    def _check_ids(self, ids: npt.NDArray[np.int64], what: str, problem: str) -> None:
        low, high = self.id_range
        if int(ids.min()) < low or int(ids.max()) > high:
            raise InvalidParameterValue(
                f"{what} {problem} for unit {self.unit!r} (valid ids {low}..{high})"
            )
