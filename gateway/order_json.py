"""An order as the HTTP API, the order port and their clients see it: a JSON object."""

from __future__ import annotations

from typing import Any

from orders.model import Order


def order_dict(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "account": order.account,
        "strategy": order.strategy,
        "sym": order.sym,
        "clordid": order.clordid,
        "orig_clordid": order.orig_clordid,
        "side": str(order.side),
        "ord_type": str(order.ord_type),
        "tif": str(order.tif),
        "price": order.price,
        "qty": order.qty,
        "cum_qty": order.cum_qty,
        "leaves_qty": order.leaves_qty,
        "avg_px": order.avg_px,
        "status": str(order.status),
        "reason": order.reason,
    }
