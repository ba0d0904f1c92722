"""RDB replay rate and query latency, each against a raw baseline in the same run.

Replay: a real tickerplant journals N trade rows (1000-row records); the RDB's ingest path
(network replay by ``Subscriber(start="session")`` + ``Ingest`` into the ``Store``) is timed
against raw Arrow IPC reading of the same payload bytes (``ipc.open_stream(p).read_all()``
per record). Queries: VWAP by sym, 1-minute OHLCV bars and a one-sym filter through the RDB
query service (ZeroMQ, snapshot, views, Arrow back) against raw DuckDB over the same Arrow
batches in the same process, with the same thread count and fetched to Arrow the same way
(a reader, as the service does). Both are warmed up first; timed runs alternate which of the
two goes first; the figures are medians.

    .venv/bin/python scripts/bench_rdb.py            # 4M rows, 3 replays, 21 query runs
    .venv/bin/python scripts/bench_rdb.py --quick    # 1M rows, 1 replay, 21 query runs
    .venv/bin/python scripts/bench_rdb.py --quick --queries-only
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from queries.service import QueryClient, QueryServer
from rdb.ingest import Ingest
from rdb.query import QueryEngine
from rdb.store import COMPACT_ROWS, Store
from tickdb.launch import Launched, launch
from tickdb.schema import default_schemas
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update

TRADE = default_schemas()["trade"]
RECORD_ROWS = 1000
SYMS = 100
WORKERS = 2  # query worker threads, as in rdb.server.Rdb
QUERY_RUNS = 21  # timed runs of each query, each side (medians of a noisy shared machine)
DAY_NS = 1_704_153_600 * 10**9  # 2024-01-02


def trade_table(start: int, rows: int) -> pa.Table:
    idx = np.arange(start, start + rows)
    return pa.table(
        {
            "time": pa.array(DAY_NS + idx * 10_000_000, pa.timestamp("ns")),
            "sym": pa.array([f"S{i}" for i in range(SYMS)]).take(pa.array(idx % SYMS)),
            "price": pa.array(100.0 + (idx % 97) / 10),
            "size": pa.array(idx % 500 + 1),
        },
        schema=TRADE.arrow,
    )


def start_tp(workdir: Path) -> Launched:
    config = workdir / "tp.toml"
    config.write_text(
        '[tickerplant]\naddress = "tcp://127.0.0.1:0"\npublish_address = "tcp://127.0.0.1:0"\n'
        'replay_address = "tcp://127.0.0.1:0"\nkdb_port = 0\n'
    )
    args = ["tp", "--config", str(config), "--data-dir", str(workdir / "data")]
    log, ready = workdir / "tp.log", workdir / "tp.ready"
    return launch(args, name="tp", log_path=log, ready_file=ready, ready_timeout_s=30)


def bench_replay(rows: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        tp = start_tp(Path(tmp))
        address = str(tp.info["address"])
        try:
            with Publisher(address) as pub:
                for i in range(0, rows, RECORD_ROWS):
                    pub.publish("trade", trade_table(i, RECORD_ROWS))
                pub.flush()
            rdb_rates, raw_rates, ingest_rates = [], [], []
            for _ in range(repeats):
                store = Store({"trade": TRADE}, dt.date(2024, 1, 2))
                started = time.perf_counter()
                sub = Subscriber(address, tables=["trade"], start="journal")
                ingest = Ingest(store, sub, lambda *_: None)
                while store.live.tables["trade"].rows < rows:
                    ingest.step(1.0)
                rdb_rates.append(rows / (time.perf_counter() - started))
                sub.close()
                # The same bytes, fetched again, for the two decode-only figures.
                sub = Subscriber(address, tables=["trade"], start="journal")
                updates: list[Update] = []
                while (m := sub.poll(0.2)) is not None:
                    if isinstance(m, Update):
                        updates.append(m)
                sub.close()
                payloads = [u.payload for u in updates]
                started = time.perf_counter()
                raw_rows = sum(ipc.open_stream(p).read_all().num_rows for p in payloads)
                raw_rates.append(raw_rows / (time.perf_counter() - started))
                store2 = Store({"trade": TRADE}, dt.date(2024, 1, 2))
                started = time.perf_counter()
                Ingest(store2, sub, lambda *_: None).apply(list(updates))
                ingest_rates.append(rows / (time.perf_counter() - started))
        finally:
            tp.stop()
    return {
        "rdb_replay_rows_s": statistics.median(rdb_rates),
        "rdb_ingest_only_rows_s": statistics.median(ingest_rates),
        "raw_ipc_read_rows_s": statistics.median(raw_rates),
    }


QUERIES = {
    "vwap_by_sym": "SELECT sym, sum(price * size) / sum(size) AS vwap FROM trade GROUP BY sym",
    "ohlcv_1min": (
        "SELECT sym, time_bucket(INTERVAL 1 MINUTE, time::TIMESTAMP) AS bar, "
        "first(price ORDER BY time) AS open, max(price) AS high, min(price) AS low, "
        "last(price ORDER BY time) AS close, sum(size) AS volume FROM trade GROUP BY ALL"
    ),
    "one_sym": "SELECT time, price, size FROM trade WHERE sym = 'S7'",
}


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int) -> pa.Table:
    """Run ``sql`` and fetch it the way the query service does: an Arrow reader, read whole."""
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    return pa.Table.from_batches(list(reader), schema=reader.schema)


def bench_queries(rows: int) -> dict[str, dict[str, float]]:
    store = Store({"trade": TRADE}, dt.date(2024, 1, 2))
    table = pa.concat_tables(trade_table(i, 100_000) for i in range(0, rows, 100_000))
    with store.lock:
        store.live.append_locked("trade", table.combine_chunks().to_batches(COMPACT_ROWS), 1)
    max_rows = 10_000_000
    with tempfile.TemporaryDirectory() as tmp:
        engine = QueryEngine(store, intraday_dir=Path(tmp), cursors=WORKERS)
        server = QueryServer(
            "tcp://127.0.0.1:0",
            engine.prepare_with_dates,
            info=dict,
            timeout_s=60,
            max_rows=max_rows,
            workers=WORKERS,
        )
        server.start()
        client = QueryClient(server.endpoint, timeout_s=60)
        # The same data (the store's batches), DuckDB threads and fetch as the RDB.
        raw = duckdb.connect()
        raw.execute(f"SET threads = {engine.threads}")
        raw.register("trade", pa.Table.from_batches(store.live.tables["trade"].batches))
        batch_rows = min(max_rows + 1, 1_000_000)  # the service's reader batch size
        out = {}
        try:
            for name, sql in QUERIES.items():
                runs = {
                    "rdb": lambda sql=sql: client.query(sql),
                    "raw": lambda sql=sql: fetch_arrow(raw, sql, batch_rows),
                }
                for run in runs.values():  # untimed: one query per worker warms both up
                    for _ in range(WORKERS):
                        run()
                times: dict[str, list[float]] = {k: [] for k in runs}
                for i in range(QUERY_RUNS):
                    # Alternate which goes first: on a shared machine neither gets the
                    # quieter slot every time.
                    for key in sorted(runs, reverse=bool(i % 2)):
                        started = time.perf_counter()
                        runs[key]()
                        times[key].append((time.perf_counter() - started) * 1000)
                out[name] = {
                    "rdb_ms": statistics.median(times["rdb"]),
                    "raw_ms": statistics.median(times["raw"]),
                }
        finally:
            client.close()
            server.close()
            engine.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--queries-only", action="store_true", help="skip the replay part")
    args = parser.parse_args()
    rows = 1_000_000 if args.quick else 4_000_000
    repeats = 1 if args.quick else 3
    if not args.queries_only:
        replay = bench_replay(rows, repeats)
        ratio = replay["rdb_replay_rows_s"] / replay["raw_ipc_read_rows_s"]
        print(f"replay {rows:,} rows in {RECORD_ROWS}-row records:")
        for key, value in replay.items():
            print(f"  {key:24s} {value / 1e6:8.1f} M rows/s")
        print(f"  rdb replay / raw IPC read: {ratio:.2f}x")
    print(f"queries over {rows:,} rows ({SYMS} syms), median ms:")
    for name, r in bench_queries(rows).items():
        budget = 1.2 * r["raw_ms"] + 2
        verdict = "ok" if r["rdb_ms"] <= budget else "OVER"
        print(
            f"  {name:12s} rdb {r['rdb_ms']:7.2f}  raw {r['raw_ms']:7.2f}  "
            f"budget {budget:7.2f}  {verdict}"
        )


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
