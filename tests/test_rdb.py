"""The RDB process: gapless join, SQL over the live day, limits, bad input, kill -9 recovery."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.harness import wait_until
from support.rdb_stack import SYMS, Stack, client, publish_trades, quotes, scalar, trades, wait_rows

from queries.service import QueryError
from tickerplant.protocol import shard_of
from tickerplant.publisher import Publisher


def test_rdb_joins_late_without_gap_and_answers_sql_while_ingesting(
    tmp_path: Path, procs: list
) -> None:
    stack = Stack(tmp_path, procs)
    publish_trades(stack.address, 0, 3000)  # before the RDB exists: replayed on join
    rdb = stack.start_rdb()
    c = client(rdb)
    with Publisher(stack.address) as pub:
        for i in range(3000, 6000, 50):
            pub.publish("trade", trades(i, 50))
            pub.publish("quote", quotes(i, 10))
            # Queries run while ingest goes on and always see whole updates.
            assert scalar(c, "SELECT count(*) FROM trade") % 50 == 0
        pub.flush()
    wait_rows(c, "trade", 6000)
    result = c.query("SELECT count(*), count(DISTINCT size), sum(size) FROM trade").table
    assert result.to_pylist() == [
        {"count_star()": 6000, "count(DISTINCT size)": 6000, "sum(size)": sum(range(6000))}
    ]
    wait_rows(c, "quote", 600)
    # The date column is the session date, and the analytics macros are there.
    info = c.info()
    assert info["role"] == "rdb" and info["dates"] == [info["date"]]
    assert scalar(c, "SELECT DISTINCT date::VARCHAR FROM trade") == info["date"]
    vwap = c.query("SELECT sym, vwap(price, size) AS v FROM trade GROUP BY sym ORDER BY sym")
    assert vwap.table.column("sym").to_pylist() == sorted(SYMS)
    assert info["tables"]["trade"]["rows"] == 6000
    assert info["tables"]["trade"]["columns"][:2] == [["time", "timestamp"], ["sym", "symbol"]]
    assert info["seq"] <= info["tp_seq"]


def test_rdb_limits_and_bad_input_get_clear_errors_and_it_keeps_running(
    tmp_path: Path, procs: list
) -> None:
    stack = Stack(tmp_path, procs, max_rows=100, query_timeout_s=1.0)
    publish_trades(stack.address, 0, 1000)
    rdb = stack.start_rdb()
    c = client(rdb)
    wait_rows(c, "trade", 1000)
    result = c.query("SELECT * FROM trade")
    assert result.truncated and result.table.num_rows == 100
    assert not c.query("SELECT * FROM trade LIMIT 10").truncated
    with pytest.raises(QueryError) as bad:
        c.query("SELEC nonsense")
    assert bad.value.kind == "bad_query"
    with pytest.raises(QueryError) as unknown:
        c.query("SELECT * FROM no_such_table")
    assert unknown.value.kind == "bad_query" and "no_such_table" in str(unknown.value)
    with pytest.raises(QueryError) as forbidden:
        c.query("SELECT * FROM read_parquet('/etc/passwd')")
    assert forbidden.value.kind == "forbidden"
    with pytest.raises(QueryError) as slow:
        c.query("SELECT count(*) FROM range(1000000000000) a")
    assert slow.value.kind == "timeout"
    assert rdb.alive()
    assert scalar(c, "SELECT count(*) FROM trade") == 1000


def test_rdb_holds_only_its_shard_or_syms(tmp_path: Path, procs: list) -> None:
    stack = Stack(tmp_path, procs)
    shard1 = stack.start_rdb("rdb-1", "--shard", "1/2")
    publish_trades(stack.address, 0, 1000)
    expected = [s for s in SYMS if shard_of(s, 2) == 1]
    c = client(shard1)
    wait_rows(c, "trade", sum(1 for i in range(1000) if SYMS[i % 5] in expected))
    got = c.query("SELECT DISTINCT sym FROM trade ORDER BY sym").table.column(0).to_pylist()
    assert got == sorted(expected)
    assert c.info()["shard"] == [1, 2]


def test_kill9_restart_gives_identical_contents_without_doubling_chunks(
    tmp_path: Path, procs: list
) -> None:
    # A 1 MB cap makes the RDB spill intraday chunks, which a restart must not double.
    stack = Stack(tmp_path, procs, memory_limit_mb=1)
    rdb = stack.start_rdb()
    c = client(rdb)
    publish_trades(stack.address, 0, 60_000, per_batch=2000)
    wait_rows(c, "trade", 60_000)
    wait_until(lambda: c.info()["spills"] > 0, 10, "a spill to intraday chunks")
    publish_trades(stack.address, 60_000, 1000)
    wait_rows(c, "trade", 61_000)
    sql = "SELECT count(*), count(DISTINCT size), sum(size), min(size), max(size) FROM trade"
    before = c.query(sql).table.to_pylist()
    rdb.kill9()
    publish_trades(stack.address, 61_000, 1000)  # arrives while the RDB is down
    restarted = stack.start_rdb("rdb-again")
    c2 = client(restarted)
    wait_rows(c2, "trade", 62_000)
    after = c2.query(sql).table.to_pylist()
    assert after == [
        {
            **before[0],
            "count_star()": 62_000,
            "count(DISTINCT size)": 62_000,
            "sum(size)": sum(range(62_000)),
            "max(size)": 61_999,
        }
    ]
    assert c2.info()["skipped_on_replay"] > 0  # rows already in chunks were not re-applied
    assert scalar(c2, "SELECT count(*) FROM trade") == 62_000
