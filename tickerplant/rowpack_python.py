"""The pure-Python implementation of ``tickerplant.rowpack``: the reference the C extension
(``_rowpack.c``) is held to, and the fallback when it is not built."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from tickerplant.row_layout import (
    _ALIGNED_AND_SMALL,
    _END_OF_STREAM,
    _I64,
    _INT32_MAX,
    _OFFSETS,
    FITS,
    OTHER_LAYOUT,
    REFUSED,
    WIDTH_UTF8,
    Cell,
    Layout,
)
from tickerplant.rows_check import read_rows


class PurePython:
    """The reference: what the C extension does, step for step.

    As the fallback it packs one-row messages only (``many_rows`` False): a message of
    several rows costs it more than pyarrow's reader and ``_stamped``, which give the same
    bytes. With ``many_rows`` it packs those too, as the C extension does (the tests hold
    the two to each other)."""

    name = "python"

    def __init__(self, many_rows: bool = False) -> None:
        self.many_rows = many_rows

    def check(self, layout: Layout, message: memoryview | bytes) -> int:
        return _read(layout, memoryview(message).cast("B"))[0]

    def check_rows(self, layout: Layout, message: memoryview | bytes) -> int:
        """A batch message of any number of rows: ``rows_check.read_rows``."""
        return read_rows(layout, memoryview(message).cast("B"))

    def pack(
        self,
        out: Layout,
        into: Layout,
        prefix: bytes,
        messages: Sequence[memoryview | bytes],
        stamp: int | None,
    ) -> bytes | None:
        """``messages`` (batch messages of layout ``into``, each of one row or more) as one
        batch of layout ``out``, between ``prefix`` and the end-of-stream marker; None if
        one does not fit.
        With a ``stamp``, ``into`` lacks ``out``'s first column, which gets the stamp."""
        skip = 0 if stamp is None else 1
        if (
            len(into.widths) + skip != len(out.widths)
            or (skip and out.widths[0] != 8)
            or into.widths != out.widths[skip:]
            or not messages
        ):
            raise ValueError("layouts or messages do not fit")
        rows: list[list[Cell]] = []
        total = 0
        for message in messages:
            m = memoryview(message).cast("B")
            verdict, cells = _read(into, m)
            if verdict == FITS:
                rows.append(cells)
                total += 1
                continue
            # A run a writer sent as one batch: as many rows as it holds (the C extension
            # reads every message so; for one row the verdicts are the same).
            n = read_rows(into, m) if verdict == REFUSED and self.many_rows else -1
            if n < 2 or n > _INT32_MAX - 1 - total:
                return None
            rows += _cells(into, m, n)
            total += n
        k = len(rows)
        columns: list[list[Cell] | None] = [None] * skip
        columns += [[r[f] for r in rows] for f in range(len(into.widths))]
        for column, width in zip(columns, out.widths, strict=True):
            too_long = column is not None and width <= 0 and _total(column) >= _INT32_MAX
            if too_long:
                return None  # for one string column
        words = [0] * (1 + out.meta_size // 8)
        for word, fixed in out.fixed:
            words[word] = fixed
        nodes: list[int] = []
        buffers: list[int] = []  # offset, length of each buffer in turn
        body = bytearray()
        bitmap_bytes = (k + 7) // 8
        for column, width in zip(columns, out.widths, strict=True):
            nulls = 0 if column is None else [null for null, _ in column].count(True)
            nodes += (k, nulls)
            # Validity: a bit per row, set when the row is valid; none without nulls.
            if column is not None and nulls:
                bits = bytearray(_pad8(bitmap_bytes))
                for r, (null, _) in enumerate(column):
                    if not null:
                        bits[r // 8] |= 1 << (r % 8)
                buffers += (len(body), bitmap_bytes)
                body += bits
            else:
                buffers += (len(body), 0)
            if column is None:
                data: bytes | bytearray = _I64.pack(stamp or 0) * k
            elif width > 0:
                data = b"".join([value for _, value in column])
            else:
                # Offsets, then values.
                offsets, values, total = [], bytearray(), 0
                for _, value in column:
                    offsets.append(total)
                    values += value
                    total += len(value)
                offsets.append(total)
                buffers += (len(body), 4 * (k + 1))
                body += struct.pack(f"<{k + 1}i", *offsets)
                body += bytes(-len(body) & 7)
                data = values
            buffers += (len(body), len(data))
            body += data
            body += bytes(-len(body) & 7)
        words[out.w_nodes : out.w_nodes + len(nodes)] = nodes
        words[out.w_buffers : out.w_buffers + len(buffers)] = buffers
        words[out.w_body] = len(body)
        words[out.w_rows] = k
        meta = struct.pack(f"<{len(words)}Q", *words)
        return b"".join([prefix, meta, body, _END_OF_STREAM])


def _cells(layout: Layout, m: memoryview, rows: int) -> list[list[Cell]]:
    """The cells of each row of a message ``read_rows`` accepted (see ``_rowpack.c``)."""
    words = layout.words.unpack_from(m)
    body = m[8 + layout.meta_size :]
    nodes = words[layout.w_nodes : layout.w_nodes + 2 * len(layout.widths)]
    buffers = words[layout.w_buffers : layout.w_buffers + 2 * layout.n_buffers]
    found: list[list[Cell]] = [[] for _ in range(rows)]
    b = 0  # the field's first buffer, in words of ``buffers``
    for f, width in enumerate(layout.widths):
        v_at, _, d_at, _ = buffers[b : b + 4]
        b += 4
        if nodes[2 * f + 1]:
            nulls = [not (body[v_at + r // 8] >> (r % 8)) & 1 for r in range(rows)]
        else:
            nulls = [False] * rows
        if width > 0:
            for r, row in enumerate(found):
                row.append((nulls[r], body[d_at + r * width : d_at + (r + 1) * width]))
            continue
        values_at = buffers[b]
        b += 2
        bounds = struct.unpack_from(f"<{rows + 1}i", body, d_at)
        for r, row in enumerate(found):
            row.append((nulls[r], body[values_at + bounds[r] : values_at + bounds[r + 1]]))
    return found


def _total(column: list[Cell]) -> int:
    return sum(len(value) for _, value in column)


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def _signed(word: int) -> int:
    return word - (1 << 64) if word >> 63 else word


def _read(layout: Layout, m: memoryview) -> tuple[int, list[Cell]]:
    """The verdict on one message, and its cells when it FITS (see ``_rowpack.c``)."""
    n = len(m)
    if n % 8:
        return REFUSED, []
    head = 8 + layout.meta_size
    if n < head:
        return OTHER_LAYOUT, []
    for start, data in layout.fixed_runs:
        if m[start : start + len(data)] != data:
            return OTHER_LAYOUT, []
    words = layout.words.unpack_from(m)
    body_len = _signed(words[layout.w_body])
    if body_len != n - head or _signed(words[layout.w_rows]) != 1:
        return REFUSED, []
    body = m[head:]
    cells: list[Cell] = []
    nodes = words[layout.w_nodes : layout.w_nodes + 2 * len(layout.widths)]
    buffers = words[layout.w_buffers : layout.w_buffers + 2 * layout.n_buffers]
    for offset, size in zip(buffers[::2], buffers[1::2], strict=True):
        if offset & _ALIGNED_AND_SMALL or size >> 62 or offset + size > body_len:
            return REFUSED, []
    b = 0  # the field's first buffer, in words of ``buffers``
    for f, width in enumerate(layout.widths):
        length, nulls = nodes[2 * f], nodes[2 * f + 1]
        if length != 1 or nulls > 1:
            return REFUSED, []
        # validity, then data; or validity, offsets, values
        v_at, v_size, d_at, d_size = buffers[b : b + 4]
        b += 4
        if nulls and (v_size == 0 or body[v_at] & 1):
            return REFUSED, []  # the bitmap must say null too
        if width > 0:
            if d_size < width:
                return REFUSED, []
            cells.append((bool(nulls), body[d_at : d_at + width]))
            continue
        values_at, values_size = buffers[b : b + 2]
        b += 2
        if d_size < 8:
            return REFUSED, []
        first, last = _OFFSETS.unpack_from(body, d_at)
        if first < 0 or last < first or last > values_size:
            return REFUSED, []
        value = body[values_at + first : values_at + last]
        if width == WIDTH_UTF8 and not nulls:  # Arrow checks valid values only, as here
            try:
                str(value, "utf-8")
            except UnicodeDecodeError:
                return REFUSED, []
        cells.append((bool(nulls), value))
    return FITS, cells
