"""Arrow ↔ q tables: every mapped type round-trips through the wire, nulls included."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qipc import codec
from qipc import types as t
from qipc.arrow import Q_METADATA_KEY, column_to_q, q_to_table, table_to_q
from tickdb.schema import default_schemas

I64 = st.integers(-(2**63) + 2, 2**63 - 1)  # the smallest long is q's null
COLUMN_VALUES: dict[str, st.SearchStrategy[object]] = {
    "boolean": st.booleans(),
    "byte": st.integers(0, 255),
    "short": st.integers(-(2**15) + 1, 2**15 - 1),
    "int": st.integers(-(2**31) + 1, 2**31 - 1),
    "long": I64,
    "real": st.floats(width=32, allow_nan=False),
    "float": st.floats(allow_nan=False),
    # Arrow strings are UTF-8: lone surrogates (category Cs) cannot be in one at all.
    "symbol": st.text(
        st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=6,
    ),
    "string": st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
    "timestamp": st.integers(-(2**62), 2**62),
    "date": st.integers(-(2**30), 2**30),
    "timespan": I64,
    "second": st.integers(0, 86_399),
    "time": st.integers(0, 86_399_999),
    "guid": st.binary(min_size=16, max_size=16).filter(lambda b: any(b)),
}
ARROW_TYPES = {
    "boolean": pa.bool_(), "byte": pa.uint8(), "short": pa.int16(), "int": pa.int32(),
    "long": pa.int64(), "real": pa.float32(), "float": pa.float64(), "symbol": pa.string(),
    "string": pa.string(), "timestamp": pa.timestamp("ns"), "date": pa.date32(),
    "timespan": pa.duration("ns"), "second": pa.time32("s"), "time": pa.time32("ms"),
    "guid": pa.binary(16),
}  # fmt: skip
# q has no null for these: an Arrow null comes back as the type's zero.
NO_NULL = {"boolean": False, "byte": 0}


def wire_round_trip(table: pa.Table) -> pa.Table:
    _, decoded = codec.decode(codec.encode(table_to_q(table), t.RESPONSE))
    return q_to_table(decoded)


@pytest.mark.parametrize("qtype", sorted(COLUMN_VALUES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_columns_round_trip_through_q_with_nulls(qtype: str, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.one_of(st.none(), COLUMN_VALUES[qtype]), max_size=12))
    arrow_type = ARROW_TYPES[qtype]
    storage = {pa.date32(): pa.int32(), pa.time32("s"): pa.int32(), pa.time32("ms"): pa.int32()}
    if qtype in ("timestamp", "timespan", "date", "second", "time"):
        column = pa.array(values, storage.get(arrow_type, pa.int64())).cast(arrow_type)
    else:
        column = pa.array(values, arrow_type)
    field = pa.field("c", arrow_type, metadata={Q_METADATA_KEY: qtype})
    back = wire_round_trip(pa.Table.from_arrays([column], schema=pa.schema([field])))
    assert back.schema.field("c").metadata[Q_METADATA_KEY] == qtype.encode()
    expected = column
    if qtype in NO_NULL:
        expected = column.fill_null(NO_NULL[qtype])
    elif qtype == "string":
        expected = column.fill_null("")  # q strings have no null: the empty string
    assert back.column("c").combine_chunks().equals(expected)


def test_tickdb_schemas_keep_symbol_and_string_apart() -> None:
    schema = default_schemas()["fill"].arrow
    row = {
        "time": [dt.datetime(2024, 3, 1, 9, 30)],
        "sym": ["AAPL"],
        "account": ["a1"],
        "strategy": ["s1"],
        "side": ["buy"],
        "qty": [10],
        "price": [1.5],
        "exec_id": ["e-1"],
        "order_id": ["o-1"],
        "clordid": ["c-1"],
        "liquidity": ["maker"],
        "venue": ["0/1"],
        "in_seq": [7],
    }
    table = pa.Table.from_pydict(row, schema=schema)
    q = table_to_q(table)
    assert q.columns["sym"].dtype == object  # a symbol vector
    assert q.columns["order_id"] == ["o-1"]  # a list of char vectors
    body = codec.encode_body(q)
    assert b"\x0b\x00\x01\x00\x00\x00AAPL\x00" in body
    assert b"\x0a\x00\x03\x00\x00\x00o-1" in body
    back = wire_round_trip(table)
    assert back.equals(table.cast(back.schema))
    assert [f.metadata for f in back.schema] == [f.metadata for f in schema]


def test_timestamps_shift_to_the_2000_epoch_and_nulls_become_q_nulls() -> None:
    table = pa.table(
        {
            "time": pa.array([0, None], pa.timestamp("ns", tz="UTC")),
            "size": pa.array([None, 5], pa.int64()),
            "px": pa.array([None, 1.0], pa.float64()),
            "sym": pa.array(["a", None]),
        }
    )
    body = codec.encode_body(table_to_q(table))
    epoch_shift = (-946_684_800_000_000_000).to_bytes(8, "little", signed=True)
    assert epoch_shift + (-(2**63)).to_bytes(8, "little", signed=True) in body
    q = table_to_q(table)
    assert q.columns["size"][0] == -(2**63)
    assert np.isnan(q.columns["px"][0])
    assert q.columns["sym"].tolist() == ["a", ""]
    back = q_to_table(q)
    assert back.column("size").null_count == 1 and back.column("sym").null_count == 1


def test_month_minute_and_keyed_tables_convert() -> None:
    months = np.array(["2024-03", "NaT"], dtype="M8[M]")
    minutes = np.array([90, "NaT"], dtype="m8[m]")
    keyed = t.KeyedTable(
        t.QTable({"sym": np.array(["a", "b"], dtype=object)}),
        t.QTable({"month": months, "minute": minutes}),
    )
    table = q_to_table(keyed)
    assert table.column_names == ["sym", "month", "minute"]
    assert table.column("month").to_pylist() == [dt.date(2024, 3, 1), None]
    assert table.column("minute").to_pylist() == [dt.time(1, 30), None]
    q = table_to_q(table)
    assert q.columns["month"].dtype == np.dtype("M8[M]")
    assert q.columns["minute"].view(np.int64).tolist() == [90, t.NAT]


def test_arrow_types_without_metadata_get_defaults() -> None:
    table = pa.table({"s": pa.array(["x"]).dictionary_encode(), "b": pa.array([b"ab"])})
    q = table_to_q(table)
    assert q.columns["s"].tolist() == ["x"] and q.columns["b"] == ["ab"]
    with pytest.raises(TypeError):
        column_to_q(pa.array([1]), "nonsense")


def test_a_million_row_table_round_trips() -> None:
    # Its speed is measured by scripts/bench_qipc_codec.py, not asserted here.
    n = 1_000_000
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "time": pa.array(np.arange(n, dtype=np.int64)).cast(pa.timestamp("ns")),
            "sym": pa.array(rng.choice(["AAPL", "MSFT", "IBM", "GOOG"], n)),
            "price": rng.random(n),
            "size": rng.integers(0, 1000, n),
        }
    )
    q = table_to_q(table)
    message = codec.encode(q)
    assert len(codec.decode(message)[1]) == n
