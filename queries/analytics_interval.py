"""Interval strings (``"1m"``, ``"5s"``, ``"500ms"``, ``"0D00:05:00"``) parsed in one place.

Every analytics function takes its bar sizes and horizons through :func:`parse_interval`, so
``"1m"`` means one minute everywhere (as in q, where ``m`` is minutes; ``ms`` is milliseconds).
Intervals are carried as int64 nanoseconds, the resolution of ``time`` columns: DuckDB's
INTERVAL type stops at microseconds, so generated SQL uses nanosecond integers instead.
"""

from __future__ import annotations

import re
from datetime import timedelta

NS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
NS_PER_DAY = NS_PER_UNIT["d"]

# Units largest first, so formatting picks the coarsest exact unit ("60s" -> "1m").
_FORMAT_UNITS = ("d", "h", "m", "s", "ms", "us", "ns")
_COMPACT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zµ]+)\s*$", re.IGNORECASE)
# q timespan literal 0D00:05:00.000000000, and plain HH:MM[:SS[.fff]] as q's minute/second.
_TIMESPAN = re.compile(r"^\s*(-)?(?:(\d+)D)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*$")

IntervalLike = str | int | timedelta


def parse_interval(value: IntervalLike) -> int:
    """Return ``value`` as a signed number of nanoseconds.

    Accepts compact strings (``"500ms"``, ``"1m"``, ``"1.5s"``), q timespans
    (``"0D00:01:00"``, ``"00:01"``), :class:`datetime.timedelta` and ints (nanoseconds).
    """
    if isinstance(value, bool):  # bool is an int subclass; True is not an interval
        raise ValueError(f"not an interval: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, timedelta):
        # timedelta is exact in microseconds; avoid float seconds.
        return ((value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds) * 1_000
    if not isinstance(value, str):
        raise ValueError(f"not an interval: {value!r}")
    compact = _COMPACT.match(value)
    if compact:
        number, unit = compact.group(1), compact.group(2).lower()
        if unit not in NS_PER_UNIT:
            known = ", ".join(NS_PER_UNIT)
            raise ValueError(f"interval {value!r}: unknown unit {unit!r} (known: {known})")
        whole, _, frac = number.partition(".")
        scale = NS_PER_UNIT[unit]
        ns = abs(int(whole)) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
        return -ns if whole.startswith("-") else ns
    span = _TIMESPAN.match(value)
    if span:
        sign, days, hours, minutes, seconds, frac = span.groups()
        ns = (
            int(days or 0) * NS_PER_DAY
            + int(hours) * NS_PER_UNIT["h"]
            + int(minutes) * NS_PER_UNIT["m"]
            + int(seconds or 0) * NS_PER_UNIT["s"]
            + int((frac or "").ljust(9, "0") or 0)
        )
        return -ns if sign else ns
    raise ValueError(
        f"not an interval: {value!r} (use e.g. '500ms', '5s', '1m', '1h', '1d' or '0D00:01:00')"
    )


def parse_bar_size(value: IntervalLike) -> int:
    """An interval usable as a time bar: positive and at most one day (bars restart at midnight)."""
    ns = parse_interval(value)
    if not 0 < ns <= NS_PER_DAY:
        raise ValueError(f"bar size {value!r} must be positive and at most one day")
    return ns


def format_interval(ns: int) -> str:
    """Shortest exact compact form, used to name columns (``mid_1s``, ``markout_500ms_bps``)."""
    if ns == 0:
        return "0s"
    for unit in _FORMAT_UNITS:
        scale = NS_PER_UNIT[unit]
        if ns % scale == 0:
            text = f"{abs(ns) // scale}{unit}"
            return f"neg{text}" if ns < 0 else text
    raise AssertionError("unreachable: every int is a whole number of ns")
