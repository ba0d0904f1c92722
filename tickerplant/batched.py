"""Batched mode's waiting room: validated batches held for the timer, per table, then
coalesced into records of up to about ``COALESCE_BYTES``.

Small batches are what batching is for; a batch that is already large goes out as it
came, and the bound keeps one record (and one subscriber message) modest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from tickdb.schema import TableSchema
from tickerplant.dedup import last_batch_per_publisher
from tickerplant.ingest import Validated, coalesce

COALESCE_BYTES = 1 << 20  # records of about this size at most

Origins = list[tuple[bytes, int]]  # (publisher id, batch number) of each message in a part


@dataclass
class Pending:
    """Validated batches waiting for the timer, per table, with the messages each came in."""

    parts: dict[str, list[Validated]] = field(default_factory=dict)
    origins: dict[str, list[Origins]] = field(default_factory=dict)  # per part

    def add(self, table: str, validated: Validated, origins: Origins) -> None:
        self.parts.setdefault(table, []).append(validated)
        self.origins.setdefault(table, []).append(origins)

    def records(
        self, schemas: Mapping[str, TableSchema], canonical_prefix: Callable[[str], bytes]
    ) -> Iterator[tuple[str, Origins, bytes | memoryview]]:
        """Each record to journal: its table, the last batch of each publisher in it, and
        its payload (parts of up to about ``COALESCE_BYTES`` merged)."""
        for table, parts in self.parts.items():
            origins = self.origins[table]
            start, size = 0, 0
            for i, part in enumerate(parts):
                size += len(part.payload)
                if size >= COALESCE_BYTES or i == len(parts) - 1:
                    merged = coalesce(
                        parts[start : i + 1], schemas[table].arrow, canonical_prefix(table)
                    )
                    carried = [o for group in origins[start : i + 1] for o in group]
                    yield table, last_batch_per_publisher(carried), merged
                    start, size = i + 1, 0

    def batches(self) -> Iterator[tuple[bytes, int]]:
        """Every message waiting: journaled once its records are."""
        for groups in self.origins.values():
            for group in groups:
                yield from group
