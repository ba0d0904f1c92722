"""Many records of one table read as columns together: a rebuild's replay.

A gateway rebuilding its order state replays the day's order flow, tens or hundreds of
thousands of small records. Read one by one (``payload_rows.read_columns``) a record of one
row costs ~15 µs, and one of two or more rows (a trade's events, its fills) ~100 µs: a
pyarrow conversion per column per record, a fixed cost each time. Read together, each
record's batches are only located (``payload_reader.read_batches``, a few µs) and each
column of all of them is converted once: the values are the same (``read_columns`` reads
those records with pyarrow too), the per-record cost is a few µs.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from tickerplant.payload_reader import read_batches
from tickerplant.payload_rows import read_columns

log = logging.getLogger(__name__)

Columns = tuple[list[str], list[list[Any]]]


def read_columns_of(payloads: list[bytes]) -> list[Columns]:
    """Each payload's ``(names, columns)``, as ``read_columns`` gives it (timestamps as
    integers); payloads of one table. Anything unusual (a record without batches,
    schemas that differ, an unreadable payload) is read record by record instead, which
    reads it or raises its own error for it alone."""
    if len(payloads) < 2:
        return [read_columns(p) for p in payloads]
    try:
        return _together(payloads)
    except (pa.ArrowException, ValueError, TypeError, OSError):
        return [read_columns(p) for p in payloads]


def _together(payloads: list[bytes]) -> list[Columns]:
    batches: list[pa.RecordBatch] = []
    rows: list[int] = []
    for payload in payloads:
        found = read_batches(payload)
        if not found:
            raise ValueError("a record without batches")
        batches += found
        rows.append(sum(b.num_rows for b in found))
    # ArrowInvalid when the schemas differ. One chunk: a column's conversion has a cost per
    # chunk (a record's batch) that is most of what reading a record alone costs.
    table = pa.Table.from_batches(batches).combine_chunks()
    names = table.schema.names
    whole: list[list[Any]] = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        whole.append(column.to_pylist())
    out: list[Columns] = []
    start = 0
    for count in rows:
        end = start + count
        out.append((names, [values[start:end] for values in whole]))
        start = end
    return out
