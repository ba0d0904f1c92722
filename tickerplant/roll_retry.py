"""An end of day that cannot open the next session's journal: the session goes on, retried.

Opening the next journal file is the one step of a roll that depends on the world outside
the tickerplant: no file descriptor left (EMFILE, with every descriptor held by client
connections), a full or read-only disk, permissions. The tickerplant opens it before it
ends anything, so a failure changes nothing: the current session goes on in its journal
(batches are journaled, published and acknowledged as usual, so nothing acknowledged is
lost), the error is logged and counted, and the roll is tried again every ``RETRY_S``
until the file opens. The end of day then comes late: rows received meanwhile belong to
the session that was due to end, and its end-of-day record follows them.

Before, the failed open raised out of the tickerplant's loop and stopped the process,
after the old journal had been closed with its end-of-day record.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

log = logging.getLogger(__name__)

RETRY_S = 1.0  # how often a roll that failed is tried again
LOG_EVERY_S = 60.0  # and how often a failure that goes on is logged again


class PendingRoll:
    """The roll that could not open its journal yet, when to try again, and what failed."""

    def __init__(self) -> None:
        self.target: dt.date | None = None  # the session it would start
        self.error: str | None = None  # the last failure, for STATS and the ROLL reply
        self.failures = 0  # in all, since start
        self._retry_at = 0.0
        self._next_log = 0.0
        self._unlogged = 0

    @property
    def waiting(self) -> bool:
        return self.target is not None

    def due(self) -> dt.date | None:
        """The session to roll to, when a retry is due."""
        if self.target is None or time.monotonic() < self._retry_at:
            return None
        return self.target

    def failed(self, session: dt.date, target: dt.date, exc: OSError) -> str:
        """Note a failed open of session ``target``'s journal; returns the error to report."""
        now = time.monotonic()
        self.target = target
        self.failures += 1
        self._unlogged += 1
        self._retry_at = now + RETRY_S
        self.error = (
            f"cannot open the journal of session {target} ({exc}): session {session} goes "
            f"on in its own journal, and the roll is tried again every {RETRY_S:g} s"
        )
        if now >= self._next_log:
            log.error(
                "end of day %s: %s (%d failed attempt(s))", session, self.error, self._unlogged
            )
            self._unlogged = 0
            self._next_log = now + LOG_EVERY_S
        return self.error

    def succeeded(self) -> None:
        """The journal opened: log the recovery if it had failed before."""
        if self.target is not None:
            log.warning(
                "the journal of session %s opened after %d failed attempt(s)",
                self.target,
                self.failures,
            )
        self.target = self.error = None
        self._next_log = 0.0
        self._unlogged = 0
