"""What a restarted RDB must replay, and which rows it must not apply twice.

The RDB keeps one small state file, ``<data>/rdb/<name>/state.json``: the session dates it
holds that the HDB does not yet serve, each with the seq its session started after::

    {"pending": {"2024-01-02": 1200, "2024-01-03": 5400},
     "chunks": {"trade/2024-01-03": {"0": 4100, "1": 5000}}}

A date enters when its session starts (startup, or the EOD that begins it) and leaves once
its partition is written and every HDB acknowledged it. On restart the RDB subscribes from
the smallest start seq in the file, so a day whose write-down a crash interrupted is
replayed from the journal, written again (the write is atomic and idempotent), and handed
over; with no file it starts with the tickerplant's current session.

Intraday chunks (``hdb.intraday``: ``chunk-<n>.parquet``, published atomically) have the
last seq they hold recorded in the same file, *before* the chunk is written under the
number the writer will give it, so a chunk on disk always has its seq on record (an entry
whose chunk never appeared is ignored and overwritten by the next chunk). On replay, an
update of table T in a pending day is skipped when its seq is at or below the day's newest
chunk of T, because that chunk (and the ones before it) already hold its rows.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

from rdb.store import Chunk
from tickdb.durable import make_dirs, remove_stale_tmp, write_atomic

STATE_FILE = "state.json"


class RdbState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self.pending: dict[dt.date, int] = {}
        # "<table>/<date>" -> {chunk number: last seq it holds}
        self.chunks: dict[str, dict[int, int]] = {}
        self._lock = threading.Lock()
        remove_stale_tmp(directory)  # a save a crash interrupted: the file itself is whole
        if self.path.exists():
            raw = json.loads(self.path.read_text())
            self.pending = {dt.date.fromisoformat(d): int(s) for d, s in raw["pending"].items()}
            self.chunks = {
                key: {int(n): int(s) for n, s in numbers.items()}
                for key, numbers in raw.get("chunks", {}).items()
            }

    def save(self) -> None:
        """Replace the file durably: a crash or power loss leaves the old state or the new,
        and a chunk's seq is on disk before the chunk it describes is written."""
        with self._lock:
            make_dirs(self.directory)
            body = {
                "pending": {d.isoformat(): s for d, s in sorted(self.pending.items())},
                "chunks": self.chunks,
            }
            write_atomic(self.path, json.dumps(body))

    def begin(self, date: dt.date, start_seq: int) -> None:
        if self.pending.get(date) != start_seq:
            self.pending[date] = start_seq
            self.save()

    def done(self, date: dt.date) -> None:
        self.pending.pop(date, None)
        suffix = "/" + date.isoformat()
        for key in [k for k in self.chunks if k.endswith(suffix)]:
            del self.chunks[key]
        self.save()

    def chunk_intent(self, table: str, date: dt.date, number: int, seq: int) -> None:
        self.chunks.setdefault(f"{table}/{date.isoformat()}", {})[number] = seq
        self.save()

    def chunk_seq(self, table: str, date: dt.date, number: int) -> int | None:
        return self.chunks.get(f"{table}/{date.isoformat()}", {}).get(number)

    def resume_seq(self) -> int | None:
        return min(self.pending.values()) if self.pending else None

    def date_starting_after(self, seq: int) -> dt.date | None:
        for date, start in self.pending.items():
            if start == seq:
                return date
        return None


def find_chunks(state: RdbState, intraday_root: Path, table: str, date: dt.date) -> list[Chunk]:
    """Complete chunks of ``table`` for ``date`` with their seqs, oldest first."""
    import pyarrow.parquet as pq

    from hdb.intraday import chunk_number, list_chunks

    found = []
    for path in list_chunks(intraday_root, table, date):
        seq = state.chunk_seq(table, date, chunk_number(path))
        if seq is None:  # cannot happen: the seq is recorded before the chunk is written
            raise RuntimeError(f"intraday chunk {path} has no seq on record in {state.path}")
        found.append(Chunk(table, path, seq, pq.ParquetFile(path).metadata.num_rows))
    return found


class Coverage:
    """Per pending day and table, the seq range already held by intraday chunks."""

    def __init__(self) -> None:
        self._ranges: dict[str, list[tuple[int, int]]] = {}

    def add(self, table: str, start_seq: int, chunks: list[Chunk]) -> None:
        if chunks:
            self._ranges.setdefault(table, []).append((start_seq, max(c.seq for c in chunks)))

    def covered(self, table: str, seq: int) -> bool:
        return any(lo < seq <= hi for lo, hi in self._ranges.get(table, ()))
