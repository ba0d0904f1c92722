"""End-of-day write-down: one table's day, from memory and intraday chunks, to its partition.

``write_partition`` sorts by ``sym, time`` in DuckDB, which spills to disk past
``WriteOptions.memory_limit`` instead of running out of memory, writes the file under a
hidden temporary name and renames it into place (``hdb.layout.publish``). Rows with equal
``sym`` and ``time`` keep their arrival order (chunk by chunk, then memory), as kdb+'s
stable ``xasc`` does: a tie-break key carries the order through the sort. A day held wholly
in memory whose syms' rows arrived in time order (the usual case) skips DuckDB's sort: the
order is a stable sort by sym alone (``hdb.sym_order``), and DuckDB only writes.

Rerunning after a crash is the recovery: the rerun removes the dead writer's temporary file
and writes the partition again from the same inputs.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hdb.layout import (
    make_dirs,
    partition_file,
    publish,
    remove_stale_tmp,
    tmp_path,
)
from hdb.parquet_out import (
    SYM_SAMPLE_ROWS,
    WriteOptions,
    column_list,
    copy_sorted,
    row_group_rows,
    sql_path,
    writer_connection,
)
from hdb.sym_order import sym_ordered
from tickdb.schema import SchemaError, TableSchema, conform
from tickdb.types import UNSHARDED, Shard

log = logging.getLogger("tickdb.hdb.writer")

# The tie-break key is (source << 40) | row within source: 2^40 rows per source is plenty.
_SOURCE_SHIFT = 40
_ORD = "__tickdb_ord"


@dataclass(frozen=True)
class WriteResult:
    path: Path
    rows: int
    row_groups: int
    bytes: int
    elapsed_s: float


def _matching(data: pa.Table, schema: TableSchema) -> pa.Table:
    """``data`` with the schema's columns, order and types (casting where lossless)."""
    if data.schema.names == schema.column_names and all(
        f.type == e.type for f, e in zip(data.schema, schema.arrow, strict=True)
    ):
        return data
    return conform(data, schema)


def estimate_syms(data: pa.Table | None, chunks: Sequence[Path]) -> int:
    """Distinct syms in an evenly spread sample (cheap, and enough to size row groups)."""
    if data is not None and data.num_rows:
        column = data.column("sym")
    elif chunks:
        column = pq.read_table(chunks[0], columns=["sym"]).column("sym")
    else:
        return 1
    step = max(1, len(column) // SYM_SAMPLE_ROWS)
    sample = column.take(pa.array(np.arange(0, len(column), step))) if step > 1 else column
    return max(1, int(pc.count_distinct(sample).as_py()))


def sorted_union_sql(schema: TableSchema, chunks: Sequence[Path], memory: str | None) -> str:
    """SELECT of every source's rows sorted by sym, time and arrival order.

    The chunks are one ``read_parquet`` over the list, not a UNION ALL of one scan each:
    DuckDB's sort over a union of several scans ran out of memory under a tight
    ``memory_limit`` where the single scan spills as it should.
    """
    cols = column_list(schema)
    parts = []
    if chunks:
        files = ", ".join(sql_path(p) for p in chunks)
        which = " ".join(f"WHEN {sql_path(p)} THEN {k}" for k, p in enumerate(chunks))
        parts.append(
            f"SELECT {cols}, ((CASE filename {which} END)::BIGINT << {_SOURCE_SHIFT}) "
            f"+ file_row_number AS {_ORD} "
            f"FROM read_parquet([{files}], file_row_number = true, filename = true)"
        )
    if memory is not None:
        parts.append(f"SELECT {cols}, {_ORD} FROM {memory}")
    if not parts:
        raise ValueError("nothing to write: no data and no chunks")
    union = " UNION ALL ".join(parts)
    return f"SELECT {cols} FROM ({union}) ORDER BY sym, time, {_ORD}"


def _copy_ordered(
    con: duckdb.DuckDBPyConnection,
    ordered: pa.RecordBatchReader,
    data: pa.Table,
    target: Path,
    schema: TableSchema,
    row_group: int,
) -> int:
    """Write rows already in partition order (``hdb.sym_order``): DuckDB keeps their order
    (``preserve_insertion_order``) and only encodes."""
    cols = column_list(schema)
    con.register("__tickdb_ordered", ordered)
    con.register("__tickdb_like", data.schema.empty_table())
    return copy_sorted(
        con,
        f"SELECT {cols} FROM __tickdb_ordered",
        target,
        schema,
        row_group,
        probe_sql=f"SELECT {cols} FROM __tickdb_like",
    )


def _copy_merged(
    con: duckdb.DuckDBPyConnection,
    chunks: Sequence[Path],
    data: pa.Table | None,
    target: Path,
    schema: TableSchema,
    row_group: int,
) -> int:
    """Sort the chunks and the rows in memory together in DuckDB (spilling past its
    memory limit), with the arrival order as the last key."""
    memory = None
    if data is not None:
        base = len(chunks) << _SOURCE_SHIFT
        order = pa.array(np.arange(base, base + data.num_rows, dtype=np.int64))
        con.register("__tickdb_memory", data.append_column(_ORD, order))
        memory = "__tickdb_memory"
    return copy_sorted(con, sorted_union_sql(schema, chunks, memory), target, schema, row_group)


def write_partition(
    hdb_dir: str | Path,
    schema: TableSchema,
    date: dt.date,
    data: pa.Table | None = None,
    *,
    chunks: Sequence[Path] = (),
    shard: Shard = UNSHARDED,
    options: WriteOptions | None = None,
) -> WriteResult:
    """Write ``schema.name``'s partition for ``date``: the rows of ``chunks`` then ``data``.

    ``chunks`` are intraday files (``hdb.intraday.list_chunks``), oldest first; ``data`` is
    what is still in memory. An existing partition file is replaced atomically. With neither
    chunks nor rows an empty file is written, so every table has every day. Nothing is
    filtered by date: the RDB's session day may span two calendar dates.
    """
    started = time.monotonic()
    options = options or WriteOptions()
    if data is None:
        # Always part of the union, even empty: DuckDB writes columns it proves null-free
        # (from chunk statistics alone) as REQUIRED, which would make partitions' schemas
        # differ in nullability from day to day.
        data = schema.arrow.empty_table()
    if data is not None:
        if "time" not in data.column_names:
            raise SchemaError(f"write-down of {schema.name}: rows need a time column")
        try:
            data = _matching(data, schema)
        except SchemaError as exc:
            raise SchemaError(f"write-down of {schema.name}: {exc}") from exc
    final = partition_file(hdb_dir, schema.name, date, shard)
    make_dirs(final.parent)
    removed = remove_stale_tmp(final.parent)
    if removed:
        log.warning(
            "removed %d temporary file(s) left by a crashed writer in %s", removed, final.parent
        )
    tmp = tmp_path(final)
    tmp.unlink(missing_ok=True)
    total = (data.num_rows if data is not None else 0) + sum(
        pq.read_metadata(c).num_rows for c in chunks
    )
    row_group = options.row_group_rows or row_group_rows(total, estimate_syms(data, chunks))
    try:
        with writer_connection(hdb_dir, options) as con:
            ordered = sym_ordered(data) if data.num_rows and not chunks else None
            if ordered is not None:
                rows = _copy_ordered(con, ordered, data, tmp, schema, row_group)
            else:
                rows = _copy_merged(con, chunks, data, tmp, schema, row_group)
        publish(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    meta = pq.read_metadata(final)
    result = WriteResult(
        final, rows, meta.num_row_groups, final.stat().st_size, time.monotonic() - started
    )
    log.info(
        "wrote %s: %d rows, %d row groups, %.2fs", final, rows, result.row_groups, result.elapsed_s
    )
    return result
