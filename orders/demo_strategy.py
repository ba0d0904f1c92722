"""A small demo strategy, so a newcomer sees orders, fills and positions at once.

Two accounts trade around the demo market's quotes through the gateway, like any client:
``DEMO-MM`` keeps a bid and an offer a few ticks around the mid of a handful of syms and
moves them (replace) as the mid moves; ``DEMO-TAKER`` now and then sends an IOC order that
crosses the spread, which fills against the market maker. With the venues in paper mode
(``tickdb up --demo``) the resting quotes also fill against the live market.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from gateway.client import Client, GatewayError
from tickerplant.subscriber import Subscriber, Update

log = logging.getLogger(__name__)

MAKER, TAKER = "DEMO-MM", "DEMO-TAKER"
SYMS = ["AAPL", "MSFT", "AMZN", "GOOG"]
TICK = 0.01


def _on_tick(price: float) -> float:
    return round(round(price / TICK) * TICK, 2)


class DemoStrategy:
    def __init__(
        self, url: str, *, interval_s: float = 0.25, seed: int = 11, token: str | None = None
    ) -> None:
        self.client = Client(url, timeout_s=10, token=token)
        self.interval_s = interval_s
        self.rng = random.Random(seed)
        self.mids: dict[str, float] = {}
        self.quotes: dict[tuple[str, str], str] = {}  # (sym, side) -> resting ClOrdID
        where = self.client.order_request("GET", "/orders-stream")
        self._sub = Subscriber(where["tickerplant"], tables=["quote"], syms=SYMS)

    def _read_mids(self) -> None:
        # poll(0) only drains what is already read; a millisecond reads the socket too.
        while (message := self._sub.poll(0.001)) is not None:
            if isinstance(message, Update):
                data = message.data.select(["sym", "bid", "ask"]).to_pydict()
                for sym, bid, ask in zip(data["sym"], data["bid"], data["ask"], strict=True):
                    if bid and ask and ask > bid:
                        self.mids[sym] = (bid + ask) / 2

    def _quote(self, sym: str, side: str, price: float) -> None:
        clordid = self.quotes.get((sym, side))
        try:
            if clordid is not None:
                state = self.client.order(MAKER, clordid)
                if state["status"] in ("new", "partially_filled", "replaced"):
                    if abs(state["price"] - price) >= TICK / 2:
                        state = self.client.replace(MAKER, clordid, price=price)
                        self.quotes[(sym, side)] = state["clordid"]
                    return
            order = self.client.submit(MAKER, sym, side, 100, price, strategy="demo-mm")
            self.quotes[(sym, side)] = order["clordid"]
        except GatewayError as exc:
            log.info("maker %s %s: %s", sym, side, exc)

    def step(self) -> None:
        self._read_mids()
        for sym, mid in self.mids.items():
            self._quote(sym, "buy", _on_tick(mid - 3 * TICK))
            self._quote(sym, "sell", _on_tick(mid + 3 * TICK))
        if self.mids and self.rng.random() < 0.5:
            sym = self.rng.choice(sorted(self.mids))
            side = self.rng.choice(["buy", "sell"])
            cross = self.mids[sym] + (5 if side == "buy" else -5) * TICK
            try:
                self.client.submit(
                    TAKER,
                    sym,
                    side,
                    self.rng.choice([10, 20, 50]),
                    _on_tick(cross),
                    tif="ioc",
                    strategy="demo-taker",
                )
            except GatewayError as exc:
                log.info("taker %s: %s", sym, exc)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.step()
            stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def close(self) -> None:
        self._sub.close()
        self.client.close()
