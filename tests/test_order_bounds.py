"""Order values no column can hold, with every limit off: a typed reject, recorded where it
can be, and nothing else changes. Before, a quantity of 2^63 reached the request's encoding:
HTTP answered 500 and left the order pending for good, and on the order port it failed the
whole pipelined run, so the good orders sent with it were never answered."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.order_stack import OrderStack, start_order_stack

import tickdb
from gateway.client import OrderRejected
from orders.risk_checks import MAX_QTY
from tickerplant.subscriber import Subscriber, Update

# Every limit that could refuse a huge order first is off (0), so validation alone decides.
RISK = """
[risk.defaults]
max_order_qty = 0
max_order_notional = 0
price_collar_pct = 0
duplicate_window_s = 0
max_long_position = 0
max_short_position = 0
max_gross_exposure = 0
max_messages_per_s = 0

[risk.accounts.B1]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("bounds"), orders={"syms": ["AAPL"]}, extra_toml=RISK
    )
    yield running
    running.stop()


def rejected_rows(stack: OrderStack, clordid: str) -> list[dict[str, Any]]:
    """The ``order`` rows of ``clordid`` in the journal."""
    rows: list[dict[str, Any]] = []
    with Subscriber(stack.tp_address, tables=["order"], start="journal", timeout_s=10) as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                rows += [r for r in message.data.to_pylist() if r["clordid"] == clordid]
    return rows


@pytest.mark.parametrize("qty", [MAX_QTY + 1, 2**63, 2**64 - 1])
def test_http_quantity_above_the_largest_is_a_recorded_reject(stack: OrderStack, qty: int) -> None:
    clordid = f"big-{qty}"
    with stack.client() as client:
        with pytest.raises(OrderRejected) as refused:
            client.submit("B1", "AAPL", "buy", qty, 10.0, clordid=clordid)
        assert refused.value.code == "bad_quantity"
        assert str(qty) in str(refused.value)
        # The retry gets the same answer: the ClOrdID is not left pending.
        with pytest.raises(OrderRejected):
            client.submit("B1", "AAPL", "buy", qty, 10.0, clordid=clordid)
        assert client.submit("B1", "AAPL", "buy", 5, 10.0)["status"] == "new"
    (row,) = rejected_rows(stack, clordid)
    assert row["event"] == "rejected" and row["reason"] == "bad_quantity"
    assert row["qty"] == 0 and str(qty) in row["text"]


def test_largest_quantity_passes(stack: OrderStack) -> None:
    with stack.client() as client:
        order = client.submit("B1", "AAPL", "sell", MAX_QTY, 20.0, clordid="largest")
    assert order["status"] == "new" and order["qty"] == MAX_QTY


def test_order_port_bad_quantity_does_not_sink_its_run(stack: OrderStack) -> None:
    with tickdb.Orders(stack.url) as orders:
        # Pipelined: the gateway takes these as one run and sends it as one batch.
        ids = [
            orders.send_new("B1", "AAPL", "buy", 3, 10.0, clordid="run-a"),
            orders.send_new("B1", "AAPL", "buy", 2**63, 10.0, clordid="run-big"),
            orders.send_new("B1", "AAPL", "buy", 4, 10.0, clordid="run-b"),
        ]
        good_a, big, good_b = orders.collect(ids, timeout_s=20)
    assert good_a["ok"] and good_a["order"]["status"] == "new"
    assert good_b["ok"] and good_b["order"]["status"] == "new"
    assert not big["ok"] and big["code"] == "bad_quantity"


def test_price_below_one_tick_is_off_tick(stack: OrderStack) -> None:
    with stack.client() as client:
        for price in (1e-300, 0.004):
            with pytest.raises(OrderRejected) as refused:
                client.submit("B1", "AAPL", "buy", 1, price)
            assert refused.value.code == "off_tick"


def test_http_lone_surrogate_is_a_bad_request(stack: OrderStack) -> None:
    host, port = stack.url.removeprefix("http://").split(":")
    body = (
        '{"account": "B1", "sym": "AAPL", "side": "buy", "qty": 1, "price": 10.0, '
        '"clordid": "sur-\\ud800"}'
    )
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/orders", body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        detail = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 400, detail
    assert "clordid" in detail["message"] and "unicode" in detail["message"]
    with stack.client() as client:
        assert client.submit("B1", "AAPL", "buy", 6, 10.0)["status"] == "new"


@pytest.mark.parametrize("price", ["1e400", "-1e400", "NaN"])
def test_http_price_not_finite_is_a_bad_request(stack: OrderStack, price: str) -> None:
    # Before: risk refused it, and the reject's JSON (with that price) failed: 500.
    host, port = stack.url.removeprefix("http://").split(":")
    for path, body in (
        (
            "/orders",
            f'{{"account": "B1", "sym": "AAPL", "side": "buy", "qty": 1, "price": {price}}}',
        ),
        ("/orders/replace", f'{{"account": "B1", "orig_clordid": "largest", "price": {price}}}'),
    ):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            detail = json.loads(response.read())
        finally:
            conn.close()
        assert response.status == 400, detail
        assert "price" in detail["message"]
