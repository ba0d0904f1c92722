"""The layouts of one-row Arrow batch messages, which ``tickerplant.rowpack`` checks and packs.

A layout, learned from a message pyarrow has read, says which words of the flatbuffer every
message of that shape shares and where its numbers are; ``spec`` is the same for the C
extension (``_rowpack.c``). Shared by the two implementations (``rowpack_python``, the C
extension) and the packer that chooses between them (``rowpack``).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import pyarrow as pa

from tickerplant.onerow import OneRowDecoder

# What checking a message against a layout says.
REFUSED = 0  # not a valid one-row batch message of that layout
FITS = 1
OTHER_LAYOUT = 2  # its metadata has another shape: perhaps another writer's layout

WIDTH_UTF8 = 0
WIDTH_BINARY = -1
_ALIGNED_AND_SMALL = 0xC000000000000007  # offsets: multiples of 8; offsets, sizes: < 2**62
_INT32_MAX = 2**31 - 1
_END_OF_STREAM = struct.pack("<Q", 0x00000000FFFFFFFF)
_I64 = struct.Struct("<q")
_OFFSETS = struct.Struct("<ii")


def _widths(schema: pa.Schema) -> tuple[int, ...] | None:
    """Per column: fixed width in bytes, WIDTH_UTF8 or WIDTH_BINARY; None if a type is not
    handled (booleans are bits, nested types have children)."""
    widths = []
    for field in schema:
        kind = field.type
        if pa.types.is_string(kind):
            widths.append(WIDTH_UTF8)
        elif pa.types.is_binary(kind):
            widths.append(WIDTH_BINARY)
        elif pa.types.is_boolean(kind) or pa.types.is_nested(kind):
            return None
        else:
            try:
                bits = kind.bit_width
            except ValueError:
                return None
            if bits <= 0 or bits % 8:
                return None
            widths.append(bits // 8)
    return tuple(widths)


@dataclass(frozen=True)
class Layout:
    """One shape of one-row batch message: the words every such message has, and where its
    numbers are (word ``i`` is bytes ``[8i, 8i + 8)`` of the message). ``spec`` is the same
    for the C extension (its layout is documented in ``_rowpack.c``)."""

    meta_size: int
    widths: tuple[int, ...]
    n_buffers: int
    w_body: int
    w_rows: int
    w_nodes: int
    w_buffers: int
    fixed: tuple[tuple[int, int], ...]  # (word, value)
    # The fixed words as (first byte, bytes) runs: fewer comparisons in pure Python.
    fixed_runs: tuple[tuple[int, bytes], ...]
    spec: bytes
    # Per column, the byte where a message's null count for it starts (a u64; a one-row
    # message that fits has 0 or 1 there, so that byte alone says whether it is null).
    nulls_at: tuple[int, ...]

    @property
    def words(self) -> struct.Struct:
        """The message's words up to its body, as unsigned numbers."""
        return _words_struct(1 + self.meta_size // 8)

    @classmethod
    def of(cls, schema: pa.Schema, message: memoryview) -> Layout | None:
        """The layout of ``message``, a one-row batch of ``schema`` that pyarrow reads."""
        widths = _widths(schema)
        if widths is None:
            return None
        template = OneRowDecoder(schema).template(message)
        if template is None:
            return None
        meta_size, where, values = template
        fixed = tuple(zip(where["fixed"].tolist(), values.tolist(), strict=True))
        n_buffers = sum(2 if w > 0 else 3 for w in widths)
        head = [meta_size, len(widths), n_buffers]
        head += [int(where["body_length"]), int(where["num_rows"])]
        head += [int(where["nodes"][0]), int(where["buffers"][0]), len(fixed)]
        spec = struct.pack(
            f"<{8 + len(widths) + len(fixed)}q{len(fixed)}Q",
            *head,
            *widths,
            *(word for word, _ in fixed),
            *(value for _, value in fixed),
        )
        return cls(
            meta_size=meta_size,
            widths=widths,
            n_buffers=n_buffers,
            w_body=head[3],
            w_rows=head[4],
            w_nodes=head[5],
            w_buffers=head[6],
            fixed=fixed,
            fixed_runs=_runs(fixed),
            spec=spec,
            nulls_at=tuple(8 * (head[5] + 2 * c + 1) for c in range(len(widths))),
        )


@functools.cache
def _words_struct(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}Q")


def _runs(fixed: tuple[tuple[int, int], ...]) -> tuple[tuple[int, bytes], ...]:
    runs: list[tuple[int, bytearray]] = []
    for word, value in fixed:
        if runs and runs[-1][0] + len(runs[-1][1]) == 8 * word:
            runs[-1][1].extend(value.to_bytes(8, "little"))
        else:
            runs.append((8 * word, bytearray(value.to_bytes(8, "little"))))
    return tuple((start, bytes(data)) for start, data in runs)


def canonical_layout(schema: pa.Schema) -> Layout | None:
    """The layout packed runs are written in: pyarrow's own one-row batch of ``schema``."""
    row = pa.RecordBatch.from_arrays([pa.array([None], f.type) for f in schema], schema=schema)
    return Layout.of(schema, memoryview(row.serialize().to_pybytes()))


Cell = tuple[bool, memoryview]  # (null, value bytes) of one column of one row
