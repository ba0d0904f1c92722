"""``Publisher.wait_journaled``: returns once a batch is journaled, holds the publisher
only to read acknowledgements (other threads publish meanwhile), and times out."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from support.harness import start_tp

from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update


def journaled_syms(address: str) -> list[str]:
    with Subscriber(address, tables=["trade"], start="journal") as sub:
        syms: list[str] = []
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                syms += message.data.column("sym").to_pylist()
        return syms


def test_others_publish_while_one_thread_waits_for_the_journal(tmp_path: Path) -> None:
    tp = start_tp(tmp_path)
    tp_pid = tp.popen.pid
    try:
        with Publisher(tp.info["address"]) as pub:
            assert pub.last_batch == 0
            pub.publish("trade", sym="A", price=1.0, size=1)
            pub.wait_journaled(pub.last_batch, timeout_s=10)
            assert journaled_syms(tp.info["address"]) == ["A"]

            os.kill(tp_pid, signal.SIGSTOP)  # no acknowledgement comes now
            pub.publish("trade", sym="B", price=2.0, size=2)
            waited: list[BaseException | None] = []

            def wait() -> None:
                try:
                    pub.wait_journaled(2, timeout_s=30)
                    waited.append(None)
                except BaseException as exc:
                    waited.append(exc)

            waiter = threading.Thread(target=wait)
            waiter.start()
            # While it waits, this thread publishes: the publisher is not held.
            done = threading.Event()
            sender = threading.Thread(
                target=lambda: (pub.publish("trade", sym="C", price=3.0, size=3), done.set())
            )
            sender.start()
            assert done.wait(5), "a publish waited for another thread's wait_journaled"
            assert waiter.is_alive() and pub.last_batch == 3
            with pytest.raises(TimeoutError):
                pub.wait_journaled(3, timeout_s=0.2)
            os.kill(tp_pid, signal.SIGCONT)
            waiter.join(30)
            assert waited == [None]
            pub.wait_journaled(pub.last_batch, timeout_s=10)
        assert journaled_syms(tp.info["address"]) == ["A", "B", "C"]
    finally:
        os.kill(tp_pid, signal.SIGCONT)
        tp.stop()
