"""Intraday chunks: older rows of the day that the RDB moved out of memory.

``<data>/intraday/<table>/date=YYYY-MM-DD/chunk-<n>.parquet``, numbered in the order they
were written. Each chunk is sorted by ``sym, time`` (stably, so equal keys keep arrival
order) with row groups sized for sym pruning, so RDB queries over chunks skip most of them,
and is published with the same atomic rule as partitions. At end of day
``hdb.writer.write_partition(..., chunks=list_chunks(...))`` merges them with memory.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hdb.layout import make_dirs, partition_dir, publish, remove_stale_tmp, tmp_path
from hdb.parquet_out import COMPRESSION, SCHEMA_KEY, row_group_rows
from tickdb.schema import TableSchema, conform

_CHUNK = re.compile(r"^chunk-(\d+)\.parquet$")


def chunk_dir(intraday_dir: str | Path, table: str, date: dt.date) -> Path:
    return partition_dir(intraday_dir, table, date)


def list_chunks(intraday_dir: str | Path, table: str, date: dt.date) -> list[Path]:
    """The table's chunks for ``date``, oldest first."""
    directory = chunk_dir(intraday_dir, table, date)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _CHUNK.match(p.name)]
    return sorted(found, key=chunk_number)


def chunk_glob(intraday_dir: str | Path, table: str, date: dt.date) -> str:
    """A glob for readers (DuckDB ``read_parquet``); it never matches a temporary file."""
    return str(chunk_dir(intraday_dir, table, date) / "chunk-*.parquet")


def write_chunk(
    intraday_dir: str | Path,
    schema: TableSchema,
    date: dt.date,
    data: pa.Table,
    *,
    row_group: int | None = None,
) -> Path:
    """Write ``data`` (the oldest rows still in memory) as the next chunk; returns its path.

    Only one writer per table and date may run at a time (the RDB's): the number is taken
    from the chunks already there.
    """
    data = conform(data, schema)
    if "time" not in data.column_names:
        raise ValueError(f"chunk of {schema.name}: rows need a time column")
    directory = chunk_dir(intraday_dir, schema.name, date)
    make_dirs(directory)
    remove_stale_tmp(directory)
    existing = list_chunks(intraday_dir, schema.name, date)
    number = chunk_number(existing[-1]) + 1 if existing else 0
    final = directory / f"chunk-{number}.parquet"
    order = pc.sort_indices(data, sort_keys=[("sym", "ascending"), ("time", "ascending")])
    ordered = data.take(order)
    syms = max(1, int(pc.count_distinct(ordered.column("sym")).as_py()))
    size = row_group or row_group_rows(ordered.num_rows, syms)
    table = ordered.replace_schema_metadata(
        {**(schema.arrow.metadata or {}), SCHEMA_KEY.encode(): _schema_json(schema)}
    )
    tmp = tmp_path(final)
    try:
        pq.write_table(table, tmp, row_group_size=size, compression=COMPRESSION)
        publish(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _schema_json(schema: TableSchema) -> bytes:
    return json.dumps(schema.to_json()).encode()


def chunk_number(path: Path) -> int:
    m = _CHUNK.match(path.name)
    if m is None:
        raise ValueError(f"not a chunk file: {path}")
    return int(m.group(1))


def remove_chunks(intraday_dir: str | Path, table: str, date: dt.date) -> int:
    """Delete the table's chunks for ``date`` (after the write-down published them)."""
    directory = chunk_dir(intraday_dir, table, date)
    if not directory.is_dir():
        return 0
    count = len(list_chunks(intraday_dir, table, date))
    shutil.rmtree(directory)
    return count
