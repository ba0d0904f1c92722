"""Reading a table's q schema back from a Parquet footer."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hdb.parquet_out import SCHEMA_KEY
from tickdb.schema import Q_METADATA_KEY, Q_TO_ARROW, SchemaError, TableSchema

# Arrow type -> q type, for files written by something other than tickdb (strings: symbol).
_ARROW_TO_Q = {str(t): q for q, t in reversed(list(Q_TO_ARROW.items()))}
_ARROW_TO_Q.update(
    {
        "string": "symbol",
        "large_string": "symbol",
        "timestamp[us]": "timestamp",
        "timestamp[ms]": "timestamp",
        "string_view": "symbol",
    }
)

# q type -> DuckDB type, for the empty view of a table that has no partition yet.
Q_TO_DUCKDB = {
    "timestamp": "TIMESTAMP_NS",
    "symbol": "VARCHAR",
    "string": "VARCHAR",
    "float": "DOUBLE",
    "real": "FLOAT",
    "long": "BIGINT",
    "int": "INTEGER",
    "short": "SMALLINT",
    "byte": "UTINYINT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timespan": "INTERVAL",
    "time": "TIME",
    "second": "TIME",
    "guid": "BLOB",
}


def arrow_schema(path: str | Path) -> pa.Schema:
    """The file's Arrow schema (hive ``date`` is in the path, not the file)."""
    return pq.read_schema(path)


def file_schema(path: str | Path, table: str) -> TableSchema:
    """The q schema a file was written with: its ``tickdb.schema`` footer entry, else the
    ``q`` field metadata, else a guess from the Arrow types."""
    return schema_of_footer(arrow_schema(path), table, str(path))


def schema_of_footer(schema: pa.Schema, table: str, where: str) -> TableSchema:
    """``file_schema`` for a footer already read (from any file system); ``where`` names the
    file in errors."""
    meta = schema.metadata or {}
    raw = meta.get(SCHEMA_KEY.encode())
    if raw is not None:
        obj = json.loads(raw)
        return TableSchema.from_json({"name": table, "columns": obj["columns"]})
    columns = {}
    for field in schema:
        qtype = (field.metadata or {}).get(Q_METADATA_KEY)
        if qtype is not None:
            columns[field.name] = qtype.decode()
        elif str(field.type) in _ARROW_TO_Q:
            columns[field.name] = _ARROW_TO_Q[str(field.type)]
        else:
            raise SchemaError(
                f"{where}: column {field.name!r} has type {field.type}, which has no q type"
            )
    return TableSchema.from_mapping(table, columns)
