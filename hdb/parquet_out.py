"""Sorted Parquet out of DuckDB: the COPY every HDB file goes through.

One place decides the file format of the lake: ZSTD, row groups sized so that ``sym = 'X'``
skips most of them by min/max statistics (the rows are sorted by ``sym, time``), and the q
types of the columns in the footer: ``ARROW:schema`` carries them as Arrow field metadata
(key ``q``) so PyArrow and Polars see them, and ``tickdb.schema`` carries them as JSON for
readers that ignore Arrow metadata.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from hdb.layout import scratch_dir
from tickdb.schema import TableSchema

SCHEMA_KEY = "tickdb.schema"
COMPRESSION = "zstd"
MIN_ROW_GROUP = 32_768
MAX_ROW_GROUP = 131_072
# Rows scanned to estimate how many syms a day has (an exact count would cost a full pass).
SYM_SAMPLE_ROWS = 262_144


@dataclass(frozen=True)
class WriteOptions:
    """How a write-down may use the machine: DuckDB spills its sort past ``memory_limit``."""

    memory_limit: str = "2GB"
    threads: int | None = None
    row_group_rows: int | None = None  # None: sized from the number of syms


def row_group_rows(total_rows: int, distinct_syms: int) -> int:
    """About one sym per row group, within bounds; a multiple of DuckDB's 2048-row vectors.

    With rows sorted by sym, a sym spans about ``rows_per_sym / row_group`` + 1 groups, so a
    one-sym filter reads little more than that sym's rows, while groups stay big enough for
    fast scans and writes (smaller than 32k rows made DuckDB's writer much slower).
    """
    per_sym = total_rows // max(distinct_syms, 1)
    rounded = -(-per_sym // 2048) * 2048
    return max(MIN_ROW_GROUP, min(MAX_ROW_GROUP, rounded))


def footer_metadata(schema: TableSchema, written: pa.Schema | None = None) -> dict[str, str]:
    """Key-value metadata for a file of ``schema``.

    ``written`` is the Arrow schema DuckDB produces for the rows; ``ARROW:schema`` is only
    added when it matches the q types' Arrow schema, as PyArrow would otherwise reinterpret
    columns DuckDB wrote differently (timespan becomes an INTERVAL).
    """
    meta = {SCHEMA_KEY: json.dumps(schema.to_json())}
    expected = schema.arrow
    if written is None or [f.type for f in written] == [f.type for f in expected]:
        meta["ARROW:schema"] = base64.b64encode(expected.serialize().to_pybytes()).decode()
    return meta


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def kv_clause(meta: dict[str, str]) -> str:
    items = ", ".join(f"{_sql_string(k)}: {_sql_string(v)}" for k, v in meta.items())
    return "{" + items + "}"


# One in-memory DuckDB per (directory, limits) for the life of the process: opening a
# database costs ~15 ms, more than writing a small table; each write gets its own cursor.
_DATABASES: dict[tuple[str, str, int | None], duckdb.DuckDBPyConnection] = {}
_DATABASES_LOCK = threading.Lock()


def _database(root: str | Path, options: WriteOptions) -> duckdb.DuckDBPyConnection:
    key = (str(Path(root).absolute()), options.memory_limit, options.threads)
    with _DATABASES_LOCK:
        db = _DATABASES.get(key)
        if db is None:
            spill = Path(tempfile.mkdtemp(prefix="spill-", dir=scratch_dir(root)))
            db = duckdb.connect()
            db.execute(f"SET memory_limit = {_sql_string(options.memory_limit)}")
            db.execute(f"SET temp_directory = {_sql_string(str(spill))}")
            db.execute("SET preserve_insertion_order = true")
            if options.threads:
                db.execute(f"SET threads = {int(options.threads)}")
            _DATABASES[key] = db
        return db.cursor()


@contextlib.contextmanager
def writer_connection(
    root: str | Path, options: WriteOptions
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a DuckDB that spills to a scratch directory under ``root``.

    Everything a caller creates should be TEMP or registered: the database is shared by
    every write of this process, and the connection is closed afterwards.
    """
    con = _database(root, options)
    try:
        yield con
    finally:
        con.close()


def copy_sorted(
    con: duckdb.DuckDBPyConnection,
    select_sql: str,
    target: Path,
    schema: TableSchema,
    row_group: int,
    *,
    probe_sql: str | None = None,
) -> int:
    """``COPY (select_sql) TO target`` as lake Parquet; returns the rows written.

    ``select_sql`` must produce the schema's columns in order, already sorted.
    ``probe_sql`` (default ``select_sql``) gives the same column types; it is run with no
    rows to learn them, for a ``select_sql`` over a stream that can be read only once.
    """
    probe = select_sql if probe_sql is None else probe_sql
    written = con.sql(f"select * from ({probe}) limit 0").to_arrow_table().schema
    meta = footer_metadata(schema, written)
    sql = (
        f"COPY ({select_sql}) TO {_sql_string(str(target))} (FORMAT parquet, "
        f"COMPRESSION {COMPRESSION}, ROW_GROUP_SIZE {int(row_group)}, "
        f"KV_METADATA {kv_clause(meta)})"
    )
    rows = con.execute(sql).fetchall()
    return int(rows[0][0]) if rows else 0


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_list(schema: TableSchema) -> str:
    return ", ".join(quote_ident(c) for c in schema.column_names)


def sql_path(path: Path) -> str:
    return _sql_string(str(path))
