"""The conformance table: q queries, their input tables and the results kdb+ gives.

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
    hh, mm, ss = (parts + [0, 0])[:3]
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
    {"time": "timestamp", "sym": "symbol", "bid": "float", "ask": "float", "bsize": "long",
     "asize": "long"},
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


CASES: list[Case] = [
    # -- select, where, by -------------------------------------------------------------
    Case("select-all", "select from trade", FULL, rows(1, 2, 3, 4, 5)),
    Case("where-compare", "select from trade where price>11", FULL, rows(2, 4, 5)),
    Case("where-in-order", "select from trade where sym=`a, price>10", FULL, rows(3, 5)),
    Case("where-in", "select from trade where sym in `b`c", FULL, rows(2, 4)),
    Case("where-within", "select sym, price from trade where price within 11 19",
         ["sym", "price"], [("a", 11.0), ("b", 19.0), ("a", 12.0)]),
    Case("where-date-virtual", "select count i from trade where date=2024.01.02",
         ["x"], [(5,)]),
    Case("where-other-date", "select count i from trade where date=2024.01.03", ["x"], [(0,)]),
    Case("where-timestamp", "select from trade where time within "
         "2024.01.02D09:31:00.000 2024.01.02D09:36:00", FULL, rows(2, 3, 4)),
    Case("where-minute", "select from trade where time.minute within 09:31 09:36",
         FULL, rows(2, 3, 4)),
    Case("where-like", 'select from trade where sym like "b*"', FULL, rows(2, 4)),
    Case("where-not", "select from trade where not sym=`a", FULL, rows(2, 4)),
    Case("where-or", "select from trade where (price>19) | size=300", FULL, rows(2, 3)),
    Case("where-and-keyword", "select from trade where (sym=`a) and size>100", FULL, rows(3, 5)),
    Case("where-aggregate", "select from trade where price>avg price", FULL, rows(2, 4)),
    Case("where-fby", "select from trade where price=(max;price) fby sym", FULL, rows(2, 5),
         source="ref/fby"),
    Case("where-successive", "select from trade where sym=`a, price>avg price",
         FULL, rows(5), source="basics/qsql: subphrases are successive filters"),
    Case("by-max", "select max price by sym from trade", ["sym", "price"],
         [("a", 12.0), ("b", 20.0)]),
    Case("by-count-i", "select count i by sym from trade", ["sym", "x"], [("a", 3), ("b", 2)],
         source="basics/qsql: count i"),
    Case("by-first-last", "select first price, last price by sym from trade",
         ["sym", "price", "price1"], [("a", 10.0, 12.0), ("b", 20.0, 19.0)]),
    Case("by-wavg-name", "select size wavg price by sym from trade", ["sym", "price"],
         [("a", 6700 / 600), ("b", 5900 / 300)], source="ref/avg#wavg: column named price"),
    Case("by-xbar-minute", "select vwap:size wavg price by 5 xbar time.minute from trade",
         ["minute", "vwap"], [(dt.time(9, 30), 8300 / 600), (dt.time(9, 35), 4300 / 300)]),
    Case("by-xbar-timespan", "select n:count i by 0D00:05 xbar time from trade",
         ["time", "n"], [(ts("09:30"), 3), (ts("09:35"), 2)]),
    Case("by-two-keys", "select sum size by sym, hh:time.hh from trade",
         ["sym", "hh", "size"], [("a", 9, 600), ("b", 9, 300)]),
    Case("by-vector-column", "select price by sym from trade", ["sym", "price"],
         [("a", [10.0, 11.0, 12.0]), ("b", [20.0, 19.0])]),
    Case("by-no-columns", "select by sym from trade", ["sym", "date", "time", "price", "size"],
         [("a", D, ts("09:37"), 12.0, 200), ("b", D, ts("09:36"), 19.0, 100)]),
    Case("by-date", "select n:count i by date from trade", ["date", "n"], [(D, 5)]),
    Case("by-uniform", "select d:last deltas price by sym from trade", ["sym", "d"],
         [("a", 1.0), ("b", -1.0)]),
    Case("computed-names", "select sym, sym, 2*size, size+price from trade where sym=`b",
         ["sym", "sym1", "x", "size"], [("b", "b", 400, 220.0), ("b", "b", 200, 119.0)],
         source="basics/qsql: names of computed columns"),
    # -- aggregates ---------------------------------------------------------------------
    Case("aggregates", "select n:count i, s:sum size, lo:min size, hi:max size, a:avg price, "
         "m:med price, d:dev price, v:var price, sd:sdev price from trade",
         ["n", "s", "lo", "hi", "a", "m", "d", "v", "sd"],
         [(5, 900, 100, 300, 14.4, 12.0, math.sqrt(17.84), 17.84, math.sqrt(22.3))]),
    Case("aggregate-name", "select max price from trade", ["price"], [(20.0,)]),
    Case("wsum", "select size wsum price from trade", ["price"],
         [(1000 + 4000 + 3300 + 1900 + 2400.0,)]),
    Case("count-distinct", "select n:count distinct sym from trade", ["n"], [(2,)]),
    Case("distinct", "select distinct sym from trade", ["sym"], [("a",), ("b",)],
         source="ref/distinct: order of first occurrence"),
    Case("exec-distinct", "exec distinct sym from trade where price>15", ["sym"], [("b",)]),
    Case("mixed-broadcast", "select price, m:max price from trade where sym=`b",
         ["price", "m"], [(20.0, 20.0), (19.0, 20.0)]),
    Case("avg-nulls", "select avg x from t", ["x"], [(2.0,)], {"t": floats(1, None, 2, 3)},
         source="ref/avg: avg 1 0n 2 3 is 2f"),
    Case("med-doc", "select med x from t", ["x"], [(28.5,)],
         {"t": floats(10, 34, 23, 123, 5, 56)}, source="ref/med: med 10 34 23 123 5 56"),
    Case("wavg-nulls", "select w wavg x from t", ["x"], [(6.0,)],
         {"t": Table({"w": "long", "x": "float"}, [(2, 1), (None, 2), (4, None), (5, 8)])},
         source="ref/avg#wavg: 2 0N 4 5 wavg 1 2 0N 8 is 6f"),
    Case("sum-all-null", "select sum x from t", ["x"], [(0,)], {"t": longs(None, None)}),
    Case("max-all-null", "select max x from t", ["x"], [(-math.inf,)], {"t": floats(None)}),
    Case("count-counts-nulls", "select count x from t", ["x"], [(3,)],
         {"t": floats(None, 1, None)}),
    Case("first-last-null", "select first x, last x from t", ["x", "x1"], [(None, 2.0)],
         {"t": floats(None, 1, 2)}),
    # -- uniform functions -----------------------------------------------------------------
    Case("deltas-doc", "select deltas x from t", ["x"], [(1,), (3,), (5,), (7,)],
         {"t": longs(1, 4, 9, 16)}, source="ref/deltas: deltas 1 4 9 16"),
    Case("ratios-doc", "select ratios x from t", ["x"],
         [(1.0,), (2.0,), (2.0,), (1.5,), (7 / 6,), (10 / 7,)],
         {"t": longs(1, 2, 4, 6, 7, 10)}, source="ref/ratios: ratios 1 2 4 6 7 10"),
    Case("sums", "select sums x from t", ["x"], [(1,), (1,), (3,)], {"t": longs(1, None, 2)}),
    Case("mavg-doc", "select 5 mavg x from t", ["x"],
         [(None,), (2.0,), (2.0,), (3.5,), (14 / 3,), (14 / 3,)],
         {"t": longs(None, 2, None, 5, 7, None)}, source="ref/avg#mavg: 5 mavg 0N 2 0N 5 7 0N"),
    Case("mavg-2", "select 2 mavg x from t", ["x"], [(1.0,), (1.5,), (2.5,), (4.0,)],
         {"t": longs(1, 2, 3, 5)}, source="ref/avg#mavg: 2 mavg 1 2 3 5 7 10"),
    Case("msum", "select msum[2;x] from t", ["x"], [(1,), (3,), (5,)], {"t": longs(1, 2, 3)}),
    Case("fills-doc", "select fills x from t", ["x"],
         [(None,), (2,), (3,), (3,), (3,), (7,), (7,)],
         {"t": longs(None, 2, 3, None, None, 7, None)}, source="ref/fill: fills 0N 2 3 0N 0N 7 0N"),
    Case("prev-next", "select prev price, next price from trade where sym=`a",
         ["price", "price1"], [(None, 11.0), (10.0, 12.0), (11.0, None)]),
    Case("update-deltas-by", "update d:deltas price by sym from trade",
         [*FULL, "d"], [(*r, d) for r, d in zip(rows(1, 2, 3, 4, 5), [10, 20, 1, -1, 1],
                                                strict=True)]),
    Case("update-sums-by", "update s:sums size by sym from trade", [*FULL, "s"],
         [(*r, s) for r, s in zip(rows(1, 2, 3, 4, 5), [100, 200, 400, 300, 600], strict=True)]),
    Case("update-agg-by", "update m:max price by sym from trade", [*FULL, "m"],
         [(*r, m) for r, m in zip(rows(1, 2, 3, 4, 5), [12, 20, 12, 20, 12], strict=True)]),
    Case("update-where", "update mid:price*2 from trade where sym=`a", [*FULL, "mid"],
         [(*r, m) for r, m in zip(rows(1, 2, 3, 4, 5), [20, None, 22, None, 24], strict=True)],
         source="ref/update: rows outside the where clause get nulls in new columns"),
    Case("update-existing", "update price:neg price from trade where size>150", FULL,
         [(D, *T[0]), (D, T[1][0], "b", -20.0, 200), (D, T[2][0], "a", -11.0, 300),
          (D, *T[3]), (D, T[4][0], "a", -12.0, 200)]),
    # -- functions, operators, literals, casts --------------------------------------------------
    Case("right-to-left", "select x:size-2*3 from trade where sym=`b", ["x"], [(194,), (94,)]),
    Case("divide", "select r:size%3 from trade where sym=`b", ["r"], [(200 / 3,), (100 / 3,)]),
    Case("math", "select a:neg size, b:abs neg size, c:sqrt size, d:floor price%3, "
         "e:5 xbar size from trade where sym=`b", ["a", "b", "c", "d", "e"],
         [(-200, 200, math.sqrt(200), 6, 200), (-100, 100, 10.0, 6, 100)]),
    Case("log-exp", "select l:log x, e:exp x from t", ["l", "e"],
         [(0.0, math.e), (-math.inf, 1.0)], {"t": floats(1, 0)}),
    Case("min-max-ops", "select a:x&2, b:x|2 from t", ["a", "b"], [(1, 2), (2, 3), (None, 2)],
         {"t": longs(1, 3, None)}, source="ref/lesser: nulls are the least values"),
    Case("fill", "select 0^x from t", ["x"], [(1.0,), (0.0,)], {"t": floats(1, None)}),
    Case("null-compare", "select from t where x<5", ["date", "time", "sym", "x"],
         [(D, ts("09:30"), "a", 1.0), (D, ts("09:30:01"), "a", None)],
         {"t": floats(1, None, 7)}, source="basics/comparison: nulls are less than values"),
    Case("null-equal", "select x from t where x=0n", ["x"], [(None,)], {"t": floats(1, None)}),
    Case("null-literals", "select x, a:0N, b:0n, c:0Nd, s:` from t", ["x", "a", "b", "c", "s"],
         [(1, None, None, None, None)], {"t": longs(1)}),
    Case("vector-cond", "select s:?[size>150;`big;`small] from trade where sym=`b", ["s"],
         [("big",), ("small",)]),
    Case("casts", "select d:`date$time, m:`minute$time, f:`float$size, j:\"j\"$price, "
         "mo:`month$date from trade where sym=`b", ["d", "m", "f", "j", "mo"],
         [(D, dt.time(9, 31), 200.0, 20, dt.date(2024, 1, 1)),
          (D, dt.time(9, 36), 100.0, 19, dt.date(2024, 1, 1))]),
    Case("dot-parts", "select time.date, time.second, time.mm from trade where sym=`b",
         ["date", "second", "mm"], [(D, dt.time(9, 31), 31), (D, dt.time(9, 36), 36)]),
    Case("typed-literals", "select a:1i+size, b:2h, c:1.5e, d:1b from trade where size=300",
         ["a", "b", "c", "d"], [(301, 2, 1.5, True)]),
    Case("div-mod", "select a:x div 2, b:x mod 3 from t", ["a", "b"], [(-4, 2), (3, 1)],
         {"t": longs(-7, 7)}, source="ref/div, ref/mod: -7 div 2 is -4; -7 mod 3 is 2"),
    Case("timestamp-plus-span", "select t:time+0D00:00:01.5 from trade where size=300", ["t"],
         [(ts("09:32:01.500"),)]),
    # -- ordering, take, sublist, limits -----------------------------------------------------
    Case("xdesc", "`price xdesc select from trade", FULL, rows(2, 4, 5, 3, 1)),
    Case("xasc-stable", "`sym xasc select from trade", FULL, rows(1, 3, 5, 2, 4),
         source="basics/qsql: sorts are stable"),
    Case("take", "2#select from trade", FULL, rows(1, 2)),
    Case("take-last", "-2#select from trade", FULL, rows(4, 5)),
    Case("take-cycles", "5#select price from trade where sym=`b", ["price"],
         [(20.0,), (19.0,), (20.0,), (19.0,), (20.0,)], source="ref/take: take repeats"),
    Case("take-columns", "`sym`size#select from trade where size=300", ["sym", "size"],
         [("a", 300)]),
    Case("sublist", "1 2 sublist select price from trade", ["price"], [(20.0,), (11.0,)]),
    Case("sublist-short", "9 sublist select price from trade where sym=`b", ["price"],
         [(20.0,), (19.0,)]),
    Case("select-n", "select[2] from trade", FULL, rows(1, 2)),
    Case("select-minus-n", "select[-2] from trade", FULL, rows(4, 5)),
    Case("select-sort", "select[>price] sym, price from trade", ["sym", "price"],
         [("b", 20.0), ("b", 19.0), ("a", 12.0), ("a", 11.0), ("a", 10.0)]),
    Case("select-n-sort", "select[2;<size] from trade", FULL, rows(1, 4)),
    # -- exec, delete ----------------------------------------------------------------------
    Case("exec-column", "exec price from trade where sym=`a", ["price"],
         [(10.0,), (11.0,), (12.0,)]),
    Case("exec-atom", "exec max price from trade", ["price"], [(20.0,)]),
    Case("delete-rows", "delete from trade where sym=`b", FULL, rows(1, 3, 5)),
    Case("delete-columns", "select from (delete size from trade) where price=11",
         ["date", "time", "sym", "price"], [(D, *T[2][:3])]),
    Case("delete-time-keeps-order", "-1#delete time from trade", ["date", "sym", "price", "size"],
         [(D, *T[4][1:])]),
    Case("in-exec", "select from trade where sym in exec sym from quote where bid>19",
         FULL, rows(2, 4)),
    # -- joins -----------------------------------------------------------------------------
    Case("aj", "select sym, price, bid, ask from aj[`sym`time; trade; quote]",
         ["sym", "price", "bid", "ask"],
         [("a", 10.0, 9.5, 10.5), ("b", 20.0, 19.5, 20.5), ("a", 11.0, 10.5, 11.5),
          ("b", 19.0, 19.5, 20.5), ("a", 12.0, 11.5, 12.5)]),
    Case("aj-doc", "aj[`sym`time; t; q]", ["date", "time", "sym", "qty", "px"],
         [(D, ts("10:01:01"), "msft", 100, 101), (D, ts("10:01:03"), "ibm", 200, 98),
          (D, ts("10:01:04"), "ge", 150, None)],
         {"t": Table({"time": "timestamp", "sym": "symbol", "qty": "long"},
                     [(ts("10:01:01"), "msft", 100), (ts("10:01:03"), "ibm", 200),
                      (ts("10:01:04"), "ge", 150)]),
          "q": Table({"time": "timestamp", "sym": "symbol", "px": "long"},
                     [(ts("10:01:00"), "ibm", 100), (ts("10:01:00"), "msft", 99),
                      (ts("10:01:00.500"), "msft", 101), (ts("10:01:02"), "ibm", 98)])},
         source="ref/aj (the two msft quotes at 10:01:00 moved half a second apart: rows "
                "with equal times have no order in SQL)"),
    Case("aj0", "select time, sym from aj0[`sym`time; trade; quote] where sym=`b",
         ["time", "sym"], [(ts("09:30:30"), "b"), (ts("09:30:30"), "b")],
         source="ref/aj: aj0 takes the time from the right table"),
    Case("lj", "select sym, price, bid from trade lj select last bid by sym from quote",
         ["sym", "price", "bid"],
         [("a", 10.0, 11.5), ("b", 20.0, 19.5), ("a", 11.0, 11.5), ("b", 19.0, 19.5),
          ("a", 12.0, 11.5)]),
    Case("lj-doc", "select a, b, c, d from x lj `a`b xkey select a, b, c, d from y",
         ["a", "b", "c", "d"], [(1, "I", 1, 10), (2, "J", 20, None), (3, "K", 2, 20)],
         {"x": Table({"a": "long", "b": "symbol", "c": "long"},
                     [(1, "I", 10), (2, "J", 20), (3, "K", 30)]),
          "y": Table({"a": "long", "b": "symbol", "c": "long", "d": "long"},
                     [(1, "I", 1, 10), (3, "K", 2, 20)])},
         source="ref/lj: common columns replaced from y, unmatched rows unchanged"),
    Case("ij", "select a, b, c, d from x ij `a`b xkey select a, b, c, d from y",
         ["a", "b", "c", "d"], [(1, "I", 1, 10), (3, "K", 2, 20)],
         {"x": Table({"a": "long", "b": "symbol", "c": "long"},
                     [(1, "I", 10), (2, "J", 20), (3, "K", 30)]),
          "y": Table({"a": "long", "b": "symbol", "c": "long", "d": "long"},
                     [(1, "I", 1, 10), (3, "K", 2, 20)])}, source="ref/ij"),
    Case("wj1", "select sym, ask, bid from wj1[-0D00:01 0D00:00+\\:trade.time; `sym`time; "
         "trade; (quote; (max;`ask); (count;`bid))]", ["sym", "ask", "bid"],
         [("a", 10.5, 1), ("b", 20.5, 1), ("a", 11.5, 1), ("b", -math.inf, 0),
          ("a", 12.5, 1)], source="ref/wj: wj1 takes only quotes inside the window"),
    Case("wj", "select sym, ask, bid from wj[-0D00:01 0D00:00+\\:trade.time; `sym`time; "
         "trade; (quote; (max;`ask); (count;`bid))]", ["sym", "ask", "bid"],
         [("a", 10.5, 1), ("b", 20.5, 1), ("a", 11.5, 2), ("b", 20.5, 1), ("a", 12.5, 2)],
         source="ref/wj: wj also takes the quote prevailing at the window start"),
]
