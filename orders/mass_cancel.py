"""What a mass cancel does to each order it marks or closes, at a kill switch's scale.

A kill switch moves thousands of orders at once: the gateway marks them pending cancel,
each venue closes its share (``MatchingEngine.mass_cancel``), and the gateway closes them
in its view (``gateway.bulk_cancel``). ``orders.states.apply`` looks each transition up
through ``next_status`` and logs a refusal: ~1.5 µs an order. Here the statuses a
``canceled`` event may close an order from are read off the same table once
(``CANCELABLE``), and an order is moved as ``apply`` would move it; one the table refuses
goes through ``apply`` (closing), which raises as it always has, or is left as it is
(marking: the venue's answer closes it all the same).
"""

from __future__ import annotations

from collections.abc import Iterable

from orders.model import EventType, Order, OrdStatus
from orders.states import PENDING, TRANSITIONS, apply

CANCELABLE = frozenset(
    status
    for (status, trigger), target in TRANSITIONS.items()
    if trigger is EventType.CANCELED and target is OrdStatus.CANCELED
)


def close_canceled(order: Order) -> None:
    """``orders.states.apply(order, EventType.CANCELED)``, by a set lookup (a venue's kill
    closes thousands)."""
    if order.status not in CANCELABLE:
        apply(order, EventType.CANCELED)  # refused (InvalidTransition), as ever
        return
    order.prior_status = None  # a terminal target keeps no prior status (``apply``)
    order.status = OrdStatus.CANCELED
    order.history.append(EventType.CANCELED)


def mark_pending_cancel(orders: Iterable[Order]) -> None:
    """Each working order the gateway is about to cancel in bulk: pending cancel, as a
    single cancel marks it. One the table cannot mark (a replace still pending) stays as it
    is: the venue's answer closes it all the same, and a kill must go on to the others."""
    event = EventType.PENDING_CANCEL
    for order in orders:
        target = TRANSITIONS.get((order.status, event))
        if target is OrdStatus.PENDING_CANCEL:
            if order.status not in PENDING:
                order.prior_status = order.status  # the status a refusal goes back to
            order.status = target
            order.history.append(event)
