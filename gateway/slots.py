"""A bounded number of requests in flight per backend process.

At most ``in_flight`` requests are outstanding per replica; the rest wait here, under the
query's deadline. A backend runs only a couple of queries at a time anyway (its worker
threads); a deeper queue on its side only costs it GIL time (receiving, queueing, expiring
requests) that an RDB's ingest thread needs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gateway.errors import QueryError
from queries.service_protocol import SymScope


class BackendSlots:
    """A bounded number of requests in flight per backend; waiters keep their deadline."""

    def __init__(self, in_flight: int) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self.in_flight = in_flight
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()
        # Counters, plain attributes for tests and metrics.
        self.waited = 0
        self.expired = 0

    def _slot(self, name: str) -> threading.BoundedSemaphore:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                slot = self._slots[name] = threading.BoundedSemaphore(self.in_flight)
            return slot

    def query(
        self,
        name: str,
        backend: Any,
        sql: str,
        *,
        deadline: float,
        max_rows: int,
        abandoned: threading.Event,
        syms: SymScope | None = None,
    ) -> Any:
        slot = self._slot(name)
        if not slot.acquire(blocking=False):
            self.waited += 1
            if not slot.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
                self.expired += 1
                raise QueryError(
                    "timeout",
                    f"waited the whole time limit for one of {self.in_flight} request slots "
                    f"of {name}",
                )
        try:
            if abandoned.is_set():  # the query already failed elsewhere: do not send it
                raise QueryError("unavailable", "query abandoned")
            remaining = max(deadline - time.monotonic(), 0.001)
            return backend.query(sql, timeout_s=remaining, max_rows=max_rows, syms=syms)
        finally:
            slot.release()
