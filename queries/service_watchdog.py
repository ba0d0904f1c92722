"""Time limits and thread priority for query workers.

One watchdog thread keeps every running query's deadline and calls ``interrupt()`` on its
connection when it passes; a guard makes sure an interrupt can never land on the next query
of a reused cursor. ``lower_thread_priority`` lets query threads yield to ingest.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time

import duckdb

log = logging.getLogger("tickdb.queries")


def lower_thread_priority(nice: int) -> bool:
    """Run the calling thread (and threads it starts later) ``nice`` steps below normal.

    On Linux a thread's nice value is its own (setpriority on its thread id) and threads it
    creates inherit it; lowering needs no privilege. Elsewhere, or if refused, nothing
    happens (False).
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:
        return False
    return True


class QueryGuard:
    """One query's time limit: interrupts its connection, never after ``finish()`` returned."""

    __slots__ = ("_con", "_lock", "done", "fired")

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._lock = threading.Lock()
        self.done = False
        self.fired = False

    def fire(self) -> bool:
        """Interrupt unless finished; True if the query still runs (so fire again later)."""
        with self._lock:
            if self.done:
                return False
            self.fired = True
            self._con.interrupt()
            return True

    def finish(self) -> None:
        with self._lock:
            self.done = True


class Watchdog:
    """One thread that interrupts every query past its deadline.

    A ``threading.Timer`` per query cost a thread start and a cancel (0.2-0.6 ms) on every
    query's path; here a query costs a heap push under a lock. DuckDB forgets an interrupt
    that lands before execution starts (while the relation is being bound), so a fired guard
    is fired again every ``REPEAT_S`` until its query is finished. Finished guards are
    dropped lazily: when they reach the top of the heap, or all at once when they outnumber
    the running ones.
    """

    REPEAT_S = 0.05

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, QueryGuard]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._running = 0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def watch(self, con: duckdb.DuckDBPyConnection, deadline: float) -> QueryGuard:
        """Interrupt ``con`` at ``deadline`` (time.monotonic()) unless finished by then."""
        guard = QueryGuard(con)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="qs-watchdog", daemon=True)
                self._thread.start()
            self._running += 1
            if len(self._heap) > 64 and len(self._heap) > 4 * self._running:
                self._heap = [e for e in self._heap if not e[2].done]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline, next(self._order), guard))
            if self._heap[0][2] is guard:
                self._cond.notify()  # earlier than what the thread sleeps towards
        return guard

    def expire_now(self, guard: QueryGuard) -> None:
        """Interrupt now (and again until finished): the server is stopping."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic(), next(self._order), guard))
            self._cond.notify()

    def finish(self, guard: QueryGuard) -> None:
        guard.finish()
        with self._cond:
            self._running -= 1

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, guard = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if guard.fire():
                    entry = (time.monotonic() + self.REPEAT_S, next(self._order), guard)
                    heapq.heappush(self._heap, entry)


# DuckDB's error prefixes, for errors that reach us wrapped (Arrow's OSError while streaming).
