"""Execution reports on their way to FIX sessions, sent by whichever thread made them.

Reports are laid out on the order stream's thread (``FixAcceptor._on_event``) while the
order is in the state the event left it in. Handing each to the FIX engine's thread to send
cost a wake-up of that thread and a turn at the interpreter lock per report: ~0.1 ms at the
median on an idle machine, milliseconds on a loaded one, on every NewOrderSingle's round
trip. So a report is sent at once by the thread that made it when that cannot wait: the
session's socket is a plain one whose send buffer has room (a report is a few hundred
bytes), no earlier report is still queued (they go out in the order they were made), and
the previous report was made at least ``QUIET_S`` before: a report alone, as a round trip
sees it. Otherwise (a burst, a slow reader, TLS, a queue already there) it goes to the
engine's thread as before: in a burst that thread's writes (encode, store, send: ~60-100 µs
a report) run beside the order stream's next events instead of after them, which keeps
a session's sustained rate (8k/s rather than 4k/s here), and a stalled client never holds
up the order stream.

``Session.send`` takes the session's lock, so a report and the engine's own messages
(heartbeats, resends) never interleave their sequence numbers and bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from fix.codec import Field
from fix.engine import Engine
from fix.session import Session

log = logging.getLogger(__name__)

QUIET_S = 0.0005  # a report this long after the one before is sent at once, if it can be


class ReportOutbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._queue: deque[tuple[Session, str, list[Field]]] = deque()
        self._draining = False  # the engine's thread is sending a report it took off the queue
        self._last_at = 0.0  # when the latest report was made (monotonic)
        self.sent_at_once = 0  # counters for tests and benchmarks
        self.handed_off = 0

    def send(self, session: Session, body: list[Field], msg_type: str = "8") -> None:
        """Send now if that cannot block, else queue it for the engine's thread."""
        with self._lock:
            now = time.monotonic()
            alone, self._last_at = now - self._last_at >= QUIET_S, now
            # The session's lock only if free (or this thread's): the engine's thread takes
            # it before this one's, so waiting for it here could deadlock.
            if (
                alone
                and not self._queue
                and not self._draining
                and session.lock.acquire(blocking=False)
            ):
                try:
                    if session.writable_now():
                        # Under both locks: the socket has room, so this is one write
                        # that does not wait, and a concurrent report follows it in order.
                        session.send(msg_type, body)
                        self.sent_at_once += 1
                        return
                finally:
                    session.lock.release()
            first = not self._queue
            self._queue.append((session, msg_type, body))
            self.handed_off += 1
        if first:
            self._engine.call_soon(self._drain)

    def _drain(self) -> None:
        """On the engine's thread: the queued reports, in order, each sent outside the lock
        (a slow client blocks this thread only, as any FIX write does)."""
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                session, msg_type, body = self._queue.popleft()
                self._draining = True
            try:
                session.send(msg_type, body)
            except Exception:  # the next reports still go out
                log.exception("fix: execution report to %s not sent", session.settings.key)
