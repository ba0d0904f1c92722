"""The RDB's in-memory day: per-table lists of immutable Arrow batches, and snapshots of them.

Ingest is r.q's ``upd:insert``: append the update's record batches to the table's list. A
snapshot copies the lists (references to immutable batches, not data) under a short lock, so
a query sees one consistent instant across all tables and never blocks ingest for longer
than that copy. Compaction concatenates many small batches into a few big ones off the
ingest path, because DuckDB scans thousands of tiny batches far slower than a few large ones,
and stores their symbol columns interned (``rdb.symbols``): a table's list is interned
batches, then the plain ones appended since.

A ``Day`` is everything the RDB holds for one session date: in-memory batches plus the
intraday Parquet chunks already spilled under the memory cap (see ``rdb.intraday``).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from rdb.decode import decode_payloads
from rdb.symbols import intern, is_interned, parts, plain_table
from tickdb.schema import TableSchema

# A day in the RDB is ``live`` while ingest appends to it and ``writing`` from its end of day
# until every HDB serves it (``rdb.handover``), when it is dropped. Reported per date in
# ``info()["states"]`` and in the ``rdb_dates`` view.
DayState = Literal["live", "writing"]

# Compact a table once this many batches sit in its list; merge into batches of this size.
COMPACT_AFTER_BATCHES = 64
COMPACT_ROWS = 1 << 17


@dataclass(frozen=True)
class Chunk:
    """One intraday Parquet file: rows of ``table`` for ``date`` with seq <= ``seq``."""

    table: str
    path: Path
    seq: int
    rows: int


@dataclass
class TableData:
    schema: pa.Schema
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    # Highest seq whose rows are in ``batches`` or ``chunks``.
    seq: int = 0
    chunks: list[Chunk] = field(default_factory=list)


@dataclass(frozen=True)
class TableView:
    """One table of one date as a query sees it."""

    schema: pa.Schema
    batches: tuple[pa.RecordBatch, ...]
    chunks: tuple[Chunk, ...]

    @property
    def rows(self) -> int:
        return sum(b.num_rows for b in self.batches) + sum(c.rows for c in self.chunks)

    def parts(self) -> tuple[tuple[pa.RecordBatch, ...], tuple[pa.RecordBatch, ...]]:
        """The interned (older) and plain (newer) batches (``rdb.symbols.parts``)."""
        return parts(self.batches, self.schema)


@dataclass(frozen=True)
class Snapshot:
    """Every date the RDB answers for, each with every table, at one instant."""

    dates: dict[dt.date, dict[str, TableView]]
    states: dict[dt.date, DayState]
    seq: int


class Day:
    """One session date's tables, ``live`` and then ``writing`` (``DayState``).

    All methods that touch the lists take ``lock`` (shared with the Store), held only for
    list operations, never while decoding, writing or querying.
    """

    def __init__(
        self, date: dt.date, schemas: dict[str, TableSchema], lock: threading.Lock
    ) -> None:
        self.date = date
        self.state: DayState = "live"
        self.lock = lock
        self.tables = {name: TableData(schema.arrow) for name, schema in schemas.items()}
        self.start_seq = 0
        self.end_seq: int | None = None

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables.values())

    def append_locked(self, table: str, batches: Iterable[pa.RecordBatch], seq: int) -> None:
        """Caller holds ``lock``: this is r.q's ``upd:insert``."""
        data = self.tables[table]
        for batch in batches:
            if batch.num_rows:
                data.batches.append(batch)
                data.rows += batch.num_rows
                data.nbytes += batch.nbytes
        data.seq = max(data.seq, seq)

    def view(self) -> dict[str, TableView]:
        """Caller holds ``lock``."""
        return {
            name: TableView(t.schema, tuple(t.batches), tuple(t.chunks))
            for name, t in self.tables.items()
        }

    def compact(self, table: str) -> bool:
        """Concatenate the table's small batches into big ones; False if nothing to do.

        Only the batches after the leading run of full-size ones are merged, so each row is
        copied about once, not again at every compaction of a growing day. Ingest only
        appends, so the slice read under the lock is still in place when the merged batches
        replace it, unless a spill removed it meanwhile (checked by identity).
        """
        data = self.tables[table]
        with self.lock:
            start = 0
            while start < len(data.batches) and _done(data.batches[start]):
                start += 1
            end = len(data.batches)
            if end - start < COMPACT_AFTER_BATCHES:
                return False
            small = data.batches[start:end]
        merged = intern(plain_table(small, data.schema).combine_chunks())
        new = merged.to_batches(max_chunksize=COMPACT_ROWS)
        with self.lock:
            if len(data.batches) >= end and data.batches[start] is small[0]:
                data.batches[start:end] = new
                data.nbytes += sum(b.nbytes for b in new) - sum(b.nbytes for b in small)
                return True
        return False

    def spill(self, table: str) -> tuple[list[pa.RecordBatch], int]:
        """The in-memory batches of ``table`` and the seq they cover, to write as a chunk."""
        data = self.tables[table]
        with self.lock:
            return list(data.batches), data.seq

    def spilled(self, chunk: Chunk, batches: list[pa.RecordBatch]) -> None:
        """``batches`` (a prefix of the list) are now in ``chunk``: drop them from memory.

        The chunk and the removal happen in one locked step, so no snapshot sees the rows
        twice or not at all.
        """
        data = self.tables[chunk.table]
        rows = sum(b.num_rows for b in batches)
        nbytes = sum(b.nbytes for b in batches)
        with self.lock:
            # Compaction may have merged the prefix meanwhile: drop by row count instead.
            remaining = rows
            while remaining > 0 and data.batches:
                first = data.batches[0]
                if first.num_rows <= remaining:
                    data.batches.pop(0)
                    remaining -= first.num_rows
                else:
                    data.batches[0] = first.slice(remaining)
                    remaining = 0
            data.chunks.append(chunk)
            data.rows -= rows
            data.nbytes = max(0, data.nbytes - nbytes)


def _done(batch: pa.RecordBatch) -> bool:
    """Compacted for good: full size and interned (a big batch from ingest is not)."""
    return batch.num_rows >= COMPACT_ROWS and is_interned(batch)


class Store:
    """The days the RDB holds: the live one and any still being written down."""

    def __init__(self, schemas: dict[str, TableSchema], date: dt.date) -> None:
        self.schemas = schemas
        self.lock = threading.Lock()
        self.live = Day(date, schemas, self.lock)
        self.old: dict[dt.date, Day] = {}
        self.seq = 0
        self.payload_records = 0

    def upd(self, updates: dict[str, tuple[list[bytes], int]]) -> None:
        """Append ``{table: (Arrow IPC payloads, last seq)}`` to the live day, atomically.

        Decoding happens before the lock; the appends of all tables happen under one lock
        hold, so a snapshot never sees one table of a message group without the others.
        """
        decoded = {t: (decode_payloads(p), seq) for t, (p, seq) in updates.items()}
        with self.lock:
            day = self.live
            for table, (batches, seq) in decoded.items():
                day.append_locked(table, batches, seq)
                self.seq = max(self.seq, seq)
        self.payload_records += sum(len(p) for p, _ in updates.values())

    def roll(self, ended: dt.date, next_date: dt.date, seq: int) -> Day:
        """End of day: the live day moves to ``old`` (still queryable); a new one starts."""
        new = Day(next_date, self.schemas, self.lock)
        new.start_seq = seq
        with self.lock:
            old = self.live
            old.state = "writing"
            old.end_seq = seq
            self.old[ended] = old
            self.live = new
            self.seq = max(self.seq, seq)
        return old

    def drop(self, date: dt.date) -> None:
        """The HDB serves ``date`` now: forget it (one locked step, see ``rdb.handover``)."""
        with self.lock:
            self.old.pop(date, None)

    def days(self) -> list[Day]:
        with self.lock:
            return [*self.old.values(), self.live]

    def snapshot(self) -> Snapshot:
        with self.lock:
            days = [*self.old.values(), self.live]
            return Snapshot(
                {d.date: d.view() for d in days},
                {d.date: d.state for d in days},
                self.seq,
            )

    def dates(self) -> list[dt.date]:
        with self.lock:
            return sorted([*self.old, self.live.date])
