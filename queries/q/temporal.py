"""Temporal q: dotted parts (time.minute, date.month), casts with $, xbar bars, arithmetic.

Bars align as kdb+ aligns them: ``n xbar time.minute`` floors the minute of the day (so bars
start at midnight), and a timespan xbar on timestamps floors nanoseconds since 2000.01.01.
"""

from __future__ import annotations

from queries.q.errors import TranslationError
from queries.q.handlers import Handler, Translate, derived
from queries.q.nodes import Call, Str, Sym
from queries.q.qtypes import CAST_NAMES, FLOATING, INTEGRAL, NUMERIC, TIME_OF_DAY, sql_type
from queries.q.sqlexpr import Expr, Scope

NANOS_PER_DAY = 86_400_000_000_000
EPOCH_2000_NANOS = 946_684_800_000_000_000
_TRUNC_UNIT = {"minute": "minute", "second": "second", "time": "millisecond"}
_UNIT_NANOS = {"minute": 60_000_000_000, "second": 1_000_000_000, "time": 1_000_000}


def _part(x: Expr, sql: str, qtype: str, **extra: object) -> Expr:
    return Expr(sql, qtype, x.shape, window=x.window, hoisted=x.hoisted, **extra)  # type: ignore[arg-type]


def dot_part(x: Expr, part: str, pos: int) -> Expr:
    s, t = x.sql, x.qtype
    if t == "timestamp":
        if part in _TRUNC_UNIT:
            sql = f"CAST(date_trunc('{_TRUNC_UNIT[part]}', {s}) AS TIME)"
            return _part(x, sql, part, tod_source=s)
        parts = {
            "date": (f"CAST({s} AS DATE)", "date"),
            "month": (f"CAST(date_trunc('month', {s}) AS DATE)", "month"),
            "year": (f"CAST(year({s}) AS INTEGER)", "int"),
            "dd": (f"CAST(day({s}) AS INTEGER)", "int"),
            "hh": (f"CAST(hour({s}) AS INTEGER)", "int"),
            "mm": (f"CAST(minute({s}) AS INTEGER)", "int"),
            "ss": (f"CAST(second({s}) AS INTEGER)", "int"),
        }
    elif t in ("date", "month"):
        parts = {
            "date": (s, "date"),
            "month": (f"CAST(date_trunc('month', {s}) AS DATE)", "month"),
            "year": (f"CAST(year({s}) AS INTEGER)", "int"),
            "mm": (f"CAST(month({s}) AS INTEGER)", "int"),
            "dd": (f"CAST(day({s}) AS INTEGER)", "int"),
        }
    elif t in TIME_OF_DAY:
        parts = {
            "hh": (f"CAST(hour({s}) AS INTEGER)", "int"),
            "mm": (f"CAST(minute({s}) AS INTEGER)", "int"),
            "ss": (f"CAST(second({s}) AS INTEGER)", "int"),
            "minute": (f"make_time(hour({s}), minute({s}), 0)", "minute"),
            "second": (f"make_time(hour({s}), minute({s}), second({s}))", "second"),
        }
    else:
        raise TranslationError(f"'.{part}' is not supported on {t or 'this value'}", pos)
    if part not in parts:
        raise TranslationError(
            f"'.{part}' is not supported on {t} (supported: {', '.join(parts)})", pos
        )
    sql, qtype = parts[part]
    return _part(x, sql, qtype)


# -- casts -----------------------------------------------------------------------------


def _cast_target(node: Call) -> str:
    left = node.args[0]
    name = None
    if isinstance(left, Sym) and not left.is_list:
        name = left.names[0]
    elif isinstance(left, Str) and len(left.text) == 1:
        name = left.text
        if name.isupper():
            raise TranslationError(f'parsing strings with "{name}"$ is not supported', left.pos)
    if name is None or name not in CAST_NAMES:
        raise TranslationError(
            "'$' is only supported as a cast: `date$x, `float$x, \"j\"$x, `$x", node.pos
        )
    return CAST_NAMES[name]


def cast(target: str, x: Expr, pos: int) -> Expr:
    src = x.qtype
    s = x.sql
    if src == target:
        return x
    if target in TIME_OF_DAY and (src == "timestamp" or src in TIME_OF_DAY):
        return dot_part(x, target, pos) if src == "timestamp" else _tod_narrow(x, target, pos)
    conversions: dict[tuple[str | None, str], str] = {
        ("timestamp", "date"): f"CAST({s} AS DATE)",
        ("month", "date"): s,
        ("timestamp", "month"): f"CAST(date_trunc('month', {s}) AS DATE)",
        ("date", "month"): f"CAST(date_trunc('month', {s}) AS DATE)",
        ("date", "timestamp"): f"CAST({s} AS TIMESTAMP_NS)",
        ("string", "symbol"): s,
        ("timestamp", "long"): f"(epoch_ns({s}) - {EPOCH_2000_NANOS})",
        ("date", "int"): f"CAST({s} - DATE '2000-01-01' AS INTEGER)",
    }
    sql = conversions.get((src, target))
    if sql is None and src in NUMERIC:
        if target == "boolean":
            sql = f"({s} <> 0)"
        elif target in NUMERIC:
            # DuckDB rounds half away from zero when casting floats to integers, as q does.
            sql = f"CAST({s} AS {sql_type(target)})"
    if sql is None:
        raise TranslationError(f"cast from {src or 'this value'} to {target} is not supported", pos)
    return _part(x, sql, target)


def _tod_narrow(x: Expr, target: str, pos: int) -> Expr:
    order = ["minute", "second", "time"]
    if order.index(target) > order.index(x.qtype or "minute"):
        return _part(x, x.sql, target)  # widening keeps the value
    return dot_part(x, target, pos)


def _cast_handler(node: Call, scope: Scope, tr: Translate) -> Expr:
    target = _cast_target(node)
    return cast(target, tr(node.args[1], scope), node.pos)


# -- xbar ------------------------------------------------------------------------------


def _xbar(node: Call, scope: Scope, tr: Translate) -> Expr:
    n, x = tr(node.args[0], scope), tr(node.args[1], scope)
    if n.shape != "const" or n.items is not None or not n.nonnull:
        raise TranslationError("'xbar' needs a literal bucket size on the left", node.args[0].pos)
    t = x.qtype
    if t == "timestamp":
        if n.nanos is None or n.nanos <= 0:
            raise TranslationError(
                "'xbar' on timestamps needs a positive timespan, e.g. 0D00:05", node.args[0].pos
            )
        return _part(x, timestamp_bar(x.sql, n.nanos), "timestamp")
    if n.qtype not in INTEGRAL:
        if t in NUMERIC and n.qtype in FLOATING:
            return _part(x, f"(floor({x.sql} / {n.sql}) * {n.sql})", "float")
        raise TranslationError(f"'xbar' bucket size must be a number for {t}", node.args[0].pos)
    size = int(n.sql.split("(")[1].split(" ")[0])
    if size <= 0:
        raise TranslationError("'xbar' bucket size must be positive", node.args[0].pos)
    if t in TIME_OF_DAY:
        return _part(x, _time_of_day_bar(x, size, node.pos), t)
    if t == "date":
        sql = (
            f"(DATE '2000-01-01' + CAST(floor(({x.sql} - DATE '2000-01-01') / {size}) "
            f"* {size} AS INTEGER))"
        )
        return _part(x, sql, "date")
    if t in FLOATING:
        return _part(x, f"(floor({x.sql} / {size}) * {size})", t)
    if t in INTEGRAL or t is None:
        return _part(x, f"CAST(floor({x.sql} / {size}) * {size} AS BIGINT)", "long")
    raise TranslationError(f"'xbar' is not supported on {t}", node.pos)


def timestamp_bar(ts_sql: str, nanos: int) -> str:
    """Floor a TIMESTAMP_NS to a multiple of ``nanos`` counted from 2000.01.01, as kdb+."""
    if NANOS_PER_DAY % nanos == 0 and nanos % 1000 == 0:
        # Bars that divide a day line up with midnight from any midnight origin, so DuckDB's
        # time_bucket (origin 2000-01-03) gives the same bars, faster.
        return f"CAST(time_bucket(to_microseconds({nanos // 1000}), {ts_sql}) AS TIMESTAMP_NS)"
    offset = f"(epoch_ns({ts_sql}) - {EPOCH_2000_NANOS})"
    return f"make_timestamp_ns(epoch_ns({ts_sql}) - ((({offset} % {nanos}) + {nanos}) % {nanos}))"


def _time_of_day_bar(x: Expr, size: int, pos: int) -> str:
    unit = _UNIT_NANOS[x.qtype or "minute"]
    width = size * unit
    if x.tod_source is not None and NANOS_PER_DAY % width == 0:
        return f"CAST(time_bucket(to_microseconds({width // 1000}), {x.tod_source}) AS TIME)"
    if x.qtype == "minute":
        of_day = f"(hour({x.sql}) * 60 + minute({x.sql}))"
        return f"(TIME '00:00:00' + to_minutes(CAST(floor({of_day} / {size}) * {size} AS BIGINT)))"
    if x.qtype == "second":
        of_day = f"(hour({x.sql}) * 3600 + minute({x.sql}) * 60 + second({x.sql}))"
        return f"(TIME '00:00:00' + to_seconds(CAST(floor({of_day} / {size}) * {size} AS BIGINT)))"
    raise TranslationError("'xbar' on time values needs bars that divide a day", pos)


# -- arithmetic ------------------------------------------------------------------------


def temporal_arith(op: str, a: Expr, b: Expr, pos: int) -> Expr:
    ta, tb = a.qtype, b.qtype
    if (op in "+-" and ta == "timestamp" and tb == "timespan") or (
        op == "+" and ta == "timespan" and tb == "timestamp"
    ):
        ts, span = (a, b) if ta == "timestamp" else (b, a)
        if span.nanos is None:
            raise TranslationError(
                "timestamp arithmetic needs a timespan literal (e.g. 0D00:00:01)", pos
            )
        nanos = span.nanos if op == "+" else -span.nanos
        return derived(f"make_timestamp_ns(epoch_ns({ts.sql}) + {nanos})", "timestamp", (a, b), pos)
    if op == "-" and ta == tb == "timestamp":
        return derived(f"({a.sql} - {b.sql})", "timespan", (a, b), pos)
    if op in "+-" and ta == "date" and tb in INTEGRAL:
        return derived(f"({a.sql} {op} CAST({b.sql} AS INTEGER))", "date", (a, b), pos)
    if op == "-" and ta == tb == "date":
        return derived(f"CAST({a.sql} - {b.sql} AS INTEGER)", "int", (a, b), pos)
    raise TranslationError(f"'{op}' on {ta} and {tb} is not supported", pos)


HANDLERS: dict[str, Handler] = {"$": _cast_handler, "xbar": _xbar}
DYADIC = frozenset(HANDLERS)
