"""Queries over a snapshot: each query's cursor sees every table as one DuckDB view.

``trade`` on a cursor is ``UNION ALL`` over each date the snapshot holds of its in-memory
batches (an Arrow scan, registered on that cursor) and its intraday Parquet chunks, with a
constant ``date`` column added by the view (no data is copied to add it). ``rdb_dates``
lists the dates of the same snapshot and their state, so one query can say atomically which
dates this RDB answered for; that is what makes the EOD handover exact (``docs/rdb.md``).

Each worker thread keeps one cursor with the macros registered; views are re-created only
when the snapshot's shape (dates, chunk files) changed, Arrow data is re-registered per
query (cheap: a reference, no copy).
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import duckdb

from queries.macros import register_macros
from queries.sqlsafety import lock_down
from rdb.store import Snapshot, Store

DATES_VIEW = "rdb_dates"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mem_name(table: str, date: dt.date) -> str:
    return f"__rdb_{table}_{date:%Y%m%d}"


def view_sql(snapshot: Snapshot, table: str, columns: list[str]) -> str:
    cols = ", ".join(_ident(c) for c in columns)
    parts = []
    for date in sorted(snapshot.dates):
        view = snapshot.dates[date][table]
        lit = f"DATE '{date.isoformat()}'"
        if view.chunks:
            files = ", ".join("'" + str(c.path).replace("'", "''") + "'" for c in view.chunks)
            parts.append(f"SELECT {cols}, {lit} AS date FROM read_parquet([{files}])")
        parts.append(f"SELECT {cols}, {lit} AS date FROM {_mem_name(table, date)}")
    return " UNION ALL ".join(parts)


def _shape(snapshot: Snapshot) -> tuple[object, ...]:
    return tuple(
        (date, snapshot.states[date], tuple((t, len(v.chunks)) for t, v in tables.items()))
        for date, tables in sorted(snapshot.dates.items())
    )


class QueryEngine:
    """Hands the query service a cursor prepared on the current snapshot."""

    def __init__(
        self,
        store: Store,
        *,
        intraday_dir: Path,
        threads: int = 2,
        memory_limit_mb: int | None = None,
    ) -> None:
        self.store = store
        self._con = duckdb.connect()
        self._con.execute(f"SET threads = {int(threads)}")
        if memory_limit_mb:
            self._con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        intraday_dir.mkdir(parents=True, exist_ok=True)
        lock_down(self._con, allowed_directories=[intraday_dir])
        self._local = threading.local()

    def prepare(self) -> duckdb.DuckDBPyConnection:
        snapshot = self.store.snapshot()
        return self.cursor_for(snapshot)

    def cursor_for(self, snapshot: Snapshot) -> duckdb.DuckDBPyConnection:
        local = self._local
        cur: duckdb.DuckDBPyConnection | None = getattr(local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            register_macros(cur)
            local.cursor = cur
            local.shape = None
            local.registered = set()
        wanted = set()
        for date, tables in snapshot.dates.items():
            for table, view in tables.items():
                name = _mem_name(table, date)
                cur.register(name, view.arrow())
                wanted.add(name)
        for stale in local.registered - wanted:
            cur.unregister(stale)
        local.registered = wanted
        shape = _shape(snapshot)
        if shape != local.shape:
            self._create_views(cur, snapshot)
            local.shape = shape
        return cur

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
