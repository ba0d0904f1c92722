"""Where a query reads the logical tables, and which of its filters can move to the scans.

Each reference to a logical table (an *occurrence*) gets the WHERE conjuncts of its own
SELECT that filter that table alone and may safely be applied before the rest of the query:
filtering a scan early never changes the answer when the rest of the query still applies the
same predicate afterwards, as long as the table is not on the null-supplying or as-of
matched side of a join (filtering that side changes which rows match).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from gateway.catalog import Catalog
from gateway.predicates import ROUTING, Restriction, conjuncts, restriction_of_all
from queries.macros import TABLE_MACROS

# Functions whose value changes between evaluations: evaluating them twice (in the scan and
# again in the query) would filter twice.
VOLATILE = frozenset({"random", "rand", "uuid", "gen_random_uuid", "setseed", "nextval", "currval"})


def from_clause(select: exp.Expr) -> exp.From | None:
    node = select.args.get("from_") or select.args.get("from")
    return node if isinstance(node, exp.From) else None


def base_table(node: exp.Expr, catalog: Catalog) -> str | None:
    """The logical table a FROM/JOIN item reads, or None (CTE, subquery, table function)."""
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        name = node.name.lower()
        if name in catalog.schemas and not node.args.get("db"):
            return name
    return None


def is_aggregate(node: exp.Expr, aggregates: frozenset[str]) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower() in aggregates
    return False


def has_unsafe(node: exp.Expr, aggregates: frozenset[str]) -> bool:
    """Subqueries, aggregates, windows, volatile calls: not movable to a scan."""
    for sub in node.walk():
        if isinstance(sub, exp.Select | exp.Subquery | exp.Window | exp.Placeholder):
            return True
        if is_aggregate(sub, aggregates):
            return True
        if isinstance(sub, exp.Rand) or (
            isinstance(sub, exp.Func) and str(sub.sql_name()).lower() in VOLATILE
        ):
            return True
        if isinstance(sub, exp.Anonymous) and str(sub.name).lower() in VOLATILE:
            return True
    return False


def strip_qualifiers(node: exp.Expr) -> exp.Expr:
    out = node.copy()
    for col in out.find_all(exp.Column):
        col.set("table", None)
        col.set("db", None)
        col.set("catalog", None)
    return out


@dataclass
class Occurrence:
    table: str
    alias: str
    pushed: list[exp.Expr] = field(default_factory=list)  # unqualified conjuncts

    def restriction(self) -> Restriction:
        return restriction_of_all(
            self.pushed, lambda c: c.name.lower() if c.name.lower() in ROUTING else None
        )


def _inner(join: exp.Join) -> bool:
    kind = str(join.args.get("kind") or "").upper()
    return (
        not join.args.get("side")
        and not join.args.get("method")
        and kind in ("", "INNER", "CROSS")
        and isinstance(join.this, exp.Table)
    )


def _preserves_left(join: exp.Join) -> bool:
    """Joins whose left input rows are each kept or dropped independently of each other."""
    side = str(join.args.get("side") or "").upper()
    kind = str(join.args.get("kind") or "").upper()
    method = str(join.args.get("method") or "").upper()
    if method not in ("", "ASOF") or not isinstance(join.this, exp.Table):
        return False
    return side in ("", "LEFT") and kind in ("", "INNER", "OUTER", "SEMI", "ANTI")


def _scope_columns(scope: Scope, catalog: Catalog) -> dict[str, set[str] | None]:
    """alias -> column names of each source of a scope (None when not a logical table)."""
    out: dict[str, set[str] | None] = {}
    for alias, source in scope.sources.items():
        table = base_table(source, catalog) if isinstance(source, exp.Table) else None
        out[alias.lower()] = set(catalog.column_names(table)) if table else None
    return out


def _owned(conjunct: exp.Expr, alias: str, columns: dict[str, set[str] | None]) -> bool:
    mine = columns[alias] or set()
    for col in conjunct.find_all(exp.Column):
        name = col.name.lower()
        if col.table:
            if col.table.lower() != alias or name not in mine:
                return False
        elif name not in mine or any(
            other != alias and (cols is None or name in cols) for other, cols in columns.items()
        ):
            return False
    return True


def occurrences(ast: exp.Expr, catalog: Catalog) -> list[Occurrence]:
    found: list[Occurrence] = []
    for scope in traverse_scope(ast):
        select = scope.expression
        columns = _scope_columns(scope, catalog)
        where = select.args.get("where") if isinstance(select, exp.Select) else None
        joins = list(select.args.get("joins") or []) if isinstance(select, exp.Select) else []
        first = from_clause(select)
        first_alias = first.this.alias_or_name.lower() if first is not None else None
        for alias, source in scope.sources.items():
            if not isinstance(source, exp.Table):
                continue
            table = base_table(source, catalog)
            if table is None:
                continue
            occ = Occurrence(table, alias.lower())
            eligible = all(_inner(j) for j in joins) or (
                occ.alias == first_alias and all(_preserves_left(j) for j in joins)
            )
            if where is not None and eligible:
                occ.pushed = [
                    strip_qualifiers(c)
                    for c in conjuncts(where)
                    if not has_unsafe(c, catalog.aggregates) and _owned(c, occ.alias, columns)
                ]
            found.append(occ)
    return found


def macro_tables(ast: exp.Expr, catalog: Catalog) -> list[str]:
    """Logical tables read by table macros (``FROM ohlcv('trade', …)``), sorted.

    A table macro names its tables in string arguments (DuckDB's ``query_table``), which no
    scope analysis sees; a name that is a CTE of the query is the CTE's, whose own tables are
    occurrences already. The macro reads every row and column of each table it names.
    """
    ctes = {c.alias_or_name.lower() for c in ast.find_all(exp.CTE)}
    found: set[str] = set()
    for source in ast.find_all(exp.Table):
        call = source.this
        if not isinstance(call, exp.Anonymous) or str(call.name).lower() not in TABLE_MACROS:
            continue
        for arg in call.expressions:
            if isinstance(arg, exp.Literal) and arg.is_string:
                name = str(arg.this).lower()
                if name in catalog.schemas and name not in ctes:
                    found.add(name)
    return sorted(found)


def needed_columns(ast: exp.Expr, catalog: Catalog, table: str, aliases: set[str]) -> list[str]:
    """Columns of ``table`` the query can touch; all of them when it uses ``*`` or rows."""
    names = {c.name.lower() for c in ast.find_all(exp.Column)}
    names |= {
        i.name.lower()
        for j in ast.find_all(exp.Join)
        for i in j.args.get("using") or []
        if isinstance(i, exp.Identifier)
    }
    everything = (
        any(True for _ in ast.find_all(exp.Star))
        or bool(names & aliases)
        or any(
            isinstance(f, exp.Anonymous) and str(f.name).lower() == "columns"
            for f in ast.find_all(exp.Anonymous)
        )
    )
    cols = catalog.column_names(table)
    if everything:
        return cols
    return [c for c in cols if c in names or c == "date"]
