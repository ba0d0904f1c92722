"""Runs: small messages that queued up together are validated together and taken as one.

The splicing and one-row decoding are checked against pyarrow's own reader on generated
rows (nulls, empty and non-ASCII strings) and on corrupted messages: whatever the fast
path accepts, the reader must accept and read identically. The tickerplant's handling of
a run (one record; a bad message refused on its own while the rest go through in order)
is checked on a real ``Tickerplant`` driven one turn at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickdb.config import load_config
from tickdb.schema import default_schemas
from tickerplant.ingest import encode_stream
from tickerplant.journal import read_journal
from tickerplant.onerow import OneRowDecoder
from tickerplant.protocol import ERR, encode_upd
from tickerplant.publisher_ids import public_id
from tickerplant.server import Tickerplant
from tickerplant.splice import batch_span, join

TRADE = default_schemas()["trade"]
PREFIX = TRADE.arrow.serialize().to_pybytes()
UNTIMED_PREFIX = TRADE.arrow_without_time.serialize().to_pybytes()

row = st.tuples(
    st.integers(0, 2**62),
    st.one_of(st.none(), st.text(max_size=6)),
    st.one_of(st.none(), st.floats(allow_nan=False)),
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
)


def one_row_payload(time: int, sym: str | None, price: float | None, size: int | None) -> bytes:
    table = pa.table(
        {
            "time": pa.array([time], pa.int64()).cast(pa.timestamp("ns")),
            "sym": pa.array([sym], pa.string()),
            "price": pa.array([price], pa.float64()),
            "size": pa.array([size], pa.int64()),
        },
        schema=TRADE.arrow,
    )
    return encode_stream(table, TRADE.arrow)


def spans_of(payloads: list[bytes]) -> list[memoryview]:
    spans = [batch_span(memoryview(p), len(PREFIX)) for p in payloads]
    assert all(s is not None for s in spans)
    return spans  # type: ignore[return-value]


def same_rows(decoded: pa.RecordBatch, expected: pa.Table) -> bool:
    """Equal rows, NaN included (a corrupted float may well become one)."""
    return decoded.schema.equals(expected.schema) and repr(decoded.to_pylist()) == repr(
        expected.to_pylist()
    )


def read_with_pyarrow(spans: list[memoryview]) -> pa.Table:
    return ipc.open_stream(pa.py_buffer(join(PREFIX, spans))).read_all()


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=1, max_size=40))
def test_one_row_decoder_reads_what_pyarrow_reads(rows: list[tuple]) -> None:
    spans = spans_of([one_row_payload(*r) for r in rows])
    decoded = OneRowDecoder(TRADE.arrow).decode(spans, [len(s) for s in spans])
    assert decoded is not None
    assert pa.Table.from_batches([decoded]).equals(read_with_pyarrow(spans).combine_chunks())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(row, min_size=2, max_size=8),
    st.data(),
)
def test_one_row_decoder_never_accepts_what_pyarrow_would_not(rows: list[tuple], data) -> None:  # type: ignore[no-untyped-def]
    payloads = [bytearray(one_row_payload(*r)) for r in rows]
    victim = data.draw(st.integers(0, len(payloads) - 1))
    at = data.draw(st.integers(len(PREFIX), len(payloads[victim]) - 1))
    payloads[victim][at] ^= data.draw(st.integers(1, 255))
    spans = [memoryview(bytes(p))[len(PREFIX) : -8] for p in payloads]
    decoded = OneRowDecoder(TRADE.arrow).decode(spans, [len(s) for s in spans])
    if decoded is None:
        return
    # Accepted: so pyarrow must read the very same rows from the same bytes.
    expected = read_with_pyarrow(spans)
    expected.validate(full=True)
    assert same_rows(decoded, expected)


@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_one_row_decoder_checked_against_every_single_byte_corruption(flip: int) -> None:
    good = [one_row_payload(i, ["A", None, "BCD"][i % 3], 1.0, i) for i in range(3)]
    decoder = OneRowDecoder(TRADE.arrow)
    for at in range(len(PREFIX), len(good[1]) - 8):
        corrupt = bytearray(good[1])
        corrupt[at] ^= flip
        spans = [memoryview(p)[len(PREFIX) : -8] for p in (good[0], bytes(corrupt), good[2])]
        decoded = decoder.decode(spans, [len(s) for s in spans])
        if decoded is None:
            continue
        try:
            expected = read_with_pyarrow(spans)
            expected.validate(full=True)
        except (pa.ArrowInvalid, OSError) as exc:
            raise AssertionError(f"byte {at} ^ {flip:#x} accepted, pyarrow says: {exc}") from None
        assert same_rows(decoded, expected), at


def test_one_row_decoder_refuses_a_message_cut_inside_its_metadata() -> None:
    good = [one_row_payload(i, "A", 1.0, i) for i in range(40)]
    spans = [memoryview(p)[len(PREFIX) : -8] for p in good]
    spans[20] = spans[20][:24]  # the next message's bytes now follow where its metadata was
    assert OneRowDecoder(TRADE.arrow).decode(spans, [len(s) for s in spans]) is None


def test_batch_span_refuses_a_batch_split_across_two_messages() -> None:
    whole = memoryview(one_row_payload(1, "A", 1.0, 1))
    span = batch_span(whole, len(PREFIX))
    assert span is not None and len(span) == len(whole) - len(PREFIX) - 8
    cut = len(PREFIX) + 100
    assert batch_span(whole[:cut], len(PREFIX)) is None  # first half
    second_half = memoryview(PREFIX + bytes(whole[cut:]))
    assert batch_span(second_half, len(PREFIX)) is None
    assert batch_span(memoryview(bytes(whole) + b"junk"), len(PREFIX)) is None


# -- the tickerplant's side ------------------------------------------------------------------
def toml_value(value: bool | str) -> str:
    return str(value).lower() if isinstance(value, bool) else f'"{value}"'


@pytest.fixture
def make_tp(tmp_path: Path, rowpack_impl: str) -> Iterator:
    """Tickerplants in this process, with the C row packer and with its fallback."""
    made: list[Tickerplant] = []

    def make(**tickerplant: bool | str) -> Tickerplant:
        lines = [
            "[tickerplant]",
            'address = "tcp://127.0.0.1:0"',
            'publish_address = "tcp://127.0.0.1:0"',
            'replay_address = "tcp://127.0.0.1:0"',
            "kdb_port = 0",
            *(f"{k} = {toml_value(v)}" for k, v in tickerplant.items()),
        ]
        config_path = tmp_path / f"tp{len(made)}.toml"
        config_path.write_text("\n".join(lines) + "\n")
        tp = Tickerplant(load_config(config_path, data_dir=tmp_path / f"data{len(made)}"))
        made.append(tp)
        return tp

    yield make
    for tp in made:
        tp.replay.start()  # _shutdown stops it
        tp._shutdown()


def one_turn(tp: Tickerplant, frames: list[list[bytes]]) -> None:
    """What one turn of the loop does with these messages, without the sockets' timing."""
    for frame in frames:
        tp._handle(frame)
    tp.runs.end()
    tp._commit()


def journaled(tp: Tickerplant) -> list:
    tp.journal.flush()
    return [r for r in read_journal(tp.journal.path)]


def frames_for(payloads: list[bytes], publisher: bytes, first_batch: int = 1) -> list[list[bytes]]:
    return [
        [b"peer", encode_upd(publisher, first_batch + i, first_batch, b"trade", p)]
        for i, p in enumerate(payloads)
    ]


def test_messages_queued_together_become_one_record(make_tp) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp()
    rows = [(i, f"S{i % 7}", i / 2 if i % 5 else None, i) for i in range(300)]
    one_turn(tp, frames_for([one_row_payload(*r) for r in rows], os.urandom(16)))
    records = journaled(tp)
    assert len(records) == 1
    table = records[0].to_table()
    assert table.column("size").to_pylist() == list(range(300))
    assert table.column("sym").to_pylist() == [r[1] for r in rows]
    assert table.column("price").to_pylist() == [r[2] for r in rows]
    assert len(records[0].origins) == 1 and records[0].origins[0][1] == 300
    assert tp.counters.messages == 300 and tp.counters.rows == 300


def test_without_coalescing_each_message_is_its_own_record(make_tp) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp(coalesce_queued=False)
    one_turn(tp, frames_for([one_row_payload(i, "A", 1.0, i) for i in range(20)], b"p" * 16))
    assert [r.to_table().column("size").to_pylist() for r in journaled(tp)] == [
        [i] for i in range(20)
    ]


def test_a_bad_message_in_a_run_is_refused_alone_and_the_rest_keep_their_order(make_tp) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp()
    payloads = [one_row_payload(i, "A", 1.0, i) for i in range(40)]
    torn = payloads[17][: len(payloads[17]) - 20]  # a batch cut short
    payloads[17] = torn
    refused: list[list[bytes]] = []
    tp.ingest.send_multipart = refused.append  # type: ignore[method-assign]
    one_turn(tp, frames_for(payloads, b"q" * 16))
    errors = [f for f in refused if f[1] == ERR]
    assert len(errors) == 1 and int.from_bytes(errors[0][2], "little") == 18
    sizes = [s for r in journaled(tp) for s in r.to_table().column("size").to_pylist()]
    assert sizes == [i for i in range(40) if i != 17]
    assert tp.counters.rejected == 1


@pytest.mark.parametrize("count", [1, 5, 40])  # alone, a short run (packed), a long one
@pytest.mark.parametrize("timed", [True, False])
def test_a_row_without_a_sym_is_refused_alone_in_any_run(make_tp, count: int, timed: bool) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp()
    bad = {count // 2, count - 1}
    syms = [None if i in bad else f"S{i}" for i in range(count)]
    payloads = [
        one_row_payload(i, sym, 1.0, i) if timed else untimed_payload(i, sym)
        for i, sym in enumerate(syms)
    ]
    replies: list[list[bytes]] = []
    tp.ingest.send_multipart = replies.append  # type: ignore[method-assign]
    one_turn(tp, frames_for(payloads, b"n" * 16))
    errors = [f for f in replies if f[1] == ERR]
    assert sorted(int.from_bytes(f[2], "little") for f in errors) == sorted(i + 1 for i in bad)
    assert all(b"sym is null in 1 of 1 row(s)" in f[3] for f in errors)
    rows = [row for r in journaled(tp) for row in r.to_table().to_pylist()]
    assert [row["size"] for row in rows] == [i for i in range(count) if i not in bad]
    assert all(row["sym"] is not None for row in rows)
    assert tp.counters.errors_by_reason == {"null_sym": len(bad)}
    assert tp.ledger.ack_level(public_id(b"n" * 16)) == count  # refused batches count as handled


def test_rows_without_time_are_stamped_in_a_run(make_tp) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp()
    untimed = [
        encode_stream(
            pa.table({"sym": ["A"], "price": [1.0], "size": pa.array([i], pa.int64())}),
            TRADE.arrow_without_time,
        )
        for i in range(50)
    ]
    assert all(p.startswith(UNTIMED_PREFIX) for p in untimed)
    one_turn(tp, frames_for(untimed, b"u" * 16))
    (record,) = journaled(tp)
    table = record.to_table()
    assert table.schema.equals(TRADE.arrow)
    assert table.column("size").to_pylist() == list(range(50))
    assert table.column("time").null_count == 0
    assert len(set(table.column("time").to_pylist())) == 1  # stamped with one receive time


def untimed_payload(size: int, sym: str | None = "A", price: float | None = 1.0) -> bytes:
    table = pa.table(
        {
            "sym": pa.array([sym], pa.string()),
            "price": pa.array([price], pa.float64()),
            "size": [size],
        }
    )
    return encode_stream(table, TRADE.arrow_without_time)


@pytest.mark.parametrize("timed", [True, False])
def test_a_short_run_is_one_record_of_one_batch(make_tp, timed: bool) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp()
    rows = [(i, f"S{i}", None if i == 2 else i / 4, i) for i in range(5)]
    payloads = [one_row_payload(*r) if timed else untimed_payload(r[3], r[1], r[2]) for r in rows]
    one_turn(tp, frames_for(payloads, b"s" * 16))
    (record,) = journaled(tp)
    assert [b.num_rows for b in ipc.open_stream(pa.py_buffer(record.payload))] == [5]
    table = record.to_table()
    assert table.schema.equals(TRADE.arrow)
    assert table.column("sym").to_pylist() == [r[1] for r in rows]
    assert table.column("price").to_pylist() == [r[2] for r in rows]
    assert table.column("size").to_pylist() == list(range(5))
    times = table.column("time").cast(pa.int64()).to_pylist()
    assert times == (list(range(5)) if timed else [record.ts_recv] * 5)
    assert record.origins == ((public_id(b"s" * 16), 5),)  # the secret never shows


def test_a_single_row_is_journaled_as_sent_or_stamped(make_tp) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp(coalesce_queued=False)
    timed = one_row_payload(7, "A", 1.0, 7)
    one_turn(tp, frames_for([timed, untimed_payload(8)], b"t" * 16))
    first, second = journaled(tp)
    assert bytes(first.payload) == timed
    table = second.to_table()
    assert table.column("time").cast(pa.int64()).to_pylist() == [second.ts_recv]
    assert table.column("size").to_pylist() == [8]


def test_the_c_packer_and_its_fallback_journal_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tickerplant.clock import ManualClock
    from tickerplant.rowpack import PURE_PYTHON_ENV, compiled

    if compiled() is None:
        pytest.skip("tickerplant._rowpack is not built")
    # Turns of a few messages of every kind, and long runs of rows (packed in C, decoded
    # by onerow in pure Python).
    turns = [
        [message_of(KINDS[(n * 7 + k) % len(KINDS)], n + k) for k in range(n % 9)]
        for n in range(40)
    ]
    turns += [[message_of(kind, k) for k in range(60)] for kind in ("row", "untimed")]
    journals = []
    for impl in ("c", "python"):
        monkeypatch.setenv(PURE_PYTHON_ENV, "1" if impl == "python" else "0")
        config = tmp_path / f"{impl}.toml"
        config.write_text(
            '[tickerplant]\naddress = "tcp://127.0.0.1:0"\npublish_address = "tcp://127.0.0.1:0"\n'
            'replay_address = "tcp://127.0.0.1:0"\nkdb_port = 0\n'
        )
        clock = ManualClock(1_790_000_000_000_000_000)
        tp = Tickerplant(load_config(config, data_dir=tmp_path / impl), clock=clock)
        tp.ingest.send_multipart = lambda frames: None  # type: ignore[method-assign,assignment]
        batch = 1
        try:
            for turn in turns:
                for table, payload, _ in turn:
                    tp._handle([b"peer", encode_upd(b"j" * 16, batch, batch, table, payload)])
                    batch += 1
                tp._end_turn()
                tp._commit()
                clock.advance(0.001)
            journals.append(tp.journal.path.read_bytes())
        finally:
            tp.replay.start()
            tp._shutdown()
    assert journals[0] == journals[1]
    assert len(journals[0]) > 10_000


def test_batched_mode_joins_big_batches_without_re_encoding_them(make_tp) -> None:  # type: ignore[no-untyped-def]
    tp = make_tp(mode="batched")
    sizes = list(range(5000))
    big = [
        encode_stream(
            pa.table(
                {
                    "time": pa.array([7] * 1000, pa.int64()).cast(pa.timestamp("ns")),
                    "sym": [f"S{i % 13}" for i in range(1000)],
                    "price": [1.5] * 1000,
                    "size": pa.array(sizes[k * 1000 : (k + 1) * 1000], pa.int64()),
                },
                schema=TRADE.arrow,
            ),
            TRADE.arrow,
        )
        for k in range(5)
    ]
    for frame in frames_for(big, b"b" * 16):
        tp._handle(frame)
    tp._flush_pending()
    tp._commit()
    (record,) = journaled(tp)
    batches = list(ipc.open_stream(pa.py_buffer(record.payload)))
    assert [b.num_rows for b in batches] == [1000] * 5  # each batch as it came
    assert record.to_table().column("size").to_pylist() == sizes


KINDS = ["row", "untimed", "multi", "big", "quote", "torn", "unknown_table", "no_sym"]
REFUSED_KINDS = ("torn", "unknown_table", "no_sym")


def message_of(kind: str, i: int) -> tuple[bytes, bytes, list[int]]:
    """(table, payload, sizes of the trade rows it carries if it is good)."""
    if kind == "row":
        return b"trade", one_row_payload(i, f"S{i % 3}", 1.0, i), [i]
    if kind == "untimed":
        table = pa.table({"sym": ["U"], "price": [2.0], "size": pa.array([i], pa.int64())})
        return b"trade", encode_stream(table, TRADE.arrow_without_time), [i]
    if kind in ("multi", "big"):
        n = 3 if kind == "multi" else 700  # 700 rows: too big to join a run
        table = pa.table(
            {
                "time": pa.array([i] * n, pa.int64()).cast(pa.timestamp("ns")),
                "sym": ["M"] * n,
                "price": [3.0] * n,
                "size": pa.array([i] * n, pa.int64()),
            },
            schema=TRADE.arrow,
        )
        return b"trade", encode_stream(table, TRADE.arrow), [i] * n
    if kind == "quote":
        quote = default_schemas()["quote"]
        columns = {
            f.name: pa.array([i if f.name != "sym" else "Q"], pa.int64()).cast(f.type)
            if f.name != "sym"
            else pa.array(["Q"])
            for f in quote.arrow
        }
        return b"quote", encode_stream(pa.table(columns, schema=quote.arrow), quote.arrow), []
    if kind == "torn":
        good = one_row_payload(i, "T", 1.0, i)
        return b"trade", good[: len(good) - 24], []
    if kind == "no_sym":  # a row without a sym, in each of the shapes a run can take
        if i % 3 == 0:
            return b"trade", one_row_payload(i, None, 1.0, i), []
        if i % 3 == 1:
            return b"trade", untimed_payload(i, None), []
        table = pa.table(
            {
                "time": pa.array([i] * 3, pa.int64()).cast(pa.timestamp("ns")),
                "sym": pa.array(["M", None, "M"], pa.string()),
                "price": [3.0] * 3,
                "size": pa.array([i] * 3, pa.int64()),
            },
            schema=TRADE.arrow,
        )
        return b"trade", encode_stream(table, TRADE.arrow), []
    return b"nosuchtable", one_row_payload(i, "X", 1.0, i), []


@settings(
    max_examples=40,
    deadline=None,
    # rowpack_impl only sets the environment, the same for every example.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.tuples(st.sampled_from(KINDS), st.booleans()), min_size=1, max_size=60),
    st.sampled_from([("immediate", True), ("immediate", False), ("batched", True)]),
)
def test_any_mix_of_messages_and_turns_journals_every_good_row_once_in_order(
    tmp_path_factory: pytest.TempPathFactory,
    rowpack_impl: str,
    messages: list[tuple[str, bool]],
    mode: tuple,
) -> None:
    """Nothing lost, nothing doubled, nothing reordered, whatever runs the turns make."""
    workdir = tmp_path_factory.mktemp("mix")
    config = workdir / "tp.toml"
    config.write_text(
        "[tickerplant]\n"
        'address = "tcp://127.0.0.1:0"\npublish_address = "tcp://127.0.0.1:0"\n'
        'replay_address = "tcp://127.0.0.1:0"\nkdb_port = 0\n'
        f'mode = "{mode[0]}"\ncoalesce_queued = {str(mode[1]).lower()}\n'
    )
    tp = Tickerplant(load_config(config, data_dir=workdir / "data"))
    replies: list[list[bytes]] = []
    tp.ingest.send_multipart = replies.append  # type: ignore[method-assign]
    expected: list[int] = []
    bad: list[int] = []
    try:
        for n, (kind, turn_ends) in enumerate(messages, start=1):
            table, payload, sizes = message_of(kind, n)
            tp._handle([b"peer", encode_upd(b"m" * 16, n, n, table, payload)])
            expected.extend(sizes)
            if kind in REFUSED_KINDS:
                bad.append(n)
            if turn_ends:
                tp._end_turn()
                if mode[0] == "immediate":
                    tp._commit()
        tp._end_turn()
        if mode[0] == "batched":
            tp._flush_pending()
        tp._commit()
        records = journaled(tp)
        got = [
            size
            for r in records
            if r.table == "trade"
            for size in r.to_table().column("size").to_pylist()
        ]
        assert got == expected
        refused = [int.from_bytes(f[2], "little") for f in replies if f[1] == ERR]
        assert refused == bad
        assert tp.ledger.ack_level(public_id(b"m" * 16)) == len(messages)
        assert tp.counters.rows == len(expected) + sum(k == "quote" for k, _ in messages)
        for r in records:
            assert r.to_table().column("time").null_count == 0
    finally:
        tp.replay.start()
        tp._shutdown()
