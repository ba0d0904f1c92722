"""Run a ``Plan``: fan the fetches out to the backends in parallel, then merge in DuckDB.

Everything is bounded by one deadline. A backend that has not answered by then, or that
fails, is named in the error; with ``allow_partial`` the merge runs over the backends that
did answer and the result says which ones are missing. The merge DuckDB is locked down
like a backend (no files, no network) because in pull mode it runs the user's whole query.

At most ``in_flight`` requests are outstanding per backend process (``gateway.slots``);
the rest wait here, under the same deadline. Each part goes to one replica of its backend,
and to another one if that replica fails (``gateway.failover``).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from gateway.arrow_merge import Unsupported, compile_merge
from gateway.backends import BackendState, Replica, Topology
from gateway.catalog import Catalog
from gateway.decompose import PARTS
from gateway.errors import QueryError
from gateway.failover import PartRunner
from gateway.handover import (
    StaleTopology,
    answered_dates,
    assumed_dates,
    check_answer,
    hdb_exclusion,
    hdb_sql,
    query_dates_in_reply,
    rdb_sql,
    split_dates,
)
from gateway.local_run import run_bounded
from gateway.planner import Fetch, Plan, PlanMode
from gateway.slots import BackendSlots
from queries.connection import prepare_database
from queries.service_protocol import SymScope
from queries.service_watchdog import Watchdog

# Errors that describe the query, not the backend: the same query fails everywhere.
QUERY_FAULTS = ("bad_query", "forbidden")
SCHEMA_CACHE = 512  # output schemas of stacked plans, by merge SQL
# Rows up to which a merge runs in Arrow (``arrow_merge``); beyond, DuckDB's parallel hash
# aggregate and sort win over its fixed cost.
ARROW_MERGE_ROWS = 200_000


@dataclass(frozen=True)
class GatewayResult:
    table: pa.Table
    truncated: bool
    elapsed_ms: float
    plan: PlanMode
    backends: tuple[str, ...]
    # Backends that failed when a partial result was allowed: name -> reason.
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.missing)


@dataclass
class _Parts:
    tables: dict[int, list[pa.Table]]
    truncated: bool
    missing: dict[str, str]


class Executor:
    def __init__(
        self,
        topology: Topology,
        *,
        threads: int = 2,
        fanout_workers: int = 64,
        memory_limit: str | None = None,
        in_flight: int = 4,
    ) -> None:
        self.topology = topology
        self.slots = BackendSlots(in_flight)
        self.parts = PartRunner(topology.refresh_replica)
        self._pool = ThreadPoolExecutor(fanout_workers, thread_name_prefix="gateway-fetch")
        config: dict[str, Any] = {"threads": threads}
        if memory_limit:
            config["memory_limit"] = memory_limit
        self._db = duckdb.connect(config=config)
        prepare_database(self._db)
        self._lock = threading.Lock()
        # One thread interrupts merges past their deadline (a Timer per merge cost a
        # thread start on every merged query).
        self._watchdog = Watchdog()
        self._schemas: dict[str, pa.Schema] = {}
        # Counters, plain attributes for tests: merges done by stacking Arrow tables, by
        # an Arrow aggregate and by a DuckDB pass.
        self.stacked = 0
        self.arrow_merged = 0
        self.merged = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._watchdog.stop()

    def execute(
        self,
        plan: Plan,
        catalog: Catalog,
        *,
        deadline: float,
        max_rows: int,
        scan_rows: int,
        allow_partial: bool,
    ) -> GatewayResult:
        started = time.monotonic()
        # Backends get the time limit less a share kept for the merge, so a dead backend
        # that eats the whole limit still leaves time to merge the others (allow_partial).
        reserve = 0.0 if plan.final_sql is None else min(0.2 * (deadline - started), 0.5)
        parts = self._fetch(plan, deadline - reserve, max_rows, scan_rows, allow_partial)
        if plan.final_sql is None:
            fetch = plan.fetches[0]
            got = parts.tables.get(0) or []
            if got:
                table, truncated = got[0], parts.truncated
            else:  # no backend may hold its rows: the gateway answers, within the limits
                table, truncated = run_bounded(
                    catalog.cursor(),
                    fetch.sql,
                    deadline=deadline,
                    max_rows=max_rows,
                    watchdog=self._watchdog,
                )
            table = _in_order(table, plan)
        else:
            if (stacked := self._stacked(plan, parts, catalog)) is not None:
                table, truncated = stacked, False
                self.stacked += 1
            elif (merged := self._arrow(plan, parts, catalog)) is not None:
                table, truncated = merged, False
                self.arrow_merged += 1
            else:
                table, truncated = self._merge(plan, parts, catalog, deadline, max_rows)
                self.merged += 1
            truncated = truncated or parts.truncated
        if table.num_rows > max_rows:
            table, truncated = table.slice(0, max_rows), True
        return GatewayResult(
            table,
            truncated,
            (time.monotonic() - started) * 1000,
            plan.mode,
            tuple(plan.backends()),
            parts.missing,
        )

    # -- fan-out ---------------------------------------------------------------------------

    def _fetch(
        self, plan: Plan, deadline: float, max_rows: int, scan_rows: int, allow_partial: bool
    ) -> _Parts:
        jobs: dict[Future[Any], tuple[int, str]] = {}
        failures: dict[str, QueryError] = {}
        # One replica per backend for this attempt; what the chosen RDB replicas hold is the
        # picture HDB exclusions are built from and every RDB answer is checked against
        # (``gateway.handover``). RDBs the plan does not ask count with their merged info.
        chosen: dict[str, Replica] = {}
        for name in plan.backends():
            picked = self.parts.first(self.topology.by_name[name])
            if isinstance(picked, QueryError):
                failures[name] = picked
            else:
                chosen[name] = picked
        assumed = {
            s.name: (s.shard, assumed_dates(chosen.get(s.name, s)))
            for s in self.topology.states
            if s.role == "rdb"
        }
        wrapped: set[str] = set()
        abandoned = threading.Event()
        for index, fetch in enumerate(plan.fetches):
            limit = scan_rows if fetch.strict else max_rows
            for name in fetch.backends:
                if name not in chosen:
                    continue
                state, replica = self.topology.by_name[name], chosen[name]
                sql, rows = fetch.sql, limit
                if state.role == "rdb" and not query_dates_in_reply(replica):
                    sql, rows = rdb_sql(sql), limit + 1  # + the dates row
                    wrapped.add(name)
                elif state.role == "hdb" and fetch.tables:
                    sql = hdb_sql(sql, fetch.tables, hdb_exclusion(state, assumed, fetch.dates))
                job = self._pool.submit(
                    self._part,
                    state,
                    replica,
                    sql,
                    deadline=deadline,
                    max_rows=rows,
                    abandoned=abandoned,
                    # Only an RDB uses the promise: an HDB's files are sorted by sym already.
                    syms=fetch.syms if state.role == "rdb" else None,
                )
                jobs[job] = (index, name)
        names = [o.name for o in plan.outputs] if plan.final_sql is None else None
        pending = set(jobs)
        tables: dict[int, list[pa.Table]] = {}
        truncated = False
        while pending:
            done, pending = wait(
                pending, timeout=max(deadline - time.monotonic(), 0), return_when=FIRST_EXCEPTION
            )
            if not done:
                break
            for fut in done:
                index, name = jobs[fut]
                fetch = plan.fetches[index]
                try:
                    result = fut.result()
                except QueryError as exc:
                    if exc.kind in QUERY_FAULTS:
                        _cancel(pending, abandoned)
                        raise QueryError(exc.kind, str(exc)) from None
                    failures[name] = exc
                    continue
                except StaleTopology:
                    _cancel(pending, abandoned)
                    raise
                except Exception as exc:
                    failures[name] = QueryError("unavailable", f"{type(exc).__name__}: {exc}")
                    continue
                table = result.table
                if name in assumed:
                    dates = answered_dates(result)
                    if name in wrapped:
                        try:
                            table, dates = split_dates(table, names)
                        except ValueError as exc:
                            _cancel(pending, abandoned)
                            raise QueryError("internal", f"{name}: {exc}") from None
                    if dates is None:  # unchecked, a rolled date could go missing or double
                        _cancel(pending, abandoned)
                        raise QueryError(
                            "internal", f"{name}: the reply does not say which dates it read"
                        )
                    try:
                        check_answer(name, assumed[name][1], dates, fetch.dates)
                    except Exception:
                        _cancel(pending, abandoned)
                        raise
                if result.truncated and fetch.strict:
                    _cancel(pending, abandoned)
                    raise QueryError("bad_query", _too_many(name, scan_rows))
                truncated = truncated or bool(result.truncated)
                tables.setdefault(index, []).append(_conform(table, fetch))
        for fut in pending:
            _, name = jobs[fut]
            failures[name] = QueryError("timeout", "no answer within the query time limit")
        _cancel(pending, abandoned)
        asked = len(plan.backends())
        if failures and (not allow_partial or len(failures) == asked):
            raise _failed(failures, asked)
        return _Parts(tables, truncated, {n: f"{e.kind}: {e}" for n, e in failures.items()})

    def _part(
        self,
        state: BackendState,
        replica: Replica,
        sql: str,
        *,
        deadline: float,
        max_rows: int,
        abandoned: threading.Event,
        syms: SymScope | None,
    ) -> Any:
        """One part on ``replica``, or on another replica of ``state`` if it fails."""
        dates, in_reply = assumed_dates(replica), query_dates_in_reply(replica)

        def send(target: Replica) -> Any:
            return self.slots.query(
                target.name,
                target.backend,
                sql,
                deadline=deadline,
                max_rows=max_rows,
                abandoned=abandoned,
                syms=syms,
            )

        def compatible(other: Replica) -> bool:
            # The SQL and the HDB parts were built for ``replica``'s dates.
            return state.role != "rdb" or (
                assumed_dates(other) == dates and query_dates_in_reply(other) == in_reply
            )

        return self.parts.run(state, replica, send, compatible=compatible, abandoned=abandoned)

    # -- merge -----------------------------------------------------------------------------

    def _stacked(self, plan: Plan, parts: _Parts, catalog: Catalog) -> pa.Table | None:
        """Rows that need no merge pass: the parts concatenated, then OFFSET/LIMIT.

        Only when every part already has the output's Arrow types (the merge SQL would only
        rename): a part of another type takes DuckDB's CAST as usual. None: merge instead.
        """
        if plan.stack is None:
            return None
        schema = self._output_schema(plan, catalog)
        types = [f.type for f in schema]
        tables = []
        for table in parts.tables.get(0) or []:
            if [f.type for f in table.schema] != types:
                return None
            tables.append(pa.Table.from_arrays(table.columns, schema=schema))
        stacked = pa.concat_tables(tables) if tables else schema.empty_table()
        offset = min(plan.stack.offset, stacked.num_rows)
        return stacked.slice(offset, plan.stack.limit)

    def _arrow(self, plan: Plan, parts: _Parts, catalog: Catalog) -> pa.Table | None:
        """A merge finished in Arrow, or None: merge in DuckDB instead."""
        got = parts.tables.get(0) or []
        if plan.mode not in ("aggregate", "rows", "groups") or not got or plan.final_sql is None:
            return None
        if sum(t.num_rows for t in got) > ARROW_MERGE_ROWS:
            return None
        stacked = _one_table(got)
        if stacked is None:
            return None
        program = compile_merge(plan.final_sql, rows=plan.mode != "aggregate")
        if program is None:
            return None
        try:
            return program.run(stacked, self._output_schema(plan, catalog))
        except (Unsupported, pa.ArrowException, duckdb.Error):
            return None  # DuckDB's merge answers (or reports the error) as it always did

    def _output_schema(self, plan: Plan, catalog: Catalog) -> pa.Schema:
        """The Arrow schema the merge SQL returns (its casts fix it), cached per SQL text."""
        assert plan.final_sql is not None
        schema = self._schemas.get(plan.final_sql)
        if schema is None:
            empty = _Parts({0: [catalog.run_empty(plan.fetches[0].sql)]}, False, {})
            with self._lock:
                cur = self._db.cursor()
            try:
                schema = cur.sql(self._bind(cur, plan, empty, catalog)).to_arrow_table().schema
            finally:
                cur.close()
            with self._lock:
                if len(self._schemas) >= SCHEMA_CACHE:
                    self._schemas.clear()
                self._schemas[plan.final_sql] = schema
        return schema

    def _merge(
        self, plan: Plan, parts: _Parts, catalog: Catalog, deadline: float, max_rows: int
    ) -> tuple[pa.Table, bool]:
        with self._lock:
            cur = self._db.cursor()
        guard = self._watchdog.watch(cur, deadline)
        try:
            sql = self._bind(cur, plan, parts, catalog)
            reader = cur.sql(sql).to_arrow_reader(max(2048, min(max_rows + 1, 1 << 20)))
            assert reader is not None
            batches, rows = [], 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > max_rows:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
            return table, rows > max_rows
        except duckdb.InterruptException:
            raise QueryError(
                "timeout", "the merge did not finish within the query time limit"
            ) from None
        except duckdb.Error as exc:
            if guard.fired:
                raise QueryError(
                    "timeout", "the merge did not finish within the query time limit"
                ) from None
            raise QueryError("bad_query", str(exc)) from None
        finally:
            self._watchdog.finish(guard)
            cur.close()

    def _bind(
        self, cur: duckdb.DuckDBPyConnection, plan: Plan, parts: _Parts, catalog: Catalog
    ) -> str:
        assert plan.final_sql is not None
        if plan.mode == "pull":
            for index, fetch in enumerate(plan.fetches):
                got = parts.tables.get(index) or []
                assert fetch.schema is not None
                table = pa.concat_tables(got) if got else fetch.schema.empty_table()
                cur.register(fetch.relation, table)
            return plan.final_sql
        fetch = plan.fetches[0]
        got = parts.tables.get(0) or [catalog.run_empty(fetch.sql)]
        stacked = _one_table(got)
        if stacked is not None:
            # One registration and no UNION pass: a third of a small merge's DuckDB time.
            cur.register(PARTS, stacked)
            return plan.final_sql
        # Parts whose types differ (an empty part typed by the catalog, say) are unified
        # by DuckDB's UNION ALL, as they would be in one database.
        for i, table in enumerate(got):
            cur.register(f"_p{i}", table)
        union = " UNION ALL ".join(f"SELECT * FROM _p{i}" for i in range(len(got)))
        return f"WITH {PARTS} AS ({union}) {plan.final_sql}"


def _one_table(tables: list[pa.Table]) -> pa.Table | None:
    """Parts of one schema (the usual case) as one Arrow table, without a copy; None when
    their types differ (an empty part typed by the catalog, say)."""
    if any(not t.schema.equals(tables[0].schema) for t in tables[1:]):
        return None
    return pa.concat_tables(tables)


def _in_order(table: pa.Table, plan: Plan) -> pa.Table:
    """A backend's own column order for ``*`` may differ from the logical table's."""
    names = [o.name for o in plan.outputs]
    if (
        table.column_names != names
        and sorted(table.column_names) == sorted(names)
        and len(set(names)) == len(names)
    ):
        return table.select(names)
    return table


def _conform(table: pa.Table, fetch: Fetch) -> pa.Table:
    if fetch.schema is None or table.schema.equals(fetch.schema):
        return table
    try:
        return table.rename_columns(fetch.schema.names).cast(fetch.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise QueryError(
            "internal",
            f"backend returned {table.schema} for {fetch.relation}, expected {fetch.schema}: {exc}",
        ) from None


def _cancel(futures: set[Future[Any]], abandoned: threading.Event) -> None:
    abandoned.set()  # requests still waiting for a backend slot are never sent
    for fut in futures:
        fut.cancel()


def _too_many(name: str, limit: int) -> str:
    return (
        f"backend {name} has more than {limit} intermediate rows for this query; narrow "
        "it with date or sym filters, or aggregate before the gateway merges"
    )


def _failed(failures: dict[str, QueryError], total: int) -> QueryError:
    kind = "timeout" if any(e.kind == "timeout" for e in failures.values()) else "unavailable"
    detail = "; ".join(f"{name}: {exc}" for name, exc in sorted(failures.items()))
    return QueryError(
        kind,
        f"{len(failures)} of {total} backends failed ({detail}); retry, "
        "or set allow_partial for the other backends' rows flagged as partial",
    )
