"""Grouped syms: where each sym's rows are in a compacted batch, kdb+'s ``g#`` on an RDB.

A tick RDB puts the grouped attribute on ``sym`` so ``select from trade where sym=`X``
reads only X's rows instead of scanning the day. Compacted batches (``rdb.store``) get the
same index, built once off the ingest path: the batch's row positions ordered by interned
sym code (stable, so each sym's positions ascend) and where each code's run starts.

A query whose sender promises the syms it reads (``QueryRequest.syms``: the gateway proves
it from the query's WHERE clauses) then registers, per table, only those syms' rows, in
arrival order, and DuckDB scans thousands of rows instead of the day: a one-sym filter
over 833k trades takes ~1.7 ms instead of ~3.4 (``docs/rdb.md``). The query keeps its own
WHERE clause, so the result is the same as over the whole table. Batches without an index
(plain ones from ingest, a slice left by a spill) are filtered instead.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SYM = 1  # ``sym`` is column 1 of every table (``tickerplant.schema``)


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
        indices = column.indices.to_numpy(zero_copy_only=False)
        size = len(column.dictionary)
        # A stable sort keeps each sym's rows in arrival order; int16 codes (nearly every
        # day: fewer than 32k distinct syms per 128k-row batch) take numpy's radix sort.
        keys = indices.astype(np.int16) if size <= np.iinfo(np.int16).max else indices
        order = np.argsort(keys, kind="stable").astype(np.int32)
        starts = np.concatenate(([0], np.cumsum(np.bincount(indices, minlength=size))))
        codes = {sym: i for i, sym in enumerate(column.dictionary.to_pylist())}
        return cls(batch, order, starts, codes)

    @property
    def nbytes(self) -> int:
        return int(self.order.nbytes + self.starts.nbytes)

    def rows(self, syms: Collection[str]) -> np.ndarray:
        """Positions of the rows whose sym is one of ``syms``, ascending."""
        found = [self.codes[s] for s in syms if s in self.codes]
        runs = [self.order[self.starts[c] : self.starts[c + 1]] for c in found]
        if len(runs) == 1:
            return runs[0]
        return np.sort(np.concatenate(runs)) if runs else np.empty(0, np.int32)


def group(batches: Sequence[pa.RecordBatch]) -> dict[int, SymGroups]:
    """The index of each interned batch, filed under its ``id`` (``TableData.groups``)."""
    return {id(b): SymGroups.of(b) for b in batches if pa.types.is_dictionary(b.schema[SYM].type)}


def select(
    batches: Sequence[pa.RecordBatch],
    groups: Mapping[int, SymGroups],
    syms: Collection[str],
) -> list[pa.RecordBatch]:
    """The rows of ``batches`` whose sym is one of ``syms``, in their order."""
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
