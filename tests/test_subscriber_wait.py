"""The subscriber's waits: ``poll(t)`` blocks in the receive (no spin near its deadline),
and ``poll_now`` never blocks, for callers that poll ``Subscriber.socket`` themselves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq
from support.harness import start_tp, wait_until

from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update


def test_poll_waits_in_the_receive_and_poll_now_never_waits(
    tmp_path: Path, procs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = tp.info["address"]
    with Subscriber(address, tables=["trade"]) as sub:
        receives: list[int] = []
        real = sub._receive_within

        def receive(wait_ms: int) -> None:
            receives.append(wait_ms)
            real(wait_ms)

        monkeypatch.setattr(sub, "_receive_within", receive)
        started = time.monotonic()
        for _ in range(5):
            assert sub.poll(0.03) is None  # nothing published
        assert time.monotonic() - started >= 0.15
        # A few blocking waits per poll, not a non-blocking receive after another for the
        # last fraction of a millisecond (heartbeats may wake one up early).
        assert len(receives) <= 15, receives
        assert 0 not in receives, receives

        receives.clear()
        started = time.monotonic()
        assert sub.poll_now() is None
        # One receive that does not wait (0 ms): what proves it. The clock only catches a
        # wait of a heartbeat interval or more, with room for a busy machine's stalls.
        assert time.monotonic() - started < 0.15 and receives == [0]

        with Publisher(address) as pub:
            pub.publish("trade", sym="A", price=1.0, size=7)
        poller = zmq.Poller()
        poller.register(sub.socket, zmq.POLLIN)
        got: list[Update] = []

        def arrived() -> bool:
            if sub.pending or poller.poll(10):
                message = sub.poll_now()
                if isinstance(message, Update):
                    got.append(message)
            return bool(got)

        wait_until(arrived, timeout=10)
        assert got[0].data.column("size").to_pylist() == [7]
