"""One row as the Arrow IPC stream a publisher sends, packed without building an Arrow batch.

A one-row batch message of a given schema is the same bytes every time except a few
numbers: the body length and each buffer's offset and length, which depend only on the
lengths of the string values. So the message is written as a template with those numbers
and the values packed in by ``struct``: code generated per schema, straight-line, one
``struct.pack`` per run of fixed-width columns. The template is a message pyarrow itself
wrote, and the positions of the numbers are found by the tickerplant's own one-row decoder
(``tickerplant.onerow``), so the result is what ``RecordBatch.serialize`` writes, byte for
byte (the tests hold it to that), and a run of such messages takes the tickerplant's
one-row fast path.

Rows with a null, and schemas with a type not handled here (booleans), are built with
pyarrow instead: slower (~15 µs against ~0.5), same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from tickdb.schema import SchemaError
from tickerplant.onerow import OneRowDecoder
from tickerplant.rowpack import RowPacker, compiled
from tickerplant.splice import END_OF_STREAM

# Struct codes of the fixed-width types a q table can hold (``tickdb.schema.Q_TO_ARROW``).
_FIXED_CODES = {
    pa.timestamp("ns"): "q",
    pa.int64(): "q",
    pa.duration("ns"): "q",
    pa.float64(): "d",
    pa.float32(): "f",
    pa.int32(): "i",
    pa.date32(): "i",
    pa.time32("ms"): "i",
    pa.time32("s"): "i",
    pa.int16(): "h",
    pa.uint8(): "B",
    pa.binary(16): "16s",
}
_PADS = tuple(bytes(k) for k in range(8))
# ``RowMessages.join`` takes runs up to this many rows; pyarrow's columns are as fast from
# about twice that (order requests: 14 µs for 2 rows against 53 through pyarrow, 92 against
# 109 for 16, even at 32).
JOIN_MAX_ROWS = 16


def payload_of(batch: pa.RecordBatch, prefix: bytes) -> bytes:
    """A stream of one batch: the schema message's bytes, the batch, the end marker."""
    return b"".join((prefix, batch.serialize(), END_OF_STREAM))


class RowMessages:
    """Encodes one row (values in schema order, already checked by
    ``tickerplant.row_values``) as a whole IPC stream: ``encode(*values)``."""

    def __init__(self, schema: pa.Schema, table: str) -> None:
        self.schema = schema
        self.table = table
        self.prefix = schema.serialize().to_pybytes()
        codes = [
            "string" if field.type == pa.string() else _FIXED_CODES.get(field.type)
            for field in schema
        ]
        self.packed = all(codes)
        self._joiner: RowPacker | None = None  # ``join``'s, made at its first use
        self.encode: Callable[..., bytes] = (
            self._generate([str(c) for c in codes]) if self.packed else self.encode_with_arrow
        )

    def join(self, rows: Sequence[Sequence[Any]]) -> bytes | None:
        """Several rows (values in schema order) as one stream of one batch, the bytes
        pyarrow writes for them: each packed as a one-row message, then joined by the
        tickerplant's compiled packer (``tickerplant.rowpack``), no Arrow array built: a few
        µs a row, against ~40 µs for a batch of a handful of rows through pyarrow. None
        without the compiled packer, for a run longer than ``JOIN_MAX_ROWS`` (pyarrow's
        columns are faster there) or one it does not take: the caller builds a batch."""
        if not 1 < len(rows) <= JOIN_MAX_ROWS:
            return None
        joiner = self._joiner
        if joiner is None:
            impl = compiled()
            if impl is None:
                return None
            joiner = self._joiner = RowPacker(self.schema, self.schema, impl)
        cut = len(self.prefix)
        return joiner.pack(True, [memoryview(self.encode(*row))[cut:-8] for row in rows], 0)

    def encode_with_arrow(self, *values: Any) -> bytes:
        try:
            arrays = [pa.array([v], type=f.type) for v, f in zip(values, self.schema, strict=True)]
            batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        except (pa.ArrowException, UnicodeError, ValueError, TypeError) as exc:
            raise SchemaError(f"table {self.table!r}: row {values!r:.200}: {exc}") from None
        return payload_of(batch, self.prefix)

    def _template(self, codes: list[str]) -> tuple[bytes, dict[str, np.ndarray]]:
        """A one-row message pyarrow wrote, and where its numbers are."""
        sample = {"string": "x", "q": 1, "d": 1.0, "f": 1.0, "i": 1, "h": 1, "B": 1}
        values = [sample.get(code, b"\x00" * 16) for code in codes]
        batch = pa.RecordBatch.from_arrays(
            [pa.array([v], type=f.type) for v, f in zip(values, self.schema, strict=True)],
            schema=self.schema,
        )
        message = batch.serialize().to_pybytes()
        (metadata_size,) = struct.unpack_from("<i", message, 4)
        # The positions the tickerplant compares runs of one-row messages by.
        where = OneRowDecoder(self.schema)._parse(message[8 : 8 + metadata_size])
        return message[: 8 + metadata_size], where

    def _generate(self, codes: list[str]) -> Callable[..., bytes]:
        head, where = self._template(codes)
        n = len(codes)
        lines: list[str] = []
        # Body layout: each column's validity bitmap (empty: no nulls), then its data
        # (fixed) or offsets and characters (string), each buffer padded to 8 bytes.
        offset_terms: list[str] = []  # the padded lengths of the strings so far
        constant = 0

        def at() -> str:
            return " + ".join([str(constant), *offset_terms])

        buffers: list[tuple[str, str]] = []
        body: list[_Item] = []
        for i, code in enumerate(codes):
            buffers.append((at(), "0"))  # validity
            if code == "string":
                lines += [f"e{i} = v{i}.encode()", f"n{i} = len(e{i})", f"q{i} = (n{i} + 7) & -8"]
                buffers.append((at(), "8"))
                constant += 8
                buffers.append((at(), f"n{i}"))
                offset_terms.append(f"q{i}")
                body += [("i", "0"), ("i", f"n{i}"), (None, f"e{i}"), (None, f"_PADS[q{i} - n{i}]")]
            else:
                width = struct.calcsize("<" + code)
                padded = (width + 7) & -8
                buffers.append((at(), str(width)))
                constant += padded
                body.append((code + "x" * (padded - width), f"v{i}"))
        numbers = {int(where["body_length"]): at()}
        for k, word in enumerate(where["buffers"].tolist()):
            numbers[word] = buffers[k // 2][k % 2]
        # The message head word by word: the numbers that vary packed, the rest constant.
        head_items: list[_Item] = []
        for word in range(len(head) // 8):
            expression = numbers.get(word)
            if expression is None:
                head_items.append(head[8 * word : 8 * word + 8])
            elif expression.isdigit():
                head_items.append(struct.pack("<q", int(expression)))
            else:
                head_items.append(("q", expression))
        namespace: dict[str, Any] = {"_PADS": _PADS, "_fallback": self.encode_with_arrow}
        items = [self.prefix, *head_items, *body, END_OF_STREAM]
        parts = _pack_runs(items, namespace)
        params = ", ".join(f"v{i}" for i in range(n))
        source = "\n".join(
            [
                f"def encode({params}):",
                "    try:",
                *(f"        {line}" for line in lines),
                f"        return b''.join(({', '.join(parts)},))",
                "    except (AttributeError, TypeError, ValueError, OverflowError, struct.error):",
                "        # A null (None) or a value the fast path cannot pack: pyarrow decides.",
                f"        return _fallback({params})",
            ]
        )
        namespace["struct"] = struct
        exec(compile(source, f"<row message {self.table}>", "exec"), namespace)
        encode: Callable[..., bytes] = namespace["encode"]
        return encode


# A piece of a message: constant bytes, (struct code, argument expression), or
# (None, an expression of bytes).
_Item = bytes | tuple[str | None, str]


def _pack_runs(items: Sequence[_Item], namespace: dict[str, Any]) -> list[str]:
    """Expressions whose bytes, joined, are the message: each run of constants and packed
    values becomes one ``struct.pack``; the strings' bytes stand alone."""
    parts: list[str] = []
    fmt: list[str] = []
    args: list[str] = []

    def close_run() -> None:
        if fmt:
            name = f"_S{len(namespace)}"
            namespace[name] = struct.Struct("<" + "".join(fmt)).pack
            parts.append(f"{name}({', '.join(args)})")
            fmt.clear()
            args.clear()

    merged: list[_Item] = []
    for item in items:  # adjacent constants as one
        if isinstance(item, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += item
        else:
            merged.append(item)
    for item in merged:
        if isinstance(item, bytes):
            name = f"_K{len(namespace)}"
            namespace[name] = item
            fmt.append(f"{len(item)}s")
            args.append(name)
        elif item[0] is None:
            close_run()
            parts.append(item[1])
        else:
            fmt.append(item[0])
            args.append(item[1])
    close_run()
    return parts
