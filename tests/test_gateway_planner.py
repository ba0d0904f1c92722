"""Routing rules, plan shapes, safety and failure handling of the router (in-process)."""

from __future__ import annotations

import time

import pytest
from support.gateway_data import TODAY, make_data

from gateway.backends import BackendState, Topology
from gateway.errors import QueryError
from gateway.local import LocalBackend, local_topology
from gateway.router import Limits, Router
from tickerplant.protocol import shard_of

PAST = TODAY.replace(day=TODAY.day - 2)


@pytest.fixture
def stack() -> tuple[Router, dict[str, LocalBackend]]:
    backends = local_topology(make_data(7, 400, 7, 0.0), shards=3, today=TODAY)
    topology = Topology([BackendState(n, b.role, b) for n, b in backends.items()])
    topology.refresh()
    router = Router(topology, limits=Limits(timeout_s=2.0, max_rows=1000, scan_rows=100_000))
    yield router, backends
    router.close()


def owner(sym: str) -> int:
    return shard_of(sym, 3)


def test_today_and_one_sym_goes_to_the_owning_rdb_only(stack):
    router, _ = stack
    plan = router.plan(f"SELECT count(*) FROM trade WHERE date = '{TODAY}' AND sym = 'IBM'")
    assert plan.mode == "single"
    assert plan.backends() == [f"rdb{owner('IBM')}"]


def test_past_dates_go_to_hdbs_only(stack):
    router, _ = stack
    plan = router.plan(f"SELECT sym, sum(size) FROM trade WHERE date <= '{PAST}' GROUP BY sym")
    assert plan.backends() == ["hdb0", "hdb1", "hdb2"]
    assert plan.mode == "groups"  # one tier, grouped by sym: each group in one backend


def test_groups_spanning_backends_merge_partials_else_backends_finish_them(stack):
    router, _ = stack
    by_sym = "SELECT sym, sum(size) AS v FROM trade GROUP BY sym ORDER BY v DESC LIMIT 2"
    assert router.plan(by_sym).mode == "aggregate"  # a sym's groups span RDB and HDB
    by_sym_date = by_sym.replace("GROUP BY sym", "GROUP BY sym, date")
    plan = router.plan(by_sym_date)
    assert plan.mode == "groups"
    assert "GROUP BY sym, date" in plan.fetches[0].sql and "LIMIT 2" in plan.fetches[0].sql


def test_sym_list_goes_to_owning_shards_of_both_tiers(stack):
    router, _ = stack
    plan = router.plan("SELECT * FROM trade WHERE sym IN ('IBM', 'AAPL') ORDER BY time LIMIT 5")
    shards = sorted({owner("IBM"), owner("AAPL")})
    assert plan.mode == "rows"
    assert plan.backends() == sorted([f"hdb{k}" for k in shards] + [f"rdb{k}" for k in shards])
    assert "LIMIT 5" in plan.fetches[0].sql  # top-N pushed to every part


def test_aggregates_are_pushed_as_partials(stack):
    router, _ = stack
    plan = router.plan("SELECT sym, avg(price), first(price ORDER BY time) FROM trade GROUP BY 1")
    part = plan.fetches[0].sql
    assert "SUM(price)" in part and "COUNT(price)" in part and "ARG_MIN(" in part
    assert plan.final_sql is not None and "GROUP BY _g0" in plan.final_sql


def test_window_query_pulls_filtered_projected_rows(stack):
    router, _ = stack
    sql = (
        f"SELECT sym, sum(size) OVER (PARTITION BY sym ORDER BY time) FROM trade "
        f"WHERE date = '{PAST}' AND size > 10"
    )
    plan = router.plan(sql)
    assert plan.mode == "pull"
    (fetch,) = plan.fetches
    assert "price" not in fetch.sql  # projection pushed
    assert f"date = '{PAST}'" in fetch.sql and "size > 10" in fetch.sql  # filters pushed
    assert all(b.startswith("hdb") for b in fetch.backends)


def test_asof_join_on_sym_and_date_runs_per_backend(stack):
    router, _ = stack
    local = (
        "SELECT t.sym, avg(q.bid) FROM trade t ASOF JOIN quote q "
        "ON t.sym = q.sym AND t.date = q.date AND t.time >= q.time GROUP BY t.sym"
    )
    assert router.plan(local).mode == "aggregate"
    crosses_days = local.replace(" AND t.date = q.date", "")
    assert router.plan(crosses_days).mode == "pull"


def test_as_of_side_of_join_is_not_pre_filtered(stack):
    router, _ = stack
    plan = router.plan(
        "SELECT * FROM trade t ASOF JOIN quote q ON t.sym = q.sym AND "
        "t.time >= q.time WHERE q.bid > 15 AND t.size > 3"
    )
    fetches = {f.relation: f.sql for f in plan.fetches}
    assert "bid > 15" not in fetches["quote"]  # would change which quote matches
    assert "size > 3" in fetches["trade"]


def test_rdbs_are_promised_the_syms_each_table_is_filtered_to(stack):
    router, backends = stack
    listed = "SELECT time, price FROM trade WHERE sym IN ('IBM', 'AAPL') AND size > 3"
    plan = router.plan(listed)
    assert plan.fetches[0].syms == {"trade": frozenset({"IBM", "AAPL"})}
    joined = (
        "SELECT t.sym, avg(q.bid) FROM trade t ASOF JOIN quote q ON t.sym = q.sym AND "
        "t.date = q.date AND t.time >= q.time WHERE t.sym = 'IBM' GROUP BY t.sym"
    )
    # Filtering the as-of side would change which quote matches: no promise for quote.
    assert router.plan(joined).fetches[0].syms == {"trade": frozenset({"IBM"})}
    either = "SELECT count(*) FROM trade WHERE sym = 'IBM' OR size > 3"
    assert router.plan(either).fetches[0].syms == {}
    # One occurrence filtered, the other not: the table as a whole has no promise.
    twice = "SELECT (SELECT count(*) FROM trade WHERE sym = 'IBM'), (SELECT count(*) FROM trade)"
    assert all(not f.syms for f in router.plan(twice).fetches)
    assert router.run_sql(listed).table.num_rows > 0
    for name, backend in backends.items():
        sent = backend.promises[-1] if backend.promises else None
        if name.startswith("rdb") and backend.queries:
            assert sent == {"trade": frozenset({"IBM", "AAPL"})}, name
        elif backend.queries:
            assert sent == {}, name  # HDBs' files are sorted by sym: no use to them


def test_no_backend_holds_the_date_gives_the_empty_answer(stack):
    router, backends = stack
    result = router.run_sql(
        "SELECT count(*) AS n, sum(size) AS s FROM trade WHERE date = '1999-01-01'"
    )
    assert result.table.to_pylist() == [{"n": 0, "s": None}]
    assert not any(b.queries for b in backends.values())


@pytest.mark.parametrize(
    "sql, construct",
    [
        ("COPY trade TO '/tmp/x.csv'", "COPY"),
        ("ATTACH '/tmp/x.db' AS x", "ATTACH"),
        ("INSTALL httpfs", "LOAD"),  # DuckDB parses INSTALL as a LOAD statement
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SET threads = 1", "SET"),
        ("SELECT 1; SELECT 2", "one statement"),
    ],
)
def test_unsafe_sql_is_forbidden_and_named(stack, sql, construct):
    router, backends = stack
    with pytest.raises(QueryError) as err:
        router.run_sql(sql)
    assert err.value.kind == "forbidden"
    assert construct.lower() in str(err.value).lower()
    assert not any(b.queries for b in backends.values())


def test_bad_query_gets_duckdbs_message(stack):
    router, _ = stack
    with pytest.raises(QueryError) as err:
        router.run_sql("SELECT nope FROM trade")
    assert err.value.kind == "bad_query"
    assert "Binder Error" in str(err.value) and "nope" in str(err.value)
    with pytest.raises(QueryError) as err:
        router.run_sql("SELECT * FROM no_such_table")
    assert err.value.kind == "bad_query" and "no_such_table" in str(err.value)


def test_dead_backend_is_named_in_a_clear_error(stack):
    router, backends = stack
    backends["hdb1"].alive = False
    started = time.monotonic()
    with pytest.raises(QueryError) as err:
        router.run_sql("SELECT sym, count(*) FROM trade GROUP BY sym")
    assert err.value.kind == "unavailable" and "hdb1" in str(err.value)
    assert time.monotonic() - started < 2.0


def test_dead_backend_with_allow_partial_gives_flagged_partial_result(stack):
    router, backends = stack
    full = router.run_sql("SELECT count(*) AS n FROM trade").table.column("n")[0].as_py()
    backends["rdb2"].alive = False
    result = router.run_sql("SELECT count(*) AS n FROM trade", allow_partial=True)
    assert result.partial and list(result.missing) == ["rdb2"]
    assert result.table.column("n")[0].as_py() < full


def test_slow_backend_times_out_within_the_limit(stack):
    router, backends = stack
    backends["hdb0"].delay_s = 30.0
    started = time.monotonic()
    with pytest.raises(QueryError) as err:
        router.run_sql("SELECT count(*) FROM trade", timeout_s=0.5)
    assert err.value.kind == "timeout" and "hdb0" in str(err.value)
    assert time.monotonic() - started < 1.5


def test_runaway_merge_is_interrupted_at_the_time_limit(stack):
    router, _ = stack
    started = time.monotonic()
    with pytest.raises(QueryError) as err:
        router.run_sql(
            "SELECT count(*) FROM trade a, trade b, trade c, trade d "
            "WHERE a.size + b.size + c.size + d.size = -1",
            timeout_s=0.5,
        )
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 1.5


def test_row_limit_truncates_and_flags(stack):
    router, _ = stack
    result = router.run_sql("SELECT * FROM trade ORDER BY time", max_rows=10)
    assert result.table.num_rows == 10 and result.truncated
    assert result.table.column("time").to_pylist() == sorted(
        result.table.column("time").to_pylist()
    )


def test_too_many_intermediate_rows_is_a_clear_error():
    backends = local_topology(make_data(3, 300, 7, 0.0), shards=3, today=TODAY)
    topology = Topology([BackendState(n, b.role, b) for n, b in backends.items()])
    topology.refresh()
    router = Router(topology, limits=Limits(scan_rows=5))
    with pytest.raises(QueryError) as err:
        router.run_sql("SELECT median(price) FROM trade")
    assert err.value.kind == "bad_query" and "intermediate rows" in str(err.value)
    router.close()


def test_unknown_backend_is_asked_not_skipped():
    backends = local_topology(make_data(3, 50, 3, 0.0), shards=1, today=TODAY)
    topology = Topology([BackendState(n, b.role, b) for n, b in backends.items()])
    # No refresh: nothing is known, so every backend may hold anything.
    router = Router(topology)
    assert router.plan(f"SELECT * FROM trade WHERE date = '{TODAY}'").backends() == ["hdb0", "rdb0"]
    router.close()
