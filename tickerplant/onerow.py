"""Decoding a run of one-row Arrow IPC batch messages with a few array operations.

Feeds that send a row per message are the hard case for a tickerplant in Python: an Arrow
reader costs a few microseconds per batch however small, more than everything else done
per message. But one-row batches of one schema from one writer differ only in numbers:
their metadata is the same flatbuffer, byte for byte, except the body length and the
per-column buffer offsets, lengths and null counts. So the first message's metadata is
parsed once, every other message's metadata is checked against it (all bytes but those
numbers must be equal), the numbers are read for all messages at once with numpy, checked
(one row, buffers inside the body, string offsets inside their data), and each column is
gathered from the bodies into one array. String columns are then validated in full (UTF-8,
offsets); the rest is correct by construction.

Anything unexpected (another row count, compression, a type not handled here such as
booleans or nested types, a different writer) returns None and the caller reads the run
with a reader. Tests hold it to pyarrow's reader: whatever it accepts, the reader accepts
and reads the same.
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_RECORD_BATCH = 3  # MessageHeader.RecordBatch
# A field node (length, null count) minus _NODE_LOW is at most _NODE_SPAN, unsigned, exactly
# when the length is 1 and the null count 0 or 1.
_NODE_LOW = np.array([1, 0], np.uint64)
_NODE_SPAN = np.array([0, 1], np.uint64)
# Buffer offsets must be multiples of 8 and, like sizes, below 2**62.
_ALIGNED_AND_SMALL = np.uint64(0xC000000000000007)


class _Skip(Exception):
    """The run is not one this decoder handles."""


def _layout(schema: pa.Schema) -> list[tuple[str, int]] | None:
    """Per column: ("fixed", byte width) or ("string", 0); None if a type is not handled."""
    layout: list[tuple[str, int]] = []
    for field in schema:
        kind = field.type
        if pa.types.is_string(kind) or pa.types.is_binary(kind):
            layout.append(("string", 0))
        elif pa.types.is_boolean(kind) or pa.types.is_nested(kind):
            return None
        else:
            try:
                width = kind.bit_width
            except ValueError:
                return None
            if width % 8:
                return None
            layout.append(("fixed", width // 8))
    return layout


class OneRowDecoder:
    """Decodes runs of one-row batch messages of one schema (see the module docstring)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.layout = _layout(schema)
        # Buffer numbers, in message order: each column's validity bitmap, the data of
        # each fixed-width column, and the offsets and values of each string column.
        self.validity: list[int] = []
        self.fixed: list[tuple[int, int, int]] = []  # column, buffer, byte width
        self.strings: list[tuple[int, int]] = []  # column, offsets buffer
        b = 0
        for c, (kind, width) in enumerate(self.layout or []):
            self.validity.append(b)
            if kind == "fixed":
                self.fixed.append((c, b + 1, width))
                b += 2
            else:
                self.strings.append((c, b + 1))
                b += 3
        self.buffer_count = b
        self.fixed_buffers = np.array([buffer for _, buffer, _ in self.fixed], np.intp)
        self.fixed_widths = np.array([width for _, _, width in self.fixed], np.int64)
        # The last template's metadata length, number positions and words.
        self._template: tuple[int, dict[str, np.ndarray], np.ndarray] | None = None

    def decode(self, spans: list[memoryview], lengths: list[int]) -> pa.RecordBatch | None:
        """The run's rows as one batch, or None when the run is not simple one-row batches.

        ``lengths`` are the spans' lengths, which the caller has already worked out.
        """
        if self.layout is None or not spans:
            return None
        try:
            return self._decode(spans, lengths)
        except (_Skip, struct.error, IndexError, ValueError, pa.ArrowInvalid):
            return None

    def _decode(self, spans: list[memoryview], span_lengths: list[int]) -> pa.RecordBatch:
        n = len(spans)
        lengths = np.array(span_lengths, np.int64)
        joined = b"".join(spans)
        if len(joined) % 8 or (lengths % 8).any():
            raise _Skip
        data = np.frombuffer(joined, np.uint8)
        # IPC messages are padded to 8 bytes, so every message and every number in its
        # metadata starts on a word: compare and read words, not bytes.
        words = np.frombuffer(joined, np.uint64)
        starts = np.cumsum(lengths) - lengths
        # Every message's prefix and metadata, a row each; all but the numbers (and the
        # continuation and metadata length) must match the template's.
        metadata_size, where, expected = self._template_for(spans[0], fresh=False)
        meta = words[(starts // 8)[:, None] + np.arange(1 + metadata_size // 8)]
        if not (meta[:, where["fixed"]] == expected).all():
            # Perhaps another writer's or another shape's messages: parse this run's own.
            metadata_size, where, expected = self._template_for(spans[0], fresh=True)
            if not (meta[:, where["fixed"]] == expected).all():
                raise _Skip
        numbers = meta.view(np.int64)
        body_length = numbers[:, where["body_length"]]
        nodes = meta[:, where["nodes"]].reshape(n, -1, 2)
        # Unsigned from here: a negative number is huge, and fails the same checks.
        buffers = meta[:, where["buffers"]].reshape(n, -1, 2)
        offsets, sizes = buffers[:, :, 0], buffers[:, :, 1]
        if not (
            (body_length == lengths - 8 - metadata_size).all()  # one message per span
            and (body_length >= 0).all()  # and no span shorter than its own metadata
            and (numbers[:, where["num_rows"]] == 1).all()
            and ((nodes - _NODE_LOW) <= _NODE_SPAN).all()  # length 1, null count 0 or 1
            # Aligned, as Arrow's IPC format aligns every buffer, and small enough that
            # the sum below cannot wrap around.
            and not ((offsets & _ALIGNED_AND_SMALL) | (sizes >> 62)).any()
            and (offsets + sizes <= body_length.view(np.uint64)[:, None]).all()
        ):
            raise _Skip
        nulls = nodes[:, :, 1]
        body = starts + 8 + metadata_size
        at = body[:, None] + offsets.view(np.int64)
        null_rows = nulls == 1
        bitmaps = self._bitmaps(data, at, sizes, null_rows)
        null_counts = null_rows.sum(axis=0).tolist()
        columns: list[pa.Array | None] = [None] * len(self.validity)
        if self.fixed:
            if not (sizes[:, self.fixed_buffers] >= self.fixed_widths).all():
                raise _Skip
            places = at[:, self.fixed_buffers]
            for j, (c, _, width) in enumerate(self.fixed):
                # Eight-byte values are whole words: the body and its buffers are aligned.
                values = (
                    words[places[:, j] // 8]
                    if width == 8
                    else data[places[:, j][:, None] + np.arange(width)]
                )
                columns[c] = self._array(c, n, [bitmaps[c], pa.py_buffer(values)], null_counts)
        for c, buffer in self.strings:
            string_buffers = _gather_strings(data, at, sizes, buffer)
            columns[c] = self._array(c, n, [bitmaps[c], *string_buffers], null_counts)
            columns[c].validate(full=True)  # type: ignore[union-attr]  # UTF-8
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def _array(
        self, c: int, n: int, buffers: list[pa.Buffer | None], null_counts: list[int]
    ) -> pa.Array:
        return pa.Array.from_buffers(self.schema.field(c).type, n, buffers, null_counts[c])

    def _bitmaps(
        self, data: np.ndarray, at: np.ndarray, sizes: np.ndarray, null_rows: np.ndarray
    ) -> list[pa.Buffer | None]:
        """Each column's validity bitmap for the whole run; None where nothing is null.

        With a null count of zero a message's bitmap is ignored, as Arrow ignores it; a
        null row's bitmap must be there and say so.
        """
        if not null_rows.any():
            return [None] * len(self.validity)
        rows, columns = np.nonzero(null_rows)
        buffer = np.array(self.validity, np.intp)[columns]
        if not (sizes[rows, buffer] > 0).all() or (data[at[rows, buffer]] & 1).any():
            raise _Skip
        return [
            pa.py_buffer(np.packbits(~null_rows[:, c], bitorder="little"))
            if null_rows[:, c].any()
            else None
            for c in range(len(self.validity))
        ]

    def template(self, message: memoryview) -> tuple[int, dict[str, np.ndarray], np.ndarray] | None:
        """A fresh template from one message pyarrow reads (see ``_template_for``), or None."""
        try:
            return self._template_for(message, fresh=True)
        except (_Skip, struct.error, IndexError, ValueError):
            return None

    def _template_for(
        self, first: memoryview, fresh: bool
    ) -> tuple[int, dict[str, np.ndarray], np.ndarray]:
        """Metadata length, where the numbers are, and the words all messages must share.

        The last run's template unless ``fresh``: runs from one feed share one shape, and
        a run that does not match it is parsed afresh. A new template must be a message
        pyarrow itself reads: its flatbuffer is then well formed, so the positions found in
        it are the real ones, and every message matching it word for word has them too.
        """
        (metadata_size,) = _I32.unpack_from(first, 4)
        if metadata_size % 8:
            raise _Skip
        cached = self._template
        if not fresh and cached is not None and cached[0] == metadata_size:
            return cached
        try:
            message = ipc.read_message(pa.py_buffer(first))
            ipc.read_record_batch(message, self.schema).validate(full=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, EOFError):
            raise _Skip from None  # EOFError: the message is an end-of-stream marker
        where = self._parse(bytes(first[8 : 8 + metadata_size]))
        words = np.frombuffer(first[: 8 + metadata_size], np.uint64)
        self._template = (metadata_size, where, words[where["fixed"]].copy())
        return self._template

    def _parse(self, meta: bytes) -> dict[str, np.ndarray]:
        """Which words of a message hold the numbers; _Skip if it is not a one-row batch.

        Word 0 is the continuation marker and metadata length, so metadata byte ``p`` is
        in word ``1 + p // 8``.
        """
        message = _U32.unpack_from(meta, 0)[0]
        if _scalar(meta, message, 1, 1) != _RECORD_BATCH:
            raise _Skip
        body_length = _slot(meta, message, 3)
        header = _slot(meta, message, 2)
        if body_length is None or header is None:
            raise _Skip
        batch = header + _U32.unpack_from(meta, header)[0]
        num_rows = _slot(meta, batch, 0)
        nodes = _vector(meta, batch, 1)
        buffers = _vector(meta, batch, 2)
        if num_rows is None or _slot(meta, batch, 3) is not None:  # compressed
            raise _Skip
        variadic = _vector(meta, batch, 4)
        if variadic is not None and variadic[1]:
            raise _Skip
        if nodes is None or buffers is None:
            raise _Skip
        if nodes[1] != len(self.validity) or buffers[1] != self.buffer_count:
            raise _Skip
        numbers = np.zeros(1 + len(meta) // 8, bool)
        where: dict[str, np.ndarray] = {}
        for name, start, count in (
            ("body_length", body_length, 1),
            ("num_rows", num_rows, 1),
            ("nodes", nodes[0], 2 * nodes[1]),
            ("buffers", buffers[0], 2 * buffers[1]),
        ):
            if start % 8 or start + 8 * count > len(meta):
                raise _Skip
            word = 1 + start // 8
            numbers[word : word + count] = True
            where[name] = np.arange(word, word + count)
        where["body_length"] = where["body_length"][0]
        where["num_rows"] = where["num_rows"][0]
        where["fixed"] = np.flatnonzero(~numbers)
        return where


def _slot(meta: bytes, table: int, slot: int) -> int | None:
    """Position of a flatbuffer table's field, or None when the field is absent."""
    vtable = table - _I32.unpack_from(meta, table)[0]
    if not 0 <= vtable < len(meta):  # struct would count a negative offset from the end
        raise _Skip
    entry = 4 + 2 * slot
    if entry + 2 > _U16.unpack_from(meta, vtable)[0]:
        return None
    offset = _U16.unpack_from(meta, vtable + entry)[0]
    return table + offset if offset else None


def _scalar(meta: bytes, table: int, slot: int, size: int) -> int:
    at = _slot(meta, table, slot)
    return 0 if at is None else int.from_bytes(meta[at : at + size], "little")


def _vector(meta: bytes, table: int, slot: int) -> tuple[int, int] | None:
    """(position of the first element, element count) of a vector field."""
    at = _slot(meta, table, slot)
    if at is None:
        return None
    vector = at + _U32.unpack_from(meta, at)[0]
    return vector + 4, _U32.unpack_from(meta, vector)[0]


def _gather_strings(
    data: np.ndarray, at: np.ndarray, sizes: np.ndarray, buffer: int
) -> list[pa.Buffer]:
    """The offsets and values buffers of a string column, one value per message."""
    if not (sizes[:, buffer] >= 8).all():
        raise _Skip
    pair = np.ascontiguousarray(data[at[:, buffer][:, None] + np.arange(8)]).view("<i4")
    first, last = pair[:, 0].astype(np.int64), pair[:, 1].astype(np.int64)
    lengths = last - first
    if not ((first >= 0) & (lengths >= 0) & (last <= sizes[:, buffer + 1])).all():
        raise _Skip
    out_offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    if out_offsets[-1] >= 2**31:
        raise _Skip
    source = at[:, buffer + 1] + first
    # Byte k of the output comes from its row's source plus its place within the row.
    row_of_byte = np.repeat(np.arange(len(lengths)), lengths)
    values = data[source[row_of_byte] + np.arange(out_offsets[-1]) - out_offsets[row_of_byte]]
    return [pa.py_buffer(out_offsets.astype(np.int32)), pa.py_buffer(values)]
