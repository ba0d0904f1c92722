"""Benchmark: translated q against hand-written DuckDB SQL for the same queries.

Builds ``--rows`` trades (and as many quotes) in an in-memory DuckDB laid out as the gateway
lays out tables (the logical columns plus the virtual ``date``), then for each typical query
runs the translated SQL and the hand-written SQL alternately ``--repeat`` times, fetching the
whole result as Arrow, and prints medians, their ratio, and the median time of translate()
itself. Both SQL texts must return the same rows, or the script stops.

    .venv/bin/python scripts/bench_q.py [--rows 2000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from queries.q import translate
from tickdb.schema import default_schemas

DAY_NANOS = 6 * 3600 * 10**9 + 30 * 60 * 10**9  # 09:30 to 16:00
OPEN = "epoch_ns(TIMESTAMP '2024-01-02 09:30:00')"

# (name, q, hand-written SQL giving the same result in the same order)
QUERIES: list[tuple[str, str, str]] = [
    (
        "max by sym",
        "select max price by sym from trade where date=2024.01.02",
        "SELECT sym, max(price) AS price FROM trade WHERE date = DATE '2024-01-02' "
        "GROUP BY sym ORDER BY sym",
    ),
    (
        "vwap by sym",
        "select vwap:size wavg price by sym from trade",
        "SELECT sym, sum(size * price) / sum(size) AS vwap FROM trade GROUP BY sym ORDER BY sym",
    ),
    (
        "count by sym",
        "select count i by sym from trade",
        "SELECT sym, count(*) AS x FROM trade GROUP BY sym ORDER BY sym",
    ),
    (
        "5-minute OHLCV bars",
        "select o:first price, h:max price, l:min price, c:last price, v:sum size "
        "by sym, 5 xbar time.minute from trade",
        "SELECT sym, CAST(time_bucket(INTERVAL 5 MINUTE, time) AS TIME) AS minute, "
        "arg_min(price, time) AS o, max(price) AS h, min(price) AS l, "
        "arg_max(price, time) AS c, sum(size) AS v FROM trade GROUP BY 1, 2 ORDER BY 1, 2",
    ),
    (
        "filter one sym",
        "select time, price, size from trade where sym=`S7, price>100",
        "SELECT time, price, size FROM trade WHERE sym = 'S7' AND price > 100 ORDER BY time",
    ),
    (
        "deltas one sym",
        "select time, d:deltas price from trade where sym=`S7",
        "SELECT time, price - lag(price, 1, 0) OVER (ORDER BY time) AS d FROM trade "
        "WHERE sym = 'S7' ORDER BY time",
    ),
    (
        "as-of join one sym",
        "select time, price, bid, ask from aj[`sym`time; select from trade where sym=`S7; "
        "select from quote where sym=`S7]",
        "SELECT t.time, t.price, q.bid, q.ask FROM (SELECT * FROM trade WHERE sym = 'S7') t "
        "ASOF LEFT JOIN (SELECT * FROM quote WHERE sym = 'S7') q "
        "ON t.sym = q.sym AND t.time >= q.time ORDER BY t.time",
    ),
]


def build(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    step = DAY_NANOS // rows
    con.execute("SELECT setseed(0.42)")
    con.execute(f"""
        CREATE TABLE trade AS SELECT
            make_timestamp_ns({OPEN} + i * {step}) AS time,
            'S' || CAST(hash(i) % 100 AS VARCHAR) AS sym,
            95 + random() * 10 AS price,
            CAST(1 + (i * 7) % 1000 AS BIGINT) AS size,
            DATE '2024-01-02' AS date
        FROM range({rows}) r(i)""")
    con.execute(f"""
        CREATE TABLE quote AS SELECT
            make_timestamp_ns({OPEN} + i * {step} + {step // 2}) AS time,
            'S' || CAST(hash(i + 7) % 100 AS VARCHAR) AS sym,
            95 + random() * 10 AS bid, 95.01 + random() * 10 AS ask,
            CAST(100 AS BIGINT) AS bsize, CAST(100 AS BIGINT) AS asize,
            DATE '2024-01-02' AS date
        FROM range({rows}) r(i)""")


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, pa.Table]:
    start = time.perf_counter()
    table = con.sql(sql).to_arrow_table()
    return time.perf_counter() - start, table


def translation_time(q: str, loops: int = 300) -> float:
    schemas = default_schemas()
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(loops):
            translate(q, schemas)
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    if a.num_rows != b.num_rows or a.num_columns != b.num_columns:
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        xs, ys = x.to_pylist(), y.to_pylist()
        for u, v in zip(xs, ys, strict=True):
            if isinstance(u, float) and isinstance(v, float):
                if abs(u - v) > 1e-9 * max(1.0, abs(v)):
                    return False
            elif u != v:
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    t0 = time.perf_counter()
    build(con, args.rows)
    print(
        f"built {args.rows:,} trades and quotes in {time.perf_counter() - t0:.1f}s; "
        f"duckdb {duckdb.__version__}, python {platform.python_version()}, "
        f"{os.cpu_count()} cores, {args.threads} DuckDB threads, medians of {args.repeat}"
    )
    schemas = default_schemas()
    header = f"{'query':<22} {'q (ms)':>9} {'SQL (ms)':>9} {'ratio':>6} {'translate (ms)':>15}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, q, hand in QUERIES:
        sql = translate(q, schemas).sql
        _, ours = timed(con, sql)  # warm both before timing
        _, theirs = timed(con, hand)
        if not same_rows(ours, theirs):
            raise SystemExit(f"{name}: translated q and hand-written SQL disagree")
        q_times, sql_times = [], []
        for _ in range(args.repeat):
            q_times.append(timed(con, sql)[0])
            sql_times.append(timed(con, hand)[0])
        q_med, sql_med = statistics.median(q_times), statistics.median(sql_times)
        ratio = q_med / sql_med
        worst = max(worst, ratio)
        tr_ms = translation_time(q) * 1000
        print(
            f"{name:<22} {q_med * 1000:>9.1f} {sql_med * 1000:>9.1f} {ratio:>6.2f} {tr_ms:>15.3f}"
        )
    print(f"worst ratio {worst:.2f} (target <= 1.10); translation target <= 1 ms")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
