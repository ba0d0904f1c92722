"""``tickdb up`` with ``[curve]`` on: every component starts with it, ticks flow publisher ->
tickerplant -> RDB -> gateway query and orders flow over the order port; the order port lets
in only identities that may trade, and only for their accounts."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from support.auth_config import bearer
from support.curve_clients import nothing_arrives, raw_socket, wait_for_log
from support.curve_keys import COMPONENT, STRANGER, CurveKeys
from support.harness import wait_until, write_config
from support.rdb_stack import trades

import tickdb
from gateway.client import Client
from gateway.client_errors import GatewayError
from tickdb.auth import hash_token
from tickdb.config import load_config
from tickdb.stack import Stack

TOKEN = "tdb_alice-test-token"
ROLES = {
    "feed": ["publish:trade"],
    "alice": ["read", "trade:A1", "trade:A2"],
    "bob": ["trade:B1"],
    "reader": ["read:trade"],
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> CurveKeys:
    return CurveKeys(tmp_path_factory.mktemp("keys"), ROLES)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, keys: CurveKeys) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("up")
    sections = keys.sections()
    sections["auth.identities.alice"]["tokens"] = [hash_token(TOKEN)]
    path = write_config(
        tmp / "stack.toml",
        {
            "tickerplant": {
                "address": "tcp://127.0.0.1:0",
                "publish_address": "tcp://127.0.0.1:0",
                "replay_address": "tcp://127.0.0.1:0",
                "heartbeat_ms": 200,
                "kdb_port": 0,
            },
            "rdb": {"address": "tcp://127.0.0.1:0"},
            "hdb": {"address": "tcp://127.0.0.1:0"},
            "gateway": {"port": 0, "kdb_port": 0, "order_port": "tcp://127.0.0.1:0"},
            **sections,
        },
    )
    up = Stack(load_config(path, tmp / "data"), path, shards=1, demo=False, demo_rate=1)
    try:
        up.start()
        yield up
    finally:
        up.stop()


def component(stack: Stack, name: str) -> Any:
    return next(c for c in stack.components if c.name == name)


def gateway(stack: Stack) -> Client:
    return Client(stack.gateway_url(), timeout_s=30, token=TOKEN)


def test_every_component_connects_with_curve(stack: Stack) -> None:
    assert {c.name for c in stack.components} >= {"tickerplant", "rdb-0", "hdb-0", "venue-0"}
    # The RDB, the venue and the gateway each connected to the tickerplant as 'tickdb'.
    wait_for_log(component(stack, "tickerplant").log, f"is '{COMPONENT}'")
    for name in ("tickerplant", "rdb-0", "hdb-0", "gateway"):
        assert "THE ZEROMQ PORTS ARE OPEN" not in component(stack, name).log()


def test_ticks_flow_from_a_publisher_to_a_gateway_query(stack: Stack, keys: CurveKeys) -> None:
    address = str(component(stack, "tickerplant").info["address"])
    with tickdb.Publisher(address, curve=keys.client("feed"), timeout_s=10) as pub:
        pub.publish("trade", trades(0, 25))
        pub.flush()
    with gateway(stack) as client:

        def count() -> int:
            return int(client.query("select count(*) as n from trade")["n"][0].as_py())

        wait_until(lambda: count() == 25, timeout=30, what="25 trades through the gateway")


def test_orders_flow_over_the_order_port(stack: Stack, keys: CurveKeys) -> None:
    with tickdb.Orders(stack.gateway_url(), token=TOKEN, curve=keys.client("alice")) as orders:
        bid = orders.submit("A1", "AAPL", "buy", 100, 100.00, clordid="curve-1")
        assert bid["status"] == "new"
        ask = orders.submit("A2", "AAPL", "sell", 30, 99.90)
        assert ask["status"] == "filled" and ask["cum_qty"] == 30


def test_an_account_of_another_identity_is_refused(stack: Stack, keys: CurveKeys) -> None:
    with tickdb.Orders(stack.gateway_url(), token=TOKEN, curve=keys.client("bob")) as orders:
        with pytest.raises(GatewayError, match="'bob' may not trade account A1") as refused:
            orders.submit("A1", "AAPL", "buy", 1, 100.00)
        assert refused.value.status == 403
        with pytest.raises(GatewayError, match="may cancel only its own accounts"):
            orders.cancel_all()
        assert orders.cancel_all("B1")["ok"] is True
    wait_for_log(component(stack, "gateway").log, "'bob' may not trade account A1")


def refused(stack: Stack, why: str) -> float:
    request = urllib.request.Request(stack.gateway_url() + "/metrics", headers=bearer(TOKEN))
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read().decode()
    match = re.search(rf'tickdb_gateway_zeromq_refused_total{{why="{why}"}} (\S+)', text)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize(
    ("who", "why", "logged"),
    [
        (None, "handshake", "failed the CURVE handshake on the order port"),
        (STRANGER, "unknown_key", "denied CURVE key"),
        ("reader", "no_role", "'reader' has no trade role, which the order port needs"),
    ],
)
def test_the_order_port_refuses_clients_that_may_not_trade(
    stack: Stack, keys: CurveKeys, who: str | None, why: str, logged: str
) -> None:
    before = refused(stack, why)
    with gateway(stack) as client:
        port = client.order_request("GET", "/orders-stream")["order_port"]
    with raw_socket(zmq.DEALER, port, keys.client(who) if who else None) as sock:
        sock.send(b'{"op": "new", "account": "A1", "sym": "AAPL", "side": "buy", "qty": 1}')
        wait_until(lambda: refused(stack, why) > before, what=f"a refusal ({why})")
        assert nothing_arrives(sock)
    wait_for_log(component(stack, "gateway").log, logged)
