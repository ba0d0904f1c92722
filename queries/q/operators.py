"""q operators -> SQL: arithmetic, comparisons with q's null rules, logic, in/within/like.

q has no three-valued logic: a null is the smallest value of its type and compares equal to
itself, so ``0n < 1`` is true and ``x = 0n`` finds nulls. The comparisons below say so
explicitly, and drop the extra terms where a literal side makes them unnecessary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from queries.q.errors import TranslationError
from queries.q.handlers import Handler, Translate, derived
from queries.q.nodes import Call, Node, Query
from queries.q.qtypes import FLOATING, INTEGRAL, NUMERIC, TEXT, TIME_OF_DAY, promote, sql_type
from queries.q.sqlexpr import Expr, Scope
from queries.q.temporal import temporal_arith


def require_boolean(e: Expr, pos: int, what: str) -> None:
    if e.qtype not in (None, "boolean"):
        raise TranslationError(f"{what} must be boolean, got {e.qtype}", pos)


def promote_or_fail(a: Expr, b: Expr, pos: int) -> str | None:
    if a.qtype == b.qtype:
        return a.qtype
    if a.qtype in NUMERIC and b.qtype in NUMERIC:
        return promote(a.qtype, b.qtype)
    if a.qtype is None or b.qtype is None:
        return a.qtype or b.qtype
    raise TranslationError(f"cannot combine {a.qtype} and {b.qtype}", pos)


def _args(node: Call, scope: Scope, tr: Translate) -> tuple[Expr, Expr]:
    return tr(node.args[0], scope), tr(node.args[1], scope)


def _no_vectors(node: Call, *exprs: Expr) -> None:
    for e in exprs:
        if e.items is not None:
            raise TranslationError(
                f"a literal list as an argument of '{node.fn}' is not supported", node.pos
            )


# -- comparisons -----------------------------------------------------------------------

_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _comparable(a: Expr, b: Expr, pos: int) -> None:
    ta, tb = a.qtype, b.qtype
    if ta is None or tb is None or ta == tb:
        return
    if ta in NUMERIC and tb in NUMERIC:
        return
    if {ta, tb} <= {"timestamp", "date"} or {ta, tb} <= TIME_OF_DAY:
        return
    if {ta, tb} <= {"symbol", "string"}:
        raise TranslationError(
            "comparing symbols with strings: write the value as a symbol (`AAPL) or use like", pos
        )
    if "timestamp" in (ta, tb) and ({ta, tb} & TIME_OF_DAY):
        raise TranslationError(
            f"comparing timestamp with {ta if tb == 'timestamp' else tb}: take the "
            "time of day first, e.g. time.minute or `time$time",
            pos,
        )
    raise TranslationError(f"cannot compare {ta} with {tb}", pos)


def compare(op: str, a: Expr, b: Expr, pos: int, where_ctx: bool) -> Expr:
    _comparable(a, b, pos)
    if a.qtype == "string" or b.qtype == "string":
        raise TranslationError(
            f"'{op}' on strings compares characters in q: use like or symbols", pos
        )
    if op == "=":
        if a.nonnull or b.nonnull:
            plain = f"({a.sql} = {b.sql})"
            return _bool(plain if where_ctx else f"coalesce({plain}, false)", (a, b), pos)
        return _bool(f"({a.sql} IS NOT DISTINCT FROM {b.sql})", (a, b), pos)
    if op == "<>":
        return _bool(f"({a.sql} IS DISTINCT FROM {b.sql})", (a, b), pos)
    plain = f"({a.sql} {op} {b.sql})"
    if op in (">", ">="):
        # a > b is b < a: one set of null rules for both directions.
        a, b, op = b, a, _FLIP[op]
    # What the comparison is when either side is null: null is below every value.
    if op == "<":
        when_null = "false" if a.nonnull else ("" if b.nonnull else None)
        if when_null == "":
            when_null = f"{a.sql} IS NULL"
        elif when_null is None:
            when_null = f"({a.sql} IS NULL AND {b.sql} IS NOT NULL)"
    else:  # <=
        when_null = "false" if a.nonnull else f"{a.sql} IS NULL"
    if when_null == "false":
        return _bool(plain if where_ctx else f"coalesce({plain}, false)", (a, b), pos)
    if where_ctx:
        return _bool(f"({plain} OR {when_null})", (a, b), pos)
    return _bool(f"coalesce({plain}, {when_null})", (a, b), pos)


def _bool(sql: str, args: Sequence[Expr], pos: int) -> Expr:
    return derived(sql, "boolean", args, pos, nonnull=True)


def _compare_handler(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, b = _args(node, scope, tr)
    _no_vectors(node, a, b)
    return compare(node.fn, a, b, node.pos, scope.where_ctx)


# -- arithmetic ------------------------------------------------------------------------


def _arith(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, b = _args(node, scope, tr)
    _no_vectors(node, a, b)
    op = node.fn
    if op == "%":
        _numeric(node, a, b)
        return derived(f"(CAST({a.sql} AS DOUBLE) / {b.sql})", "float", (a, b), node.pos)
    if (a.qtype in NUMERIC and b.qtype in NUMERIC) or None in (a.qtype, b.qtype):
        qtype = promote(a.qtype, b.qtype)
        sa, sb = _widen(a), _widen(b)
        sql = f"({sa} {op} {sb})"
        if qtype in INTEGRAL and qtype != "long":
            sql = f"CAST({sql} AS {sql_type(qtype)})"
        return derived(sql, qtype, (a, b), node.pos)
    return temporal_arith(op, a, b, node.pos)


def _widen(e: Expr) -> str:
    # q computes boolean and byte arithmetic as int; DuckDB refuses arithmetic on BOOLEAN.
    return f"CAST({e.sql} AS INTEGER)" if e.qtype in ("boolean", "byte") else e.sql


def _numeric(node: Call, *exprs: Expr) -> None:
    for e in exprs:
        if e.qtype is not None and e.qtype not in NUMERIC:
            raise TranslationError(f"'{node.fn}' needs numbers, got {e.qtype}", node.pos)


def _div(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, b = _args(node, scope, tr)
    _numeric(node, a, b)
    sql = f"CAST(floor(CAST({a.sql} AS DOUBLE) / {b.sql}) AS BIGINT)"
    return derived(sql, "long", (a, b), node.pos)


def _mod(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, b = _args(node, scope, tr)
    _numeric(node, a, b)
    qtype = promote(a.qtype, b.qtype)
    # q's mod takes the sign of the divisor; SQL's % takes the sign of the dividend.
    sql = f"((({_widen(a)} % {_widen(b)}) + {_widen(b)}) % {_widen(b)})"
    return derived(sql, qtype, (a, b), node.pos)


# -- logic, min/max, fill --------------------------------------------------------------


def _and_or(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, b = _args(node, scope, tr)
    _no_vectors(node, a, b)
    is_and = node.fn in ("&", "and")
    if a.qtype == "boolean" and b.qtype == "boolean":
        return derived(
            f"({a.sql} {'AND' if is_and else 'OR'} {b.sql})", "boolean", (a, b), node.pos
        )
    qtype = promote_or_fail(a, b, node.pos)
    if is_and:
        # Lesser of the two; a null is the least value, so it wins.
        sql = (
            f"(CASE WHEN {a.sql} IS NULL OR {b.sql} IS NULL THEN NULL "
            f"ELSE least({a.sql}, {b.sql}) END)"
        )
    else:
        sql = f"greatest({a.sql}, {b.sql})"  # greatest skips nulls: null is the least value
    return derived(sql, qtype, (a, b), node.pos)


def _not(node: Call, scope: Scope, tr: Translate) -> Expr:
    x = tr(node.args[0], scope)
    if x.qtype == "boolean":
        return x.with_sql(f"(NOT {x.sql})")
    _numeric(node, x)
    return x.with_sql(f"coalesce({x.sql} = 0, false)", qtype="boolean", nonnull=True)


def _fill(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, b = _args(node, scope, tr)
    _no_vectors(node, a, b)
    qtype = promote_or_fail(a, b, node.pos)
    return derived(f"coalesce({b.sql}, {a.sql})", qtype, (a, b), node.pos, nonnull=a.nonnull)


# -- membership and patterns -----------------------------------------------------------


def _within(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, bounds = _args(node, scope, tr)
    if bounds.items is None or len(bounds.items) != 2:
        raise TranslationError(
            "'within' needs a two-item list of bounds, e.g. x within 10 20", node.args[1].pos
        )
    lo_atom, hi_atom = bounds.items
    lo = Expr(lo_atom.sql, lo_atom.qtype, "const", nonnull=not lo_atom.is_null)
    hi = Expr(hi_atom.sql, hi_atom.qtype, "const", nonnull=not hi_atom.is_null)
    _comparable(a, lo, node.pos)
    ge = compare(">=", a, lo, node.pos, scope.where_ctx)
    le = compare("<=", a, hi, node.pos, scope.where_ctx)
    if lo.nonnull and hi.nonnull:
        plain = f"({a.sql} BETWEEN {lo.sql} AND {hi.sql})"
        sql = plain if scope.where_ctx else f"coalesce({plain}, false)"
        return _bool(sql, (a,), node.pos)
    return _bool(f"({ge.sql} AND {le.sql})", (a,), node.pos)


def _in(node: Call, scope: Scope, tr: Translate) -> Expr:
    a = tr(node.args[0], scope)
    right = node.args[1]
    if isinstance(right, Query):
        if scope.subquery is None:
            raise TranslationError("'in' a nested query is not supported here", right.pos)
        sub = scope.subquery(right)
        plain = f"({a.sql} IN ({sub}))"
        return _bool(plain if scope.where_ctx else f"coalesce({plain}, false)", (a,), node.pos)
    b = tr(right, scope)
    items = b.items
    if items is None:
        if b.shape != "const":
            raise TranslationError(
                "'in' needs a literal list or a nested exec on the right", right.pos
            )
        return compare("=", a, b, node.pos, scope.where_ctx)
    _comparable(a, Expr(items[0].sql, items[0].qtype, "const"), node.pos)
    values = [i.sql for i in items if not i.is_null]
    terms = [f"{a.sql} IN ({', '.join(values)})"] if values else []
    if len(values) < len(items):
        terms.append(f"{a.sql} IS NULL")
    if not terms:
        return _bool("false", (a,), node.pos)
    plain = "(" + " OR ".join(terms) + ")"
    return _bool(plain if scope.where_ctx else f"coalesce({plain}, false)", (a,), node.pos)


def _like(node: Call, scope: Scope, tr: Translate) -> Expr:
    a, pattern = _args(node, scope, tr)
    if a.qtype not in TEXT and a.qtype is not None:
        raise TranslationError(f"'like' needs symbols or strings, got {a.qtype}", node.pos)
    if pattern.qtype != "string" or pattern.shape != "const":
        raise TranslationError(
            "'like' needs a string pattern, e.g. sym like \"AA*\"", node.args[1].pos
        )
    # q's like patterns (* ? [abc] [^abc]) are glob patterns; DuckDB negates a class with !.
    glob = pattern.sql.replace("[^", "[!")
    plain = f"({a.sql} GLOB {glob})"
    return _bool(plain if scope.where_ctx else f"coalesce({plain}, false)", (a,), node.pos)


# -- monadic numeric functions ---------------------------------------------------------


def _monadic(template: str, result: Callable[[str | None], str | None]) -> Handler:
    def handler(node: Call, scope: Scope, tr: Translate) -> Expr:
        x = tr(node.args[0], scope)
        _no_vectors(node, x)
        _numeric(node, x)
        sql = template.format(x=_widen(x))
        return derived(sql, result(x.qtype), (x,), node.pos)

    return handler


def _same(t: str | None) -> str | None:
    return "int" if t in ("boolean", "byte", "short") else t


def _float(_: str | None) -> str:
    return "float"


def _long(t: str | None) -> str | None:
    return "long" if t in FLOATING or t is None else t


HANDLERS: dict[str, Handler] = {
    **{op: _compare_handler for op in ("=", "<>", "<", ">", "<=", ">=")},
    **{op: _arith for op in ("+", "-", "*", "%")},
    "div": _div,
    "mod": _mod,
    "&": _and_or,
    "|": _and_or,
    "and": _and_or,
    "or": _and_or,
    "^": _fill,
    "not": _not,
    "within": _within,
    "in": _in,
    "like": _like,
    "neg": _monadic("(-{x})", _same),
    "abs": _monadic("abs({x})", _same),
    "exp": _monadic("exp({x})", _float),
    # q answers -0w for log 0 and null for negatives where DuckDB would raise.
    "log": _monadic(
        "(CASE WHEN {x} > 0 THEN ln({x}) WHEN {x} = 0 THEN '-inf'::DOUBLE END)", _float
    ),
    "sqrt": _monadic("(CASE WHEN {x} >= 0 THEN sqrt({x}) END)", _float),
    "floor": _monadic("CAST(floor({x}) AS BIGINT)", _long),
    "ceiling": _monadic("CAST(ceiling({x}) AS BIGINT)", _long),
    "signum": _monadic("CAST(sign({x}) AS INTEGER)", lambda _: "int"),
    "reciprocal": _monadic("(1.0 / {x})", _float),
}
MONADIC = frozenset(
    {"not", "neg", "abs", "exp", "log", "sqrt", "floor", "ceiling", "signum", "reciprocal"}
)
DYADIC = frozenset(HANDLERS) - MONADIC - {"-"} | {"-"}

__all__ = ["HANDLERS", "Node", "compare"]
