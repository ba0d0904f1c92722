"""Socket framing shared by the server and the client: read whole messages, handshake.

Handshake: the client sends ``user:password`` followed by one capability byte and a NUL
(pre-2.6 clients send no capability byte). The server answers with one byte, the agreed
capability, or closes the socket to refuse the credentials.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from qipc.codec import Header, parse_header
from qipc.compress import PREFIX_SIZE, expanded_size
from qipc.types import HEADER_SIZE, QProtocolError

MAX_HANDSHAKE_BYTES = 1024
DEFAULT_MAX_MESSAGE_BYTES = 1 << 30
# The first buffer of a message body; each further one is at most what has arrived so far,
# so a header claiming a huge length costs memory only as its bytes actually come.
_FIRST_CHUNK = 64 << 10


def recv_exactly(sock: socket.socket, n: int) -> bytearray:
    """Read exactly ``n`` bytes; ConnectionError if the peer closes first."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        read = sock.recv_into(view[got:], n - got)
        if read == 0:
            raise ConnectionError("peer closed the connection")
        got += read
    return buf


def read_message(
    sock: socket.socket,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    on_header: Callable[[Header], None] | None = None,
) -> tuple[Header, bytes]:
    """Read one whole message (header included).

    QProtocolError for a bad header, a length over ``max_bytes``, or a compressed message
    whose claimed expanded size is over ``max_bytes`` or more than kdb+ compression can
    produce: the stream cannot be resynchronised after one, so callers drop the peer.
    Memory grows with the bytes that arrive, never with the length a header claims.
    ``on_header`` is called once a valid header is in (the server times the rest).
    """
    head = recv_exactly(sock, HEADER_SIZE)
    header = parse_header(bytes(head))
    if header.length > max_bytes:
        raise QProtocolError(f"message of {header.length} bytes exceeds the {max_bytes} limit")
    if on_header is not None:
        on_header(header)
    parts: list[bytes | bytearray] = [head]
    got = HEADER_SIZE
    if header.compressed:
        # The claimed expanded size comes next: refuse a bomb before reading the rest.
        size_bytes = recv_exactly(sock, min(PREFIX_SIZE, header.length) - got)
        expanded_size(head + size_bytes, max_bytes)
        parts.append(size_bytes)
        got += len(size_bytes)
    while got < header.length:
        chunk = recv_exactly(sock, min(header.length - got, max(_FIRST_CHUNK, got)))
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
