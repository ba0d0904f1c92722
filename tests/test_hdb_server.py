"""A real ``tickdb hdb`` process over real sockets, against plain DuckDB over the same files."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zmq
from support.harness import Proc, wait_until
from support.hdb_data import TRADE, make_trades

from hdb.catalog import Catalog
from hdb.layout import Shard, partition_file
from hdb.notify import reload_hdbs
from hdb.protocol import RELOAD, RELOADED
from hdb.writer import write_partition
from queries.service import QueryClient, QueryError

D1, D2, D3 = dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 4)


def start_hdb(procs: list[Proc], data: Path, *extra: str, name: str = "hdb") -> QueryClient:
    args = ["hdb", "--data-dir", str(data), "--address", "tcp://127.0.0.1:0", *extra]
    proc = Proc(args, data.parent, name)
    procs.append(proc)
    return QueryClient(proc.info["address"], timeout_s=10)


def plain(data: Path, sql: str) -> pa.Table:
    """The same query on plain DuckDB over the lake's glob: the independent answer."""
    glob = data / "hdb" / "trade" / "*" / "*.parquet"
    con = duckdb.connect()
    con.execute(
        f"create view trade as select date, * exclude (date) from read_parquet('{glob}', "
        "hive_partitioning = true, hive_types = {'date': DATE})"
    )
    return con.sql(sql).to_arrow_table()


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for k, day in enumerate((D1, D2)):
        table = make_trades(20_000, syms=10, seed=k)
        shift = pa.array([dt.timedelta(days=k)] * table.num_rows, pa.duration("ns"))
        table = table.set_column(0, "time", pa.compute.add(table.column("time"), shift))
        write_partition(data / "hdb", TRADE, day, table)
    return data


QUERIES = [
    "select sym, sum(price * size) / sum(size) as vwap from trade group by sym order by sym",
    "select sym, time_bucket(interval 1 minute, time) as minute, first(price order by time) o, "
    "max(price) h, min(price) l, last(price order by time) c, sum(size) v from trade "
    "where date = DATE '2024-01-03' group by all order by sym, minute",
    "select * from trade where sym = 'S003' order by date, time",
    "select date, count(*) n from trade group by date order by date",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_answers_match_plain_duckdb(procs: list[Proc], lake: Path, sql: str) -> None:
    client = start_hdb(procs, lake)
    result = client.query(sql)
    assert not result.truncated
    assert result.table.equals(plain(lake, sql))
    client.close()


def test_info_lists_tables_dates_and_rows(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    info = client.info()
    assert info["role"] == "hdb" and info["shard"] == [0, 1]
    trade = info["tables"]["trade"]
    assert trade["dates"] == ["2024-01-02", "2024-01-03"]
    assert trade["rows"] == 40_000
    assert trade["columns"] == [[c.name, c.qtype] for c in TRADE.columns]
    assert info["tables"]["quote"]["dates"] == []
    client.close()


def test_table_without_partitions_is_an_empty_typed_view(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    table = client.query("select * from quote").table
    assert table.num_rows == 0
    assert table.schema.names == ["date", "time", "sym", "bid", "ask", "bsize", "asize"]
    assert table.schema.field("time").type == pa.timestamp("ns")
    client.close()


def test_analytics_macros_are_registered(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    got = client.query("select sym, vwap(price, size) v from trade group by sym order by sym")
    want = plain(lake, QUERIES[0])
    assert got.table.column("v").to_pylist() == pytest.approx(want.column("vwap").to_pylist())
    client.close()


def test_date_filter_never_opens_other_partitions(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    # Damage D2's file in place (never done by tickdb): only a query that opens it can fail.
    partition_file(lake / "hdb", "trade", D2, Shard()).write_bytes(b"not parquet at all")
    result = client.query("select count(*) n from trade where date = DATE '2024-01-02'")
    assert result.table.column("n").to_pylist() == [20_000]
    with pytest.raises(QueryError):
        client.query("select count(*) from trade where date = DATE '2024-01-03'")
    assert client.query("select 1 x").table.num_rows == 1
    client.close()


def test_new_partition_appears_on_reload_only(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    count = "select count(*) n from trade"
    assert client.query(count).table.column("n").to_pylist() == [40_000]
    write_partition(lake / "hdb", TRADE, D3, make_trades(5_000, seed=7))
    assert client.query(count).table.column("n").to_pylist() == [40_000]
    reply = client.call(RELOAD)
    assert reply[0] == RELOADED
    assert json.loads(reply[1])["tables"]["trade"]["dates"][-1] == "2024-01-04"
    assert client.query(count).table.column("n").to_pylist() == [45_000]
    client.close()


def test_footer_cache_is_on_for_the_query_cursors(lake: Path) -> None:
    # Queries run on per-thread cursors, which see only GLOBAL settings.
    catalog = Catalog(lake / "hdb", {"trade": TRADE}, Shard())
    try:
        setting = "select current_setting('parquet_metadata_cache')"
        assert catalog.cursor().sql(setting).fetchall() == [(True,)]
    finally:
        catalog.close()


def replace_same_size(path: Path, table: pa.Table, mtime_ns: int) -> None:
    """Rename a new file over ``path`` as the writer does; no compression or dictionary, so
    tables of one shape give files of one size: only the file itself tells them apart."""
    tmp = path.with_name(f".{path.name}.tmp-test")
    pq.write_table(table, tmp, compression="none", use_dictionary=False)
    os.utime(tmp, ns=(mtime_ns, mtime_ns))
    os.replace(tmp, path)


def test_rewritten_partition_is_read_anew_despite_the_footer_cache(
    procs: list[Proc], lake: Path
) -> None:
    """The HDB caches Parquet footers (partitions are immutable once published). A partition
    re-written under the same path (a rerun write-down, ``hdb load --if-exists replace``)
    is a new file renamed into place, which the cache must tell apart from the old one,
    even with an equal size and mtime (a coarse clock, a rerun within the same second)."""
    path = partition_file(lake / "hdb", "trade", D1, Shard())
    old = time.time_ns() - 3600 * 10**9  # an old file: nothing keeps it out of the cache
    first = make_trades(12_000, syms=10, seed=8)  # sizes 1..999
    # Sizes above every old one: a stale footer's statistics would skip the row group.
    second = first.set_column(3, first.field("size"), pa.compute.add(first.column("size"), 1000))
    replace_same_size(path, first, old)
    client = start_hdb(procs, lake)
    sql = "select count(*) n, sum(size) s from trade where date = DATE '2024-01-02' and size > 999"
    before = plain(lake, sql)
    assert client.query(sql).table.equals(before)  # the footer is cached now
    size = path.stat().st_size
    replace_same_size(path, second, old)
    assert path.stat().st_size == size
    expected = plain(lake, sql)
    assert before.column("n").to_pylist() == [0] and expected.column("n").to_pylist() == [12_000]
    # No RELOAD: the view lists the same path, and must read the new file behind it.
    assert client.query(sql).table.equals(expected)
    # Through the writer too (another size), as a rerun write-down does.
    write_partition(lake / "hdb", TRADE, D1, make_trades(7_000, syms=10, seed=10))
    assert client.query(sql).table.equals(plain(lake, sql))
    assert client.query("select count(*) n from trade").table.column("n").to_pylist() == [27_000]
    client.close()


def test_vanished_partition_triggers_reload_and_retry(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    shutil.rmtree(partition_file(lake / "hdb", "trade", D1, Shard()).parent)
    result = client.query("select count(*) n from trade")
    assert result.table.column("n").to_pylist() == [20_000]
    assert client.info()["tables"]["trade"]["dates"] == ["2024-01-03"]
    client.close()


def test_shards_serve_their_own_files(procs: list[Proc], tmp_path: Path) -> None:
    data = tmp_path / "data"
    table = make_trades(10_000, syms=10)
    half = table.num_rows // 2
    write_partition(data / "hdb", TRADE, D1, table.slice(0, half), shard=Shard(0, 2))
    write_partition(data / "hdb", TRADE, D1, table.slice(half), shard=Shard(1, 2))
    one = start_hdb(procs, data, "--shard", "1/2", name="hdb1")
    every = start_hdb(procs, data, "--shard", "all", name="hdball")
    count = "select count(*) n from trade"
    assert one.query(count).table.column("n").to_pylist() == [table.num_rows - half]
    assert every.query(count).table.column("n").to_pylist() == [table.num_rows]
    assert one.info()["shard"] == [1, 2] and every.info()["shard"] is None
    one.close()
    every.close()


def test_bad_input_gets_clear_errors_and_the_hdb_keeps_serving(
    procs: list[Proc], lake: Path
) -> None:
    client = start_hdb(procs, lake)
    inside = partition_file(lake / "hdb", "trade", D1, Shard())
    for sql, kind in [
        ("select nope from trade", "bad_query"),
        ("selec 1", "bad_query"),
        (f"select * from read_parquet('{inside}')", "forbidden"),
        (f"select * from '{inside}'", "forbidden"),
        ("copy trade to '/tmp/x.csv'", "forbidden"),
        ("attach '/tmp/x.db'", "forbidden"),
    ]:
        with pytest.raises(QueryError) as info:
            client.query(sql)
        assert info.value.kind == kind, sql
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(client.address)
    for frames in ([b"QUERY", b"{"], [b"WHAT"], [b"QUERY", b"{}", b"x"]):
        sock.send_multipart(frames)
        assert sock.poll(5000)
        assert sock.recv_multipart()[0] == b"ERR"
    sock.close(0)
    assert client.query("select count(*) n from trade").table.column("n").to_pylist() == [40_000]
    proc = procs[-1]
    assert "unknown request tag" in proc.log()
    assert "query failed (bad_query)" in proc.log()
    client.close()


def test_time_and_row_limits(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    limited = client.query("select * from trade", max_rows=100)
    assert limited.table.num_rows == 100 and limited.truncated
    with pytest.raises(QueryError) as info:
        client.query("select count(*) from trade a, trade b where a.price < b.price", timeout_s=0.5)
    assert info.value.kind == "timeout"
    client.close()


def test_client_does_not_hang_when_the_hdb_dies(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    client.timeout_s = 0.5
    assert client.query("select 1 x").table.num_rows == 1
    procs[-1].kill9()
    with pytest.raises(QueryError) as info:
        client.query("select 1 x")
    assert info.value.kind == "unavailable"
    client.close()


def test_reload_hdbs_reports_each_address(procs: list[Proc], lake: Path) -> None:
    client = start_hdb(procs, lake)
    with zmq.Context.instance().socket(zmq.ROUTER) as probe:
        dead = f"tcp://127.0.0.1:{probe.bind_to_random_port('tcp://127.0.0.1')}"
    # The dead address fails at once (nothing listens there), not at the time limit.
    results = reload_hdbs([client.address, dead], timeout_s=10)
    assert results[client.address]["generation"] == 2
    assert isinstance(results[dead], QueryError)
    wait_until(lambda: client.info()["generation"] == 2, what="generation 2")
    client.close()
