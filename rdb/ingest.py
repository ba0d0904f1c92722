"""The ingest loop: tickerplant messages in seq order into the store, and end of day.

The loop takes every message that is already waiting (up to ``MAX_GROUP``) and applies the
group in one ``Store.upd``, so replaying a journal costs one decode per table per group
rather than one per record. An ``EndOfDay`` closes the group: rows before it belong to the
day that ends, rows after it to the next.

On restart, rows already in intraday chunk files are not applied twice: ``covered(table,
seq)`` says so from the seq each chunk records (see ``rdb.recovery``).

``current`` turns true once the RDB has applied everything the tickerplant had when it
subscribed: the subscriber fetched that backlog by replay before ingest started and hands
it over before any live message, so the backlog is applied once a message past it is
applied, or once the subscriber has nothing more to give. Until then the RDB answers for
part of the day only, and the gateway sends it no queries (``docs/architecture.md``,
Failover).

``IngestLag`` measures how far behind the tickerplant the applied rows are, from the
tickerplant's own receive stamp (``ts_recv``) of each applied record: ``info()`` reports it,
so a load test reads lag from the RDB itself rather than by querying it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from rdb.store import Day, Store
from tickdb.failpoints import hold_file, wait_released
from tickerplant.subscriber import EndOfDay, Subscriber, Update

log = logging.getLogger("tickdb.rdb")

MAX_GROUP = 20_000
# poll() with a timeout under a millisecond checks the socket without waiting.
_NO_WAIT_S = 0.0005


LAG_WINDOW_S = 5.0


class IngestLag:
    """Ingest lag: time applied minus ``ts_recv`` (the tickerplant's receive stamp).

    Both clocks are wall-clock ns since the epoch on the tickerplant's and this host; on one
    host they are the same clock. ``current_ms()`` is now minus the ``ts_recv`` of the last
    applied record, so a stalled ingest shows up while it stalls (it also grows while the
    feed is quiet: read it with ``seq`` against ``tp_seq``). ``p99_ms()`` is over the records
    applied in the last ``window_s`` seconds, each measured when it was applied.
    """

    def __init__(
        self, window_s: float = LAG_WINDOW_S, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.window_ns = int(window_s * 1e9)
        self.clock_ns = clock_ns
        self.last_ts_recv: int | None = None
        self._samples: deque[tuple[int, int]] = deque()  # (applied at, lag), both ns
        self._lock = threading.Lock()

    def applied(self, stamps: list[int]) -> None:
        """Records with these ``ts_recv`` stamps (in seq order) are now visible to queries."""
        if not stamps:
            return
        now = self.clock_ns()
        with self._lock:
            self._samples.extend((now, now - ts) for ts in stamps)
            self.last_ts_recv = stamps[-1]
            self._prune(now)

    def _prune(self, now: int) -> None:
        horizon = now - self.window_ns
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def current_ms(self) -> float | None:
        if self.last_ts_recv is None:
            return None
        return (self.clock_ns() - self.last_ts_recv) / 1e6

    def p99_ms(self) -> float | None:
        with self._lock:
            self._prune(self.clock_ns())
            lags = sorted(lag for _, lag in self._samples)
        if not lags:
            return None
        return lags[max(0, math.ceil(0.99 * len(lags)) - 1)] / 1e6


class Ingest:
    def __init__(
        self,
        store: Store,
        subscriber: Subscriber,
        on_roll: Callable[[Day, dt.date], None],
        covered: Callable[[str, int], bool] = lambda table, seq: False,
        catch_up_to: int | None = None,
    ) -> None:
        """``catch_up_to``: the tickerplant's seq when we subscribed, if the subscriber has a
        backlog to hand over first (None: current from the start)."""
        self.store = store
        self.subscriber = subscriber
        self.on_roll = on_roll
        self.covered = covered
        self.applied_seq = subscriber.last_seq if subscriber.last_seq else 0
        self.records = 0
        self.skipped = 0
        self.rolls = 0
        self.last_message = time.time()
        self.lag = IngestLag()
        self.catch_up_to = 0 if catch_up_to is None else catch_up_to
        self.current = catch_up_to is None
        self._hold = hold_file("rdb_replay")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rdb-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step(0.1)
        except BaseException as exc:  # the process exits and restarts by replay
            log.exception("ingest failed")
            self.error = exc

    def step(self, timeout_s: float) -> int:
        """Apply what arrives within ``timeout_s``; returns the number of messages."""
        if self._hold is not None and not self.current:
            wait_released("rdb_replay", self._hold, self._stop)
        first = self.subscriber.poll(timeout_s)
        if first is None:
            # Idle: everything up to the subscriber's position has been applied.
            self.applied_seq = max(self.applied_seq, self.subscriber.last_seq)
            if self.subscriber.last_seq >= self.catch_up_to:
                self.current = True
            return 0
        group = [first]
        while len(group) < MAX_GROUP:
            message = self.subscriber.poll(_NO_WAIT_S)
            if message is None:
                break
            group.append(message)
        self.apply(group)
        self.last_message = time.time()
        return len(group)

    def apply(self, group: list[Update | EndOfDay]) -> None:
        pending: dict[str, tuple[list[bytes], int]] = {}
        stamps: list[int] = []
        for message in group:
            if isinstance(message, Update):
                if self.covered(message.table, message.seq):
                    self.skipped += 1
                    continue
                payloads, _ = pending.get(message.table, ([], 0))
                payloads.append(message.payload)
                pending[message.table] = (payloads, message.seq)
                stamps.append(message.ts_recv)
                self.records += 1
            else:
                if pending:
                    self.store.upd(pending)
                    pending = {}
                self._roll(message)
            self.applied_seq = message.seq
        if pending:
            self.store.upd(pending)
        self.lag.applied(stamps)
        if group and group[-1].seq >= self.catch_up_to:
            self.current = True

    def _roll(self, eod: EndOfDay) -> None:
        live = self.store.live
        if live.date != eod.date:
            # The EOD record names the day that ended; trust it over our provisional date
            # (a forced roll or a missed day can skip calendar dates).
            log.info("session %s is really %s; relabelling", live.date, eod.date)
            with self.store.lock:
                live.date = eod.date
        old = self.store.roll(eod.date, eod.date + dt.timedelta(days=1), eod.seq)
        self.rolls += 1
        log.info(
            "end of day %s at seq %d: %d rows to write down",
            eod.date,
            eod.seq,
            sum(t.rows for t in old.tables.values()),
        )
        self.on_roll(old, self.store.live.date)
