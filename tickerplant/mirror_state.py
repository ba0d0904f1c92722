"""What a takeover needs from the journal, kept current by the standby as it mirrors.

A tickerplant that starts on a journal scans the session's file to learn where the sequence
and the session stand, which publisher batches it already holds (the exactly-once ledger)
and where replay may seek (the journal index). A standby has seen every one of those records
as it copied them (``tickerplant.mirror`` checks each one), so it keeps the same state as it
goes: at a takeover the new primary starts from it instead of reading the day again, which
on a long day (hundreds of MB) took seconds on a loaded machine.

The state is exactly what ``tickerplant.recovery`` would rebuild from the copy, for the common
case: the copy's session is today's and holds at least one record. Anything else (a roll
missed while the pair was down, an empty file just opened by a roll) goes through the
ordinary recovery.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from tickerplant.dedup import PublisherLedger
from tickerplant.journal import INDEX_STRIDE


@dataclass
class MirroredSession:
    """One session file's recovery state, record by record."""

    path: Path
    session: dt.date
    ledger: PublisherLedger = field(default_factory=PublisherLedger)
    first_seq: int | None = None
    last_seq: int | None = None
    index_seqs: list[int] = field(default_factory=list)
    index_offsets: list[int] = field(default_factory=list)
    _last_index_at: int = -INDEX_STRIDE

    def take(self, offset: int, seq: int, body: memoryview | bytes) -> None:
        """A checked record written at ``offset`` of the file: as a start-up scan sees it."""
        self.ledger.restore_record(body)
        if self.first_seq is None:
            self.first_seq = seq
        self.last_seq = seq
        # The points ``journal._build_points`` would find: one a stride apart.
        if offset - self._last_index_at >= INDEX_STRIDE:
            self.index_seqs.append(seq)
            self.index_offsets.append(offset)
            self._last_index_at = offset
