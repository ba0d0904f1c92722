"""Positions and P&L per account and sym, from fills, by the average cost method.

A position's ``avg_price`` is the cost of what is still open. A fill on the position's side
grows it at a new volume-weighted average; a fill on the other side closes at most the open
quantity, realizing ``closed * (price - avg_price)`` for a long (the negative for a short) and
leaving ``avg_price`` unchanged; whatever it fills beyond that opens a position the other way
at the fill's price (a flip). A flat position has ``avg_price`` 0.

``unrealized_pnl`` is ``qty * (mark - avg_price)``, with the mark set by :meth:`mark` (last
trade or mid); 0 while a sym has no mark.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from orders.model import Fill, Side


@dataclass(frozen=True)
class Position:
    account: str
    sym: str
    qty: int  # signed: long > 0, short < 0
    avg_price: float  # average cost of the open quantity; 0 when flat
    realized_pnl: float
    unrealized_pnl: float  # qty * (mark - avg_price); 0 without a mark
    mark: float | None
    bought: int  # quantity bought over the book's life
    sold: int
    buy_notional: float  # Σ qty * price of the buys
    sell_notional: float

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class _Open:
    """The mutable state behind one :class:`Position`."""

    __slots__ = ("avg_price", "bought", "buy_notional", "qty", "realized", "sell_notional", "sold")

    def __init__(self) -> None:
        self.qty = 0
        self.avg_price = 0.0
        self.realized = 0.0
        self.bought = 0
        self.sold = 0
        self.buy_notional = 0.0
        self.sell_notional = 0.0


class PositionBook:
    """Positions of every account in every sym it has traded, updated fill by fill."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], _Open] = {}
        self._marks: dict[str, float] = {}
        self.fills = 0  # fills applied

    def on_fill(self, fill: Fill) -> None:
        self.execute(fill.account, fill.sym, fill.side, fill.qty, fill.price, fill.exec_id)

    def execute(
        self, account: str, sym: str, side: Side, qty: int, price: float, exec_id: str = ""
    ) -> None:
        """One execution of ``qty`` at ``price`` for ``account`` (a fill row, or the FILL
        event that carries the same execution)."""
        if qty <= 0:
            raise ValueError(f"fill {exec_id}: quantity {qty} must be positive")
        pos = self._open.get((account, sym))
        if pos is None:
            pos = self._open[(account, sym)] = _Open()
        sign = side.sign
        if sign > 0:
            pos.bought += qty
            pos.buy_notional += qty * price
        else:
            pos.sold += qty
            pos.sell_notional += qty * price
        if pos.qty == 0 or (pos.qty > 0) == (sign > 0):
            held = abs(pos.qty)
            pos.avg_price = (held * pos.avg_price + qty * price) / (held + qty)
            pos.qty += sign * qty
        else:
            closed = min(qty, abs(pos.qty))
            direction = 1 if pos.qty > 0 else -1
            pos.realized += closed * (price - pos.avg_price) * direction
            pos.qty += sign * closed
            opened = qty - closed
            if opened:  # flipped: the rest opens the other way at the fill's price
                pos.qty = sign * opened
                pos.avg_price = price
            elif pos.qty == 0:
                pos.avg_price = 0.0
        self.fills += 1

    def mark(self, sym: str, price: float) -> None:
        """Set the price unrealized P&L is measured against (last trade or mid)."""
        self._marks[sym] = price

    def qty(self, account: str, sym: str) -> int:
        """The signed position, without building a :class:`Position` (the risk hot path)."""
        pos = self._open.get((account, sym))
        return 0 if pos is None else pos.qty

    def position(self, account: str, sym: str) -> Position:
        """The position (flat and zero for a pair that never traded)."""
        return self._snapshot(account, sym, self._open.get((account, sym)) or _Open())

    def positions(self, account: str | None = None) -> list[Position]:
        """Every traded position (of one account, or of all), sorted by account and sym."""
        return [
            self._snapshot(acct, sym, pos)
            for (acct, sym), pos in sorted(self._open.items())
            if account is None or acct == account
        ]

    def _snapshot(self, account: str, sym: str, pos: _Open) -> Position:
        mark = self._marks.get(sym)
        unrealized = 0.0 if mark is None else pos.qty * (mark - pos.avg_price)
        return Position(
            account=account,
            sym=sym,
            qty=pos.qty,
            avg_price=pos.avg_price,
            realized_pnl=pos.realized,
            unrealized_pnl=unrealized,
            mark=mark,
            bought=pos.bought,
            sold=pos.sold,
            buy_notional=pos.buy_notional,
            sell_notional=pos.sell_notional,
        )
