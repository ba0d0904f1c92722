"""q table expressions -> relations: table names, templates, sorting, take, sublist, keys.

Sorting only changes the order a relation is read back in (q's xasc and xdesc are stable, so
the previous order breaks ties); take and sublist cut rows in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from queries.q import joins, query
from queries.q.context import Context
from queries.q.errors import TranslationError
from queries.q.nodes import Call, Name, Node, Query, Sym
from queries.q.rel import Rel, int_items, keep_order, limit, order_terms
from queries.q.sqlexpr import quote_ident
from tickdb.schema import TableSchema

PARTITION_COLUMN = "date"


def base_rel(schema: TableSchema) -> Rel:
    """A logical table: its columns after the virtual partition column, in time order."""
    cols = ((PARTITION_COLUMN, "date"), *((c.name, c.qtype) for c in schema.columns))
    return Rel(quote_ident(schema.name), cols, (("time", False),))


def table_rel(node: Node, schemas: Mapping[str, TableSchema], ctx: Context) -> Rel:
    if isinstance(node, Name):
        schema = schemas.get(node.name)
        if schema is None:
            known = ", ".join(sorted(schemas))
            raise TranslationError(f"unknown table '{node.name}' (tables: {known})", node.pos)
        return base_rel(schema)
    if isinstance(node, Query):
        if node.kind in ("select", "exec"):
            return query.select(node, ctx)
        if node.kind == "update":
            return query.update(node, ctx)
        return query.delete(node, ctx)
    if isinstance(node, Call) and node.adverb is None:
        if node.fn in _BINARY and len(node.args) != 2:
            # ``#t`` or ``lj[t]``: applied prefix or in brackets, with another count.
            raise TranslationError(
                f"'{node.fn}' takes two arguments, got {len(node.args)}", node.pos
            )
        handler = _TABLE_FUNCTIONS.get(node.fn)
        if handler is not None:
            return handler(node, ctx)
        if node.fn in joins.JOINS:
            return joins.JOINS[node.fn](node, ctx)
    if isinstance(node, Call):
        raise TranslationError(f"'{node.fn}' is not supported as a table expression", node.pos)
    raise TranslationError(
        "expected a table: a table name, a select/exec/update/delete, a join, "
        "xasc/xdesc, # or sublist",
        node.pos,
    )


def _column_names(node: Node, rel: Rel, what: str) -> list[str]:
    if not isinstance(node, Sym):
        raise TranslationError(f"'{what}' needs column names as symbols on the left", node.pos)
    for name in node.names:
        if name not in rel.names:
            raise TranslationError(f"'{what}': unknown column '{name}'", node.pos)
    return list(node.names)


def _sort(desc: bool) -> Callable[[Call, Context], Rel]:
    def handler(node: Call, ctx: Context) -> Rel:
        rel = ctx.table(node.args[1])
        cols = _column_names(node.args[0], rel, node.fn)
        # Stable sort: the previous order breaks ties.
        kept = tuple(o for o in rel.order if o[0] not in cols)
        return replace(rel, order=tuple((c, desc) for c in cols) + kept)

    return handler


def _take(node: Call, ctx: Context) -> Rel:
    left, right = node.args
    rel = ctx.table(right)
    if isinstance(left, Sym):
        cols = _column_names(left, rel, "#")
        hidden = keep_order(rel, cols)
        listed = [quote_ident(c) for c in [*cols, *hidden]]
        source = f"(SELECT {', '.join(listed)} FROM {rel.source} AS {ctx.aliases.table()})"
        types = rel.types()
        return replace(
            rel, source=source, columns=tuple((c, types[c]) for c in cols), hidden=hidden, keys=()
        )
    (n,) = _one(int_items(left, "#"), left)
    if n == 0:
        return limit(rel, ctx.aliases, 0)
    first = limit(rel, ctx.aliases, abs(n), from_end=n < 0)
    # q's take repeats the rows when asked for more than there are: number the rows kept
    # in row order and cycle through them.
    rn, total, k = (ctx.aliases.column(p) for p in ("rn", "n", "k"))
    terms = order_terms(rel.order)
    over = f"OVER (ORDER BY {', '.join(terms)})" if terms else "OVER ()"
    s = ctx.aliases.table()
    rn_q, total_q, k_q = quote_ident(rn), quote_ident(total), quote_ident(k)
    numbered = (
        f"SELECT *, row_number() {over} - 1 AS {rn_q}, count(*) OVER () AS {total_q} "
        f"FROM {first.source} AS {ctx.aliases.table()}"
    )
    if n > 0:
        wanted = f"(r.{k_q} % {s}.{total_q})"
    else:
        wanted = f"(((r.{k_q} - {-n}) % {s}.{total_q} + {s}.{total_q}) % {s}.{total_q})"
    cols = [quote_ident(c) for c in rel.names] + [quote_ident(h) for h in rel.hidden]
    sql = (
        f"SELECT {', '.join(f'{s}.{c}' for c in cols)}, r.{k_q} "
        f"FROM range({abs(n)}) AS r({k_q}) JOIN ({numbered}) AS {s} "
        f"ON {s}.{rn_q} = {wanted}"
    )
    return replace(rel, source=f"({sql})", order=((k, False),), hidden=(*rel.hidden, k))


def _one(items: list[int], node: Node) -> list[int]:
    if len(items) != 1:
        raise TranslationError("'#' needs one count", node.pos)
    return items


def _sublist(node: Call, ctx: Context) -> Rel:
    left, right = node.args
    rel = ctx.table(right)
    items = int_items(left, "sublist")
    if len(items) == 1:
        n = items[0]
        return limit(rel, ctx.aliases, abs(n), from_end=n < 0)
    if len(items) == 2 and items[0] >= 0 and items[1] >= 0:
        return limit(rel, ctx.aliases, items[1], offset=items[0])
    raise TranslationError("'sublist' needs n, -n or start,count", left.pos)


def _xkey(node: Call, ctx: Context) -> Rel:
    rel = ctx.table(node.args[1])
    cols = _column_names(node.args[0], rel, "xkey")
    keyed = [c for c in rel.columns if c[0] in cols]
    rest = [c for c in rel.columns if c[0] not in cols]
    keyed.sort(key=lambda c: cols.index(c[0]))
    return replace(rel, columns=tuple(keyed + rest), keys=tuple(cols), unique_keys=False)


_TABLE_FUNCTIONS = {
    "xasc": _sort(False),
    "xdesc": _sort(True),
    "#": _take,
    "sublist": _sublist,
    "xkey": _xkey,
}
# Table functions and joins of a left and a right argument (aj and wj check their own).
_BINARY = frozenset({*_TABLE_FUNCTIONS, "lj", "ij"})
