"""The HDB's DuckDB: one read-only view per table over its partition files.

Each view is ``read_parquet([files…], hive_partitioning = true)`` with ``date`` typed DATE and
listed first, as in a kdb+ HDB, so ``WHERE date = …`` and date ranges prune whole files, and
``sym = 'X'`` skips row groups by their statistics (files are sorted by ``sym, time``).
Views list files explicitly instead of globbing: a partition appears when the HDB reloads
(after the whole end of day is written, so queries never see half a day), and queries do not
pay a directory walk each. ``reload()`` rebuilds every view in one transaction.

The database is in memory and holds nothing but views and the analytics macros
(``queries.connection``, which also confines DuckDB's file access to the HDB directory).
Every worker thread keeps one cursor.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from hdb.layout import Shard, list_tables, partition_files, scratch_dir
from hdb.parquet_out import quote_ident, sql_path
from hdb.schema_io import Q_TO_DUCKDB, file_schema
from queries.connection import prepare_database
from queries.service import QueryError
from tickdb.schema import RESERVED_COLUMNS, TableSchema
from tickdb.types import TableInfo

log = logging.getLogger("tickdb.hdb")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TableView:
    name: str
    schema: TableSchema | None
    files: tuple[Path, ...]
    dates: tuple[dt.date, ...]
    rows: int

    def describe(self) -> TableInfo:
        columns = tuple((c.name, c.qtype) for c in self.schema.columns) if self.schema else ()
        return TableInfo(
            columns=columns,
            rows=self.rows,
            dates=self.dates,
            files=len(self.files),
        )


def view_sql(view: TableView) -> str:
    if view.files:
        files = ", ".join(sql_path(p) for p in view.files)
        source = f"read_parquet([{files}], hive_partitioning = true, hive_types = {{'date': DATE}})"
        return f"SELECT date, * EXCLUDE (date) FROM {source}"
    assert view.schema is not None
    cols = ", ".join(
        f"CAST(NULL AS {Q_TO_DUCKDB[c.qtype]}) AS {quote_ident(c.name)}"
        for c in view.schema.columns
    )
    return f"SELECT CAST(NULL AS DATE) AS date, {cols} WHERE false"


class Catalog:
    """Views over ``hdb_dir`` for one shard (None: every shard)."""

    def __init__(
        self,
        hdb_dir: str | Path,
        schemas: Mapping[str, TableSchema],
        shard: Shard | None,
        *,
        memory_limit: str = "2GB",
        threads: int | None = None,
    ) -> None:
        self.hdb_dir = Path(hdb_dir).absolute()
        self.hdb_dir.mkdir(parents=True, exist_ok=True)
        self.schemas = dict(schemas)
        self.shard = shard
        self.generation = 0
        self.views: dict[str, TableView] = {}
        self._reload_lock = threading.Lock()
        self._local = threading.local()
        self._rows_cache: dict[tuple[Path, int, int], int] = {}
        self.con = duckdb.connect()
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        # Partition files are immutable once published, so their footers need reading only
        # once (as a kdb+ HDB maps its files once). A rewrite is a new file renamed into
        # place, which DuckDB's cache tells apart from the old one even with an equal size
        # and mtime (tests/test_hdb_server.py). GLOBAL: the queries run on cursors, which
        # do not inherit a session setting (the plain SET here was a no-op for them).
        self.con.execute("SET GLOBAL parquet_metadata_cache = true")
        prepare_database(
            self.con, allowed_directories=[self.hdb_dir], temp_directory=scratch_dir(self.hdb_dir)
        )
        self.reload()

    def _rows(self, path: Path) -> int:
        st = path.stat()
        key = (path, st.st_mtime_ns, st.st_size)
        if key not in self._rows_cache:
            self._rows_cache[key] = pq.read_metadata(path).num_rows
        return self._rows_cache[key]

    def _scan(self) -> dict[str, TableView]:
        names = sorted(set(self.schemas) | set(list_tables(self.hdb_dir)))
        views = {}
        for name in names:
            if not _IDENTIFIER.match(name):
                log.warning("skipping directory %r: not a table name", name)
                continue
            found = partition_files(self.hdb_dir, name, self.shard)
            schema = self.schemas.get(name)
            if schema is None and found:
                schema = file_schema(found[-1][1], name)
            if schema is None or any(c.name in RESERVED_COLUMNS for c in schema.columns):
                continue
            files = tuple(p for _, p in found)
            dates = tuple(sorted({d for d, _ in found}))
            views[name] = TableView(name, schema, files, dates, sum(self._rows(p) for p in files))
        return views

    def reload(self) -> dict[str, Any]:
        """Rescan the directory and replace every view at once; returns ``summary()``."""
        with self._reload_lock:
            views = self._scan()
            cur = self.con.cursor()
            try:
                cur.execute("BEGIN")
                for name in set(self.views) - set(views):
                    cur.execute(f"DROP VIEW IF EXISTS {quote_ident(name)}")
                for view in views.values():
                    cur.execute(
                        f"CREATE OR REPLACE VIEW {quote_ident(view.name)} AS {view_sql(view)}"
                    )
                cur.execute("COMMIT")
            except Exception:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
            self.views = views
            self.generation += 1
            self._rows_cache = {k: v for k, v in self._rows_cache.items() if k[0].exists()}
        log.info(
            "views reloaded (generation %d): %s",
            self.generation,
            ", ".join(f"{v.name}={len(v.dates)}d" for v in views.values()) or "no tables",
        )
        return self.summary()

    def tables(self) -> dict[str, TableInfo]:
        return {name: view.describe() for name, view in self.views.items()}

    def summary(self) -> dict[str, Any]:
        """The RELOAD reply: the generation and the tables as ``info()`` describes them."""
        return {
            "generation": self.generation,
            "tables": {name: table.to_json() for name, table in self.tables().items()},
        }

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (the analytics macros are in the database)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self.con.cursor()
            self._local.cursor = cur
        return cur

    def retry_after(self, error: QueryError) -> bool:
        """``QueryServer.on_error``: a vanished file means the views are stale; reload."""
        if error.kind != "unavailable":
            return False
        log.warning("query hit a missing or unreadable file; reloading views: %s", error)
        self.reload()
        return True

    def close(self) -> None:
        self.con.close()
