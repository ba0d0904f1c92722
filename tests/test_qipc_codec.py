"""The q IPC codec against PyKX (kdb+'s own serialiser) as the independent reference.

For every vector and atom type, hypothesis draws *wire* integers (nulls and infinities
included); the test builds the Python value the codec should decode them to, then checks
both directions: PyKX's bytes decode to that value, and our bytes decode in PyKX to the
same wire integers and re-serialise to identical bytes.
"""

from __future__ import annotations

import os
import struct
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("PYKX_UNLICENSED", "true")  # PyKX 4.x: IPC and (de)serialise only
kx = pytest.importorskip("pykx")

from qipc import codec  # noqa: E402
from qipc import types as t  # noqa: E402
from qipc.compress import compress, decompress  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
TS_OFF = t.EPOCH_OFFSET[t.TIMESTAMP]

RAW_STRATEGY: dict[int, st.SearchStrategy[Any]] = {
    t.BOOLEAN: st.booleans(),
    t.BYTE: st.integers(0, 255),
    t.SHORT: st.integers(-(2**15), 2**15 - 1),
    t.INT: st.integers(I32_MIN, I32_MAX),
    t.LONG: st.integers(I64_MIN, I64_MAX),
    t.REAL: st.floats(width=32, allow_nan=True),
    t.FLOAT: st.floats(allow_nan=True),
    # numpy datetime64[ns] ends in 2262: beyond, values saturate (tested separately).
    t.TIMESTAMP: st.one_of(
        st.sampled_from([I64_MIN, I64_MAX, -I64_MAX]),
        st.integers(I64_MIN + 2, I64_MAX - TS_OFF - 1),
    ),
    t.MONTH: st.integers(I32_MIN, I32_MAX),
    t.DATE: st.integers(I32_MIN, I32_MAX),
    t.TIMESPAN: st.integers(I64_MIN, I64_MAX),
    t.MINUTE: st.integers(I32_MIN, I32_MAX),
    t.SECOND: st.integers(I32_MIN, I32_MAX),
    t.TIME: st.integers(I32_MIN, I32_MAX),
}
PYKX_VECTOR = {
    t.TIMESTAMP: "TimestampVector", t.MONTH: "MonthVector", t.DATE: "DateVector",
    t.TIMESPAN: "TimespanVector", t.MINUTE: "MinuteVector", t.SECOND: "SecondVector",
    t.TIME: "TimeVector",
}  # fmt: skip


def expected_numpy(qtype: int, raw: list[Any]) -> np.ndarray:
    """What the codec must decode wire values to: the documented epoch and sentinel rules."""
    wire = np.array(raw, dtype=t.WIRE_DTYPE[qtype].newbyteorder("="))
    if qtype not in PYKX_VECTOR:
        return wire.astype(t.NUMPY_DTYPE[qtype])
    out = wire.astype(np.int64)
    off = t.EPOCH_OFFSET.get(qtype, 0)
    width = wire.dtype.itemsize
    null, inf = t.INT_NULL[width], t.INT_INF[width]
    special = (wire == null) | (wire == inf) | (wire == -inf)
    out = np.where(special, out, out + off)
    if width == 4:
        out = np.where(wire == null, t.NAT, out)
        out = np.where(wire == inf, t.NP_INF, np.where(wire == -inf, t.NP_NINF, out))
    return out.view(t.NUMPY_DTYPE[qtype])


def pykx_vector(qtype: int, raw: list[Any]) -> Any:
    """A PyKX vector holding exactly ``raw`` on the wire (PyKX shifts epochs itself)."""
    wire = np.array(raw, dtype=t.WIRE_DTYPE[qtype].newbyteorder("="))
    if qtype not in PYKX_VECTOR:
        return kx.toq(wire)
    ints = wire.astype(np.int64)
    if qtype == t.TIMESTAMP:  # PyKX subtracts the offset with wraparound: add it first
        ints = (ints.astype(np.uint64) + np.uint64(TS_OFF)).astype(np.int64)
    elif qtype in (t.DATE, t.MONTH):
        ints = ints + t.EPOCH_OFFSET[qtype]
    return kx.toq(ints, ktype=getattr(kx, PYKX_VECTOR[qtype]))


def assert_same(actual: Any, expected: np.ndarray) -> None:
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(actual, expected)  # NaN equals NaN here
    else:
        assert actual.view(np.uint8).tobytes() == expected.view(np.uint8).tobytes()


@pytest.mark.parametrize("qtype", sorted(RAW_STRATEGY), ids=lambda q: t.TYPE_NAMES[q])
@SETTINGS
@given(data=st.data())
def test_vectors_match_pykx_both_ways(qtype: int, data: st.DataObject) -> None:
    raw = data.draw(st.lists(RAW_STRATEGY[qtype], max_size=20), label="raw")
    expected = expected_numpy(qtype, raw)
    theirs = kx.serialize(pykx_vector(qtype, raw)).copy()
    msg_type, decoded = codec.decode(theirs)
    assert msg_type == t.ASYNC
    assert_same(decoded, expected)

    ours = codec.encode(expected)
    assert ours == theirs  # byte for byte what kdb+ writes
    back = kx.deserialize(ours).np(raw=True)
    np.testing.assert_array_equal(back, np.array(raw, dtype=back.dtype))


@pytest.mark.parametrize("qtype", sorted(RAW_STRATEGY), ids=lambda q: t.TYPE_NAMES[q])
@SETTINGS
@given(data=st.data())
def test_atoms_match_pykx(qtype: int, data: st.DataObject) -> None:
    raw = data.draw(RAW_STRATEGY[qtype], label="raw")
    atom = expected_numpy(qtype, [raw])[0]
    # Unlicensed PyKX cannot index a vector: take the item bytes from kdb+'s vector of one.
    item = kx.serialize(pykx_vector(qtype, [raw])).copy()[14:]
    theirs = struct.pack("<BBBBIb", 1, 0, 0, 0, 9 + len(item), -qtype) + item
    ours = codec.encode(atom)
    assert ours == theirs
    assert kx.serialize(kx.deserialize(ours)).copy() == ours  # kdb+ reads it as that atom
    decoded = codec.decode(theirs)[1]
    assert_same(np.array([decoded]), np.array([atom]))


@SETTINGS
@given(
    syms=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=8),
        max_size=20,
    )
)
def test_symbols_and_strings_match_pykx(syms: list[str]) -> None:
    vector = np.array(syms, dtype=object)
    theirs = kx.serialize(kx.toq(vector, ktype=kx.SymbolVector)).copy()
    assert codec.encode(vector) == theirs
    assert list(codec.decode(theirs)[1]) == syms
    strings = [s.encode() for s in syms]
    theirs = kx.serialize(kx.toq(strings)).copy() if strings else None
    if theirs is not None:
        assert codec.decode(theirs)[1] == syms  # a list of char vectors
    for s in syms[:3]:
        assert codec.encode(t.Symbol(s)) == kx.serialize(kx.SymbolAtom(s)).copy()
        assert codec.encode(s) == kx.serialize(kx.CharVector(s.encode())).copy()


def test_guid_char_and_generic_null() -> None:
    ids = [uuid.UUID(int=0), uuid.uuid4(), uuid.UUID(int=2**128 - 1)]
    theirs = kx.serialize(kx.toq(np.array(ids, dtype=object))).copy()
    vector = np.array([u.bytes for u in ids], dtype="V16")
    assert codec.encode(vector) == theirs
    assert codec.decode(theirs)[1].tobytes() == vector.tobytes()
    assert codec.encode(ids[1]) == kx.serialize(kx.toq(ids[1])).copy()
    assert codec.decode(kx.serialize(kx.toq(ids[1])).copy())[1] == ids[1]
    assert codec.encode(t.Char("x")) == kx.serialize(kx.toq(b"x")).copy()
    assert codec.decode(codec.encode(t.Char("x")))[1] == t.Char("x")
    assert codec.decode(codec.encode(None))[1] is None
    assert codec.encode(np.array([b"a", b"b"], dtype="S1")) == kx.serialize(kx.toq(b"ab")).copy()


def sample_qtable() -> t.QTable:
    return t.QTable(
        {
            "time": np.array(["2024-01-02T09:30:00.000000001", "NaT"], dtype="M8[ns]"),
            "sym": np.array(["AAPL", ""], dtype=object),
            "price": np.array([1.5, np.nan]),
            "size": np.array([100, I64_MIN], dtype=np.int64),
            "note": ["first", ""],
        }
    )


def test_tables_keyed_tables_dicts_and_lists_match_pykx() -> None:
    table = sample_qtable()
    pandas = kx.deserialize(codec.encode(table)).pd()
    assert list(pandas.columns) == ["time", "sym", "price", "size", "note"]
    assert pandas["sym"].tolist() == ["AAPL", ""]
    assert pandas["time"][0] == np.datetime64("2024-01-02T09:30:00.000000001")
    theirs_msg = kx.serialize(kx.deserialize(codec.encode(table))).copy()
    assert codec.encode(table) == theirs_msg
    decoded = codec.decode(theirs_msg)[1]
    assert isinstance(decoded, t.QTable) and decoded.column_names == table.column_names

    keyed = t.KeyedTable(t.QTable({"sym": table.columns["sym"]}), t.QTable({"px": np.ones(2)}))
    ours = codec.encode(keyed)
    assert type(kx.deserialize(ours)).__name__ == "KeyedTable"
    assert kx.serialize(kx.deserialize(ours)).copy() == ours
    back = codec.decode(ours)[1]
    assert isinstance(back, t.KeyedTable) and list(back.keys.columns) == ["sym"]

    d = {"a": np.int64(1), "b": "text", "c": [np.float64(1.5), t.Symbol("x")]}
    ours = codec.encode(d)
    assert kx.deserialize(ours).py() == {"a": 1, "b": b"text", "c": [1.5, "x"]}
    decoded_dict = codec.decode(ours)[1]
    assert isinstance(decoded_dict, t.QDict) and decoded_dict.to_dict()["b"] == "text"


def test_big_endian_messages_decode() -> None:
    # A hand-built big-endian message: (1 2i; `ab; 1.5) as a q process on SPARC sends it.
    body = (
        struct.pack(">bBI", 0, 0, 3)
        + struct.pack(">bBIii", t.INT, 0, 2, 1, 2)
        + b"\xf5ab\0"
        + struct.pack(">bd", -t.FLOAT, 1.5)
    )
    message = struct.pack(">BBBBI", 0, 1, 0, 0, 8 + len(body)) + body
    msg_type, value = codec.decode(message)
    assert msg_type == t.SYNC
    assert value[0].tolist() == [1, 2] and value[0].dtype == np.int32
    assert value[1] == "ab" and isinstance(value[1], t.Symbol)
    assert value[2] == 1.5


def test_errors_encode_as_type_minus_128() -> None:
    message = codec.encode(t.QError("boom"), t.RESPONSE)
    assert message[8:] == b"\x80boom\0"
    assert codec.decode(message)[1] == t.QError("boom")


@SETTINGS
@given(
    rows=st.integers(300, 3000),
    seed=st.integers(0, 2**32 - 1),
)
def test_compressed_messages_decode_and_kdb_accepts_ours(rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = t.QTable(
        {
            "sym": np.array(rng.choice(["AAPL", "MSFT", "IBM"], rows), dtype=object),
            "size": rng.integers(0, 50, rows),
            "px": np.round(rng.random(rows), 1),
        }
    )
    plain = codec.encode(table)
    packed = codec.encode(table, compress=True)
    assert packed[2] == 1 and len(packed) <= len(plain) // 2
    assert decompress(packed) == plain
    # kdb+'s own decompressor (d9 inside PyKX) reads our compressed message.
    assert kx.serialize(kx.deserialize(packed)).copy() == plain
    assert codec.encode(codec.decode(packed)[1]) == plain


def test_incompressible_message_is_sent_plain() -> None:
    noise = np.random.default_rng(1).integers(I64_MIN, I64_MAX, 1000)
    assert compress(codec.encode(noise)) is None
    assert codec.encode(noise, compress=True)[2] == 0


def test_timestamps_beyond_numpy_range_saturate_to_infinity() -> None:
    wire = [I64_MAX - 1, I64_MIN + 2]  # year ~2292, and ~1707
    decoded = codec.decode(kx.serialize(pykx_vector(t.TIMESTAMP, wire)).copy())[1]
    assert decoded.view(np.int64).tolist() == [t.NP_INF, I64_MIN + 2 + TS_OFF]
    early = np.array([I64_MIN + 5], dtype=np.int64).view("M8[ns]")
    assert kx.deserialize(codec.encode(early)).np(raw=True).tolist() == [-I64_MAX]


@pytest.mark.parametrize(
    "message",
    [
        b"\x01\x00\x00\x00\x10\x00\x00\x00\x07\x00\xff\xff\xff\x7f\x00\x00",  # count too big
        b"\x01\x00\x00\x00\x0b\x00\x00\x00\x0b\x00\x01",  # truncated symbol vector
        b"\x01\x00\x00\x00\x0a\x00\x00\x00\x70\x00",  # unknown type 112
        b"\x07\x00\x00\x00\x0a\x00\x00\x00\xf9\x00",  # bad endianness byte
    ],
)
def test_malformed_messages_raise_protocol_errors(message: bytes) -> None:
    with pytest.raises(t.QProtocolError):
        codec.decode(message)


def test_deeply_nested_list_is_a_protocol_error() -> None:
    body = b"\x00\x00\x01\x00\x00\x00" * 5000 + b"\x65\x00"
    message = struct.pack("<BBBBI", 1, 0, 0, 0, 8 + len(body)) + body
    with pytest.raises(t.QProtocolError):
        codec.decode(message)
