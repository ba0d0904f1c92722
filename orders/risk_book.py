"""The running totals the risk checks read: working orders and position values.

Every limit check is O(1) because it reads totals kept here, never a scan over orders:
per account the open order count, the working notional and the value of its positions; per
account and sym the open order count, the working buy and sell quantities and the position's
value. One function (:meth:`RiskBook._set`) moves an order's contribution, so the totals
cannot drift from the orders.

A working order is one the risk engine passed and has not seen end. It is recorded when it
passes (pending, known by account and ClOrdID), bound to its venue order id by the first
event that carries one, kept in step with each event's ``leaves_qty`` and price, and dropped
when an event says it is done (filled, canceled, expired, rejected). While a replace is
pending the order counts at the larger of its old and new sizes, since either may fill.

A working order's notional is ``leaves * price``; a market order has no price and is valued
at the reference price when it was recorded.
"""

from __future__ import annotations

import itertools

from orders.model import TERMINAL, Event, EventType, Side

# Events whose leaves and price may be trusted as the order's state: the pending ones
# describe the order before the venue acted, and must not undo a pending replace's worst case.
_SYNC_EVENTS = frozenset(
    {
        EventType.ACCEPTED,
        EventType.FILL,
        EventType.REPLACED,
        EventType.REPLACE_REJECTED,
        EventType.CANCEL_REJECTED,
    }
)


class SymTotals:
    __slots__ = ("buy_leaves", "open_orders", "position_value", "sell_leaves")

    def __init__(self) -> None:
        self.open_orders = 0
        self.buy_leaves = 0
        self.sell_leaves = 0
        self.position_value = 0.0  # |position| * reference (or average cost)


class AccountTotals:
    __slots__ = ("open_orders", "position_value", "syms", "working_notional")

    def __init__(self) -> None:
        self.open_orders = 0
        self.working_notional = 0.0
        self.position_value = 0.0
        self.syms: dict[str, SymTotals] = {}

    def sym(self, sym: str) -> SymTotals:
        totals = self.syms.get(sym)
        if totals is None:
            totals = self.syms[sym] = SymTotals()
        return totals


class Working:
    """One working order as risk counts it."""

    __slots__ = (
        "account",
        "clordids",
        "key",
        "leaves",
        "notional",
        "order_id",
        "replace_qty",
        "replace_unit",
        "side",
        "sym",
        "unit_price",
    )

    def __init__(
        self, key: int, account: str, sym: str, side: Side, unit_price: float, clordid: str
    ) -> None:
        self.key = key
        self.account = account
        self.sym = sym
        self.side = side
        self.unit_price = unit_price  # the limit price, or the reference for a market order
        self.leaves = 0
        self.notional = 0.0
        self.order_id = ""
        self.clordids = [clordid]
        # A pending replace's new total quantity and price (0 when none is pending).
        self.replace_qty = 0
        self.replace_unit = 0.0


class RiskBook:
    def __init__(self) -> None:
        self._keys = itertools.count()
        self.orders: dict[int, Working] = {}
        self._by_order_id: dict[str, int] = {}
        self._by_clordid: dict[tuple[str, str], int] = {}
        self.accounts: dict[str, AccountTotals] = {}
        self.holders: dict[str, set[str]] = {}  # sym -> accounts with a position in it

    def account(self, account: str) -> AccountTotals:
        totals = self.accounts.get(account)
        if totals is None:
            totals = self.accounts[account] = AccountTotals()
        return totals

    def find(self, account: str, clordid: str, order_id: str = "") -> Working | None:
        key = self._by_order_id.get(order_id) if order_id else None
        if key is None:
            key = self._by_clordid.get((account, clordid))
        return None if key is None else self.orders[key]

    def add(
        self,
        account: str,
        sym: str,
        clordid: str,
        side: Side,
        leaves: int,
        unit_price: float,
        order_id: str = "",
    ) -> Working:
        key = next(self._keys)
        order = self.orders[key] = Working(key, account, sym, side, unit_price, clordid)
        self._by_clordid[(account, clordid)] = key
        if order_id:
            order.order_id = order_id
            self._by_order_id[order_id] = key
        totals = self.account(account)
        totals.open_orders += 1
        totals.sym(sym).open_orders += 1
        self._set(order, leaves, leaves * unit_price)
        return order

    def begin_replace(
        self, order: Working, clordid: str, qty: int, leaves: int, unit_price: float
    ) -> None:
        """Count ``order`` at the worse of its current and its requested size until the venue
        answers the replace: ``qty`` is the new total quantity, ``leaves`` what of it is
        still to fill."""
        self._by_clordid[(order.account, clordid)] = order.key
        order.clordids.append(clordid)
        order.replace_qty = qty
        order.replace_unit = unit_price
        self._set(order, max(order.leaves, leaves), max(order.notional, leaves * unit_price))

    def remove(self, order: Working) -> None:
        self._set(order, 0, 0.0)
        del self.orders[order.key]
        self._by_order_id.pop(order.order_id, None)
        for clordid in order.clordids:
            self._by_clordid.pop((order.account, clordid), None)
        totals = self.accounts[order.account]
        totals.open_orders -= 1
        totals.sym(order.sym).open_orders -= 1
        if totals.open_orders == 0:
            totals.working_notional = 0.0  # no float residue once nothing works

    def close(self, account: str, clordid: str, order_id: str, orig_clordid: str) -> None:
        """What ``on_event`` does for an event whose order is done: drop it if counted (the
        ids an event would bind to it first are dropped with it)."""
        order = self.find(account, clordid, order_id)
        if order is None and orig_clordid:
            order = self.find(account, orig_clordid)
        if order is not None:
            self.remove(order)

    def on_event(self, event: Event, reference: float | None) -> None:
        order = self.find(event.account, event.clordid, event.order_id)
        if order is None and event.orig_clordid:
            order = self.find(event.account, event.orig_clordid)
        done = event.status in TERMINAL or event.event is EventType.REJECTED
        if order is None:
            if done or event.leaves_qty <= 0:
                return  # an order risk never counted, already over (a late or foreign event)
            unit = event.price if event.price is not None else reference or event.avg_px
            order = self.add(event.account, event.sym, event.clordid, event.side, 0, unit)
        if event.order_id and not order.order_id:
            order.order_id = event.order_id
            self._by_order_id[event.order_id] = order.key
        if event.clordid and (event.account, event.clordid) not in self._by_clordid:
            self._by_clordid[(event.account, event.clordid)] = order.key
            order.clordids.append(event.clordid)
        if done or event.leaves_qty <= 0:
            self.remove(order)
            return
        if event.event not in _SYNC_EVENTS and order.leaves:
            return
        if event.event in (EventType.REPLACED, EventType.REPLACE_REJECTED):
            order.replace_qty = 0
        if event.price is not None:
            order.unit_price = event.price
        leaves, notional = event.leaves_qty, event.leaves_qty * order.unit_price
        if order.replace_qty:  # a replace is still pending: either size may fill
            new_leaves = max(order.replace_qty - event.cum_qty, 0)
            notional = max(notional, new_leaves * order.replace_unit)
            leaves = max(leaves, new_leaves)
        self._set(order, leaves, notional)

    def set_position_value(self, account: str, sym: str, value: float) -> None:
        totals = self.account(account)
        sym_totals = totals.sym(sym)
        totals.position_value += value - sym_totals.position_value
        sym_totals.position_value = value
        holders = self.holders.setdefault(sym, set())
        if value:
            holders.add(account)
        else:
            holders.discard(account)

    def _set(self, order: Working, leaves: int, notional: float) -> None:
        """The one place an order's contribution to the totals changes."""
        totals = self.accounts[order.account]
        sym_totals = totals.sym(order.sym)
        if order.side is Side.BUY:
            sym_totals.buy_leaves += leaves - order.leaves
        else:
            sym_totals.sell_leaves += leaves - order.leaves
        totals.working_notional += notional - order.notional
        order.leaves = leaves
        order.notional = notional
