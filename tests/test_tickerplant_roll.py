"""End of day in a running tickerplant: on time across a DST change, and after downtime."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from support.harness import start_tp, wait_until

from tickerplant.publisher import Publisher
from tickerplant.subscriber import EndOfDay, Subscriber, Update

NEW_YORK_17 = {"roll_time": "17:00", "timezone": "America/New_York"}


def collect(sub: Subscriber, count: int) -> list:
    got: list = []

    def enough() -> bool:
        while (m := sub.poll(0.05)) is not None:
            got.append(m)
        return len(got) >= count

    wait_until(enough, 15, f"{count} messages")
    return got


def test_roll_happens_at_local_roll_time_on_the_day_clocks_spring_forward(
    tmp_path: Path, procs: list
) -> None:
    # 16:59:58 EDT on 2026-03-08, the first day of daylight time: the session that began at
    # 17:00 EST the day before has lasted 23 hours and ends in two seconds.
    tp = start_tp(
        tmp_path, extra_args=["--clock-start", "2026-03-08T16:59:58-04:00"], eod=NEW_YORK_17
    )
    procs.append(tp)
    assert tp.info["session"] == "2026-03-07"
    address = tp.info["address"]
    sub = Subscriber(address)
    with Publisher(address) as pub:
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": 1})
        got = collect(sub, 2)
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": 2})
    got += collect(sub, 1)
    assert [type(m) for m in got] == [Update, EndOfDay, Update]
    assert got[1].date == dt.date(2026, 3, 7)
    journal = tmp_path / "data" / "journal"
    assert sorted(p.name for p in journal.glob("*.tpj")) == ["2026-03-07.tpj", "2026-03-08.tpj"]
    # The tickerplant stamps time with its (injected) clock: after the roll, in UTC.
    stamped = got[2].data.column("time")[0].as_py()
    assert dt.datetime(2026, 3, 8, 21, 0) <= stamped < dt.datetime(2026, 3, 8, 21, 1)
    sub.close()


def test_a_roll_missed_while_down_is_written_at_start(tmp_path: Path, procs: list) -> None:
    tp = start_tp(tmp_path, extra_args=["--clock-start", "2026-06-01T12:00:00+00:00"])
    with Publisher(tp.info["address"]) as pub:
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": 1})
    tp.stop()
    tp = start_tp(tmp_path, name="tp2", extra_args=["--clock-start", "2026-06-02T09:00:00+00:00"])
    procs.append(tp)
    assert tp.info["session"] == "2026-06-02"
    got = collect(Subscriber(tp.info["address"], start="journal"), 2)
    assert isinstance(got[0], Update)
    assert isinstance(got[1], EndOfDay) and got[1].date == dt.date(2026, 6, 1)
