"""A publisher given a tickerplant pair follows a takeover on its own, while its user neither
publishes nor flushes: the gateway's order path sends one request and waits for the venue's
answer, which comes only once the request reaches the new primary. What it sent to the
frozen-then-killed primary, never journaled there, and what it published after the kill
both reach the new primary, exactly once, without another call on the publisher."""

from __future__ import annotations

import signal
from collections import Counter

from support.harness import wait_until
from support.tp_pair import WAIT, Pair, pair_fixture, start_pair

from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update

pair = pair_fixture()


def test_a_quiet_publisher_reaches_the_new_primary_without_another_call(pair: Pair) -> None:
    start_pair(pair)
    publisher = Publisher(pair.both, resend_after_s=0.3)
    seen: Counter[int] = Counter()
    try:
        publisher.publish("trade", sym="A", price=1.0, size=1)
        publisher.flush()
        a = pair.procs["a"]
        a.popen.send_signal(signal.SIGSTOP)  # what is sent now is never journaled by a
        publisher.publish("trade", sym="A", price=1.0, size=2)
        a.kill9()
        wait_until(lambda: pair.role("b").get("role") == "primary", WAIT, what="b primary")
        publisher.publish("trade", sym="A", price=1.0, size=3)
        # From here on, nothing is asked of the publisher: it must find b by itself.
        with Subscriber(pair.both, tables=["trade"], start="journal") as sub:

            def read() -> bool:
                while (message := sub.poll(0.05)) is not None:
                    if isinstance(message, Update):
                        seen.update(message.data.column("size").to_pylist())
                return sum(seen.values()) >= 3

            wait_until(read, WAIT, what="rows 2 and 3 on the new primary")
            sub.poll(0.5)  # a doubled row would follow at once
        assert seen == Counter({1: 1, 2: 1, 3: 1})
        assert publisher.failovers == 1
    finally:
        publisher.close(flush=False)
