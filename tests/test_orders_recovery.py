"""Kill switch, crash recovery and end of day on the order path, with real processes.

The reference for "nothing lost, nothing doubled" is a run of the same order flow without
the crash: venues are deterministic, so each venue's output rows (order and fill tables,
without the tickerplant's timestamps) must be identical, row for row.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from support.harness import free_port, wait_until
from support.order_flow import RISK, SYMS, drive, flow, journal_rows, per_venue
from support.order_stack import OrderStack, start_order_stack

from gateway.client import OrderRejected


def start(workdir: Path, port: int = 0, order_port: int = 0) -> OrderStack:
    return start_order_stack(
        workdir,
        shards=3,
        gateway_port=port,
        order_port=order_port,
        orders={"submit_timeout_s": 0.2},
        extra_toml=RISK,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    steps = flow(seed=3, count=1000)
    stack = start(tmp_path_factory.mktemp("reference"))
    try:
        drive(stack, steps, crash_at=-1, crash=None)
        with stack.client() as c:
            positions = c.positions()
        return {
            "steps": steps,
            "order": per_venue(journal_rows(stack, "order")),
            "fill": per_venue(journal_rows(stack, "fill")),
            "positions": positions,
        }
    finally:
        stack.stop()


def assert_same_as(reference: dict[str, Any], stack: OrderStack) -> None:
    order = per_venue(journal_rows(stack, "order"))
    fill = per_venue(journal_rows(stack, "fill"))
    assert set(order) == set(reference["order"])
    for venue in reference["order"]:
        assert order[venue] == reference["order"][venue], f"order rows of venue {venue!r}"
    assert fill == reference["fill"]
    with stack.client() as c:
        assert c.positions() == reference["positions"]
    assert len(fill) == 3 and all(fill.values())  # every venue traded


def test_kill9_of_a_venue_mid_flow_loses_and_doubles_nothing(
    reference: dict[str, Any], tmp_path: Path
) -> None:
    stack = start(tmp_path)
    try:
        restart = threading.Thread(target=stack.start_venue, args=(1,), daemon=True)

        def crash() -> None:
            stack.venues[1].kill9()
            restart.start()

        drive(stack, reference["steps"], crash_at=400, crash=crash)
        restart.join(60)
        assert_same_as(reference, stack)
        # It did restart (each start logs the line and prints it).
        assert stack.venues[1].log().count("ready at seq") == 4
    finally:
        stack.stop()


def test_kill9_of_the_gateway_mid_flow_loses_and_doubles_nothing(
    reference: dict[str, Any], tmp_path: Path
) -> None:
    port, order_port = free_port(), free_port()
    stack = start(tmp_path, port, order_port)
    try:
        restart = threading.Thread(target=stack.start_gateway, args=(port, order_port), daemon=True)

        def crash() -> None:
            assert stack.gateway is not None
            stack.gateway.kill9()
            restart.start()

        driver = drive(stack, reference["steps"], crash_at=500, crash=crash)
        restart.join(60)
        assert driver.reconnects >= 1  # requests were lost with the gateway and resent
        assert_same_as(reference, stack)
        # The retried requests found their ClOrdIDs: one order_request row per step.
        requests = journal_rows(stack, "order_request")
        assert len({(r["account"], r["clordid"]) for r in requests}) == len(requests)
    finally:
        stack.stop()


def test_kill_switch_cancels_1000_working_orders_over_3_shards(tmp_path: Path) -> None:
    stack = start(tmp_path)
    try:
        with stack.client() as client:
            for i in range(1000):
                client.submit(
                    "K1",
                    SYMS[i % 3],
                    "buy",
                    1,
                    10.00 + (i % 50) * 0.01,
                    clordid=f"w-{i}",
                    wait=False,
                )
            wait_until(
                lambda: (
                    len(client.orders("K1", open_only=True)) == 1000
                    and all(o["status"] == "new" for o in client.orders("K1"))
                ),
                timeout=60,
                what="1000 working orders",
            )
            assert {o["order_id"][:2] for o in client.orders("K1")} == {"V0", "V1", "V2"}

            racing: list[str] = []
            stop = threading.Event()

            def race() -> None:
                with stack.client() as c:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        try:
                            c.submit(
                                "K1", "MSFT", "sell", 1, 99.00, clordid=f"race-{n}", wait=False
                            )
                        except OrderRejected as exc:
                            assert exc.code == "killed"
                        racing.append(f"race-{n}")

            racer = threading.Thread(target=race)
            racer.start()
            wait_until(lambda: len(racing) > 5, what="the racing submits")
            result = client.kill(account="K1")
            stop.set()
            racer.join()
            assert result["canceled"] >= 1000
            # Nothing of K1 is left working: each racing order was refused or canceled.
            wait_until(
                lambda: not client.orders("K1", open_only=True),
                timeout=30,
                what="every K1 order closed",
            )
            statuses = {o["status"] for o in client.orders("K1")}
            assert statuses <= {"canceled", "rejected"}
            with pytest.raises(OrderRejected) as killed:
                client.submit("K1", "AAPL", "buy", 1, 10.00)
            assert killed.value.code == "killed"
            # Other accounts trade on; an admin resume re-enables K1.
            assert client.submit("K2", "AAPL", "buy", 1, 10.00)["status"] == "new"
            client.resume(account="K1")
            assert client.submit("K1", "AAPL", "buy", 1, 10.00)["status"] == "new"
        admin = journal_rows(stack, "risk_admin")
        assert [r["action"] for r in admin] == ["kill", "resume"]
    finally:
        stack.stop()


def test_a_restarted_gateway_keeps_orders_positions_limits_and_kills(tmp_path: Path) -> None:
    port = free_port()
    stack = start(tmp_path, port)
    try:
        with stack.client() as client:
            client.submit("R1", "AAPL", "buy", 10, 100.00, clordid="r-buy")
            client.submit("R2", "AAPL", "sell", 4, 100.00, clordid="r-sell")
            client.set_limits({"max_order_qty": 50}, account="R1")
            client.kill(account="R2")
        assert stack.gateway is not None
        stack.gateway.kill9()
        stack.start_gateway(port)
        with stack.client() as client:
            assert client.order("R1", "r-buy")["cum_qty"] == 4
            again = client.submit("R1", "AAPL", "buy", 10, 100.00, clordid="r-buy")
            assert again["duplicate"] is True
            positions = {(p["account"], p["sym"]): p["qty"] for p in client.positions()}
            assert positions == {("R1", "AAPL"): 4, ("R2", "AAPL"): -4}
            with pytest.raises(OrderRejected) as too_big:
                client.submit("R1", "AAPL", "buy", 51, 100.00)
            assert too_big.value.code == "max_order_qty"
            with pytest.raises(OrderRejected) as killed:
                client.submit("R2", "AAPL", "buy", 1, 100.00)
            assert killed.value.code == "killed"
    finally:
        stack.stop()


def test_day_orders_expire_at_end_of_day_and_gtc_orders_stay(tmp_path: Path) -> None:
    stack = start(tmp_path)
    try:
        with stack.client() as client:
            client.submit("D1", "AAPL", "buy", 5, 90.00, clordid="day-1", tif="day")
            client.submit("D1", "MSFT", "buy", 5, 90.00, clordid="gtc-1", tif="gtc")
            subprocess.run(
                [sys.executable, "-m", "tickdb.cli", "tp", "roll", "--address", stack.tp_address],
                check=True,
                capture_output=True,
                timeout=30,
            )
            wait_until(
                lambda: client.order("D1", "day-1")["status"] == "expired",
                what="the DAY order expired",
            )
            assert client.order("D1", "gtc-1")["status"] == "new"
            # A new trading day: the DAY order's ClOrdID may be used again.
            assert client.submit("D1", "AAPL", "buy", 5, 90.00, clordid="day-1")["status"] == "new"
        stack.venues[0].stop()
        stack.start_venue(0)  # a restart replays both days and rebuilds the same book
        with stack.client() as client:
            assert client.cancel("D1", "gtc-1")["status"] == "canceled"
    finally:
        stack.stop()


def test_paper_venues_fill_resting_orders_against_live_quotes(tmp_path: Path) -> None:
    from tickerplant.publisher import Publisher

    stack = start(tmp_path)
    try:
        for k in range(3):
            stack.venues[k].stop()
            stack.start_venue(k, "--paper")
        with stack.client() as client, Publisher(stack.tp_address) as feed:
            client.submit("P1", "AAPL", "buy", 300, 100.00, clordid="paper-bid", tif="gtc")
            client.submit("P1", "GOOG", "sell", 50, 200.00, clordid="paper-ask", tif="gtc")
            # The market moves through both limits: each fills at the quote, up to its size.
            feed.publish(
                "quote",
                {
                    "sym": ["AAPL", "GOOG"],
                    "bid": [99.90, 200.10],
                    "ask": [99.95, 200.20],
                    "bsize": [500, 500],
                    "asize": [200, 500],
                },
            )
            feed.flush()
            wait_until(
                lambda: client.order("P1", "paper-ask")["status"] == "filled",
                what="the sell filled against the bid",
            )
            bid = wait_until(
                lambda: (o := client.order("P1", "paper-bid"))["cum_qty"] == 200 and o,
                what="the buy filled up to the quote's size",
            )
            assert bid["avg_px"] == 99.95 and bid["status"] == "partially_filled"
            ask = client.order("P1", "paper-ask")
            assert ask["avg_px"] == 200.10
            positions = {p["sym"]: p["qty"] for p in client.positions("P1")}
            assert positions == {"AAPL": 200, "GOOG": -50}
    finally:
        stack.stop()


def test_position_and_exposure_limits_count_every_shard(tmp_path: Path) -> None:
    limits = """
[risk.defaults]
max_messages_per_s = 0
duplicate_window_s = 0
max_gross_exposure = 10000
max_long_position = 100
"""
    stack = start_order_stack(tmp_path, shards=3, extra_toml=limits)
    try:
        with stack.client() as client:
            # 3 x 30 x 100.00 = 9000 of working buys across the three venues.
            for sym in ["AAPL", "MSFT", "GOOG"]:
                client.submit("X1", sym, "buy", 30, 100.00)
            orders = client.orders("X1", open_only=True)
            assert {o["order_id"][:2] for o in orders} == {"V0", "V1", "V2"}
            # At the limit passes (10000), just past it is refused, wherever it goes.
            assert client.submit("X1", "TSLA", "buy", 5, 200.00)["status"] == "new"
            with pytest.raises(OrderRejected) as exposure:
                client.submit("X1", "BAC", "buy", 1, 0.01)
            assert exposure.value.code == "max_gross_exposure"
            assert "max_gross_exposure" in str(exposure.value)
            # Fills move working exposure into the position: still counted, across shards.
            client.submit("X2", "AAPL", "sell", 30, 100.00)
            with pytest.raises(OrderRejected):
                client.submit("X1", "IBM", "buy", 1, 0.01)
            # The long limit per sym counts the position and working buys at their worst.
            client.cancel_all(account="X1")
            assert client.submit("X1", "AAPL", "buy", 70, 1.00)["status"] == "new"
            with pytest.raises(OrderRejected) as too_long:
                client.submit("X1", "AAPL", "buy", 1, 1.00)
            assert too_long.value.code == "max_long_position"
    finally:
        stack.stop()


def test_restarts_when_the_journal_ends_with_other_tables(tmp_path: Path) -> None:
    """A venue and a gateway restarted while only ticks arrived since the last order: the
    journal ends with records they do not take, and they must still say ready (tickdb up
    on an existing data directory waits for that)."""
    from tickerplant.publisher import Publisher

    port, order_port = free_port(), free_port()
    stack = start(tmp_path, port, order_port)
    try:
        with stack.client() as client:
            client.submit("T1", "AAPL", "buy", 5, 10.00, clordid="before", tif="gtc")
        with Publisher(stack.tp_address) as feed:
            feed.publish("trade", {"sym": ["AAPL", "MSFT"], "price": [10.5, 20.5], "size": [1, 2]})
            feed.flush()
        assert stack.gateway is not None
        stack.gateway.stop()
        stack.venues[0].stop()
        stack.start_venue(0)  # Proc waits for its ready file: this fails if it never comes
        stack.start_gateway(port, order_port)
        with stack.client() as client:
            assert client.order("T1", "before")["status"] == "new"
            assert client.cancel("T1", "before")["status"] == "canceled"
    finally:
        stack.stop()
