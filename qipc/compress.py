"""The kdb+ IPC compression algorithm (an LZ77 variant with a 256-entry hash of byte pairs).

A compressed message keeps the 8-byte header (with byte 2 set to 1 and the compressed
length), then ``u32 uncompressed length`` (header included), then groups of one flag byte
and eight items: a literal byte when the flag bit is clear, or ``hash, extra`` when it is
set, meaning "copy 2 + extra bytes from the last position whose byte pair hashed to
``hash``". Both sides rebuild the same hash table as they go, so it is never sent.

q compresses messages over 2000 bytes to remote (non-localhost) peers when the result is
at most half the size. This pure-Python version is correct rather than fast (~1 MB/s):
the server only decompresses what clients choose to send compressed, and compressing
replies is opt-in.

A compressed message states its expanded size, which a hostile peer can inflate. No
stream expands by more than ``max_expanded_size`` (at most 257 bytes per 2-byte item), so
a larger claim is refused before anything is allocated, as is one over the caller's
limit. Overlapping copies (runs) are done as slices, so decompression costs one Python
step per item received, never per byte produced.
"""

from __future__ import annotations

import struct
from typing import Literal

from qipc.types import HEADER_SIZE, QProtocolError

_U32 = struct.Struct("<I")
# One flag byte and 8 items of at most 2 bytes each, each item giving at most 2 + 255 bytes.
_GROUP_IN = 17
_GROUP_OUT = 8 * 257
PREFIX_SIZE = HEADER_SIZE + 4  # header and the expanded size


def max_expanded_size(compressed_length: int) -> int:
    """The most a compressed message of this length (header included) can expand to."""
    groups = -(-max(compressed_length - PREFIX_SIZE, 0) // _GROUP_IN)
    return HEADER_SIZE + groups * _GROUP_OUT


def expanded_size(prefix: bytes | bytearray, max_bytes: int = 2**31) -> int:
    """The expanded size a compressed message claims (its first 12 bytes suffice); raises
    QProtocolError when that is impossible for its compressed length or over
    ``max_bytes``: refused before reading the rest or allocating anything for it."""
    if len(prefix) < PREFIX_SIZE:
        raise QProtocolError("compressed message too short")
    order: Literal["little", "big"] = "little" if prefix[0] == 1 else "big"
    length = int.from_bytes(prefix[4:8], order) + (prefix[3] << 32)
    size = int.from_bytes(prefix[8:12], order)
    if size < HEADER_SIZE:
        raise QProtocolError(f"bad uncompressed length {size}")
    if size > max_bytes:
        raise QProtocolError(
            f"compressed message expands to {size} bytes, over the {max_bytes} limit"
        )
    if size > max_expanded_size(length):
        raise QProtocolError(
            f"compressed message of {length} bytes claims {size} bytes expanded, more "
            f"than kdb+ compression can produce ({max_expanded_size(length)})"
        )
    return size


def decompress(message: bytes, max_bytes: int = 2**31) -> bytes:
    """Expand a compressed message (header included) to the plain message; the expanded
    size must be at most ``max_bytes`` (QProtocolError otherwise, before any work)."""
    size = expanded_size(message, max_bytes)
    if size > max_expanded_size(len(message)):  # checked against the header's length above
        raise QProtocolError(f"compressed message of {len(message)} bytes claims {size}")
    order: Literal["little", "big"] = "little" if message[0] == 1 else "big"
    src = message
    dst = bytearray(size)
    dst[0:HEADER_SIZE] = message[0:HEADER_SIZE]
    dst[2] = 0
    dst[4:8] = size.to_bytes(4, order)
    dst[3] = 0
    hashes = [0] * 256
    d = 12  # read position in src
    s = HEADER_SIZE  # write position in dst
    p = s  # next position of dst to enter into the hash table
    flags = 0
    bit = 0
    try:
        while s < size:
            if bit == 0:
                flags = src[d]
                d += 1
                bit = 1
            if flags & bit:
                r = hashes[src[d]]
                n = src[d + 1]
                d += 2
                end = s + 2 + n
                if end > size:
                    raise QProtocolError("compressed data overruns its length")
                if r + 2 + n <= s:
                    dst[s:end] = dst[r : r + 2 + n]
                else:
                    # Overlapping (a run): the reference copies byte by byte, which repeats
                    # dst[r:s] with period s - r; a slice of the repeat is the same bytes.
                    period = dst[r:s]
                    dst[s:end] = (period * (-(-(2 + n) // len(period))))[: 2 + n]
                s_match = end
                while p < s + 1:
                    hashes[dst[p] ^ dst[p + 1]] = p
                    p += 1
                s = p = s_match
            else:
                dst[s] = src[d]
                d += 1
                s += 1
                while p < s - 1:
                    hashes[dst[p] ^ dst[p + 1]] = p
                    p += 1
            bit = (bit << 1) & 0xFF
    except IndexError:
        raise QProtocolError("compressed data ends early") from None
    return bytes(dst)


def compress(message: bytes) -> bytes | None:
    """Compress a plain message; None when the result would not be under half the size."""
    total = len(message)
    out = bytearray(total // 2)
    limit = len(out)
    out[0:4] = message[0:4]
    out[2] = 1
    _U32.pack_into(out, 8, total)
    hashes = [0] * 256
    c = 12  # position of the current flag byte
    d = c  # write position
    s = HEADER_SIZE  # read position
    flags = 0
    bit = 0
    pending_hash = 0
    pending_pos = 0
    src = message
    while s < total:
        if bit == 0:
            if d > limit - 17:
                return None
            bit = 1
            out[c] = flags
            c = d
            d += 1
            flags = 0
        literal = s > total - 3
        h = 0
        if not literal:
            h = src[s] ^ src[s + 1]
            p = hashes[h]
            literal = p == 0 or src[s] != src[p]
        if pending_pos > 0:
            hashes[pending_hash] = pending_pos
            pending_pos = 0
        if literal:
            pending_hash = h
            pending_pos = s
            out[d] = src[s]
            d += 1
            s += 1
        else:
            hashes[h] = s
            flags |= bit
            p += 2
            s += 2
            start = s
            stop = min(s + 255, total)
            while s < stop and src[p] == src[s]:
                p += 1
                s += 1
            out[d] = h
            out[d + 1] = s - start
            d += 2
        bit = (bit << 1) & 0xFF
    out[c] = flags
    _U32.pack_into(out, 4, d)
    return bytes(out[:d])
