"""Splicing Arrow IPC streams that share a schema: many small batches, one read.

A one-row message is mostly framing: reading it alone costs a reader's set-up for a few
dozen bytes of data. Streams written against byte-identical schema messages can instead be
cut after the schema and their batch messages joined behind one schema and one end marker,
then read and validated by a single reader in one call.

Joining is only sound when every piece is made of whole IPC messages: otherwise two halves
of a batch, sent as two broken messages, would read back as one good batch. ``batch_span``
checks each piece's framing (continuation marker, metadata length, and the body length
declared in the flatbuffer metadata) so that every message ends exactly where its piece
ends; the reader then checks the contents.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"

_CONTINUATION = 0xFFFFFFFF
_HEAD = struct.Struct("<Ii")  # continuation marker, metadata length
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U16 = struct.Struct("<H")
_I64 = struct.Struct("<q")
# In the flatbuffer ``Message`` table, bodyLength is field 3: its slot in the vtable follows
# the vtable's two u16 sizes and the slots of version, header_type and header.
_BODY_LENGTH_SLOT = 4 + 2 * 3


def batch_span(stream: memoryview, start: int) -> memoryview | None:
    """The whole IPC messages of ``stream`` from ``start``, without an end marker.

    None when the bytes from ``start`` are not a sequence of complete messages, optionally
    followed by the end-of-stream marker and nothing else.
    """
    pos, end = start, len(stream)
    try:
        while pos < end:
            marker, metadata = _HEAD.unpack_from(stream, pos)
            if marker != _CONTINUATION or metadata < 0:
                return None
            if metadata == 0:  # end of stream: only as the very last thing
                return stream[start:pos] if pos + 8 == end else None
            body = _body_length(stream, pos + 8, metadata)
            if body is None:
                return None
            pos += 8 + metadata + body
    except struct.error:  # a length pointing past the end
        return None
    return stream[start:] if pos == end else None


def _body_length(stream: memoryview, start: int, size: int) -> int | None:
    """bodyLength from a flatbuffer ``Message`` at ``stream[start:start + size]``."""
    limit = start + size
    if limit > len(stream):
        return None
    root = start + _U32.unpack_from(stream, start)[0]
    if root + 4 > limit:
        return None
    vtable = root - _I32.unpack_from(stream, root)[0]
    if vtable < start or vtable + 4 > limit:
        return None
    if _U16.unpack_from(stream, vtable)[0] <= _BODY_LENGTH_SLOT:
        return 0  # field absent: flatbuffers' default
    offset = _U16.unpack_from(stream, vtable + _BODY_LENGTH_SLOT)[0]
    if offset == 0:
        return 0
    if root + offset + 8 > limit:
        return None
    body = _I64.unpack_from(stream, root + offset)[0]
    return body if body >= 0 else None


def batch_spans(payloads: list[memoryview], prefix: bytes) -> list[memoryview] | None:
    """Each stream's batch messages, if every stream is ``prefix`` then whole messages."""
    spans = []
    for payload in payloads:
        span = batch_span(payload, len(prefix)) if payload[: len(prefix)] == prefix else None
        if span is None:
            return None
        spans.append(span)
    return spans


def join(prefix: bytes, spans: Sequence[bytes | memoryview]) -> bytes:
    """One stream: the schema message, every piece's batches, one end marker."""
    return b"".join([prefix, *spans, END_OF_STREAM])
