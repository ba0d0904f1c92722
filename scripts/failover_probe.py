"""Requests sent at the very moment of a gateway kill, by clients that were using it.

The chaos load's clients send back to back: when a gateway dies, each is in the middle of a
request, which it retries on the other gateway, and only the request after that one counts
as *started after the kill*. Its first success therefore includes a whole earlier request
on the survivor, not only the failover. A probe measures the failover itself: a
``tickdb.Client`` and a ``tickdb.Orders``, each given the victim first and the other
gateways after it, warmed by one request to the victim (a kept-alive connection, the order
port connected), then sent one query and one order right after the SIGKILL; the time from
the kill until each succeeds on another gateway. Beside them, ``refused``: when the victim's
HTTP port first refuses a connection, the moment the kernel has closed the dead process's
sockets (a client cannot see the death before it).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any

from chaos_load import ACCOUNT, QUERIES, SYMS

from gateway.client import Client
from gateway.order_session import Orders

_ids = itertools.count(1)


def timed_at_once(at: float, calls: dict[str, Any]) -> dict[str, float]:
    """Run each call on a thread of its own, all at once: ms from ``at`` until each
    returned (a call that raised is missing)."""
    took: dict[str, float] = {}

    def timed(kind: str, call: Any) -> None:
        call()
        took[kind] = (time.monotonic() - at) * 1000

    threads = [threading.Thread(target=timed, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return took


def submit_probe_order(orders: Orders, prefix: str) -> str:
    """One small order of the chaos account; its ClOrdID once accepted."""
    n = next(_ids)
    clordid = f"{prefix}-{n}-{time.time_ns()}"
    answer = orders.submit(ACCOUNT, SYMS[n % 3], "buy", 1, 99.0, clordid=clordid)
    if not answer.get("order_id"):
        raise RuntimeError(f"probe order not accepted: {answer}")
    return clordid


class GatewayProbe:
    def __init__(self, urls: dict[str, str], ports: dict[str, str]) -> None:
        """``urls`` and ``ports``: each gateway's HTTP address and order port, by name."""
        self.urls, self.ports = urls, ports
        self._client: Client | None = None
        self._orders: Orders | None = None
        self._victim = ""

    def arm(self, victim: str) -> None:
        """Clients that use ``victim`` now (warmed), to be fired at its kill."""
        self.close()
        self._victim = victim
        others = [n for n in self.urls if n != victim]
        self._client = Client([self.urls[victim], *(self.urls[n] for n in others)], timeout_s=30)
        self._orders = Orders([self.ports[victim], *(self.ports[n] for n in others)], timeout_s=30)
        self._client.query(QUERIES[0])
        self._order()

    def fire(self, at: float) -> dict[str, float]:
        """One query and one order at once, now: ms from ``at`` until each succeeded."""
        assert self._client is not None and self._orders is not None
        client = self._client
        return timed_at_once(
            at,
            {
                "query": lambda: client.query(QUERIES[0]),
                "order": self._order,
                "refused": self._refused,
            },
        )

    def _refused(self) -> None:
        """Returns once the victim's HTTP port refuses a connection."""
        host, port = self.urls[self._victim].split("//", 1)[1].rsplit(":", 1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
            except OSError:
                return
            time.sleep(0.001)  # polling a port, not waiting for a result

    def _order(self) -> None:
        assert self._orders is not None
        submit_probe_order(self._orders, "probe")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._orders is not None:
            self._orders.close()
        self._client = self._orders = None


class FlowProbe:
    """The same for a tickerplant node's or a venue's kill: a ``Publisher`` given both
    tickerplant nodes and a ``tickdb.Orders`` (whose order goes through a gateway, the
    tickerplant and the shard's venue, and back), each warmed, send a batch (acknowledged)
    and an order right after the kill (``kinds``: which of the two). The load's own
    publisher and order stream are each in the middle of a request then, which completes
    only after the failover: their first request *started after* the kill holds a whole
    round trip more."""

    def __init__(
        self, tp_address: str, order_ports: list[str], kinds: tuple[str, ...] = ("publish", "order")
    ) -> None:
        self.tp_address, self.order_ports, self.kinds = tp_address, order_ports, kinds
        self._publisher: Any = None
        self._orders: Orders | None = None
        self._batch: Any = None
        self.acked: list[str] = []  # its orders' ClOrdIDs, for the soak's exactly-once check

    def arm(self, victim: str) -> None:
        from tickerplant.publisher import Publisher
        from tickerplant.table_payload import to_arrow

        self.close()
        if "publish" in self.kinds:
            self._publisher = Publisher(self.tp_address, timeout_s=30, resend_after_s=0.3)
            rows = {"sym": SYMS[:1], "price": [100.0], "size": [1]}
            self._batch = to_arrow(rows, self._publisher.schemas["trade"])
            self._publish()
        if "order" in self.kinds:
            self._orders = Orders(self.order_ports, timeout_s=30)
            self._order()

    def _publish(self) -> None:
        self._publisher.publish("trade", self._batch)
        self._publisher.flush()

    def _order(self) -> None:
        assert self._orders is not None
        self.acked.append(submit_probe_order(self._orders, "tp-probe"))

    def fire(self, at: float) -> dict[str, float]:
        calls = {"publish": self._publish, "order": self._order}
        return timed_at_once(at, {kind: calls[kind] for kind in self.kinds})

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        if self._orders is not None:
            self._orders.close()
        self._publisher = self._orders = None
