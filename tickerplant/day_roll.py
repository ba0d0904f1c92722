"""The tickerplant's end of day: rolling the session at the roll time, or when asked.

A part of ``server.Tickerplant`` (its base class), kept apart so that each file stays one
readable size; it uses the journal, the fan-out and the commit of the main loop's thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from tickerplant.clock import RollDecision, decide_roll
from tickerplant.protocol import KIND_EOD
from tickerplant.roll_retry import PendingRoll

if TYPE_CHECKING:
    from tickdb.config import TickerplantConfig
    from tickerplant.clock import Clock, RollCalendar
    from tickerplant.journal import JournalWriter
    from tickerplant.pubsub import Fanout, Outgoing
    from tickerplant.replication import Replicator
    from tickerplant.wakeup import SocketWait

log = logging.getLogger("tickerplant.server")


class DayRoll:
    if TYPE_CHECKING:  # what it uses of the Tickerplant
        tp: TickerplantConfig
        clock: Clock
        calendar: RollCalendar
        counters: Any
        session: dt.date
        session_start_seq: int
        seq: int
        committed_seq: int
        journal: JournalWriter
        fanout: Fanout
        _roll_at: tuple[dt.date | None, int]
        pending_roll: PendingRoll
        _outgoing: list[Outgoing]
        _wait: SocketWait
        replication: Replicator | None

        def _flush_pending(self) -> None: ...
        def _commit(self) -> None: ...
        def _open_journal(self, session: dt.date) -> JournalWriter: ...
        def _append(
            self, kind: int, table: str, origins: Any, payload: bytes, ts_recv: int
        ) -> None: ...

    def _check_roll(self) -> None:
        if self.pending_roll.waiting:  # a roll whose journal did not open: retry it, only
            if (target := self.pending_roll.due()) is not None:
                self._roll(target)
            return
        now = self.clock.now_ns()
        if self._roll_at[0] != self.session:  # zone arithmetic once per session, not per check
            self._roll_at = (self.session, self.calendar.roll_ns(self.session))
        if now < self._roll_at[1]:
            return
        decision = decide_roll(self.calendar, self.session, now)
        if decision is RollDecision.ROLL:
            self._roll(self.session + dt.timedelta(days=1))
        elif decision is RollDecision.REFUSE_JUMP:
            self.counters.clock_jumps_refused += 1
            if (
                self.counters.clock_jumps_refused == 1
                or self.counters.clock_jumps_refused % 1200 == 0
            ):
                log.error(
                    "clock jumped more than a day past the end of session %s; not "
                    "rolling through missed days. Fix the clock, or roll explicitly "
                    "with `tickdb tp roll`.",
                    self.session,
                )

    def _forced_roll(self) -> str | None:
        target = max(
            self.calendar.session_of(self.clock.now_ns()), self.session + dt.timedelta(days=1)
        )
        return self._roll(target)

    def _roll(self, next_session: dt.date) -> str | None:
        """End the session; None, or why not (the session goes on; ``roll_retry``)."""
        if self.tp.mode == "batched":
            self._flush_pending()
        self._commit()
        # The next journal first: if it cannot be opened, nothing has ended yet.
        try:
            journal = self._open_journal(next_session)
        except OSError as exc:
            self.counters.roll_failures += 1
            return self.pending_roll.failed(self.session, next_session, exc)
        self.pending_roll.succeeded()
        ended = self.session
        self._append(KIND_EOD, "", (), ended.isoformat().encode(), self.clock.now_ns())
        self.journal.close()
        if self.replication is not None:  # published once the standby has it (sync)
            self.replication.hold(self.seq, self._outgoing, {})
        else:
            self.committed_seq = self.seq
            self.fanout.publish(self._outgoing)
            self._wait.sent_on_pub()
        self._outgoing = []
        self.session = next_session
        self.session_start_seq = self.seq
        self.journal = journal
        self.counters.rolls += 1
        log.info("end of day %s at seq %d; new session %s", ended, self.seq, next_session)
        return None
