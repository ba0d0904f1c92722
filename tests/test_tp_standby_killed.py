"""A killed tickerplant standby does not stall the pair, and a standby counted in is told so
at once (``test_a_primary_killed_just_after_the_standby_attached_is_taken_over``).

A killed standby: in sync mode the primary waits for
an attached standby's confirmation before it acknowledges, and for a silent one up to
``standby_timeout_ms``; a standby whose process is gone (its connection closed and its
``flock`` on ``tickerplant.standby.alive`` freed) is dropped at once. A frozen standby (alive,
its lock held) is still waited for, as ``test_tp_standby.test_frozen_standby`` checks."""

from __future__ import annotations

import time

from support.harness import wait_until
from support.tp_pair import WAIT, Pair, pair_fixture, same_files, start_pair

from tickerplant.publisher import Publisher

TIMEOUT_MS = 20_000  # a standby silent this long is dropped: far above what is allowed here


pair = pair_fixture(standby_timeout_ms=TIMEOUT_MS)


def test_a_killed_standby_is_dropped_at_once(pair: Pair) -> None:
    start_pair(pair)
    publisher = Publisher(pair.both, timeout_s=60)
    try:
        publisher.publish("trade", sym="A", price=1.0, size=1)
        publisher.flush()
        pair.procs["b"].kill9()
        killed = time.monotonic()
        publisher.publish("trade", sym="A", price=1.0, size=2)
        publisher.flush(timeout_s=TIMEOUT_MS / 1000 - 5)  # without the drop: TimeoutError
        assert time.monotonic() - killed < TIMEOUT_MS / 2000
        assert not pair.stats("a")["standby_attached"]
        # Restarted, it catches up and counts again.
        pair.start("b")
        wait_until(lambda: pair.attached("a"), WAIT, what="b attached again")
        publisher.publish("trade", sym="A", price=1.0, size=3)
        publisher.flush()
        wait_until(
            lambda: same_files(pair.journal("a"), pair.journal("b")), WAIT, what="same journals"
        )
        assert publisher.failovers == 0
    finally:
        publisher.close(flush=False)


def test_a_primary_killed_just_after_the_standby_attached_is_taken_over(pair: Pair) -> None:
    """The standby is told it is counted in when the primary counts it in, not at the next
    beat (``standby_timeout_ms / 4`` later): a standby never told does not take over, and
    the primary killed in between left the pair without a primary."""
    start_pair(pair)  # returns as soon as the primary's STATS says b is attached
    pair.procs["a"].kill9()
    wait_until(lambda: pair.role("b").get("role") == "primary", WAIT, what="b primary")
    with Publisher(pair.both, timeout_s=WAIT) as publisher:
        publisher.publish("trade", sym="A", price=1.0, size=1)
        publisher.flush()
