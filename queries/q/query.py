"""q-sql templates -> SQL: select, exec, update and delete over one relation.

Where subphrases filter one after another, as in q: consecutive row-wise subphrases share a
WHERE; a subphrase with an aggregate or uniform function (``price > avg price``,
``(max;price) fby sym``) is evaluated over the rows the earlier subphrases left, via
QUALIFY, and the next subphrases filter its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from queries.q.aggregates import broadcast
from queries.q.context import Context
from queries.q.errors import MixedShapes, TranslationError
from queries.q.exprs import translate
from queries.q.naming import default_name, unique_names
from queries.q.nodes import Call, Func, Name, Node, Phrase, Query
from queries.q.operators import require_boolean
from queries.q.rel import Rel, apply_limit, keep_order, window_order
from queries.q.sqlexpr import Expr, Scope, quote_ident


@dataclass
class Hoister:
    """Window expressions to compute one level below the query that uses them."""

    ctx: Context
    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, sql: str) -> str:
        name = self.ctx.aliases.column("w")
        self.items.append((name, sql))
        return name


@dataclass
class Level:
    """A FROM item plus the row filters that apply to it."""

    source: str
    where: list[str] = field(default_factory=list)

    def select(self, select_list: str, tail: str = "") -> str:
        sql = f"SELECT {select_list} FROM {self.source}"
        if self.where:
            sql += " WHERE " + " AND ".join(self.where)
        return sql + tail

    def lower(self, hoister: Hoister, ctx: Context) -> Level:
        """Compute hoisted windows over the filtered rows, one level down."""
        if not hoister.items:
            return self
        extra = ", ".join(f"{sql} AS {quote_ident(name)}" for name, sql in hoister.items)
        return Level(f"({self.select('*, ' + extra)}) AS {ctx.aliases.table()}")


def base_scope(rel: Rel, ctx: Context, **kw: object) -> Scope:
    types: dict[str, str | None] = dict(rel.columns)
    scope = Scope(types, window_order(rel.order), "window", subquery=lambda q: _exec_sql(q, ctx))
    return replace(scope, **kw)  # type: ignore[arg-type]


def _exec_sql(node: object, ctx: Context) -> str:
    assert isinstance(node, Query)
    if node.kind != "exec" or len(node.columns) != 1:
        raise TranslationError("'in' a nested query needs an exec of one column", node.pos)
    rel = ctx.table(node)
    return f"SELECT {quote_ident(rel.names[0])} FROM {rel.source} AS {ctx.aliases.table()}"


def where_level(rel: Rel, clauses: tuple[Node, ...], ctx: Context) -> Level:
    level = Level(f"{rel.source} AS {ctx.aliases.table()}")
    for clause in clauses:
        # Windows inside windows (``price > max price - min price``) are computed a level
        # down, over the rows the earlier subphrases left.
        hoister = Hoister(ctx)
        scope = base_scope(rel, ctx, where_ctx=True, hoist=hoister.add)
        e = translate(clause, scope)
        require_boolean(e, clause.pos, "a where subphrase")
        level = level.lower(hoister, ctx)
        if e.window:
            sql = level.select("*", f" QUALIFY {e.sql}")
            level = Level(f"({sql}) AS {ctx.aliases.table()}")
        else:
            level.where.append(e.sql)
    return level


def row_conditions(rel: Rel, clauses: tuple[Node, ...], ctx: Context, what: str) -> str | None:
    """update/delete where: one boolean per row, never null."""
    terms = []
    for clause in clauses:
        e = translate(clause, base_scope(rel, ctx))
        require_boolean(e, clause.pos, "a where subphrase")
        if e.window:
            raise TranslationError(
                f"aggregates and uniform functions in a {what} where clause are not supported",
                clause.pos,
            )
        terms.append(e.sql if e.nonnull else f"coalesce({e.sql}, false)")
    return " AND ".join(f"({t})" for t in terms) if terms else None


def _names(phrases: tuple[Phrase, ...]) -> list[str]:
    return [p.name or default_name(p.expr) for p in phrases]


def _carry_order(
    rel: Rel, ctx: Context, output: dict[str, str]
) -> tuple[list[str], tuple[tuple[str, bool], ...]]:
    """Hidden columns that carry the source's row order through a projection.

    An order column the projection already outputs unchanged (``select time, ...``) is used
    as it is, so the sort carries no extra column.
    """
    select, order = [], []
    for col, desc in rel.order:
        if output.get(col) == quote_ident(col):
            order.append((col, desc))
            continue
        hidden = ctx.aliases.column("o")
        select.append(f"{quote_ident(col)} AS {quote_ident(hidden)}")
        order.append((hidden, desc))
    return select, tuple(order)


# -- select / exec ---------------------------------------------------------------------


def select(q: Query, ctx: Context) -> Rel:
    src = ctx.table(q.table)
    if q.kind == "exec" and q.by is not None:
        raise TranslationError(
            "'exec ... by' (a dictionary result) is not supported; use select ... by", q.pos
        )
    if q.kind == "exec" and not q.columns:
        raise TranslationError("'exec' needs at least one column", q.pos)
    level = where_level(src, q.where, ctx)
    if len(q.columns) == 1 and _is_distinct(q.columns[0].expr) and q.by is None:
        rel = _distinct(q, src, level, ctx)
    elif q.by is not None:
        rel = _grouped(q, src, level, ctx)
    elif not q.columns:
        listed = ", ".join(quote_ident(c) for c in [*src.names, *src.hidden])
        rel = replace(src, source=f"({level.select(listed)})", keys=(), unique_keys=False)
    else:
        rel = _ungrouped(q, src, level, ctx)
    if q.limit is not None:
        rel = apply_limit(rel, q.limit, ctx.aliases)
    return rel


def _is_distinct(node: Node) -> bool:
    return (isinstance(node, Func) and node.name == "distinct") or (
        isinstance(node, Call) and node.fn == "distinct" and not node.infix
    )


def _distinct(q: Query, src: Rel, level: Level, ctx: Context) -> Rel:
    """Distinct values (or rows) in order of first appearance."""
    node = q.columns[0].expr
    if len(src.order) != 1 or src.order[0][1]:
        raise TranslationError("'distinct' needs the table's time order", node.pos)
    first_seen = ctx.aliases.column("o")
    at = f"min({quote_ident(src.order[0][0])}) AS {quote_ident(first_seen)}"
    if isinstance(node, Func):
        cols = list(src.columns)
        listed = ", ".join(quote_ident(c) for c, _ in cols)
        sql = level.select(f"{listed}, {at}", " GROUP BY ALL")
    else:
        assert isinstance(node, Call)
        e = translate(node.args[0], base_scope(src, ctx))
        if e.shape != "row" or e.window:
            raise TranslationError("'distinct' of this expression is not supported", node.pos)
        name = q.columns[0].name or default_name(node)
        cols = [(name, e.qtype)]
        sql = level.select(f"{e.sql} AS {quote_ident(name)}, {at}", " GROUP BY 1")
    return Rel(f"({sql})", tuple(cols), ((first_seen, False),), (first_seen,))


def _ungrouped(q: Query, src: Rel, level: Level, ctx: Context) -> Rel:
    names = unique_names(_names(q.columns))
    hoister = Hoister(ctx)
    exprs: list[Expr] | None = None
    try:
        scope = base_scope(src, ctx, mode="agg", hoist=hoister.add)
        exprs = [translate(p.expr, scope) for p in q.columns]
        if any(e.shape == "row" for e in exprs):
            exprs = None
    except TranslationError:
        exprs = None
    if exprs is not None and all(e.shape == "const" for e in exprs):
        raise TranslationError("a select of literals only is not supported", q.pos)
    if exprs is None:
        # Per-row result: aggregates become windows over the whole (filtered) table.
        hoister = Hoister(ctx)
        scope = base_scope(src, ctx, mode="window", hoist=hoister.add)
        exprs = [translate(p.expr, scope) for p in q.columns]
        for p, e in zip(q.columns, exprs, strict=True):
            if e.items is not None:
                raise TranslationError("a literal list as a column is not supported", p.pos)
        listed = [f"{e.sql} AS {quote_ident(n)}" for e, n in zip(exprs, names, strict=True)]
        output = {n: e.sql for n, e in zip(names, exprs, strict=True)}
        carry, order = _carry_order(src, ctx, output)
        sql = level.lower(hoister, ctx).select(", ".join(listed + carry))
        cols = tuple((n, e.qtype) for n, e in zip(names, exprs, strict=True))
        return Rel(f"({sql})", cols, order, tuple(c for c, _ in order if c not in output))
    listed = [f"{e.sql} AS {quote_ident(n)}" for e, n in zip(exprs, names, strict=True)]
    sql = level.lower(hoister, ctx).select(", ".join(listed))
    return Rel(f"({sql})", tuple((n, e.qtype) for n, e in zip(names, exprs, strict=True)))


def _grouped(q: Query, src: Rel, level: Level, ctx: Context) -> Rel:
    assert q.by is not None
    hoister = Hoister(ctx)
    by_scope = base_scope(src, ctx, mode="window")
    by_exprs = []
    for p in q.by:
        e = translate(p.expr, by_scope)
        if e.shape == "const" or e.items is not None:
            raise TranslationError("a by subphrase must depend on the rows", p.pos)
        if e.window:
            e = Expr(quote_ident(hoister.add(e.sql)), e.qtype, "row", hoisted=True)
        by_exprs.append(e)
    by_names = _names(q.by)
    if len(set(by_names)) != len(by_names):
        raise TranslationError(f"duplicate by names {by_names}", q.by[0].pos)
    col_scope = base_scope(
        src, ctx, mode="agg", hoist=hoister.add, partition=tuple(e.sql for e in by_exprs)
    )
    phrases = q.columns or tuple(
        Phrase(q.pos, c, Call(q.pos, "last", (Name(q.pos, c),)))
        for c in src.names
        if c not in by_names
    )
    names = unique_names(_names(phrases))
    clash = set(names) & set(by_names)
    if clash:
        raise TranslationError(f"duplicate names for columns and groups: {sorted(clash)}", q.pos)
    exprs = [_translate_broadcast(p.expr, col_scope) for p in phrases]
    if any(e.hoisted for e in by_exprs) and len(hoister.items) > sum(e.hoisted for e in by_exprs):
        raise TranslationError(
            "uniform functions in both by and select phrases are not supported", q.pos
        )
    order = ", ".join(window_order(src.order))
    listed = [f"{e.sql} AS {quote_ident(n)}" for e, n in zip(by_exprs, by_names, strict=True)]
    for p, e, n in zip(phrases, exprs, names, strict=True):
        if e.items is not None:
            raise TranslationError("a literal list as a column is not supported", p.pos)
        sql = e.sql
        if e.shape == "row":
            # Per-group vectors, in row order, as q keeps them.
            sql = f"list({sql} ORDER BY {order})" if order else f"list({sql})"
        listed.append(f"{sql} AS {quote_ident(n)}")
    groups = ", ".join(str(i + 1) for i in range(len(by_exprs)))
    sql = level.lower(hoister, ctx).select(", ".join(listed), f" GROUP BY {groups}")
    cols = tuple((n, e.qtype) for n, e in zip(by_names, by_exprs, strict=True)) + tuple(
        (n, "list" if e.shape == "row" else e.qtype) for n, e in zip(names, exprs, strict=True)
    )
    return Rel(f"({sql})", cols, tuple((n, False) for n in by_names), (), tuple(by_names), True)


def _translate_broadcast(node: Node, scope: Scope) -> Expr:
    """A select phrase of a grouped select; one mixing rows and aggregates without an
    outer aggregate (``price - avg price``) is per-row, so a per-group list, as in q."""
    try:
        return translate(node, scope)
    except MixedShapes:
        return broadcast(node, scope, translate)


# -- update / delete -------------------------------------------------------------------


def update(q: Query, ctx: Context) -> Rel:
    src = ctx.table(q.table)
    cond = row_conditions(src, q.where, ctx, "update")
    partition: list[str] = [cond] if cond else []
    for p in q.by or ():
        e = translate(p.expr, base_scope(src, ctx))
        if e.shape != "row" or e.window:
            raise TranslationError("an update by subphrase must be a row-wise expression", p.pos)
        partition.append(e.sql)
    hoister = Hoister(ctx)
    scope = base_scope(src, ctx, hoist=hoister.add, partition=tuple(partition))
    types = src.types()
    assigned: dict[str, str] = {}
    for p in q.columns:
        name = p.name or default_name(p.expr)
        e = translate(p.expr, scope)
        if e.items is not None:
            raise TranslationError("assigning a literal list is not supported", p.pos)
        old = quote_ident(name) if name in types else "NULL"
        assigned[name] = f"CASE WHEN {cond} THEN {e.sql} ELSE {old} END" if cond else e.sql
        types[name] = e.qtype
    listed = [f"{assigned.get(c, quote_ident(c))} AS {quote_ident(c)}" for c in types]
    listed += [quote_ident(h) for h in src.hidden]
    level = Level(f"{src.source} AS {ctx.aliases.table()}").lower(hoister, ctx)
    return replace(src, source=f"({level.select(', '.join(listed))})", columns=tuple(types.items()))


def delete(q: Query, ctx: Context) -> Rel:
    src = ctx.table(q.table)
    source = f"{src.source} AS {ctx.aliases.table()}"
    if q.columns:
        if q.where:
            raise TranslationError("'delete' takes columns or a where clause, not both", q.pos)
        drop = []
        for p in q.columns:
            if not isinstance(p.expr, Name) or p.expr.name not in src.names:
                raise TranslationError("'delete' columns must be column names of the table", p.pos)
            drop.append(p.expr.name)
        kept = [c for c in src.columns if c[0] not in drop]
        hidden = keep_order(src, [c for c, _ in kept])
        listed = [quote_ident(c) for c in [*(c for c, _ in kept), *hidden]]
        return replace(
            src,
            source=f"(SELECT {', '.join(listed)} FROM {source})",
            columns=tuple(kept),
            hidden=hidden,
        )
    cond = row_conditions(src, q.where, ctx, "delete")
    keep = f"NOT ({cond})" if cond else "false"
    listed = [quote_ident(c) for c in src.names] + [quote_ident(h) for h in src.hidden]
    return replace(src, source=f"(SELECT {', '.join(listed)} FROM {source} WHERE {keep})")
