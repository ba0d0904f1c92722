"""One-row messages without an Arrow reader: check each, pack a short run into one batch.

A feed that sends a row per message at a modest rate is the latency case: the tickerplant
sees one message, or a few that queued together, per turn of its loop. An Arrow reader
costs several microseconds per message and a reader over a few spliced messages, plus the
re-encoding, tens; that was most of a one-row message's time in the tickerplant. So, as in
``onerow.py`` (which decodes long runs with numpy), the metadata of one-row batch messages
of one schema from one writer is a fixed flatbuffer in which only numbers change: a
*layout* learned from a message pyarrow has read says which words all such messages share
and where the numbers are. Each message is then checked word by word and number by number
(one row, buffers inside the body, string offsets inside their data, valid UTF-8), and a
run is packed into one batch message of the table's canonical schema by writing the numbers
into the canonical layout and copying the values; rows sent without ``time`` get the
receive time there. The packed batch is byte for byte what pyarrow writes for the same rows
(``onerow``'s decoding or a reader, then ``encode_rows``): tests hold it to that, so which
of them takes a run never shows.

The work is done by the C extension ``tickerplant._rowpack`` (built by ``pip install``,
``setup.py``) when it is there, else by the pure-Python functions below, which give the
same answers and the same bytes (the tests hold them to each other and to pyarrow's
reader). ``TICKDB_PURE_PYTHON=1`` in the environment forces the pure-Python ones. Compiled,
it packs runs of any length (a few microseconds for thousands of rows); in pure Python,
which costs microseconds a row, it takes short runs only and leaves long ones to
``onerow``.

A message of a run may hold several rows: a gateway sends a burst of order requests as one
batch, a venue its answers to them, both without ``time``. Compiled, such a message is
checked as ``rows_check`` checks a table (every row) and packed row by row like the rest,
so the stamp costs no reader and no re-encoding either. The pure-Python fallback leaves it
to a reader and ``ingest._stamped`` (the same bytes); ``PurePython(many_rows=True)`` packs
it as the C extension does, the reference the tests hold the C extension to.
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import pyarrow as pa

from tickerplant.onerow import OneRowDecoder
from tickerplant.rows_check import ROWS_REFUSED, read_rows

log = logging.getLogger(__name__)

PURE_PYTHON_ENV = "TICKDB_PURE_PYTHON"

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


# -- the two implementations --------------------------------------------------------------
Cell = tuple[bool, memoryview]  # (null, value bytes)


class Implementation(Protocol):
    name: str

    def check(self, layout: Layout, message: memoryview | bytes) -> int: ...

    def check_rows(self, layout: Layout, message: memoryview | bytes) -> int: ...

    def pack(
        self,
        out: Layout,
        into: Layout,
        prefix: bytes,
        messages: Sequence[memoryview | bytes],
        stamp: int | None,
    ) -> bytes | None: ...


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


class Compiled:
    """The C extension, behind the same methods."""

    name = "c"

    def __init__(self, module: ModuleType) -> None:
        self._check = module.check
        self._check_rows = module.check_rows
        self._pack = module.pack
        self._columns = module.columns

    def columns(self, layout: Layout, kinds: bytes, message: memoryview | bytes) -> Any:
        """Each field's values (a list per field) of a batch message of ``layout``, any
        number of rows, by ``kinds`` (a struct code per field, ``s`` a UTF-8 string); None
        when it does not fit (``tickerplant.payload_columns``)."""
        return self._columns(layout.spec, kinds, message)

    def check(self, layout: Layout, message: memoryview | bytes) -> int:
        return int(self._check(layout.spec, message))

    def check_rows(self, layout: Layout, message: memoryview | bytes) -> int:
        return int(self._check_rows(layout.spec, message))

    def pack(
        self,
        out: Layout,
        into: Layout,
        prefix: bytes,
        messages: Sequence[memoryview | bytes],
        stamp: int | None,
    ) -> bytes | None:
        packed: bytes | None = self._pack(out.spec, into.spec, prefix, messages, stamp)
        return packed


def compiled() -> Compiled | None:
    """The C extension, or None when it was not built."""
    try:
        from tickerplant import _rowpack  # type: ignore[attr-defined]
    except ImportError:
        return None
    return Compiled(_rowpack)


def implementation() -> Implementation:
    """The C extension unless it is missing or ``TICKDB_PURE_PYTHON`` is set."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return PurePython()
    found = compiled()
    if found is None:
        log.warning(
            "tickerplant._rowpack is not built: one-row messages are checked in pure "
            "Python, several times slower (`pip install -e .` builds it)"
        )
        return PurePython()
    return found


# -- per table ----------------------------------------------------------------------------
MAX_LAYOUTS = 4  # per table and timed or not: publishers with different Arrow writers


class RowPacker:
    """One table's one-row messages, sent with ``time`` or without: the layouts seen so far
    (learned from the first message of each, read by pyarrow), checking and packing."""

    def __init__(self, schema: pa.Schema, untimed: pa.Schema, impl: Implementation) -> None:
        self.impl = impl
        self.prefix = schema.serialize().to_pybytes()
        self.output = canonical_layout(schema)
        self._schemas = {True: schema, False: untimed}
        self._layouts: dict[bool, list[Layout]] = {True: [], False: []}

    def packed_nulls_at(self, column: int) -> int:
        """Where a payload ``pack`` returns holds ``column``'s null count (a u64)."""
        return 0 if self.output is None else len(self.prefix) + self.output.nulls_at[column]

    def layout_for(self, has_time: bool, message: memoryview) -> Layout | None:
        """The layout ``message`` fits, learning it if it is new; None if it fits none."""
        if self.output is None:
            return None
        layouts = self._layouts[has_time]
        for layout in layouts:
            verdict = self.impl.check(layout, message)
            if verdict == FITS:
                return layout
            if verdict == REFUSED:
                return None  # a known shape, so not a new layout: just not one row, or bad
        learned = Layout.of(self._schemas[has_time], message)
        if learned is None or learned in layouts:
            return None
        layouts.insert(0, learned)
        del layouts[MAX_LAYOUTS:]
        return learned if self.impl.check(learned, message) == FITS else None

    def rows_of(self, has_time: bool, message: memoryview) -> int | None:
        """The rows of ``message``, a batch message of any number of rows, when it fits a
        layout (learning its layout if it is new, as ``layout_for``); None when it does not:
        a reader has to look at it."""
        fitted = self.fit_rows(has_time, message)
        return None if fitted is None else fitted[0]

    def fit_rows(self, has_time: bool, message: memoryview) -> tuple[int, Layout] | None:
        """``rows_of``, with the layout the message fits (where its null counts are)."""
        if self.output is None:
            return None
        layouts = self._layouts[has_time]
        for layout in layouts:
            rows = self.impl.check_rows(layout, message)
            if rows >= 0:
                return rows, layout
            if rows == ROWS_REFUSED:
                return None  # a known shape: bad, or more than Arrow's checks would take
        learned = Layout.of(self._schemas[has_time], message)
        if learned is None or learned in layouts:
            return None
        layouts.insert(0, learned)
        del layouts[MAX_LAYOUTS:]
        rows = self.impl.check_rows(learned, message)
        return (rows, learned) if rows >= 0 else None

    def packed_rows(self, packed: bytes) -> int:
        """The rows of a payload ``pack`` returned."""
        assert self.output is not None
        at = len(self.prefix) + 8 * self.output.w_rows
        return int.from_bytes(packed[at : at + 8], "little")

    def pack(self, has_time: bool, messages: Sequence[memoryview], stamp: int) -> bytes | None:
        """The canonical payload of a run of batch messages, each of one row or more (the
        first decides the layout, and is learned from when it is a one-row message),
        stamped with ``stamp`` when they came without ``time``; None if one does not fit."""
        if self.output is None:
            return None
        stamped = None if has_time else stamp
        # Packing checks every message: only when that fails is it asked why, so that a
        # run of a known layout is read once.
        for layout in self._layouts[has_time]:
            packed = self.impl.pack(self.output, layout, self.prefix, messages, stamped)
            if packed is not None:
                return packed
            if self.impl.check(layout, messages[0]) != OTHER_LAYOUT:
                return None  # the first fits (a later one does not), or is refused
        learned = self.layout_for(has_time, messages[0])  # a new layout, perhaps
        if learned is None:
            return None
        return self.impl.pack(self.output, learned, self.prefix, messages, stamped)
