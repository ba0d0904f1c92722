"""A batch message of any number of rows checked without a reader: the pure-Python half.

``publish`` sends a table as one batch message behind the table's schema. Its metadata is
the same flatbuffer as a one-row message's from the same writer, but for the numbers (rows,
field lengths and null counts, buffer offsets and sizes, body length), so the layouts of
``rowpack`` describe it too. ``read_rows`` checks such a message against a layout as
Arrow's full validation would check the batch (every field as long as the batch, buffers
inside the body and long enough, string offsets ascending inside their data, valid UTF-8
in every valid value) and says how many rows it holds: the tickerplant then journals the
payload as it came, with no reader, no batch object and no validation call, which were
most of its cost for a 1000-row message (~8 µs against ~1 µs in C).

It is stricter than Arrow where that is simpler (buffers aligned to 8 bytes, a null count
that matches its bitmap): whatever it refuses is read by pyarrow instead, which decides.
``_rowpack.c``'s ``read_rows`` does the same in C; the tests hold the two to each other and
to pyarrow's reader.
"""

from __future__ import annotations

import struct
from typing import Protocol

import numpy as np


class Layout(Protocol):
    """What the check reads of a ``tickerplant.rowpack.Layout`` (named here, not imported:
    rowpack imports this module)."""

    @property
    def meta_size(self) -> int: ...
    @property
    def widths(self) -> tuple[int, ...]: ...
    @property
    def n_buffers(self) -> int: ...
    @property
    def w_body(self) -> int: ...
    @property
    def w_rows(self) -> int: ...
    @property
    def w_nodes(self) -> int: ...
    @property
    def w_buffers(self) -> int: ...
    @property
    def fixed_runs(self) -> tuple[tuple[int, bytes], ...]: ...
    @property
    def words(self) -> struct.Struct: ...


ROWS_REFUSED = -1  # not a valid batch message of that layout
ROWS_OTHER_LAYOUT = -2  # its metadata has another shape: perhaps another writer's layout

WIDTH_UTF8 = 0
_ALIGNED_AND_SMALL = 0xC000000000000007  # offsets: multiples of 8; offsets, sizes: < 2**62
_MAX_ROWS = 2**31 - 2  # string offsets are 32-bit: rows + 1 of them


def _signed(word: int) -> int:
    return word - (1 << 64) if word >> 63 else word


def read_rows(layout: Layout, m: memoryview) -> int:
    """The rows of ``m`` (bytes, format "B") when it is exactly one valid batch message of
    ``layout``; ROWS_REFUSED or ROWS_OTHER_LAYOUT otherwise."""
    n = len(m)
    if n % 8:
        return ROWS_REFUSED
    head = 8 + layout.meta_size
    if n < head:
        return ROWS_OTHER_LAYOUT
    for start, data in layout.fixed_runs:
        if m[start : start + len(data)] != data:
            return ROWS_OTHER_LAYOUT
    words = layout.words.unpack_from(m)
    body_len = _signed(words[layout.w_body])
    rows = _signed(words[layout.w_rows])
    if body_len != n - head or not 0 <= rows <= _MAX_ROWS:
        return ROWS_REFUSED
    body = m[head:]
    nodes = words[layout.w_nodes : layout.w_nodes + 2 * len(layout.widths)]
    buffers = words[layout.w_buffers : layout.w_buffers + 2 * layout.n_buffers]
    for offset, size in zip(buffers[::2], buffers[1::2], strict=True):
        if offset & _ALIGNED_AND_SMALL or size >> 62 or offset + size > body_len:
            return ROWS_REFUSED
    b = 0  # the field's first buffer, in words of ``buffers``
    for f, width in enumerate(layout.widths):
        length, nulls = nodes[2 * f], nodes[2 * f + 1]
        if length != rows or nulls > rows:
            return ROWS_REFUSED
        # validity, then data; or validity, offsets, values
        v_at, v_size, d_at, d_size = buffers[b : b + 4]
        b += 4
        valid = None
        if nulls:  # with no nulls Arrow ignores the bitmap; with some it must agree
            if v_size < (rows + 7) // 8:
                return ROWS_REFUSED
            bitmap = np.frombuffer(body[v_at : v_at + (rows + 7) // 8], np.uint8)
            valid = np.unpackbits(bitmap, bitorder="little")[:rows].astype(bool)
            if rows - int(valid.sum()) != nulls:
                return ROWS_REFUSED
        if width > 0:
            if d_size < rows * width:
                return ROWS_REFUSED
            continue
        values_at, values_size = buffers[b : b + 2]
        b += 2
        if d_size < 4 * (rows + 1):
            return ROWS_REFUSED
        offsets = np.frombuffer(body[d_at : d_at + 4 * (rows + 1)], "<i4").astype(np.int64)
        if offsets[0] < 0 or (offsets[1:] < offsets[:-1]).any() or offsets[-1] > values_size:
            return ROWS_REFUSED
        if width != WIDTH_UTF8:
            continue
        values = body[values_at : values_at + values_size]
        if bytes(values[offsets[0] : offsets[-1]]).isascii():
            continue
        # Arrow checks the UTF-8 of valid values only; a null one is never read.
        bounds = offsets.tolist()
        for r in range(rows):
            if valid is not None and not valid[r]:
                continue
            try:
                str(values[bounds[r] : bounds[r + 1]], "utf-8")
            except UnicodeDecodeError:
                return ROWS_REFUSED
    return rows
