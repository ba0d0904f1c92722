"""Clocks and the end-of-day calendar, DST-safe.

A session (trading date) D runs from the local wall time ``roll_time`` on D to
``roll_time`` on D+1 in the configured zone, and is labelled by the date it starts on; with
the default roll at 00:00 that is the calendar date. Each roll instant is computed from the
date and the zone, never by adding 24 hours to the previous one, which is how DST bugs
creep in: across a clock change a session lasts 23 or 25 hours.

Components take a Clock in their constructor so tests can drive time by hand.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from enum import Enum
from typing import Protocol
from zoneinfo import ZoneInfo

NS_PER_SECOND = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class OffsetClock:
    """Real time, shifted to start at ``start_ns``: runs a process "on another day" in tests."""

    def __init__(self, start_ns: int) -> None:
        self._offset = start_ns - time.time_ns()

    def now_ns(self) -> int:
        return time.time_ns() + self._offset


class ManualClock:
    """A clock that only moves when told to: for tests of timers and the day roll."""

    def __init__(self, start_ns: int) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, ns: int) -> None:
        self._now = ns

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * NS_PER_SECOND)


def parse_roll_time(text: str) -> dt.time:
    """``HH:MM`` or ``HH:MM:SS`` in 24-hour local time."""
    try:
        parts = [int(p) for p in text.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError
        return dt.time(parts[0], parts[1], parts[2] if len(parts) == 3 else 0)
    except ValueError:
        raise ValueError(f"expected HH:MM or HH:MM:SS, got {text!r}") from None


def ns_to_datetime(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def datetime_to_ns(moment: dt.datetime) -> int:
    delta = moment.astimezone(dt.UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


@dataclass(frozen=True)
class RollCalendar:
    """Maps instants to session dates and session dates to their roll instants."""

    roll_time: dt.time
    zone: ZoneInfo

    @classmethod
    def from_settings(cls, roll_time: str, timezone: str) -> RollCalendar:
        return cls(parse_roll_time(roll_time), ZoneInfo(timezone))

    def session_start_ns(self, session: dt.date) -> int:
        """The instant the session begins: local ``roll_time`` on its date.

        A wall time that does not exist (inside a spring-forward gap) resolves to the instant
        just after the gap; an ambiguous one (fall-back) to its first occurrence.
        """
        local = dt.datetime.combine(session, self.roll_time, tzinfo=self.zone)  # fold=0
        return datetime_to_ns(local)

    def roll_ns(self, session: dt.date) -> int:
        """The instant session ``session`` ends and the next one begins."""
        return self.session_start_ns(session + dt.timedelta(days=1))

    def session_of(self, ns: int) -> dt.date:
        local = ns_to_datetime(ns).astimezone(self.zone)
        day = local.date()
        # Before today's roll instant the moment still belongs to yesterday's session.
        if ns < self.session_start_ns(day):
            day -= dt.timedelta(days=1)
        elif ns >= self.roll_ns(day):  # only reachable around DST transitions
            day += dt.timedelta(days=1)
        return day


class RollDecision(Enum):
    STAY = "stay"
    ROLL = "roll"
    REFUSE_JUMP = "refuse_jump"


def decide_roll(calendar: RollCalendar, session: dt.date, now_ns: int) -> RollDecision:
    """Whether the session should end now.

    A clock more than a whole session past the roll (a jump, or a process frozen for a day)
    is refused rather than rolled through day by day: silently fabricating empty days is
    worse than waiting for an operator. A clock that goes backwards simply stays.
    """
    if now_ns < calendar.roll_ns(session):
        return RollDecision.STAY
    if now_ns >= calendar.roll_ns(session + dt.timedelta(days=1)):
        return RollDecision.REFUSE_JUMP
    return RollDecision.ROLL
