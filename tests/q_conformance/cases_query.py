"""Conformance cases: select, where, by, aggregates, uniform functions, update."""

from __future__ import annotations

import datetime as dt
import math

from q_conformance.data import FULL, Case, D, T, Table, floats, longs, rows, ts

CASES: list[Case] = [
    # -- select, where, by -------------------------------------------------------------
    Case("select-all", "select from trade", FULL, rows(1, 2, 3, 4, 5)),
    Case("where-compare", "select from trade where price>11", FULL, rows(2, 4, 5)),
    Case("where-in-order", "select from trade where sym=`a, price>10", FULL, rows(3, 5)),
    Case("where-in", "select from trade where sym in `b`c", FULL, rows(2, 4)),
    Case(
        "where-within",
        "select sym, price from trade where price within 11 19",
        ["sym", "price"],
        [("a", 11.0), ("b", 19.0), ("a", 12.0)],
    ),
    Case("where-date-virtual", "select count i from trade where date=2024.01.02", ["x"], [(5,)]),
    Case("where-other-date", "select count i from trade where date=2024.01.03", ["x"], [(0,)]),
    Case(
        "where-timestamp",
        "select from trade where time within 2024.01.02D09:31:00.000 2024.01.02D09:36:00",
        FULL,
        rows(2, 3, 4),
    ),
    Case(
        "where-minute",
        "select from trade where time.minute within 09:31 09:36",
        FULL,
        rows(2, 3, 4),
    ),
    Case("where-like", 'select from trade where sym like "b*"', FULL, rows(2, 4)),
    Case("where-not", "select from trade where not sym=`a", FULL, rows(2, 4)),
    Case("where-or", "select from trade where (price>19) | size=300", FULL, rows(2, 3)),
    Case("where-and-keyword", "select from trade where (sym=`a) and size>100", FULL, rows(3, 5)),
    Case("where-aggregate", "select from trade where price>avg price", FULL, rows(2, 4)),
    Case(
        "where-fby",
        "select from trade where price=(max;price) fby sym",
        FULL,
        rows(2, 5),
        source="ref/fby",
    ),
    Case(
        "where-successive",
        "select from trade where sym=`a, price>avg price",
        FULL,
        rows(5),
        source="basics/qsql: subphrases are successive filters",
    ),
    Case(
        "by-max", "select max price by sym from trade", ["sym", "price"], [("a", 12.0), ("b", 20.0)]
    ),
    Case(
        "by-count-i",
        "select count i by sym from trade",
        ["sym", "x"],
        [("a", 3), ("b", 2)],
        source="basics/qsql: count i",
    ),
    Case(
        "by-first-last",
        "select first price, last price by sym from trade",
        ["sym", "price", "price1"],
        [("a", 10.0, 12.0), ("b", 20.0, 19.0)],
    ),
    Case(
        "by-wavg-name",
        "select size wavg price by sym from trade",
        ["sym", "price"],
        [("a", 6700 / 600), ("b", 5900 / 300)],
        source="ref/avg#wavg: column named price",
    ),
    Case(
        "by-xbar-minute",
        "select vwap:size wavg price by 5 xbar time.minute from trade",
        ["minute", "vwap"],
        [(dt.time(9, 30), 8300 / 600), (dt.time(9, 35), 4300 / 300)],
    ),
    Case(
        "by-xbar-timespan",
        "select n:count i by 0D00:05 xbar time from trade",
        ["time", "n"],
        [(ts("09:30"), 3), (ts("09:35"), 2)],
    ),
    Case(
        "by-two-keys",
        "select sum size by sym, hh:time.hh from trade",
        ["sym", "hh", "size"],
        [("a", 9, 600), ("b", 9, 300)],
    ),
    Case(
        "by-vector-column",
        "select price by sym from trade",
        ["sym", "price"],
        [("a", [10.0, 11.0, 12.0]), ("b", [20.0, 19.0])],
    ),
    Case(
        "by-no-columns",
        "select by sym from trade",
        ["sym", "date", "time", "price", "size"],
        [("a", D, ts("09:37"), 12.0, 200), ("b", D, ts("09:36"), 19.0, 100)],
    ),
    Case("by-date", "select n:count i by date from trade", ["date", "n"], [(D, 5)]),
    Case(
        "by-uniform",
        "select d:last deltas price by sym from trade",
        ["sym", "d"],
        [("a", 1.0), ("b", -1.0)],
    ),
    Case(
        "computed-names",
        "select sym, sym, 2*size, size+price from trade where sym=`b",
        ["sym", "sym1", "x", "size"],
        [("b", "b", 400, 220.0), ("b", "b", 200, 119.0)],
        source="basics/qsql: names of computed columns",
    ),
    # -- aggregates ---------------------------------------------------------------------
    Case(
        "aggregates",
        "select n:count i, s:sum size, lo:min size, hi:max size, a:avg price, "
        "m:med price, d:dev price, v:var price, sd:sdev price from trade",
        ["n", "s", "lo", "hi", "a", "m", "d", "v", "sd"],
        [(5, 900, 100, 300, 14.4, 12.0, math.sqrt(17.84), 17.84, math.sqrt(22.3))],
    ),
    Case("aggregate-name", "select max price from trade", ["price"], [(20.0,)]),
    Case(
        "wsum",
        "select size wsum price from trade",
        ["price"],
        [(1000 + 4000 + 3300 + 1900 + 2400.0,)],
    ),
    Case("count-distinct", "select n:count distinct sym from trade", ["n"], [(2,)]),
    Case(
        "distinct",
        "select distinct sym from trade",
        ["sym"],
        [("a",), ("b",)],
        source="ref/distinct: order of first occurrence",
    ),
    Case("exec-distinct", "exec distinct sym from trade where price>15", ["sym"], [("b",)]),
    Case(
        "mixed-broadcast",
        "select price, m:max price from trade where sym=`b",
        ["price", "m"],
        [(20.0, 20.0), (19.0, 20.0)],
    ),
    Case(
        "avg-nulls",
        "select avg x from t",
        ["x"],
        [(2.0,)],
        {"t": floats(1, None, 2, 3)},
        source="ref/avg: avg 1 0n 2 3 is 2f",
    ),
    Case(
        "med-doc",
        "select med x from t",
        ["x"],
        [(28.5,)],
        {"t": floats(10, 34, 23, 123, 5, 56)},
        source="ref/med: med 10 34 23 123 5 56",
    ),
    Case(
        "wavg-nulls",
        "select w wavg x from t",
        ["x"],
        [(6.0,)],
        {"t": Table({"w": "long", "x": "float"}, [(2, 1), (None, 2), (4, None), (5, 8)])},
        source="ref/avg#wavg: 2 0N 4 5 wavg 1 2 0N 8 is 6f",
    ),
    Case("sum-all-null", "select sum x from t", ["x"], [(0,)], {"t": longs(None, None)}),
    Case("max-all-null", "select max x from t", ["x"], [(-math.inf,)], {"t": floats(None)}),
    Case(
        "count-counts-nulls", "select count x from t", ["x"], [(3,)], {"t": floats(None, 1, None)}
    ),
    Case(
        "first-last-null",
        "select first x, last x from t",
        ["x", "x1"],
        [(None, 2.0)],
        {"t": floats(None, 1, 2)},
    ),
    # -- uniform functions -----------------------------------------------------------------
    Case(
        "deltas-doc",
        "select deltas x from t",
        ["x"],
        [(1,), (3,), (5,), (7,)],
        {"t": longs(1, 4, 9, 16)},
        source="ref/deltas: deltas 1 4 9 16",
    ),
    Case(
        "ratios-doc",
        "select ratios x from t",
        ["x"],
        [(1.0,), (2.0,), (2.0,), (1.5,), (7 / 6,), (10 / 7,)],
        {"t": longs(1, 2, 4, 6, 7, 10)},
        source="ref/ratios: ratios 1 2 4 6 7 10",
    ),
    Case("sums", "select sums x from t", ["x"], [(1,), (1,), (3,)], {"t": longs(1, None, 2)}),
    Case(
        "mavg-doc",
        "select 5 mavg x from t",
        ["x"],
        [(None,), (2.0,), (2.0,), (3.5,), (14 / 3,), (14 / 3,)],
        {"t": longs(None, 2, None, 5, 7, None)},
        source="ref/avg#mavg: 5 mavg 0N 2 0N 5 7 0N",
    ),
    Case(
        "mavg-2",
        "select 2 mavg x from t",
        ["x"],
        [(1.0,), (1.5,), (2.5,), (4.0,)],
        {"t": longs(1, 2, 3, 5)},
        source="ref/avg#mavg: 2 mavg 1 2 3 5 7 10",
    ),
    Case("msum", "select msum[2;x] from t", ["x"], [(1,), (3,), (5,)], {"t": longs(1, 2, 3)}),
    Case(
        "fills-doc",
        "select fills x from t",
        ["x"],
        [(None,), (2,), (3,), (3,), (3,), (7,), (7,)],
        {"t": longs(None, 2, 3, None, None, 7, None)},
        source="ref/fill: fills 0N 2 3 0N 0N 7 0N",
    ),
    Case(
        "prev-next",
        "select prev price, next price from trade where sym=`a",
        ["price", "price1"],
        [(None, 11.0), (10.0, 12.0), (11.0, None)],
    ),
    Case(
        "update-deltas-by",
        "update d:deltas price by sym from trade",
        [*FULL, "d"],
        [(*r, d) for r, d in zip(rows(1, 2, 3, 4, 5), [10, 20, 1, -1, 1], strict=True)],
    ),
    Case(
        "update-sums-by",
        "update s:sums size by sym from trade",
        [*FULL, "s"],
        [(*r, s) for r, s in zip(rows(1, 2, 3, 4, 5), [100, 200, 400, 300, 600], strict=True)],
    ),
    Case(
        "update-agg-by",
        "update m:max price by sym from trade",
        [*FULL, "m"],
        [(*r, m) for r, m in zip(rows(1, 2, 3, 4, 5), [12, 20, 12, 20, 12], strict=True)],
    ),
    Case(
        "update-where",
        "update mid:price*2 from trade where sym=`a",
        [*FULL, "mid"],
        [(*r, m) for r, m in zip(rows(1, 2, 3, 4, 5), [20, None, 22, None, 24], strict=True)],
        source="ref/update: rows outside the where clause get nulls in new columns",
    ),
    Case(
        "update-existing",
        "update price:neg price from trade where size>150",
        FULL,
        [
            (D, *T[0]),
            (D, T[1][0], "b", -20.0, 200),
            (D, T[2][0], "a", -11.0, 300),
            (D, *T[3]),
            (D, T[4][0], "a", -12.0, 200),
        ],
    ),
]
