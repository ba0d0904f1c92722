"""FIX 4.4 values for the order vocabulary, and the bodies of the messages the gateway sends.

One place knows how an ``orders.model`` order reads in FIX: Side (54), OrdType (40),
TimeInForce (59), OrdStatus (39), ExecType (150), OrdRejReason (103) and CxlRejReason (102).
"""

from __future__ import annotations

from fix.codec import Field, fix_price, fix_time
from orders.model import EventType, Order, OrdStatus, OrdType, Side, TimeInForce

SIDE_FROM_FIX = {"1": Side.BUY, "2": Side.SELL}
SIDE_TO_FIX = {Side.BUY: "1", Side.SELL: "2"}
ORD_TYPE_FROM_FIX = {"1": OrdType.MARKET, "2": OrdType.LIMIT}
ORD_TYPE_TO_FIX = {OrdType.MARKET: "1", OrdType.LIMIT: "2"}
TIF_FROM_FIX = {
    "0": TimeInForce.DAY,
    "1": TimeInForce.GTC,
    "3": TimeInForce.IOC,
    "4": TimeInForce.FOK,
}
TIF_TO_FIX = {v: k for k, v in TIF_FROM_FIX.items()}

ORD_STATUS_TO_FIX = {
    OrdStatus.PENDING_NEW: "A",
    OrdStatus.NEW: "0",
    OrdStatus.PARTIALLY_FILLED: "1",
    OrdStatus.FILLED: "2",
    OrdStatus.PENDING_CANCEL: "6",
    OrdStatus.CANCELED: "4",
    OrdStatus.PENDING_REPLACE: "E",
    OrdStatus.REPLACED: "0",  # working again: New or Partially filled (below)
    OrdStatus.REJECTED: "8",
    OrdStatus.EXPIRED: "C",
}
ORD_STATUS_FROM_FIX = {
    "A": OrdStatus.PENDING_NEW,
    "0": OrdStatus.NEW,
    "1": OrdStatus.PARTIALLY_FILLED,
    "2": OrdStatus.FILLED,
    "6": OrdStatus.PENDING_CANCEL,
    "4": OrdStatus.CANCELED,
    "E": OrdStatus.PENDING_REPLACE,
    "5": OrdStatus.REPLACED,
    "8": OrdStatus.REJECTED,
    "C": OrdStatus.EXPIRED,
}

EXEC_TYPE = {
    EventType.ACCEPTED: "0",
    EventType.FILL: "F",
    EventType.CANCELED: "4",
    EventType.REPLACED: "5",
    EventType.EXPIRED: "C",
    EventType.REJECTED: "8",
    EventType.PENDING_CANCEL: "6",
    EventType.PENDING_REPLACE: "E",
}
EXEC_TYPE_ORDER_STATUS = "I"

# OrdRejReason (103): 1 unknown symbol, 3 order exceeds limit, 6 duplicate order, 13
# incorrect quantity, 15 unknown account, 0 broker / exchange option for the rest.
ORD_REJ_REASON = {
    "unknown_sym": 1,
    "bad_quantity": 13,
    "unknown_account": 15,
    "duplicate_clordid": 6,
    "duplicate_order": 6,
    "max_order_qty": 3,
    "max_order_notional": 3,
    "max_open_orders": 3,
    "max_open_orders_per_sym": 3,
    "max_long_position": 3,
    "max_short_position": 3,
    "max_gross_exposure": 3,
    "unknown_order": 5,
}
# CxlRejReason (102): 0 too late to cancel, 1 unknown order, 6 duplicate ClOrdID, 2 broker option.
CXL_REJ_REASON = {"too_late": 0, "unknown_order": 1, "duplicate_clordid": 6}


def ord_status(order: Order) -> str:
    if order.status is OrdStatus.REPLACED:
        return "1" if order.cum_qty else "0"
    return ORD_STATUS_TO_FIX[order.status]


def execution_report(
    order: Order,
    exec_type: str,
    exec_id: str,
    *,
    clordid: str | None = None,
    orig_clordid: str = "",
    last_qty: int = 0,
    last_px: float = 0.0,
    text: str = "",
    rej_reason: int | None = None,
    status: str | None = None,
    extra: list[Field] | None = None,
) -> list[Field]:
    body: list[Field] = [
        (37, order.order_id or "NONE"),
        (11, clordid if clordid is not None else order.clordid),
    ]
    if orig_clordid:
        body.append((41, orig_clordid))
    body += [
        (17, exec_id),
        (150, exec_type),
        (39, status if status is not None else ord_status(order)),
        (1, order.account),
        (55, order.sym),
        (54, SIDE_TO_FIX[order.side]),
        (38, order.qty),
        (40, ORD_TYPE_TO_FIX[order.ord_type]),
    ]
    if order.price is not None:
        body.append((44, fix_price(order.price)))
    body += [
        (59, TIF_TO_FIX[order.tif]),
        (151, order.leaves_qty if status != "8" else 0),
        (14, order.cum_qty),
        (6, fix_price(order.avg_px)),
    ]
    if last_qty:
        body += [(32, last_qty), (31, fix_price(last_px))]
    body.append((60, fix_time()))
    if rej_reason is not None:
        body.append((103, rej_reason))
    if text:
        body.append((58, text))
    if extra:
        body += extra
    return body


def cancel_reject(
    order: Order | None,
    clordid: str,
    orig_clordid: str,
    response_to: int,
    reason: int,
    text: str,
) -> list[Field]:
    """OrderCancelReject (35=9) body; ``response_to`` is CxlRejResponseTo (1 cancel, 2 replace)."""
    return [
        (37, order.order_id or "NONE") if order is not None else (37, "NONE"),
        (11, clordid),
        (41, orig_clordid),
        (39, ord_status(order) if order is not None else "8"),
        (434, response_to),
        (102, reason),
        (58, text),
    ]
