"""The load of ``scripts/chaos.py``: a stream of orders, a query load and a probe publisher,
every operation timed.

The clients are given every gateway (every tickerplant node, for the publisher) and fail
over between them as any client would (``tickdb.Orders``, ``tickdb.Client``,
``tickdb.Publisher``). Each operation is logged as an ``Op`` (kind,
start, end, ok), which the chaos run reads to time each failover: from the kill to the
first success of an operation that started after it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from gateway.client import Client, GatewayError
from gateway.order_session import Orders

ACCOUNT = "CHAOS"
SYMS = ["AAPL", "MSFT", "AMZN"]
QUERIES = [
    "SELECT count(*) AS n FROM trade",
    "SELECT sym, count(*) AS n, max(bid) AS hi FROM quote GROUP BY sym",
]


@dataclass
class Op:
    kind: str  # "query" | "order" | "publish" (a batch published and acknowledged)
    started: float
    ended: float
    ok: bool
    via: str  # the gateway address that answered (or was asked last)


@dataclass
class OpLog:
    ops: list[Op] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # client-visible, with the kind
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: Op, error: str = "") -> None:
        with self.lock:
            self.ops.append(op)
            if error:
                self.errors.append(f"{op.kind}: {error}")

    def since(self, t: float) -> list[Op]:
        with self.lock:
            return [op for op in self.ops if op.started >= t]

    def first_ok(self, kind: str, t: float) -> float | None:
        """When the first ``kind`` operation started at or after ``t`` succeeded."""
        done = [op.ended for op in self.since(t) if op.kind == kind and op.ok]
        return min(done) if done else None

    def count(self, kind: str) -> int:
        with self.lock:
            return sum(op.kind == kind for op in self.ops)


class Load:
    """``query_clients`` threads querying without pause, one order stream and (given the
    tickerplant's addresses) one publisher waiting for each batch's acknowledgement."""

    def __init__(
        self,
        urls: list[str],
        order_ports: list[str],
        query_clients: int,
        tp: str = "",
        query_rate: float = 0.0,
    ) -> None:
        """``query_rate``: queries a second each query client starts (0: back to back)."""
        self.urls, self.order_ports = urls, order_ports
        self.query_rate = query_rate
        self.log = OpLog()
        self.acked: list[str] = []  # ClOrdIDs the venue answered (the order exists)
        self.order_failures: list[str] = []  # orders not acknowledged (timeouts, refusals)
        self.query_client: Client | None = None  # one of them, to see where queries go
        self.orders: Orders | None = None
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self._queries, args=(i,), daemon=True, name=f"query-{i}")
            for i in range(query_clients)
        ]
        self.threads.append(threading.Thread(target=self._orders, daemon=True, name="orders"))
        self.tp = tp
        if tp:
            publish = threading.Thread(target=self._publish, daemon=True, name="publish")
            self.threads.append(publish)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(60)

    def _queries(self, index: int) -> None:
        # Active-active: the clients start on different gateways, as a deployment spreads
        # them, so every gateway is in use (and warm) when another one dies.
        start = index % len(self.urls)
        urls = self.urls[start:] + self.urls[:start]
        # Longer than any freeze: a frozen gateway delays a query, it does not fail it.
        with Client(urls, timeout_s=60) as client:
            if index == 0:
                self.query_client = client
            n = 0
            while not self.stop_event.is_set():
                sql = QUERIES[n % len(QUERIES)]
                n += 1
                started = time.monotonic()
                try:
                    client.query(sql)
                    self.log.add(Op("query", started, time.monotonic(), True, client.url))
                except GatewayError as exc:
                    op = Op("query", started, time.monotonic(), False, client.url)
                    self.log.add(op, f"{exc} ({sql})")
                if self.query_rate > 0:  # paced: the next query on its own schedule
                    self.stop_event.wait(max(0.0, started + 1 / self.query_rate - time.monotonic()))

    def _orders(self) -> None:
        with Orders(self.order_ports, timeout_s=60) as orders:
            self.orders = orders
            n = 0
            while not self.stop_event.is_set():
                n += 1
                clordid = f"chaos-{n}"
                # Alternating sides around one price: about half of them trade.
                side = "buy" if n % 2 else "sell"
                price = 100.0 + (n % 7 - 3) / 100
                started = time.monotonic()
                try:
                    order = orders.submit(
                        ACCOUNT, SYMS[n % 3], side, 1 + n % 5, price, clordid=clordid
                    )
                    ok = bool(order.get("order_id"))
                except GatewayError as exc:  # OrderRejected included
                    self.order_failures.append(f"{clordid}: {exc}")
                    ok = False
                except Exception as exc:  # a bug of the client: shown, and the stream goes on
                    self.order_failures.append(f"{clordid}: {type(exc).__name__}: {exc}")
                    ok = False
                if ok:
                    self.acked.append(clordid)
                self.log.add(Op("order", started, time.monotonic(), ok, orders.address))

    def _publish(self) -> None:
        """A small trade batch, acknowledged, then the next: an ack after a tickerplant
        failover is the new primary's (``Publisher`` resends what was not acknowledged)."""
        from tickerplant.publisher import Publisher
        from tickerplant.table_payload import to_arrow

        with Publisher(self.tp, timeout_s=60, resend_after_s=0.3) as publisher:
            rows = {"sym": SYMS, "price": [100.0] * len(SYMS), "size": [1] * len(SYMS)}
            batch = to_arrow(rows, publisher.schemas["trade"])
            while not self.stop_event.is_set():
                started = time.monotonic()
                try:
                    publisher.publish("trade", batch)
                    publisher.flush()
                    self.log.add(Op("publish", started, time.monotonic(), True, self.tp))
                except Exception as exc:  # timed out or refused: shown with the errors
                    op = Op("publish", started, time.monotonic(), False, self.tp)
                    self.log.add(op, f"{type(exc).__name__}: {exc}")
                self.stop_event.wait(0.02)  # ~50 batches/s beside the feed
