"""A gateway waits for its order path's rebuild as long as the rebuild advances: a long
day takes long to replay, and giving up at a fixed time only started it over (a
supervised restart), later in the day each time (``gateway.order_setup._rebuilt``)."""

from __future__ import annotations

import threading
import time
from typing import Any

from gateway.order_setup import _rebuilt


class Rebuild:
    """The two things the wait looks at: the seq reached, and the ready event."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.ready = threading.Event()

    def wait_ready(self, timeout_s: float) -> bool:
        return self.ready.wait(timeout_s)


def advance(rebuild: Rebuild, steps: int, every_s: float) -> None:
    for _ in range(steps):
        time.sleep(every_s)  # the pace of a slow rebuild, the thing under test
        rebuild.last_seq += 1000
    rebuild.ready.set()


def test_a_rebuild_longer_than_the_stall_limit_is_waited_for_while_it_advances() -> None:
    rebuild = Rebuild()
    worker = threading.Thread(target=advance, args=(rebuild, 4, 1.2))
    worker.start()
    started = time.monotonic()
    stream: Any = rebuild
    assert _rebuilt(stream, stall_timeout_s=2.0)  # 4.8 s in all, never 2 s without progress
    assert time.monotonic() - started > 4.0
    worker.join()


def test_a_rebuild_that_stops_advancing_is_given_up() -> None:
    rebuild = Rebuild()
    rebuild.last_seq = 5000
    stream: Any = rebuild
    started = time.monotonic()
    assert not _rebuilt(stream, stall_timeout_s=1.5)
    assert 1.5 <= time.monotonic() - started < 5.0
