"""The order vocabulary shared by the gateway, the risk checks and the venues.

Values are lower-case strings (``StrEnum``) because they travel as q symbols in the
``order``, ``fill`` and ``order_request`` tables: a row read back from the journal or an
HDB partition compares equal to the enum member it was written from.

Prices are floats on a per-sym tick grid; quantities are integers (q longs). A price is
compared and stored in *ticks* (an int) inside the book, so float rounding never decides
which order is better.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the sign of its effect on a position."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrdType(StrEnum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(StrEnum):
    DAY = "day"  # rests until filled, canceled, or the end of the trading day
    GTC = "gtc"  # rests across days until filled or canceled
    IOC = "ioc"  # fills what it can at once; the rest is canceled, never rests
    FOK = "fok"  # fills completely at once or not at all


class OrdStatus(StrEnum):
    """FIX OrdStatus (tag 39) by name; see ``orders.states`` for the transitions."""

    PENDING_NEW = "pending_new"  # A: sent, not yet accepted by the venue
    NEW = "new"  # 0: accepted, working, nothing filled
    PARTIALLY_FILLED = "partially_filled"  # 1
    FILLED = "filled"  # 2
    PENDING_CANCEL = "pending_cancel"  # 6
    CANCELED = "canceled"  # 4
    PENDING_REPLACE = "pending_replace"  # E
    REPLACED = "replaced"  # 5: working again after an accepted replace
    REJECTED = "rejected"  # 8
    EXPIRED = "expired"  # C


TERMINAL = frozenset({OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.EXPIRED})


class StpMode(StrEnum):
    """Self-trade prevention: which side of a would-be self trade is canceled."""

    CANCEL_RESTING = "cancel_resting"
    CANCEL_INCOMING = "cancel_incoming"


class EventType(StrEnum):
    """What happened to an order: the ``event`` column of the ``order`` table."""

    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FILL = "fill"  # partial or full: the status says which
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    CANCEL_REJECTED = "cancel_rejected"
    PENDING_REPLACE = "pending_replace"
    REPLACED = "replaced"
    REPLACE_REJECTED = "replace_rejected"
    EXPIRED = "expired"


class RequestType(StrEnum):
    """The ``request`` column of ``order_request``: what a venue is asked to do."""

    NEW = "new"
    CANCEL = "cancel"
    REPLACE = "replace"
    MASS_CANCEL = "mass_cancel"


class Liquidity(StrEnum):
    MAKER = "maker"  # the resting order
    TAKER = "taker"  # the incoming order


@dataclass(frozen=True)
class NewOrder:
    """A new-order request as the venue receives it (already past pre-trade risk)."""

    account: str
    sym: str
    clordid: str
    side: Side
    qty: int
    ord_type: OrdType = OrdType.LIMIT
    price: float | None = None  # None for market orders
    tif: TimeInForce = TimeInForce.DAY
    strategy: str = ""

    def to_order(self, status: OrdStatus = OrdStatus.PENDING_NEW, order_id: str = "") -> Order:
        """The order this request asks for, before any venue has numbered it."""
        return Order(
            order_id=order_id,
            account=self.account,
            sym=self.sym,
            clordid=self.clordid,
            side=self.side,
            qty=self.qty,
            ord_type=self.ord_type,
            price=self.price,
            tif=self.tif,
            strategy=self.strategy,
            status=status,
        )


@dataclass(frozen=True)
class CancelRequest:
    account: str
    sym: str
    clordid: str  # the cancel's own id
    orig_clordid: str  # the order to cancel


@dataclass(frozen=True)
class ReplaceRequest:
    account: str
    sym: str
    clordid: str  # the order's id from now on
    orig_clordid: str
    qty: int | None = None  # new total quantity (filled included); None keeps it
    price: float | None = None  # None keeps it


@dataclass(frozen=True)
class MassCancel:
    """Cancel every working order matching all the given filters (empty = any)."""

    account: str = ""
    strategy: str = ""
    sym: str = ""
    clordid: str = ""  # the request's own id, for the audit trail


@dataclass
class Order:
    """One order as a venue (and the gateway's view) holds it."""

    order_id: str  # venue order id
    account: str
    sym: str
    clordid: str
    side: Side
    qty: int
    ord_type: OrdType
    price: float | None
    tif: TimeInForce
    strategy: str = ""
    status: OrdStatus = OrdStatus.NEW
    cum_qty: int = 0
    avg_px: float = 0.0
    orig_clordid: str = ""
    # The status before a pending cancel/replace, restored if the venue refuses it.
    prior_status: OrdStatus | None = None
    # Why it is where it is: the last reject, cancel or expiry reason (a code).
    reason: str = ""
    history: list[str] = field(default_factory=list, repr=False)

    @property
    def leaves_qty(self) -> int:
        return 0 if self.status in TERMINAL else self.qty - self.cum_qty

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL

    def add_fill(self, qty: int, price: float) -> None:
        """Update cum_qty and the volume-weighted average price."""
        total = self.cum_qty + qty
        self.avg_px = (self.avg_px * self.cum_qty + price * qty) / total
        self.cum_qty = total


@dataclass(frozen=True)
class Event:
    """One row of the ``order`` table: an order event with the order's state after it."""

    event: EventType
    order_id: str
    account: str
    sym: str
    clordid: str
    side: Side
    status: OrdStatus
    qty: int
    price: float | None
    cum_qty: int
    leaves_qty: int
    avg_px: float
    ord_type: OrdType = OrdType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    strategy: str = ""
    orig_clordid: str = ""
    last_qty: int = 0
    last_px: float = 0.0
    exec_id: str = ""
    reason: str = ""  # a reject code (orders.risk / venue) or an expiry/cancel cause
    text: str = ""


@dataclass(frozen=True)
class Fill:
    """One row of the ``fill`` table: one side of one execution."""

    exec_id: str
    order_id: str
    account: str
    sym: str
    clordid: str
    side: Side
    qty: int
    price: float
    liquidity: Liquidity
    strategy: str = ""
