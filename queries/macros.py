"""DuckDB macros for tick analytics, registered on every connection that runs user SQL.

``register_macros(con)`` creates TEMP macros: they live in the connection, not the database,
so it works on read-only HDB files and never writes to them. TEMP objects are per connection,
and ``con.cursor()`` is a new connection: call it on each cursor too. It is idempotent
(CREATE OR REPLACE) and runs as one batch of statements; see ``docs/analytics.md`` for cost.

Scalar macros are plain expressions, so the aggregate ones (vwap, twap, realized_vol) work
anywhere an aggregate does: ``SELECT sym, vwap(price, size) FROM trade GROUP BY sym``.
Table macros take table names through ``query_table`` (``FROM ohlcv('trade', INTERVAL 1
MINUTE)``) and share their SQL with the Python API in ``queries.analytics_sql``.
"""

from __future__ import annotations

import hashlib

import duckdb

from queries import analytics_sql as sqlb
from queries.analytics_interval import NS_PER_DAY

# The list aggregated by twap and realized_vol: ticks in time order, nulls dropped.
_TICKS = (
    "list({{'p': {p}, 't': epoch_ns({t})}} ORDER BY {t}) "
    "FILTER (WHERE {p} IS NOT NULL AND {t} IS NOT NULL)"
)
_TWAP_TICKS = _TICKS.format(p="price", t="t")
_RV_PRICES = "list(price ORDER BY t) FILTER (WHERE price > 0 AND t IS NOT NULL)"

SCALAR_MACROS: dict[str, str] = {
    # +1 for buys, -1 for sells, null otherwise; accepts the spellings feeds use.
    "side_sign": """(side) AS CASE
        WHEN lower(side::VARCHAR) IN ('buy', 'b', 'bid', 'long', '1', '+1') THEN 1
        WHEN lower(side::VARCHAR) IN ('sell', 's', 'ask', 'short', 'sell_short', '-1') THEN -1
        END""",
    "mid": "(bid, ask) AS (bid + ask) / 2",
    "spread": "(bid, ask) AS ask - bid",
    "spread_bps": "(bid, ask) AS (ask - bid) / nullif((bid + ask) / 2, 0) * 1e4",
    # Each side's price weighted by the opposite side's size: a thin ask pulls toward the ask.
    "microprice": """(bid, ask, bsize, asize) AS
        (bid * asize + ask * bsize) / nullif(bsize + asize, 0)""",
    "imbalance": "(bsize, asize) AS (bsize - asize) / nullif(bsize + asize, 0)",
    # Start of the bar of `ns` nanoseconds containing t, counted from t's midnight (UTC), like
    # q's xbar on a timespan. Pure integer arithmetic keeps nanoseconds; time_bucket would
    # truncate to microseconds and align to 2000-01-03.
    "bar_ns": f"""(t, ns) AS CASE
        WHEN ns <= 0 OR ns > {NS_PER_DAY}
            THEN error('bar size must be positive and at most one day')
        ELSE make_timestamp_ns(
            epoch_ns(t) - (((epoch_ns(t) % {NS_PER_DAY}) + {NS_PER_DAY}) % {NS_PER_DAY}) % ns)
        END""",
    # bar(t, INTERVAL) shadows DuckDB's bar-chart function bar(x, min, max[, width]); the
    # 3- and 4-argument overloads pass through to it so existing uses keep working.
    "bar": """(t, iv) AS bar_ns(t, epoch_ns(iv)),
        (x, lo, hi) AS system.main.bar(x, lo, hi),
        (x, lo, hi, width) AS system.main.bar(x, lo, hi, width)""",
    "xbar": "(n, x) AS n * floor(x / n)",
    # Pairs with a null price or size are left out of both sums.
    "vwap": """(price, size) AS
        sum(price * size) / nullif(sum(CASE WHEN price IS NOT NULL THEN size END), 0)""",
    # q's (next[time]-time) wavg price: each price weighted by how long it stood until the
    # next tick of the group; the last tick weighs nothing. Null when the group spans no time.
    "twap": f"""(price, t) AS
        list_sum(list_transform(range(1, len({_TWAP_TICKS})),
            lambda i: {_TWAP_TICKS}[i].p * ({_TWAP_TICKS}[i + 1].t - {_TWAP_TICKS}[i].t)))
        / nullif({_TWAP_TICKS}[-1].t - {_TWAP_TICKS}[1].t, 0)""",
    # sqrt of the sum of squared tick-to-tick log returns within the group.
    "realized_vol": f"""(price, t) AS
        sqrt(list_sum(list_transform(range(1, len({_RV_PRICES})),
            lambda i: pow(ln({_RV_PRICES}[i + 1] / {_RV_PRICES}[i]), 2))))""",
    "slippage_bps": "(price, ref_mid, side) AS side_sign(side) * (price - ref_mid) / ref_mid * 1e4",
    "markout_bps": """(price, later_mid, side) AS
        side_sign(side) * (later_mid - price) / price * 1e4""",
}

TABLE_MACROS: dict[str, str] = {
    "ohlcv": "(tbl, iv) AS TABLE " + sqlb.ohlcv_time_body("query_table(tbl)", "epoch_ns(iv)"),
    "ohlcv_ticks": "(tbl, n) AS TABLE " + sqlb.ohlcv_ticks_body("query_table(tbl)", "n"),
    "ohlcv_volume": "(tbl, v) AS TABLE " + sqlb.ohlcv_volume_body("query_table(tbl)", "v"),
    "realized_volatility": "(tbl, iv) AS TABLE "
    + sqlb.realized_volatility_body("query_table(tbl)", "epoch_ns(iv)"),
    "asof_quotes": "(trades, quotes) AS TABLE "
    + sqlb.asof_quotes_body("query_table(trades)", "query_table(quotes)"),
    "quote_metrics": "(quotes) AS TABLE " + sqlb.quote_metrics_body("query_table(quotes)"),
    "slippage": "(fills, quotes) AS TABLE "
    + sqlb.slippage_body("query_table(fills)", "query_table(quotes)"),
    "markout": "(fills, quotes, horizon) AS TABLE "
    + sqlb.markout_body("query_table(fills)", "query_table(quotes)", "epoch_ns(horizon)"),
}

# Scalar macros first: DuckDB binds a macro body when it is used, not when it is created, but
# keeping dependencies first reads better and costs nothing.
_CREATE_STATEMENTS = [
    f"CREATE OR REPLACE TEMP MACRO {name}{body}"
    for name, body in (*SCALAR_MACROS.items(), *TABLE_MACROS.items())
]
# A digest of the definitions, kept in a session variable: a connection that already holds this
# exact set answers one trivial query instead of re-creating them all. getvariable() returns
# NULL when unset, so probing never raises (an error would abort the caller's transaction).
VERSION_VARIABLE = "tickdb_macros_version"
MACROS_VERSION = hashlib.sha256("\n".join(_CREATE_STATEMENTS).encode()).hexdigest()[:16]
_REGISTER_SQL = ";\n".join(
    [*_CREATE_STATEMENTS, f"SET VARIABLE {VERSION_VARIABLE} = '{MACROS_VERSION}'"]
)

MACRO_NAMES: tuple[str, ...] = (*SCALAR_MACROS, *TABLE_MACROS)


def _table_arguments(definition: str) -> tuple[int, ...]:
    """The positions of a table macro's parameters that name tables: those its body reads
    through ``query_table(param)``."""
    params = [p.strip() for p in definition[1 : definition.index(")")].split(",")]
    return tuple(i for i, p in enumerate(params) if f"query_table({p})" in definition)


# Per table macro, the arguments that are table names (``ohlcv('trade', …)``: 0). They must
# be string literals: which tables a query reads is decided from its text (read:TABLE roles,
# the planner's routing), and a computed name would read a table nobody checked.
TABLE_ARGUMENTS: dict[str, tuple[int, ...]] = {
    name: _table_arguments(body) for name, body in TABLE_MACROS.items()
}
# Scalar macros that expand to aggregates: a planner must treat a call as an aggregate (it
# cannot be pushed into a scan, and it groups), exactly as DuckDB's own ``sum``.
AGGREGATE_MACROS = frozenset({"vwap", "twap", "realized_vol"})

# The same definitions, created in the database instead of the connection: every cursor of
# the database sees them, so a database set up once needs nothing per cursor.
_DATABASE_SQL = ";\n".join(
    s.replace("CREATE OR REPLACE TEMP MACRO", "CREATE OR REPLACE MACRO") for s in _CREATE_STATEMENTS
)


def register_macros(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> None:
    """Create (or replace) every analytics macro as a TEMP macro on ``con``.

    Cheap to call again: if ``con`` already holds this version of the macros it returns after
    one probe query. Session variables survive a ROLLBACK but TEMP macros do not, so after
    registering inside a transaction that was rolled back, pass ``force=True``.
    """
    if not force:
        rows = con.execute(f"SELECT getvariable('{VERSION_VARIABLE}')").fetchall()
        if rows and rows[0][0] == MACROS_VERSION:
            return
    # Not wrapped in BEGIN/COMMIT although that would halve the cost: BEGIN inside the
    # caller's open transaction fails and aborts it.
    con.execute(_REGISTER_SQL)


def register_database_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create every analytics macro in ``con``'s database (``main`` schema), for all cursors.

    For the in-memory databases tickdb's servers own (``queries.connection``); call it before
    the lock-down. A user's own connection wants ``register_macros`` (TEMP, nothing written).
    """
    con.execute(_DATABASE_SQL)
