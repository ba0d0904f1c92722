"""A ZeroMQ peer written by hand (ZMTP 3.0, NULL security), for what libzmq will not send.

libzmq sends nothing of a message until all of it is queued, and checks nothing a hostile
client would skip; this peer writes frame headers and bytes as a test says, so a test can
announce a 300 MiB frame and see how soon the other side stops reading.
"""

from __future__ import annotations

import socket
import struct

_MORE = 0x01
_LONG = 0x02
_COMMAND = 0x04


def _greeting() -> bytes:
    # signature, version 3.0, mechanism NULL, as-server 0, filler
    return b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + bytes(32)


def _ready(socket_type: bytes) -> bytes:
    name = b"Socket-Type"
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(socket_type))
    body += socket_type
    return bytes([_COMMAND, len(body)]) + body


def frame_header(size: int, more: bool = False) -> bytes:
    """The header of a frame of ``size`` bytes (its bytes follow it)."""
    flags = _MORE if more else 0
    if size < 256:
        return bytes([flags, size])
    return bytes([flags | _LONG]) + struct.pack(">Q", size)


def connect(
    host: str, port: int, socket_type: bytes = b"DEALER", timeout: float = 10.0
) -> socket.socket:
    """A TCP connection that has done the ZMTP handshake as a ``socket_type``."""
    conn = socket.create_connection((host, port), timeout=timeout)
    conn.sendall(_greeting())
    greeting = b""
    while len(greeting) < 64:
        chunk = conn.recv(64 - len(greeting))
        if not chunk:
            raise ConnectionError("closed during the ZMTP greeting")
        greeting += chunk
    conn.sendall(_ready(socket_type))
    return conn


def host_port(endpoint: str) -> tuple[str, int]:
    """``tcp://host:port`` as ``(host, port)``."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


def send_oversized(endpoint: str, announced: int, socket_type: bytes = b"DEALER") -> int:
    """Announce a frame of ``announced`` bytes to ``endpoint`` and stream zeros into it until
    they are all sent or the server closes the connection; the bytes that went."""
    conn = connect(*host_port(endpoint), socket_type=socket_type)
    conn.sendall(frame_header(announced))
    sent, chunk = 0, bytes(1 << 20)
    try:
        while sent < announced:
            conn.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection
    finally:
        conn.close()
    return sent
