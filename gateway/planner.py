"""Turn one user SQL statement into a ``Plan``: what to ask which backend, and how to merge.

Order of preference, each correct for what it accepts (``Plan.mode``):

1. **single** — the rows the query can read all live in one backend (or none): send it
   the whole query unchanged.
2. **groups** — a GROUP BY over one table or a backend-local join whose keys include the
   routing columns that separate the chosen backends (``sym`` across shards, ``date``
   across RDB and HDB): no group spans two backends, so each runs the whole grouped query
   (HAVING too) and the gateway stacks, sorts and cuts. Aggregates without partials (twap,
   median …) are distributed only this way.
3. **aggregate** / **rows** — any other SELECT over one table or a backend-local join
   (joined on ``sym`` when several shards hold rows and on ``date`` when both tiers do, so
   matching rows are always in the same backend): every backend runs the same partial
   query, the gateway merges (see ``decompose``).
4. **pull** — anything else (window functions, subqueries, CTEs, non-local joins, DISTINCT
   aggregates …): fetch each table's rows, filtered and projected as far as is safe, and
   run the whole query in the gateway's DuckDB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from gateway.analysis import Occurrence, macro_tables, needed_columns, occurrences
from gateway.backends import BackendState, Topology
from gateway.catalog import Catalog, OutputColumn
from gateway.decompose import PARTS, NotDistributable, Stack, distribute, quote_name
from gateway.errors import QueryError, check_read_only
from gateway.predicates import DateSet, Restriction

# How a plan runs, in the order the planner prefers them (the module docstring): the
# ``mode`` of ``/query/plan``, the ``X-Tickdb-Plan`` header and the metrics' ``plan`` label.
PlanMode = Literal["single", "groups", "aggregate", "rows", "pull"]


@dataclass(frozen=True)
class Fetch:
    """One SQL statement for a set of backends; its parts are stacked into ``relation``."""

    relation: str
    sql: str
    backends: tuple[str, ...]
    # Pulled tables are cast to their logical schema, so parts from any tier stack cleanly.
    schema: pa.Schema | None = None
    # A truncated part makes a merged answer wrong (strict) or merely incomplete.
    strict: bool = True
    # Logical tables the SQL reads, shadowed for HDBs to drop the RDBs' dates (``handover``);
    # empty for the user's own SQL (single mode), which never needs it.
    tables: tuple[str, ...] = ()
    # Dates the rows can have (None: any): the end-of-day checks only look at these.
    dates: DateSet | None = None
    # Per table, the only syms the rows the SQL reads from it can have, proven from the
    # WHERE clauses as for routing; RDBs scan only those syms' rows (``rdb.symindex``).
    syms: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    mode: PlanMode
    fetches: tuple[Fetch, ...]
    final_sql: str | None  # None: the single fetch's one part is the answer
    outputs: tuple[OutputColumn, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Set when the merge only stacks the parts (``decompose.Stack``).
    stack: Stack | None = None

    def backends(self) -> list[str]:
        return sorted({b for f in self.fetches for b in f.backends})

    def explain(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "backends": self.backends(),
            "fetches": [
                {
                    "relation": f.relation,
                    "sql": f.sql,
                    "backends": list(f.backends),
                    "syms": {t: sorted(v) for t, v in f.syms.items()},
                }
                for f in self.fetches
            ],
            "final_sql": self.final_sql,
            "stacked": self.stack is not None,
            "notes": list(self.notes),
        }


def normalise(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def parse(sql: str, catalog: Catalog) -> tuple[exp.Expr, list[OutputColumn]]:
    """Safety check, DuckDB bind (its own error message), then the sqlglot tree."""
    check_read_only(sql)
    if not sql:
        raise QueryError("bad_query", "empty query")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except SqlglotError as exc:
        statements = []
        parse_error: Exception | None = exc
    else:
        parse_error = None
        if len(statements) > 1:
            raise QueryError("bad_query", "send one statement per query")
    try:
        outputs = catalog.describe(sql)
    except duckdb.Error as exc:
        raise QueryError("bad_query", str(exc)) from None
    if parse_error is not None or not statements:
        raise QueryError("bad_query", f"the gateway cannot route this query: {parse_error}")
    return statements[0], outputs


def _names(states: list[BackendState]) -> tuple[str, ...]:
    return tuple(s.name for s in states)


def plan_query(sql: str, catalog: Catalog, topology: Topology) -> Plan:
    sql = normalise(sql)
    ast, outputs = parse(sql, catalog)
    found = occurrences(ast, catalog)
    # A table macro reads whole tables, unfiltered: routed as such, and never distributed
    # (its FROM is not a logical table), so pulled when more than one backend holds rows.
    whole = macro_tables(ast, catalog)
    found += [Occurrence(table, table) for table in whole]
    routes = {id(o): topology.candidates(o.table, o.restriction()) for o in found}
    every = {s.name for states in routes.values() for s in states}
    if len(every) <= 1:
        dates = _dates_of(found)
        syms = _syms_of(found)
        fetch = Fetch("", sql, tuple(sorted(every)), strict=False, dates=dates, syms=syms)
        return Plan("single", (fetch,), None, tuple(outputs))
    try:
        return _distributed(ast, outputs, catalog, topology, _syms_of(found))
    except NotDistributable as why:
        return _pull(sql, ast, found, routes, catalog, outputs, str(why), set(whole))


def _distributed(
    ast: exp.Expr,
    outputs: list[OutputColumn],
    catalog: Catalog,
    topology: Topology,
    syms: dict[str, frozenset[str]],
) -> Plan:
    try:
        dist = distribute(ast, outputs, catalog)
    except NotDistributable:
        # An aggregate with no partial form (twap, median, …) can still be finished by the
        # backends when every group lives in one of them; checked below like any group_local.
        dist = distribute(ast, outputs, catalog, group_local=True)
        if dist.mode != "groups":
            raise
    states: dict[str, BackendState] = {}
    for table in dist.tables:
        states.update({s.name: s for s in topology.candidates(table, dist.restriction)})
    if dist.join_keys is not None:
        # A join is answered backend by backend only when matching rows share a backend.
        if "sym" not in dist.join_keys and topology.shard_count() > 1:
            raise NotDistributable("join does not match on sym across shards")
        roles = {s.role for s in states.values()}
        if "date" not in dist.join_keys and len(roles) > 1:
            raise NotDistributable("join does not match on date across RDB and HDB")
    if dist.mode in ("aggregate", "groups"):
        # Groups keyed by the routing columns that separate the chosen backends cannot
        # span two backends: let each backend finish its own groups.
        needed = {"sym"} if len({s.shard for s in states.values()}) > 1 else set()
        needed |= {"date"} if len({s.role for s in states.values()}) > 1 else set()
        if needed <= dist.group_columns:
            if dist.mode == "aggregate":
                dist = distribute(ast, outputs, catalog, group_local=True)
        elif dist.mode == "groups":
            raise NotDistributable("an aggregate without partials over groups split by backend")
    fetch = Fetch(
        PARTS,
        dist.partial_sql,
        tuple(sorted(states)),
        strict=dist.mode == "aggregate",
        tables=tuple(dist.tables),
        dates=dist.restriction.dates,
        syms=syms,
    )
    return Plan(dist.mode, (fetch,), dist.final_sql, tuple(outputs), stack=dist.stack)


def _pull(
    sql: str,
    ast: exp.Expr,
    found: list[Occurrence],
    routes: dict[int, list[BackendState]],
    catalog: Catalog,
    outputs: list[OutputColumn],
    why: str,
    whole: set[str],
) -> Plan:
    aliases = {o.alias for o in found} | {o.table for o in found}
    fetches = []
    for table in sorted({o.table for o in found}):
        mine = [o for o in found if o.table == table]
        cols = (
            catalog.column_names(table)
            if table in whole
            else needed_columns(ast, catalog, table, aliases)
        )
        where = _either(mine)
        backends = sorted({s.name for o in mine for s in routes[id(o)]})
        select = ", ".join(quote_name(c) for c in cols)
        text = f"SELECT {select} FROM {quote_name(table)}" + (f" WHERE {where}" if where else "")
        schema = pa.schema([catalog.schemas[table].field(c) for c in cols])
        fetches.append(
            Fetch(
                table,
                text,
                tuple(backends),
                schema=schema,
                tables=(table,),
                dates=_dates_of(mine),
                syms=_syms_of(mine),
            )
        )
    return Plan("pull", tuple(fetches), sql, tuple(outputs), (why,))


def _dates_of(occs: list[Occurrence]) -> DateSet | None:
    """Dates rows of any of these occurrences can have; None when one reads any date."""
    found = [o.restriction().dates for o in occs]
    if not found or any(d is None for d in found):
        return None
    return DateSet(()).union(*(d for d in found if d is not None))


def _syms_of(occs: list[Occurrence]) -> dict[str, frozenset[str]]:
    """Per table, the syms rows of any of its occurrences can have; a table of which one
    occurrence reads any sym is left out (no promise)."""
    out: dict[str, frozenset[str]] = {}
    unbounded: set[str] = set()
    for occ in occs:
        syms = occ.restriction().syms
        if syms is None:
            unbounded.add(occ.table)
        else:
            out[occ.table] = out.get(occ.table, frozenset()) | syms
    return {table: syms for table, syms in out.items() if table not in unbounded}


def _either(occs: list[Occurrence]) -> str | None:
    """OR of each occurrence's pushed filters; None when some occurrence reads everything."""
    terms = []
    for occ in occs:
        if not occ.pushed:
            return None
        terms.append(" AND ".join(f"({c.sql(dialect='duckdb')})" for c in occ.pushed))
    unique = sorted(set(terms))
    return unique[0] if len(unique) == 1 else " OR ".join(f"({t})" for t in unique)


__all__ = ["Fetch", "Plan", "PlanMode", "Restriction", "plan_query"]
