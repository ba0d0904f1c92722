"""A venue's mass-cancel answer is applied from its columns (``gateway/bulk_cancel.py``):
the gateway's state after it must be what the general path (an ``Event`` per row through
``OrderRouter.on_event``) leaves, live and rebuilt from the journal, on a real day's flow
(fills, partial fills, replaces, cancels, rejects), a kill and a mass cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.harness import wait_until
from support.order_flow import RISK, drive, flow, journal_rows
from support.order_stack import start_order_stack

from gateway import bulk_cancel
from gateway.order_json import order_dict
from gateway.order_router import OrderRouter
from gateway.order_stream import OrderStream
from orders.mass_cancel import close_canceled, mark_pending_cancel
from orders.model import EventType, MassCancel, Order, OrdStatus, OrdType, Side, TimeInForce
from orders.risk import risk_engine
from orders.states import InvalidTransition, apply
from tickdb.config import load_config
from tickerplant.publisher import Publisher


def state(stream: OrderStream) -> dict[str, Any]:
    router = stream.router
    with router.lock:
        return {
            "orders": {
                key: {**order_dict(o), "history": list(o.history), "prior": o.prior_status}
                for key, o in router._by_clordid.items()
            },
            "risk": router.risk.status(),
            "working": sorted(
                (w.account, w.sym, w.leaves, round(w.notional, 6))
                for w in router.risk._book.orders.values()
            ),
            "invalid": router.invalid_transitions,
            "venues": {
                label: (seen.events, seen.fills, seen.last_in_seq)
                for label, seen in stream.venues._seen.items()
            },
        }


def rebuilt(address: str, cfg: Any, pub: Publisher) -> dict[str, Any]:
    stream = OrderStream(OrderRouter(risk_engine(cfg), pub), address).start()
    try:
        assert stream.wait_ready(60)
        return state(stream)
    finally:
        stream.close()


def test_a_mass_cancel_applied_in_bulk_equals_it_applied_event_by_event(
    tmp_path: Path, monkeypatch: Any
) -> None:
    stack = start_order_stack(tmp_path, shards=2, extra_toml=RISK)
    try:
        drive(stack, flow(seed=11, count=500), crash_at=-1, crash=None)
        with stack.client() as client:
            # A partially filled order and a replaced one among those the kill cancels.
            client.submit("F1", "XOM", "sell", 10, 120.0, clordid="part")
            client.submit("F2", "XOM", "buy", 4, 120.0, clordid="taker")
            client.submit("F1", "BAC", "buy", 10, 60.0, clordid="orig")
            client.replace("F1", "orig", qty=20, new_clordid="repl")
            open_f1 = {o["clordid"] for o in client.orders("F1", open_only=True)}
            assert {"part", "repl"} <= open_f1 and len(open_f1) > 10
            assert client.order("F1", "part")["status"] == "partially_filled"
            killed = client.kill(account="F1")
            assert killed["canceled"] == len(open_f1)
            open_f2 = client.orders("F2", open_only=True)
            assert len(open_f2) > 2
            client.cancel_all(account="F2")
            wait_until(
                lambda: (
                    not client.orders("F1", open_only=True)
                    and not client.orders("F2", open_only=True)
                ),
                timeout=30,
                what="F1 and F2 closed",
            )
            live = {(o["account"], o["clordid"]): o for o in client.orders()}
        # Each order the kill named was canceled exactly once, in the journal.
        canceled = [
            (r["account"], r["clordid"])
            for r in journal_rows(stack, "order")
            if r["event"] == "canceled" and r["account"] == "F1" and r["reason"] == "mass_cancel"
        ]
        assert sorted(canceled) == sorted(("F1", c) for c in open_f1)

        cfg = load_config(stack.config)
        calls: list[int] = []
        apply_canceled = bulk_cancel.apply_canceled

        def counted(router: OrderRouter, by_name: dict[str, list[Any]], ts_ns: int) -> None:
            calls.append(len(by_name["event"]))
            apply_canceled(router, by_name, ts_ns)

        with Publisher(stack.tp_address) as pub:
            monkeypatch.setattr(bulk_cancel, "apply_canceled", counted)
            in_bulk = rebuilt(stack.tp_address, cfg, pub)
            # The kill's and the mass cancel's answers, one record per venue each.
            assert sum(calls) >= len(open_f1) + len(open_f2)
            monkeypatch.setattr(bulk_cancel, "MIN_ROWS", 10**9)  # every row an Event
            calls.clear()
            one_by_one = rebuilt(stack.tp_address, cfg, pub)
            assert not calls
        assert in_bulk == one_by_one
        assert in_bulk["invalid"] == 0
        # And what the live gateway (bulk too) holds.
        for key, order in live.items():
            assert order == {k: in_bulk["orders"][key][k] for k in order}, key
        part = in_bulk["orders"][("F1", "part")]
        assert (part["status"], part["cum_qty"], part["leaves_qty"]) == ("canceled", 4, 0)
        assert in_bulk["orders"][("F1", "repl")]["qty"] == 20
        accounts = in_bulk["risk"]["accounts"]
        assert all(accounts[a]["open_orders"] == 0 for a in ("F1", "F2") if a in accounts)
    finally:
        stack.stop()


def test_marking_moves_an_order_as_apply_does_or_leaves_it_where_apply_refuses() -> None:
    for status in OrdStatus:
        for prior in (None, OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED):
            general, marked = (
                Order("V0-1", "A", "S", "c", Side.BUY, 10, OrdType.LIMIT, 1.0,
                      TimeInForce.DAY, status=status, prior_status=prior)
                for _ in range(2)
            )  # fmt: skip
            try:
                apply(general, EventType.PENDING_CANCEL)
            except InvalidTransition:
                general.status, general.prior_status = status, prior  # as it was
            mark_pending_cancel([marked])
            assert general == marked and general.history == marked.history, (status, prior)


class Sent:
    """The router's publisher, recording what it sends (no tickerplant: the marking alone)."""

    def __init__(self) -> None:
        self.payloads: list[tuple[str, bytes]] = []

    def publish_ipc(self, table: str, payload: bytes) -> int:
        self.payloads.append((table, payload))
        return len(self.payloads)

    def flush(self) -> None:
        pass


def test_a_kill_marks_every_working_order_and_goes_past_a_pending_replace() -> None:
    sent = Sent()
    router = OrderRouter(risk_engine(load_config(None)), sent)  # type: ignore[arg-type]
    router.ready = True
    statuses = [
        OrdStatus.NEW,
        OrdStatus.PARTIALLY_FILLED,
        OrdStatus.REPLACED,
        OrdStatus.PENDING_CANCEL,
        OrdStatus.PENDING_REPLACE,
        OrdStatus.PENDING_NEW,
        OrdStatus.FILLED,
        OrdStatus.CANCELED,
    ]
    orders = {}
    for i, status in enumerate(statuses):
        order = Order(f"V0-{i}", "K1", "S", f"c{i}", Side.BUY, 10, OrdType.LIMIT, 1.0,
                      TimeInForce.DAY, status=status, prior_status=OrdStatus.NEW
                      if status in (OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE)
                      else None)  # fmt: skip
        router._by_clordid[("K1", order.clordid)] = orders[status] = order
    other = Order("V0-9", "K2", "S", "k2", Side.BUY, 10, OrdType.LIMIT, 1.0, TimeInForce.DAY)
    router._by_clordid[("K2", "k2")] = other
    targets = router.mass_cancel(MassCancel(account="K1", clordid="kill"), wait=False)
    assert [table for table, _ in sent.payloads] == ["order_request"]
    assert {o.clordid for o in targets} == {f"c{i}" for i in range(6)}  # the open ones
    after = {status: (o.status, o.prior_status) for status, o in orders.items()}
    assert after == {
        OrdStatus.NEW: (OrdStatus.PENDING_CANCEL, OrdStatus.NEW),
        OrdStatus.PARTIALLY_FILLED: (OrdStatus.PENDING_CANCEL, OrdStatus.PARTIALLY_FILLED),
        OrdStatus.REPLACED: (OrdStatus.PENDING_CANCEL, OrdStatus.REPLACED),
        OrdStatus.PENDING_CANCEL: (OrdStatus.PENDING_CANCEL, OrdStatus.NEW),
        # The table has no cancel of a pending replace: left so, the venue's answer closes it.
        OrdStatus.PENDING_REPLACE: (OrdStatus.PENDING_REPLACE, OrdStatus.NEW),
        OrdStatus.PENDING_NEW: (OrdStatus.PENDING_NEW, None),
        OrdStatus.FILLED: (OrdStatus.FILLED, None),
        OrdStatus.CANCELED: (OrdStatus.CANCELED, None),
    }
    assert other.status is OrdStatus.NEW


def test_close_canceled_moves_an_order_as_apply_does_from_every_status() -> None:
    for status in OrdStatus:
        for prior in (None, OrdStatus.NEW):
            general, fast = (
                Order("V0-1", "A", "S", "c", Side.BUY, 10, OrdType.LIMIT, 1.0,
                      TimeInForce.DAY, status=status, prior_status=prior)
                for _ in range(2)
            )  # fmt: skip
            outcomes = []
            for order, move in ((general, apply), (fast, lambda o, _: close_canceled(o))):
                try:
                    move(order, EventType.CANCELED)
                    outcomes.append(None)
                except InvalidTransition as exc:
                    outcomes.append(str(exc))
            assert outcomes[0] == outcomes[1], (status, prior)
            assert general == fast and general.history == fast.history, (status, prior)
