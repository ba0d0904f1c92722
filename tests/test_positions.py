"""PositionBook: average-cost positions, realized and unrealized P&L, flips."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.model import Fill, Liquidity, Side
from orders.positions import Position, PositionBook

_ids = itertools.count()


def fill(side: Side, qty: int, price: float, account: str = "A1", sym: str = "AAPL") -> Fill:
    n = next(_ids)
    return Fill(f"E{n}", f"O{n}", account, sym, f"C{n}", side, qty, price, Liquidity.TAKER)


def test_untraded_position_is_flat() -> None:
    pos = PositionBook().position("A1", "AAPL")
    assert (pos.qty, pos.avg_price, pos.realized_pnl, pos.unrealized_pnl) == (0, 0.0, 0.0, 0.0)
    assert pos.mark is None


def test_buys_average_their_cost() -> None:
    book = PositionBook()
    book.on_fill(fill(Side.BUY, 100, 10.0))
    book.on_fill(fill(Side.BUY, 300, 12.0))
    pos = book.position("A1", "AAPL")
    assert pos.qty == 400
    assert pos.avg_price == pytest.approx(11.5)
    assert pos.realized_pnl == 0.0
    assert (pos.bought, pos.buy_notional, pos.sold, pos.sell_notional) == (400, 4600.0, 0, 0.0)


def test_reducing_a_long_realizes_against_the_average_and_keeps_it() -> None:
    book = PositionBook()
    book.on_fill(fill(Side.BUY, 100, 10.0))
    book.on_fill(fill(Side.BUY, 100, 12.0))
    book.on_fill(fill(Side.SELL, 50, 15.0))
    pos = book.position("A1", "AAPL")
    assert pos.qty == 150
    assert pos.avg_price == pytest.approx(11.0)
    assert pos.realized_pnl == pytest.approx(50 * (15.0 - 11.0))


def test_closing_a_short_realizes_the_negative_move() -> None:
    book = PositionBook()
    book.on_fill(fill(Side.SELL, 200, 20.0))
    book.on_fill(fill(Side.BUY, 200, 18.5))
    pos = book.position("A1", "AAPL")
    assert pos.qty == 0
    assert pos.avg_price == 0.0
    assert pos.realized_pnl == pytest.approx(200 * 1.5)


def test_flip_realizes_the_closed_part_and_opens_the_rest_at_the_fill_price() -> None:
    book = PositionBook()
    book.on_fill(fill(Side.BUY, 100, 10.0))
    book.on_fill(fill(Side.SELL, 250, 11.0))
    pos = book.position("A1", "AAPL")
    assert pos.qty == -150
    assert pos.avg_price == 11.0
    assert pos.realized_pnl == pytest.approx(100.0)
    book.on_fill(fill(Side.BUY, 200, 10.0))  # flips back: closes 150 short at +1 each
    pos = book.position("A1", "AAPL")
    assert pos.qty == 50
    assert pos.avg_price == 10.0
    assert pos.realized_pnl == pytest.approx(100.0 + 150.0)


def test_unrealized_pnl_follows_the_mark() -> None:
    book = PositionBook()
    book.on_fill(fill(Side.SELL, 100, 50.0))
    assert book.position("A1", "AAPL").unrealized_pnl == 0.0
    book.mark("AAPL", 48.0)
    pos = book.position("A1", "AAPL")
    assert pos.mark == 48.0
    assert pos.unrealized_pnl == pytest.approx(200.0)


def test_positions_lists_by_account_and_sym() -> None:
    book = PositionBook()
    book.on_fill(fill(Side.BUY, 1, 1.0, account="B", sym="X"))
    book.on_fill(fill(Side.BUY, 1, 1.0, account="A", sym="Z"))
    book.on_fill(fill(Side.BUY, 1, 1.0, account="A", sym="Y"))
    assert [(p.account, p.sym) for p in book.positions()] == [("A", "Y"), ("A", "Z"), ("B", "X")]
    assert [p.sym for p in book.positions("A")] == ["Y", "Z"]
    assert book.qty("A", "Y") == 1
    assert book.qty("A", "nothing") == 0


def test_to_dict_has_every_field() -> None:
    book = PositionBook()
    book.on_fill(fill(Side.BUY, 10, 2.0))
    row = book.position("A1", "AAPL").to_dict()
    assert row["qty"] == 10
    assert set(row) == set(Position.__dataclass_fields__)


def test_non_positive_fill_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="quantity 0"):
        PositionBook().on_fill(fill(Side.BUY, 0, 1.0))


@given(
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(1, 500),
            st.integers(1, 2000),  # cents, so the cash flows are exact
        ),
        max_size=40,
    ),
    st.integers(1, 2000),
)
def test_total_pnl_equals_cash_flow_plus_marked_position(
    fills: list[tuple[Side, int, int]], mark_cents: int
) -> None:
    """The reference: whatever the cost method, realized + unrealized is the cash taken in
    minus the cash paid out plus the open position at the mark."""
    book = PositionBook()
    for side, qty, cents in fills:
        book.on_fill(fill(side, qty, cents / 100))
    book.mark("AAPL", mark_cents / 100)
    pos = book.position("A1", "AAPL")
    signed = sum(side.sign * qty for side, qty, _ in fills)
    assert pos.qty == signed
    cash = sum(-side.sign * qty * cents / 100 for side, qty, cents in fills)
    assert pos.realized_pnl + pos.unrealized_pnl == pytest.approx(
        cash + signed * mark_cents / 100, abs=1e-6
    )
    assert pos.sell_notional - pos.buy_notional == pytest.approx(cash, abs=1e-6)
