"""One-row messages checked and packed without a reader (``tickerplant.rowpack``).

Both implementations, the C extension and the pure-Python fallback, are held to pyarrow's
reader on generated rows (nulls, empty and non-ASCII strings, rows without ``time``) and on
corrupted messages: whatever they accept, the reader accepts and reads the same. And they
are held to each other: the same verdict on every message, the same bytes for every run.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.row_values import value_of

from tickdb.schema import TableSchema, default_schemas
from tickerplant.ingest import _stamped, encode_rows, encode_stream
from tickerplant.onerow import OneRowDecoder
from tickerplant.rowpack import (
    FITS,
    MAX_LAYOUTS,
    OTHER_LAYOUT,
    PURE_PYTHON_ENV,
    REFUSED,
    Implementation,
    PurePython,
    RowPacker,
    compiled,
    implementation,
)
from tickerplant.splice import END_OF_STREAM

SCHEMAS = default_schemas()
TRADE, ORDER = SCHEMAS["trade"], SCHEMAS["order"]
C: Any = compiled()
IMPLS: list[Any] = [
    pytest.param(PurePython(), id="python"),
    pytest.param(C, id="c", marks=pytest.mark.skipif(C is None, reason="_rowpack not built")),
]
needs_c = pytest.mark.skipif(C is None, reason="tickerplant._rowpack is not built")
STAMP = 1_790_000_000_123_456_789
PREFIX = TRADE.arrow.serialize().to_pybytes()


def rows_of(schema: pa.Schema, min_size: int = 1, max_size: int = 12) -> st.SearchStrategy:
    row = st.tuples(*(st.one_of(st.none(), value_of(f.type)) for f in schema))
    return st.lists(row, min_size=min_size, max_size=max_size)


def message(schema: pa.Schema, row: tuple) -> bytes:
    """One row as a publisher sends it, less the schema message and end marker."""
    columns = [
        pa.array([v], pa.int64() if pa.types.is_timestamp(f.type) else f.type)
        for v, f in zip(row, schema, strict=True)
    ]
    columns = [c.cast(f.type) for c, f in zip(columns, schema, strict=True)]
    stream = encode_stream(pa.RecordBatch.from_arrays(columns, schema=schema), schema)
    return stream[len(schema.serialize()) : -len(END_OF_STREAM)]


def read(schema: pa.Schema, messages: list[bytes]) -> pa.Table:
    """What pyarrow's reader makes of these messages behind ``schema``."""
    stream = schema.serialize().to_pybytes() + b"".join(messages) + END_OF_STREAM
    table = ipc.open_stream(pa.py_buffer(stream)).read_all()
    table.validate(full=True)
    return table


def packer(table: TableSchema, impl: Implementation) -> RowPacker:
    return RowPacker(table.arrow, table.arrow_without_time, impl)


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    """Equal rows, NaN included (a corrupted float may well become one)."""
    return a.schema.equals(b.schema) and repr(a.to_pylist()) == repr(b.to_pylist())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("table", [TRADE, ORDER], ids=["trade", "order"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), timed=st.booleans())
def test_a_packed_run_reads_as_its_messages_read(
    impl: Implementation, table: TableSchema, data: st.DataObject, timed: bool
) -> None:
    schema = table.arrow if timed else table.arrow_without_time
    rows = data.draw(rows_of(schema))
    messages = [message(schema, r) for r in rows]
    packed = packer(table, impl).pack(timed, [memoryview(m) for m in messages], STAMP)
    assert packed is not None
    got = ipc.open_stream(pa.py_buffer(packed)).read_all()
    got.validate(full=True)
    assert got.schema.equals(table.arrow, check_metadata=True)
    assert got.column("time").chunks[0].buffers()[1].address % 8 == 0
    expected = read(schema, messages)
    if not timed:
        assert got.column("time").cast(pa.int64()).to_pylist() == [STAMP] * len(rows)
        got = got.drop_columns(["time"])
    assert same_rows(got, expected)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("table", [TRADE, ORDER], ids=["trade", "order"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), timed=st.booleans())
def test_a_packed_run_is_what_pyarrow_writes_for_its_rows(
    impl: Implementation, table: TableSchema, data: st.DataObject, timed: bool
) -> None:
    """Byte for byte: so whether a run is packed here, decoded by ``onerow`` or read by a
    reader (each then encoded by pyarrow) never shows in the journal."""
    schema = table.arrow if timed else table.arrow_without_time
    rows = data.draw(rows_of(schema, 1, 40))
    views = [memoryview(message(schema, r)) for r in rows]
    packed = packer(table, impl).pack(timed, views, STAMP)
    prefix = table.arrow.serialize().to_pybytes()

    def encoded(decoded: pa.RecordBatch | pa.Table) -> bytes | memoryview:
        if timed:
            return encode_rows(decoded, prefix)
        return _stamped(decoded, table, STAMP, prefix).payload

    assert packed == encoded(read(schema, [bytes(v) for v in views]).combine_chunks())
    decoded = OneRowDecoder(schema).decode(views, [len(v) for v in views])
    assert decoded is not None and packed == encoded(decoded)


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_of(TRADE.arrow, 1, 6), data=st.data())
def test_c_and_python_agree_on_every_verdict_and_byte(rows: list[tuple], data: Any) -> None:
    messages = [bytearray(message(TRADE.arrow, r)) for r in rows]
    victim = data.draw(st.integers(0, len(messages) - 1))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(messages[victim]) - 1))
        messages[victim][at] ^= data.draw(st.integers(1, 255))
    views = [memoryview(bytes(m)) for m in messages]
    learner = packer(TRADE, PurePython())
    timed = learner.layout_for(True, memoryview(message(TRADE.arrow, rows[0])))
    untimed = TRADE.arrow_without_time
    plain = learner.layout_for(False, memoryview(message(untimed, rows[0][1:])))
    assert timed is not None and plain is not None and learner.output is not None
    assert packer(TRADE, C).output == learner.output
    for view in views:
        assert C.check(timed, view) == PurePython().check(timed, view)
    runs = [
        (timed, views, None),
        (plain, [memoryview(message(untimed, r[1:])) for r in rows], STAMP),
    ]
    for into, run, stamp in runs:
        packed = C.pack(learner.output, into, learner.prefix, run, stamp)
        assert packed == PurePython().pack(learner.output, into, learner.prefix, run, stamp)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_every_single_byte_corruption_is_refused_or_read_alike(
    impl: Implementation, flip: int
) -> None:
    schema = TRADE.arrow
    good = [message(schema, (i, ["A", None, "BCD"][i % 3], 1.5, i)) for i in range(3)]
    pack = packer(TRADE, impl)
    for at in range(len(good[1])):
        corrupt = bytearray(good[1])
        corrupt[at] ^= flip
        run = [good[0], bytes(corrupt), good[2]]
        packed = pack.pack(True, [memoryview(m) for m in run], STAMP)
        fits = pack.layout_for(True, memoryview(bytes(corrupt))) is not None
        if packed is None:
            continue
        assert fits, at
        try:
            expected = read(schema, run)
        except (pa.ArrowInvalid, OSError) as exc:
            raise AssertionError(f"byte {at} ^ {flip:#x} accepted, pyarrow says: {exc}") from None
        got = ipc.open_stream(pa.py_buffer(packed)).read_all()
        got.validate(full=True)
        assert same_rows(got, expected), at
        assert packed == encode_rows(expected.combine_chunks(), PREFIX), at


def with_string_bytes(good: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and good.count(old) == 1
    return good.replace(old, new)


@pytest.mark.parametrize("impl", IMPLS)
def test_invalid_utf8_is_refused_in_a_value_and_ignored_in_a_null(impl: Implementation) -> None:
    pack = packer(TRADE, impl)
    valid = message(TRADE.arrow, (1, "\u00e9\u00e9", 1.0, 1))  # two 2-byte characters
    assert pack.layout_for(True, memoryview(valid)) is not None
    for bad in (b"\xc3\x28\xc3\xa9", b"\xed\xa0\x80\x41", b"\xc0\xaf\xc3\xa9", b"\x41\xc3\xa9\xc3"):
        corrupt = with_string_bytes(valid, "\u00e9\u00e9".encode(), bad)
        assert impl.check(pack.layout_for(True, memoryview(valid)), corrupt) == REFUSED  # type: ignore[arg-type]
    # A null value's bytes are never read: Arrow does not check them, nor does this.
    sym = pa.Array.from_buffers(
        pa.string(),
        1,
        [
            pa.py_buffer(b"\0"),
            pa.py_buffer(struct.pack("<2i", 0, 4)),
            pa.py_buffer(b"\xff\xfe\xfd\xfc"),
        ],
        null_count=1,
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1], pa.timestamp("ns")), sym, pa.array([1.0]), pa.array([1])], schema=TRADE.arrow
    )
    null_sym = encode_stream(batch, TRADE.arrow)[len(TRADE.arrow.serialize()) : -8]
    assert b"\xff\xfe\xfd\xfc" in null_sym
    assert read(TRADE.arrow, [null_sym]).column("sym").to_pylist() == [None]
    packed = pack.pack(True, [memoryview(null_sym)], STAMP)
    assert packed is not None
    assert ipc.open_stream(pa.py_buffer(packed)).read_all().column("sym").to_pylist() == [None]


@pytest.mark.parametrize("impl", IMPLS)
def test_a_message_of_two_rows_is_not_one_and_teaches_nothing(impl: Implementation) -> None:
    pack = packer(TRADE, impl)
    one = message(TRADE.arrow, (1, "A", 1.0, 1))
    assert pack.layout_for(True, memoryview(one)) is not None
    table = pa.table(
        {
            "time": pa.array([1, 2], pa.timestamp("ns")),
            "sym": ["A", "B"],
            "price": [1.0, 2.0],
            "size": pa.array([1, 2], pa.int64()),
        },
        schema=TRADE.arrow,
    )
    two = encode_stream(table, TRADE.arrow)[len(TRADE.arrow.serialize()) : -8]
    assert pack.layout_for(True, memoryview(two)) is None
    assert len(pack._layouts[True]) == 1
    # Packed behind a one-row message all the same (the C extension; the fallback leaves it
    # to a reader): see test_rowpack_batches.py.
    packed = pack.pack(True, [memoryview(one), memoryview(two)], STAMP)
    if isinstance(impl, PurePython):
        assert packed is None
    else:
        assert packed is not None and pack.packed_rows(packed) == 3


def message_with_metadata(row: tuple, tag: str) -> bytes:
    """A message laid out differently, as another writer's may be: custom metadata."""
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([v], pa.int64()).cast(f.type)
            if pa.types.is_timestamp(f.type)
            else pa.array([v], f.type)
            for v, f in zip(row, TRADE.arrow, strict=True)
        ],
        schema=TRADE.arrow,
    )
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, TRADE.arrow) as writer:
        writer.write_batch(batch, custom_metadata={"writer": tag})
    return sink.getvalue().to_pybytes()[len(TRADE.arrow.serialize()) : -8]


@pytest.mark.parametrize("impl", IMPLS)
def test_layouts_of_other_writers_are_learned_a_few_at_a_time(impl: Implementation) -> None:
    pack = packer(TRADE, impl)
    plain = message(TRADE.arrow, (1, "A", 1.0, 1))
    others = [message_with_metadata((2, "B", 2.0, 2), "w" * n) for n in range(1, 9, 2)]
    assert impl.check(pack.layout_for(True, memoryview(plain)), others[0]) == OTHER_LAYOUT  # type: ignore[arg-type]
    for other in others:
        assert pack.layout_for(True, memoryview(other)) is not None
    assert len(pack._layouts[True]) == MAX_LAYOUTS
    # A run of one writer's messages packs; a run mixing layouts is left to the reader.
    assert pack.pack(True, [memoryview(others[-1])] * 3, STAMP) is not None
    assert pack.pack(True, [memoryview(others[-1]), memoryview(others[-2])], STAMP) is None
    packed = pack.pack(True, [memoryview(plain)], STAMP)
    assert packed is not None and read(TRADE.arrow, [plain]).equals(
        ipc.open_stream(pa.py_buffer(packed)).read_all()
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_short_or_unaligned_messages_are_refused(impl: Implementation) -> None:
    pack = packer(TRADE, impl)
    good = message(TRADE.arrow, (1, "A", 1.0, 1))
    layout = pack.layout_for(True, memoryview(good))
    assert layout is not None
    assert impl.check(layout, good[:16]) == OTHER_LAYOUT
    assert impl.check(layout, good[:-8]) == REFUSED
    assert impl.check(layout, good + b"\0" * 8) == REFUSED
    assert impl.check(layout, good[:-1]) == REFUSED
    assert impl.check(layout, good) == FITS
    assert impl.check(layout, b"") == OTHER_LAYOUT


@needs_c
def test_the_extension_refuses_a_layout_that_is_not_one() -> None:
    assert C is not None
    module_check = C._check
    with pytest.raises(ValueError, match="not a row layout"):
        module_check(b"\0" * 64, b"")
    with pytest.raises(ValueError, match="not a row layout"):
        module_check(struct.pack("<8q", 8, 1, 2, 99, 1, 1, 1, 0) + struct.pack("<q", 8), b"")


def test_the_extension_is_built_where_it_must_be() -> None:
    """``make test`` asks for it: a failed build must not pass as the fallback."""
    if not os.environ.get("TICKDB_REQUIRE_COMPILED"):
        pytest.skip("TICKDB_REQUIRE_COMPILED is not set")
    assert C is not None, "tickerplant._rowpack is not built: pip install -e ."


def test_the_fallback_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    assert implementation().name == "python"
    monkeypatch.delenv(PURE_PYTHON_ENV)
    assert implementation().name == ("c" if C is not None else "python")
