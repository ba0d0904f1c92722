"""SQL text for the built-in analytics, shared by the Python API and the DuckDB table macros.

Each ``*_body`` builder takes a FROM item (a quoted table name, or ``query_table(tbl)`` inside a
table macro) and SQL expressions for its parameters, so the macro and the Python API run the
same query. The public ``*_sql`` functions take table names and Python values (intervals as
``"1m"`` etc.) and return self-contained statements that need only :func:`register_macros` on
the connection: the gateway can send them to every shard as text.

Column conventions are the default schema's: trades ``(time, sym, price, size)``, quotes
``(time, sym, bid, ask, bsize, asize)``, fills ``(time, sym, side, price, ...)``. Results are
sorted by ``sym, time`` (or ``sym, bar``) so merged shard results compare equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from queries.analytics_interval import IntervalLike, format_interval, parse_bar_size, parse_interval


def quote_ident(name: str) -> str:
    """Quote one SQL identifier (column or table name)."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(name: str) -> str:
    """Quote a possibly schema-qualified table name (``hdb.trade`` -> ``"hdb"."trade"``)."""
    return ".".join(quote_ident(part) for part in name.split("."))


def _columns(names: Sequence[str], prefix: str = "") -> str:
    return ", ".join(prefix + quote_ident(n) for n in names)


# --- bars -------------------------------------------------------------------------------------

# Open/close use arg_min/arg_max on the ordering key: one pass, no sort, unlike
# first(price ORDER BY time). Ticks with the same timestamp tie arbitrarily, as in any SQL.
# Null prices are not trades and are left out of every bar.
_BAR_AGGREGATES = """
    arg_min(price, {order}) AS open,
    max(price) AS high,
    min(price) AS low,
    arg_max(price, {order}) AS close,
    sum(size)::BIGINT AS volume,
    count(*)::BIGINT AS ticks,
    vwap(price, size) AS vwap"""


def ohlcv_time_body(source: str, interval_ns: str) -> str:
    """Time bars aligned to midnight UTC; ``time`` is each bar's start. Empty bars are absent."""
    # Group on a name that is not a column: a `time` alias would be ambiguous with the column
    # that the open/close aggregates order by.
    return f"""
SELECT sym, __bar AS time,{_BAR_AGGREGATES.format(order="time")}
FROM (SELECT *, bar_ns(time, {interval_ns}) AS __bar FROM {source} WHERE price IS NOT NULL)
GROUP BY sym, __bar
ORDER BY sym, time"""


def _counted_bars(source: str, bar_expr: str) -> str:
    # __seq numbers each sym's trades in time order; bar_expr assigns the bar from it.
    return f"""
SELECT sym, __bar AS bar, min(time) AS time, max(time) AS end_time,
    {_BAR_AGGREGATES.format(order="__seq").strip()}
FROM (
    SELECT *, {bar_expr} AS __bar FROM (
        SELECT *,
            row_number() OVER w AS __seq,
            sum(coalesce(size, 0)) OVER (w ROWS UNBOUNDED PRECEDING) AS __cumvol
        FROM {source} WHERE price IS NOT NULL
        WINDOW w AS (PARTITION BY sym ORDER BY time)
    )
)
GROUP BY sym, __bar
ORDER BY sym, bar"""


def ohlcv_ticks_body(source: str, ticks: str) -> str:
    """Bars of ``ticks`` trades each per sym; ``bar`` counts from 0, the last bar may be short."""
    return _counted_bars(source, f"(__seq - 1) // ({ticks})")


def ohlcv_volume_body(source: str, volume: str) -> str:
    """Bars of ``volume`` shares each per sym, by the volume traded before each trade.

    A trade belongs to the bar in which it starts, so a large trade is not split: a bar can
    exceed ``volume`` and a bar number can be skipped.
    """
    return _counted_bars(source, f"(__cumvol - coalesce(size, 0)) // ({volume})")


def ohlcv_sql(
    table: str,
    interval: IntervalLike | None = None,
    *,
    ticks: int | None = None,
    volume: int | None = None,
) -> str:
    """OHLCV bars of a trade table: by time (``interval``), trade count or volume, exactly one."""
    chosen = [x for x in (interval, ticks, volume) if x is not None]
    if len(chosen) != 1:
        raise ValueError("ohlcv needs exactly one of interval, ticks= or volume=")
    source = quote_table(table)
    if interval is not None:
        return ohlcv_time_body(source, str(parse_bar_size(interval)))
    if ticks is not None:
        return ohlcv_ticks_body(source, str(_positive_int("ticks", ticks)))
    assert volume is not None
    return ohlcv_volume_body(source, str(_positive_int("volume", volume)))


def _positive_int(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


# --- averages ---------------------------------------------------------------------------------


def _grouped(table: str, aggregate: str, by: Sequence[str], interval: IntervalLike | None) -> str:
    keys = _columns(by)
    if interval is not None:
        keys = ", ".join(filter(None, [keys, f"bar_ns(time, {parse_bar_size(interval)}) AS time"]))
    if not keys:
        return f"SELECT {aggregate} FROM {quote_table(table)}"
    return f"SELECT {keys}, {aggregate} FROM {quote_table(table)} GROUP BY ALL ORDER BY ALL"


def vwap_sql(table: str, by: Sequence[str] = ("sym",), interval: IntervalLike | None = None) -> str:
    """Volume-weighted average price and volume per ``by`` (and per time bar if ``interval``)."""
    # Volume of priced trades only, as in the vwap denominator and in ohlcv.
    aggregate = (
        "vwap(price, size) AS vwap, (sum(size) FILTER (WHERE price IS NOT NULL))::BIGINT AS volume"
    )
    return _grouped(table, aggregate, by, interval)


def twap_sql(table: str, by: Sequence[str] = ("sym",), interval: IntervalLike | None = None) -> str:
    """Time-weighted average price per group: see the ``twap`` macro for the weighting."""
    return _grouped(table, "twap(price, time) AS twap", by, interval)


# --- realized volatility ----------------------------------------------------------------------


def realized_volatility_body(source: str, interval_ns: str) -> str:
    """Per sym and UTC day: log returns between the closes of consecutive non-empty bars.

    Returns never span midnight, so overnight gaps do not count. The result is not
    annualised: multiply by sqrt(trading days per year) for an annual figure.
    """
    return f"""
SELECT sym, date, count(r)::BIGINT AS returns,
    sum(r * r) AS realized_variance, sqrt(sum(r * r)) AS realized_volatility
FROM (
    SELECT sym, date, ln(close / lag(close) OVER (PARTITION BY sym, date ORDER BY bar)) AS r
    FROM (
        SELECT sym, time::DATE AS date, bar_ns(time, {interval_ns}) AS bar,
            arg_max(price, time) AS close
        FROM {source} WHERE price > 0
        GROUP BY ALL
    )
)
GROUP BY sym, date
ORDER BY sym, date"""


def realized_volatility_sql(table: str, interval: IntervalLike = "5m") -> str:
    return realized_volatility_body(quote_table(table), str(parse_bar_size(interval)))


# --- joins ------------------------------------------------------------------------------------


def asof_join_sql(
    left: str,
    right: str,
    right_columns: Sequence[str] | Mapping[str, str],
    by: Sequence[str] = ("sym",),
    time: str = "time",
    strict: bool = False,
) -> str:
    """Each left row with the right row prevailing at its time (kdb+ ``aj``).

    Prevailing means the latest right row with the same ``by`` keys and ``right.time <=
    left.time`` (``<`` when ``strict``). Left rows with no such row keep nulls.
    ``right_columns`` lists the right columns to append, or maps them to output names.
    """
    return _asof(quote_table(left), quote_table(right), right_columns, by, time, strict)


def _asof(
    left: str,
    right: str,
    right_columns: Sequence[str] | Mapping[str, str],
    by: Sequence[str],
    time: str,
    strict: bool,
) -> str:
    pairs = (
        right_columns.items()
        if isinstance(right_columns, Mapping)
        else [(c, c) for c in right_columns]
    )
    picked = "".join(f", r.{quote_ident(src)} AS {quote_ident(dst)}" for src, dst in pairs)
    on = [f"l.{quote_ident(k)} = r.{quote_ident(k)}" for k in by]
    on.append(f"l.{quote_ident(time)} {'>' if strict else '>='} r.{quote_ident(time)}")
    order = _columns([*by, time], "l.")
    return (
        f"SELECT l.*{picked} FROM {left} l ASOF LEFT JOIN {right} r ON {' AND '.join(on)} "
        f"ORDER BY {order}"
    )


def asof_quotes_body(trades: str, quotes: str) -> str:
    """Trades with the prevailing quote's columns (all but sym/time) and its time as quote_time."""
    return f"""
SELECT t.*, q.* EXCLUDE (sym, time), q.time AS quote_time
FROM {trades} t ASOF LEFT JOIN {quotes} q ON t.sym = q.sym AND t.time >= q.time
ORDER BY t.sym, t.time"""


def window_join_sql(
    left: str,
    right: str,
    window: tuple[IntervalLike, IntervalLike],
    aggregates: Mapping[str, str],
    by: Sequence[str] = ("sym",),
    time: str = "time",
    prevailing: bool = False,
) -> str:
    """kdb+ ``wj1`` (``prevailing=False``) or ``wj`` (``prevailing=True``).

    For each left row, aggregate the right rows with the same ``by`` keys and time within
    ``[left.time + window[0], left.time + window[1]]`` (both ends inclusive). ``wj`` also
    feeds the aggregates the row prevailing at the window start. ``aggregates`` maps output
    names to SQL over right columns, e.g. ``{"max_ask": "max(ask)"}``. Left rows whose window
    is empty get null aggregates (also for count).
    """
    lo, hi = (parse_interval(w) for w in window)
    if lo > hi:
        raise ValueError(f"window start {window[0]!r} is after its end {window[1]!r}")
    if not aggregates:
        raise ValueError("window_join needs at least one aggregate")
    t = quote_ident(time)
    keys = [f"l.{quote_ident(k)} = r.{quote_ident(k)}" for k in by]
    in_window = " AND ".join([*keys, f"r.{t} >= l.__lo", f"r.{t} <= l.__hi"])
    prevailing_sql = ""
    if prevailing:
        at_start = " AND ".join([*keys, f"l.__lo > r.{t}"])
        prevailing_sql = (
            f"\n    UNION ALL\n    SELECT l.__row, r.* FROM l ASOF JOIN {quote_table(right)} r "
            f"ON {at_start}"
        )
    aggs = ", ".join(f"{expr} AS {quote_ident(name)}" for name, expr in aggregates.items())
    # l is MATERIALIZED so that __row numbers the same rows in every reference to it.
    return f"""
WITH l AS MATERIALIZED (
    SELECT *, row_number() OVER () AS __row,
        make_timestamp_ns(epoch_ns({t}) + {lo}) AS __lo,
        make_timestamp_ns(epoch_ns({t}) + {hi}) AS __hi
    FROM {quote_table(left)}
),
matched AS (
    SELECT l.__row, r.* FROM l JOIN {quote_table(right)} r ON {in_window}{prevailing_sql}
),
agg AS (SELECT __row, {aggs} FROM matched GROUP BY __row)
SELECT l.* EXCLUDE (__row, __lo, __hi), agg.* EXCLUDE (__row)
FROM l LEFT JOIN agg ON l.__row = agg.__row
ORDER BY {_columns([*by, time], "l.")}, l.__row"""


# --- execution quality ------------------------------------------------------------------------


def slippage_body(fills: str, quotes: str, strict: bool = False) -> str:
    """Fills with the arrival mid and slippage in bps against it, signed by side (positive =
    worse than mid). The arrival mid is the quote prevailing at the fill time (strictly
    before it when ``strict``, for feeds where a fill's own quote update shares its stamp)."""
    op = ">" if strict else ">="
    return f"""
SELECT f.*, mid(q.bid, q.ask) AS arrival_mid,
    slippage_bps(f.price, mid(q.bid, q.ask), f.side) AS slippage_bps
FROM {fills} f ASOF LEFT JOIN {quotes} q ON f.sym = q.sym AND f.time {op} q.time
ORDER BY f.sym, f.time"""


def slippage_sql(fills: str, quotes: str, strict: bool = False) -> str:
    return slippage_body(quote_table(fills), quote_table(quotes), strict)


def markout_body(fills: str, quotes: str, horizon_ns: str, suffix: str = "") -> str:
    """Fills with the mid ``horizon`` after each fill and the markout in bps against the fill
    price, signed by side (positive = the market moved in the fill's favour)."""
    mid_col, bps_col = quote_ident(f"mid{suffix}"), quote_ident(f"markout{suffix}_bps")
    return f"""
SELECT f.* EXCLUDE (__at), mid(q.bid, q.ask) AS {mid_col},
    markout_bps(f.price, mid(q.bid, q.ask), f.side) AS {bps_col}
FROM (SELECT *, make_timestamp_ns(epoch_ns(time) + {horizon_ns}) AS __at FROM {fills}) f
ASOF LEFT JOIN {quotes} q ON f.sym = q.sym AND f.__at >= q.time
ORDER BY f.sym, f.time"""


def markouts_sql(
    fills: str, quotes: str, horizons: Sequence[IntervalLike], strict: bool = False
) -> str:
    """Fills with arrival mid, slippage and, per horizon h, ``mid_<h>`` and ``markout_<h>_bps``.

    One ASOF join per horizon, chained: each adds two columns to the previous result.
    """
    if not horizons:
        raise ValueError("markouts needs at least one horizon")
    sql = slippage_sql(fills, quotes, strict)
    seen: set[int] = set()
    for horizon in horizons:
        ns = parse_interval(horizon)
        if ns < 0 or ns in seen:
            raise ValueError(f"horizon {horizon!r} is negative or repeated")
        seen.add(ns)
        sql = markout_body(f"({sql})", quote_table(quotes), str(ns), "_" + format_interval(ns))
    return sql


def quote_metrics_body(quotes: str) -> str:
    return f"""
SELECT *, mid(bid, ask) AS mid, spread(bid, ask) AS spread, spread_bps(bid, ask) AS spread_bps,
    microprice(bid, ask, bsize, asize) AS microprice, imbalance(bsize, asize) AS imbalance
FROM {quotes}"""


def quote_metrics_sql(quotes: str) -> str:
    """Quotes with mid, spread, spread_bps, microprice and order-book imbalance added."""
    return quote_metrics_body(quote_table(quotes))
