"""A hot standby venue: SIGKILL or SIGSTOP the primary under a stream of orders; the standby
takes over, and the journal's venue output is exactly what a fresh engine makes of the
journal's input (nothing lost, nothing doubled)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from support.harness import Proc, wait_until
from support.order_flow import journal_rows
from support.order_stack import OrderStack, start_order_stack

from orders.book import MatchingEngine
from orders.model import Event, Fill
from orders.rows import event_row, fill_row
from orders.venue import Venue
from tickdb.stack_status import read_status, write_status
from tickdb.types import Shard
from tickerplant.subscriber import Subscriber, Update

RISK = """
[risk.defaults]
max_messages_per_s = 0
duplicate_window_s = 0
max_open_orders = 0
max_open_orders_per_sym = 0
max_fills_per_window = 0
"""
SYMS = ["AAPL", "MSFT", "GOOG"]


def role(workdir: Path, name: str) -> dict[str, Any]:
    try:
        return dict(json.loads((workdir / "run" / f"{name}.role.json").read_text()))
    except (OSError, ValueError):
        return {}


def start(workdir: Path) -> tuple[OrderStack, Proc]:
    lease = ("--lease-dir", str(workdir / "run"))
    stack = start_order_stack(
        workdir,
        shards=1,
        venue_args=("--lease", "--name", "venue-0", *lease),
        orders={"submit_timeout_s": 5.0},
        extra_toml=RISK,
    )
    args = ["venue", "--config", str(stack.config), "--tp", stack.tp_address, "--shard", "0/1"]
    standby = Proc(
        [*args, "--standby", "--name", "venue-0-s", *lease],
        workdir,
        "venue-0-s",
        ready_timeout=60,
    )
    assert role(workdir, "venue-0")["role"] == "primary"
    assert role(workdir, "venue-0-s")["role"] == "standby"
    return stack, standby


class Orders(threading.Thread):
    """Crossing orders without pause; the ClOrdIDs the gateway acknowledged."""

    def __init__(self, stack: OrderStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.acked: list[tuple[str, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.stack.client() as client:
            i = 0
            while not self.stop.is_set():
                account = f"A{i % 2}"
                side = "buy" if i % 2 else "sell"
                clordid = f"s-{i}"
                client.submit(account, SYMS[i % 3], side, 5, 100.0, clordid=clordid, wait=False)
                self.acked.append((account, clordid))
                i += 1
                time.sleep(0.003)  # pacing, not waiting on a condition: ~200 orders/s

    def count(self) -> int:
        return len(self.acked)


def replayed(stack: OrderStack) -> dict[str, list[dict[str, Any]]]:
    """What a fresh engine makes of the journal's order_request stream."""
    venue = Venue.__new__(Venue)
    venue.shard, venue.label, venue._owned = Shard(0, 1), "0/1", {}
    venue.inputs = venue.bad_inputs = 0
    venue.engine = MatchingEngine(id_prefix="V0-")
    out: dict[str, list[dict[str, Any]]] = {"order": [], "fill": []}
    with Subscriber(stack.tp_address, tables=["order_request"], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            for o in venue.apply(message) if isinstance(message, Update) else []:
                if isinstance(o, Event):
                    out["order"].append(event_row(o, "0/1", message.seq))
                elif isinstance(o, Fill):
                    out["fill"].append(fill_row(o, "0/1", message.seq))
    return out


def venue_output(stack: OrderStack, table: str) -> list[dict[str, Any]]:
    rows = journal_rows(stack, table)
    return [{k: v for k, v in r.items() if k != "time"} for r in rows if r["venue"] == "0/1"]


def assert_exactly_once(stack: OrderStack, orders: Orders) -> None:
    with stack.client() as client:
        wait_until(
            lambda: all(o["status"] != "pending_new" for o in client.orders()),
            timeout=30,
            what="every order answered by a venue",
        )
        answered = {(o["account"], o["clordid"]) for o in client.orders()}
    assert set(orders.acked) <= answered
    expected = replayed(stack)
    for table in ("order", "fill"):
        assert venue_output(stack, table) == expected[table], f"{table} rows"
    assert expected["fill"]  # the flow traded


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
