"""The gateway over a real stack: tickerplant, 3 sharded RDBs, 3 sharded HDBs, gateway.

Past days are HDB Parquet partitions written with ``hdb.writer`` (one file per shard); today
is published through the tickerplant. The reference is one DuckDB holding every row read
back from the backends directly; every answer through the gateway must equal it.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from support.gateway_data import assert_same_answer
from support.harness import EPHEMERAL_TP, Proc, start_tp, wait_until, write_config

import tickdb
from gateway.client import Client
from hdb.layout import Shard
from hdb.writer import write_partition
from queries.service import QueryClient
from tickdb.schema import default_schemas
from tickerplant.protocol import shard_of
from tickerplant.publisher import Publisher

SHARDS = 3
SYMS = ["AAPL", "MSFT", "IBM", "GOOG", "AMZN", "TSLA", "NVDA", "META"]


def past_trades(day: dt.date, rows: int) -> pa.Table:
    start = dt.datetime.combine(day, dt.time(9, 30))
    return pa.table(
        {
            "time": pa.array(
                [start + dt.timedelta(seconds=i) for i in range(rows)], pa.timestamp("ns")
            ),
            "sym": [SYMS[i % len(SYMS)] for i in range(rows)],
            "price": [100.0 + (i * 7) % 13 for i in range(rows)],
            "size": pa.array([1 + i % 50 for i in range(rows)], pa.int64()),
        }
    )


def today_trades(start: int, rows: int) -> pa.Table:
    return pa.table(
        {
            "sym": [SYMS[(i * 3) % len(SYMS)] for i in range(start, start + rows)],
            "price": [200.0 + i % 17 for i in range(start, start + rows)],
            "size": pa.array([1 + i % 40 for i in range(start, start + rows)], pa.int64()),
        }
    )


def today_quotes(start: int, rows: int) -> pa.Table:
    return pa.table(
        {
            "sym": [SYMS[(i * 3) % len(SYMS)] for i in range(start, start + rows)],
            "bid": [199.0 + i % 5 for i in range(start, start + rows)],
            "ask": [201.0 + i % 5 for i in range(start, start + rows)],
            "bsize": pa.array([10] * rows, pa.int64()),
            "asize": pa.array([10] * rows, pa.int64()),
        }
    )


def write_hdb(hdb_dir: Path, days: list[dt.date]) -> None:
    schemas = default_schemas()
    for n, day in enumerate(days):
        table = past_trades(day, 400 + 50 * n)
        for k in range(SHARDS):
            mine = pa.array([shard_of(s, SHARDS) == k for s in table.column("sym").to_pylist()])
            write_partition(
                hdb_dir, schemas["trade"], day, table.filter(mine), shard=Shard(k, SHARDS)
            )
            write_partition(hdb_dir, schemas["quote"], day, None, shard=Shard(k, SHARDS))


@pytest.fixture
def stack(tmp_path: Path, procs: list[Proc]) -> Iterator[dict[str, Any]]:
    data = tmp_path / "data"
    today = dt.datetime.now(dt.UTC).date()
    write_hdb(data / "hdb", [today - dt.timedelta(days=d) for d in (3, 2, 1)])
    tp = start_tp(tmp_path)
    procs.append(tp)
    config = write_config(
        tmp_path / "stack.toml",
        {
            "tickerplant": dict(EPHEMERAL_TP),
            "rdb": {"address": "tcp://127.0.0.1:0"},
            "hdb": {"address": "tcp://127.0.0.1:0"},
        },
    )
    common = ["--config", str(config), "--data-dir", str(data)]
    rdbs, hdbs = [], []
    for k in range(SHARDS):
        rdbs.append(
            Proc(
                ["rdb", *common, "--tp", str(tp.info["address"]), "--shard", f"{k}/{SHARDS}"],
                tmp_path,
                f"rdb{k}",
            )
        )
        procs.append(rdbs[-1])
        hdbs.append(Proc(["hdb", *common, "--shard", f"{k}/{SHARDS}"], tmp_path, f"hdb{k}"))
        procs.append(hdbs[-1])
    # The clients of these tests all come from one address: room for the soak's twenty.
    gateway_config = write_config(tmp_path / "gateway.toml", {"gateway": {"client_queries": 24}})
    args = ["gateway", "--config", str(gateway_config), "--port", "0", "--refresh", "0.2"]
    args += ["--timeout", "10"]
    args += [a for p in rdbs for a in ("--rdb", str(p.info["address"]))]
    args += [a for p in hdbs for a in ("--hdb", str(p.info["address"]))]
    gateway = Proc(args, tmp_path, "gateway")
    procs.append(gateway)
    yield {
        "tp": str(tp.info["address"]),
        "rdbs": rdbs,
        "hdbs": hdbs,
        "url": gateway.info["url"],
        "today": today,
    }


def reference(stack: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """One DuckDB with every row every backend holds, read from the backends directly."""
    con = duckdb.connect()
    for name in ("trade", "quote"):
        parts = []
        for proc in stack["rdbs"] + stack["hdbs"]:
            with QueryClient(str(proc.info["address"]), 10) as c:
                parts.append(c.query(f"SELECT * FROM {name}").table)
        names = [*default_schemas()[name].column_names, "date"]  # the logical order
        table = pa.concat_tables([p.select(names) for p in parts], promote_options="permissive")
        con.register(name, table)
    return con


def rdb_rows(stack: dict[str, Any], table: str) -> int:
    total = 0
    for proc in stack["rdbs"]:
        with QueryClient(str(proc.info["address"]), 10) as c:
            total += c.query(f"SELECT count(*) FROM {table}").table.column(0)[0].as_py()
    return total


QUERIES = [
    (
        "SELECT sym, date, sum(price * size) / sum(size) AS vwap, count(*) AS n FROM trade "
        "GROUP BY sym, date ORDER BY sym, date"
    ),
    "SELECT date, count(*) AS n, sum(size) AS v FROM trade GROUP BY date ORDER BY date",
    # The tickerplant stamps a whole batch with one time: order past days only by time.
    "SELECT sym, first(price ORDER BY time) AS o, last(price ORDER BY time) AS c FROM trade "
    "WHERE date < current_date GROUP BY sym ORDER BY sym",
    "SELECT * FROM trade WHERE sym = 'IBM' ORDER BY time DESC, price, size LIMIT 7",
    # Quotes of one batch share a time, so which of them ASOF matches is arbitrary: compare
    # the matched time, not the matched quote's values.
    (
        "SELECT t.sym, count(*) AS n, min(q.time) AS qt, count(q.time) AS m "
        "FROM trade t ASOF JOIN quote q "
        "ON t.sym = q.sym AND t.date = q.date AND t.time >= q.time GROUP BY t.sym ORDER BY t.sym"
    ),
    (
        "SELECT sym, time, sum(size) OVER (PARTITION BY sym ORDER BY time) AS c FROM trade "
        "ORDER BY time, sym LIMIT 50"
    ),
]


def test_gateway_answers_equal_one_duckdb_over_real_backends(stack):
    with Publisher(stack["tp"]) as pub:
        for i in range(0, 600, 100):
            pub.publish("trade", today_trades(i, 100))
            pub.publish("quote", today_quotes(i, 100))
        pub.flush()
    wait_until(lambda: rdb_rows(stack, "trade") == 600, 20, "600 trades in the RDBs")
    wait_until(lambda: rdb_rows(stack, "quote") == 600, 20, "600 quotes in the RDBs")
    ref = reference(stack)
    with Client(stack["url"]) as client:
        wait_until(lambda: client.health()["status"] == "ok", 10, "every backend up")
        for sql in QUERIES:
            assert_same_answer(client.query(sql), ref.sql(sql).to_arrow_table(), True, sql)
        today = stack["today"]
        plan = client.plan(f"SELECT count(*) FROM trade WHERE date = '{today}' AND sym = 'IBM'")
        assert plan["mode"] == "single" and plan["backends"][0].startswith("rdb:")
        trade = client.table("trade")
        assert trade["rows"]["rdb"] == 600 and trade["rows"]["hdb"] == 400 + 450 + 500


def compactions(stack: dict[str, Any]) -> list[int]:
    out = []
    for proc in stack["rdbs"]:
        with QueryClient(str(proc.info["address"]), 10) as c:
            out.append(int(c.info()["compactions"]))
    return out


def test_sym_filters_over_compacted_rdbs_equal_one_duckdb(stack):
    """RDBs told a query's syms scan only those rows (grouped compacted batches, filtered
    newer ones): the answers must not change."""
    with Publisher(stack["tp"]) as pub:
        for i in range(0, 900, 3):  # small acknowledged batches: every RDB compacts
            pub.publish("trade", today_trades(i, 3))
            pub.flush()
    wait_until(lambda: rdb_rows(stack, "trade") == 900, 30, "900 trades in the RDBs")
    wait_until(lambda: min(compactions(stack)) >= 1, 20, "every RDB compacted")
    with Publisher(stack["tp"]) as pub:  # and a tail appended since, not yet compacted
        pub.publish("trade", today_trades(900, 30))
    wait_until(lambda: rdb_rows(stack, "trade") == 930, 20, "930 trades in the RDBs")
    ref = reference(stack)
    today = stack["today"]
    queries = [
        "SELECT time, sym, price, size FROM trade WHERE sym = 'IBM' ORDER BY time, price, size",
        f"SELECT sym, count(*) AS n, sum(size) AS v FROM trade WHERE date = '{today}' "
        "AND sym IN ('AAPL', 'NVDA', 'META') GROUP BY sym ORDER BY sym",
        "SELECT count(*) AS n FROM trade WHERE sym = 'NOPE'",
    ]
    with Client(stack["url"]) as client:
        plan = client.plan(queries[1])
        assert plan["fetches"][0]["syms"] == {"trade": ["AAPL", "META", "NVDA"]}
        for sql in queries:
            assert_same_answer(client.query(sql), ref.sql(sql).to_arrow_table(), True, sql)


FEED_ROWS_PER_S = 100_000
FEED_BATCH_ROWS = 1000
LOAD_S = 6.0
WARM_UP_S = 1.0


def run_feed(tp: str, ready: Any, stop: Any, sent: Any) -> None:
    """A feedhandler process: 1000-row batches, 100 a second, until ``stop`` is set."""
    with tickdb.Publisher(tp) as pub:
        pub.publish("trade", today_trades(0, FEED_BATCH_ROWS))
        pub.flush()  # connected and acknowledged: the clock starts now, not at import
        sent.value += FEED_BATCH_ROWS
        ready.set()
        start = time.monotonic() - FEED_BATCH_ROWS / FEED_ROWS_PER_S
        while not stop.is_set():
            pub.publish("trade", today_trades(sent.value, FEED_BATCH_ROWS))
            sent.value += FEED_BATCH_ROWS
            ahead = start + sent.value / FEED_ROWS_PER_S - time.monotonic()
            if ahead > 0:
                stop.wait(ahead)  # pacing the feed at 100k rows/s, not waiting on state
        pub.flush()


@pytest.mark.slow
def test_twenty_query_clients_do_not_stall_a_100k_rows_per_s_feed(stack):
    """A 100k rows/s feed (1000-row batches, 100 a second) with 20 clients querying.

    The feed is its own process, as a feedhandler is (in the clients' process it would stall
    behind their GIL and publish in bursts). Lag is the RDBs' own measure (``info()``: now
    minus the tickerplant's ``ts_recv`` of the last applied record, and the p99 over the
    records applied in the last seconds), sampled every 50 ms; both stay under 100 ms after
    a second of warm-up. Every answer is right: past days never change, today's count only
    grows, and once the feed stops the gateway returns exactly what was sent.
    """
    spawn = multiprocessing.get_context("spawn")
    feed_ready, feed_stop, sent = spawn.Event(), spawn.Event(), spawn.Value("q", 0)
    feed = spawn.Process(
        target=run_feed, args=(stack["tp"], feed_ready, feed_stop, sent), daemon=True
    )
    stop = threading.Event()
    lags: list[float] = []
    p99s: dict[str, float] = {}
    counts: dict[int, list[int]] = {i: [] for i in range(20)}
    ibm_counts: dict[int, list[int]] = {i: [] for i in range(20)}
    errors: list[BaseException] = []
    today = stack["today"]
    on = f"AND date = '{today}'"

    def query(n: int) -> None:
        with Client(stack["url"]) as client:
            while not stop.is_set():
                try:
                    past = client.query(f"SELECT count(*) AS n FROM trade WHERE date < '{today}'")
                    assert past.column("n")[0].as_py() == 400 + 450 + 500
                    now = client.query(f"SELECT count(*) AS n FROM trade WHERE date = '{today}'")
                    counts[n].append(now.column("n")[0].as_py())
                    client.query("SELECT sym, sum(size) FROM trade GROUP BY sym")
                    # RDBs told the syms scan only theirs (grouped batches, built lazily).
                    ibm = client.query(f"SELECT count(*) AS n FROM trade WHERE sym = 'IBM' {on}")
                    ibm_counts[n].append(ibm.column("n")[0].as_py())
                except BaseException as exc:
                    errors.append(exc)
                    return

    def watch_lag() -> None:
        addresses = [str(p.info["address"]) for p in stack["rdbs"]]
        clients = {a: QueryClient(a, 5) for a in addresses}
        started = time.monotonic()
        while not stop.is_set():
            for address, c in clients.items():
                info = c.info()
                if time.monotonic() - started >= WARM_UP_S and info["ingest_lag_ms"] is not None:
                    lags.append(info["ingest_lag_ms"])
                    p99s[address] = info["ingest_lag_p99_ms"]
            stop.wait(0.05)
        for c in clients.values():
            c.close()

    threads = [threading.Thread(target=watch_lag)]
    threads += [threading.Thread(target=query, args=(i,)) for i in range(20)]
    feed.start()
    try:
        assert feed_ready.wait(60), "the feed process did not start"
        for t in threads:
            t.start()
        stop.wait(LOAD_S)
        stop.set()
        for t in threads:
            t.join(30)
        feed_stop.set()
        feed.join(30)
        assert feed.exitcode == 0, "the feed process failed"
    finally:
        if feed.is_alive():
            feed.kill()
            feed.join(10)
    assert not errors, errors[:3]
    assert all(counts.values()), "every client got answers"
    assert all(c == sorted(c) for c in counts.values()), "today's count went backwards"
    sampled = sorted(lags)
    p99 = sampled[max(0, int(len(sampled) * 0.99) - 1)]
    print(
        f"\ningest lag over {len(sampled)} samples: median {sampled[len(sampled) // 2]:.1f} ms,"
        f" p99 {p99:.1f} ms, max {sampled[-1]:.1f} ms; RDBs' own p99 (last 5 s): "
        + ", ".join(f"{v:.1f} ms" for v in p99s.values())
        + f"; gateway queries answered: {3 * sum(len(c) for c in counts.values())}"
    )
    assert p99 < 100, sampled[-10:]
    assert len(p99s) == SHARDS and all(v < 100 for v in p99s.values()), p99s
    total = int(sent.value)
    with Client(stack["url"]) as client:
        count = f"SELECT count(*) AS n FROM trade WHERE date = '{today}'"
        wait_until(lambda: client.query(count).column("n")[0].as_py() == total, 20, "all sent")
        by_sym = f"SELECT sym, sum(size) AS v FROM trade WHERE date = '{today}' GROUP BY sym"
        got = client.query(by_sym + " ORDER BY sym")
        ibm = client.query(f"SELECT count(*) AS n FROM trade WHERE sym = 'IBM' {on}")
    # What was sent, rebuilt: today_trades is deterministic.
    con = duckdb.connect()
    con.register("sent_rows", today_trades(0, total))
    expect = con.sql("SELECT sym, sum(size) AS v FROM sent_rows GROUP BY sym ORDER BY sym")
    assert got.to_pylist() == expect.to_arrow_table().to_pylist()
    ibm_sent = con.sql("SELECT count(*) FROM sent_rows WHERE sym = 'IBM'").fetchall()[0][0]
    assert ibm.column("n")[0].as_py() == ibm_sent
    for seen in ibm_counts.values():  # today's count of one sym only grows, too
        assert seen and seen == sorted(seen) and seen[-1] <= ibm_sent
