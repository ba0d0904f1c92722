"""Inputs the fuzzers (``scripts/fuzz.py``) found crashing a parser, each now refused with
the parser's own typed error. One test per crash, holding its (minimised) reproducer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import zmq
from support.fuzz_fix import order_entry
from support.harness import start_tp

from fix.codec import BadField, Message, decode, fix_time
from fix.session import Session
from fix.session_types import Disconnect, SessionSettings
from qipc import codec
from qipc.types import QProtocolError
from queries.q import TranslationError, translate
from queries.service_protocol import QueryError
from queries.sqlsafety import check_read_only
from tickdb.schema import default_schemas
from tickerplant import recovery
from tickerplant.checksum import crc32
from tickerplant.dedup import PublisherLedger
from tickerplant.ingest import BatchValidator, IngestError, encode_stream
from tickerplant.journal import JournalCorrupt, read_journal, repair_journal, scan_journal
from tickerplant.onerow import OneRowDecoder
from tickerplant.protocol import (
    ACK,
    BODY_PREFIX,
    JOURNAL_MAGIC,
    KIND_UPD,
    RECORD_HEADER,
    U64,
    ProtocolError,
    encode_record,
    encode_upd,
    iter_records,
)
from tickerplant.publisher import Publisher
from tickerplant.splice import END_OF_STREAM
from tickerplant.subscriber import Subscriber, Update


def q_message(body: bytes) -> bytes:
    return b"\x01\x01\x00\x00" + (8 + len(body)).to_bytes(4, "little") + body


def test_qipc_table_whose_column_names_are_not_symbols() -> None:
    # A table (98) over a dictionary (99) keyed by a boolean atom: TypeError before.
    message = q_message(b"\x62\x00\x63\xff\x01\x00\x00\x00\x00\x00\x00")
    with pytest.raises(QProtocolError, match="column names must be a symbol vector"):
        codec.decode(message)
    # Keyed by a string (a char vector): its characters were taken as column names.
    keys = b"\x0a\x00\x01\x00\x00\x00x"
    values = b"\x00\x00\x01\x00\x00\x00\xf9" + (1).to_bytes(8, "little")
    message = q_message(b"\x62\x00\x63" + keys + values)
    with pytest.raises(QProtocolError, match="column names must be a symbol vector"):
        codec.decode(message)


# -- tickerplant ------------------------------------------------------------------------------


def test_tickerplant_takes_empty_arrow_streams_alone_and_in_a_run(tmp_path: Path) -> None:
    """A stream of just the schema and the end marker (pyarrow's for an empty table) made
    the canonical fast path raise EOFError, which stopped the tickerplant's loop; a burst
    of them (a run, for the one-row decoder) did the same."""
    prefix = default_schemas()["trade"].arrow.serialize().to_pybytes()
    proc = start_tp(tmp_path)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        address = proc.info["address"]
        sock.connect(address)
        publisher = os.urandom(16)

        def send(first: int, payloads: list[bytes]) -> None:
            for batch, payload in enumerate(payloads, start=first):
                sock.send(encode_upd(publisher, batch, 1, b"trade", payload))
            acked = 0
            while acked < first + len(payloads) - 1:
                assert sock.poll(10_000), "no ACK: the tickerplant stopped"
                reply = sock.recv_multipart()
                assert reply[0] == ACK, reply
                acked = U64.unpack(reply[1])[0]

        send(1, [prefix + END_OF_STREAM])
        send(2, [prefix + END_OF_STREAM * 2] * 40)
        sub = Subscriber(address, tables=["trade"])
        with Publisher(address) as pub:
            pub.publish("trade", {"sym": "IBM", "price": 2.0, "size": 7})
        got = sub.poll(5)
        assert isinstance(got, Update) and got.data.column("size").to_pylist() == [7]
        sub.close()
    finally:
        sock.close(0)
        ctx.term()
        proc.stop()


def test_ingest_refuses_a_column_name_that_is_not_utf8() -> None:
    validator = BatchValidator(default_schemas(), 1 << 20)
    good = pa.table({"sym": ["A"], "price": [1.0], "size": [1]})
    payload = encode_stream(good, good.schema).replace(b"price", b"pr\x87ce")
    with pytest.raises(IngestError, match="column name is not UTF-8"):
        validator.validate("trade", payload, 0)  # UnicodeDecodeError before


def test_one_row_decoder_skips_a_run_that_starts_with_an_end_marker() -> None:
    trade = default_schemas()["trade"]
    one = pa.Table.from_pylist(
        [{"time": 1, "sym": "A", "price": 1.0, "size": 1}], schema=trade.arrow
    )
    batch = memoryview(encode_stream(one, trade.arrow))[len(trade.arrow.serialize()) : -8]
    spans = [memoryview(END_OF_STREAM), batch]
    assert OneRowDecoder(trade.arrow).decode(spans, [8, len(batch)]) is None  # EOFError before


def record(name_len: int, n_origins: int, rest: bytes, seq: int = 1) -> bytes:
    body = BODY_PREFIX.pack(KIND_UPD, 1, name_len, n_origins, seq, 0) + rest
    return RECORD_HEADER.pack(len(body), crc32(body)) + body


# name length, origin count, what follows the prefix; the error
MALFORMED = {
    "origins past the body": (0, 1000, b"x" * 8, "run past"),  # struct.error before
    "name past the body": (300, 0, b"trade", "run past"),  # a short name before
    "name not UTF-8": (1, 0, b"\xff", "not UTF-8"),  # UnicodeDecodeError before
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_records_are_protocol_errors(case: str) -> None:
    name_len, n_origins, rest, message = MALFORMED[case]
    with pytest.raises(ProtocolError, match=message):
        list(iter_records(record(name_len, n_origins, rest)))


def test_a_record_shorter_than_its_prefix_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="shorter than its prefix"):  # struct.error before
        list(iter_records(RECORD_HEADER.pack(4, crc32(b"abcd")) + b"abcd"))


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_journal_with_a_malformed_record_is_corrupt_there(tmp_path: Path, case: str) -> None:
    """Checksummed but malformed records (only a bug writes them) are where the journal
    stops being valid: scan and read say so, recovery refuses, repair cuts there."""
    good = encode_record(KIND_UPD, 1, 0, "trade", [(b"p" * 16, 1)], b"payload")
    name_len, n_origins, rest, _ = MALFORMED[case]
    bad = record(name_len, n_origins, rest, seq=2)
    path = tmp_path / "2024-01-02.tpj"
    path.write_bytes(JOURNAL_MAGIC + good + bad)
    with pytest.raises(JournalCorrupt, match="malformed record"):
        list(read_journal(path))
    if case != "name not UTF-8":  # the scan checks lengths only: it runs at every start
        scan = scan_journal(path)
        assert scan.corrupt and "malformed record" in (scan.error or "")
        assert scan.records == 1 and scan.valid_bytes == len(JOURNAL_MAGIC) + len(good)
        with pytest.raises(JournalCorrupt):
            recovery._scan(path, PublisherLedger(), repair=False)  # struct.error before
        repaired = repair_journal(path)
        assert not repaired.corrupt and repaired.records == 1


def test_journal_row_count_reports_a_payload_that_is_not_arrow(tmp_path: Path) -> None:
    path = tmp_path / "2024-01-02.tpj"
    path.write_bytes(JOURNAL_MAGIC + encode_record(KIND_UPD, 1, 0, "trade", [], b"garbage"))
    scan = scan_journal(path, count_rows=True)  # OSError before
    assert scan.corrupt and "holds no readable rows" in (scan.error or "")
    assert scan.records == 0 and not scan_journal(path).corrupt


# -- q ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["#msw", "lj[trade]", "xasc[`sym]", "xkey[`sym;trade;trade]"])
def test_q_table_function_with_another_argument_count(q: str) -> None:
    # ValueError (unpacking) or IndexError before; extra arguments were ignored.
    with pytest.raises(TranslationError, match="takes two arguments"):
        translate(q, default_schemas())


def dictionary_message(table: pa.Table) -> bytes:
    """The first dictionary batch of ``table``'s stream."""
    data = pa.py_buffer(encode_stream(table, table.schema))
    pos = 0
    while True:
        message = ipc.read_message(data.slice(pos))
        size = 8 + message.metadata.size + message.body.size
        if message.type == "dictionary":
            return data.slice(pos, size).to_pybytes()
        pos += size


def test_ingest_refuses_a_dictionary_the_schema_has_no_field_for() -> None:
    schema = default_schemas()["trade"].arrow
    coded = pa.table({"sym": pa.array(["A"]).dictionary_encode()})
    payload = schema.serialize().to_pybytes() + dictionary_message(coded) + END_OF_STREAM
    validator = BatchValidator(default_schemas(), 1 << 20)
    with pytest.raises(IngestError, match="not a valid Arrow IPC stream"):  # ArrowKeyError before
        validator.validate("trade", payload, 0)


def test_journal_row_count_reports_a_payload_with_a_bad_flatbuffer(tmp_path: Path) -> None:
    payload = b"\xff\xff\xff\xff\x08\x00\x00\x00" + b"\x01" * 8  # a plain OSError from pyarrow
    path = tmp_path / "2024-01-02.tpj"
    path.write_bytes(JOURNAL_MAGIC + encode_record(KIND_UPD, 1, 0, "trade", [], payload))
    scan = scan_journal(path, count_rows=True)
    assert scan.corrupt and "holds no readable rows" in (scan.error or "")


# -- FIX --------------------------------------------------------------------------------------


class Wire:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, data: bytes) -> None:
        self.sent.append(decode(data))

    def close(self) -> None:
        pass


class NoOrders:
    def on_logon(self, session: Session) -> None:
        pass

    def on_logout(self, session: Session) -> None:
        pass

    def on_message(self, session: Session, msg: Message) -> bool:
        return False


def fix_frame(msg_type: str, seq: bytes, *fields: bytes) -> bytes:
    body = b"35=%s\x0149=CLIENT\x0156=TICKDB\x0134=%s\x0152=%s\x01" % (
        msg_type.encode(),
        seq,
        fix_time().encode(),
    )
    body += b"".join(f + b"\x01" for f in fields)
    head = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
    return head + b"10=%03d\x01" % (sum(head) & 255)


@pytest.fixture
def fix_session(tmp_path: Path) -> Iterator[tuple[Session, Wire]]:
    settings = SessionSettings(
        name="s", sender_comp_id="TICKDB", target_comp_id="CLIENT", store_dir=tmp_path
    )
    session = Session(settings, NoOrders(), initiator=False)
    wire = Wire()
    session.attach(wire)
    session.on_frame(fix_frame("A", b"1", b"98=0", b"108=30"))
    assert session.logged_on
    yield session, wire
    session.store.close()


@pytest.mark.parametrize(
    "fields", [(b"7=1", b"16=0=10=237"), (b"7=x", b"16=0"), (b"7=" + b"1" * 5000, b"16=0")]
)
def test_fix_resend_request_with_a_field_that_is_not_an_integer(
    fix_session: tuple[Session, Wire], fields: tuple[bytes, ...]
) -> None:
    session, wire = fix_session
    session.on_frame(fix_frame("2", b"2", *fields))  # ValueError from int() before
    reject = wire.sent[-1]
    assert reject.msg_type == "3" and reject.get(373) == "6" and reject.get(45) == "2"
    assert "is not an integer" in reject.get(58)
    assert session.store.next_target == 3  # its number is used: no resend asked for it


def test_fix_sequence_reset_with_a_new_seq_that_is_not_an_integer(
    fix_session: tuple[Session, Wire],
) -> None:
    session, wire = fix_session
    session.on_frame(fix_frame("4", b"2", b"36=1e3"))
    assert wire.sent[-1].msg_type == "3" and wire.sent[-1].get(371) == "36"


def test_fix_msg_seq_num_of_5000_digits_is_a_logout(fix_session: tuple[Session, Wire]) -> None:
    session, wire = fix_session
    with pytest.raises(Disconnect, match="MsgSeqNum"):  # ValueError from int() before
        session.on_frame(fix_frame("0", b"9" * 5000))
    assert wire.sent[-1].msg_type == "5"


def test_fix_tag_of_5000_digits_is_a_bad_field() -> None:
    with pytest.raises(BadField, match="malformed field"):  # ValueError from int() before
        decode(b"8=FIX.4.4\x01" + b"1" * 5000 + b"=x\x01")


NOT_FINITE = [(b"38=1e400", "38"), (b"38=nan", "38"), (b"44=nan", "44"), (b"44=-inf", "44")]


@pytest.mark.parametrize(("field", "tag"), NOT_FINITE)
def test_fix_order_with_a_quantity_or_price_that_is_not_finite(
    tmp_path: Path, field: bytes, tag: str
) -> None:
    """The gateway's order entry: OverflowError or ValueError (38) escaped before, and a
    NaN or infinite price (44) went on to the router."""
    settings = SessionSettings(
        name="s", sender_comp_id="TICKDB", target_comp_id="CLIENT", store_dir=tmp_path
    )
    session = Session(settings, order_entry(), initiator=False)
    wire = Wire()
    session.attach(wire)
    order = [b"11=c1", b"55=AAPL", b"54=1", b"38=100", b"40=2", b"44=10", b"60=20240102-09:30:00"]
    order = [field if f.startswith(field[:3]) else f for f in order]
    try:
        session.on_frame(fix_frame("A", b"1", b"98=0", b"108=30"))
        session.on_frame(fix_frame("D", b"2", *order))
    finally:
        session.store.close()
    reject = wire.sent[-1]
    assert reject.msg_type == "3" and reject.get(371) == tag, reject


@pytest.mark.parametrize(
    "q",
    [
        "(" * 1000 + "1" + ")" * 1000,
        "select from trade where " + "not " * 1000 + "price>1",
        "select x:" + "1+" * 300 + "1 from trade",  # translation recursed, not the parser
    ],
)
def test_q_nested_too_deeply(q: str) -> None:
    with pytest.raises(TranslationError):  # RecursionError before
        translate(q, default_schemas())


@pytest.mark.parametrize(
    "q",
    [
        "select from trade where time within 09:30 1e",  # the e suffix typed 09:30 as real
        "select from trade where size>" + "1" * 5000,  # int() reads at most 4300 digits
        "select from trade where time>" + "1" * 5000 + "D",
    ],
)
def test_q_malformed_number_literal(q: str) -> None:
    with pytest.raises(TranslationError, match="malformed literal"):  # ValueError before
        translate(q, default_schemas())


# -- SQL --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "select " + "(" * 500 + "1" + ")" * 500,
        "select " + "abs(" * 500 + "1" + ")" * 500,
        "select * from " + "(select * from " * 300 + "trade" + ")" * 300,
    ],
)
def test_sql_nested_deeper_than_the_check_can_parse(sql: str) -> None:
    # DuckDB allows 1000 levels; sqlglot's parser raised RecursionError long before.
    with pytest.raises(QueryError, match="nested too deeply"):
        check_read_only(sql)


@pytest.mark.parametrize(
    "table", ["tradex.csv", "main.parquet", "a.b.csv", "x.csv.gz", "memory.main.json", 'x."CSV"']
)
def test_sql_qualified_table_name_that_duckdb_reads_as_a_file(table: str) -> None:
    # Accepted before: the parts have no path characters, but DuckDB, finding no such table,
    # tried the file "tradex.csv" (the lock-down refused it with a permission error).
    with pytest.raises(QueryError, match="file paths"):
        check_read_only(f"select * from {table}")
    check_read_only("select * from main.trade, information_schema.tables")
