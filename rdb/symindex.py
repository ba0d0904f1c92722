"""Grouped syms: where each sym's rows are in a compacted batch, kdb+'s ``g#`` on an RDB.

A tick RDB puts the grouped attribute on ``sym`` so ``select from trade where sym=`X``
reads only X's rows instead of scanning the day. Here the index of a compacted (interned)
batch is the batch's row positions ordered by sym code (stable, so each sym's positions
ascend) and where each code's run starts.

A query whose sender promises the syms it reads (``QueryRequest.syms``: the gateway proves
it from the query's WHERE clauses) then registers, per table, only those syms' rows, in
arrival order, and DuckDB scans thousands of rows instead of the day: a one-sym filter
over 833k trades takes ~1.7 ms instead of ~3.4 (``docs/rdb.md``). The query keeps its own
WHERE clause, so the result is the same as over the whole table. Plain batches (appended
since the last compaction) are filtered instead.

Indexes (4 bytes a row) are built on a query thread, the first time a promised query reads
a batch, and kept by that thread until one of its promised queries finds the batch gone
from the table (merged again, spilled, written down), as its scan registrations are. Not in
compaction: building them there cost nothing in CPU but handed the GIL back and forth with
ingest under load, and doubled the RDBs' p99 ingest lag in the 100k rows/s load test
(``docs/rdb.md``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SYM = 1  # ``sym`` is column 1 of every table (``tickdb.schema``)


@dataclass(frozen=True, eq=False)
class SymGroups:
    """Row positions of one interned batch grouped by sym."""

    batch: pa.RecordBatch  # held so the ``id`` this is filed under stays this batch's
    order: np.ndarray  # int32 positions, grouped by sym code, ascending within a group
    starts: np.ndarray  # code c's positions are order[starts[c]:starts[c + 1]]
    codes: dict[str, int]

    @classmethod
    def of(cls, batch: pa.RecordBatch) -> SymGroups:
        column = batch.column(SYM)
        size = len(column.dictionary)
        # A null sym gets the code after the last one: grouped last, never asked for.
        codes = column.indices.fill_null(size) if column.null_count else column.indices
        indices = codes.to_numpy(zero_copy_only=False)
        # A stable sort keeps each sym's rows in arrival order; int16 codes (nearly every
        # day: fewer than 32k distinct syms per 128k-row batch) take numpy's radix sort.
        keys = indices.astype(np.int16) if size < np.iinfo(np.int16).max else indices
        order = np.argsort(keys, kind="stable").astype(np.int32)
        starts = np.concatenate(([0], np.cumsum(np.bincount(indices, minlength=size + 1))))
        return cls(
            batch, order, starts, {s: i for i, s in enumerate(column.dictionary.to_pylist())}
        )

    def rows(self, syms: Collection[str]) -> np.ndarray:
        """Positions of the rows whose sym is one of ``syms``, ascending."""
        found = [self.codes[s] for s in syms if s in self.codes]
        runs = [self.order[self.starts[c] : self.starts[c + 1]] for c in found]
        if len(runs) == 1:
            return runs[0]
        return np.sort(np.concatenate(runs)) if runs else np.empty(0, np.int32)


class GroupCache:
    """One query thread's indexes, per scan (a table's batches of one date, one kind)."""

    def __init__(self) -> None:
        self._scans: dict[str, dict[int, SymGroups]] = {}
        self.built = 0  # indexes built, for tests

    def select(
        self, scan: str, batches: Sequence[pa.RecordBatch], syms: Collection[str]
    ) -> list[pa.RecordBatch]:
        """The rows of ``batches`` whose sym is one of ``syms``, in their order.

        Interned batches are read through their index (built now if the scan's last
        selection did not have it); the scan then keeps only these batches' indexes, so a
        batch gone from the table (merged again, spilled, written down) is let go.
        """
        held = self._scans.get(scan, {})
        kept: dict[int, SymGroups] = {}
        for batch in batches:
            if pa.types.is_dictionary(batch.schema[SYM].type):
                index = held.get(id(batch))
                if index is None or index.batch is not batch:
                    index = SymGroups.of(batch)
                    self.built += 1
                kept[id(batch)] = index
        self._scans[scan] = kept
        return select(batches, kept, syms)

    def forget(self, scans: Collection[str]) -> None:
        for scan in scans:
            self._scans.pop(scan, None)


def select(
    batches: Sequence[pa.RecordBatch],
    groups: Mapping[int, SymGroups],
    syms: Collection[str],
) -> list[pa.RecordBatch]:
    """The rows of ``batches`` whose sym is one of ``syms``, in their order (through
    ``groups``, by ``id`` of batch, where it has the batch's index; else filtered)."""
    wanted: pa.Array | None = None
    out = []
    for batch in batches:
        index = groups.get(id(batch))
        if index is not None and index.batch is batch:
            out.append(batch.take(pa.array(index.rows(syms), pa.int32())))
            continue
        if wanted is None:
            wanted = pa.array(sorted(syms), pa.string())
        column = batch.column(SYM)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        out.append(batch.filter(pc.is_in(column, value_set=wanted)))
    return out
