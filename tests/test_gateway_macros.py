"""Every analytics macro answers through the gateway as on one DuckDB holding all the data.

The macros exist on the backends and in the gateway's own DuckDBs (the catalog that binds a
query, the database that merges), all prepared by ``queries.connection``; the planner knows
which macros aggregate, splits ``vwap`` into partial sums, lets backends finish groups they
own, and pulls the tables a table macro names.
"""

from __future__ import annotations

import duckdb
import pytest
from support.gateway_data import assert_same_answer, build, make_data

from gateway.catalog import Catalog
from queries.macros import AGGREGATE_MACROS, MACRO_NAMES, register_macros

FILLS = "WITH fills AS (SELECT time, sym, 'buy' AS side, price, size FROM trade) "

# (sql, ordered, the macros it exercises)
CASES: list[tuple[str, bool, tuple[str, ...]]] = [
    (
        "SELECT sym, vwap(price, size) AS v, twap(price, time) AS t, "
        "realized_vol(price, time) AS rv FROM trade GROUP BY sym ORDER BY sym",
        True,
        ("vwap", "twap", "realized_vol"),
    ),
    ("SELECT vwap(price, size) AS v FROM trade", True, ("vwap",)),
    (
        "SELECT sym, date, twap(price, time) AS t, vwap(price, size) AS v FROM trade "
        "WHERE size > 10 GROUP BY sym, date ORDER BY sym, date",
        True,
        ("twap", "vwap"),
    ),
    (
        "SELECT sym, bar(time, INTERVAL 5 MINUTE) AS b, vwap(price, size) AS v, "
        "max(price) - min(price) AS r FROM trade GROUP BY ALL ORDER BY ALL",
        True,
        ("bar", "vwap"),
    ),
    (
        "SELECT bar_ns(time, 1500000000) AS b, count(*) AS n, sum(xbar(10, size)) AS s "
        "FROM trade GROUP BY 1 ORDER BY 1",
        True,
        ("bar_ns", "xbar"),
    ),
    (
        "SELECT time, sym, mid(bid, ask) AS m, spread(bid, ask) AS s, "
        "spread_bps(bid, ask) AS sb, microprice(bid, ask, bsize, asize) AS mp, "
        "imbalance(bsize, asize) AS i FROM quote ORDER BY time",
        True,
        ("mid", "spread", "spread_bps", "microprice", "imbalance"),
    ),
    (
        "SELECT sym, side_sign('sell') AS sg, avg(slippage_bps(price, price + 0.01, 'buy')) "
        "AS s, avg(markout_bps(price, price + 0.01, 'sell')) AS m FROM trade "
        "GROUP BY sym ORDER BY sym",
        True,
        ("side_sign", "slippage_bps", "markout_bps"),
    ),
    ("SELECT * FROM ohlcv('trade', INTERVAL 1 MINUTE)", True, ("ohlcv",)),
    ("SELECT * FROM ohlcv_ticks('trade', 3)", True, ("ohlcv_ticks",)),
    ("SELECT * FROM ohlcv_volume('trade', 200)", True, ("ohlcv_volume",)),
    (
        "SELECT * FROM realized_volatility('trade', INTERVAL 10 MINUTE)",
        True,
        ("realized_volatility",),
    ),
    (
        "SELECT * FROM asof_quotes('trade', 'quote') WHERE sym <> 'IBM' ORDER BY time",
        True,
        ("asof_quotes",),
    ),
    ("SELECT * FROM quote_metrics('quote') ORDER BY time", True, ("quote_metrics",)),
    (FILLS + "SELECT * FROM slippage('fills', 'quote') ORDER BY time", True, ("slippage",)),
    (
        FILLS + "SELECT * FROM markout('fills', 'quote', INTERVAL 5 SECOND) ORDER BY time",
        True,
        ("markout",),
    ),
]


def test_cases_cover_every_macro() -> None:
    assert {m for _, _, used in CASES for m in used} == set(MACRO_NAMES)


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=[",".join(c[2]) for c in CASES])
def test_macro_through_gateway_equals_one_duckdb(
    shards: int, case: tuple[str, bool, tuple[str, ...]]
) -> None:
    sql, ordered, _ = case
    tables = make_data(11, 240, 5, 0.1)
    router, reference = build(tables, shards)
    register_macros(reference)
    try:
        want = reference.sql(sql).to_arrow_table()
        assert want.num_rows > 0, sql  # the data exercises the macro
        got = router.run_sql(sql)
        assert not got.truncated and not got.partial
        assert_same_answer(got.table, want, ordered, sql)
    finally:
        router.close()


def test_planner_knows_which_macros_aggregate() -> None:
    tables = make_data(3, 120, 4, 0.0)
    assert Catalog({"t": [("time", "timestamp")]}).aggregates >= AGGREGATE_MACROS
    router, _ = build(tables, 3)
    try:
        # vwap splits into partial sums, finished in the gateway.
        plan = router.plan("SELECT sym, vwap(price, size) AS v FROM trade GROUP BY sym")
        assert plan.mode == "aggregate"
        assert "vwap" not in plan.fetches[0].sql.lower()
        # twap has no partial form: grouped by sym and date, each backend owns its groups.
        plan = router.plan("SELECT sym, date, twap(price, time) FROM trade GROUP BY sym, date")
        assert plan.mode == "groups"
        # Grouped by sym only, a group spans the RDB and the HDB: rows are pulled.
        plan = router.plan("SELECT sym, twap(price, time) FROM trade GROUP BY sym")
        assert plan.mode == "pull"
        # A table macro reads the table it names, all of it.
        plan = router.plan("SELECT * FROM ohlcv('trade', INTERVAL 1 MINUTE)")
        assert plan.mode == "pull" and [f.relation for f in plan.fetches] == ["trade"]
        assert len(plan.fetches[0].backends) == 6
    finally:
        router.close()


def test_macros_in_every_prepared_database() -> None:
    """The gateway's binding catalog knows the macros on every cursor, as backends do."""
    catalog = Catalog({"trade": [("time", "timestamp"), ("sym", "symbol"), ("price", "float")]})
    cur = catalog.cursor()
    try:
        assert cur.sql("SELECT mid(1, 3)").fetchall() == [(2,)]
        with pytest.raises(duckdb.Error, match="lock"):
            cur.execute("SET enable_external_access = true")
    finally:
        cur.close()
