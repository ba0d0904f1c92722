"""A gateway alone does not get its own ``order_request`` rows back (one wake-up per order
fewer): its live flow leaves out the records of its own publisher (``TopicFilter.not_from``).
The first request of another publisher (another gateway) makes it follow them all, after
applying its own rows sequenced meanwhile from the journal, so a ClOrdID race between
gateways is decided by the sequence exactly as when it followed every row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.harness import Proc, start_tp, wait_until
from support.risk import make

from gateway.order_router import OrderRouter
from gateway.order_stream import OrderStream
from orders.model import NewOrder, OrdStatus, Side
from orders.rows import encode_requests
from tickerplant.protocol import KIND_UPD, Record, parse_topic, topic_for
from tickerplant.publisher import Publisher
from tickerplant.publisher_ids import public_id
from tickerplant.pubsub import ShardMap, select_rows
from tickerplant.subscriber import Subscriber, Update

ME = bytes(range(16))
OTHER = bytes(range(16, 32))


def test_a_topic_leaves_out_the_records_of_one_publisher_only() -> None:
    selection = parse_topic(topic_for(["order_request"], not_from=ME))
    assert selection.not_from == ME and not selection.all_rows
    assert parse_topic(topic_for(["order_request"])).not_from is None

    def picked(origins: tuple[tuple[bytes, int], ...]) -> bool:
        record = Record(KIND_UPD, 1, 0, "order_request", origins, b"")
        return select_rows(selection, record, ShardMap(), {}) is record

    assert not picked(((ME, 1),))
    assert not picked(((ME, 1), (ME, 2)))
    assert picked(((OTHER, 1),))
    assert picked(((ME, 3), (OTHER, 1)))  # a record that is not only its own: whole


def requests_of(sub: Subscriber, upto: int) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    while sub.last_seq < upto:
        message = sub.poll(0.05)
        if isinstance(message, Update):
            got.append((message.seq, message.payload))
    while (message := sub.poll(0)) is not None:
        if isinstance(message, Update):
            got.append((message.seq, message.payload))
    return got


def test_live_and_replayed_without_ones_own_are_the_same(tmp_path: Path, procs: list[Proc]) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    with Publisher(address) as mine, Publisher(address) as theirs:
        me = public_id(mine.publisher_id)
        live = Subscriber(address, tables=["order_request"], not_from=me)
        try:
            for i in range(6):
                pub = mine if i % 2 else theirs
                pub.publish_ipc("order_request", encode_requests([order(f"c-{i}", 1)]))
                pub.flush()
            top = live.tickerplant_seq()
            got = requests_of(live, top)
            with Subscriber(
                address, tables=["order_request"], not_from=me, start="journal"
            ) as replayed:
                assert requests_of(replayed, top) == got
        finally:
            live.close()
    assert len(got) == 3  # only the other publisher's


def order(clordid: str, qty: int) -> NewOrder:
    return NewOrder("A1", "AAPL", clordid, Side.BUY, qty, price=10.0)


def test_own_rows_sequenced_first_still_win_a_race(tmp_path: Path, procs: list[Proc]) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    router = OrderRouter(make(), Publisher(address))
    stream = OrderStream(router, address).start()
    applied: list[Any] = []
    apply = stream.peers.apply

    def counting(payload: Any, *read: Any) -> None:
        applied.append(payload)
        apply(payload, *read)

    stream.peers.apply = counting  # type: ignore[method-assign]
    try:
        assert stream.wait_ready(10)
        # This gateway's order, sequenced first (as ``OrderRouter.submit`` sends it).
        ours = order("k-1", 1)
        with router.lock:
            router._by_clordid[("A1", "k-1")] = ours.to_order()
        router.send_many([ours])
        router.durable()
        seq = router_seq(address)
        wait_until(lambda: stream._flow.last_seq >= seq, 10, "the flow's position")
        assert applied == []  # its own request never came back to it
        # Another gateway's different request with the same ClOrdID, sequenced after ours:
        # the venue refuses it as a duplicate, so ours stays the order.
        with Publisher(address) as other:
            for request in (order("k-1", 7), order("k-2", 3)):
                other.publish_ipc("order_request", encode_requests([request]))
                other.flush()  # a record each
        wait_until(lambda: router.order("A1", "k-2") is not None, 10, "the peer's order")
        kept = router.order("A1", "k-1")
        assert kept is not None and kept.qty == 1 and kept.status is OrdStatus.PENDING_NEW
        assert stream.peers.lost_races == 0 and stream.peers.adopted == 1
        # From here on it follows every request, its own too.
        mine_later = order("k-3", 2)
        with router.lock:
            router._by_clordid[("A1", "k-3")] = mine_later.to_order()
        router.send_many([mine_later])
        router.durable()
        wait_until(lambda: len(applied) == 4, 10, "its own request, now followed")
    finally:
        stream.close()
        router._pub.close(flush=False)


def router_seq(address: str) -> int:
    with Subscriber(address, tables=["order_request"]) as sub:
        return sub.tickerplant_seq()
