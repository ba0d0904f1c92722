"""The logical tables the gateway serves, as empty DuckDB tables.

Every query is first bound against empty copies of the tables (``describe``): that checks it
with DuckDB's own binder (a bad query gets DuckDB's message before any backend is asked) and
tells the exact output names and types a single DuckDB holding all the data would produce,
which the merge step casts to. The empty tables double as "a backend with no rows" when
routing leaves no backend at all.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from queries.connection import prepare_database
from queries.macros import AGGREGATE_MACROS
from tickdb.schema import Q_TO_ARROW, TableSchema

DATE_COLUMN = "date"


def arrow_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    """Arrow schema of a logical table: its q-typed columns plus the ``date`` column."""
    fields = [pa.field(name, Q_TO_ARROW[qtype]) for name, qtype in columns if name != "date"]
    return pa.schema([*fields, pa.field(DATE_COLUMN, pa.date32())])


@dataclass(frozen=True)
class OutputColumn:
    name: str
    duckdb_type: str


class Catalog:
    """Schemas of the logical tables and an empty-table DuckDB to bind queries against."""

    def __init__(self, columns: Mapping[str, list[tuple[str, str]]]) -> None:
        self.columns = {name: list(cols) for name, cols in columns.items()}
        self.schemas = {name: arrow_schema(cols) for name, cols in self.columns.items()}
        # One thread per query: the binder needs none, and a query that reads no table runs
        # here (gateway.local_run) without crowding out the event loop and the merges.
        self._db = duckdb.connect(config={"threads": 1})
        for name, schema in self.schemas.items():
            empty = schema.empty_table()  # noqa: F841 - read by DuckDB's replacement scan
            self._db.execute(f'CREATE TABLE "{name}" AS SELECT * FROM empty')
        self.aggregates = (
            frozenset(
                str(r[0]).lower()
                for r in self._db.execute(
                    "SELECT DISTINCT function_name FROM duckdb_functions() "
                    "WHERE function_type = 'aggregate'"
                ).fetchall()
            )
            | AGGREGATE_MACROS
        )
        prepare_database(self._db)
        self._lock = threading.Lock()

    @classmethod
    def from_schemas(
        cls,
        tables: Mapping[str, TableSchema],
        reported: Mapping[str, list[tuple[str, str]]] | None = None,
    ) -> Catalog:
        """Configured schemas, overridden by what the backends report."""
        cols = {name: [(c.name, c.qtype) for c in t.columns] for name, t in tables.items()}
        cols.update(reported or {})
        return cls(cols)

    def column_names(self, table: str) -> list[str]:
        return list(self.schemas[table].names)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._db.cursor()

    def describe(self, sql: str) -> list[OutputColumn]:
        """Bind ``sql`` (raises duckdb.Error with DuckDB's message) and list its columns.

        A relation binds the user's text as it is, so an error quotes the user's SQL (a
        ``DESCRIBE`` prefix showed up in every binder error's ``LINE 1:``).
        """
        cur = self.cursor()
        try:
            rel = cur.sql(sql)
            if rel is None:
                raise duckdb.InvalidInputException("not a query: it returns no rows")
            return [OutputColumn(n, str(t)) for n, t in zip(rel.columns, rel.types, strict=True)]
        finally:
            cur.close()

    def run_empty(self, sql: str) -> pa.Table:
        """Run ``sql`` over the empty tables: what a backend holding no rows answers."""
        cur = self.cursor()
        try:
            return cur.sql(sql).to_arrow_table()
        finally:
            cur.close()
