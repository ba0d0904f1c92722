"""Conformance cases: operators, literals, casts, ordering, take, exec, delete, joins."""

from __future__ import annotations

import datetime as dt
import math

from q_conformance.data import FULL, Case, D, T, Table, floats, longs, rows, ts

CASES: list[Case] = [
    # -- functions, operators, literals, casts --------------------------------------------------
    Case("right-to-left", "select x:size-2*3 from trade where sym=`b", ["x"], [(194,), (94,)]),
    Case("divide", "select r:size%3 from trade where sym=`b", ["r"], [(200 / 3,), (100 / 3,)]),
    Case(
        "math",
        "select a:neg size, b:abs neg size, c:sqrt size, d:floor price%3, "
        "e:5 xbar size from trade where sym=`b",
        ["a", "b", "c", "d", "e"],
        [(-200, 200, math.sqrt(200), 6, 200), (-100, 100, 10.0, 6, 100)],
    ),
    Case(
        "log-exp",
        "select l:log x, e:exp x from t",
        ["l", "e"],
        [(0.0, math.e), (-math.inf, 1.0)],
        {"t": floats(1, 0)},
    ),
    Case(
        "min-max-ops",
        "select a:x&2, b:x|2 from t",
        ["a", "b"],
        [(1, 2), (2, 3), (None, 2)],
        {"t": longs(1, 3, None)},
        source="ref/lesser: nulls are the least values",
    ),
    Case("fill", "select 0^x from t", ["x"], [(1.0,), (0.0,)], {"t": floats(1, None)}),
    Case(
        "null-compare",
        "select from t where x<5",
        ["date", "time", "sym", "x"],
        [(D, ts("09:30"), "a", 1.0), (D, ts("09:30:01"), "a", None)],
        {"t": floats(1, None, 7)},
        source="basics/comparison: nulls are less than values",
    ),
    Case("null-equal", "select x from t where x=0n", ["x"], [(None,)], {"t": floats(1, None)}),
    Case(
        "null-literals",
        "select x, a:0N, b:0n, c:0Nd, s:` from t",
        ["x", "a", "b", "c", "s"],
        [(1, None, None, None, None)],
        {"t": longs(1)},
    ),
    Case(
        "vector-cond",
        "select s:?[size>150;`big;`small] from trade where sym=`b",
        ["s"],
        [("big",), ("small",)],
    ),
    Case(
        "casts",
        'select d:`date$time, m:`minute$time, f:`float$size, j:"j"$price, '
        "mo:`month$date from trade where sym=`b",
        ["d", "m", "f", "j", "mo"],
        [
            (D, dt.time(9, 31), 200.0, 20, dt.date(2024, 1, 1)),
            (D, dt.time(9, 36), 100.0, 19, dt.date(2024, 1, 1)),
        ],
    ),
    Case(
        "dot-parts",
        "select time.date, time.second, time.mm from trade where sym=`b",
        ["date", "second", "mm"],
        [(D, dt.time(9, 31), 31), (D, dt.time(9, 36), 36)],
    ),
    Case(
        "typed-literals",
        "select a:1i+size, b:2h, c:1.5e, d:1b from trade where size=300",
        ["a", "b", "c", "d"],
        [(301, 2, 1.5, True)],
    ),
    Case(
        "div-mod",
        "select a:x div 2, b:x mod 3 from t",
        ["a", "b"],
        [(-4, 2), (3, 1)],
        {"t": longs(-7, 7)},
        source="ref/div, ref/mod: -7 div 2 is -4; -7 mod 3 is 2",
    ),
    Case(
        "timestamp-plus-span",
        "select t:time+0D00:00:01.5 from trade where size=300",
        ["t"],
        [(ts("09:32:01.500"),)],
    ),
    # -- ordering, take, sublist, limits -----------------------------------------------------
    Case("xdesc", "`price xdesc select from trade", FULL, rows(2, 4, 5, 3, 1)),
    Case(
        "xasc-stable",
        "`sym xasc select from trade",
        FULL,
        rows(1, 3, 5, 2, 4),
        source="basics/qsql: sorts are stable",
    ),
    Case("take", "2#select from trade", FULL, rows(1, 2)),
    Case(
        "sort-projection-with-time",
        "`price xdesc select time, price from trade where sym=`a",
        ["time", "price"],
        [(ts("09:37"), 12.0), (ts("09:32"), 11.0), (ts("09:30"), 10.0)],
    ),
    Case("take-projection-without-time", "-1#select price from trade", ["price"], [(12.0,)]),
    Case("take-last", "-2#select from trade", FULL, rows(4, 5)),
    Case(
        "take-cycles",
        "5#select price from trade where sym=`b",
        ["price"],
        [(20.0,), (19.0,), (20.0,), (19.0,), (20.0,)],
        source="ref/take: take repeats",
    ),
    Case(
        "take-columns", "`sym`size#select from trade where size=300", ["sym", "size"], [("a", 300)]
    ),
    Case("sublist", "1 2 sublist select price from trade", ["price"], [(20.0,), (11.0,)]),
    Case(
        "sublist-short",
        "9 sublist select price from trade where sym=`b",
        ["price"],
        [(20.0,), (19.0,)],
    ),
    Case("select-n", "select[2] from trade", FULL, rows(1, 2)),
    Case("select-minus-n", "select[-2] from trade", FULL, rows(4, 5)),
    Case(
        "select-sort",
        "select[>price] sym, price from trade",
        ["sym", "price"],
        [("b", 20.0), ("b", 19.0), ("a", 12.0), ("a", 11.0), ("a", 10.0)],
    ),
    Case("select-n-sort", "select[2;<size] from trade", FULL, rows(1, 4)),
    # -- exec, delete ----------------------------------------------------------------------
    Case(
        "exec-column", "exec price from trade where sym=`a", ["price"], [(10.0,), (11.0,), (12.0,)]
    ),
    Case("exec-atom", "exec max price from trade", ["price"], [(20.0,)]),
    Case("delete-rows", "delete from trade where sym=`b", FULL, rows(1, 3, 5)),
    Case(
        "delete-columns",
        "select from (delete size from trade) where price=11",
        ["date", "time", "sym", "price"],
        [(D, *T[2][:3])],
    ),
    Case(
        "delete-time-keeps-order",
        "-1#delete time from trade",
        ["date", "sym", "price", "size"],
        [(D, *T[4][1:])],
    ),
    Case(
        "in-exec",
        "select from trade where sym in exec sym from quote where bid>19",
        FULL,
        rows(2, 4),
    ),
    # -- joins -----------------------------------------------------------------------------
    Case(
        "aj",
        "select sym, price, bid, ask from aj[`sym`time; trade; quote]",
        ["sym", "price", "bid", "ask"],
        [
            ("a", 10.0, 9.5, 10.5),
            ("b", 20.0, 19.5, 20.5),
            ("a", 11.0, 10.5, 11.5),
            ("b", 19.0, 19.5, 20.5),
            ("a", 12.0, 11.5, 12.5),
        ],
    ),
    Case(
        "aj-doc",
        "aj[`sym`time; t; q]",
        ["date", "time", "sym", "qty", "px"],
        [
            (D, ts("10:01:01"), "msft", 100, 101),
            (D, ts("10:01:03"), "ibm", 200, 98),
            (D, ts("10:01:04"), "ge", 150, None),
        ],
        {
            "t": Table(
                {"time": "timestamp", "sym": "symbol", "qty": "long"},
                [
                    (ts("10:01:01"), "msft", 100),
                    (ts("10:01:03"), "ibm", 200),
                    (ts("10:01:04"), "ge", 150),
                ],
            ),
            "q": Table(
                {"time": "timestamp", "sym": "symbol", "px": "long"},
                [
                    (ts("10:01:00"), "ibm", 100),
                    (ts("10:01:00"), "msft", 99),
                    (ts("10:01:00.500"), "msft", 101),
                    (ts("10:01:02"), "ibm", 98),
                ],
            ),
        },
        source="ref/aj (the two msft quotes at 10:01:00 moved half a second apart: rows "
        "with equal times have no order in SQL)",
    ),
    Case(
        "aj0",
        "select time, sym from aj0[`sym`time; trade; quote] where sym=`b",
        ["time", "sym"],
        [(ts("09:30:30"), "b"), (ts("09:30:30"), "b")],
        source="ref/aj: aj0 takes the time from the right table",
    ),
    Case(
        "lj",
        "select sym, price, bid from trade lj select last bid by sym from quote",
        ["sym", "price", "bid"],
        [
            ("a", 10.0, 11.5),
            ("b", 20.0, 19.5),
            ("a", 11.0, 11.5),
            ("b", 19.0, 19.5),
            ("a", 12.0, 11.5),
        ],
    ),
    Case(
        "lj-doc",
        "select a, b, c, d from x lj `a`b xkey select a, b, c, d from y",
        ["a", "b", "c", "d"],
        [(1, "I", 1, 10), (2, "J", 20, None), (3, "K", 2, 20)],
        {
            "x": Table(
                {"a": "long", "b": "symbol", "c": "long"},
                [(1, "I", 10), (2, "J", 20), (3, "K", 30)],
            ),
            "y": Table(
                {"a": "long", "b": "symbol", "c": "long", "d": "long"},
                [(1, "I", 1, 10), (3, "K", 2, 20)],
            ),
        },
        source="ref/lj: common columns replaced from y, unmatched rows unchanged",
    ),
    Case(
        "ij",
        "select a, b, c, d from x ij `a`b xkey select a, b, c, d from y",
        ["a", "b", "c", "d"],
        [(1, "I", 1, 10), (3, "K", 2, 20)],
        {
            "x": Table(
                {"a": "long", "b": "symbol", "c": "long"},
                [(1, "I", 10), (2, "J", 20), (3, "K", 30)],
            ),
            "y": Table(
                {"a": "long", "b": "symbol", "c": "long", "d": "long"},
                [(1, "I", 1, 10), (3, "K", 2, 20)],
            ),
        },
        source="ref/ij",
    ),
    Case(
        "wj1",
        "select sym, ask, bid from wj1[-0D00:01 0D00:00+\\:trade.time; `sym`time; "
        "trade; (quote; (max;`ask); (count;`bid))]",
        ["sym", "ask", "bid"],
        [("a", 10.5, 1), ("b", 20.5, 1), ("a", 11.5, 1), ("b", -math.inf, 0), ("a", 12.5, 1)],
        source="ref/wj: wj1 takes only quotes inside the window",
    ),
    Case(
        "wj",
        "select sym, ask, bid from wj[-0D00:01 0D00:00+\\:trade.time; `sym`time; "
        "trade; (quote; (max;`ask); (count;`bid))]",
        ["sym", "ask", "bid"],
        [("a", 10.5, 1), ("b", 20.5, 1), ("a", 11.5, 2), ("b", 20.5, 1), ("a", 12.5, 2)],
        source="ref/wj: wj also takes the quote prevailing at the window start",
    ),
]
