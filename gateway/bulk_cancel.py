"""A venue's mass-cancel answer applied to the gateway's state in one pass over its columns.

A kill switch over 10,000 working orders comes back as one ``order`` record per venue with
thousands of ``canceled`` rows. Applied as any record, each row became an ``Event`` object
and went through ``OrderRouter.on_event`` (lookups by two keys, the state machine, the risk
book's general event path, the venue activity's row dict): ~15 µs a row, 150 ms of the
gateway's CPU for a kill, taken from the two cores the venues cancel on.

Here a record whose every row is a ``canceled`` event with status canceled is applied row
by row from its columns with what such an event does and nothing else, in the same order
and with the same outcome as ``OrderRouter.on_event``:

- the order it names (by ClOrdID, else its orig ClOrdID) moves to canceled, if the state
  machine allows it (``orders.mass_cancel.CANCELABLE``) from its status; the venue's numbers
  and reason are taken, as ``OrderRouter._apply_event`` takes them;
- the risk book drops it from the working orders (``RiskEngine.on_closed``);
- the router's listeners see it.

A row it cannot apply so (an unknown ClOrdID, a transition the table refuses) goes through
``OrderRouter.on_event`` as before, built from its row, in its place in the sequence: its
outcome (a warning, ``invalid_transitions``) is the general path's own. Event listeners
(the FIX acceptor's execution reports) need each row's ``Event``: with any registered, the
record takes the general path whole.
"""

from __future__ import annotations

from typing import Any

from gateway.order_router import OrderRouter
from orders.mass_cancel import CANCELABLE
from orders.model import EventType, OrdStatus
from orders.rows import event_from_row

_CANCELED_EVENT = EventType.CANCELED.value
_CANCELED_STATUS = OrdStatus.CANCELED.value
# Records below this many rows take the general path: a one-row answer is the per-order hot
# path, and the columnar pass pays off only over many rows.
MIN_ROWS = 2


def applies(router: OrderRouter, by_name: dict[str, list[Any]]) -> bool:
    """Whether ``apply_canceled`` takes this ``order`` record (columns by name)."""
    kinds = by_name["event"]
    if len(kinds) < MIN_ROWS or router.event_listeners:
        return False
    return kinds.count(_CANCELED_EVENT) == len(kinds) and by_name["status"].count(
        _CANCELED_STATUS
    ) == len(kinds)


def apply_canceled(router: OrderRouter, by_name: dict[str, list[Any]], ts_ns: int) -> None:
    """Apply a record of ``canceled`` events (``applies``); the caller holds the lock."""
    find = router._find
    close_working = router.risk.on_closed
    listeners = router.listeners
    canceled = OrdStatus.CANCELED
    event = EventType.CANCELED
    rows = zip(
        by_name["account"],
        by_name["clordid"],
        by_name["orig_clordid"],
        by_name["order_id"],
        by_name["qty"],
        by_name["price"],
        by_name["cum_qty"],
        by_name["avg_px"],
        by_name["reason"],
        strict=True,
    )
    for i, (account, clordid, orig, order_id, qty, price, cum_qty, avg_px, reason) in enumerate(
        rows
    ):
        order = find((account, clordid))
        if order is None and orig:
            order = find((account, orig))
        if order is None or order.status not in CANCELABLE:
            # Anything but the plain case: the general path, and its outcome.
            row = {name: column[i] for name, column in by_name.items()}
            router.on_event(event_from_row(row), ts_ns)
            continue
        # ``orders.states.apply`` for a transition to a terminal status, and then the
        # venue's numbers, as ``OrderRouter._apply_event`` takes them.
        order.prior_status = None
        order.status = canceled
        order.history.append(event)
        order.order_id = order_id or order.order_id
        order.qty = int(qty or 0)
        order.price = None if price is None or price != price else price
        order.cum_qty = int(cum_qty or 0)
        order.avg_px = float(avg_px or 0.0)
        if reason:
            order.reason = reason
        close_working(account, clordid, order_id or "", orig or "")
        for listener in listeners:
            listener(order)
