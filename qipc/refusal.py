"""Connections over a server's cap, answered by its accept thread with no thread of their own.

A kdb+ client only learns why it was turned away from a message: closing during the
handshake reads as bad credentials ('access'). So a refused client gets the handshake it
expects (the capability byte), then a q error saying the port is full, and the socket is
closed once the client has had it. All of it happens in the acceptor's selector, so a flood
of connections costs a few file descriptors for a few seconds, never a thread each.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from qipc import types as t
from qipc.codec import encode
from qipc.transport import MAX_HANDSHAKE_BYTES, parse_handshake

MAX_PENDING = 64  # refusals in progress; beyond them a connection is closed at once
TIMEOUT_S = 2.0  # for the client to send its handshake and read the answer


@dataclass
class _Pending:
    sock: socket.socket
    peer: Any
    reason: str
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    answered: bool = False


class Refusals:
    """Refused connections in the accept thread's selector (``key.data`` is theirs)."""

    def __init__(self, sel: selectors.BaseSelector) -> None:
        self._sel = sel
        self._pending: dict[int, _Pending] = {}
        self.closed_unanswered = 0  # over MAX_PENDING: closed without a word

    def add(self, sock: socket.socket, peer: Any, reason: str) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.closed_unanswered += 1
            sock.close()
            return
        sock.setblocking(False)
        pending = _Pending(sock, peer, reason, time.monotonic() + TIMEOUT_S)
        self._pending[sock.fileno()] = pending
        self._sel.register(sock, selectors.EVENT_READ, pending)

    def owns(self, key: selectors.SelectorKey) -> bool:
        return isinstance(key.data, _Pending)

    def on_readable(self, key: selectors.SelectorKey) -> None:
        pending: _Pending = key.data
        try:
            chunk = pending.sock.recv(MAX_HANDSHAKE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk or pending.answered:
            # Gone, or talking after the answer (its first query): the answer is out.
            self._drop(pending)
            return
        pending.received += chunk
        if b"\0" in pending.received:
            self._answer(pending)
        elif len(pending.received) > MAX_HANDSHAKE_BYTES:
            self._drop(pending)

    def next_timeout(self) -> float | None:
        """Seconds until the earliest refusal expires (None: none pending)."""
        if not self._pending:
            return None
        first = min(p.deadline for p in self._pending.values())
        return max(0.0, first - time.monotonic())

    def expire(self) -> None:
        now = time.monotonic()
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            self._drop(pending)

    def close(self) -> None:
        for pending in list(self._pending.values()):
            self._drop(pending)

    def _answer(self, pending: _Pending) -> None:
        raw = bytes(pending.received[: pending.received.index(b"\0")])
        _, _, capability = parse_handshake(raw)
        reply = bytes([min(capability, t.SERVER_CAPABILITY)])
        reply += encode(t.QError(pending.reason), t.RESPONSE)
        pending.answered = True
        try:
            pending.sock.send(reply)  # a few dozen bytes: the socket buffer takes them
            # Half-close and wait for the client to close: closing with its next query
            # unread would reset the connection and could lose the answer on its side.
            pending.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(pending)

    def _drop(self, pending: _Pending) -> None:
        self._pending.pop(pending.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(pending.sock)
        pending.sock.close()
