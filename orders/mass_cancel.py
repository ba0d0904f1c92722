"""What a mass cancel does to each order it closes, at the cost a kill switch can bear.

A kill switch cancels thousands of orders at once, on the venue (``MatchingEngine``) and
again in the gateway's view (``gateway.bulk_cancel``). ``orders.states.apply`` looks the
transition up, checks for a pending status and logs a refusal: ~1.5 µs an order. Here the
statuses a ``canceled`` event may close an order from are read off the same table once,
and an order in one of them is moved as ``apply`` would move it; any other goes through
``apply``, which refuses it as it always has.
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


def apply_plain(order: Order, event: EventType) -> None:
    """``orders.states.apply(order, event)`` for an event that is not a fill, the table's
    target looked up once. A refused transition (or one back to the prior status) goes
    through ``apply``, which raises for a refusal as it always has."""
    target = TRANSITIONS.get((order.status, event))
    if not isinstance(target, OrdStatus):
        apply(order, event)
        return
    if target in PENDING:
        if order.status not in PENDING:
            order.prior_status = order.status
    else:
        order.prior_status = None
    order.status = target
    order.history.append(event)


def close_canceled(order: Order) -> None:
    """``orders.states.apply(order, EventType.CANCELED)``."""
    apply_plain(order, EventType.CANCELED)


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
