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
"""

from __future__ import annotations

import struct
from typing import Literal

from qipc.types import HEADER_SIZE, QProtocolError

_U32 = struct.Struct("<I")


def decompress(message: bytes) -> bytes:
    """Expand a compressed message (header included) to the plain message."""
    if len(message) < HEADER_SIZE + 4:
        raise QProtocolError("compressed message too short")
    order: Literal["little", "big"] = "little" if message[0] == 1 else "big"
    size = int.from_bytes(message[8:12], order)
    if size < HEADER_SIZE or size > 2**31:
        raise QProtocolError(f"bad uncompressed length {size}")
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
                else:  # overlapping copy: byte by byte, as the reference does
                    for k in range(2 + n):
                        dst[s + k] = dst[r + k]
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
