"""An in-process backend over DuckDB tables: same interface as ``QueryClient``.

Used by the property tests (many generated topologies, no processes) and by the benchmark's
raw baseline. It behaves like the real service where the gateway can tell: read-only check,
time limit, ``max_rows + 1`` truncation, ``QueryError`` kinds, an ``info()`` of the same shape.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import duckdb
import pyarrow as pa

from queries.connection import prepare_database
from queries.service import QueryError, QueryResult
from queries.service_protocol import SymScope
from queries.service_server import classify
from queries.sqlsafety import check_read_only
from tickdb.schema import Q_TO_ARROW
from tickdb.types import BackendInfo, BackendRole, Shard, TableInfo

_QTYPE_OF = {str(t): q for q, t in reversed(list(Q_TO_ARROW.items()))}


class LocalBackend:
    def __init__(
        self,
        tables: dict[str, pa.Table],
        *,
        role: BackendRole,
        shard: Shard | None = None,
        date: dt.date | None = None,
        delay_s: float = 0.0,
        query_dates: bool = False,
    ) -> None:
        self.role = role
        # An RDB that lists its dates in every reply (as ``tickdb rdb`` does) instead of
        # answering the gateway's ``rdb_dates`` wrapper.
        self.query_dates = query_dates and role == "rdb"
        self.shard = shard
        self.date = date
        self.delay_s = delay_s  # simulated slowness, for time-limit tests
        self.alive = True  # False: behaves like a dead process
        self.queries: list[str] = []  # every SQL received, for routing assertions
        self.promises: list[dict[str, frozenset[str]]] = []  # and the syms promised with it
        self._tables = tables
        self._db = duckdb.connect(config={"threads": 1})
        for name, table in tables.items():
            self._db.register("_load", table)
            self._db.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _load')
            self._db.unregister("_load")
        if role == "rdb":
            # As a real RDB: the dates this snapshot answers for (``gateway.handover``).
            held = {d for t in tables.values() for d in t.column("date").to_pylist()}
            rows = ", ".join(f"(DATE '{d.isoformat()}', 'live')" for d in sorted(held | {self.day}))
            self._db.execute(
                f"CREATE VIEW rdb_dates AS SELECT * FROM (VALUES {rows}) AS t(date, state)"
            )
        prepare_database(self._db)
        self._lock = threading.Lock()

    @property
    def day(self) -> dt.date:
        """The session date an RDB reports."""
        return self.date or dt.date.today()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on this backend's data (to serve it with a real ``QueryServer``)."""
        with self._lock:
            return self._db.cursor()

    def query(
        self, sql: str, *, timeout_s: float, max_rows: int, syms: SymScope | None = None
    ) -> QueryResult:
        """As a query service. ``syms`` is kept as an RDB keeps it (``rdb.symindex``): the
        promised tables hold only those syms' rows for this query, so a wrong promise from
        the gateway gives a wrong answer that tests comparing answers see."""
        self.queries.append(sql)
        self.promises.append(dict(syms or {}))
        started = time.monotonic()
        if not self.alive:
            raise QueryError("unavailable", "backend is down")
        if self.delay_s:
            time.sleep(min(self.delay_s, timeout_s))
            if self.delay_s >= timeout_s:
                raise QueryError("timeout", f"query interrupted: {timeout_s:g}s time limit")
        check_read_only(sql)
        with self._lock:
            cur = self._db.cursor()
        for table, kept in (syms or {}).items():
            if table in self._tables:
                listed = ", ".join("'" + s.replace("'", "''") + "'" for s in sorted(kept))
                where = f"sym IN ({listed})" if kept else "false"
                cur.execute(  # a temp view is this cursor's own and shadows the table
                    f'CREATE TEMP VIEW "{table}" AS '
                    f'SELECT * FROM memory.main."{table}" WHERE {where}'
                )
        timer = threading.Timer(timeout_s, cur.interrupt)
        timer.start()
        try:
            table = cur.sql(sql).to_arrow_table()
            assert table is not None
        except duckdb.InterruptException:
            raise QueryError("timeout", f"query interrupted: {timeout_s:g}s time limit") from None
        except Exception as exc:
            raise classify(exc) from None
        finally:
            timer.cancel()
            cur.close()
        truncated = table.num_rows > max_rows
        if truncated:
            table = table.slice(0, max_rows)
        dates = tuple(self.info()["dates"]) if self.query_dates else None
        return QueryResult(table, truncated, (time.monotonic() - started) * 1000, dates)

    def info(self) -> dict[str, Any]:
        if not self.alive:
            raise QueryError("unavailable", "backend is down")
        tables = {}
        for name, table in self._tables.items():
            columns = tuple(
                (f.name, _QTYPE_OF.get(str(f.type), "string"))
                for f in table.schema
                if f.name != "date"
            )
            dates = tuple(sorted(set(table.column("date").to_pylist())))
            tables[name] = TableInfo(columns=columns, rows=table.num_rows, dates=dates)
        if self.role != "rdb":
            return BackendInfo(role=self.role, shard=self.shard, tables=tables).to_json()
        return BackendInfo(
            role=self.role,
            shard=self.shard,
            tables=tables,
            date=self.day,
            dates=tuple(sorted({d for t in tables.values() for d in t.dates} | {self.day})),
            seq=0,
            tp_seq=0,
            last_heartbeat=time.time(),
            query_dates=self.query_dates,
        ).to_json()


def local_topology(
    tables: dict[str, pa.Table],
    *,
    shards: int,
    today: dt.date,
    hdb: bool = True,
    query_dates: bool = False,
) -> dict[str, LocalBackend]:
    """Split whole tables (with a ``date`` column) the way a real stack places them.

    One RDB per shard holds ``today``; one HDB per shard holds every earlier date. Keys are
    backend names, as ``rdb0``, ``hdb0``, ...
    """
    import pyarrow.compute as pc

    out: dict[str, LocalBackend] = {}
    for k in range(shards):
        shard = Shard(k, shards)
        parts: dict[str, dict[str, pa.Table]] = {"rdb": {}, "hdb": {}}
        for name, table in tables.items():
            syms = table.column("sym").to_pylist()
            mine = pa.array([shard.owns(s) for s in syms], pa.bool_())
            is_today = pc.equal(table.column("date"), pa.scalar(today, pa.date32()))
            parts["rdb"][name] = table.filter(pc.and_(mine, is_today))
            parts["hdb"][name] = table.filter(pc.and_(mine, pc.invert(is_today)))
        placed = shard if shards > 1 else None
        out[f"rdb{k}"] = LocalBackend(
            parts["rdb"], role="rdb", shard=placed, date=today, query_dates=query_dates
        )
        if hdb:
            out[f"hdb{k}"] = LocalBackend(parts["hdb"], role="hdb", shard=placed)
    return out
