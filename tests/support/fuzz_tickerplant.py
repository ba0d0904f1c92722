"""Fuzz targets of the tickerplant's parsers: frames, records, topics, batches, the journal.

A publisher controls an UPD frame and its Arrow payload, a subscriber its topic; a journal
file may be cut or corrupted on disk. Each must end in a value or the module's own error
(``ProtocolError``, ``IngestError``, ``JournalCorrupt``, a ``ScanResult`` that says what is
wrong), never another exception; and what is accepted must hold what it claims.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from support.fuzz_core import Reader, Target, pack_parts, unpack_parts
from tickdb.schema import default_schemas
from tickerplant import journal, payload_columns, payload_rows, protocol, recovery
from tickerplant.checksum import crc32
from tickerplant.dedup import PublisherLedger
from tickerplant.ingest import BatchValidator, IngestError, Validated, encode_stream
from tickerplant.onerow import OneRowDecoder
from tickerplant.protocol import ProtocolError
from tickerplant.splice import join

SCHEMAS = default_schemas()
TABLES = sorted(SCHEMAS)
TRADE = SCHEMAS["trade"]
NOW_NS = 1_704_186_000_000_000_000
_validator: BatchValidator | None = None


def validator() -> BatchValidator:
    global _validator
    if _validator is None:
        _validator = BatchValidator(SCHEMAS, 1 << 20)
    return _validator


def with_checksums(blob: bytes) -> bytes:
    """``blob`` read as records with each checksum made right (the length decides where a
    record ends), so the fuzzer's edits reach the bodies instead of the checksum test."""
    out = bytearray(blob)
    pos = 0
    while pos + protocol.RECORD_HEADER.size <= len(out):
        length, _ = protocol.RECORD_HEADER.unpack_from(out, pos)
        start = pos + protocol.RECORD_HEADER.size
        body = bytes(out[start : start + length])
        protocol.RECORD_HEADER.pack_into(out, pos, length, crc32(body))
        pos = start + length
    return bytes(out)


# -- frames, records, topics ----------------------------------------------------------------


def fuzz_frames(data: bytes) -> None:
    for frame in (data, protocol.UPD + data):
        with contextlib.suppress(ProtocolError):
            protocol.decode_upd(frame)
    with contextlib.suppress(ProtocolError):
        protocol.parse_topic(data)
    for blob, verify in ((data, True), (with_checksums(data), True), (data, False)):
        try:
            for record in protocol.iter_records(blob, verify=verify):
                assert isinstance(record.table, str)
        except ProtocolError:
            pass


def fuzz_record_round_trip(data: bytes) -> None:
    """A record made by ``record_parts`` from any fields reads back as those fields."""
    r = Reader(data)
    kind, seq, ts = r.uint(1), r.uint(8), r.uint(8) - (1 << 63)
    table = r.take(r.uint(1) % 32).decode("utf-8", "replace")
    origins = [(r.take(16).ljust(16, b"\0"), r.uint(8)) for _ in range(r.uint(1) % 4)]
    payload = r.rest()
    head, body = protocol.record_parts(kind, seq, ts, table, origins, payload)
    blob = head + bytes(body)
    (record,) = protocol.iter_records(blob)
    assert protocol.peek_seq(blob) == seq
    assert (record.kind, record.seq, record.ts_recv, record.table) == (kind, seq, ts, table)
    assert record.origins == tuple(origins) and bytes(record.payload) == payload


def topic_seeds() -> list[bytes]:
    return [
        protocol.topic_for(),
        protocol.topic_for(["trade", "quote"], syms=["AAPL", "MSFT"]),
        protocol.topic_for(["trade"], accounts=["A"]),
        protocol.encode_upd(b"p" * 16, 3, 1, b"trade", b"payload"),
        protocol.encode_record(protocol.KIND_EOD, 5, 7, "", [], b"2024-01-02"),
        protocol.encode_record(
            protocol.KIND_UPD, 6, 8, "trade", [(b"q" * 16, 2)], one_row_payload(1, "A", 1.0, 1)
        ),
    ]


def round_trip_seeds() -> list[bytes]:
    return [bytes(range(64)), b"\x01" + b"\x00" * 17 + b"\x05trade\x01" + b"x" * 24]


# -- batches --------------------------------------------------------------------------------


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


def _check_validated(table: str, validated: Validated) -> pa.Table:
    """What validation accepted is a canonical stream of the table's exact schema, holding
    the rows it says."""
    read = ipc.open_stream(pa.py_buffer(validated.payload)).read_all()
    read.validate(full=True)
    assert read.schema.equals(SCHEMAS[table].arrow, check_metadata=True), read.schema
    assert read.num_rows == validated.num_rows
    rows = validated.rows
    rows_table = rows if isinstance(rows, pa.Table) else pa.Table.from_batches([rows])
    assert _same(read, rows_table), "journaled bytes differ from the rows taken"
    return read


def _same(a: pa.Table | pa.RecordBatch, b: pa.Table | pa.RecordBatch) -> bool:
    """Equal schemas and rows, NaN included (a corrupted float may well become one)."""
    return a.schema.equals(b.schema) and repr(a.to_pylist()) == repr(b.to_pylist())


def fuzz_ingest(data: bytes) -> None:
    """One published payload for the table named by the first byte."""
    table = TABLES[data[0] % len(TABLES)] if data else "trade"
    try:
        validated = validator().validate(table, data[1:], NOW_NS)
    except IngestError:
        return
    _check_validated(table, validated)


def fuzz_ingest_run(data: bytes) -> None:
    """Several trade payloads taken as one run (the tickerplant's fast path): a run it
    accepts is what the payloads give one at a time, each accepted on its own."""
    spans: list[memoryview] = []
    pieces = []
    timed: bool | None = None
    for payload in unpack_parts(data, limit=64):
        piece = validator().spliceable(b"trade", memoryview(payload))
        if piece is None or (timed is not None and piece[0] != timed):
            continue
        timed = piece[0]
        spans.append(piece[1])
        pieces.append(payload)
    if timed is None or len(spans) < 2:
        return
    run = validator().validate_run("trade", timed, spans, NOW_NS)
    if run is None:
        return
    read = _check_validated("trade", run)
    one_by_one = [
        _check_validated("trade", validator().validate("trade", p, NOW_NS)) for p in pieces
    ]
    assert _same(read, pa.concat_tables(one_by_one)), "the run differs from its pieces"


def fuzz_payload_columns(data: bytes) -> None:
    """A record's payload read without pyarrow. In C (``payload_columns``): what it reads,
    pyarrow reads alike (it reads only what matches, word for word, a layout learned from
    a batch pyarrow validated); what it does not, it leaves (None). The one-row reader in
    Python (``payload_rows``) checks the numbers it uses, not the whole flatbuffer (it
    reads the tickerplant's validated records): it reads or raises one of the errors its
    caller turns into pyarrow's reading, nothing else."""
    got = payload_columns.read(data)
    if got is not None:
        _same_as_pyarrow(data, got)
    with contextlib.suppress(
        payload_rows._Fallback,
        struct.error,
        UnicodeDecodeError,
        IndexError,
        ValueError,
        pa.ArrowException,
        OSError,
    ):
        payload_rows._read(data)


def _same_as_pyarrow(data: bytes, got: tuple[list[str], list[list[object]]]) -> None:
    table = ipc.open_stream(pa.py_buffer(data)).read_all()
    table.validate(full=True)
    expected = [
        (c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c).to_pylist()
        for c in table.columns
    ]
    assert got[0] == table.column_names, "column names differ"
    assert repr(got[1]) == repr(expected), "values differ from pyarrow's"


def payload_columns_seeds() -> list[bytes]:
    order = SCHEMAS["order"].arrow
    rows: list[dict[str, int | str | None]] = [
        {name: (1 if order.field(name).type != pa.string() else f"v{k}") for name in order.names}
        for k in range(3)
    ]
    rows[1]["price"] = None
    return [
        encode_stream(pa.Table.from_pylist(rows[:1], schema=order), order),
        encode_stream(pa.Table.from_pylist(rows, schema=order), order),
        one_row_payload(*_rows()[0]),
    ]


def fuzz_onerow(data: bytes) -> None:
    """One-row batch messages (no schema, no end marker) decoded together: what the
    decoder accepts, pyarrow's reader reads as the same rows."""
    spans = [memoryview(p) for p in unpack_parts(data, limit=64)]
    decoded = OneRowDecoder(TRADE.arrow).decode(spans, [len(s) for s in spans])
    if decoded is None:
        return
    prefix = TRADE.arrow.serialize().to_pybytes()
    expected = ipc.open_stream(pa.py_buffer(join(prefix, spans))).read_all()
    expected.validate(full=True)
    assert _same(decoded, expected), "the one-row decoder differs from pyarrow's reader"


def _rows() -> list[tuple[int, str | None, float | None, int | None]]:
    return [
        (i, ["A", None, "BCD", "é"][i % 4], [1.5, None][i % 2], [i, None][i % 3 // 2])
        for i in range(4)
    ]


def ingest_seeds() -> list[bytes]:
    trade = TABLES.index("trade")
    quote = TABLES.index("quote")
    several = pa.Table.from_pylist(
        [{"time": 1, "sym": "A", "price": 1.0, "size": 2}] * 3, schema=TRADE.arrow
    )
    untimed = pa.table({"sym": ["A"], "price": [1.0], "size": [1]})
    reordered = pa.table({"size": [1], "sym": pa.array(["A"]).dictionary_encode(), "price": [2.0]})
    quote_rows = pa.Table.from_pylist(
        [{"time": 1, "sym": "A", "bid": 1.0, "ask": 2.0, "bsize": 1, "asize": 2}],
        schema=SCHEMAS["quote"].arrow,
    )
    # Several rows without ``time``, as the order path sends a burst: stamped by packing.
    untimed_rows = pa.Table.from_pylist(
        [{"sym": "A", "price": 1.0, "size": 2}, {"sym": "BC", "price": 2.0, "size": None}] * 2,
        schema=TRADE.arrow_without_time,
    )
    return [
        bytes([trade]) + one_row_payload(*_rows()[0]),
        bytes([trade]) + encode_stream(several, TRADE.arrow),
        bytes([trade]) + encode_stream(untimed_rows, TRADE.arrow_without_time),
        bytes([trade]) + encode_stream(untimed, untimed.schema),
        bytes([trade]) + encode_stream(reordered, reordered.schema),
        bytes([quote]) + encode_stream(quote_rows, quote_rows.schema),
    ]


def run_seeds() -> list[bytes]:
    payloads = [one_row_payload(*row) for row in _rows()]
    untimed_schema = TRADE.arrow_without_time
    untimed = pa.Table.from_pylist([{"sym": "A", "price": 1.0, "size": 1}], schema=untimed_schema)
    return [
        pack_parts(payloads),
        pack_parts(payloads * 9),  # 36: a run long enough for the one-row decoder
        pack_parts(
            [
                *payloads,
                encode_stream(
                    pa.Table.from_pylist(
                        [
                            dict(zip(["time", "sym", "price", "size"], r, strict=True))
                            for r in _rows()
                        ],
                        schema=TRADE.arrow,
                    ),
                    TRADE.arrow,
                ),
            ]
        ),
        pack_parts([encode_stream(untimed, untimed_schema)] * 3),
        pack_parts(
            [
                encode_stream(untimed, untimed_schema),
                encode_stream(pa.concat_tables([untimed] * 3), untimed_schema),
                encode_stream(untimed, untimed_schema),
            ]
        ),
    ]


def onerow_seeds() -> list[bytes]:
    prefix = len(TRADE.arrow.serialize())
    spans = [one_row_payload(*row)[prefix:-8] for row in _rows()]
    return [pack_parts(spans), pack_parts(spans * 10)]


# -- the journal ----------------------------------------------------------------------------

_journal_dir: Path | None = None


def _journal_file() -> Path:
    global _journal_dir
    if _journal_dir is None:
        _journal_dir = Path(tempfile.mkdtemp(prefix="fuzz-journal-"))
    return _journal_dir / "2024-01-02.tpj"


def fuzz_journal(data: bytes) -> None:
    """A journal file of ``data`` (the first byte: as is, or as records after the magic
    with their checksums made right): scanning reports, reading yields or raises
    JournalCorrupt, and a repaired file scans clean."""
    path = _journal_file()
    shutil.rmtree(path.parent)
    path.parent.mkdir()
    fixed = data[:1] != b"\0"
    path.write_bytes(protocol.JOURNAL_MAGIC + with_checksums(data[1:]) if fixed else data[1:])
    counted = journal.scan_journal(path, count_rows=True)
    assert counted.valid_bytes <= counted.total_bytes
    scan = journal.scan_journal(path)
    with contextlib.suppress(journal.JournalCorrupt):
        recovery._scan(path, PublisherLedger(), repair=False)  # the origins, at start-up
    for live in (False, True):
        try:
            for record in journal.read_journal(path, live=live):
                assert isinstance(record.table, str)
        except journal.JournalCorrupt:
            pass
    if scan.corrupt and fixed:  # a file without the magic is not a journal to repair
        repaired = journal.repair_journal(path)
        assert not repaired.corrupt, repaired.describe()
        assert repaired.records == scan.records


def journal_seeds() -> list[bytes]:
    records = [
        protocol.encode_record(
            protocol.KIND_UPD, seq, seq, "trade", [(b"p" * 16, seq)], one_row_payload(*row)
        )
        for seq, row in enumerate(_rows(), start=1)
    ]
    eod = protocol.encode_record(protocol.KIND_EOD, 5, 5, "", [], b"2024-01-02")
    return [
        b"\x01" + b"".join(records) + eod,
        b"\x01" + records[0],
        b"\x00" + protocol.JOURNAL_MAGIC,
    ]


TOKENS = (
    b"UPD",
    b"upd/",
    b"\0",
    b"*/",
    b"syms=",
    b"shard=",
    b"account=",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    protocol.JOURNAL_MAGIC,
)

TARGETS = [
    Target(
        "tp_frames",
        "tickerplant.protocol decode_upd, parse_topic, iter_records",
        fuzz_frames,
        topic_seeds,
        TOKENS,
    ),
    Target(
        "tp_records",
        "tickerplant.protocol record_parts round trip",
        fuzz_record_round_trip,
        round_trip_seeds,
    ),
    Target(
        "tp_ingest", "tickerplant.ingest BatchValidator.validate", fuzz_ingest, ingest_seeds, TOKENS
    ),
    Target(
        "tp_ingest_run",
        "tickerplant.ingest spliceable + validate_run",
        fuzz_ingest_run,
        run_seeds,
        TOKENS,
    ),
    Target(
        "tp_onerow", "tickerplant.onerow OneRowDecoder.decode", fuzz_onerow, onerow_seeds, TOKENS
    ),
    Target(
        "tp_payload_columns",
        "tickerplant.payload_columns read (C)",
        fuzz_payload_columns,
        payload_columns_seeds,
        TOKENS,
    ),
    Target(
        "tp_journal",
        "tickerplant.journal scan, read, repair of a corrupted file",
        fuzz_journal,
        journal_seeds,
        TOKENS,
    ),
]
