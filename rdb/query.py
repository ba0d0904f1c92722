"""Queries over a snapshot: each query's cursor sees every table as one DuckDB view.

``trade`` on a cursor is ``UNION ALL`` over each date the snapshot holds of, only when there
are any, its intraday Parquet chunks, then its in-memory batches as two Arrow scans
registered on that cursor (the compacted batches, whose symbols are interned, and the plain
ones appended since: ``rdb.symbols``), with a constant ``date`` column added by the view (no
data is copied to add it). ``rdb_dates`` lists the dates of the same snapshot and their
state, so one query can say atomically which dates this RDB answered for; that is what
makes the EOD handover exact (``docs/rdb.md``).

Per-query set-up is kept to a snapshot and at most one Arrow registration per scan. Each
worker thread owns one cursor, made with the macros registered and the views created when
the engine starts (registering the macros costs 10-30 ms per cursor, creating the views
1-4 ms: never on a query's path). Per query, a scan is registered again only if the query
may read its table (``tables_named``) and its batches changed since that cursor's last
query (0.3-0.7 ms, a reference, no copy): under ingest every table changes all the time,
and a query of one table would otherwise pay for all of them. A table the query cannot
read keeps its older registration, unseen. The views are re-created, over every table
freshly registered, only when the snapshot's shape (dates, states, chunk files) changed.

When the request promises which syms a table's rows can have (``QueryRequest.syms``), that
table's scans are registered with only those syms' rows (``rdb.symindex``), and kept so
while the next queries promise the same.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pyarrow as pa

from queries.connection import prepare_database
from queries.macros import TABLE_MACROS
from queries.service_protocol import QueryRequest, SymScope
from queries.service_server import Prepared, lower_thread_priority
from rdb.store import Snapshot, Store, TableView
from rdb.symbols import interned_schema
from rdb.symindex import GroupCache

DATES_VIEW = "rdb_dates"

Shape = tuple[object, ...]


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mem_names(table: str, date: dt.date) -> tuple[str, str]:
    """The Arrow scans of one table and date: its interned batches, then its plain ones."""
    base = f"__rdb_{table}_{date:%Y%m%d}"
    return f"{base}_i", base


def view_sql(snapshot: Snapshot, table: str, columns: list[str]) -> str:
    cols = ", ".join(_ident(c) for c in columns)
    parts = []
    for date in sorted(snapshot.dates):
        view = snapshot.dates[date][table]
        lit = f"DATE '{date.isoformat()}'"
        if view.chunks:
            files = ", ".join("'" + str(c.path).replace("'", "''") + "'" for c in view.chunks)
            parts.append(f"SELECT {cols}, {lit} AS date FROM read_parquet([{files}])")
        parts += [f"SELECT {cols}, {lit} AS date FROM {name}" for name in _mem_names(table, date)]
    return " UNION ALL ".join(parts)


def snapshot_shape(snapshot: Snapshot) -> Shape:
    """What the view SQL depends on: dates, their states and each table's chunk files."""
    return tuple(
        (
            date,
            snapshot.states[date],
            tuple((t, tuple(c.path for c in v.chunks)) for t, v in sorted(tables.items())),
        )
        for date, tables in sorted(snapshot.dates.items())
    )


def tables_named(sql: str, tables: Iterable[str]) -> set[str] | None:
    """The tables ``sql`` may read; None when that cannot be told from its text (all).

    A table is read only through its name, so a table whose name is nowhere in the text,
    ignoring case, is not read; a substring test errs only towards more tables (``order``
    in ``ORDER BY``). Table macros take table names as strings a query could build, and
    user SQL cannot call ``query_table`` itself (``queries.sqlsafety``).
    """
    text = sql.lower()
    if any(macro in text for macro in TABLE_MACROS):
        return None
    return {table for table in tables if table.lower() in text}


# What one Arrow scan was registered from: its batches and the syms kept (None: all rows).
Registered = tuple[tuple[pa.RecordBatch, ...], frozenset[str] | None]


def _same(a: Registered, b: Registered) -> bool:
    # Identity, not equality: batches are immutable, and comparing contents costs a scan.
    return (
        a[1] == b[1]
        and len(a[0]) == len(b[0])
        and all(x is y for x, y in zip(a[0], b[0], strict=True))
    )


class _WorkerCursor:
    """One worker thread's cursor and what is currently registered and viewed on it."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self.cursor = cursor
        self.shape: Shape | None = None
        # Arrow scan name -> what is registered under it.
        self.registered: dict[str, Registered] = {}
        self.groups = GroupCache()  # the grouped syms of the scans' batches

    def scan_table(
        self,
        name: str,
        view: TableView,
        batches: tuple[pa.RecordBatch, ...],
        interned: bool,
        syms: frozenset[str] | None,
    ) -> pa.Table:
        """What Arrow scan ``name`` registers: ``batches``, or only the rows of ``syms``."""
        schema = interned_schema(view.schema) if interned else view.schema
        rows = list(batches) if syms is None else self.groups.select(name, batches, syms)
        return pa.Table.from_batches(rows, schema=schema)


def _connect(threads: int, nice: int) -> duckdb.DuckDBPyConnection:
    """A DuckDB whose worker threads run ``nice`` steps below normal priority.

    DuckDB starts its workers when the database opens and when ``threads`` is set, from the
    calling thread, whose priority they inherit: so both happen on a short-lived thread that
    lowered its own. Ingest, on a normal-priority thread, then wins the CPU over queries.
    """
    made: list[duckdb.DuckDBPyConnection] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            lower_thread_priority(nice)
            con = duckdb.connect()
            con.execute(f"SET threads = {threads}")
            made.append(con)
        except BaseException as exc:  # re-raised on the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="rdb-duckdb-start")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


class QueryEngine:
    """Hands the query service a cursor prepared on the current snapshot.

    ``cursors``: how many to prepare up front, one per query worker thread; a thread that
    finds none left makes its own on its first query.
    """

    def __init__(
        self,
        store: Store,
        *,
        intraday_dir: Path,
        threads: int | None = None,
        memory_limit_mb: int | None = None,
        cursors: int = 2,
        nice: int = 0,
    ) -> None:
        self.store = store
        self.threads = int(threads or os.cpu_count() or 1)
        self._con = _connect(self.threads, nice)
        if memory_limit_mb:
            self._con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        intraday_dir.mkdir(parents=True, exist_ok=True)
        prepare_database(self._con, allowed_directories=[intraday_dir])
        self._local = threading.local()
        self._spare_lock = threading.Lock()
        # Counters, plain attributes for tests.
        self.cursors_made = cursors
        self.registrations = 0
        self.view_rebuilds = 0
        snapshot = store.snapshot()
        self._spare = [self._new_cursor(snapshot) for _ in range(cursors)]

    def prepare(
        self, sql: str | None = None, syms: SymScope | None = None
    ) -> duckdb.DuckDBPyConnection:
        """A cursor on the current snapshot, set up for ``sql`` (None: for any query), whose
        tables named in ``syms`` hold only those syms' rows."""
        return self.cursor_for(self.store.snapshot(), self._needed(sql), syms)

    def prepare_with_dates(self, request: QueryRequest) -> Prepared:
        """The query service's ``prepare``: a cursor as ``prepare`` makes for the request,
        and the snapshot's dates for the reply, so the gateway learns which dates the rows
        came from without wrapping the query."""
        snapshot = self.store.snapshot()
        dates = [d.isoformat() for d in sorted(snapshot.dates)]
        cursor = self.cursor_for(snapshot, self._needed(request.sql), request.syms)
        return Prepared(cursor, {"dates": dates})

    def _needed(self, sql: str | None) -> set[str] | None:
        return None if sql is None else tables_named(sql, self.store.schemas)

    def cursor_for(
        self, snapshot: Snapshot, tables: set[str] | None = None, syms: SymScope | None = None
    ) -> duckdb.DuckDBPyConnection:
        """The calling thread's cursor on ``snapshot``, up to date for ``tables`` (None: all),
        the tables in ``syms`` holding only those syms' rows."""
        worker: _WorkerCursor | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = self._take_cursor(snapshot)
        if tables is None:
            # The query may read tables by names no sender could see (a table macro's
            # string argument), so no promise about them holds.
            syms = None
        self._point_at(worker, snapshot, tables, syms)
        return worker.cursor

    def _take_cursor(self, snapshot: Snapshot) -> _WorkerCursor:
        with self._spare_lock:
            if self._spare:
                return self._spare.pop()
            self.cursors_made += 1
        return self._new_cursor(snapshot)

    def _new_cursor(self, snapshot: Snapshot) -> _WorkerCursor:
        worker = _WorkerCursor(self._con.cursor())
        self._point_at(worker, snapshot)
        return worker

    def _point_at(
        self,
        worker: _WorkerCursor,
        snapshot: Snapshot,
        tables: set[str] | None = None,
        syms: SymScope | None = None,
    ) -> None:
        cur = worker.cursor
        shape = snapshot_shape(snapshot)
        rebuild = shape != worker.shape
        if rebuild:
            tables = None  # the views are made over every table's current registration
        for date, held_tables in snapshot.dates.items():
            for table, view in held_tables.items():
                if tables is not None and table not in tables:
                    continue
                kept = (syms or {}).get(table)
                for name, batches, interned in zip(
                    _mem_names(table, date), view.parts(), (True, False), strict=True
                ):
                    held = worker.registered.get(name)
                    if held is None or not _same(held, (batches, kept)):
                        cur.register(name, worker.scan_table(name, view, batches, interned, kept))
                        worker.registered[name] = (batches, kept)
                        self.registrations += 1
        if rebuild:
            current = {n for d, ts in snapshot.dates.items() for t in ts for n in _mem_names(t, d)}
            stale = worker.registered.keys() - current
            for name in stale:
                cur.unregister(name)
                del worker.registered[name]
            worker.groups.forget(stale)
            self._create_views(cur, snapshot)
            worker.shape = shape
            self.view_rebuilds += 1

    def _create_views(self, cur: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> None:
        for table, schema in self.store.schemas.items():
            sql = view_sql(snapshot, table, schema.column_names)
            cur.execute(f"CREATE OR REPLACE TEMP VIEW {_ident(table)} AS {sql}")
        # A literal VALUES view: the shape check above re-creates it when dates change.
        rows = ", ".join(
            f"(DATE '{d.isoformat()}', '{snapshot.states[d]}')" for d in sorted(snapshot.dates)
        )
        cur.execute(
            f"CREATE OR REPLACE TEMP VIEW {DATES_VIEW} AS "
            f"SELECT * FROM (VALUES {rows}) AS t(date, state)"
        )

    def close(self) -> None:
        self._con.close()
