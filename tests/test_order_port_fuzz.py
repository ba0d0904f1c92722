"""The order port against arbitrary requests (hypothesis): pipelined runs of JSON objects
with the port's field names and values of any type and size, and raw bytes. Every request
gets exactly one answer (an order, a refusal or a bad request), and good orders sent in the
same runs are accepted: no request can sink a run or the port."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.order_stack import OrderStack, start_order_stack

from gateway.order_session import _resolve

# The good orders of every example rest on one book for the whole module: open-order limits
# off, or a long run (more examples) would meet them and see its good orders refused.
RISK = """
[risk.defaults]
duplicate_window_s = 0
max_messages_per_s = 0
max_open_orders = 0
max_open_orders_per_sym = 0

[risk.accounts.F1]
"""
FIELDS = [
    "op",
    "account",
    "sym",
    "side",
    "qty",
    "price",
    "type",
    "tif",
    "clordid",
    "orig_clordid",
    "strategy",
    "wait",
    "intended",
]
TEXT = st.sampled_from(
    [
        "F1",
        "AAPL",
        "MSFT",
        "buy",
        "sell",
        "new",
        "cancel",
        "replace",
        "cancel_all",
        "limit",
        "market",
        "day",
        "gtc",
        "ioc",
        "fok",
        "",
        "x" * 65,
        "\u00e9",
        "\x00",
    ]
) | st.text(max_size=80)
NUMBER = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats(
    allow_nan=False, allow_infinity=False
)
VALUE = st.recursive(
    st.none() | st.booleans() | NUMBER | TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
REQUEST = st.dictionaries(st.sampled_from(FIELDS), VALUE, max_size=len(FIELDS))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("port_fuzz"), orders={"syms": ["AAPL"]}, extra_toml=RISK
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def port(stack: OrderStack) -> Iterator[zmq.Socket[Any]]:
    ctx = zmq.Context()
    socket = ctx.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(_resolve(stack.url, None))
    yield socket
    socket.close(0)
    ctx.term()


_RUNS = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(requests=st.lists(REQUEST | st.binary(max_size=64), min_size=1, max_size=12))
def test_every_request_is_answered_and_good_orders_pass(
    port: zmq.Socket[Any], requests: list[dict[str, Any] | bytes]
) -> None:
    run = next(_RUNS)
    good = {"op": "new", "account": "F1", "sym": "AAPL", "side": "buy", "qty": 1, "price": 1.0}
    frames: list[bytes] = []
    ids: list[Any] = []
    for i, request in enumerate([good, *requests, good]):
        if isinstance(request, bytes):
            frames.append(request)  # not JSON (or not an object): answered without an id
            ids.append(None)
            continue
        body = dict(request)
        body["id"] = f"{run}-{i}"
        if request is good:
            body["clordid"] = f"good-{run}-{i}"
        frames.append(orjson.dumps(body))
        ids.append(body["id"])
    for frame in frames:  # pipelined: the port takes them as one run
        port.send(frame)
    got: dict[Any, dict[str, Any]] = {}
    for _ in frames:  # one answer each (raw bytes: without an id)
        assert port.poll(20_000), "an answer is missing"
        body = orjson.loads(port.recv())
        if body.get("id") is None:
            continue
        assert body["id"] not in got, f"two answers to {body['id']}"
        got[body["id"]] = body
    assert set(got) == {i for i in ids if i is not None}
    # Accepted by the venue; by its answer a random request of the run (a cancel_all, a
    # crossing sell) may already have moved it on.
    for good_id in (ids[0], ids[-1]):
        assert got[good_id]["ok"], got[good_id]
        assert got[good_id]["order"]["status"] not in {"pending_new", "rejected"}, got[good_id]
    for body in got.values():
        assert body["ok"] or body["error"] in {"bad_request", "rejected"}, body
