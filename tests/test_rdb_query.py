"""The RDB's query engine and compaction, in process: cursor reuse never shows stale data."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from support.rdb_engine import DAY, DAY_NS, SCHEMAS, request

from queries.service import QueryClient, QueryServer
from rdb.hdbio import write_chunk, write_partition
from rdb.query import QueryEngine, tables_named
from rdb.recovery import RdbState
from rdb.store import COMPACT_AFTER_BATCHES, COMPACT_ROWS, Chunk, Store
from rdb.symbols import intern, is_interned, parts

TRADE = SCHEMAS["trade"]


def trades(start: int, rows: int) -> pa.Table:
    idx = range(start, start + rows)
    return pa.table(
        {
            "time": pa.array([DAY_NS + i for i in idx], pa.timestamp("ns")),
            "sym": [f"S{i % 3}" for i in idx],
            "price": [100.0 + i for i in idx],
            "size": list(idx),
        },
        schema=SCHEMAS["trade"].arrow,
    )


def append(store: Store, table: pa.Table, seq: int) -> None:
    with store.lock:
        store.live.append_locked("trade", table.to_batches(), seq)


def ask(engine: QueryEngine, sql: str) -> duckdb.DuckDBPyRelation:
    """``sql`` run on a cursor set up for it, as the query service does."""
    return engine.prepare(sql).sql(sql)


def count(engine: QueryEngine, sql: str = "SELECT count(*) FROM trade") -> int:
    return int(engine.prepare().sql(sql).fetchall()[0][0])


def test_reused_cursor_sees_each_new_snapshot_and_reregisters_only_changed_tables(
    rdb: tuple[Store, QueryEngine],
) -> None:
    store, engine = rdb
    assert count(engine) == 0
    before = engine.registrations
    append(store, trades(0, 10), 1)
    assert count(engine) == 10
    assert engine.registrations == before + 1  # trade changed, quote did not
    assert count(engine) == 10
    assert engine.registrations == before + 1  # nothing changed: nothing registered
    append(store, trades(10, 5), 2)
    assert count(engine, "SELECT sum(size) FROM trade") == sum(range(15))
    assert engine.cursors_made == 1 and engine.view_rebuilds == 1


def quotes(start: int, rows: int) -> pa.Table:
    idx = range(start, start + rows)
    return pa.table(
        {
            "time": pa.array([DAY_NS + i for i in idx], pa.timestamp("ns")),
            "sym": [f"S{i % 3}" for i in idx],
            "bid": [99.0 + i for i in idx],
            "ask": [101.0 + i for i in idx],
            "bsize": list(idx),
            "asize": list(idx),
        },
        schema=SCHEMAS["quote"].arrow,
    )


def append_both(store: Store, start: int, rows: int, seq: int) -> None:
    with store.lock:
        store.live.append_locked("trade", trades(start, rows).to_batches(), seq)
        store.live.append_locked("quote", quotes(start, rows).to_batches(), seq)


def test_tables_named_errs_only_towards_more_tables() -> None:
    names = ["trade", "quote", "order"]
    assert tables_named("select count(*) from trade", names) == {"trade"}
    assert tables_named('SELECT * FROM "TRADE" t, Quote q', names) == {"trade", "quote"}
    assert tables_named("select * from trade order by time", names) == {"trade", "order"}
    assert tables_named("select 1", names) == set()
    # Table macros take names as strings, which a query could build: every table.
    assert tables_named("from ohlcv('tr' || 'ade', interval 1 minute)", names) is None


def test_a_query_sets_up_only_the_tables_it_names_and_sees_them_current(
    rdb: tuple[Store, QueryEngine],
) -> None:
    store, engine = rdb
    append_both(store, 0, 10, 1)
    before = engine.registrations
    trade_only = "SELECT count(*) FROM trade"
    assert ask(engine, trade_only).fetchall() == [(10,)]
    assert engine.registrations == before + 1  # quote changed too, but is not read
    both = "SELECT (SELECT count(*) FROM trade), (SELECT sum(bsize) FROM quote)"
    assert ask(engine, both).fetchall() == [(10, sum(range(10)))]
    assert engine.registrations == before + 2  # quote now; trade was already current
    append_both(store, 10, 5, 2)
    quote_only = "SELECT count(*) FROM quote"
    assert ask(engine, quote_only).fetchall() == [(15,)]
    # The trade registration left behind is older, and a query naming trade renews it.
    assert ask(engine, both).fetchall() == [(15, sum(range(15)))]
    macro = "SELECT count(*) FROM ohlcv('tr' || 'ade', INTERVAL 1 MINUTE)"
    append_both(store, 15, 5, 3)
    counted = engine.registrations
    engine.prepare(macro)  # a built table name: every changed table is set up
    assert engine.registrations == counted + 2


def test_a_new_date_rebuilds_views_over_every_table_even_one_a_query_skipped(
    rdb: tuple[Store, QueryEngine],
) -> None:
    store, engine = rdb
    append_both(store, 0, 10, 1)
    trade_only = "SELECT count(*) FROM trade"
    assert ask(engine, trade_only).fetchall() == [(10,)]
    store.roll(DAY, DAY + dt.timedelta(days=1), 2)
    append_both(store, 10, 4, 3)
    assert ask(engine, trade_only).fetchall() == [(14,)]
    by_date = "SELECT date::VARCHAR, count(*) FROM quote GROUP BY ALL ORDER BY 1"
    want = [("2024-01-02", 10), ("2024-01-03", 4)]
    assert ask(engine, by_date).fetchall() == want


def test_views_follow_chunks_and_dates_and_rdb_dates_matches_the_snapshot(
    rdb: tuple[Store, QueryEngine], tmp_path: Path
) -> None:
    store, engine = rdb
    append(store, trades(0, 10), 1)
    assert count(engine) == 10
    path = tmp_path / "chunk-0.parquet"
    pq.write_table(trades(100, 7), path)
    with store.lock:
        store.live.tables["trade"].chunks.append(Chunk("trade", path, 1, 7))
    assert count(engine) == 17  # memory and chunk together
    store.roll(DAY, DAY + dt.timedelta(days=1), 2)
    append(store, trades(200, 3), 3)
    dates = engine.prepare().sql("SELECT date::VARCHAR, state FROM rdb_dates ORDER BY 1")
    assert dates.fetchall() == [("2024-01-02", "writing"), ("2024-01-03", "live")]
    by_date = "SELECT date::VARCHAR, count(*) FROM trade GROUP BY ALL ORDER BY 1"
    assert engine.prepare().sql(by_date).fetchall() == [("2024-01-02", 17), ("2024-01-03", 3)]
    prepared = engine.prepare_with_dates(request(by_date))  # the dates: the cursor's snapshot
    assert prepared.meta == {"dates": ["2024-01-02", "2024-01-03"]}
    assert prepared.con.sql(by_date).fetchall() == [("2024-01-02", 17), ("2024-01-03", 3)]
    store.drop(DAY)
    assert engine.prepare().sql(by_date).fetchall() == [("2024-01-03", 3)]
    assert engine.prepare_with_dates(request(by_date)).meta == {"dates": ["2024-01-03"]}
    assert engine.view_rebuilds == 4  # start, chunk, roll, drop: never per query


def test_worker_threads_take_cursors_prepared_up_front_with_the_macros(tmp_path: Path) -> None:
    store = Store(SCHEMAS, DAY)
    append(store, trades(0, 30), 1)
    engine = QueryEngine(store, intraday_dir=tmp_path, cursors=2)
    server = QueryServer(
        "tcp://127.0.0.1:0",
        engine.prepare_with_dates,
        info=dict,
        timeout_s=10,
        max_rows=1000,
        workers=2,
    )
    server.start()
    try:
        sql = "SELECT sym, vwap(price, size) AS v FROM trade GROUP BY sym ORDER BY sym"
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with QueryClient(server.endpoint, timeout_s=10) as client:
                    for _ in range(10):
                        assert client.query(sql).table.num_rows == 3
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert engine.cursors_made == 2  # both workers found a cursor ready
    finally:
        server.close()
        engine.close()


def test_compaction_merges_only_the_small_tail_and_keeps_row_order() -> None:
    store = Store(SCHEMAS, DAY)
    day = store.live
    rows = 0
    for _ in range(2):
        for _ in range(COMPACT_AFTER_BATCHES):
            append(store, trades(rows, 3000), 1)
            rows += 3000
        assert day.compact("trade")
    batches = day.tables["trade"].batches
    full = [b for b in batches if b.num_rows == COMPACT_ROWS]
    assert len(full) == rows // COMPACT_ROWS
    assert len(batches) == len(full) + 1  # one partial tail
    for _ in range(COMPACT_AFTER_BATCHES):
        append(store, trades(rows, 3000), 1)
        rows += 3000
    assert day.compact("trade")
    after = day.tables["trade"].batches
    assert all(a is b for a, b in zip(after, full, strict=False))  # full batches untouched
    assert not day.compact("trade")  # nothing small enough left to merge
    table = pa.Table.from_batches(after)
    assert table.column("size").to_pylist() == list(range(rows))
    # Compacted batches keep their symbols interned, as kdb+ does; ingest's stay plain.
    assert all(b.schema.field("sym").type == pa.dictionary(pa.int32(), pa.string()) for b in after)
    assert table.column("sym").cast(pa.string()).to_pylist() == [f"S{i % 3}" for i in range(rows)]


def test_interned_and_plain_batches_answer_alike_and_write_down_plain(
    rdb: tuple[Store, QueryEngine], tmp_path: Path
) -> None:
    store, engine = rdb
    sqls = [
        "SELECT sym, count(*), sum(size), min(time) FROM trade GROUP BY sym ORDER BY sym",
        "SELECT size FROM trade WHERE sym = 'S1' ORDER BY time",
        "SELECT * FROM trade",  # no ORDER BY: rows come back in arrival order
    ]
    rows = 0
    for _ in range(COMPACT_AFTER_BATCHES):
        append(store, trades(rows, 100), 1)
        rows += 100
    before = [ask(engine, q).to_arrow_table() for q in sqls]
    assert store.live.compact("trade")
    after = [ask(engine, q).to_arrow_table() for q in sqls]
    for old, new in zip(before, after, strict=True):
        assert new.equals(old)
    assert after[2].schema.field("sym").type == pa.string()  # DuckDB answers VARCHAR
    append(store, trades(rows, 7), 2)  # plain batches after the interned ones
    head, rest = parts(store.live.tables["trade"].batches, TRADE.arrow)
    assert head and all(is_interned(b) for b in head) and len(rest) == 1
    everything = ask(engine, sqls[2]).to_arrow_table()
    assert everything.column("size").to_pylist() == list(range(rows + 7))
    # Write-down and intraday chunks get the table's own (plain) schema.
    batches = list(store.live.tables["trade"].batches)
    chunk = write_chunk(RdbState(tmp_path), tmp_path / "intraday", TRADE, DAY, 2, batches)
    assert pq.read_schema(chunk.path).field("sym").type == pa.string()
    written = write_partition(
        tmp_path / "hdb", TRADE, DAY, (0, 1), [], batches, memory_limit_mb=256
    )
    on_disk = pq.read_table(written.path)
    assert on_disk.schema.field("sym").type == pa.string()
    assert sorted(on_disk.column("size").to_pylist()) == list(range(rows + 7))


def test_a_plain_batch_among_interned_ones_comes_back_all_plain_in_order() -> None:
    plain_batch = trades(0, 3).to_batches()[0]
    interned = intern(trades(3, 2)).to_batches()[0]
    head, rest = parts([plain_batch, interned], TRADE.arrow)
    assert head == ()
    table = pa.Table.from_batches(list(rest), schema=TRADE.arrow)
    assert table.column("size").to_pylist() == [0, 1, 2, 3, 4]
    assert table.column("sym").to_pylist() == ["S0", "S1", "S2", "S0", "S1"]
