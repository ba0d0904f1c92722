"""Background upkeep of the live day: compaction, and spilling past the memory cap.

Compaction merges small batches (see ``Day.compact``). Past ``memory_limit_mb`` the biggest
tables of the live day are written to intraday chunks (``rdb.hdbio.write_chunk``), oldest
rows first, until memory is under half the cap; queries then read chunks and memory
together, and the EOD write-down merges them. Both run here, never on the ingest thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from rdb.hdbio import write_chunk
from rdb.recovery import RdbState
from rdb.store import Store

log = logging.getLogger("tickdb.rdb")

_INTERVAL_S = 0.2


class Maintenance:
    def __init__(
        self, store: Store, state: RdbState, *, intraday_root: Path, memory_limit_mb: int
    ) -> None:
        self.store = store
        self.state = state
        self.intraday_root = intraday_root
        self.limit_bytes = memory_limit_mb * 1024 * 1024
        self.compactions = 0
        self.spills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdb-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(_INTERVAL_S):
            try:
                self.tick()
            except Exception:
                log.exception("maintenance failed; will retry")

    def tick(self) -> None:
        for day in self.store.days():
            for table in day.tables:
                if day.compact(table):
                    self.compactions += 1
        self.spill_if_needed()

    def spill_if_needed(self) -> None:
        day = self.store.live
        if day.state != "live" or day.nbytes <= self.limit_bytes:
            return
        target = self.limit_bytes // 2
        for table in sorted(day.tables, key=lambda t: -day.tables[t].nbytes):
            if day.nbytes <= target:
                break
            batches, seq = day.spill(table)
            if not batches:
                continue
            schema = self.store.schemas[table]
            chunk = write_chunk(self.state, self.intraday_root, schema, day.date, seq, batches)
            day.spilled(chunk, batches)
            self.spills += 1
            log.info(
                "memory cap: wrote %d rows of %s (to seq %d) to %s",
                chunk.rows,
                table,
                seq,
                chunk.path,
            )
