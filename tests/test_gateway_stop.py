"""A gateway serving its order port stops promptly on SIGTERM (what Ctrl-C on `tickdb up`
sends it), its orders intact.

The order-flow thread serves the order port under a lock it takes again right after each
turn; the stop waited for that lock with the port still attached, and a lock is not fair:
the stop took 7-8 s, most of `tickdb up`'s Ctrl-C."""

from __future__ import annotations

import time
from pathlib import Path

from support.order_stack import start_order_stack

from gateway.order_session import Orders

STOP_S = 3.0  # a stop is well under a second; the old one took 7-8 s


def test_a_gateway_with_its_order_port_in_use_stops_at_once(tmp_path: Path) -> None:
    stack = start_order_stack(tmp_path, shards=1)
    try:
        gateway = stack.gateway
        assert gateway is not None
        with Orders(str(gateway.info["order_port"]), timeout_s=20) as orders:
            for n in range(20):  # the port attached to the order-flow thread, and in use
                answer = orders.submit("T1", "AAPL", "buy", 1, 10.0 + n / 100, clordid=f"o{n}")
                assert answer["status"] == "new", answer
        started = time.monotonic()
        code = gateway.stop(timeout=30)
        took = time.monotonic() - started
        assert code == 0, f"the gateway exited with {code}"
        assert took < STOP_S, f"the gateway took {took:.1f} s to stop"
        # What it accepted is in the journal: a restarted gateway has every order.
        stack.start_gateway()
        with stack.client() as client:
            assert len(client.orders("T1")) == 20
    finally:
        stack.stop()
