"""A hot standby venue: SIGKILL or SIGSTOP the primary under a stream of orders; the standby
takes over, and the journal's venue output is exactly what a fresh engine makes of the
journal's input (nothing lost, nothing doubled)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from support.harness import wait_until
from support.venue_pair import Orders, assert_exactly_once, role, start

from tickdb.stack_status import read_status, write_status


def test_sigkill_of_the_primary_the_standby_takes_over_within_200ms(tmp_path: Path) -> None:
    stack, standby = start(tmp_path)
    orders = Orders(stack)
    try:
        orders.start()
        wait_until(lambda: orders.count() > 100, timeout=30, what="orders flowing")
        killed = time.time()
        stack.venues[0].kill9()
        took = wait_until(
            lambda: (r := role(tmp_path, "venue-0-s")).get("first_output_at") and r,
            timeout=10,
            what="the standby's first output",
        )
        assert took["role"] == "primary" and took["epoch"] == 2
        takeover_ms = (took["first_output_at"] - killed) * 1000
        assert takeover_ms < 200, f"takeover took {takeover_ms:.0f} ms"
        count = orders.count()
        wait_until(lambda: orders.count() > count + 100, timeout=30, what="orders after it")
        orders.stop.set()
        orders.join(10)
        assert_exactly_once(stack, orders)
    finally:
        orders.stop.set()
        standby.stop()
        stack.stop()


def test_a_frozen_primary_resumed_doubles_nothing_and_becomes_the_standby(
    tmp_path: Path,
) -> None:
    stack, standby = start(tmp_path)
    orders = Orders(stack)
    primary = stack.venues[0]
    try:
        orders.start()
        wait_until(lambda: orders.count() > 100, timeout=30, what="orders flowing")
        os.killpg(primary.popen.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: role(tmp_path, "venue-0-s").get("first_output_at"),
                timeout=10,
                what="the standby's takeover",
            )
            count = orders.count()
            wait_until(lambda: orders.count() > count + 50, timeout=30, what="orders after it")
        finally:
            os.killpg(primary.popen.pid, signal.SIGCONT)
        wait_until(
            lambda: role(tmp_path, "venue-0")["role"] == "standby",
            timeout=10,
            what="the old primary stepping down",
        )
        assert "fenced, now standby" in primary.log()
        assert role(tmp_path, "venue-0-s")["role"] == "primary"
        count = orders.count()
        wait_until(lambda: orders.count() > count + 50, timeout=30, what="more orders")
        # The old primary kept an identical book: it takes over again when the new one dies.
        standby.kill9()
        wait_until(
            lambda: role(tmp_path, "venue-0").get("first_output_at"),
            timeout=10,
            what="the old primary back as primary",
        )
        assert role(tmp_path, "venue-0")["epoch"] == 3
        count = orders.count()
        wait_until(lambda: orders.count() > count + 50, timeout=30, what="orders after it")
        orders.stop.set()
        orders.join(10)
        assert_exactly_once(stack, orders)
    finally:
        orders.stop.set()
        standby.stop()
        stack.stop()


def test_status_shows_the_role_and_epoch_a_venue_of_a_pair_reports(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    component = {"name": "venue-0-s", "role": "standby", "epoch": 0, "alive": True}
    write_status(run / "stack.json", 1, [component, {**component, "name": "gateway"}])
    (run / "venue-0-s.role.json").write_text(json.dumps({"role": "primary", "epoch": 3}))
    status = read_status(tmp_path)
    assert status is not None
    venue, gateway = status["components"]
    assert (venue["role"], venue["epoch"]) == ("primary", 3)
    assert (gateway["role"], gateway["epoch"]) == ("standby", 0)
