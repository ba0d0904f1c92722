"""``gateway.order_wait.SocketsWait``: sleeps on the sockets' descriptors, and never past
input that a call on a socket hid from its descriptor."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq
from support.harness import wait_until

from gateway.order_wait import SocketsWait, has_input


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket, zmq.Socket, zmq.Socket]]:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    pub = ctx.socket(zmq.PUB)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{pub_port}")
    try:
        yield sub, router, pub, dealer
    finally:
        for s in (sub, router, pub, dealer):
            s.close(0)
        ctx.term()


def _timed(wait: SocketsWait, timeout_s: float) -> tuple[list[bool], float]:
    started = time.monotonic()
    ready = wait.wait(timeout_s)
    return ready, time.monotonic() - started


def _settle(wait: SocketsWait) -> None:
    """Wait as the order thread does until no descriptor signals: a wake with nothing to
    read (a connection's own commands) is checked, as its receive would, and marked clean."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ready = wait.wait(0.05)
        if not any(ready):
            return
        for i, signalled in enumerate(ready):
            if signalled:
                assert not has_input(wait.sockets[i])  # nothing was sent yet
                wait.clean(i)
    raise AssertionError("the descriptors never settled")


def test_wakes_on_input_and_times_out(pair: tuple[zmq.Socket, ...]) -> None:
    sub, router, pub, dealer = pair
    wait = SocketsWait((sub, router))
    _settle(wait)  # both dirty at first: checked, then slept
    dealer.send(b"request")
    ready, took = _timed(wait, 5)
    assert ready[1] and took < 1
    router.recv_multipart()
    assert not has_input(router)
    wait.clean(1)
    # The subscription needs a moment to reach the publisher: publish until one arrives.
    deadline = time.monotonic() + 5
    while not has_input(sub) and time.monotonic() < deadline:
        wait.clean(0)
        pub.send(b"event")
        if wait.wait(0.05)[1]:
            wait.clean(1)
    assert has_input(sub)
    while has_input(sub):
        sub.recv()
    wait.clean(0)
    _settle(wait)
    assert _timed(wait, 0.05)[0] == [False, False]


def test_a_wake_without_a_message_is_reported_and_cleaned(pair: tuple[zmq.Socket, ...]) -> None:
    """A descriptor that signals is reported without a check: the caller's receive finds
    the message, or nothing; after a clean the wait sleeps again, never spins."""
    _sub, router, _pub, dealer = pair
    wait = SocketsWait((_sub, router))
    _settle(wait)
    dealer.send(b"request")
    assert _timed(wait, 5)[0][1]
    assert router.recv_multipart(zmq.NOBLOCK)[1] == b"request"  # the receive ran the commands
    with pytest.raises(zmq.Again):
        router.recv_multipart(zmq.NOBLOCK)
    wait.clean(1)
    ready, took = _timed(wait, 0.2)
    assert ready == [False, False] and took >= 0.15


def test_input_hidden_by_a_call_is_seen_when_marked_dirty(pair: tuple[zmq.Socket, ...]) -> None:
    sub, router, _pub, dealer = pair
    wait = SocketsWait((sub, router))
    wait.wait(0)
    dealer.send(b"request")
    # Any call on the socket runs its commands: here a check finds the request and so
    # consumes what signalled the descriptor. The request waits; the descriptor is quiet.
    wait_until(lambda: has_input(router))
    wait.clean(1)  # as if nothing could be waiting: the wait sleeps past the request
    ready, took = _timed(wait, 0.2)
    assert ready == [False, False] and took >= 0.15
    wait.dirty(1)  # what the loop says after such a call: checked before sleeping
    ready, took = _timed(wait, 2)
    assert ready == [False, True] and took < 0.5
    assert router.recv_multipart()[1] == b"request"
