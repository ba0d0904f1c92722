"""The order port's wire from sockets other than ``tickdb.Orders``' DEALER: a REQ client
(the simplest request/reply socket in any language) gets each answer in REQ's envelope, and
a message of another shape is not answered but sinks nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import zmq
from support.order_stack import OrderStack, start_order_stack

from gateway.order_session import _resolve

RISK = """
[risk.defaults]
duplicate_window_s = 0
max_messages_per_s = 0

[risk.accounts.R1]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("port_sockets"), orders={"syms": ["AAPL"]}, extra_toml=RISK
    )
    yield running
    running.stop()


@pytest.fixture
def connect(stack: OrderStack) -> Iterator[Any]:
    """``connect(kind)``: a socket of that kind on the order port, closed at teardown."""
    context = zmq.Context()
    sockets: list[zmq.Socket[Any]] = []

    def make(kind: int) -> zmq.Socket[Any]:
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(_resolve(stack.url, None))
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close(0)
    context.term()


def new_order(clordid: str, **extra: Any) -> bytes:
    body = {"op": "new", "account": "R1", "sym": "AAPL", "side": "buy", "qty": 1, "price": 1.0}
    return orjson.dumps({**body, "clordid": clordid, "id": clordid, **extra})


def test_a_req_client_gets_each_answer(connect: Any) -> None:
    req = connect(zmq.REQ)
    for n in range(3):  # REQ alternates: each answer must come back for the next request
        req.send(new_order(f"req-{n}"))
        assert req.poll(20_000), f"no answer to request {n}"
        answer = orjson.loads(req.recv())
        assert answer["id"] == f"req-{n}" and answer["ok"], answer
        assert answer["order"]["status"] == "new"
    req.send(b"{not json")
    assert req.poll(20_000)
    assert orjson.loads(req.recv())["error"] == "bad_request"
    req.send(new_order("req-fast", wait=False))  # answered once journaled, not by the venue
    assert req.poll(20_000) and orjson.loads(req.recv())["ok"]


def test_a_message_of_another_shape_is_dropped(connect: Any) -> None:
    dealer = connect(zmq.DEALER)
    dealer.send_multipart([b"one", b"two", new_order("odd")])  # three frames of its own
    dealer.send(new_order("after-odd"))
    assert dealer.poll(20_000)
    answer = orjson.loads(dealer.recv())
    assert answer["id"] == "after-odd" and answer["ok"], answer
    assert not dealer.poll(500), "the odd message was answered"
