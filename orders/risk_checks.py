"""The pre-trade checks, each a small function with a typed reject.

A check reads one :class:`Ask` (what a new order or a replace would add, with the state it
is judged against) and returns a :class:`RiskReject` or None. ``orders.risk`` runs them in
the order of :data:`NEW_ORDER_CHECKS`; each is O(1), reading running totals only.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from enum import StrEnum

from orders.model import OrdType, Side
from orders.risk_book import AccountTotals, SymTotals
from orders.risk_limits import RiskLimits

_NS = 1_000_000_000
# Float slack on limits compared as floats, so a value exactly at its limit passes.
_EPS = 1e-9


# The largest order quantity, whatever the limits say: 2^53 - 1, the largest integer a JSON
# client in JavaScript reads exactly, and far enough below int64's range that the sums of
# positions and working quantities stay in it.
MAX_QTY = 2**53 - 1


class RejectCode(StrEnum):
    """Why risk refused a request: the ``reason`` of the order's rejected event."""

    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_SYM = "unknown_sym"
    BAD_QUANTITY = "bad_quantity"
    BAD_PRICE = "bad_price"  # price on a market order, none on a limit, not finite/positive
    OFF_TICK = "off_tick"
    UNKNOWN_ORDER = "unknown_order"  # a replace of an order that is not open
    KILLED = "killed"
    TRADING_HALTED = "trading_halted"
    RESTRICTED_SYM = "restricted_sym"
    RATE_LIMIT = "rate_limit"
    DUPLICATE_CLORDID = "duplicate_clordid"
    DUPLICATE_ORDER = "duplicate_order"
    MAX_ORDER_QTY = "max_order_qty"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    NO_REFERENCE_PRICE = "no_reference_price"
    PRICE_COLLAR = "price_collar"
    MAX_OPEN_ORDERS = "max_open_orders"
    MAX_OPEN_ORDERS_PER_SYM = "max_open_orders_per_sym"
    MAX_LONG_POSITION = "max_long_position"
    MAX_SHORT_POSITION = "max_short_position"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    TRADING_REDUCING = "trading_reducing"
    FILL_THROTTLE = "fill_throttle"  # on_fill's notice: too many fills, the account halted


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"  # only orders that shrink |position| pass
    HALTED = "halted"  # no new order or replace passes; cancels do


@dataclasses.dataclass(frozen=True)
class RiskReject:
    code: RejectCode
    message: str  # names the limit and the value, for the order's rejected event


def _num(value: float) -> str:
    return f"{value:.12g}"


Content = tuple[str, Side, int, float | None]  # sym, side, qty, price: a duplicate's key


class AccountRisk:
    """Per-account limits and the windows the rate, duplicate and throttle checks use."""

    __slots__ = (
        "clordids",
        "fills",
        "limits",
        "messages",
        "recent",
        "recent_order",
        "restricted",
        "state",
        "throttled",
        "totals",
    )

    def __init__(self, limits: RiskLimits, totals: AccountTotals) -> None:
        self.use(limits)
        self.totals = totals
        self.state = TradingState.ACTIVE
        self.throttled = ""  # the throttle's message while it halts the account
        self.messages: deque[int] = deque()  # ts of the messages of the last second
        self.recent: dict[Content, int] = {}  # content -> ts of its latest order
        self.recent_order: deque[tuple[int, Content]] = deque()
        self.fills: dict[str, deque[int]] = {}  # sym -> ts of its recent fills
        self.clordids: set[str] = set()  # ClOrdIDs used today, whatever became of them

    def use(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.restricted = frozenset(limits.restricted_syms)  # O(1) membership


class Controls:
    """The engine-wide switches: the global trading state and the kills."""

    __slots__ = ("kills", "state")

    def __init__(self) -> None:
        self.state = TradingState.ACTIVE
        # (account, strategy) scopes, "" meaning any: ("", "") is the global kill.
        self.kills: set[tuple[str, str]] = set()


class Ask:
    """What a new order or a replace would add, with what it is judged against."""

    __slots__ = (
        "account",
        "acct",
        "clordid",
        "controls",
        "intended",
        "leaves",
        "limits",
        "now_ns",
        "old_leaves",
        "old_notional",
        "position",
        "price",
        "qty",
        "ref",
        "side",
        "strategy",
        "sym",
        "sym_totals",
        "unit",
    )

    def __init__(
        self,
        account: str,
        acct: AccountRisk,
        controls: Controls,
        sym: str,
        side: Side,
        qty: int,
        price: float | None,
        ref: float | None,
        position: int,
        now_ns: int,
    ) -> None:
        self.account = account
        self.acct = acct
        self.limits = acct.limits
        self.controls = controls
        self.sym = sym
        self.side = side
        self.qty = qty  # the order's (new) total quantity
        self.leaves = qty  # what may still fill once it passes
        self.old_leaves = 0  # a replaced order's counted leaves and notional
        self.old_notional = 0.0
        self.price = price  # the limit price; None for a market order
        self.ref = ref  # the reference price: last trade or mid
        self.unit = price if price is not None else ref  # what one unit is valued at
        self.position = position  # signed, in this sym
        self.now_ns = now_ns
        self.strategy = ""
        self.clordid = ""
        self.intended = False
        self.sym_totals: SymTotals = acct.totals.sym(sym)


def validate(
    sym_known: bool, sym: str, qty: int, ord_type: OrdType, price: float | None, tick: float
) -> RiskReject | None:
    """The static checks: a tradable sym, a positive quantity, a price where one belongs,
    on the sym's tick grid."""
    if not sym_known:
        return RiskReject(RejectCode.UNKNOWN_SYM, f"sym {sym} is not tradable")
    if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
        return RiskReject(RejectCode.BAD_QUANTITY, f"order quantity {qty!r} must be positive")
    if qty > MAX_QTY:
        return RiskReject(
            RejectCode.BAD_QUANTITY, f"order quantity {qty} is above the largest, {MAX_QTY}"
        )
    if ord_type is OrdType.MARKET:
        if price is not None:
            return RiskReject(RejectCode.BAD_PRICE, f"market order has a price {price!r}")
        return None
    if price is None:
        return RiskReject(RejectCode.BAD_PRICE, "limit order has no price")
    if not isinstance(price, int | float) or not math.isfinite(price) or price <= 0:
        return RiskReject(RejectCode.BAD_PRICE, f"price {price!r} is not a positive number")
    if tick > 0:
        ticks = price / tick
        if round(ticks) < 1 or abs(ticks - round(ticks)) > 1e-6:
            return RiskReject(
                RejectCode.OFF_TICK,
                f"price {_num(price)} is not a multiple of the tick size {_num(tick)} for {sym}",
            )
    return None


def check_kill_and_state(ask: Ask) -> RiskReject | None:
    controls = ask.controls
    if controls.kills:
        kills = controls.kills
        for scope, name in (
            (("", ""), "globally"),
            ((ask.account, ""), f"for account {ask.account}"),
            (("", ask.strategy), f"for strategy {ask.strategy}"),
            ((ask.account, ask.strategy), f"for strategy {ask.strategy} of account {ask.account}"),
        ):
            if scope in kills:
                return RiskReject(RejectCode.KILLED, f"trading killed {name}")
    if controls.state is TradingState.HALTED:
        return RiskReject(RejectCode.TRADING_HALTED, "trading halted globally")
    if ask.acct.throttled:
        return RiskReject(RejectCode.TRADING_HALTED, ask.acct.throttled)
    if ask.acct.state is TradingState.HALTED:
        return RiskReject(RejectCode.TRADING_HALTED, f"trading halted for account {ask.account}")
    return None


def check_restricted(ask: Ask) -> RiskReject | None:
    if ask.sym in ask.acct.restricted:
        return RiskReject(
            RejectCode.RESTRICTED_SYM,
            f"sym {ask.sym} is in restricted_syms for account {ask.account}",
        )
    return None


def check_rate(ask: Ask) -> RiskReject | None:
    return rate_reject(ask.account, ask.acct, ask.now_ns)


def rate_reject(account: str, acct: AccountRisk, now_ns: int) -> RiskReject | None:
    """The sliding 1 s window: at most max_messages_per_s messages within any second."""
    limit = acct.limits.max_messages_per_s
    if not limit:
        return None
    messages = acct.messages
    while messages and messages[0] <= now_ns - _NS:
        messages.popleft()
    if len(messages) >= limit:
        return RiskReject(
            RejectCode.RATE_LIMIT,
            f"{len(messages) + 1} messages within 1 s exceed max_messages_per_s {limit} "
            f"for account {account}",
        )
    return None


def check_duplicate_clordid(ask: Ask) -> RiskReject | None:
    if ask.clordid in ask.acct.clordids:
        return RiskReject(
            RejectCode.DUPLICATE_CLORDID,
            f"ClOrdID {ask.clordid} was already used today by account {ask.account}",
        )
    return None


def check_duplicate_order(ask: Ask) -> RiskReject | None:
    window_s = ask.limits.duplicate_window_s
    if not window_s:
        return None
    acct = ask.acct
    horizon = ask.now_ns - int(window_s * _NS)
    recent_order = acct.recent_order
    while recent_order and recent_order[0][0] <= horizon:
        ts, content = recent_order.popleft()
        if acct.recent.get(content) == ts:
            del acct.recent[content]
    if ask.intended:
        return None
    seen = acct.recent.get((ask.sym, ask.side, ask.qty, ask.price))
    if seen is not None and seen > horizon:
        ago = (ask.now_ns - seen) / _NS
        return RiskReject(
            RejectCode.DUPLICATE_ORDER,
            f"same sym, side, qty and price as an order {ago:.3g} s ago, within "
            f"duplicate_window_s {_num(window_s)} for account {ask.account} "
            "(mark it intended to send it anyway)",
        )
    return None


def check_order_qty(ask: Ask) -> RiskReject | None:
    limit = ask.limits.max_order_qty
    if limit and ask.qty > limit:
        return RiskReject(
            RejectCode.MAX_ORDER_QTY,
            f"order quantity {ask.qty} exceeds max_order_qty {limit} for account {ask.account}",
        )
    return None


def _no_reference(ask: Ask, limit: str) -> RiskReject:
    return RiskReject(
        RejectCode.NO_REFERENCE_PRICE,
        f"market order in {ask.sym} has no reference price for {limit}",
    )


def check_notional(ask: Ask) -> RiskReject | None:
    limit = ask.limits.max_order_notional
    if not limit:
        return None
    if ask.unit is None:
        return _no_reference(ask, "max_order_notional")
    notional = ask.qty * ask.unit
    if notional > limit * (1 + _EPS):
        return RiskReject(
            RejectCode.MAX_ORDER_NOTIONAL,
            f"order notional {_num(notional)} exceeds max_order_notional {_num(limit)} "
            f"for account {ask.account}",
        )
    return None


def check_collar(ask: Ask) -> RiskReject | None:
    pct = ask.limits.price_collar_pct
    if not pct:
        return None
    if ask.price is None:  # a market order: it trades at the market, which needs one
        return None if ask.ref is not None else _no_reference(ask, "price_collar_pct")
    ref = ask.ref
    if ref is None:
        return None  # nothing to measure a limit price against yet
    away = abs(ask.price - ref)
    if away > ref * pct / 100 * (1 + _EPS):
        return RiskReject(
            RejectCode.PRICE_COLLAR,
            f"price {_num(ask.price)} is {_num(round(away / ref * 100, 4))}% from the reference "
            f"{_num(ref)}, beyond price_collar_pct {_num(pct)} for account {ask.account}",
        )
    return None


def check_open_orders(ask: Ask) -> RiskReject | None:
    limits = ask.limits
    limit = limits.max_open_orders
    count = ask.acct.totals.open_orders + 1
    if limit and count > limit:
        return RiskReject(
            RejectCode.MAX_OPEN_ORDERS,
            f"open orders {count} would exceed max_open_orders {limit} for account {ask.account}",
        )
    limit = limits.max_open_orders_per_sym
    count = ask.sym_totals.open_orders + 1
    if limit and count > limit:
        return RiskReject(
            RejectCode.MAX_OPEN_ORDERS_PER_SYM,
            f"open orders in {ask.sym} {count} would exceed max_open_orders_per_sym {limit} "
            f"for account {ask.account}",
        )
    return None


def check_position(ask: Ask) -> RiskReject | None:
    """The worst case of one side: every working order of that side fills, and this one."""
    if ask.side is Side.BUY:
        limit = ask.limits.max_long_position
        held, working, name = ask.position, ask.sym_totals.buy_leaves, "long"
    else:
        limit = ask.limits.max_short_position
        held, working, name = -ask.position, ask.sym_totals.sell_leaves, "short"
    working -= ask.old_leaves
    total = held + working + ask.leaves
    if limit and total > limit:
        return RiskReject(
            RejectCode.MAX_LONG_POSITION if name == "long" else RejectCode.MAX_SHORT_POSITION,
            f"{name} position {held} + working {ask.side}s {working} + this {ask.side} "
            f"{ask.leaves} = {total} exceeds max_{name}_position {limit} "
            f"for account {ask.account} in {ask.sym}",
        )
    return None


def check_exposure(ask: Ask) -> RiskReject | None:
    limit = ask.limits.max_gross_exposure
    if not limit:
        return None
    if ask.unit is None:
        return _no_reference(ask, "max_gross_exposure")
    totals = ask.acct.totals
    working = totals.working_notional - ask.old_notional
    this = ask.leaves * ask.unit
    total = totals.position_value + working + this
    if total > limit * (1 + _EPS):
        return RiskReject(
            RejectCode.MAX_GROSS_EXPOSURE,
            f"gross exposure {_num(total)} (positions {_num(totals.position_value)} + working "
            f"{_num(working)} + this order {_num(this)}) exceeds max_gross_exposure "
            f"{_num(limit)} for account {ask.account}",
        )
    return None


def check_reducing(ask: Ask) -> RiskReject | None:
    """In reducing state an order passes only if it and the working orders of its side
    together cannot more than close the position."""
    if (
        ask.controls.state is not TradingState.REDUCING
        and ask.acct.state is not TradingState.REDUCING
    ):
        return None
    if ask.side is Side.BUY:
        room, working = -ask.position, ask.sym_totals.buy_leaves - ask.old_leaves
    else:
        room, working = ask.position, ask.sym_totals.sell_leaves - ask.old_leaves
    if room <= 0 or working + ask.leaves > room:
        return RiskReject(
            RejectCode.TRADING_REDUCING,
            f"trading is reducing-only for account {ask.account}: a {ask.side} of "
            f"{ask.leaves} with working {ask.side}s {working} does not reduce the position "
            f"{ask.position} in {ask.sym}",
        )
    return None


# The order a new order's checks run in, after validate(); docs/risk.md lists this order.
NEW_ORDER_CHECKS = (
    check_kill_and_state,
    check_restricted,
    check_rate,
    check_duplicate_clordid,
    check_duplicate_order,
    check_order_qty,
    check_notional,
    check_collar,
    check_open_orders,
    check_position,
    check_exposure,
    check_reducing,
)
# A replace that adds risk: the same without the duplicate and open-order checks.
REPLACE_CHECKS = tuple(
    c
    for c in NEW_ORDER_CHECKS
    if c not in (check_duplicate_clordid, check_duplicate_order, check_open_orders)
)
