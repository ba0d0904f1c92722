"""Rows per table in a day's journal: what the HDB partitions of that day must hold."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pyarrow.ipc as ipc

from tickerplant.journal import journal_path, read_journal
from tickerplant.protocol import KIND_UPD


def journal_row_counts(journal_dir: str | Path, date: dt.date) -> dict[str, int] | None:
    """Rows per table in the journal of ``date``; None when there is no journal file.

    Counts come from the Arrow batch headers, without materialising the columns. A corrupt
    journal raises ``tickerplant.journal.JournalCorrupt``.
    """
    path = journal_path(journal_dir, date)
    if not path.is_file():
        return None
    counts: Counter[str] = Counter()
    for record in read_journal(path):
        if record.kind != KIND_UPD:
            continue
        counts[record.table] += sum(batch.num_rows for batch in ipc.open_stream(record.payload))
    return dict(counts)
