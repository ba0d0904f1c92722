"""The order state table: every (status, trigger) pair, the races, and the docstring's copy."""

from __future__ import annotations

import copy
import itertools
import logging

import pytest

from orders import states
from orders.model import EventType, Order, OrdStatus, OrdType, Side, TimeInForce
from orders.states import PRIOR, TRANSITIONS, FillKind, InvalidTransition, apply, next_status

QTY = 10
TRIGGERS: list[EventType | FillKind] = [
    *(e for e in EventType if e is not EventType.FILL),
    *FillKind,
]
PENDING_PRIOR = {
    OrdStatus.PENDING_CANCEL: OrdStatus.PARTIALLY_FILLED,
    OrdStatus.PENDING_REPLACE: OrdStatus.REPLACED,
}


def order_in(status: OrdStatus) -> Order:
    """An order in ``status`` with a consistent cum_qty: 4 filled unless new or pending."""
    cum = {OrdStatus.FILLED: QTY, OrdStatus.PARTIALLY_FILLED: 4}.get(status, 0)
    if status in PENDING_PRIOR or status is OrdStatus.REPLACED:
        cum = 4
    return Order(
        order_id="X1",
        account="acc",
        sym="AAA",
        clordid="c1",
        side=Side.BUY,
        qty=QTY,
        ord_type=OrdType.LIMIT,
        price=10.0,
        tif=TimeInForce.DAY,
        status=status,
        cum_qty=cum,
        avg_px=10.0 if cum else 0.0,
        prior_status=PENDING_PRIOR.get(status),
    )


def fire(order: Order, trigger: EventType | FillKind) -> None:
    """Apply ``trigger``: a FillKind becomes a FILL of the size that makes it that kind."""
    if isinstance(trigger, FillKind):
        leaves = order.qty - order.cum_qty
        qty = leaves if trigger is FillKind.FULL else 1
        if trigger is FillKind.PARTIAL and leaves <= 1:
            qty = 0  # no partial fill exists for it: refused either way
        apply(order, EventType.FILL, fill_qty=qty, fill_px=11.0)
    else:
        apply(order, trigger)


@pytest.mark.parametrize(
    ("status", "trigger"),
    list(itertools.product(OrdStatus, TRIGGERS)),
    ids=lambda v: v.value,
)
def test_every_pair_follows_the_table(
    status: OrdStatus, trigger: EventType | FillKind, caplog: pytest.LogCaptureFixture
) -> None:
    order = order_in(status)
    before = copy.deepcopy(order)
    target = TRANSITIONS.get((status, trigger))
    if target is None:
        with (
            caplog.at_level(logging.WARNING, logger="orders.states"),
            pytest.raises(InvalidTransition) as err,
        ):
            fire(order, trigger)
        assert order == before
        assert err.value.status is status
        assert err.value.order_id == "X1"
        assert "X1" in str(err.value) and status.value in str(err.value)
        assert "refused order transition" in caplog.text
        return
    fire(order, trigger)
    expected = before.prior_status if target is PRIOR else target
    assert order.status is expected
    if order.status in states.PENDING:
        assert order.prior_status is (before.prior_status or before.status)
    else:
        assert order.prior_status is None
    if isinstance(trigger, FillKind):
        assert order.cum_qty > before.cum_qty
    else:
        assert order.cum_qty == before.cum_qty


def test_terminal_statuses_accept_only_late_refusals() -> None:
    terminal = {OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED}
    for (status, trigger), target in TRANSITIONS.items():
        if status in terminal:
            assert trigger in (EventType.CANCEL_REJECTED, EventType.REPLACE_REJECTED)
            assert target is status


def test_docstring_table_is_the_table() -> None:
    doc = states.__doc__ or ""
    rows = set()
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in {s.value for s in OrdStatus}:
            rows.add((cells[0], cells[1], cells[2]))
    table = {
        (s.value, t.value, "prior" if to is PRIOR else to.value)
        for (s, t), to in TRANSITIONS.items()
    }
    assert rows == table


def test_fill_target_depends_on_cum_qty() -> None:
    order = order_in(OrdStatus.NEW)
    assert next_status(order, EventType.FILL, fill_qty=3) is OrdStatus.PARTIALLY_FILLED
    assert next_status(order, EventType.FILL, fill_qty=QTY) is OrdStatus.FILLED
    apply(order, EventType.FILL, fill_qty=4, fill_px=10.0)
    apply(order, EventType.FILL, fill_qty=6, fill_px=11.0)
    assert order.status is OrdStatus.FILLED
    assert order.cum_qty == QTY
    assert order.avg_px == pytest.approx(10.6)


def test_overfill_and_empty_fill_are_refused() -> None:
    order = order_in(OrdStatus.PARTIALLY_FILLED)
    before = copy.deepcopy(order)
    with pytest.raises(InvalidTransition, match="overfill"):
        apply(order, EventType.FILL, fill_qty=7, fill_px=1.0)
    with pytest.raises(InvalidTransition):
        apply(order, EventType.FILL, fill_qty=0, fill_px=1.0)
    assert order == before


def test_cancel_vs_fill_race_fill_wins_then_refusal_leaves_filled() -> None:
    order = order_in(OrdStatus.NEW)
    apply(order, EventType.PENDING_CANCEL)
    assert order.status is OrdStatus.PENDING_CANCEL
    assert order.prior_status is OrdStatus.NEW
    apply(order, EventType.FILL, fill_qty=QTY, fill_px=10.0)
    assert order.status is OrdStatus.FILLED
    assert order.prior_status is None
    apply(order, EventType.CANCEL_REJECTED)
    assert order.status is OrdStatus.FILLED
    assert order.leaves_qty == 0


def test_cancel_vs_partial_fill_then_cancel_still_succeeds() -> None:
    order = order_in(OrdStatus.NEW)
    apply(order, EventType.PENDING_CANCEL)
    apply(order, EventType.FILL, fill_qty=3, fill_px=10.0)
    assert order.status is OrdStatus.PARTIALLY_FILLED
    apply(order, EventType.CANCELED)
    assert order.status is OrdStatus.CANCELED
    assert order.cum_qty == 3


def test_replace_vs_fill_race() -> None:
    order = order_in(OrdStatus.NEW)
    apply(order, EventType.PENDING_REPLACE)
    apply(order, EventType.FILL, fill_qty=QTY, fill_px=10.0)
    assert order.status is OrdStatus.FILLED
    apply(order, EventType.REPLACE_REJECTED)
    assert order.status is OrdStatus.FILLED
    with pytest.raises(InvalidTransition):
        apply(order, EventType.REPLACED)


def test_refused_cancel_restores_the_prior_status() -> None:
    order = order_in(OrdStatus.REPLACED)
    apply(order, EventType.PENDING_CANCEL)
    apply(order, EventType.PENDING_CANCEL)  # a second request keeps the first prior
    assert order.prior_status is OrdStatus.REPLACED
    apply(order, EventType.CANCEL_REJECTED)
    assert order.status is OrdStatus.REPLACED
    assert order.prior_status is None


def test_cancel_of_a_filled_order_is_refused() -> None:
    order = order_in(OrdStatus.FILLED)
    before = copy.deepcopy(order)
    for event in (EventType.PENDING_CANCEL, EventType.CANCELED, EventType.PENDING_REPLACE):
        with pytest.raises(InvalidTransition, match="from filled"):
            apply(order, event)
    assert order == before


def test_replaced_order_works_again() -> None:
    order = order_in(OrdStatus.NEW)
    apply(order, EventType.REPLACED)
    apply(order, EventType.REPLACED)
    apply(order, EventType.FILL, fill_qty=2, fill_px=10.0)
    assert order.status is OrdStatus.PARTIALLY_FILLED
    apply(order, EventType.EXPIRED)
    assert order.status is OrdStatus.EXPIRED
    assert order.history == ["replaced", "replaced", "fill", "expired"]
