"""Socket framing shared by the server and the client: read whole messages, handshake.

Handshake: the client sends ``user:password`` followed by one capability byte and a NUL
(pre-2.6 clients send no capability byte). The server answers with one byte, the agreed
capability, or closes the socket to refuse the credentials.
"""

from __future__ import annotations

import select
import socket
import time

from qipc.codec import Header, parse_header
from qipc.compress import PREFIX_SIZE, expanded_size
from qipc.types import HEADER_SIZE, QProtocolError

MAX_HANDSHAKE_BYTES = 1024
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30
# The first buffer of a message body; each further one is at most what has arrived so far,
# so a header claiming a huge length costs memory only as its bytes actually come.
_FIRST_CHUNK = 64 << 10


class ReadTimeout(TimeoutError):
    """No message (``started`` False) or not all of one (True) before the deadline."""

    def __init__(self, message: str, started: bool) -> None:
        super().__init__(message)
        self.started = started


def _wait_readable(sock: socket.socket, deadline: float, started: bool) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if poller.poll(remaining * 1000):
            return
    what = "the rest of a message did not come" if started else "no message"
    raise ReadTimeout(f"{what} in time", started)


def _recv_into(sock: socket.socket, view: memoryview, deadline: float | None, started: bool) -> int:
    """One recv into ``view``. With a deadline the socket must be blocking (no timeout):
    data already there is taken without a wait, else poll until the deadline."""
    if deadline is None:
        return sock.recv_into(view)
    while True:
        try:
            return sock.recv_into(view, 0, socket.MSG_DONTWAIT)
        except BlockingIOError:
            _wait_readable(sock, deadline, started)


def recv_exactly(sock: socket.socket, n: int, deadline: float | None = None) -> bytearray:
    """Read exactly ``n`` bytes (of a message already started); ConnectionError if the
    peer closes first, ReadTimeout past ``deadline`` (``time.monotonic()``)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        read = _recv_into(sock, view[got:], deadline, True)
        if read == 0:
            raise ConnectionError("peer closed the connection")
        got += read
    return buf


def read_message(
    sock: socket.socket,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    idle_deadline: float | None = None,
    message_timeout_s: float | None = None,
) -> tuple[Header, bytes]:
    """Read one whole message (header included).

    QProtocolError for a bad header, a length over ``max_bytes``, or a compressed message
    whose claimed expanded size is over ``max_bytes`` or more than kdb+ compression can
    produce: the stream cannot be resynchronised after one, so callers drop the peer.
    Memory grows with the bytes that arrive, never with the length a header claims.

    ``idle_deadline`` bounds the wait for the message's first byte and
    ``message_timeout_s`` the time from there to its last (``ReadTimeout``; both need a
    blocking socket); without them the socket's own timeout applies.
    """
    head = bytearray(HEADER_SIZE)
    got = _recv_into(sock, memoryview(head), idle_deadline, False)
    if got == 0:
        raise ConnectionError("peer closed the connection")
    # The message has started: from here its clock runs, not the idle one.
    deadline = None if message_timeout_s is None else time.monotonic() + message_timeout_s
    head[got:] = recv_exactly(sock, HEADER_SIZE - got, deadline)
    header = parse_header(bytes(head))
    if header.length > max_bytes:
        raise QProtocolError(f"message of {header.length} bytes exceeds the {max_bytes} limit")
    parts: list[bytes | bytearray] = [head]
    got = HEADER_SIZE
    if header.compressed:
        # The claimed expanded size comes next: refuse a bomb before reading the rest.
        size_bytes = recv_exactly(sock, min(PREFIX_SIZE, header.length) - got, deadline)
        expanded_size(head + size_bytes, max_bytes)
        parts.append(size_bytes)
        got += len(size_bytes)
    while got < header.length:
        chunk = recv_exactly(sock, min(header.length - got, max(_FIRST_CHUNK, got)), deadline)
        parts.append(chunk)
        got += len(chunk)
    return header, b"".join(parts)


def read_handshake(sock: socket.socket) -> tuple[str, str, int]:
    """Server side: read ``user:password[cap]\\0`` → (user, password, capability)."""
    buf = bytearray()
    while True:
        chunk = sock.recv(MAX_HANDSHAKE_BYTES)
        if not chunk:
            raise ConnectionError("peer closed during the handshake")
        buf += chunk
        if b"\0" in buf:
            break
        if len(buf) > MAX_HANDSHAKE_BYTES:
            raise QProtocolError("handshake longer than 1 KiB")
    return parse_handshake(bytes(buf[: buf.index(b"\0")]))


def parse_handshake(raw: bytes) -> tuple[str, str, int]:
    """``user:password[cap]`` (without its NUL) → (user, password, capability)."""
    capability = 0
    # The capability is a small binary byte; printable bytes belong to the credentials.
    if raw and raw[-1] < 0x20:
        capability = raw[-1]
        raw = raw[:-1]
    text = raw.decode("utf-8", "replace")
    user, _, password = text.partition(":")
    return user, password, capability


def client_handshake(sock: socket.socket, user: str, password: str, capability: int) -> int:
    """Client side: send credentials, return the capability the server agreed."""
    creds = f"{user}:{password}" if password else user
    sock.sendall(creds.encode() + bytes([capability, 0]))
    reply = sock.recv(1)
    if not reply:
        raise ConnectionRefusedError("kdb+ handshake refused (bad credentials?)")
    return reply[0]
