"""The console's operations view lists the matching venues, judged by their answers in the
order flow: a venue that stops answering shows as ``waiting`` while orders routed to it are
pending, and ``answering`` again once it catches up."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from support.harness import wait_until
from support.order_stack import OrderStack, start_order_stack

from gateway.venue_activity import VenueActivity
from orders.model import Order, OrdStatus, OrdType, Side, TimeInForce
from tickdb.types import shard_of

SYMS = ["AAPL", "MSFT"]  # shard_of(·, 2): AAPL 0, MSFT 1
RISK = """
[risk.defaults]
max_order_qty = 10000
duplicate_window_s = 0

[risk.accounts.V1]
"""


def order(sym: str, status: OrdStatus, clordid: str = "c1") -> Order:
    return Order(
        order_id="",
        account="V1",
        sym=sym,
        clordid=clordid,
        side=Side.BUY,
        qty=10,
        ord_type=OrdType.LIMIT,
        price=1.0,
        tif=TimeInForce.DAY,
        status=status,
    )


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


# -- what the rows say, from the flow alone ---------------------------------------------------
def test_a_venue_with_pending_orders_and_no_recent_answer_is_waiting() -> None:
    activity = VenueActivity(stale_s=2.0)
    assert [shard_of(s, 2) for s in SYMS] == [0, 1]
    activity.saw("order", [{"venue": "0/2", "in_seq": 7}, {"venue": "", "in_seq": 0}], now=100.0)
    activity.saw("fill", [{"venue": "0/2", "in_seq": 9}], now=100.5)
    orders = [order("AAPL", OrdStatus.NEW), order("MSFT", OrdStatus.PENDING_NEW, "c2")]
    rows = by_name(activity.rows(1, orders, now=101.0))
    # The labels name two shards: venue-1 is listed though it never published.
    assert set(rows) == {"venue-0", "venue-1"}
    zero, one = rows["venue-0"], rows["venue-1"]
    assert (zero["state"], zero["events"], zero["fills"], zero["last_in_seq"]) == (
        "answering",
        1,
        1,
        9,
    )
    assert (zero["open_orders"], zero["pending_orders"], zero["last_event_age_s"]) == (1, 0, 0.5)
    assert (one["state"], one["pending_orders"], one["last_event_age_s"]) == ("waiting", 1, None)
    # Long after its last answer, with nothing pending, a venue is idle, not in trouble.
    later = by_name(activity.rows(1, orders[:1], now=200.0))
    assert later["venue-0"]["state"] == later["venue-1"]["state"] == "idle"


def test_before_any_answer_the_data_shards_say_how_many_venues() -> None:
    rows = VenueActivity().rows(3, [], now=1.0)
    assert [(r["name"], r["shard"], r["state"]) for r in rows] == [
        ("venue-0", "0/3", "idle"),
        ("venue-1", "1/3", "idle"),
        ("venue-2", "2/3", "idle"),
    ]


# -- against a real stack ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("venues"), shards=2, orders={"syms": SYMS}, extra_toml=RISK
    )
    yield running
    running.stop()


def venues(stack: OrderStack) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(stack.url + "/console/ops", timeout=10) as reply:
        return by_name(json.load(reply)["venues"])


def test_the_operations_view_shows_each_venue_and_one_that_stops_answering(
    stack: OrderStack,
) -> None:
    with stack.client() as client:
        for i, sym in enumerate(SYMS):
            assert client.submit("V1", sym, "buy", 10, 1.00, clordid=f"rest-{i}")["status"] == "new"
        rows = venues(stack)
        assert {n: (r["shard"], r["open_orders"]) for n, r in rows.items()} == {
            "venue-0": ("0/2", 1),
            "venue-1": ("1/2", 1),
        }
        assert all(r["events"] >= 1 and r["pending_orders"] == 0 for r in rows.values())

        frozen = stack.venues[1].popen
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            pending = client.submit(
                "V1", "MSFT", "buy", 5, 1.00, clordid="while-frozen", wait=False
            )
            assert pending["status"] == "pending_new"
            wait_until(
                lambda: venues(stack)["venue-1"]["state"] == "waiting", 15, "venue-1 waiting"
            )
            rows = venues(stack)
            assert rows["venue-1"]["pending_orders"] == 1
            assert rows["venue-0"]["state"] in ("answering", "idle")
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        wait_until(lambda: venues(stack)["venue-1"]["pending_orders"] == 0, 15, "venue-1 to answer")
        assert venues(stack)["venue-1"]["state"] == "answering"
        assert client.order("V1", "while-frozen")["status"] == "new"
