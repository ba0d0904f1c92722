"""Built-in tick analytics, Python API: ``pyarrow.Table`` (or a table name on a connection) in,
``pyarrow.Table`` out.

Every function takes its inputs either as ``pyarrow.Table`` objects or as names of tables or
views on ``con``; with no ``con`` it runs on a private in-memory DuckDB connection. The SQL
comes from ``queries.analytics_sql`` (re-exported here as ``*_sql``) and relies on the macros
of ``queries.macros``, which are registered on ``con`` first (TEMP, idempotent).

    >>> bars = ohlcv(trades, "1m")                      # time bars aligned to midnight UTC
    >>> fills_tca = markouts(fills, quotes, ["1s", "1m"])
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeAlias

import duckdb
import pyarrow as pa

from queries.analytics_interval import IntervalLike, format_interval, parse_interval
from queries.analytics_sql import (
    asof_join_sql,
    markouts_sql,
    ohlcv_sql,
    quote_metrics_sql,
    quote_table,
    realized_volatility_sql,
    slippage_sql,
    twap_sql,
    vwap_sql,
    window_join_sql,
)
from queries.macros import register_macros

__all__ = [
    "asof_join",
    "asof_join_sql",
    "format_interval",
    "markouts",
    "markouts_sql",
    "ohlcv",
    "ohlcv_sql",
    "parse_interval",
    "quote_metrics",
    "quote_metrics_sql",
    "realized_volatility",
    "realized_volatility_sql",
    "slippage",
    "slippage_sql",
    "twap",
    "twap_sql",
    "vwap",
    "vwap_sql",
    "window_join",
    "window_join_sql",
]

Source: TypeAlias = pa.Table | str
Connection: TypeAlias = duckdb.DuckDBPyConnection

# Unique names for Arrow tables registered as views on a caller's connection.
_view_ids = itertools.count()


@contextmanager
def _connection(con: Connection | None) -> Iterator[Connection]:
    if con is not None:
        register_macros(con)
        yield con
        return
    own = duckdb.connect()
    try:
        register_macros(own)
        yield own
    finally:
        own.close()


@contextmanager
def _names(con: Connection, sources: Mapping[str, Source]) -> Iterator[dict[str, str]]:
    """Table names for ``sources``: names pass through, Arrow tables become temporary views."""
    names: dict[str, str] = {}
    registered: list[str] = []
    try:
        for role, source in sources.items():
            if isinstance(source, str):
                names[role] = source
            elif isinstance(source, pa.Table):
                name = f"__tickdb_{role}_{next(_view_ids)}"
                con.register(name, source)
                registered.append(name)
                names[role] = name
            else:
                raise TypeError(
                    f"{role}: expected a pyarrow.Table or a table name, got {type(source).__name__}"
                )
        yield names
    finally:
        for name in registered:
            con.unregister(name)


def _run(
    build: Callable[[dict[str, str]], str],
    sources: Mapping[str, Source],
    con: Connection | None,
) -> pa.Table:
    with _connection(con) as c, _names(c, sources) as names:
        return c.sql(build(names)).to_arrow_table()


def _column_names(con: Connection, table: str) -> list[str]:
    return list(con.sql(f"SELECT * FROM {quote_table(table)} LIMIT 0").columns)


# --- bars and averages ------------------------------------------------------------------------


def ohlcv(
    trades: Source,
    interval: IntervalLike | None = None,
    *,
    ticks: int | None = None,
    volume: int | None = None,
    con: Connection | None = None,
) -> pa.Table:
    """Open/high/low/close, volume, tick count and vwap per sym and bar.

    Exactly one of: ``interval`` (time bars like ``"1m"``, aligned to midnight UTC, ``time`` =
    bar start), ``ticks=n`` (every n trades) or ``volume=v`` (every v shares, by the volume
    before each trade). Tick and volume bars number bars from 0 in ``bar`` and give the first
    and last trade times as ``time`` and ``end_time``. Bars with no trades are absent.
    """
    return _run(
        lambda n: ohlcv_sql(n["trades"], interval, ticks=ticks, volume=volume),
        {"trades": trades},
        con,
    )


def vwap(
    trades: Source,
    by: Sequence[str] = ("sym",),
    interval: IntervalLike | None = None,
    *,
    con: Connection | None = None,
) -> pa.Table:
    """``sum(price*size)/sum(size)`` and volume per ``by`` columns (and time bar)."""
    return _run(lambda n: vwap_sql(n["trades"], by, interval), {"trades": trades}, con)


def twap(
    trades: Source,
    by: Sequence[str] = ("sym",),
    interval: IntervalLike | None = None,
    *,
    con: Connection | None = None,
) -> pa.Table:
    """Time-weighted price per group, each price weighted by the time until the next tick in
    its group (q's ``(next[time]-time) wavg price``); null for groups spanning no time."""
    return _run(lambda n: twap_sql(n["trades"], by, interval), {"trades": trades}, con)


def realized_volatility(
    trades: Source, interval: IntervalLike = "5m", *, con: Connection | None = None
) -> pa.Table:
    """Per sym and UTC date: ``returns`` (count), ``realized_variance`` and
    ``realized_volatility`` from log returns of bar closes sampled every ``interval``."""
    return _run(lambda n: realized_volatility_sql(n["trades"], interval), {"trades": trades}, con)


def quote_metrics(quotes: Source, *, con: Connection | None = None) -> pa.Table:
    """Quotes plus ``mid``, ``spread``, ``spread_bps``, ``microprice`` and ``imbalance``."""
    return _run(lambda n: quote_metrics_sql(n["quotes"]), {"quotes": quotes}, con)


# --- joins ------------------------------------------------------------------------------------


def asof_join(
    left: Source,
    right: Source,
    by: Sequence[str] = ("sym",),
    time: str = "time",
    *,
    strict: bool = False,
    con: Connection | None = None,
) -> pa.Table:
    """kdb+ ``aj``: each left row with the right row prevailing at its time (right.time <=
    left.time, ``<`` if ``strict``) for the same ``by`` keys. Right columns other than the keys
    are appended; a name the left table already has gets the suffix ``_right``."""
    with _connection(con) as c, _names(c, {"left": left, "right": right}) as names:
        left_cols = set(_column_names(c, names["left"]))
        right_cols = {
            col: f"{col}_right" if col in left_cols else col
            for col in _column_names(c, names["right"])
            if col not in {*by, time}
        }
        sql = asof_join_sql(names["left"], names["right"], right_cols, by, time, strict)
        return c.sql(sql).to_arrow_table()


def window_join(
    left: Source,
    right: Source,
    window: tuple[IntervalLike, IntervalLike],
    aggregates: Mapping[str, str],
    by: Sequence[str] = ("sym",),
    time: str = "time",
    *,
    prevailing: bool = False,
    con: Connection | None = None,
) -> pa.Table:
    """kdb+ ``wj1`` (or ``wj`` with ``prevailing=True``): for each left row, ``aggregates``
    (name -> SQL over right columns, e.g. ``{"max_ask": "max(ask)"}``) over the right rows
    with time in ``[time + window[0], time + window[1]]``, both ends inclusive."""
    return _run(
        lambda n: window_join_sql(n["left"], n["right"], window, aggregates, by, time, prevailing),
        {"left": left, "right": right},
        con,
    )


# --- execution quality ------------------------------------------------------------------------


def slippage(
    fills: Source, quotes: Source, *, strict: bool = False, con: Connection | None = None
) -> pa.Table:
    """Fills (``time, sym, side, price, ...``) plus ``arrival_mid`` (mid prevailing at the fill
    time, strictly before it if ``strict``) and ``slippage_bps`` = side * (price - arrival_mid)
    / arrival_mid * 1e4: positive means the fill was worse than the mid."""
    return _run(
        lambda n: slippage_sql(n["fills"], n["quotes"], strict),
        {"fills": fills, "quotes": quotes},
        con,
    )


def markouts(
    fills: Source,
    quotes: Source,
    horizons: Sequence[IntervalLike] = ("1s", "5s", "1m"),
    *,
    strict: bool = False,
    con: Connection | None = None,
) -> pa.Table:
    """Slippage columns plus, per horizon h, ``mid_<h>`` (mid prevailing at fill time + h) and
    ``markout_<h>_bps`` = side * (mid_<h> - price) / price * 1e4: positive means the market
    moved in the fill's favour. Add ``slippage_bps`` to a markout for one measured against the
    arrival mid."""
    return _run(
        lambda n: markouts_sql(n["fills"], n["quotes"], horizons, strict),
        {"fills": fills, "quotes": quotes},
        con,
    )
