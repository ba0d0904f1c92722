"""End of day in a running tickerplant: on time across a DST change (a tickerplant in this
process on a manual clock), and after downtime (real processes, their clocks started on
the days wanted)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.harness import EPHEMERAL_TP, start_tp, wait_until, write_config

from tickdb.config import load_config
from tickerplant.clock import Clock, ManualClock, datetime_to_ns
from tickerplant.publisher import Publisher
from tickerplant.server import Tickerplant
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


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Callable[..., Tickerplant]]:
    """Starts a ``Tickerplant`` on a thread of this process, with the clock it is given;
    stops it at teardown."""
    running: list[tuple[Tickerplant, threading.Thread]] = []

    def serve(clock: Clock, **sections: dict[str, Any]) -> Tickerplant:
        config = write_config(tmp_path / "tp.toml", {"tickerplant": EPHEMERAL_TP, **sections})
        tp = Tickerplant(load_config(config, data_dir=tmp_path / "data"), clock=clock)
        thread = threading.Thread(target=tp.serve, name="tickerplant", daemon=True)
        thread.start()
        running.append((tp, thread))
        return tp

    yield serve
    for tp, thread in running:
        tp.stop()
        thread.join(10)
        assert not thread.is_alive()


def test_roll_happens_at_local_roll_time_on_the_day_clocks_spring_forward(
    tmp_path: Path, serving: Callable[..., Tickerplant]
) -> None:
    # 16:59:58 EDT on 2026-03-08, the first day of daylight time: the session that began at
    # 17:00 EST the day before has lasted 23 hours and ends in two seconds of this clock,
    # which moves only when the test moves it.
    clock = ManualClock(datetime_to_ns(dt.datetime.fromisoformat("2026-03-08T16:59:58-04:00")))
    tp = serving(clock, eod=NEW_YORK_17)
    assert tp.session == dt.date(2026, 3, 7)
    sub = Subscriber(tp.address)
    with Publisher(tp.address) as pub:
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": 1})
        got = collect(sub, 1)
        clock.advance(3)  # 17:00:01 EDT, past the roll
        got += collect(sub, 1)
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": 2})
    got += collect(sub, 1)
    assert [type(m) for m in got] == [Update, EndOfDay, Update]
    assert got[1].date == dt.date(2026, 3, 7)
    journal = tmp_path / "data" / "journal"
    assert sorted(p.name for p in journal.glob("*.tpj")) == ["2026-03-07.tpj", "2026-03-08.tpj"]
    # The tickerplant stamps time with its (injected) clock: before and after the roll, UTC.
    stamped = [m.data.column("time")[0].as_py() for m in (got[0], got[2])]
    assert stamped == [dt.datetime(2026, 3, 8, 20, 59, 58), dt.datetime(2026, 3, 8, 21, 0, 1)]
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
