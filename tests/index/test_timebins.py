"""Properties of TimeBinning, with Python's datetime as the independent calendar."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoplatform.errors import InvalidParameterValue
from geoplatform.index import TimeBinning

EPOCH = datetime(1970, 1, 1)
UNITS = ["year", "month", "week", "day", "hour"]
# Years 1..9999, the span Python's datetime can check us against.
MIN_US = int((datetime(1, 1, 1) - EPOCH) / timedelta(microseconds=1))
MAX_US = int((datetime(9999, 12, 24) - EPOCH) / timedelta(microseconds=1))
times_us = st.integers(MIN_US, MAX_US)


def us(text: str) -> int:
    return int(np.datetime64(text, "us").astype(np.int64))


def to_datetime(t: int) -> datetime:
    return EPOCH + timedelta(microseconds=t)


def python_label(unit: str, t: int) -> str:
    d = to_datetime(t)
    if unit == "year":
        return f"{d.year:04d}"
    if unit == "month":
        return f"{d.year:04d}-{d.month:02d}"
    if unit == "week":
        iso = d.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    if unit == "day":
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}"


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(UNITS), st.lists(times_us, min_size=1, max_size=20))
def test_each_time_lies_in_its_bin_and_label_matches_python(unit: str, ts: list) -> None:
    binning = TimeBinning(unit)  # type: ignore[arg-type]
    ids = binning.bin_ids(np.array(ts, dtype=np.int64))
    assert ids.dtype == np.int64
    for t, bin_id in zip(ts, ids.tolist()):
        start, end = binning.bin_bounds(bin_id)
        assert start <= t < end
        assert binning.bin_label(bin_id) == python_label(unit, t)
        assert binning.parse_label(binning.bin_label(bin_id)) == bin_id


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(UNITS), times_us)
def test_bins_tile_time_and_start_on_calendar_boundaries(unit: str, t: int) -> None:
    binning = TimeBinning(unit)  # type: ignore[arg-type]
    bin_id = int(binning.bin_ids(np.int64(t)))
    start, end = binning.bin_bounds(bin_id)
    assert binning.bin_bounds(bin_id + 1)[0] == end  # no gap, no overlap
    assert binning.bin_bounds(bin_id - 1)[1] == start
    assert binning.bin_ids(np.array([start - 1, start, end - 1, end])).tolist() == [
        bin_id - 1,
        bin_id,
        bin_id,
        bin_id + 1,
    ]
    d = to_datetime(start)
    assert (d.minute, d.second, d.microsecond) == (0, 0, 0)
    if unit != "hour":
        assert d.hour == 0
    if unit == "week":
        assert d.weekday() == 0  # Monday
    if unit in ("month", "year"):
        assert d.day == 1
    if unit == "year":
        assert d.month == 1


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(UNITS),
    st.lists(times_us, min_size=1, max_size=15),
    st.tuples(times_us, times_us),
    st.sampled_from(["closed", "open_start", "open_end", "open"]),
)
def test_bins_for_interval_returns_exactly_overlapping_bins(
    unit: str, sample: list, ends: tuple, kind: str
) -> None:
    binning = TimeBinning(unit)  # type: ignore[arg-type]
    known = binning.bin_ids(np.array(sample, dtype=np.int64))
    known = np.concatenate([known, known + 1, known - 1])
    start, end = sorted(ends)
    start_arg = None if kind in ("open_start", "open") else start
    end_arg = None if kind in ("open_end", "open") else end
    got = binning.bins_for_interval(start_arg, end_arg, known)
    # A bin overlaps [start, end] iff it lies between the bins of the two ends.
    lo = -(2**62) if start_arg is None else int(binning.bin_ids(np.int64(start)))
    hi = 2**62 if end_arg is None else int(binning.bin_ids(np.int64(end)))
    expected = [b for b in known.tolist() if lo <= b <= hi]
    assert got.tolist() == expected
    # ... and the same by explicit bounds.
    for b in known.tolist():
        s, e = binning.bin_bounds(b)
        overlaps = (end_arg is None or s <= end) and (start_arg is None or e > start)
        assert overlaps == (b in got.tolist())


def test_labels_and_ids_of_known_dates() -> None:
    cases = {
        "year": [("2024-07-01", 54, "2024"), ("1969-12-31T23:59:59.999999", -1, "1969")],
        "month": [("2024-03-05", 650, "2024-03"), ("1969-12-31T23", -1, "1969-12")],
        "day": [("2024-03-05T07", 19787, "2024-03-05"), ("1969-12-31T12", -1, "1969-12-31")],
        "hour": [
            ("2024-03-05T07:59", 19787 * 24 + 7, "2024-03-05T07"),
            ("1969-12-31T23:30", -1, "1969-12-31T23"),
        ],
        "week": [("1970-01-01", 0, "1970-W01"), ("1969-12-28T23", -1, "1969-W52")],
    }
    for unit, rows in cases.items():
        binning = TimeBinning(unit)  # type: ignore[arg-type]
        for text, expected_id, label in rows:
            assert int(binning.bin_ids(np.datetime64(text, "us"))) == expected_id, (unit, text)
            assert binning.bin_label(expected_id) == label


def test_week_zero_starts_on_the_monday_before_the_epoch() -> None:
    assert TimeBinning("week").bin_bounds(0) == (us("1969-12-29"), us("1970-01-05"))


@pytest.mark.parametrize(
    "day, label",
    [
        ("2020-12-31", "2020-W53"),
        ("2021-01-03", "2020-W53"),
        ("2021-01-04", "2021-W01"),
        ("2015-12-31", "2015-W53"),
        ("2016-01-01", "2015-W53"),
        ("2026-12-31", "2026-W53"),
        ("2024-12-30", "2025-W01"),  # a Monday in December in ISO week 1
        ("2024-02-29", "2024-W09"),
        ("2008-12-29", "2009-W01"),
    ],
)
def test_iso_week_labels(day: str, label: str) -> None:
    weeks = TimeBinning("week")
    bin_id = int(weeks.bin_ids(np.datetime64(day, "us")))
    assert weeks.bin_label(bin_id) == label
    assert weeks.parse_label(label) == bin_id


@pytest.mark.parametrize(
    "month, days",
    [("2024-02", 29), ("2023-02", 28), ("2000-02", 29), ("2100-02", 28), ("1900-02", 28),
     ("1964-02", 29)],
)
def test_leap_years(month: str, days: int) -> None:
    months = TimeBinning("month")
    bin_id = int(months.bin_ids(np.datetime64(month, "us")))
    start, end = months.bin_bounds(bin_id)
    assert (end - start) == days * 86_400_000_000
    year_days = 366 if days == 29 else 365
    years = TimeBinning("year")
    s, e = years.bin_bounds(int(years.bin_ids(np.datetime64(month, "us"))))
    assert e - s == year_days * 86_400_000_000


def test_input_kinds_agree() -> None:
    days = TimeBinning("day")
    text = np.array(["1950-06-01T10:00", "2024-03-05T07:00", "1969-12-31T23:59:59"])
    expected = days.bin_ids(text.astype("datetime64[us]"))
    assert np.array_equal(days.bin_ids(text.astype("datetime64[ns]")), expected)
    assert np.array_equal(days.bin_ids(text.astype("datetime64[s]")), expected)
    ints = text.astype("datetime64[us]").astype(np.int64)
    assert np.array_equal(days.bin_ids(ints), expected)
    aware = datetime(2024, 3, 5, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert days.bins_for_interval(aware, aware, [19787, 19788]).tolist() == [19788]


def test_none_unit() -> None:
    none = TimeBinning("none")
    times = np.array([us("1600-01-01"), 0, us("2400-01-01")], dtype=np.int64)
    assert none.bin_ids(times).tolist() == [0, 0, 0]
    assert none.bin_label(0) == "all"
    start, end = none.bin_bounds(0)
    assert start <= int(times.min()) and int(times.max()) < end
    assert none.bins_for_interval(None, 5, [0]).tolist() == [0]
    assert none.parse_label("all") == 0
    with pytest.raises(InvalidParameterValue):
        none.bin_label(1)


def test_bad_input() -> None:
    with pytest.raises(InvalidParameterValue, match="unit"):
        TimeBinning("minute")  # type: ignore[arg-type]
    days = TimeBinning("day")
    with pytest.raises(InvalidParameterValue, match="NaT"):
        days.bin_ids(np.array(["2024-01-01", "NaT"], dtype="datetime64[us]"))
    with pytest.raises(InvalidParameterValue):
        days.bin_ids(np.array([1.5]))
    with pytest.raises(InvalidParameterValue, match="after"):
        days.bins_for_interval(10, 5, [0])
    with pytest.raises(InvalidParameterValue):
        days.bin_bounds(10**15)
    with pytest.raises(InvalidParameterValue):
        days.bin_bounds(1.0)  # type: ignore[arg-type]
    for label in ["2024-3-05", "2024-03-05T07", "20240305", "x"]:
        with pytest.raises(InvalidParameterValue):
            days.parse_label(label)
    weeks = TimeBinning("week")
    for label in ["2024-W54", "2024-W53", "2024-W00", "2024-W1"]:  # 2024 has 52 ISO weeks
        with pytest.raises(InvalidParameterValue):
            weeks.parse_label(label)


def test_extreme_times_stay_representable() -> None:
    for unit in UNITS:
        binning = TimeBinning(unit)  # type: ignore[arg-type]
        low, high = binning.id_range
        s, e = binning.bin_bounds(low)
        assert np.iinfo(np.int64).min < s < e
        s, e = binning.bin_bounds(high)
        assert s < e <= np.iinfo(np.int64).max
        with pytest.raises(InvalidParameterValue):
            binning.bin_ids(np.array([np.iinfo(np.int64).max], dtype=np.int64))
