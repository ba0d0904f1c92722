"""Gateway benchmark: queries through the HTTP gateway (Arrow) against raw DuckDB.

10M rows (trades and quotes) across today plus 5 past days (``--days``: days in all, today
included; the rows are spread over them). Past days are a Parquet lake written by the HDB's
own end-of-day writer (``hdb.writer.write_partition``: sorted by sym, time, ZSTD, row groups
sized for sym pruning) and served by a real ``tickdb hdb`` process; today is in memory in
the RDB's own store and query engine (``rdb.query.QueryEngine``), served by a query service
in this process. The gateway is a real ``tickdb gateway`` process. The raw baseline is one
DuckDB in this process, with default settings, over the same Parquet files (a glob) and the
same Arrow tables, unioned. Both sides get the same thread budget.
Prints medians and the gateway/raw ratio per query.

    .venv/bin/python scripts/bench_gateway.py [--rows 10000000] [--repeat 15] [--min-seconds 4]
                                              [--only one-sym] [--days 6]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.client import Client  # noqa: E402
from hdb.writer import write_partition  # noqa: E402
from queries.service import QueryServer  # noqa: E402
from rdb.query import QueryEngine  # noqa: E402
from rdb.store import Store  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402
from tickdb.schema import default_schemas  # noqa: E402

TODAY = dt.date.today()


def days_until_today(count: int) -> list[dt.date]:
    """``count`` consecutive days, oldest first, ending with today."""
    return [TODAY - dt.timedelta(days=d) for d in range(count - 1, -1, -1)]


DAYS = days_until_today(6)  # 5 past days + today
SYMS = [f"S{i:03d}" for i in range(100)]
OPEN_NS = 9 * 3600 * 10**9 + 30 * 60 * 10**9
SESSION_NS = int(6.5 * 3600 * 10**9)
THREADS = 2
INGEST_ROWS = 4096  # rows per batch as today's data arrives at the RDB
SCHEMAS = default_schemas()


def make_day(kind: str, day: dt.date, rows: int, rng: np.random.Generator) -> pa.Table:
    sym_idx = np.sort(rng.integers(0, len(SYMS), rows))
    midnight = np.datetime64(day, "ns").astype(np.int64)
    times = midnight + OPEN_NS + rng.integers(0, SESSION_NS, rows)
    order = np.lexsort((times, sym_idx))  # the writer sorts again; today's rows alike
    sym_idx, times = sym_idx[order], times[order]
    mid = 50 + sym_idx * 0.5 + rng.normal(0, 0.2, rows)
    cols: dict[str, pa.Array] = {
        "time": pa.array(times.astype("datetime64[ns]")),
        "sym": pa.array(np.array(SYMS)[sym_idx]),
    }
    if kind == "trade":
        cols["price"] = pa.array(np.round(mid, 2))
        cols["size"] = pa.array(rng.integers(1, 1000, rows))
    else:
        cols["bid"] = pa.array(np.round(mid - 0.01, 2))
        cols["ask"] = pa.array(np.round(mid + 0.01, 2))
        cols["bsize"] = pa.array(rng.integers(1, 1000, rows))
        cols["asize"] = pa.array(rng.integers(1, 1000, rows))
    cols["date"] = pa.array([day] * rows, pa.date32())
    return pa.table(cols)


def build(rows: int, lake: Path, days: list[dt.date] = DAYS) -> dict[str, pa.Table]:
    """Write the past days as Parquet under ``lake`` (an HDB directory); return today's."""
    rng = np.random.default_rng(42)
    per_day = rows // 2 // len(days)
    today: dict[str, pa.Table] = {}
    for kind in ("trade", "quote"):
        for day in days:
            table = make_day(kind, day, per_day, rng)
            if day == TODAY:
                today[kind] = table.sort_by("time")  # as an RDB holds it: in arrival order
                continue
            write_partition(lake, SCHEMAS[kind], day, table.drop_columns(["date"]))
    return today


def lake_view(con: duckdb.DuckDBPyConnection, name: str, lake: Path, as_name: str) -> None:
    con.execute(
        f"CREATE VIEW {as_name} AS SELECT * FROM read_parquet("
        f"'{lake}/{name}/*/*.parquet', hive_partitioning = true, "
        "hive_types = {'date': DATE})"
    )


def rdb_engine(today: dict[str, pa.Table], work: Path) -> QueryEngine:
    """Today's rows in the RDB's own store and query engine, as ``tickdb rdb`` holds them
    mid-session: appended in small batches, then compacted as its maintenance thread does
    (big batches with interned symbols, a tail of small plain ones)."""
    store = Store({name: SCHEMAS[name] for name in today}, TODAY)
    for name, table in today.items():
        for batch in table.drop_columns(["date"]).to_batches(max_chunksize=INGEST_ROWS):
            with store.lock:
                store.live.append_locked(name, [batch], 1)
            store.live.compact(name)
    return QueryEngine(store, intraday_dir=work / "intraday", threads=THREADS, cursors=2)


def raw_db(lake: Path, today: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": THREADS})
    for name, table in today.items():
        lake_view(con, name, lake, f"past_{name}")
        con.register("_load", table)
        con.execute(f"CREATE TABLE today_{name} AS SELECT * FROM _load")
        con.unregister("_load")
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM past_{name} "
            f"UNION ALL BY NAME SELECT * FROM today_{name}"
        )
    return con


def info_of(role: str, con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    tables = {}
    for name in ("trade", "quote"):
        cols = [[r[0], r[1]] for r in con.execute(f"DESCRIBE {name}").fetchall()]
        qtypes = {
            "TIMESTAMP_NS": "timestamp",
            "VARCHAR": "symbol",
            "DOUBLE": "float",
            "BIGINT": "long",
            "DATE": "date",
        }
        dates = [
            r[0].isoformat()
            for r in con.execute(f"SELECT DISTINCT date FROM {name} ORDER BY 1").fetchall()
        ]
        tables[name] = {
            "columns": [[c, qtypes.get(t, "string")] for c, t in cols if c != "date"],
            "rows": con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0],
            "dates": dates,
        }
    info: dict[str, object] = {"role": role, "shard": None, "tables": tables}
    if role == "rdb":
        info.update(
            date=TODAY.isoformat(),
            dates=[TODAY.isoformat()],
            seq=0,
            tp_seq=0,
            last_heartbeat=time.time(),
            query_dates=True,  # as ``tickdb rdb``: each reply lists the dates it read
        )
    return info


def start(command: str, args: list[str], work: Path) -> Launched:
    """A ``tickdb`` process, once it wrote its ready file (``.info``); its log in ``work``."""
    log, ready = work / f"{command}.log", work / f"{command}.ready.json"
    return launch([command, *args], name=command, log_path=log, ready_file=ready, cwd=ROOT)


def queries(days: list[dt.date] = DAYS) -> dict[str, str]:
    d1, d4 = days[-2], days[-5]
    vwap = "SELECT sym, sum(price * size) / sum(size) AS vwap FROM trade GROUP BY sym"
    # Grouped by date too, so every bar is finished in the backend holding its day.
    bars = (
        "SELECT sym, date, time_bucket(INTERVAL '1 minute', time) AS bar, "
        "first(price ORDER BY time) AS open, max(price) AS high, min(price) AS low, "
        "last(price ORDER BY time) AS close, sum(size) AS volume FROM trade "
        f"WHERE date >= '{d1}' GROUP BY sym, date, bar"
    )
    asof = (
        "SELECT t.sym, avg(t.price - (q.bid + q.ask) / 2) AS slippage, count(*) AS n "
        "FROM trade t ASOF JOIN quote q ON t.sym = q.sym AND t.date = q.date "
        "AND t.time >= q.time GROUP BY t.sym"
    )
    one_sym = "SELECT time, price, size FROM trade WHERE sym = 'S042'"
    range_ = (
        "SELECT date, sym, count(*) AS n, sum(size) AS volume, max(price) AS high "
        f"FROM trade WHERE date BETWEEN '{d4}' AND '{d1}' GROUP BY date, sym"
    )
    n = len(days)
    return {
        f"vwap by sym ({n} days)": vwap,
        "1-min OHLCV bars (2 days)": bars,
        f"as-of join trades to quotes ({n} days)": asof,
        f"one-sym filter ({n} days)": one_sym,
        "multi-day range (4 past days)": range_,
    }


def interleaved_medians(
    raw: Callable[[], object], gw: Callable[[], object], repeat: int, min_s: float = 0.0
) -> tuple[float, float]:
    """Median seconds of each, alternating runs so a noisy neighbour hits both alike.

    At least ``repeat`` runs each, and more until ``min_s`` seconds have passed: a median
    of 15 runs of a 10 ms query is a third of a second of a noisy machine.
    """
    times: dict[str, list[float]] = {"raw": [], "gw": []}
    started_all = time.perf_counter()
    while len(times["raw"]) < repeat or time.perf_counter() - started_all < min_s:
        for side, fn in (("raw", raw), ("gw", gw)):
            started = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - started)
    return statistics.median(times["raw"]), statistics.median(times["gw"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=15, help="Runs of each, at least.")
    parser.add_argument(
        "--min-seconds", type=float, default=4.0, help="Time to keep running each query."
    )
    parser.add_argument("--only", help="Run only the queries whose name contains this.")
    parser.add_argument(
        "--days", type=int, default=len(DAYS), help="Days of data, today included (at least 5)."
    )
    args = parser.parse_args()
    if args.days < 5:
        parser.error("--days must be at least 5 (the multi-day range reads 4 past days)")
    days = days_until_today(args.days)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        today = build(args.rows, work / "hdb", days)
        print(f"built {args.rows:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
        rdb = rdb_engine(today, work)
        # Computed once: the data does not change, and a per-call scan would compete with
        # the measured queries every refresh.
        info = info_of("rdb", rdb.prepare())
        server = QueryServer(
            "tcp://127.0.0.1:0",
            rdb.prepare_with_dates,
            info=lambda: info,
            timeout_s=120,
            max_rows=10_000_000,
            workers=2,
        )
        server.start()
        config = work / "bench.toml"
        config.write_text("[hdb]\nquery_timeout_s = 120\nmax_rows = 10000000\n")
        hdb_args = ["--config", str(config), "--data-dir", str(work), "--threads", str(THREADS)]
        hdb_args += ["--address", "tcp://127.0.0.1:0"]
        procs = [start("hdb", hdb_args, work)]
        try:
            hdb_address = procs[0].info["address"]
            gw_args = ["--port", "0", "--kdb-port", "0", "--timeout", "120"]
            gw_args += ["--max-rows", "10000000", "--hdb", hdb_address, "--rdb", server.endpoint]
            procs.append(start("gateway", gw_args, work))
            url = procs[1].info["url"]
            raw = raw_db(work / "hdb", today)
            client = Client(url)
            rows = []
            for name, sql in queries(days).items():
                if args.only and args.only not in name:
                    continue
                want = raw.sql(sql).to_arrow_table()
                got = client.query(sql)
                assert got.num_rows == want.num_rows, (name, got.num_rows, want.num_rows)
                raw_s, gw_s = interleaved_medians(
                    lambda s=sql: raw.sql(s).to_arrow_table(),  # type: ignore[misc]
                    lambda s=sql: client.query(s),  # type: ignore[misc]
                    args.repeat,
                    args.min_seconds,
                )
                rows.append((name, want.num_rows, raw_s, gw_s))
                print(
                    f"{name:40s} {want.num_rows:>8,} rows  raw {raw_s * 1000:8.1f} ms  "
                    f"gateway {gw_s * 1000:8.1f} ms  ratio {gw_s / raw_s:5.2f}x",
                    flush=True,
                )
            print("\n| query | rows out | raw DuckDB (ms) | gateway HTTP+Arrow (ms) | ratio |")
            print("|---|---:|---:|---:|---:|")
            for name, n, raw_s, gw_s in rows:
                print(
                    f"| {name} | {n:,} | {raw_s * 1000:.0f} | {gw_s * 1000:.0f} | "
                    f"{gw_s / raw_s:.2f}x |"
                )
            client.close()
        finally:
            for proc in reversed(procs):
                proc.stop()
            server.close()
            rdb.close()


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
