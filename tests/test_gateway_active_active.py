"""Two gateways over one tickerplant and venue (active-active), real processes on loopback.

Each gateway applies the other's ``order_request`` rows, so a retry sent to the other one
is answered with the existing order; the same ClOrdID sent to both at once makes one order;
a client given both addresses goes on through the second when the first is killed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.harness import wait_until
from support.order_stack import OrderStack, start_order_stack

from gateway.client import Client, GatewayError
from gateway.order_session import Orders
from tickerplant.subscriber import Subscriber, Update

RISK = """
[risk.defaults]
max_order_qty = 10000
max_open_orders = 100000
max_open_orders_per_sym = 100000
duplicate_window_s = 0
max_messages_per_s = 100000

[risk.accounts.A1]
[risk.accounts.R1]
[risk.accounts.K1]
[risk.accounts.K2]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("active"), shards=1, orders={"syms": ["AAPL"]}, extra_toml=RISK
    )
    try:
        running.start_gateway(name="gateway-b")
        yield running
    finally:
        running.stop()


def urls(stack: OrderStack) -> list[str]:
    return [stack.url, str(stack.more_gateways[0].info["url"])]


def accepted_rows(stack: OrderStack, account: str) -> dict[str, list[dict[str, Any]]]:
    """The venue's ``accepted`` rows in the journal for ``account``, by ClOrdID."""
    found: dict[str, list[dict[str, Any]]] = {}
    with Subscriber(stack.tp_address, tables=["order"], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                for row in message.data.to_pylist():
                    if row["account"] == account and row["event"] == "accepted":
                        found.setdefault(row["clordid"], []).append(row)
    return found


def status_or_none(client: Client, account: str, clordid: str) -> str | None:
    """The order's status at this gateway, or None while it does not know the ClOrdID."""
    try:
        return str(client.order(account, clordid)["status"])
    except GatewayError as exc:
        if exc.status == 404:
            return None
        raise


def test_a_retry_sent_to_the_other_gateway_returns_the_existing_order(
    stack: OrderStack,
) -> None:
    url_a, url_b = urls(stack)
    with Client(url_a, timeout_s=30) as a, Client(url_b, timeout_s=30) as b:
        first = a.submit("A1", "AAPL", "buy", 5, 100.00, clordid="peer-1")
        # The other gateway learns of the order from the tickerplant, a moment after the
        # first one answered (a retry it takes before then is the same order all the same,
        # not marked a duplicate: the same-ClOrdID race test below).
        wait_until(lambda: status_or_none(b, "A1", "peer-1") == "new", 10)
        again = b.submit("A1", "AAPL", "buy", 5, 100.00, clordid="peer-1")
        assert again["duplicate"] is True and again["order_id"] == first["order_id"]
        # The other gateway cancels the first one's order; a retry of that cancel sent to
        # the first gateway is answered without a second request.
        canceled = b.cancel("A1", "peer-1", cancel_clordid="peer-1-c")
        assert canceled["status"] == "canceled"
        # The first gateway learns of the cancel from the tickerplant, a moment after the
        # other one answered: until then it does not know that ClOrdID (404).
        wait_until(lambda: status_or_none(a, "A1", "peer-1-c") == "canceled", 10)
        assert a.cancel("A1", "peer-1", cancel_clordid="peer-1-c")["status"] == "canceled"
    assert len(accepted_rows(stack, "A1")["peer-1"]) == 1


def test_the_same_clordid_sent_to_both_gateways_at_once_makes_one_order(
    stack: OrderStack,
) -> None:
    url_a, url_b = urls(stack)
    answers: dict[str, list[Any]] = {}
    with Client(url_a, timeout_s=30) as a, Client(url_b, timeout_s=30) as b:
        for i in range(15):
            clordid = f"race-{i}"
            gate = threading.Barrier(2)
            got: list[Any] = []

            def send(
                client: Client,
                c: str = clordid,
                g: threading.Barrier = gate,
                into: list[Any] = got,
            ) -> None:
                g.wait()
                try:
                    into.append(client.submit("R1", "AAPL", "buy", 1, 90.00, clordid=c))
                except GatewayError as exc:  # pragma: no cover - shown in the assert
                    into.append(exc)

            threads = [threading.Thread(target=send, args=(c,)) for c in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            answers[clordid] = got
        for clordid, got in answers.items():
            assert len(got) == 2 and all(isinstance(g, dict) for g in got), got
            assert got[0]["order_id"] and got[0]["order_id"] == got[1]["order_id"], got
            assert a.order("R1", clordid)["order_id"] == b.order("R1", clordid)["order_id"]
    accepted = accepted_rows(stack, "R1")
    assert sorted(accepted) == sorted(answers)
    assert all(len(rows) == 1 for rows in accepted.values())


def test_clients_with_both_addresses_go_on_when_one_gateway_is_killed(
    stack: OrderStack,
) -> None:
    """Runs last in this module: it kills the first gateway. An HTTP client
    (``tickdb.Client``) and an order-port client (``tickdb.Orders``) send orders
    throughout, each given both gateways."""
    url_b = urls(stack)[1]
    client = Client(urls(stack), timeout_s=30)
    orders = Orders(urls(stack), timeout_s=30)
    port_b = orders.addresses[1]
    sent: dict[str, list[str]] = {"K1": [], "K2": []}
    done: dict[str, list[tuple[float, str]]] = {"K1": [], "K2": []}  # (answered, by whom)
    errors: list[Exception] = []
    stop = threading.Event()

    def flow(account: str) -> None:
        i = 0
        while not stop.is_set():
            clordid = f"{account}-{i}"
            sent[account].append(clordid)
            price = 80.00 + (i % 50) / 100
            try:
                if account == "K1":
                    order = client.submit(account, "AAPL", "buy", 1, price, clordid=clordid)
                    by = client.url
                else:
                    order = orders.submit(account, "AAPL", "buy", 1, price, clordid=clordid)
                    by = orders.address
                assert order["order_id"], order
            except Exception as exc:
                errors.append(exc)
                return
            done[account].append((time.monotonic(), by))
            i += 1

    threads = [threading.Thread(target=flow, args=(a,)) for a in ("K1", "K2")]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: min(len(d) for d in done.values()) >= 15 or errors, 20, "orders before")
        killed_at = time.monotonic()
        stack.gateway.kill9()  # type: ignore[union-attr]
        after = {a: len(d) for a, d in done.items()}
        wait_until(
            lambda: all(len(done[a]) >= after[a] + 15 for a in done) or errors, 20, "orders after"
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        client.close()
        orders.close()
    assert not errors, errors
    assert client.failovers == 1 and orders.failovers == 1
    for account, other in (("K1", url_b), ("K2", port_b)):
        first = next(t for t, by in done[account] if t > killed_at and by == other)
        print(
            f"{account}: kill to first answer from the other gateway: "
            f"{(first - killed_at) * 1000:.1f} ms"
        )
        assert first - killed_at < 2.0  # the goal is 0.2 s; generous on a loaded machine
        accepted = accepted_rows(stack, account)
        assert sorted(accepted) == sorted(sent[account])
        assert all(len(rows) == 1 for rows in accepted.values())
