"""Inputs the fuzzers (``scripts/fuzz.py``) found crashing a parser, each now refused with
the parser's own typed error. One test per crash, holding its (minimised) reproducer."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
import zmq
from support.harness import start_tp

from qipc import codec
from qipc.types import QProtocolError
from tickdb.schema import default_schemas
from tickerplant.ingest import BatchValidator, IngestError, encode_stream
from tickerplant.onerow import OneRowDecoder
from tickerplant.protocol import ACK, U64, encode_upd
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
