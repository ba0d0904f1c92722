"""A subscriber given a tickerplant pair follows a killed primary's successor as soon as its
connection closes, not after three silent heartbeats: with ``heartbeat_ms`` 5000 that
silence alone would be 15 s."""

from __future__ import annotations

import time

from support.harness import wait_until
from support.tp_pair import WAIT, Pair, pair_fixture, start_pair

from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update

HEARTBEAT_MS = 5000


pair = pair_fixture(heartbeat_ms=HEARTBEAT_MS)


def test_a_pair_subscriber_follows_the_new_primary_when_its_connection_closes(
    pair: Pair,
) -> None:
    start_pair(pair)
    with (
        Subscriber(pair.both, tables=["trade"]) as sub,
        Publisher(pair.both, timeout_s=WAIT) as publisher,
    ):
        publisher.publish("trade", sym="A", price=1.0, size=1)
        publisher.flush()
        assert isinstance(sub.poll(WAIT), Update)
        pair.procs["a"].kill9()
        killed = time.monotonic()
        wait_until(lambda: pair.role("b").get("role") == "primary", WAIT, what="b primary")
        publisher.publish("trade", sym="A", price=1.0, size=2)
        publisher.flush()
        message = sub.poll(WAIT)
        assert isinstance(message, Update), message
        assert message.data.column("size").to_pylist() == [2]
        assert time.monotonic() - killed < 3 * HEARTBEAT_MS / 2000  # well before the silence
