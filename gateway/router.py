"""``Router``: answer one SQL query over every tier and shard, as if one DuckDB held it all.

``run_sql`` plans the query (cached per text while the backends' placement is unchanged),
runs the plan and, when an RDB has handed a date over meanwhile, refreshes and runs it
again. Every query comes here: the HTTP API's SQL, and q from HTTP and the kdb+ port once
``gateway.qpath`` has translated it. It owns the topology (which backends exist and what
they hold), the catalog (the logical tables' schemas, rebuilt when a backend reports a
change) and the executor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.backends import Topology
from gateway.catalog import Catalog
from gateway.deadline import Deadline
from gateway.errors import QueryError
from gateway.handover import StaleTopology
from gateway.merge import Executor, GatewayResult
from gateway.planner import Plan, plan_query
from gateway.query_text import Language, check_text, parse_within
from tickdb.schema import TableSchema, default_schemas


@dataclass(frozen=True, kw_only=True)
class Limits:
    timeout_s: float = 30.0
    max_rows: int = 1_000_000
    # Rows one backend may send for a merge (partial aggregates, pulled rows); beyond it
    # the answer would be wrong, so the query fails and says so.
    scan_rows: int = 5_000_000
    # Requests outstanding per backend; more wait at the gateway (``merge.BackendSlots``).
    in_flight: int = 4
    # A query's text, and one client's queries at once (``gateway.query_text``,
    # ``gateway.client_limits``; docs/security.md).
    max_query_chars: int = 65_536
    max_nesting: int = 32
    client_queries: int = 4


PLAN_CACHE = 512  # plans kept, most recently used first


class Router:
    def __init__(
        self,
        topology: Topology,
        *,
        limits: Limits | None = None,
        tables: Mapping[str, TableSchema] | None = None,
        merge_threads: int = 2,
    ) -> None:
        self.topology = topology
        self.limits = limits or Limits()
        self._tables = dict(tables or default_schemas())
        self.executor = Executor(topology, threads=merge_threads, in_flight=self.limits.in_flight)
        self._catalog: Catalog | None = None
        self._catalog_version = -1
        self._lock = threading.Lock()
        self._plans: OrderedDict[tuple[str, int], Plan] = OrderedDict()

    @property
    def catalog(self) -> Catalog:
        return self._versioned_catalog()[0]

    def _versioned_catalog(self) -> tuple[Catalog, int]:
        with self._lock:
            if self._catalog is None or self._catalog_version != self.topology.version:
                self._catalog_version = self.topology.version
                self._catalog = Catalog.from_schemas(self._tables, self.topology.table_columns())
            return self._catalog, self._catalog_version

    def plan(self, sql: str, deadline: Deadline | None = None) -> Plan:
        return self._plan(sql, deadline or self.admit(sql, "sql"))[0]

    def admit(self, text: str, language: Language, timeout_s: float | None = None) -> Deadline:
        """Check a query's text against the bounds (``gateway.query_text``) and start the
        clock of its time limit (the requested one, capped by the gateway's)."""
        timeout = min(timeout_s or self.limits.timeout_s, self.limits.timeout_s)
        if timeout <= 0:
            raise QueryError("bad_query", "timeout_s must be positive")
        check_text(
            text,
            language,
            max_chars=self.limits.max_query_chars,
            max_nesting=self.limits.max_nesting,
        )
        return Deadline.after(timeout)

    def _plan(self, sql: str, deadline: Deadline) -> tuple[Plan, Catalog]:
        """The plan for ``sql``, cached while the backends' placement is unchanged.

        Planning (sqlglot parse, DuckDB bind, routing) costs 1-3 ms, a large share of a
        small query; dashboards repeat the same text. A plan depends only on the text, the
        catalog and what each backend holds, all covered by ``topology.version``.
        """
        catalog, version = self._versioned_catalog()
        key = (sql, version)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan, catalog
        plan = parse_within(deadline, "planning", lambda: plan_query(sql, catalog, self.topology))
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > PLAN_CACHE:
                self._plans.popitem(last=False)
        return plan, catalog

    def run_sql(
        self,
        sql: str,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
        allow_partial: bool = False,
        deadline: Deadline | None = None,
    ) -> GatewayResult:
        """Answer ``sql`` over every tier and shard as if one DuckDB held all the data.

        ``deadline``: the clock of a query the caller admitted itself (q, before its
        translation); else ``sql`` is admitted here and its clock starts now.

        Raises QueryError: bad_query / forbidden (the query), timeout / unavailable (a
        backend, named), internal.
        """
        rows = min(max_rows or self.limits.max_rows, self.limits.max_rows)
        if rows < 0:
            raise QueryError("bad_query", "max_rows must be >= 0")
        if deadline is None:
            deadline = self.admit(sql, "sql", timeout_s)
        while True:
            plan, catalog = self._plan(sql, deadline)
            deadline.check("planning")
            try:
                return self.executor.execute(
                    plan,
                    catalog,
                    deadline=deadline.at,
                    max_rows=rows,
                    scan_rows=self.limits.scan_rows,
                    allow_partial=allow_partial,
                )
            except StaleTopology as why:
                # An RDB rolled or handed a date over since the last info(): learn where
                # every date is now and ask again (around end of day only).
                self.topology.stale_retries += 1
                if deadline.expired():
                    raise QueryError(
                        "timeout", f"backends kept changing which dates they hold: {why}"
                    ) from None
                self.topology.refresh()

    def close(self) -> None:
        self.topology.stop()
        self.executor.close()
