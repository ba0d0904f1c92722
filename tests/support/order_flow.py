"""A deterministic order flow and a driver that sends it at a fixed rate through the
order port, surviving a gateway crash; and the journal read back per venue. For the
recovery tests, which compare a run with a crash against one without."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from typing import Any

import zmq

from support.harness import wait_until
from support.order_stack import OrderStack
from tickerplant.subscriber import Subscriber, Update

SYMS = ["AAPL", "MSFT", "GOOG", "TSLA", "BAC", "IBM"]
VOLATILE = {"time", "in_seq"}  # the tickerplant's stamps, not the venue's decisions
# The risk checks a fast, repetitive test flow would trip, off (the flows are not about risk).
RISK = """
[risk.defaults]
max_messages_per_s = 0
duplicate_window_s = 0
max_open_orders = 0
max_open_orders_per_sym = 0
max_fills_per_window = 0
"""


def journal_rows(stack: OrderStack, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with Subscriber(stack.tp_address, tables=[table], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                rows += message.data.to_pylist()
    return rows


def per_venue(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by venue, in journal order, without the tickerplant's stamps."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row["venue"]].append({k: v for k, v in row.items() if k not in VOLATILE})
    return dict(out)


def flow(seed: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    """A deterministic order flow: orders that trade, orders far from the market that rest
    and are later replaced or canceled. Every step's outcome is decided by the venue alone,
    never by what the gateway happens to know at that moment."""
    rng = random.Random(seed)
    steps: list[tuple[str, dict[str, Any]]] = []
    resting: list[tuple[str, str]] = []
    for i in range(count):
        account = rng.choice(["F1", "F2", "F3"])
        sym = rng.choice(SYMS)
        roll = rng.random()
        if roll < 0.1 and resting:
            acct, clordid = resting.pop(rng.randrange(len(resting)))
            steps.append(("cancel", {"account": acct, "clordid": clordid}))
        elif roll < 0.2 and resting:
            acct, clordid = resting[rng.randrange(len(resting))]
            steps.append(("replace", {"account": acct, "clordid": clordid, "qty": 99}))
            resting.remove((acct, clordid))
        elif roll < 0.35:
            clordid = f"far-{i}"
            side = rng.choice(["buy", "sell"])
            price = 50.0 if side == "buy" else 150.0  # never crosses the traded band
            steps.append(
                (
                    "submit",
                    {
                        "account": account,
                        "sym": sym,
                        "side": side,
                        "qty": 10,
                        "price": price,
                        "clordid": clordid,
                        "tif": "gtc",
                    },
                )
            )
            resting.append((account, clordid))
        else:
            side = rng.choice(["buy", "sell"])
            price = round(100 + rng.randint(-5, 5) * 0.01, 2)
            steps.append(
                (
                    "submit",
                    {
                        "account": account,
                        "sym": sym,
                        "side": side,
                        "qty": rng.choice([1, 5, 10, 25]),
                        "price": price,
                        "clordid": f"o-{i}",
                        "tif": rng.choice(["day", "ioc", "gtc"]),
                    },
                )
            )
    return steps


def request_of(i: int, kind: str, args: dict[str, Any]) -> bytes:
    """Step ``i`` as an order-port request; its id is its index."""
    if kind == "submit":
        body = {"op": "new", **args}
    elif kind == "cancel":
        body = {
            "op": "cancel",
            "account": args["account"],
            "orig_clordid": args["clordid"],
            "clordid": f"{args['clordid']}-c",
        }
    else:
        body = {
            "op": "replace",
            "account": args["account"],
            "orig_clordid": args["clordid"],
            "clordid": f"{args['clordid']}-r",
            "qty": args["qty"],
        }
    return json.dumps({**body, "id": i, "wait": False}).encode()


class PacedDriver:
    """Sends the flow to the order port at ``rate`` requests/s, at most ``window`` unanswered.

    A socket monitor reports the connection dropping (a dead gateway): the driver then
    closes its socket, dropping whatever was still queued in it, reconnects once the
    gateway is back, and resends every unanswered request in order with the same ClOrdIDs.
    What the dead gateway had sequenced is answered as a duplicate and the rest is sent now,
    so the sequence stays the flow's own order."""

    def __init__(self, stack: OrderStack, address: str, rate: float = 1000, window: int = 200):
        self.stack = stack
        self.address = address
        self.rate = rate
        self.window = window
        self.ctx = zmq.Context()
        self.reconnects = 0
        self.sock, self.monitor = self._connect()

    def _connect(self) -> tuple[zmq.Socket, zmq.Socket]:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.connect(self.address)
        return sock, monitor

    def _dropped(self) -> bool:
        try:
            self.monitor.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _reconnect(self, unanswered: dict[int, bytes]) -> None:
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)
        old = self.stack.gateway
        wait_until(
            lambda: self.stack.gateway is not old and self.stack.gateway is not None,
            timeout=60,
            what="the gateway back",
        )
        self.sock, self.monitor = self._connect()
        self.reconnects += 1
        for raw in unanswered.values():  # in the order first sent
            self.sock.send(raw)

    def run(self, steps: list[tuple[str, dict[str, Any]]], crash_at: int, crash: Any) -> None:
        unanswered: dict[int, bytes] = {}
        sent = 0
        crashed = False
        start = time.monotonic()
        while sent < len(steps) or unanswered:
            if self._dropped():
                self._reconnect(unanswered)
            now = time.monotonic()
            while (
                sent < len(steps)
                and now >= start + sent / self.rate
                and len(unanswered) < self.window
            ):
                if sent == crash_at and not crashed:
                    crash()
                    crashed = True
                    break  # look at the connection before sending more
                raw = request_of(sent, *steps[sent])
                unanswered[sent] = raw
                self.sock.send(raw)
                sent += 1
            if self.sock.poll(1):
                while True:
                    try:
                        body = json.loads(self.sock.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                    unanswered.pop(body["id"], None)
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)
        self.ctx.term()


def settle(stack: OrderStack, expected_requests: int) -> None:
    """Wait until every venue has answered everything in the journal."""

    def answered() -> bool:
        with stack.client() as c:
            return not any(o["status"].startswith("pending") for o in c.orders())

    wait_until(answered, timeout=60, what="every request answered")


def drive(
    stack: OrderStack, steps: list[tuple[str, dict[str, Any]]], crash_at: int, crash: Any
) -> PacedDriver:
    """Run the flow at 1k requests/s through the order port, until all is answered."""
    assert stack.gateway is not None
    driver = PacedDriver(stack, str(stack.gateway.info["order_port"]))
    driver.run(steps, crash_at, crash)
    settle(stack, len(steps))
    return driver
