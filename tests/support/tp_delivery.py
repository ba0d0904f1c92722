"""Rows to publish through a tickerplant, and a subscriber read back to a row count: the
delivery tests check the rows arrive once, in order, with nothing after them."""

from __future__ import annotations

import pyarrow as pa

from support.harness import wait_until
from tickerplant.subscriber import Subscriber, Update


def trades(start: int, count: int, syms: tuple[str, ...] = ("AAPL", "MSFT", "IBM")) -> pa.Table:
    return pa.table(
        {
            "sym": [syms[i % len(syms)] for i in range(start, start + count)],
            "price": [float(i) for i in range(start, start + count)],
            "size": list(range(start, start + count)),
        }
    )


def drain(sub: Subscriber, expected_rows: int, timeout: float = 20.0) -> list[Update]:
    got: list[Update] = []

    def enough() -> bool:
        while (message := sub.poll(0.05)) is not None:
            if isinstance(message, Update):
                got.append(message)
        return sum(u.data.num_rows for u in got) >= expected_rows

    try:
        wait_until(enough, timeout, f"{expected_rows} rows")
    except AssertionError:
        got_rows = sum(u.data.num_rows for u in got)
        raise AssertionError(
            f"got {got_rows} of {expected_rows} rows: {sizes(got)[-5:]}, "
            f"gaps {sub.gaps_repaired} last {sub.last_seq}"
        ) from None
    # Anything further would be a duplicate.
    extra = sub.poll(0.3)
    assert extra is None, f"unexpected extra message {extra}"
    return got


def sizes(updates: list[Update]) -> list[int]:
    return [s for u in updates for s in u.data.column("size").to_pylist()]
