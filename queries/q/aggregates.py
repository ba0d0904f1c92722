"""Aggregates (max, first, wavg, ...) and uniform functions (deltas, sums, mavg, ...).

An aggregate renders as a GROUP BY aggregate in ``agg`` mode and as the same aggregate over
a window partition in ``window`` mode (update ... by, where clauses, fby). Uniform functions
are always window functions in the table's time order; in ``agg`` mode they are computed one
query level down (hoisted) and aggregated from there. first and last follow time order, not
scan order, so results do not depend on how DuckDB reads the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from queries.q.errors import MixedShapes, TranslationError
from queries.q.handlers import Handler, Translate
from queries.q.nodes import Call, Func, ListExpr, Name, Node
from queries.q.qtypes import FLOATING, INT_INFINITY, INTEGRAL, NUMERIC, sql_type
from queries.q.sqlexpr import Expr, Scope, quote_ident

_FULL = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def _over(scope: Scope, *, ordered: bool, frame: str = "", pos: int) -> str:
    parts = []
    if scope.partition:
        parts.append("PARTITION BY " + ", ".join(scope.partition))
    if ordered:
        if not scope.order:
            raise TranslationError(
                "this function needs the table's time order, which is lost here", pos
            )
        parts.append("ORDER BY " + ", ".join(scope.order))
    if frame:
        parts.append(frame)
    return "OVER (" + " ".join(parts) + ")"


def _argument(node: Call, scope: Scope, tr: Translate, index: int = 0) -> Expr:
    try:
        x = tr(node.args[index], scope)
    except MixedShapes:
        x = broadcast(node.args[index], scope, tr)
    if x.items is not None:
        raise TranslationError(
            f"'{node.fn}' of a literal list is not supported", node.args[index].pos
        )
    if x.shape == "agg":
        raise TranslationError(
            f"'{node.fn}' of an aggregate is not supported", node.args[index].pos
        )
    if x.window and scope.mode == "window":
        # A window cannot contain another window: compute the inner one a level down.
        if scope.hoist is None:
            raise TranslationError(
                f"'{node.fn}' of a uniform function or aggregate is not supported here",
                node.args[index].pos,
            )
        return _hoist(x, scope)
    return x


def broadcast(node: Node, scope: Scope, tr: Translate) -> Expr:
    """A vector expression holding aggregates, in ``agg`` mode, as q evaluates it.

    q applies an aggregate to the whole vector in reach and broadcasts its one value, so
    ``max price - min price`` is ``max (price - min price)`` and, per group, ``price - avg
    price`` is each row's distance from its group's mean. Here the inner aggregates become
    windows over the group (the scope's partition), computed one level down over the rows
    the where clause left; the caller aggregates (or lists) that per-row column.
    """
    if scope.mode != "agg" or scope.hoist is None:
        raise MixedShapes("mixing per-row values and aggregates here is not supported", node.pos)
    # No hoist inside: a uniform function within would need a second level down.
    per_row = tr(node, replace(scope, mode="window", hoist=None))
    return _hoist(per_row, scope)


def _hoist(e: Expr, scope: Scope) -> Expr:
    assert scope.hoist is not None
    name = scope.hoist(e.sql)
    return Expr(quote_ident(name), e.qtype, "row", hoisted=True)


# -- aggregates ------------------------------------------------------------------------

# Builds the SQL of one aggregate from its argument(s); ``agg`` wraps each aggregate call,
# adding the OVER clause in window mode.
Builder = Callable[[list[Expr], Callable[[str], str], int], tuple[str, str | None]]


def _aggregate(build: Builder, arity: int = 1) -> Handler:
    def handler(node: Call, scope: Scope, tr: Translate) -> Expr:
        args = [_argument(node, scope, tr, i) for i in range(arity)]
        if scope.mode == "agg":
            sql, qtype = build(args, lambda call: call, node.pos)
            return Expr(sql, qtype, "agg")
        over = _over(scope, ordered=False, pos=node.pos)
        sql, qtype = build(args, lambda call: f"{call} {over}", node.pos)
        return Expr(sql, qtype, "row", window=True)

    return handler


def _numeric_arg(x: Expr, fn: str, pos: int) -> None:
    if x.qtype is not None and x.qtype not in NUMERIC:
        raise TranslationError(f"'{fn}' needs numbers, got {x.qtype}", pos)


def _count(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str]:
    return agg("count(*)"), "long"


def _sum_type(qtype: str | None) -> str:
    if qtype in FLOATING:
        return "float" if qtype == "float" else "real"
    return "int" if qtype in ("boolean", "byte", "short", "int") else "long"


def _sum(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str]:
    x = args[0]
    _numeric_arg(x, "sum", pos)
    qtype = _sum_type(x.qtype)
    arg = f"CAST({x.sql} AS INTEGER)" if x.qtype == "boolean" else x.sql
    # q's sum skips nulls and is 0 over nothing; DuckDB's is NULL there and HUGEINT on BIGINT.
    return f"CAST(coalesce({agg(f'sum({arg})')}, 0) AS {sql_type(qtype)})", qtype


def _extreme(fn: str) -> Builder:
    def build(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str | None]:
        x = args[0]
        if x.qtype in ("symbol", "string"):
            raise TranslationError(f"'{fn}' of symbols is a type error in q", pos)
        call = agg(f"{fn}({x.sql})")
        # Over nothing (or only nulls) q answers the opposite infinity of the type.
        sign = "-" if fn == "max" else ""
        if x.qtype in FLOATING:
            return f"coalesce({call}, '{sign}inf'::{sql_type(x.qtype)})", x.qtype
        if x.qtype in INT_INFINITY:
            return f"coalesce({call}, {sign}{INT_INFINITY[x.qtype]})", x.qtype
        return call, x.qtype

    return build


def _simple(template: str, result: str | None = "float") -> Builder:
    def build(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str | None]:
        x = args[0]
        _numeric_arg(x, template.split("(")[0], pos)
        arg = f"CAST({x.sql} AS DOUBLE)" if x.qtype in ("boolean",) else x.sql
        return agg(template.format(x=arg)), result

    return build


def _med(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str]:
    x = args[0]
    _numeric_arg(x, "med", pos)
    # q sorts nulls first and counts them, then averages the middle pair (skipping nulls).
    # Without nulls that is the plain median.
    ordered = f"list_sort({agg(f'list({x.sql})')}, 'ASC', 'NULLS FIRST')"
    n = agg("count(*)")
    exact = f"list_avg([{ordered}[({n} - 1) // 2 + 1], {ordered}[{n} // 2 + 1]])"
    return (
        f"(CASE WHEN {agg(f'count({x.sql})')} = {n} THEN "
        f"CAST({agg(f'median({x.sql})')} AS DOUBLE) ELSE {exact} END)"
    ), "float"


def _first_last(fn: str) -> Callable[[Scope], Builder]:
    def for_scope(scope: Scope) -> Builder:
        def build(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str | None]:
            x = args[0]
            if not scope.order:
                raise TranslationError(
                    f"'{fn}' needs the table's time order, which is lost here", pos
                )
            if len(scope.order) == 1 and not scope.order[0].endswith(("DESC", "LAST", "FIRST")):
                pick = "arg_min_null" if fn == "first" else "arg_max_null"
                return agg(f"{pick}({x.sql}, {scope.order[0]})"), x.qtype
            return agg(f"{fn}({x.sql} ORDER BY {', '.join(scope.order)})"), x.qtype

        return build

    return for_scope


def _first_last_handler(fn: str) -> Handler:
    def handler(node: Call, scope: Scope, tr: Translate) -> Expr:
        return _aggregate(_first_last(fn)(scope))(node, scope, tr)

    return handler


def _wavg(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str]:
    w, x = args
    _numeric_arg(w, "wavg", pos)
    _numeric_arg(x, "wavg", pos)
    # Pairs with a null on either side are skipped, in the weights' sum too.
    floating = w.qtype in FLOATING or x.qtype in FLOATING
    product = f"{w.sql} * {x.sql}" if floating else f"CAST({w.sql} AS DOUBLE) * {x.sql}"
    num = agg(f"sum({product})")
    den = agg(f"sum({w.sql}) FILTER (WHERE {x.sql} IS NOT NULL)")
    return f"(CAST({num} AS DOUBLE) / {den})", "float"


def _wsum(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str]:
    w, x = args
    _numeric_arg(w, "wsum", pos)
    _numeric_arg(x, "wsum", pos)
    qtype = "float" if {w.qtype, x.qtype} & FLOATING or None in (w.qtype, x.qtype) else "long"
    return f"CAST(coalesce({agg(f'sum({w.sql} * {x.sql})')}, 0) AS {sql_type(qtype)})", qtype


def _count_handler(node: Call, scope: Scope, tr: Translate) -> Expr:
    arg = node.args[0]
    if isinstance(arg, Call) and arg.fn == "distinct" and len(arg.args) == 1:

        def build(args: list[Expr], agg: Callable[[str], str], pos: int) -> tuple[str, str]:
            x = args[0]
            # q's distinct keeps one null; SQL's count(DISTINCT) drops them.
            has_null = f"CAST({agg('count(*)')} > {agg(f'count({x.sql})')} AS BIGINT)"
            return f"({agg(f'count(DISTINCT {x.sql})')} + {has_null})", "long"

        return _aggregate(build)(Call(arg.pos, "count", arg.args), scope, tr)
    if isinstance(arg, Name) and arg.name == "i":
        # The virtual row index: count i is the row count.
        return _aggregate(_count)(node, _with_i(scope), tr)
    return _aggregate(_count)(node, scope, tr)


def _with_i(scope: Scope) -> Scope:
    return replace(scope, columns={**scope.columns, "i": "long"})


def _distinct(node: Call, scope: Scope, tr: Translate) -> Expr:
    raise TranslationError(
        "'distinct' is supported as count distinct x, select distinct x from t "
        "and exec distinct x from t",
        node.pos,
    )


# -- uniform functions -----------------------------------------------------------------


def _uniform(build: Callable[[Expr, Scope, int], tuple[str, str | None]]) -> Handler:
    def handler(node: Call, scope: Scope, tr: Translate) -> Expr:
        x = _argument(node, scope, tr, len(node.args) - 1)
        if x.hoisted and scope.mode == "agg":
            raise TranslationError(
                f"'{node.fn}' of another uniform function is not supported here", node.pos
            )
        sql, qtype = build(x, scope, node.pos)
        e = Expr(sql, qtype, "row", window=True)
        return _hoist(e, scope) if scope.mode == "agg" else e

    return handler


def _deltas(x: Expr, scope: Scope, pos: int) -> tuple[str, str | None]:
    _numeric_arg(x, "deltas", pos)
    # The first item is itself (x - 0), as in q.
    return f"({x.sql} - lag({x.sql}, 1, 0) {_over(scope, ordered=True, pos=pos)})", x.qtype


def _ratios(x: Expr, scope: Scope, pos: int) -> tuple[str, str]:
    _numeric_arg(x, "ratios", pos)
    return (
        f"(CAST({x.sql} AS DOUBLE) / lag({x.sql}, 1, 1) {_over(scope, ordered=True, pos=pos)})"
    ), "float"


def _sums(x: Expr, scope: Scope, pos: int) -> tuple[str, str]:
    _numeric_arg(x, "sums", pos)
    qtype = _sum_type(x.qtype)
    arg = f"CAST({x.sql} AS INTEGER)" if x.qtype == "boolean" else x.sql
    over = _over(scope, ordered=True, frame=_FULL, pos=pos)
    return f"CAST(coalesce(sum({arg}) {over}, 0) AS {sql_type(qtype)})", qtype


def _shift(fn: str) -> Callable[[Expr, Scope, int], tuple[str, str | None]]:
    def build(x: Expr, scope: Scope, pos: int) -> tuple[str, str | None]:
        return f"{fn}({x.sql}) {_over(scope, ordered=True, pos=pos)}", x.qtype

    return build


def _fills(x: Expr, scope: Scope, pos: int) -> tuple[str, str | None]:
    over = _over(scope, ordered=True, frame=_FULL, pos=pos)
    return f"last_value({x.sql} IGNORE NULLS) {over}", x.qtype


def _running(fn: str) -> Callable[[Expr, Scope, int], tuple[str, str | None]]:
    def build(x: Expr, scope: Scope, pos: int) -> tuple[str, str | None]:
        _numeric_arg(x, fn + "s", pos)
        return f"{fn}({x.sql}) {_over(scope, ordered=True, frame=_FULL, pos=pos)}", x.qtype

    return build


def _moving(fn: str) -> Handler:
    def handler(node: Call, scope: Scope, tr: Translate) -> Expr:
        n = tr(node.args[0], scope)
        if n.qtype not in INTEGRAL or n.shape != "const" or n.items is not None:
            raise TranslationError(
                f"'{fn}' needs a literal positive integer window on the left", node.args[0].pos
            )
        size = int(n.sql.split("(")[1].split(" ")[0])
        if size <= 0:
            raise TranslationError(f"'{fn}' window must be positive", node.args[0].pos)
        frame = f"ROWS BETWEEN {size - 1} PRECEDING AND CURRENT ROW"

        def build(x: Expr, sc: Scope, pos: int) -> tuple[str, str | None]:
            _numeric_arg(x, fn, pos)
            over = _over(sc, ordered=True, frame=frame, pos=pos)
            if fn == "mavg":
                return f"avg({x.sql}) {over}", "float"
            if fn == "msum":
                qtype = _sum_type(x.qtype)
                return f"CAST(coalesce(sum({x.sql}) {over}, 0) AS {sql_type(qtype)})", qtype
            if fn == "mcount":
                return f"count({x.sql}) {over}", "int"
            return f"{fn[1:]}({x.sql}) {over}", x.qtype

        return _uniform(build)(node, scope, tr)

    return handler


# -- fby -------------------------------------------------------------------------------


def _fby(node: Call, scope: Scope, tr: Translate) -> Expr:
    spec, group = node.args
    if not (
        isinstance(spec, ListExpr) and len(spec.items) == 2 and isinstance(spec.items[0], Func)
    ):
        raise TranslationError(
            "'fby' needs (aggregate;column) on the left, e.g. (max;price) fby sym", spec.pos
        )
    fn = spec.items[0]
    g = tr(group, replace(scope, mode="window"))
    if g.shape != "row" or g.window:
        raise TranslationError("'fby' groups by a column expression", group.pos)
    inner = replace(scope, mode="window", partition=(*scope.partition, g.sql))
    e = tr(Call(fn.pos, fn.name, (spec.items[1],)), inner)
    if not e.window:
        raise TranslationError(f"'fby' needs an aggregate, not '{fn.name}'", fn.pos)
    return _hoist(e, scope) if scope.mode == "agg" else e


HANDLERS: dict[str, Handler] = {
    "count": _count_handler,
    "sum": _aggregate(_sum),
    "max": _aggregate(_extreme("max")),
    "min": _aggregate(_extreme("min")),
    "avg": _aggregate(_simple("avg({x})")),
    "med": _aggregate(_med),
    "dev": _aggregate(_simple("stddev_pop({x})")),
    "sdev": _aggregate(_simple("stddev_samp({x})")),
    "var": _aggregate(_simple("var_pop({x})")),
    "svar": _aggregate(_simple("var_samp({x})")),
    "first": _first_last_handler("first"),
    "last": _first_last_handler("last"),
    "wavg": _aggregate(_wavg, 2),
    "wsum": _aggregate(_wsum, 2),
    "distinct": _distinct,
    "deltas": _uniform(_deltas),
    "ratios": _uniform(_ratios),
    "sums": _uniform(_sums),
    "prev": _uniform(_shift("lag")),
    "next": _uniform(_shift("lead")),
    "fills": _uniform(_fills),
    "maxs": _uniform(_running("max")),
    "mins": _uniform(_running("min")),
    "mavg": _moving("mavg"),
    "msum": _moving("msum"),
    "mmax": _moving("mmax"),
    "mmin": _moving("mmin"),
    "mcount": _moving("mcount"),
    "fby": _fby,
}
DYADIC = frozenset({"wavg", "wsum", "mavg", "msum", "mmax", "mmin", "mcount", "fby"})
MONADIC = frozenset(HANDLERS) - DYADIC
