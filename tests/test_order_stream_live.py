"""The gateway's order stream: the journal's requests rebuild its state, and once live it
follows the requests (every gateway's: active-active gateways learn each other's orders)
and the venues' answers, not the admin rows it applies when it makes them."""

from __future__ import annotations

from pathlib import Path

import zmq
from support.harness import start_tp, wait_until

from gateway.order_setup import start_order_path
from gateway.order_stream import LIVE_FLOW, ORDER_FLOW
from orders.book import MatchingEngine
from orders.model import Event, NewOrder, Side
from orders.rows import EVENT_SCHEMA, encode_outputs, encode_requests
from tickdb.config import load_config
from tickerplant.discovery import request_hello
from tickerplant.publisher import Publisher


def test_rebuilt_from_requests_then_live_on_requests_and_answers(
    tmp_path: Path, procs: list
) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = tp.info["address"]
    before = NewOrder("A1", "S1", "old1", Side.BUY, 5, price=10.0)
    with Publisher(address) as pub:
        pub.publish_ipc("order_request", encode_requests([before]))
    path = start_order_path(load_config(None, tmp_path), address, "tcp://127.0.0.1:0", 30)
    try:
        router, stream = path.router, path.stream
        assert router.order("A1", "old1") is not None  # from the journal
        assert stream.tables == LIVE_FLOW != ORDER_FLOW
        seen = stream.last_seq
        later = NewOrder("A1", "S1", "new1", Side.BUY, 5, price=10.0)
        with Publisher(address) as pub:
            pub.publish_ipc("order_request", encode_requests([later]))
            pub.flush()
            # A venue's answer to the first order: applied, and the stream moved to it.
            (accepted,) = MatchingEngine(id_prefix="V0-").new(before)
            assert isinstance(accepted, Event)
            pub.publish_ipc("order", encode_outputs([accepted], EVENT_SCHEMA, "0/1", 1))
        old = router.order("A1", "old1")
        assert old is not None
        wait_until(lambda: old.status == "new", timeout=10)
        assert stream.last_seq == tp_seq(address) >= seen + 2
        # A live request of another gateway's: known here too, so a retry of it here is
        # answered with that order, never a second one.
        assert router.order("A1", "new1") is not None
        assert "risk_admin" in ORDER_FLOW and "risk_admin" not in LIVE_FLOW
    finally:
        path.close()


def tp_seq(address: str) -> int:
    ctx = zmq.Context()
    try:
        return request_hello(ctx, address, 5).seq
    finally:
        ctx.term()
