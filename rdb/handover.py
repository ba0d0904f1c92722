"""End-of-day write-down and the handover of a date from the RDB to the HDBs.

At ``EndOfDay(D)`` ingest swaps the day out (``Store.roll``) and carries on with the next
day at once; this worker then, in the background:

1. writes each table of D to ``<hdb>/<table>/date=D/part-k-of-n.parquet`` (intraday chunks
   and in-memory rows merged and sorted by DuckDB, atomic rename);
2. sends ``RELOAD`` to every HDB given with ``--hdb`` and waits until each one's INFO says
   it serves D for those tables (retrying until it does: an HDB that is down delays the
   handover, it never loses rows);
3. drops D from memory, in one locked step, and only then deletes D's intraday chunks.

Until step 3 the RDB answers for D (``rdb_dates``/``info()["dates"]`` list it). So the rule
for a reader is: *for each date, ask the RDB if it lists the date, else the HDB*. Because
the RDB stops listing D only after every HDB serves D, at every instant exactly one of them
answers for D, and it answers with all of D's rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hdb.intraday import remove_chunks
from queries.service import QueryClient, QueryError
from rdb.hdbio import reload_and_check, write_partition
from rdb.recovery import RdbState
from rdb.store import Day, Store
from tickdb.types import Shard

log = logging.getLogger("tickdb.rdb")

_RETRY_S = 0.5


class Handover:
    def __init__(
        self,
        store: Store,
        state: RdbState,
        *,
        hdb_dir: Path,
        intraday_root: Path,
        shard: Shard,
        hdb_addresses: list[str],
        memory_limit_mb: int,
        ack_timeout_s: float = 10.0,
    ) -> None:
        self.store = store
        self.state = state
        self.hdb_dir = hdb_dir
        self.intraday_root = intraday_root
        self.shard = shard
        self.hdb_addresses = hdb_addresses
        self.memory_limit_mb = memory_limit_mb
        self.ack_timeout_s = ack_timeout_s
        self._queue: queue.Queue[Day | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rdb-writedown", daemon=True)
        # Counters for info() and tests.
        self.written: list[str] = []
        self.last_error: str | None = None
        self.on_progress: Callable[[str], None] = lambda message: log.info("%s", message)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(10)

    def submit(self, day: Day) -> None:
        self._queue.put(day)

    def busy(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while (day := self._queue.get()) is not None:
            while not self._stop.is_set():
                try:
                    self.complete(day)
                    break
                except Exception as exc:  # disk full, HDB away: retry, never drop the day
                    self.last_error = f"{day.date}: {type(exc).__name__}: {exc}"
                    log.exception("write-down of %s failed; retrying", day.date)
                    self._stop.wait(_RETRY_S * 4)

    def complete(self, day: Day) -> None:
        started = time.monotonic()
        tables = self.write(day)
        self.notify(day.date, tables)
        self.store.drop(day.date)
        self.state.done(day.date)
        for table in self.store.schemas:
            remove_chunks(self.intraday_root, table, day.date)
        self.written.append(day.date.isoformat())
        self.on_progress(f"{day.date}: handed over to the HDB in {time.monotonic() - started:.2f}s")

    def write(self, day: Day) -> list[str]:
        """Write every table of ``day`` (empty ones too: every table has every date)."""
        with self.store.lock:
            views = day.view()
        written = []
        for table, view in views.items():
            result = write_partition(
                self.hdb_dir,
                self.store.schemas[table],
                day.date,
                self.shard,
                list(view.chunks),
                list(view.batches),
                memory_limit_mb=self.memory_limit_mb,
            )
            written.append(table)
            self.on_progress(f"{day.date}: wrote {result.rows} rows of {table} to {result.path}")
        return written

    def notify(self, date: dt.date, tables: list[str]) -> None:
        """RELOAD every HDB and wait until each serves ``date`` for ``tables``."""
        for address in self.hdb_addresses:
            client = QueryClient(address, timeout_s=self.ack_timeout_s)
            try:
                while not self._stop.is_set():
                    try:
                        if reload_and_check(client, date, tables):
                            self.on_progress(f"{date}: HDB {address} serves it")
                            break
                    except QueryError as exc:
                        log.warning("HDB %s not ready for %s: %s", address, date, exc)
                    self._stop.wait(_RETRY_S)
            finally:
                client.close()
        if self._stop.is_set():
            raise RuntimeError("stopping before the HDBs acknowledged")
