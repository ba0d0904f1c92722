"""Grouped syms on the RDB: a query promised its syms reads only their rows, same answers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st
from support.rdb_engine import DAY, DAY_NS, SCHEMAS, request

from rdb.query import QueryEngine
from rdb.store import COMPACT_AFTER_BATCHES, COMPACT_ROWS, Store
from rdb.symindex import GroupCache, SymGroups, select

SYMS = ["A", "B", "C", "D", "E"]


def trades(start: int, rows: int) -> pa.Table:
    # Syms in an irregular pattern, so each sym's rows are scattered through the batches.
    idx = np.arange(start, start + rows)
    syms = np.array(SYMS)[(idx * 7 + idx // 3) % len(SYMS)]
    return pa.table(
        {
            "time": pa.array(DAY_NS + idx, pa.timestamp("ns")),
            "sym": pa.array(syms),
            "price": 100.0 + idx,
            "size": idx,
        },
        schema=SCHEMAS["trade"].arrow,
    )


def fill(store: Store, rows: int, batch: int) -> None:
    """``rows`` trades in ``batch``-row appends, compacted as the maintenance thread does."""
    for start in range(0, rows, batch):
        with store.lock:
            store.live.append_locked("trade", trades(start, batch).to_batches(), 1)
        store.live.compact("trade")


def run(engine: QueryEngine, sql: str, syms: dict[str, frozenset[str]] | None = None) -> list:
    """``sql`` as the query service runs it, with the sender's promise ``syms``."""
    return engine.prepare_with_dates(request(sql, syms)).con.sql(sql).fetchall()


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.integers(0, 7), min_size=1, max_size=300),
    wanted=st.sets(st.sampled_from([*SYMS, "F", "G", "nope"]), max_size=4),
)
def test_groups_give_each_syms_rows_in_order(codes: list[int], wanted: set[str]) -> None:
    names = [*SYMS, "F", "G", None]  # a null sym matches no sym
    syms = pa.array([names[c] for c in codes], pa.string())
    plain = pa.table({"time": pa.array(range(len(codes)), pa.timestamp("ns")), "sym": syms})
    batch = plain.set_column(1, "sym", pc.dictionary_encode(syms)).to_batches()[0]
    expect = [i for i, c in enumerate(codes) if names[c] in wanted]
    assert SymGroups.of(batch).rows(wanted).tolist() == expect
    for batches, groups in (
        ([batch], {id(batch): SymGroups.of(batch)}),  # indexed
        ([batch], {}),  # interned without an index: filtered
        (plain.to_batches(), {}),  # plain: filtered
    ):
        got = pa.Table.from_batches(select(batches, groups, wanted))
        assert got.column("time").cast(pa.int64()).to_pylist() == expect


def test_an_index_is_built_once_per_batch_and_let_go_with_it(
    rdb: tuple[Store, QueryEngine],
) -> None:
    store, _ = rdb
    fill(store, 2 * COMPACT_ROWS, COMPACT_ROWS // COMPACT_AFTER_BATCHES)  # two full batches
    fill(store, COMPACT_AFTER_BATCHES * 1000 + 5000, 1000)  # a partial one and a plain tail
    interned, plain = store.snapshot().dates[DAY]["trade"].parts()
    assert len(interned) == 3 and plain  # two full compacted batches, a partial one, a tail
    cache = GroupCache()
    want = [b.filter(pc.equal(b.column(1).cast(pa.string()), "C")) for b in interned]
    assert cache.select("scan", interned, {"C"}) == want
    assert cache.built == 3
    assert cache.select("scan", interned, {"A", "B"})
    assert cache.built == 3  # same batches: their indexes are reused
    fill(store, COMPACT_AFTER_BATCHES * 1000, 1000)  # the partial batch is merged again
    again, _ = store.snapshot().dates[DAY]["trade"].parts()
    assert again[:2] == interned[:2] and again[2] is not interned[2]
    cache.select("scan", again, {"C"})
    assert cache.built == 3 + len(again) - 2  # only the batches not seen before
    assert {id(b) for b in again} == set(cache._scans["scan"])  # the merged one let go
    cache.forget(["scan"])
    assert not cache._scans


def test_a_promised_query_reads_only_its_syms_and_answers_as_without(
    rdb: tuple[Store, QueryEngine],
) -> None:
    store, engine = rdb
    # Compacted batches with an index, then a tail of plain ones appended since.
    fill(store, 2 * COMPACT_ROWS + 5000, 1000)
    queries = {
        "SELECT time, price FROM trade WHERE sym = 'B'": frozenset({"B"}),
        "SELECT sym, count(*), sum(size), min(time), max(price) FROM trade WHERE sym IN ('A', 'D') "
        "GROUP BY sym ORDER BY sym": frozenset({"A", "D"}),
        "SELECT count(*) FROM trade WHERE sym = 'nope'": frozenset({"nope"}),
    }
    for sql, syms in queries.items():
        want = run(engine, sql)
        got = run(engine, sql, {"trade": syms})
        assert got == want and want, sql
    # The scans held only the promised rows: a query that breaks its promise shows it.
    by_sym = "SELECT sym, count(*) FROM trade GROUP BY sym ORDER BY sym"
    c_rows = run(engine, "SELECT count(*) FROM trade WHERE sym = 'C'")[0][0]
    assert run(engine, by_sym, {"trade": frozenset({"C"})}) == [("C", c_rows)]
    assert len(run(engine, by_sym)) == len(SYMS)  # no promise: the whole table again
    # Rows come in arrival order, as over the whole table.
    times = run(engine, "SELECT time FROM trade WHERE sym = 'E'", {"trade": frozenset({"E"})})
    assert times == sorted(times)


def test_promised_scans_are_kept_while_the_promise_and_the_data_stay(
    rdb: tuple[Store, QueryEngine],
) -> None:
    store, engine = rdb
    fill(store, COMPACT_ROWS + 500, 1000)
    one = "SELECT count(*) FROM trade WHERE sym = 'A'"
    want = run(engine, one)
    assert run(engine, one, {"trade": frozenset({"A"})}) == want
    before = engine.registrations
    assert run(engine, one, {"trade": frozenset({"A"})}) == want
    assert engine.registrations == before  # same promise, same batches: nothing to do
    assert run(engine, one, {"trade": frozenset({"A", "B"})}) == want
    assert engine.registrations == before + 2  # another promise: both scans again
    with store.lock:
        store.live.append_locked("trade", trades(10**6, 3).to_batches(), 2)
    grown = run(engine, "SELECT count(*) FROM trade WHERE sym IN ('A', 'B')")
    assert (
        run(
            engine,
            "SELECT count(*) FROM trade WHERE sym IN ('A', 'B')",
            {"trade": frozenset({"A", "B"})},
        )
        == grown
    )


def test_a_table_macro_query_ignores_the_promise(rdb: tuple[Store, QueryEngine]) -> None:
    store, engine = rdb
    fill(store, COMPACT_ROWS, 2000)
    # The macro reads trade by a name built at run time, which the gateway cannot see.
    macro = "SELECT count(*) FROM ohlcv('tr' || 'ade', INTERVAL 1 MINUTE)"
    want = run(engine, macro)
    assert run(engine, macro, {"trade": frozenset({"A"})}) == want
