"""One DEALER socket to a query server that knows when its connection dies.

A ZeroMQ DEALER hides the TCP connection: when the server process is killed, a request in
flight simply never gets its reply, and the client would wait out the whole time limit.
The socket's monitor reports the connection's events as they happen, so ``Link`` turns
them into fast, clear failures:

- the connection drops while a request waits (``EVENT_DISCONNECTED``): the reply is lost
  (ZeroMQ does not resend it), so the wait ends at once;
- a fresh socket's connection attempt is refused (``EVENT_CLOSED`` before any
  ``EVENT_CONNECTED``): nothing listens there;
- a handshake fails (a security mechanism refused us).

A link never reconnects (``RECONNECT_IVL`` -1): a socket that saw its connection drop is
not reused, the client makes a fresh one. This also bounds what its monitor can queue to
a handful of events. That bound matters: libzmq's I/O thread sends monitor events with a
blocking send, so a monitor nobody reads (an idle link in a client's pool) that kept
queueing an event per reconnect attempt to a stopped server would, once its pipe filled,
block that I/O thread, and with it every socket of the context, for good.

The wait polls the socket alone, in slices of ``CHECK_MS``, and reads the monitor between
slices: polling both sockets at once made every request of a small query twice as slow
(a round trip of ~0.8 ms took ~1.6 ms), while a reply within the first slice, the common
case, costs no look at the monitor at all. A killed server's disconnect is seen ~1.5 ms
after its process closed its sockets on loopback, so within a slice of that.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

_EVENTS = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CLOSED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
CHECK_MS = 5  # how often a waiting request looks at its connection's events
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class LinkLost(Exception):
    """The connection this request went out on is gone (or was never made)."""


class Link:
    """A connected DEALER and its monitor; not thread-safe (one request at a time)."""

    def __init__(self, ctx: zmq.Context[Any], address: str, curve: Any = None) -> None:
        """``curve``: a ``tickdb.curve_links`` client (its ``apply(sock)`` before connect)."""
        self.address = address
        self.sock: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RECONNECT_IVL, -1)  # see the module docstring
        if curve is not None:
            curve.apply(self.sock)
        self.monitor: zmq.Socket[Any] = self.sock.get_monitor_socket(_EVENTS)
        self.connected = False  # a connection was made at least once
        self.dropped = False  # the connection dropped since the last request began
        self.sock.connect(address)

    def reusable(self) -> bool:
        """Whether this socket may carry the next request (see the module docstring)."""
        self._drain()
        return not self.dropped

    def wait_reply(self, wait_ms: int) -> bool:
        """Wait for the reply to the request just sent: True when it is there, False after
        ``wait_ms``; ``LinkLost`` as soon as the connection fails."""
        self._check()
        deadline = time.monotonic() + max(1, wait_ms) / 1000
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if self.sock.poll(max(1, min(CHECK_MS, remaining_ms)), zmq.POLLIN):
                return True
            self._check()
            if remaining_ms <= CHECK_MS:
                return False

    def _check(self) -> None:
        failure = self._drain()
        if failure:
            raise LinkLost(failure)

    def _drain(self) -> str:
        """Read every queued event; the failure they show, or ""."""
        failure = ""
        if not int(self.monitor.get(zmq.EVENTS)) & zmq.POLLIN:
            return failure  # nothing queued: no receive (and no exception) needed
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return failure
            if event == zmq.EVENT_CONNECTED:
                self.connected = True
            elif event == zmq.EVENT_DISCONNECTED:
                self.dropped = True
                # A refused handshake is followed by its disconnect: the refusal says why.
                failure = failure or (
                    f"connection to {self.address} lost (backend stopped or restarted)"
                )
            elif event == zmq.EVENT_CLOSED and not self.connected:
                failure = f"cannot connect to {self.address} (nothing listening there)"
            elif event & _HANDSHAKE_FAILED:
                self.dropped = True
                why = (
                    "this client's CURVE key refused (no identity has it, or it lacks the "
                    "port's role), or CURVE on one side only"
                )
                # No detail: the connection ended mid-handshake, a backend killed then too.
                lost = event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                failure = (
                    f"connection to {self.address} lost during the handshake: the backend "
                    f"stopped, or {why}"
                    if lost
                    else f"handshake with {self.address} failed: {why}"
                )

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)
