"""The day roll: DST-safe, driven by an injected clock, refusing jumps of more than a day."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tickerplant.clock import (
    ManualClock,
    RollCalendar,
    RollDecision,
    datetime_to_ns,
    decide_roll,
    parse_roll_time,
)

NY = ZoneInfo("America/New_York")
HOUR = 3600 * 10**9


def at(text: str, zone: ZoneInfo = NY) -> int:
    return datetime_to_ns(dt.datetime.fromisoformat(text).replace(tzinfo=zone))


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-03-08", 23), ("2026-11-01", 25), ("2026-06-15", 24)],
)
def test_sessions_last_23_or_25_hours_across_clock_changes(day: str, hours: int) -> None:
    calendar = RollCalendar.from_settings("00:00", "America/New_York")
    session = dt.date.fromisoformat(day)
    length = calendar.roll_ns(session) - calendar.session_start_ns(session)
    assert length == hours * HOUR


def test_roll_at_17_new_york_follows_local_time_over_spring_forward() -> None:
    calendar = RollCalendar.from_settings("17:00", "America/New_York")
    clock = ManualClock(at("2026-03-07T16:59:59"))
    session = calendar.session_of(clock.now_ns())
    assert session == dt.date(2026, 3, 6)
    assert decide_roll(calendar, session, clock.now_ns()) is RollDecision.STAY
    clock.advance(1)
    assert decide_roll(calendar, session, clock.now_ns()) is RollDecision.ROLL
    session += dt.timedelta(days=1)
    # The clocks go forward at 02:00 on the 8th: the next roll is 23 hours later, still 17:00.
    clock.advance(23 * 3600 - 1)
    assert decide_roll(calendar, session, clock.now_ns()) is RollDecision.STAY
    clock.advance(1)
    assert decide_roll(calendar, session, clock.now_ns()) is RollDecision.ROLL
    assert dt.datetime.fromtimestamp(clock.now_ns() / 1e9, NY).hour == 17


def test_roll_at_17_new_york_follows_local_time_over_fall_back() -> None:
    calendar = RollCalendar.from_settings("17:00", "America/New_York")
    session = dt.date(2026, 10, 31)
    start = calendar.roll_ns(session - dt.timedelta(days=1))
    assert start == at("2026-10-31T17:00:00")
    assert calendar.roll_ns(session) - start == 25 * HOUR
    assert decide_roll(calendar, session, start + 24 * HOUR) is RollDecision.STAY
    assert decide_roll(calendar, session, start + 25 * HOUR) is RollDecision.ROLL


def test_wall_times_inside_the_gap_or_the_overlap_resolve_once() -> None:
    calendar = RollCalendar.from_settings("02:30", "America/New_York")
    # 02:30 does not exist on 2026-03-08; the roll happens once, just after the gap.
    assert calendar.session_start_ns(dt.date(2026, 3, 8)) == at("2026-03-08T03:30:00")
    # 01:30 happens twice on 2026-11-01; the first occurrence is the roll.
    calendar = RollCalendar.from_settings("01:30", "America/New_York")
    first = calendar.session_start_ns(dt.date(2026, 11, 1))
    assert first == datetime_to_ns(dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC))


def test_session_of_is_consistent_with_roll_instants() -> None:
    calendar = RollCalendar.from_settings("17:00", "America/New_York")
    for day in (dt.date(2026, 3, 8), dt.date(2026, 11, 1), dt.date(2026, 7, 1)):
        start, end = calendar.session_start_ns(day), calendar.roll_ns(day)
        assert calendar.session_of(start) == day
        assert calendar.session_of(end - 1) == day
        assert calendar.session_of(end) == day + dt.timedelta(days=1)


def test_a_jump_of_more_than_a_day_is_refused_and_backwards_stays() -> None:
    calendar = RollCalendar.from_settings("00:00", "UTC")
    session = dt.date(2026, 5, 1)
    two_days_later = datetime_to_ns(dt.datetime(2026, 5, 3, 0, 0, 1, tzinfo=dt.UTC))
    assert decide_roll(calendar, session, two_days_later) is RollDecision.REFUSE_JUMP
    earlier = datetime_to_ns(dt.datetime(2026, 4, 28, tzinfo=dt.UTC))
    assert decide_roll(calendar, session, earlier) is RollDecision.STAY


def test_roll_time_parsing() -> None:
    assert parse_roll_time("17:00") == dt.time(17, 0)
    assert parse_roll_time("23:59:30") == dt.time(23, 59, 30)
    for bad in ("5pm", "25:00", "17"):
        with pytest.raises(ValueError):
            parse_roll_time(bad)
