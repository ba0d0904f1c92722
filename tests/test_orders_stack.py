"""The order path end to end: a tickerplant, three venues, three RDBs and a gateway, all
real processes on loopback. Orders enter over HTTP (``tickdb.Client``), pass risk, are
sequenced by the tickerplant, matched by the venue owning their sym, and come back as rows
of ``order`` and ``fill`` that SQL and q read like ticks."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.harness import wait_until
from support.order_stack import OrderStack, start_order_stack

from gateway.client import Client, GatewayError, OrderRejected
from tickerplant.protocol import shard_of
from tickerplant.subscriber import Subscriber, Update

# One sym per venue of 3 shards (shard_of: AAPL 0, MSFT 1, GOOG 2).
SYMS = ["AAPL", "MSFT", "GOOG", "TSLA", "BAC", "META"]
RISK = """
[risk.defaults]
max_order_qty = 10000
duplicate_window_s = 0
max_messages_per_s = 100000

[risk.accounts.A1]
[risk.accounts.A2]
[risk.accounts.A3]
[risk.accounts.EV1]
[risk.accounts.EV2]
[risk.accounts.SQL]
[risk.accounts.BAD]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("orders"),
        shards=3,
        rdbs=True,
        orders={"syms": SYMS},
        extra_toml=RISK,
    )
    yield running
    running.stop()


@pytest.fixture
def client(stack: OrderStack) -> Iterator[Client]:
    with stack.client() as c:
        yield c


def order_rows(stack: OrderStack, **match: Any) -> list[dict[str, Any]]:
    """Every ``order`` row in the journal matching ``match`` (read over ZeroMQ)."""
    rows: list[dict[str, Any]] = []
    with Subscriber(stack.tp_address, tables=["order"], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                rows += [
                    r for r in message.data.to_pylist() if all(r[k] == v for k, v in match.items())
                ]
    return rows


def test_syms_cover_every_venue() -> None:
    assert {shard_of(s, 3) for s in SYMS[:3]} == {0, 1, 2}


def test_an_order_rests_then_fills_against_another_account(client: Client) -> None:
    bid = client.submit("A1", "AAPL", "buy", 100, 100.00, clordid="rest-1")
    assert bid["status"] == "new"
    assert bid["order_id"].startswith("V0-")  # the venue of AAPL's shard
    ask = client.submit("A2", "AAPL", "sell", 30, 99.90)
    # The incoming sell trades at the resting bid's price.
    assert ask["status"] == "filled" and ask["avg_px"] == 100.00 and ask["cum_qty"] == 30
    rest = client.order("A1", "rest-1")
    assert (rest["status"], rest["cum_qty"], rest["leaves_qty"]) == ("partially_filled", 30, 70)
    positions = {(p["account"], p["sym"]): p for p in client.positions()}
    assert positions[("A1", "AAPL")]["qty"] == 30
    assert positions[("A2", "AAPL")]["qty"] == -30


def test_each_sym_goes_to_the_venue_of_its_shard(client: Client) -> None:
    for sym in SYMS:
        order = client.submit("A3", sym, "buy", 1, 10.00)
        assert order["order_id"].startswith(f"V{shard_of(sym, 3)}-"), (sym, order)


def test_cancel_and_replace_reach_the_venue_holding_the_order(client: Client) -> None:
    order = client.submit("A1", "MSFT", "sell", 50, 300.00, clordid="cr-1")
    replaced = client.replace("A1", "cr-1", price=301.00, qty=60, new_clordid="cr-2")
    assert (replaced["status"], replaced["price"], replaced["qty"]) == ("replaced", 301.0, 60)
    assert replaced["order_id"] == order["order_id"]
    # The old and the new ClOrdID both name it.
    assert client.order("A1", "cr-1")["clordid"] == "cr-2"
    canceled = client.cancel("A1", "cr-2")
    assert canceled["status"] == "canceled" and canceled["leaves_qty"] == 0


def test_a_retry_with_the_same_clordid_returns_the_original_order(client: Client) -> None:
    first = client.submit("A1", "GOOG", "buy", 10, 150.00, clordid="retry-1")
    again = client.submit("A1", "GOOG", "buy", 10, 150.00, clordid="retry-1")
    assert again["duplicate"] is True and again["order_id"] == first["order_id"]
    assert len(order_rows_for(client, "A1", "retry-1")) == 1
    with pytest.raises(OrderRejected) as refused:
        client.submit("A1", "GOOG", "sell", 10, 150.00, clordid="retry-1")
    assert refused.value.code == "duplicate_clordid"


def order_rows_for(client: Client, account: str, clordid: str) -> list[dict[str, Any]]:
    return [o for o in client.orders(account) if o["clordid"] == clordid]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"account": "NOPE", "sym": "AAPL", "side": "buy", "qty": 1, "price": 1.0},
            "unknown_account",
        ),
        ({"account": "BAD", "sym": "ZZZZ", "side": "buy", "qty": 1, "price": 1.0}, "unknown_sym"),
        ({"account": "BAD", "sym": "AAPL", "side": "buy", "qty": 0, "price": 1.0}, "bad_quantity"),
        ({"account": "BAD", "sym": "AAPL", "side": "buy", "qty": -5, "price": 1.0}, "bad_quantity"),
        ({"account": "BAD", "sym": "AAPL", "side": "buy", "qty": 1, "price": 1.005}, "off_tick"),
        (
            {
                "account": "BAD",
                "sym": "AAPL",
                "side": "buy",
                "qty": 1,
                "price": 1.0,
                "type": "market",
            },
            "bad_price",
        ),
        ({"account": "BAD", "sym": "AAPL", "side": "buy", "qty": 1}, "bad_price"),
        (
            {"account": "BAD", "sym": "AAPL", "side": "buy", "qty": 20000, "price": 1.0},
            "max_order_qty",
        ),
    ],
)
def test_bad_orders_get_a_typed_reject_that_is_recorded(
    stack: OrderStack, client: Client, body: dict[str, Any], code: str
) -> None:
    clordid = f"bad-{code}-{body['qty']}-{body.get('type', 'limit')}-{body['account']}"
    reply = client.post("/orders", {**body, "clordid": clordid})
    assert reply.status == 422, reply.text
    assert reply.json()["code"] == code
    assert body["account"] in reply.json()["message"] or code != "unknown_account"
    rows = wait_until(lambda: order_rows(stack, clordid=clordid), what="the reject row")
    assert [(r["event"], r["status"], r["reason"]) for r in rows] == [
        ("rejected", "rejected", code)
    ]
    assert not any(o["clordid"] == clordid and o["status"] != "rejected" for o in client.orders())


def test_cancel_of_an_unknown_order_and_replace_of_a_filled_one(
    stack: OrderStack, client: Client
) -> None:
    with pytest.raises(OrderRejected) as unknown:
        client.cancel("A2", "never-sent")
    assert unknown.value.code == "unknown_order" and unknown.value.status == 422
    client.submit("A2", "TSLA", "sell", 5, 50.00, clordid="done-sell")
    filled = client.submit("A1", "TSLA", "buy", 5, 50.00, clordid="done-buy")
    assert filled["status"] == "filled"
    with pytest.raises(OrderRejected) as late:
        client.replace("A1", "done-buy", qty=10)
    assert late.value.code == "too_late"
    with pytest.raises(OrderRejected) as late_cancel:
        client.cancel("A1", "done-buy")
    assert late_cancel.value.code == "too_late"

    def too_late() -> list[dict[str, Any]]:
        return [r for r in order_rows(stack, clordid="done-buy") if r["reason"] == "too_late"]

    # Both refusals are recorded, each as it is journaled: wait for the two, not the first.
    rows = wait_until(lambda: len(too_late()) >= 2 and too_late(), what="both refusals recorded")
    assert sorted(r["event"] for r in rows) == ["cancel_rejected", "replace_rejected"]
    assert client.order("A1", "done-buy")["status"] == "filled"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"account": "BAD", "sym": "AAPL", "side": "sideways", "qty": 1, "price": 1.0}',
        b'{"account": "BAD", "sym": "AAPL", "side": "buy", "qty": "many", "price": 1.0}',
        b'{"account": "BAD", "sym": "AAPL", "side": "buy", "qty": 1, "price": 1.0, "tif": "x"}',
        b"[]",
    ],
)
def test_malformed_order_requests_get_400_and_change_nothing(stack: OrderStack, raw: bytes) -> None:
    before = len(order_rows(stack))
    host, port = stack.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/orders", body=raw, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 400 and body["error"] == "bad_request", body
    assert "bad request to /orders" in stack.gateway.log()  # type: ignore[union-attr]
    with stack.client() as c:
        assert c.submit("BAD", "AAPL", "buy", 1, 1.00)["status"] == "new"  # still serving
    assert len(order_rows(stack)) == before + 1  # only that good order's event


def test_mass_cancel_fans_out_to_every_venue(client: Client) -> None:
    for sym in SYMS[:3]:
        client.submit("A3", sym, "sell", 3, 500.00, strategy="fan")
    open_before = [o for o in client.orders("A3", open_only=True) if o["strategy"] == "fan"]
    assert {o["order_id"][:2] for o in open_before} == {"V0", "V1", "V2"}
    result = client.cancel_all(account="A3", strategy="fan")
    assert result["canceled"] == 3
    assert not [o for o in client.orders("A3", open_only=True) if o["strategy"] == "fan"]


def test_an_account_subscriber_receives_only_its_own_events(
    stack: OrderStack, client: Client
) -> None:
    events = client.order_events("EV1")
    client.submit("EV2", "BAC", "sell", 7, 20.00, clordid="ev2-sell")
    client.submit("EV1", "BAC", "buy", 7, 20.00, clordid="ev1-buy")
    seen: list[tuple[str, str]] = []
    for message in events:
        if isinstance(message, Update):
            rows = message.data.to_pylist()
            seen += [(message.table, r["account"]) for r in rows]
            if ("fill", "EV1") in seen:
                break
    events.close()
    assert {account for _, account in seen} == {"EV1"}
    assert ("order", "EV1") in seen
    # A drop copy (all accounts) sees both sides of the same trade.
    with Subscriber(stack.tp_address, tables=["fill"], start="journal") as drop:
        fills = []
        while (message := drop.poll(0)) is not None:
            if isinstance(message, Update):
                fills += message.data.to_pylist()
    assert {f["account"] for f in fills if f["sym"] == "BAC"} >= {"EV1", "EV2"}


def test_orders_and_fills_in_sql_and_q_equal_what_the_api_reports(
    stack: OrderStack, client: Client
) -> None:
    client.submit("SQL", "META", "buy", 40, 200.00, clordid="sql-b")
    client.submit("A2", "META", "sell", 15, 200.00)
    client.submit("A2", "META", "sell", 10, 199.50)
    api = client.order("SQL", "sql-b")
    assert api["cum_qty"] == 25

    def latest_sql() -> Any:
        table = client.query(
            'select status, cum_qty, leaves_qty, avg_px from "order" '
            "where account = 'SQL' and clordid = 'sql-b' order by time desc limit 1"
        ).to_pylist()
        return table if table and table[0]["cum_qty"] == 25 else None

    row = wait_until(latest_sql, what="the RDB to hold the fills")[0]
    assert (row["status"], row["cum_qty"], row["leaves_qty"], row["avg_px"]) == (
        api["status"],
        api["cum_qty"],
        api["leaves_qty"],
        api["avg_px"],
    )
    fills = client.q(
        "select qty:sum qty, notional:sum qty*price by side from fill where account=`SQL"
    )
    assert fills.to_pylist() == [{"side": "buy", "qty": 25, "notional": 25 * 200.0}]
    position = next(p for p in client.positions("SQL") if p["sym"] == "META")
    sql_position = client.query(
        "select sum(case when side = 'buy' then qty else -qty end) as qty from fill "
        "where account = 'SQL' and sym = 'META'"
    ).to_pylist()[0]["qty"]
    assert position["qty"] == sql_position == 25


def test_the_openapi_document_lists_the_order_routes(client: Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in [
        "/orders",
        "/orders/cancel",
        "/orders/replace",
        "/orders/cancel-all",
        "/orders/{account}/{clordid}",
        "/positions",
        "/risk",
        "/risk/limits",
        "/risk/state",
        "/risk/kill",
        "/risk/resume",
    ]:
        assert path in paths, path


def test_gateway_error_kinds_for_order_routes(client: Client) -> None:
    with pytest.raises(GatewayError) as missing:
        client.order("A1", "no-such-order")
    assert missing.value.status == 404


# -- the order-entry port (tickdb.Orders) -------------------------------------------------------
def test_the_order_port_takes_the_same_orders_as_http(stack: OrderStack) -> None:
    import tickdb

    with tickdb.Orders(stack.url) as orders, stack.client() as client:
        bid = orders.submit("A1", "TSLA", "buy", 20, 70.00, clordid="port-1", tif="gtc")
        assert bid["status"] == "new" and bid["order_id"].startswith("V0-")
        assert client.order("A1", "port-1")["order_id"] == bid["order_id"]  # one state
        again = orders.submit("A1", "TSLA", "buy", 20, 70.00, clordid="port-1", tif="gtc")
        assert again["order_id"] == bid["order_id"]  # a retry: the original
        moved = orders.replace("A1", "port-1", price=70.01, new_clordid="port-2")
        assert (moved["status"], moved["price"]) == ("replaced", 70.01)
        assert orders.cancel("A1", "port-2")["status"] == "canceled"
        with pytest.raises(OrderRejected) as refused:
            orders.submit("BAD", "TSLA", "buy", 0, 70.00)
        assert refused.value.code == "bad_quantity"


def test_the_order_port_pipelines_requests_in_order(stack: OrderStack) -> None:
    import tickdb

    with tickdb.Orders(stack.url) as orders:
        ids = [
            orders.send_new(
                "A2", "MSFT" if i % 2 else "BAC", "sell", 1, 900.00 + i / 100, clordid=f"pipe-{i}"
            )
            for i in range(200)
        ]
        answers = orders.collect(ids, timeout_s=30)
    assert [a["ok"] for a in answers] == [True] * 200
    assert [a["order"]["clordid"] for a in answers] == [f"pipe-{i}" for i in range(200)]
    assert {a["order"]["status"] for a in answers} == {"new"}
    # Each venue numbered its orders in the order they were sent.
    per_venue: dict[str, list[int]] = {}
    for a in answers:
        venue, n = a["order"]["order_id"].split("-")
        per_venue.setdefault(venue, []).append(int(n))
    assert all(ns == sorted(ns) for ns in per_venue.values())


def test_the_order_port_refuses_bad_requests_and_keeps_serving(stack: OrderStack) -> None:
    import zmq

    import tickdb

    address = stack.client().order_request("GET", "/orders-stream")["order_port"]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        for raw, fragment in [
            (b"{nope", "char 1"),
            (b"[1, 2]", "JSON object"),
            (b'{"op": "fly", "id": 1}', "op:"),
            (
                b'{"op": "new", "id": 2, "account": "A1", "sym": "AAPL", "side": "up", "qty": 1}',
                "side",
            ),
            (
                b'{"op": "new", "id": 3, "account": "A1", "sym": "AAPL", "side": "buy", '
                b'"qty": "1"}',
                "qty",
            ),
        ]:
            sock.send(raw)
            assert sock.poll(10_000)
            reply = json.loads(sock.recv())
            assert reply["ok"] is False and reply["error"] == "bad_request", reply
            assert fragment in reply["message"]
        sock.send(b"x" * (70 * 1024))  # past the port's message size: dropped unread
    finally:
        sock.close(0)
        ctx.term()
    with tickdb.Orders(stack.url) as orders:
        assert orders.submit("A1", "AAPL", "buy", 1, 1.00)["status"] == "new"
    assert "order port: bad request" in stack.gateway.log()  # type: ignore[union-attr]


def test_a_halted_account_refuses_new_orders_but_cancels_pass(
    stack: OrderStack, client: Client
) -> None:
    working = client.submit("A3", "GOOG", "buy", 2, 1.00, clordid="halt-w")
    client.set_trading_state("halted", account="A3")
    try:
        with pytest.raises(OrderRejected) as halted:
            client.submit("A3", "GOOG", "buy", 2, 1.00)
        assert halted.value.code == "trading_halted"
        assert client.cancel("A3", working["clordid"])["status"] == "canceled"
        client.set_trading_state("reducing", account="A3")
        with pytest.raises(OrderRejected) as reducing:
            client.submit("A3", "GOOG", "buy", 2, 1.00)  # A3 holds no GOOG: nothing to reduce
        assert reducing.value.code == "trading_reducing"
    finally:
        client.set_trading_state("active", account="A3")
    assert client.submit("A3", "GOOG", "buy", 2, 1.00)["status"] == "new"
    recorded = []
    with Subscriber(stack.tp_address, tables=["risk_admin"], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                recorded += message.data.to_pylist()
    assert [r["action"] for r in recorded if r["account"] == "A3"] == ["state"] * 3
