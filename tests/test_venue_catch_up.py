"""A venue says it is ready (or a standby takes over) only once it has worked through what
the tickerplant published while it replayed the journal: the subscription turning live
means the first live message arrived, not the last."""

from __future__ import annotations

from pathlib import Path

from support.harness import Proc, start_tp

from orders.model import NewOrder, Side
from orders.rows import REQUEST_SCHEMA, request_row, to_table
from orders.venue import Venue
from tickdb.types import Shard
from tickerplant.publisher import Publisher


def requests(first: int, count: int) -> object:
    """``count`` resting buy orders (far from any sell: nothing trades)."""
    rows = [
        request_row(NewOrder("A1", "AAPL", f"c-{i}", Side.BUY, 1, price=10.0 + (i % 50) / 100))
        for i in range(first, first + count)
    ]
    return to_table(rows, REQUEST_SCHEMA)


def test_catch_up_works_through_what_queued_during_the_replay(
    tmp_path: Path, procs: list[Proc]
) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    with Publisher(address) as pub:
        for k in range(20):  # the journal the venue replays: a record of 10 each
            pub.publish("order_request", requests(k * 10, 10))
        pub.flush()  # journaled before the venue asks for its replay
    venue = Venue(address, Shard(0, 1))  # subscribed: from here on records queue for it
    try:
        with Publisher(address) as pub:
            for k in range(20, 120):  # published live while the venue has not yet run
                pub.publish("order_request", requests(k * 10, 10))
            pub.flush()
        venue.catch_up()
        # Every request is in the book: the replayed ones and all that queued meanwhile.
        assert len(venue.engine.open_orders()) == 1200
    finally:
        venue.close()
