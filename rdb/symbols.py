"""Interned symbols: the RDB keeps compacted batches' q symbol columns dictionary-encoded.

kdb+ stores symbols as indices into one list of distinct strings, which is what makes
``where sym = `X`` and ``by sym`` cheap. Arrow's dictionary arrays are the same idea, and
DuckDB scans them as VARCHAR while comparing and grouping on the few distinct values: on a
day of 833k trades of 100 syms, a one-sym filter took 2.7 ms against 5.1 ms, a group by sym
3.5 against 11.0 ms (``docs/rdb.md``). Encoding costs ~10 ms a million rows, so it happens
where rows are copied anyway, in compaction (``rdb.store.Day.compact``), off the ingest
path; the batches ingest appends stay plain. Everything that reads the batches back as the
table's schema (write-down, intraday chunks) decodes with ``plain_table``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from tickdb.schema import Q_METADATA_KEY

_INDEX = pa.int32()  # what dictionary_encode produces


def symbol_columns(schema: pa.Schema) -> tuple[int, ...]:
    """Positions of the q symbol columns (field metadata ``q``)."""
    return tuple(
        i for i, f in enumerate(schema) if (f.metadata or {}).get(Q_METADATA_KEY) == b"symbol"
    )


def interned_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its symbol columns dictionary-encoded."""
    for i in symbol_columns(schema):
        f = schema.field(i)
        schema = schema.set(i, f.with_type(pa.dictionary(_INDEX, f.type)))
    return schema


def intern(table: pa.Table) -> pa.Table:
    """``table`` (plain) with its symbol columns dictionary-encoded."""
    schema = interned_schema(table.schema)
    for i in symbol_columns(table.schema):
        table = table.set_column(i, schema.field(i), pc.dictionary_encode(table.column(i)))
    return table


def is_interned(batch: pa.RecordBatch) -> bool:
    # ``intern`` encodes every symbol column, so ``sym`` (always column 1, a symbol:
    # ``tickdb.schema``) tells; this runs per batch on every query's set-up.
    return pa.types.is_dictionary(batch.schema.field(1).type)


def plain(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` as the table's plain ``schema`` (interned columns decoded)."""
    if not is_interned(batch):
        return batch
    arrays = [
        column.cast(f.type) if pa.types.is_dictionary(column.type) else column
        for column, f in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def plain_table(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches([plain(b, schema) for b in batches], schema=schema)


def parts(
    batches: Sequence[pa.RecordBatch], schema: pa.Schema
) -> tuple[tuple[pa.RecordBatch, ...], tuple[pa.RecordBatch, ...]]:
    """The interned batches and the plain ones (schemas ``interned_schema(schema)`` and
    ``schema``); either may be empty.

    Compaction leaves interned batches first and ingest appends plain ones, so the first
    part holds the older rows. Should a plain batch ever sit among interned ones, every
    batch comes back plain instead, so rows keep their order.
    """
    cut = 0
    while cut < len(batches) and is_interned(batches[cut]):
        cut += 1
    if any(is_interned(b) for b in batches[cut:]):
        return (), tuple(plain(b, schema) for b in batches)
    return tuple(batches[:cut]), tuple(batches[cut:])
