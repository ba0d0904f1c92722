"""Decoding a run of one-row Arrow IPC batch messages with a few array operations.

Feeds that send a row per message are the hard case for a tickerplant in Python: an Arrow
reader costs a few microseconds per batch however small, more than everything else done
per message. But one-row batches of one schema from one writer differ only in numbers:
their metadata is the same flatbuffer, byte for byte, except the body length and the
per-column buffer offsets, lengths and null counts. So the first message's metadata is
parsed once, every other message's metadata is checked against it (all bytes but those
numbers must be equal), the numbers are read for all messages at once with numpy, checked
(one row, buffers inside the body, string offsets inside their data), and each column is
gathered from the bodies into one array. The result is validated in full like any batch.

Anything unexpected (another row count, nulls in a boolean, compression, a type not
handled here, a different writer) returns None and the caller reads the run with a reader.
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_RECORD_BATCH = 3  # MessageHeader.RecordBatch


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
        self.buffers_per_column = [3 if kind == "string" else 2 for kind, _ in self.layout or []]

    def decode(self, spans: list[memoryview]) -> pa.RecordBatch | None:
        """The run's rows as one batch, or None when the run is not simple one-row batches."""
        if self.layout is None or not spans:
            return None
        try:
            return self._decode(spans)
        except (_Skip, struct.error, IndexError, ValueError, pa.ArrowInvalid):
            return None

    def _decode(self, spans: list[memoryview]) -> pa.RecordBatch:
        first = spans[0]
        (metadata_size,) = _I32.unpack_from(first, 4)
        if metadata_size % 8:
            raise _Skip
        template = bytes(first[: 8 + metadata_size])
        where = self._parse(template[8:])
        n = len(spans)
        lengths = np.fromiter((len(s) for s in spans), np.int64, n)
        if (lengths % 8).any():
            raise _Skip
        joined = b"".join(spans)
        data = np.frombuffer(joined, np.uint8)
        # IPC messages are padded to 8 bytes, so every message and every number in its
        # metadata starts on a word: compare and read words, not bytes.
        words = np.frombuffer(joined, np.uint64)
        starts = (np.cumsum(lengths) - lengths) // 8
        # Every message's prefix and metadata, a row each; all but the numbers (and the
        # continuation and metadata length) must match the template's.
        meta = words[starts[:, None] + np.arange(1 + metadata_size // 8)]
        fixed = where["fixed"]
        if not (meta[:, fixed] == np.frombuffer(template, np.uint64)[fixed]).all():
            raise _Skip
        numbers = meta.view(np.int64)
        body_length = numbers[:, where["body_length"]]
        if not (body_length == lengths - 8 - metadata_size).all():
            raise _Skip  # one message per span, exactly
        if not (numbers[:, where["num_rows"]] == 1).all():
            raise _Skip
        nodes = numbers[:, where["nodes"]].reshape(n, -1, 2)
        buffers = numbers[:, where["buffers"]].reshape(n, -1, 2)
        offsets, sizes = buffers[:, :, 0], buffers[:, :, 1]
        if not (
            (nodes[:, :, 0] == 1).all()
            and ((nodes[:, :, 1] == 0) | (nodes[:, :, 1] == 1)).all()
            and (offsets >= 0).all()
            and not (offsets % 8).any()  # Arrow's IPC format aligns every buffer
            and (sizes >= 0).all()
            and (offsets + sizes <= body_length[:, None]).all()
        ):
            raise _Skip
        body = starts * 8 + 8 + metadata_size
        columns = []
        b = 0
        for c, (kind, width) in enumerate(self.layout or []):
            valid = nodes[:, c, 1] == 0
            _check_validity(data, body + offsets[:, b], sizes[:, b], valid)
            bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
            if kind == "fixed":
                if not (sizes[:, b + 1] >= width).all():
                    raise _Skip
                at = body + offsets[:, b + 1]
                # Eight-byte values are whole words: the body and its buffers are aligned.
                values = words[at // 8] if width == 8 else data[at[:, None] + np.arange(width)]
                buffers_out = [bitmap, pa.py_buffer(values)]
            else:
                buffers_out = [bitmap, *_gather_strings(data, body, offsets, sizes, b)]
            columns.append(
                pa.Array.from_buffers(
                    self.schema.field(c).type, n, buffers_out, int((~valid).sum())
                )
            )
            b += self.buffers_per_column[c]
        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        batch.validate(full=True)
        return batch

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
        if nodes[1] != len(self.buffers_per_column) or buffers[1] != sum(self.buffers_per_column):
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


def _check_validity(data: np.ndarray, at: np.ndarray, size: np.ndarray, valid: np.ndarray) -> None:
    """A validity bitmap, where one was sent, must agree with the null count."""
    present = size > 0
    if not present.any():
        if not valid.all():
            raise _Skip  # a null without a bitmap
        return
    if not (present | valid).all():
        raise _Skip
    bits = (data[np.where(present, at, 0)] & 1).astype(bool)
    if not (bits[present] == valid[present]).all():
        raise _Skip


def _gather_strings(
    data: np.ndarray, body: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, b: int
) -> list[pa.Buffer]:
    """The offsets and value buffers of a string column, one value per message."""
    if not (sizes[:, b + 1] >= 8).all():
        raise _Skip
    pair = data[(body + offsets[:, b + 1])[:, None] + np.arange(8)]
    ends = np.ascontiguousarray(pair).view("<i4")
    first, last = ends[:, 0].astype(np.int64), ends[:, 1].astype(np.int64)
    if not ((first >= 0) & (first <= last) & (last <= sizes[:, b + 2])).all():
        raise _Skip
    lengths = last - first
    out_offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    if out_offsets[-1] >= 2**31:
        raise _Skip
    source = body + offsets[:, b + 2] + first
    # Byte k of the output comes from its row's source plus its place within the row.
    row_of_byte = np.repeat(np.arange(len(lengths)), lengths)
    values = data[source[row_of_byte] + np.arange(out_offsets[-1]) - out_offsets[row_of_byte]]
    return [pa.py_buffer(out_offsets.astype(np.int32)), pa.py_buffer(values)]
