"""A venue primary/standby pair on an order stack, a stream of crossing orders against it,
and the check that its output is exactly what a fresh engine makes of the journal."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from orders.book import MatchingEngine
from orders.model import Event, Fill
from orders.rows import event_row, fill_row
from orders.venue import Venue
from support.harness import Proc, wait_until
from support.order_flow import RISK, journal_rows
from support.order_stack import OrderStack, start_order_stack
from tickdb.types import Shard
from tickerplant.subscriber import Subscriber, Update

SYMS = ["AAPL", "MSFT", "GOOG"]


def role(workdir: Path, name: str) -> dict[str, Any]:
    try:
        return dict(json.loads((workdir / "run" / f"{name}.role.json").read_text()))
    except (OSError, ValueError):
        return {}


def start(workdir: Path, **orders: object) -> tuple[OrderStack, Proc]:
    """A one-shard order stack whose venue is a pair, primary and standby (``orders``: more
    ``[orders]`` settings)."""
    lease = ("--lease-dir", str(workdir / "run"))
    stack = start_order_stack(
        workdir,
        shards=1,
        venue_args=("--lease", "--name", "venue-0", *lease),
        orders={"submit_timeout_s": 5.0, **orders},
        extra_toml=RISK,
    )
    args = ["venue", "--config", str(stack.config), "--tp", stack.tp_address, "--shard", "0/1"]
    standby = Proc(
        [*args, "--standby", "--name", "venue-0-s", *lease],
        workdir,
        "venue-0-s",
        ready_timeout=60,
    )
    assert role(workdir, "venue-0")["role"] == "primary"
    assert role(workdir, "venue-0-s")["role"] == "standby"
    return stack, standby


class Orders(threading.Thread):
    """Crossing orders without pause; the ClOrdIDs the gateway acknowledged."""

    def __init__(self, stack: OrderStack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.acked: list[tuple[str, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.stack.client() as client:
            i = 0
            while not self.stop.is_set():
                account = f"A{i % 2}"
                side = "buy" if i % 2 else "sell"
                clordid = f"s-{i}"
                client.submit(account, SYMS[i % 3], side, 5, 100.0, clordid=clordid, wait=False)
                self.acked.append((account, clordid))
                i += 1
                time.sleep(0.003)  # pacing, not waiting on a condition: ~200 orders/s

    def count(self) -> int:
        return len(self.acked)


def replayed(stack: OrderStack) -> dict[str, list[dict[str, Any]]]:
    """What a fresh engine makes of the journal's order_request stream."""
    venue = Venue.__new__(Venue)
    venue.shard, venue.label, venue._owned = Shard(0, 1), "0/1", {}
    venue.inputs = venue.bad_inputs = 0
    venue.engine = MatchingEngine(id_prefix="V0-")
    out: dict[str, list[dict[str, Any]]] = {"order": [], "fill": []}
    with Subscriber(stack.tp_address, tables=["order_request"], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            for o in venue.apply(message) if isinstance(message, Update) else []:
                if isinstance(o, Event):
                    out["order"].append(event_row(o, "0/1", message.seq))
                elif isinstance(o, Fill):
                    out["fill"].append(fill_row(o, "0/1", message.seq))
    return out


def venue_output(stack: OrderStack, table: str) -> list[dict[str, Any]]:
    rows = journal_rows(stack, table)
    return [{k: v for k, v in r.items() if k != "time"} for r in rows if r["venue"] == "0/1"]


def assert_exactly_once(stack: OrderStack, orders: Orders) -> None:
    with stack.client() as client:
        wait_until(
            lambda: all(o["status"] != "pending_new" for o in client.orders()),
            timeout=30,
            what="every order answered by a venue",
        )
        answered = {(o["account"], o["clordid"]) for o in client.orders()}
    assert set(orders.acked) <= answered
    expected = replayed(stack)
    for table in ("order", "fill"):
        assert venue_output(stack, table) == expected[table], f"{table} rows"
    assert expected["fill"]  # the flow traded
