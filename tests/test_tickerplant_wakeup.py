"""The tickerplant's wait on its sockets' descriptors (``tickerplant.wakeup``).

Sleeping on a ZeroMQ socket's descriptor is only safe if nothing took its signal since the
socket was last read to empty: these hold the wait to seeing a message whose signal a send
on the same socket consumed, and a subscription whose signal a publish consumed.
"""

from __future__ import annotations

import select
import time
from collections.abc import Iterator

import pytest
import zmq

from tickerplant.wakeup import PUB_CHECK_S, SocketWait


@pytest.fixture
def sockets() -> Iterator[tuple[zmq.Socket, zmq.Socket, zmq.Socket, str]]:
    ctx = zmq.Context()
    ingest, pub, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.XPUB), ctx.socket(zmq.DEALER)
    ingest.bind("tcp://127.0.0.1:0")
    pub.bind("tcp://127.0.0.1:0")
    dealer.connect(ingest.getsockopt_string(zmq.LAST_ENDPOINT))
    yield ingest, pub, dealer, pub.getsockopt_string(zmq.LAST_ENDPOINT)
    for socket in (ingest, pub, dealer):
        socket.close(0)
    ctx.term()


def read_to_empty(socket: zmq.Socket) -> list[list[bytes]]:
    got = []
    while True:
        try:
            got.append(socket.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            return got


def next_message(wait: SocketWait, ingest: zmq.Socket) -> list[bytes]:
    """Waits and reads as the loop does (a wake may find only commands) until a message."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ingest_ready, _ = wait.wait(deadline - time.monotonic())
        if ingest_ready:
            got = read_to_empty(ingest)
            wait.ingest_pending = False
            if got:
                return got[0]
    raise AssertionError("no message")


def timed_wait(wait: SocketWait, timeout_s: float) -> tuple[tuple[bool, bool], float]:
    started = time.monotonic()
    got = wait.wait(timeout_s)
    return got, time.monotonic() - started


def test_it_sleeps_until_a_message_or_the_timeout(sockets) -> None:  # type: ignore[no-untyped-def]
    ingest, pub, dealer, _ = sockets
    wait = SocketWait(ingest, pub)
    dealer.send(b"ping")
    assert next_message(wait, ingest)[1] == b"ping"
    # Idle: after a wake or two for the connection's own commands, it sleeps.
    for _ in range(10):
        (ingest_ready, _), waited = timed_wait(wait, 0.05)
        if not ingest_ready:
            break
        assert read_to_empty(ingest) == []
        wait.ingest_pending = False
    assert not ingest_ready and waited >= 0.04
    dealer.send(b"hello")
    (ingest_ready, _), waited = timed_wait(wait, 5)
    assert ingest_ready and waited < 2
    assert read_to_empty(ingest)[0][1] == b"hello"


def test_a_message_whose_signal_a_reply_took_is_still_seen(sockets) -> None:  # type: ignore[no-untyped-def]
    ingest, pub, dealer, _ = sockets
    wait = SocketWait(ingest, pub)
    dealer.send(b"first")
    identity, _ = next_message(wait, ingest)
    read_to_empty(ingest)
    dealer.send(b"second")
    # Arrived: its signal is on the descriptor (readable, not read: nothing takes it yet).
    assert select.select([ingest.getsockopt(zmq.FD)], [], [], 5)[0]
    # Past libzmq's throttle, a send runs the socket's commands: it takes the signal.
    ingest.send_multipart([identity, b"reply"])
    wait.sent_on_ingest()
    (ingest_ready, _), waited = timed_wait(wait, 5)
    assert ingest_ready and waited < 2
    assert read_to_empty(ingest)[0][1] == b"second"


def test_a_subscription_is_seen_while_records_go_out(sockets) -> None:  # type: ignore[no-untyped-def]
    ingest, pub, _, endpoint = sockets
    wait = SocketWait(ingest, pub)
    wait.ingest_pending = False
    sub = pub.context.socket(zmq.SUB)
    try:
        sub.connect(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"upd/")
        seen: list[list[bytes]] = []
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            pub.send_multipart([b"upd/", b"record"])  # publishing runs the socket's commands
            wait.sent_on_pub()
            _, pub_ready = wait.wait(0.2)
            if pub_ready:
                seen += read_to_empty(pub)
        assert seen == [[b"\x01upd/"]]
        # Nothing more to read: while records go out it looks again within the interval,
        # not at the timeout. "May have input" can be a command that reached the socket
        # meanwhile (on a loaded machine, late): then a look finds nothing to read.
        wait.sent_on_pub()
        (_, pub_ready), waited = timed_wait(wait, 5)
        assert waited < 0.5 + PUB_CHECK_S
        assert not pub_ready or read_to_empty(pub) == []
    finally:
        sub.close(0)
