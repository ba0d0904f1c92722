"""Shared inputs of the conformance table: the tick tables, helpers and the Case record.

Expected results are kdb+'s, worked out from its documented semantics (code.kx.com reference
pages; the page is named in ``source`` where the case is a documented example). Floats are
compared to 7 significant digits, as q prints them. Column names and order are part of
every expected result: by columns first, then the select columns named as q names them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from q_conformance.duck import Table

NAN = math.nan


def ts(clock: str, day: int = 2) -> dt.datetime:
    parts = [int(p) for p in clock.replace(".", ":").split(":")]
    hh, mm, ss = [*parts, 0, 0][:3]
    micros = parts[3] * 1000 if len(parts) > 3 else 0
    return dt.datetime(2024, 1, day, hh, mm, ss, micros)


D = dt.date(2024, 1, 2)
TRADE_COLS = {"time": "timestamp", "sym": "symbol", "price": "float", "size": "long"}
TRADE = Table(
    TRADE_COLS,
    [
        (ts("09:30"), "a", 10.0, 100),
        (ts("09:31"), "b", 20.0, 200),
        (ts("09:32"), "a", 11.0, 300),
        (ts("09:36"), "b", 19.0, 100),
        (ts("09:37"), "a", 12.0, 200),
    ],
)
QUOTE = Table(
    {
        "time": "timestamp",
        "sym": "symbol",
        "bid": "float",
        "ask": "float",
        "bsize": "long",
        "asize": "long",
    },
    [
        (ts("09:29"), "a", 9.5, 10.5, 10, 10),
        (ts("09:31:30"), "a", 10.5, 11.5, 10, 10),
        (ts("09:30:30"), "b", 19.5, 20.5, 10, 10),
        (ts("09:36:30"), "a", 11.5, 12.5, 10, 10),
    ],
)
TICKS = {"trade": TRADE, "quote": QUOTE}
T = [r for r in TRADE.rows]  # the trade rows, to spell expected rows
FULL = ["date", "time", "sym", "price", "size"]


def rows(*picks: int) -> list[tuple[Any, ...]]:
    """Trade rows (1-based) as select from trade returns them, date first."""
    return [(D, *T[i - 1]) for i in picks]


def floats(*xs: float | None) -> Table:
    return Table({"x": "float"}, [(x,) for x in xs])


def longs(*xs: int | None) -> Table:
    return Table({"x": "long"}, [(x,) for x in xs])


@dataclass(frozen=True)
class Case:
    id: str
    q: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    tables: Mapping[str, Table] = field(default_factory=lambda: TICKS)
    source: str = ""
