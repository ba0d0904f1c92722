"""The tickerplant's wait for work: its two sockets in one ``poll`` system call.

``zmq.Poller`` (``zmq_poll``) makes several system calls a turn besides the wait itself: a
first ``poll`` with no timeout, then a command check (a ``poll`` and a ``getpid``) per
socket before and again after the blocking ``poll``. Here the loop waits on the sockets'
``ZMQ_FD`` descriptors directly, in one ``select.poll`` (at 2,000 one-row messages a
second the main thread's system calls went from 17.5 to 14.3 a message, ``poll`` from 7.4
to 5.1; a bare relay's main thread makes 8).

A ``ZMQ_FD`` becomes readable when commands reach the socket, for instance "a pipe that was
empty has messages". Any call on the socket may consume them: then messages wait but the
descriptor stays quiet. So the loop only sleeps on a descriptor when that cannot have
happened since the socket was last read to empty:

- ingest: the loop reads it until ``EAGAIN`` every turn (which also runs the socket's
  commands, so a message arriving later signals anew), unless a turn stops early
  (``ingest_pending``); the acknowledgements sent on it after that are followed by one
  check of ``ZMQ_EVENTS`` before sleeping;
- publish: its only input is subscriptions, which may wait a millisecond: while records
  are sent on it, its ``ZMQ_EVENTS`` is checked once a millisecond;
- an extra socket (``watch``: the replication port of a pair's primary): its owner reads it
  to empty every turn; after a send on it, ``ZMQ_EVENTS`` is checked before sleeping.
"""

from __future__ import annotations

import math
import select
import time

import zmq

# Plain ints: zmq's enums cost more to combine and compare than the calls they go with.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
PUB_CHECK_S = 0.001  # a subscription is seen this soon while records are being sent


class SocketWait:
    """Sleeps until the ingest or the publish socket may have input, or a timeout."""

    def __init__(self, ingest: zmq.Socket, pub: zmq.Socket) -> None:
        self.ingest, self.pub = ingest, pub
        self._ingest_fd = int(ingest.get(zmq.FD))
        self._pub_fd = int(pub.get(zmq.FD))
        self._poll = select.poll()
        self._poll.register(self._ingest_fd, select.POLLIN)
        self._poll.register(self._pub_fd, select.POLLIN)
        # Whether the last read of ingest stopped before it was empty: look again at once.
        self.ingest_pending = True
        self._ingest_sent = False
        self._pub_sent = True
        self._next_pub_check = 0.0
        self.extra: zmq.Socket | None = None
        self._extra_fd = -1
        self._extra_sent = False

    def watch(self, socket: zmq.Socket) -> None:
        """Wake for ``socket`` too (``wait`` then says neither ingest nor publish)."""
        self.extra = socket
        self._extra_fd = int(socket.get(zmq.FD))
        self._poll.register(self._extra_fd, select.POLLIN)

    def sent_on_extra(self) -> None:
        self._extra_sent = True

    def sent_on_ingest(self) -> None:
        """Something was sent on ingest after it was last read to empty."""
        self._ingest_sent = True

    def sent_on_pub(self) -> None:
        self._pub_sent = True

    def wait(self, timeout_s: float) -> tuple[bool, bool]:
        """Whether ingest and the publish socket may have input, after at most
        ``timeout_s`` (at once when one surely has)."""
        ingest = self.ingest_pending
        if self._ingest_sent and not ingest:
            self._ingest_sent = False
            ingest = bool(int(self.ingest.get(_EVENTS)) & _POLLIN)
        pub = False
        if self._pub_sent:
            now = time.monotonic()
            if now >= self._next_pub_check:
                self._pub_sent = False
                self._next_pub_check = now + PUB_CHECK_S
                pub = bool(int(self.pub.get(_EVENTS)) & _POLLIN)
            else:
                timeout_s = min(timeout_s, self._next_pub_check - now)
        if ingest or pub:
            return ingest, pub
        if self._extra_sent and self.extra is not None:
            self._extra_sent = False
            if int(self.extra.get(_EVENTS)) & _POLLIN:
                return False, False
        for fd, _ in self._poll.poll(math.ceil(max(timeout_s, 0.0) * 1000)):
            if fd == self._ingest_fd:
                ingest = True
            elif fd == self._pub_fd:
                pub = True
        return ingest, pub
