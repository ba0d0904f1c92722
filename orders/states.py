"""The order state machine: every legal status change, as one table.

Statuses are FIX OrdStatus (``orders.model.OrdStatus``); events are ``orders.model.EventType``.
A fill is two triggers here, ``partial_fill`` (leaves remain) and ``full_fill`` (cum_qty
reaches qty), because the status it leads to depends on the quantity; ``next_status`` picks
one from the fill's size. ``prior`` means "back to the status before the pending request"
(``Order.prior_status``). Every pair not listed is refused with ``InvalidTransition``.

Working statuses are new, partially_filled and replaced (an order works again after an
accepted replace); terminal ones are filled, canceled, rejected and expired. The rows
marked *race* exist because a venue answers requests in the order things happen there: a
fill can overtake a cancel or replace the sender thought was pending, and the refusal of
that request then arrives for an order that has moved on, so it changes nothing. An order
that is not yet acknowledged cannot be canceled or replaced (wait for the ack), and nothing
reopens a terminal order (a fill after canceled is a bug, not a race, because events from
one venue arrive in the order they happened).

| from             | event            | to               | note                          |
|------------------|------------------|------------------|-------------------------------|
| pending_new      | pending_new      | pending_new      | the order is sent             |
| pending_new      | accepted         | new              |                               |
| pending_new      | rejected         | rejected         |                               |
| new              | partial_fill     | partially_filled |                               |
| new              | full_fill        | filled           |                               |
| new              | pending_cancel   | pending_cancel   | prior = new                   |
| new              | canceled         | canceled         | the venue cancels it          |
| new              | cancel_rejected  | new              | race: a late refusal          |
| new              | pending_replace  | pending_replace  | prior = new                   |
| new              | replaced         | replaced         |                               |
| new              | replace_rejected | new              | race: a late refusal          |
| new              | expired          | expired          |                               |
| partially_filled | partial_fill     | partially_filled |                               |
| partially_filled | full_fill        | filled           |                               |
| partially_filled | pending_cancel   | pending_cancel   | prior = partially_filled      |
| partially_filled | canceled         | canceled         |                               |
| partially_filled | cancel_rejected  | partially_filled | race: a fill won, then refusal|
| partially_filled | pending_replace  | pending_replace  | prior = partially_filled      |
| partially_filled | replaced         | replaced         |                               |
| partially_filled | replace_rejected | partially_filled | race: a fill won, then refusal|
| partially_filled | expired          | expired          |                               |
| replaced         | partial_fill     | partially_filled |                               |
| replaced         | full_fill        | filled           |                               |
| replaced         | pending_cancel   | pending_cancel   | prior = replaced              |
| replaced         | canceled         | canceled         |                               |
| replaced         | cancel_rejected  | replaced         | race: a late refusal          |
| replaced         | pending_replace  | pending_replace  | prior = replaced              |
| replaced         | replaced         | replaced         | replaced again                |
| replaced         | replace_rejected | replaced         | race: a late refusal          |
| replaced         | expired          | expired          |                               |
| pending_cancel   | pending_cancel   | pending_cancel   | a second cancel; prior kept   |
| pending_cancel   | canceled         | canceled         |                               |
| pending_cancel   | cancel_rejected  | prior            |                               |
| pending_cancel   | partial_fill     | partially_filled | race: a fill before the cancel|
| pending_cancel   | full_fill        | filled           | race: the fill wins           |
| pending_cancel   | expired          | expired          |                               |
| pending_replace  | pending_replace  | pending_replace  | a second replace; prior kept  |
| pending_replace  | replaced         | replaced         |                               |
| pending_replace  | replace_rejected | prior            |                               |
| pending_replace  | partial_fill     | partially_filled | race: a fill before the replace|
| pending_replace  | full_fill        | filled           | race: the fill wins           |
| pending_replace  | canceled         | canceled         | the venue cancels it          |
| pending_replace  | expired          | expired          |                               |
| filled           | cancel_rejected  | filled           | race: too late, the fill won  |
| filled           | replace_rejected | filled           | race: too late, the fill won  |
| canceled         | cancel_rejected  | canceled         | race: the venue canceled first|
| canceled         | replace_rejected | canceled         | race: the venue canceled first|
| expired          | cancel_rejected  | expired          | race: it expired first        |
| expired          | replace_rejected | expired          | race: it expired first        |

A fill must be for at least one share and never take cum_qty past qty (``InvalidTransition``
otherwise). ``apply`` sets ``prior_status`` on entering a pending status from a working one
and clears it on leaving the pending statuses.
"""

from __future__ import annotations

import logging
from enum import Enum, StrEnum

from orders.model import EventType, Order, OrdStatus

log = logging.getLogger(__name__)


class FillKind(StrEnum):
    """The two triggers a FILL event stands for in the table."""

    PARTIAL = "partial_fill"  # leaves remain after it
    FULL = "full_fill"  # cum_qty reaches qty


class Prior(Enum):
    """Sentinel target: back to ``Order.prior_status`` (a refused cancel or replace)."""

    PRIOR = "prior"


PRIOR = Prior.PRIOR

Trigger = EventType | FillKind
Target = OrdStatus | Prior

_S = OrdStatus
_E = EventType
_F = FillKind

TRANSITIONS: dict[tuple[OrdStatus, Trigger], Target] = {
    (_S.PENDING_NEW, _E.PENDING_NEW): _S.PENDING_NEW,
    (_S.PENDING_NEW, _E.ACCEPTED): _S.NEW,
    (_S.PENDING_NEW, _E.REJECTED): _S.REJECTED,
    #
    (_S.NEW, _F.PARTIAL): _S.PARTIALLY_FILLED,
    (_S.NEW, _F.FULL): _S.FILLED,
    (_S.NEW, _E.PENDING_CANCEL): _S.PENDING_CANCEL,
    (_S.NEW, _E.CANCELED): _S.CANCELED,
    (_S.NEW, _E.CANCEL_REJECTED): _S.NEW,
    (_S.NEW, _E.PENDING_REPLACE): _S.PENDING_REPLACE,
    (_S.NEW, _E.REPLACED): _S.REPLACED,
    (_S.NEW, _E.REPLACE_REJECTED): _S.NEW,
    (_S.NEW, _E.EXPIRED): _S.EXPIRED,
    #
    (_S.PARTIALLY_FILLED, _F.PARTIAL): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _F.FULL): _S.FILLED,
    (_S.PARTIALLY_FILLED, _E.PENDING_CANCEL): _S.PENDING_CANCEL,
    (_S.PARTIALLY_FILLED, _E.CANCELED): _S.CANCELED,
    (_S.PARTIALLY_FILLED, _E.CANCEL_REJECTED): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _E.PENDING_REPLACE): _S.PENDING_REPLACE,
    (_S.PARTIALLY_FILLED, _E.REPLACED): _S.REPLACED,
    (_S.PARTIALLY_FILLED, _E.REPLACE_REJECTED): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _E.EXPIRED): _S.EXPIRED,
    #
    (_S.REPLACED, _F.PARTIAL): _S.PARTIALLY_FILLED,
    (_S.REPLACED, _F.FULL): _S.FILLED,
    (_S.REPLACED, _E.PENDING_CANCEL): _S.PENDING_CANCEL,
    (_S.REPLACED, _E.CANCELED): _S.CANCELED,
    (_S.REPLACED, _E.CANCEL_REJECTED): _S.REPLACED,
    (_S.REPLACED, _E.PENDING_REPLACE): _S.PENDING_REPLACE,
    (_S.REPLACED, _E.REPLACED): _S.REPLACED,
    (_S.REPLACED, _E.REPLACE_REJECTED): _S.REPLACED,
    (_S.REPLACED, _E.EXPIRED): _S.EXPIRED,
    #
    (_S.PENDING_CANCEL, _E.PENDING_CANCEL): _S.PENDING_CANCEL,
    (_S.PENDING_CANCEL, _E.CANCELED): _S.CANCELED,
    (_S.PENDING_CANCEL, _E.CANCEL_REJECTED): PRIOR,
    (_S.PENDING_CANCEL, _F.PARTIAL): _S.PARTIALLY_FILLED,
    (_S.PENDING_CANCEL, _F.FULL): _S.FILLED,
    (_S.PENDING_CANCEL, _E.EXPIRED): _S.EXPIRED,
    #
    (_S.PENDING_REPLACE, _E.PENDING_REPLACE): _S.PENDING_REPLACE,
    (_S.PENDING_REPLACE, _E.REPLACED): _S.REPLACED,
    (_S.PENDING_REPLACE, _E.REPLACE_REJECTED): PRIOR,
    (_S.PENDING_REPLACE, _F.PARTIAL): _S.PARTIALLY_FILLED,
    (_S.PENDING_REPLACE, _F.FULL): _S.FILLED,
    (_S.PENDING_REPLACE, _E.CANCELED): _S.CANCELED,
    (_S.PENDING_REPLACE, _E.EXPIRED): _S.EXPIRED,
    #
    (_S.FILLED, _E.CANCEL_REJECTED): _S.FILLED,
    (_S.FILLED, _E.REPLACE_REJECTED): _S.FILLED,
    (_S.CANCELED, _E.CANCEL_REJECTED): _S.CANCELED,
    (_S.CANCELED, _E.REPLACE_REJECTED): _S.CANCELED,
    (_S.EXPIRED, _E.CANCEL_REJECTED): _S.EXPIRED,
    (_S.EXPIRED, _E.REPLACE_REJECTED): _S.EXPIRED,
}

PENDING = frozenset({OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE})


class InvalidTransition(Exception):
    """An event the table does not allow for the order's current status."""

    def __init__(
        self, status: OrdStatus, event: EventType | FillKind, order_id: str, detail: str = ""
    ) -> None:
        self.status = status
        self.event = event
        self.order_id = order_id
        self.detail = detail
        text = f"order {order_id}: {event.value} is not allowed from {status.value}"
        super().__init__(f"{text} ({detail})" if detail else text)


def trigger_of(order: Order, event: EventType, fill_qty: int = 0) -> Trigger:
    """The table key's event part: a FILL becomes partial_fill or full_fill by its size."""
    if event is not EventType.FILL:
        return event
    if fill_qty <= 0:
        raise InvalidTransition(order.status, event, order.order_id, f"fill_qty {fill_qty}")
    total = order.cum_qty + fill_qty
    if total > order.qty:
        raise InvalidTransition(
            order.status, event, order.order_id, f"overfill: {total} > qty {order.qty}"
        )
    return FillKind.FULL if total == order.qty else FillKind.PARTIAL


def next_status(order: Order, event: EventType, *, fill_qty: int = 0) -> OrdStatus:
    """The status ``event`` leads to from the order's current status; raises
    ``InvalidTransition`` for a pair the table does not list."""
    trigger = trigger_of(order, event, fill_qty)
    target = TRANSITIONS.get((order.status, trigger))
    if target is None:
        raise InvalidTransition(order.status, trigger, order.order_id)
    if target is PRIOR:
        if order.prior_status is None:
            raise InvalidTransition(order.status, trigger, order.order_id, "no prior status")
        return order.prior_status
    assert isinstance(target, OrdStatus)
    return target


def apply(order: Order, event: EventType, *, fill_qty: int = 0, fill_px: float = 0.0) -> None:
    """Validate ``event`` against the table, then change the order; an invalid event is
    logged, raised, and leaves the order as it was."""
    try:
        target = next_status(order, event, fill_qty=fill_qty)
    except InvalidTransition as exc:
        log.warning("refused order transition: %s", exc)
        raise
    if event is EventType.FILL:
        order.add_fill(fill_qty, fill_px)
    if target in PENDING:
        if order.status not in PENDING:
            order.prior_status = order.status
    else:
        order.prior_status = None
    order.status = target
    order.history.append(event)
