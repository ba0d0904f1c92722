"""Conformance cases for dates and times: parts of dates and timestamps, ``xbar`` on dates,
floats, integers and times of day, and arithmetic between dates, timestamps and spans.

Expected results are kdb+'s: a date is a count of days from 2000.01.01 (2024.01.02 is day
8767), ``n xbar x`` is ``n * x div n``, a part (``.year``, ``.mm``, ``.dd``, ``.hh``, ``.ss``)
is an int, a date minus a date an int count of days, a timestamp minus a timestamp a timespan.
"""

from __future__ import annotations

import datetime as dt

from q_conformance.data import Case, D, Table, ts

SECONDS = Table({"s": "second", "x": "long"}, [(dt.time(9, 30, 5), 1), (dt.time(9, 31, 40), 2)])

CASES: list[Case] = [
    Case(
        "date-parts",
        "select y:date.year, m:date.mm, d:date.dd, mo:date.month from trade where size=300",
        ["y", "m", "d", "mo"],
        [(2024, 1, 2, dt.date(2024, 1, 1))],
    ),
    Case(
        "timestamp-parts",
        "select time.hh, time.ss, time.year, time.dd, time.month from trade where size=300",
        ["hh", "ss", "year", "dd", "month"],
        [(9, 0, 2024, 2, dt.date(2024, 1, 1))],
    ),
    Case(
        "xbar-date",  # day 8767 in bars of 2 days: day 8766, 2024.01.01
        "select n:count i by 2 xbar date from trade",
        ["date", "n"],
        [(dt.date(2024, 1, 1), 5)],
    ),
    Case(
        "xbar-float-by-float",
        "select b:2.5 xbar price from trade where sym=`a",
        ["b"],
        [(10.0,), (10.0,), (10.0,)],
    ),
    Case(
        "xbar-float-by-long",
        "select b:3 xbar price from trade where sym=`a",
        ["b"],
        [(9.0,), (9.0,), (12.0,)],
    ),
    Case(
        "xbar-long",
        "select b:150 xbar size from trade",
        ["b"],
        [(0,), (150,), (300,), (0,), (150,)],
    ),
    Case(
        "xbar-second-of-a-timestamp",  # 34200 34260 34320 34560 34620 s in bars of 90 s
        "select n:count i by 90 xbar time.second from trade",
        ["second", "n"],
        [(dt.time(9, 30), 2), (dt.time(9, 31, 30), 1), (dt.time(9, 36), 2)],
    ),
    Case(
        "xbar-second-column",  # 34205 and 34300 s in bars of 7 s: 34202 and 34300
        "select b:7 xbar s from t",
        ["b"],
        [(dt.time(9, 30, 2),), (dt.time(9, 31, 40),)],
        {"t": SECONDS},
    ),
    Case(
        "timestamp-minus-timestamp",
        "select d:time-2024.01.02D09:30:00 from trade where size=300",
        ["d"],
        [(dt.timedelta(minutes=2),)],
    ),
    Case(
        "timestamp-minus-span",
        "select t:time-0D00:00:30 from trade where size=300",
        ["t"],
        [(ts("09:31:30"),)],
    ),
    Case(
        "date-plus-days",
        "select d:date+1, e:date-2 from trade where size=300",
        ["d", "e"],
        [(D + dt.timedelta(days=1), D - dt.timedelta(days=2))],
    ),
    Case(
        "date-minus-date",
        "select d:date-2023.12.25 from trade where size=300",
        ["d"],
        [(8,)],
    ),
]
