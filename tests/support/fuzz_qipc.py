"""Fuzz targets of the kdb+ IPC decoder: a message, the decompressor, the socket reader.

What a hostile kdb+ client controls is every byte after the handshake: each must end in a
decoded value or ``QProtocolError`` (and, on a socket, ``ConnectionError`` when the peer
closes), never another exception.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import uuid

import numpy as np

from qipc import codec, compress, transport
from qipc import types as t
from support.fuzz_core import Reader, Target

MAX_BYTES = 1 << 20


def _with_length(data: bytes) -> bytes:
    """``data`` with its header's length set to its own length: the fuzzer's edits then
    reach the body instead of failing the length check."""
    if len(data) < t.HEADER_SIZE:
        return data
    out = bytearray(data)
    out[3] = 0
    out[4:8] = len(data).to_bytes(4, "little" if data[0] == 1 else "big")
    return bytes(out)


def _decode(message: bytes) -> None:
    try:
        _, value = codec.decode(message, MAX_BYTES)
    except t.QProtocolError:
        return
    # What decodes re-encodes: a server echoes or stores what clients send.
    codec.encode(value, t.RESPONSE)


def fuzz_decode(data: bytes) -> None:
    with contextlib.suppress(t.QProtocolError):
        codec.parse_header(data[: t.HEADER_SIZE])
    _decode(data)
    _decode(_with_length(data))


def fuzz_decompress(data: bytes) -> None:
    """A compressed message built around ``data``: decompress or QProtocolError; and any
    message of over 2000 bytes made from ``data`` survives compress then decompress."""
    if len(data) >= compress.PREFIX_SIZE:
        message = bytearray(_with_length(data))
        message[2] = 1
        with contextlib.suppress(t.QProtocolError):
            compress.decompress(bytes(message), MAX_BYTES)
    body = (data or b"\0") * (2001 // max(len(data), 1) + 1)
    plain = bytes([1, 0, 0, 0]) + (8 + len(body)).to_bytes(4, "little") + body
    packed = compress.compress(plain)
    if packed is not None:
        assert compress.decompress(packed) == plain, "compress/decompress round trip differs"


def fuzz_read_message(data: bytes) -> None:
    """``data`` arrives on a socket (then the peer closes): whole messages, each decoded, or
    QProtocolError / ConnectionError. The first byte picks the handshake side instead."""
    reader = Reader(data)
    handshake = reader.uint(1) & 1
    stream = reader.rest()[: 64 << 10]  # what the socket pair buffers without a reader
    left, right = socket.socketpair()
    try:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        right.settimeout(5.0)
        left.sendall(stream)
        left.shutdown(socket.SHUT_WR)
        try:
            if handshake:
                transport.read_handshake(right)
                return
            for _ in range(64):
                _, message = transport.read_message(right, MAX_BYTES)
                with contextlib.suppress(t.QProtocolError):
                    codec.decode(message, MAX_BYTES)
        except (t.QProtocolError, ConnectionError):
            pass
    finally:
        left.close()
        right.close()


def seeds() -> list[bytes]:
    values: list[object] = [
        None,
        True,
        7,
        2.5,
        np.int16(3),
        np.int32(-4),
        np.float32(1.5),
        np.uint8(9),
        t.Symbol("abc"),
        t.Char("x"),
        "a string",
        uuid.UUID(int=12345),
        dt.date(2024, 1, 2),
        dt.datetime(2024, 1, 2, 9, 30),
        dt.timedelta(seconds=5),
        dt.time(9, 30),
        np.arange(5, dtype=np.int64),
        np.array([1.0, np.nan], dtype=np.float64),
        np.array([True, False]),
        np.array(["a", "bc", ""], dtype=object),
        np.array(["2024-01-02T09:30"], dtype="datetime64[ns]"),
        np.array([1, 2], dtype="timedelta64[m]"),
        [1, "two", [t.Symbol("three"), 4.0]],
        {"a": 1, "b": [2, 3]},
        t.QTable({"sym": np.array(["a", "b"], dtype=object), "px": np.array([1.0, 2.0])}),
        t.QError("type"),
        t.QLambda("", "{x+1}"),
        t.QPrimitive(t.OPERATOR, 1),
    ]
    out = [codec.encode(v, t.SYNC) for v in values]
    out.append(codec.encode(t.QDict(out[8:9], [1]), t.ASYNC))
    big = np.repeat(np.arange(50, dtype=np.int64), 20)
    out.append(codec.encode([big, np.array(["x"] * 300, dtype=object)], compress=True))
    return out


def stream_seeds() -> list[bytes]:
    messages = seeds()
    return [
        b"\0" + messages[5] + messages[10],
        b"\0" + messages[-1],
        b"\x01user:password\x03\x00",
        b"\x01user\x00",
    ]


TOKENS = (
    b"\x01\x01\x00\x00",
    b"\x01\x00\x01\x00",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\x7f",
    b"\x62\x00\x63",
    b"\x63",
    b"\x00\x00",
    b"\x0b\x00",
    b"\xf5a\x00",
    b"\x80err\x00",
)

TARGETS = [
    Target("qipc_decode", "qipc.codec.decode / parse_header", fuzz_decode, seeds, TOKENS),
    Target("qipc_decompress", "qipc.compress decompress, compress", fuzz_decompress, seeds, TOKENS),
    Target(
        "qipc_read_message",
        "qipc.transport read_message / read_handshake on a socket pair",
        fuzz_read_message,
        stream_seeds,
        TOKENS,
    ),
]
