"""The RDB's calls into the HDB side: intraday chunks, final partitions, RELOAD.

Thin on purpose: the file formats and writers belong to ``hdb/`` (``hdb.intraday``,
``hdb.writer``); this module adapts the RDB's in-memory batches to them and records which
seq each chunk covers (see ``rdb.recovery``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa

from hdb.intraday import chunk_number, list_chunks
from hdb.intraday import write_chunk as hdb_write_chunk
from hdb.parquet_out import WriteOptions
from hdb.protocol import RELOAD, RELOADED
from hdb.writer import WriteResult
from hdb.writer import write_partition as hdb_write_partition
from queries.service import QueryClient, QueryError
from rdb.recovery import RdbState
from rdb.store import Chunk
from rdb.symbols import plain_table
from tickdb.schema import TableSchema
from tickdb.types import Shard


def write_chunk(
    state: RdbState,
    intraday_root: Path,
    schema: TableSchema,
    date: dt.date,
    seq: int,
    batches: list[pa.RecordBatch],
) -> Chunk:
    """Write rows of a table covering seq <= ``seq`` as the next chunk.

    The seq is recorded in the state file *before* the chunk is published under the number
    the writer will use, so a chunk on disk always has its seq on record.
    """
    existing = list_chunks(intraday_root, schema.name, date)
    number = chunk_number(existing[-1]) + 1 if existing else 0
    state.chunk_intent(schema.name, date, number, seq)
    data = plain_table(batches, schema.arrow)
    path = hdb_write_chunk(intraday_root, schema, date, data)
    if chunk_number(path) != number:  # only this RDB writes here; never expected
        raise RuntimeError(f"chunk {path} is not number {number}")
    return Chunk(schema.name, path, seq, data.num_rows)


def write_partition(
    hdb_dir: Path,
    schema: TableSchema,
    date: dt.date,
    shard: Shard,
    chunks: list[Chunk],
    batches: list[pa.RecordBatch],
    *,
    memory_limit_mb: int,
) -> WriteResult:
    """Merge chunks and in-memory rows into the final partition (DuckDB sort that spills)."""
    data = plain_table(batches, schema.arrow) if batches else None
    return hdb_write_partition(
        hdb_dir,
        schema,
        date,
        data,
        chunks=[c.path for c in chunks],
        shard=shard,
        options=WriteOptions(memory_limit=f"{max(64, memory_limit_mb // 2)}MB"),
    )


def hdb_serves(info: dict[str, object], date: dt.date, tables: list[str]) -> bool:
    """Whether an HDB's INFO says it answers for ``date`` in every one of ``tables``."""
    iso = date.isoformat()
    described = info.get("tables")
    if isinstance(described, dict):
        for table in tables:
            entry = described.get(table)
            if not isinstance(entry, dict) or iso not in [str(d) for d in entry.get("dates", [])]:
                return False
        return True
    dates = info.get("dates")
    return isinstance(dates, list) and iso in [str(d) for d in dates]


def reload_and_check(client: QueryClient, date: dt.date, tables: list[str]) -> bool:
    """RELOAD one HDB; True once its reloaded views list ``date`` for every table."""
    reply = client.call(RELOAD)
    if reply[0] != RELOADED or len(reply) != 2:
        raise QueryError("internal", f"unexpected reply {reply[:1]!r} to RELOAD")
    return hdb_serves(json.loads(reply[1]), date, tables)
