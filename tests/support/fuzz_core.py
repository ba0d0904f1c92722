"""What every fuzz target shares: its record, structured inputs, and seed mutation.

A target is a function of one ``bytes`` input that returns quietly when the code under test
behaves: it either accepts the input or refuses it with the protocol's own typed error
(``QProtocolError``, ``ProtocolError``, ``TranslationError``, ``QueryError``, a FIX reject).
Any other exception, or a broken property (an ``AssertionError``), is a crash. The same
functions are driven by atheris (``scripts/fuzz.py``, coverage-guided) and by hypothesis
(``tests/test_fuzz.py``, a short deterministic run), both starting from the target's seeds:
valid inputs that the fuzzers then mutate.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    name: str
    # What the target feeds the input to, for the report.
    about: str
    run: Callable[[bytes], None]
    # Valid inputs to start from (built on first use: some need pyarrow or DuckDB).
    seeds: Callable[[], list[bytes]]
    # Tokens worth inserting (keywords, tags, magic numbers): a fuzzer dictionary.
    tokens: tuple[bytes, ...] = field(default=())


class Reader:
    """Structured values read from a fuzz input; past its end, zeros and empty bytes, so
    any input is a valid recipe (the fuzzer need not learn where it ends)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self, size: int) -> int:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return int.from_bytes(chunk.ljust(size, b"\0"), "little")

    def take(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


# A list of byte strings as one input: each is ``u16 length | bytes``. A length past the end
# takes what is left, so mutations of a length only move the cut.
_U16 = struct.Struct("<H")


def pack_parts(parts: Sequence[bytes]) -> bytes:
    return b"".join(_U16.pack(len(p)) + p for p in parts)


def unpack_parts(data: bytes, limit: int = 256) -> list[bytes]:
    parts: list[bytes] = []
    pos = 0
    while pos < len(data) and len(parts) < limit:
        (size,) = _U16.unpack_from(data.ljust(pos + 2, b"\0"), pos)
        parts.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return parts


# -- mutation of seeds (hypothesis and the fallback engine; atheris has its own) -----------

_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x3D, 0x01)
_INTERESTING_U32 = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 8, 16)
MUTATION_KINDS = 9


def mutate(seed: bytes, ops: Sequence[tuple[int, int, int]], tokens: Sequence[bytes] = ()) -> bytes:
    """Apply ``(kind, position, value)`` edits to ``seed``: flip, set, insert, delete,
    truncate, duplicate a chunk, insert a token, overwrite a 32-bit word, repeat a byte up
    to 8 KiB times (long numbers, deep nesting). Positions and
    values wrap, so every triple is a valid edit (hypothesis shrinks them freely)."""
    out = bytearray(seed)
    for kind, position, value in ops:
        at = position % (len(out) + 1)
        kind %= MUTATION_KINDS
        if kind == 0 and out:
            out[at % len(out)] ^= (value % 255) + 1
        elif kind == 1 and out:
            out[at % len(out)] = _INTERESTING_BYTES[value % len(_INTERESTING_BYTES)]
        elif kind == 2:
            out.insert(at, value % 256)
        elif kind == 3 and out:
            del out[at % len(out)]
        elif kind == 4:
            del out[at:]
        elif kind == 5:
            out[at:at] = out[at : at + 1 + value % 64]
        elif kind == 6 and tokens:
            out[at:at] = tokens[value % len(tokens)]
        elif kind == 7 and len(out) >= 4:
            at = min(at, len(out) - 4)
            word = _INTERESTING_U32[value % len(_INTERESTING_U32)]
            out[at : at + 4] = word.to_bytes(4, "little" if value & 64 else "big")
        elif kind == 8 and out:
            out[at:at] = out[at % len(out) : at % len(out) + 1] * (1 + value % 8192)
    return bytes(out)
