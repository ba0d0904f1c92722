"""Split one SELECT into a query every backend runs and a merge query the gateway runs.

Two shapes are distributed:

* **aggregate**: ``SELECT keys, aggs FROM src WHERE w GROUP BY keys HAVING h ORDER BY o
  LIMIT n``. Each backend returns partial aggregates per group (``_g*`` keys, ``_a*``
  partials); the gateway groups the stacked partials again and finishes each aggregate
  (count -> sum of counts, avg -> sum/count, first/last -> arg_min/arg_max carrying the time).
  HAVING, ORDER BY and LIMIT run only in the gateway.
* **rows**: no aggregates. Backends run the select list (and LIMIT n+offset, after the same
  ORDER BY, since the global top n is among every part's top n); the gateway sorts and cuts.

``src`` is one logical table or a join the planner has shown to be backend-local. Anything
else raises ``NotDistributable`` and the planner falls back to pulling rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlglot import exp

from gateway.analysis import base_table, from_clause, is_aggregate
from gateway.catalog import Catalog, OutputColumn
from gateway.partials import NotDistributable, Partials, finish_aggregate, to_sql
from gateway.predicates import ROUTING, Restriction, conjuncts, restriction_of_all

PARTS = "_parts"
# ``groups``: every group lives in one backend (``distribute(group_local=True)``), so the
# backends finish their groups and the gateway merges them as rows.
DistributedMode = Literal["groups", "aggregate", "rows"]


@dataclass(frozen=True)
class Stack:
    """The merge only stacks the parts, then applies OFFSET/LIMIT (rows without ORDER BY or
    DISTINCT): the gateway concatenates Arrow tables instead of a DuckDB pass."""

    limit: int | None
    offset: int


@dataclass(frozen=True)
class Distributed:
    mode: DistributedMode
    partial_sql: str
    final_sql: str
    tables: tuple[str, ...]
    restriction: Restriction
    join_keys: frozenset[str] | None  # columns every join equates; None without joins
    # Routing columns (sym, date) that are plain GROUP BY keys: when they pin every group
    # to one backend, the planner asks for ``group_local`` and backends finish the groups.
    group_columns: frozenset[str] = frozenset()
    stack: Stack | None = None


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _int_literal(node: exp.Expr | None) -> int | None:
    if node is None:
        return None
    value = node.args.get("expression") if isinstance(node, exp.Limit | exp.Offset) else node
    if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
        return int(value.this)
    raise NotDistributable("LIMIT/OFFSET is not a constant")


class _Rewriter:
    """Rewrites select/having/order expressions over group keys and partial aggregates."""

    def __init__(
        self, keys: list[exp.Expr], norm: Callable[[exp.Expr], str], aggregates: frozenset[str]
    ) -> None:
        self.keys = {norm(k): f"_g{i}" for i, k in enumerate(keys)}
        self.norm = norm
        self.aggregates = aggregates
        self.partials = Partials()

    def __call__(self, node: exp.Expr) -> exp.Expr:
        key = self.keys.get(self.norm(node))
        if key is not None:
            return exp.column(key)
        if isinstance(node, exp.Filter) and is_aggregate(node.this, self.aggregates):
            return finish_aggregate(node, self.partials)
        if is_aggregate(node, self.aggregates):
            return finish_aggregate(node, self.partials)
        if isinstance(
            node,
            exp.Column
            | exp.Star
            | exp.Window
            | exp.IgnoreNulls
            | exp.RespectNulls
            | exp.WithinGroup,
        ):
            raise NotDistributable(f"{to_sql(node)} is neither a group key nor an aggregate")
        out = node.copy()
        for name, value in list(out.args.items()):
            if isinstance(value, exp.Expr):
                out.set(name, self(value))
            elif isinstance(value, list):
                out.set(name, [self(v) if isinstance(v, exp.Expr) else v for v in value])
        return out


def _contains_aggregate(node: exp.Expr, aggregates: frozenset[str]) -> bool:
    return any(is_aggregate(n, aggregates) for n in node.walk())


def _join_keys(select: exp.Select, aliases: list[str]) -> frozenset[str]:
    """Columns that every join equates between its table and an earlier one."""
    common: set[str] | None = None
    for i, join in enumerate(select.args.get("joins") or []):
        mine, earlier = aliases[i + 1], set(aliases[: i + 1])
        equal = {ident.name.lower() for ident in join.args.get("using") or []}
        for cond in conjuncts(join.args.get("on")):
            if (
                isinstance(cond, exp.EQ)
                and isinstance(cond.this, exp.Column)
                and isinstance(cond.expression, exp.Column)
            ):
                a, b = cond.this, cond.expression
                if a.name.lower() == b.name.lower() and {a.table.lower(), b.table.lower()} in (
                    {mine, e} for e in earlier if e != mine
                ):
                    equal.add(a.name.lower())
        common = equal if common is None else common & equal
    return frozenset((common or set()) & ROUTING)


def _check_source(ast: exp.Expr, catalog: Catalog) -> tuple[list[str], list[str]]:
    if not isinstance(ast, exp.Select) or ast.args.get("with") or ast.args.get("qualify"):
        raise NotDistributable("not a plain SELECT")
    if any(n is not ast for n in ast.find_all(exp.Select)) or any(
        True for _ in ast.find_all(exp.Window)
    ):
        raise NotDistributable("subquery or window function")
    distinct = ast.args.get("distinct")
    if distinct is not None and distinct.args.get("on"):
        raise NotDistributable("DISTINCT ON")
    first = from_clause(ast)
    items = [first.this] if first is not None else []
    for join in ast.args.get("joins") or []:
        method = str(join.args.get("method") or "").upper()
        kind = str(join.args.get("kind") or "").upper()
        if (
            method not in ("", "ASOF")
            or kind == "CROSS"
            or not (join.args.get("on") or join.args.get("using"))
        ):
            raise NotDistributable("join is not an equi-join")
        items.append(join.this)
    tables = [base_table(i, catalog) for i in items]
    if not tables or any(t is None for t in tables) or ast.args.get("sample"):
        raise NotDistributable("reads something other than logical tables")
    aliases = [i.alias_or_name.lower() for i in items]
    return [str(t) for t in tables], aliases


def distribute(
    ast: exp.Expr, outputs: list[OutputColumn], catalog: Catalog, group_local: bool = False
) -> Distributed:
    tables, aliases = _check_source(ast, catalog)
    assert isinstance(ast, exp.Select)
    joined = len(tables) > 1
    source_cols = {c for t in tables for c in catalog.column_names(t)}
    where = ast.args.get("where")
    restriction = restriction_of_all(
        conjuncts(where),
        lambda c: (
            c.name.lower()
            if c.name.lower() in ROUTING and (not c.table or c.table.lower() in aliases)
            else None
        ),
    )
    clauses = [from_clause(ast), *(ast.args.get("joins") or []), where]
    src = " ".join(to_sql(n) for n in clauses if n is not None)

    def norm(node: exp.Expr) -> str:
        if joined:
            return to_sql(node)
        out = node.copy()
        for col in out.find_all(exp.Column):
            col.set("table", None)
        return to_sql(out)

    items = list(ast.expressions)
    alias_of = {i.alias.lower(): i.this for i in items if isinstance(i, exp.Alias)}

    def resolve_alias(node: exp.Expr) -> exp.Expr:
        """A bare name that is an output alias (and not also a column) -> its expression."""
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in alias_of:
            if node.name.lower() in source_cols:
                raise NotDistributable(f"{node.name} is both a column and an alias")
            return alias_of[node.name.lower()].copy()
        return node

    limit = _int_literal(ast.args.get("limit"))
    offset = _int_literal(ast.args.get("offset")) or 0
    aggregates = catalog.aggregates
    group = ast.args.get("group")
    clauses = [*items, ast.args.get("having"), ast.args.get("order")]
    grouped = group is not None or any(
        c is not None and _contains_aggregate(c, aggregates) for c in clauses
    )
    join_keys = _join_keys(ast, aliases) if joined else None
    tail = _tail(limit, offset)
    if grouped:
        bare = [i.this if isinstance(i, exp.Alias) else i for i in items]
        keys = _group_keys(group, bare, resolve_alias, aggregates)
        columns = frozenset(
            k.name.lower() for k in keys if isinstance(k, exp.Column) and k.name.lower() in ROUTING
        )
        if group_local and group is not None and not ast.args.get("distinct"):
            # Every group lives in one backend: each finishes its groups (HAVING too) and
            # the gateway only concatenates, sorts and cuts, as for plain rows.
            having = ast.args.get("having")
            grouped_src = " ".join(to_sql(n) for n in (group, having) if n is not None)
            partial, final, stack = _rows(
                ast,
                items,
                outputs,
                resolve_alias,
                source_cols,
                f"{src} {grouped_src}",
                limit,
                offset,
            )
            return Distributed(
                "groups", partial, final, tuple(tables), restriction, join_keys, columns, stack
            )
        partial, final = _aggregate(
            ast, items, outputs, keys, resolve_alias, norm, src, aggregates, tail
        )
        return Distributed(
            "aggregate", partial, final, tuple(tables), restriction, join_keys, columns
        )
    items = _expand_star(items, tables, catalog)
    partial, final, stack = _rows(
        ast, items, outputs, resolve_alias, source_cols, src, limit, offset
    )
    return Distributed("rows", partial, final, tuple(tables), restriction, join_keys, stack=stack)


def _expand_star(items: list[exp.Expr], tables: list[str], catalog: Catalog) -> list[exp.Expr]:
    """``*`` as the catalog's column list: backends may order their columns differently
    (the parts are stacked by position), the logical table's order is the catalog's."""
    out: list[exp.Expr] = []
    for item in items:
        star = (
            item
            if isinstance(item, exp.Star)
            else (
                item.this
                if isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
                else None
            )
        )
        if star is None:
            out.append(item)
            continue
        if len(tables) != 1 or star.args.get("replace") or star.args.get("rename"):
            raise NotDistributable("* over a join, or * REPLACE/RENAME")
        excluded = {c.name.lower() for c in star.args.get("except") or []}
        qualifier = item.table if isinstance(item, exp.Column) else None
        out += [
            exp.column(c, table=qualifier, quoted=True)
            for c in catalog.column_names(tables[0])
            if c not in excluded
        ]
    return out


def _tail(limit: int | None, offset: int) -> str:
    out = f" LIMIT {limit}" if limit is not None else ""
    return out + (f" OFFSET {offset}" if offset else "")


def _casts(exprs: list[str], outputs: list[OutputColumn]) -> str:
    if len(exprs) != len(outputs):
        raise NotDistributable("select list does not match the bound output")
    return ", ".join(
        f"CAST({e} AS {o.duckdb_type}) AS {quote_name(o.name)}"
        for e, o in zip(exprs, outputs, strict=True)
    )


def _group_keys(
    group: exp.Group | None,
    bare: list[exp.Expr],
    resolve_alias: Callable[[exp.Expr], exp.Expr],
    aggregates: frozenset[str],
) -> list[exp.Expr]:
    """GROUP BY keys as expressions: ordinals, aliases and ALL resolved."""
    keys: list[exp.Expr] = []
    if group is None:
        return keys
    if any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets")):
        raise NotDistributable("ROLLUP/CUBE/GROUPING SETS")
    if group.args.get("all"):
        keys = [b for b in bare if not _contains_aggregate(b, aggregates)]
    for node in group.expressions:
        if isinstance(node, exp.Literal) and not node.is_string:
            keys.append(bare[int(node.this) - 1])
        else:
            keys.append(resolve_alias(node))
    return keys


def _aggregate(
    ast: exp.Select,
    items: list[exp.Expr],
    outputs: list[OutputColumn],
    keys: list[exp.Expr],
    resolve_alias: Callable[[exp.Expr], exp.Expr],
    norm: Callable[[exp.Expr], str],
    src: str,
    aggregates: frozenset[str],
    tail: str,
) -> tuple[str, str]:
    bare = [i.this if isinstance(i, exp.Alias) else i for i in items]
    if any(isinstance(b, exp.Star) for b in bare):
        raise NotDistributable("* in an aggregate query")
    rewrite = _Rewriter(keys, norm, aggregates)
    select = [to_sql(rewrite(b)) for b in bare]
    having = ast.args.get("having")
    having_sql = ""
    if having is not None:
        resolved = having.this.transform(resolve_alias)
        having_sql = f" HAVING {to_sql(rewrite(resolved))}"
    order_sql = _final_order(ast.args.get("order"), rewrite, items)
    if not keys and not rewrite.partials.items:
        raise NotDistributable("no keys and no aggregates")
    parts = [f"{to_sql(k)} AS _g{i}" for i, k in enumerate(keys)]
    parts += [f"{text} AS {name}" for text, name in rewrite.partials.items.items()]
    partial = f"SELECT {', '.join(parts)} {src}"
    if keys:
        partial += " GROUP BY " + ", ".join(to_sql(k) for k in keys)
    group_sql = " GROUP BY " + ", ".join(f"_g{i}" for i in range(len(keys))) if keys else ""
    distinct = "DISTINCT " if ast.args.get("distinct") else ""
    final = (
        f"SELECT {distinct}{_casts(select, outputs)} FROM {PARTS}{group_sql}{having_sql}"
        f"{order_sql}{tail}"
    )
    return partial, final


def _final_order(order: exp.Order | None, rewrite: _Rewriter, items: list[exp.Expr]) -> str:
    if order is None:
        return ""
    names = {i.alias.lower() for i in items if isinstance(i, exp.Alias)}
    out = []
    for ordered in order.expressions:
        key = ordered.this
        is_ordinal = isinstance(key, exp.Literal) and not key.is_string
        is_alias = isinstance(key, exp.Column) and not key.table and key.name.lower() in names
        new = ordered.copy()
        if not (is_ordinal or is_alias):
            new.set("this", rewrite(key))
        out.append(to_sql(new))
    return " ORDER BY " + ", ".join(out)


def _rows(
    ast: exp.Select,
    items: list[exp.Expr],
    outputs: list[OutputColumn],
    resolve_alias: Callable[[exp.Expr], exp.Expr],
    source_cols: set[str],
    src: str,
    limit: int | None,
    offset: int,
) -> tuple[str, str, Stack | None]:
    star = any(
        isinstance(i, exp.Star) or (isinstance(i, exp.Column) and isinstance(i.this, exp.Star))
        for i in items
    )
    order = ast.args.get("order")
    keys: list[exp.Ordered] = []
    for ordered in order.expressions if order is not None else []:
        key = ordered.this
        if isinstance(key, exp.Literal) and not key.is_string:
            if star:
                raise NotDistributable("ORDER BY position with *")
            item = items[int(key.this) - 1]
            key = item.this if isinstance(item, exp.Alias) else item
        else:
            key = resolve_alias(key)
        if any(c.name.lower() not in source_cols for c in key.find_all(exp.Column)):
            raise NotDistributable("ORDER BY refers to an alias inside an expression")
        new = ordered.copy()
        new.set("this", key)
        keys.append(new)
    hidden = [f"{to_sql(k.this)} AS _o{j}" for j, k in enumerate(keys)]
    cut = limit + offset if limit is not None else None
    if ast.args.get("distinct"):
        # DISTINCT may only order by selected columns; the parts are deduplicated as is.
        if keys:
            raise NotDistributable("DISTINCT with ORDER BY")
        partial = f"SELECT DISTINCT {', '.join(to_sql(i) for i in items)} {src}"
        final = f"SELECT DISTINCT {_casts_positional(outputs)} FROM {PARTS}{_tail(limit, offset)}"
        return partial, final, None
    partial = f"SELECT {', '.join([to_sql(i) for i in items] + hidden)} {src}"
    order_by = ", ".join(to_sql(_renamed(k, f"_o{j}")) for j, k in enumerate(keys))
    if keys:
        partial += f" ORDER BY {order_by}"
    if cut is not None:
        partial += f" LIMIT {cut}"
    final = f"SELECT {_casts_positional(outputs)} FROM {PARTS}"
    if keys:
        final += f" ORDER BY {order_by}"
    return partial, final + _tail(limit, offset), None if keys else Stack(limit, offset)


def _renamed(ordered: exp.Ordered, name: str) -> exp.Ordered:
    new = ordered.copy()
    new.set("this", exp.column(name))
    return new


def _casts_positional(outputs: list[OutputColumn]) -> str:
    return ", ".join(
        f"CAST(#{i + 1} AS {o.duckdb_type}) AS {quote_name(o.name)}" for i, o in enumerate(outputs)
    )
