"""The ingest socket reads no frame over its cap (ZeroMQ MAXMSGSIZE), against a real
tickerplant process.

Before the cap, a frame of any announced size was buffered in full before the tickerplant
saw it (300 MiB, then refused for exceeding ``max_message_bytes``). Here
``max_message_bytes`` is 1 MiB, so the cap is 1 MiB plus an UPD's header and table name;
a client announcing 300 MiB is cut off at the frame's header, and while it tries to send
it the tickerplant's peak resident memory may grow by at most ``RSS_GROWTH_CAP`` (before the
cap: it sent all 300 MiB and the peak grew by 600 MiB, the frame and its copy).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import zmq
from support import zmtp_raw
from support.harness import Proc, peak_rss, start_tp, wait_until

from tickerplant.discovery import request
from tickerplant.ingest import encode_stream
from tickerplant.ingest_limits import UPD_OVERHEAD
from tickerplant.protocol import ACK, ERR, HELLO, STATS, encode_upd
from tickerplant.publisher import MessageTooLarge, Publisher
from tickerplant.subscriber import Subscriber, Update

MAX_MESSAGE = 1 << 20
FRAME_CAP = MAX_MESSAGE + UPD_OVERHEAD
ANNOUNCED = 300 << 20  # what the hostile client says its frame holds
RSS_GROWTH_CAP = 64 << 20  # the most the tickerplant's peak memory may grow meanwhile


@pytest.fixture
def tp(tmp_path: Path) -> Iterator[Proc]:
    proc = start_tp(tmp_path, tickerplant={"max_message_bytes": MAX_MESSAGE})
    yield proc
    assert proc.alive(), proc.log()
    proc.stop()


def ask(tp: Proc, tag: bytes) -> dict[str, Any]:
    ctx = zmq.Context()
    try:
        return dict(json.loads(request(ctx, tp.info["address"], [tag], 5)[1]))
    finally:
        ctx.term()


def rows(sub: Subscriber, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = sub.poll(5)
        assert message is not None, f"{len(got)} of {count} rows"
        if isinstance(message, Update):
            got.extend(message.data.to_pylist())
    return got


def test_the_cap_is_derived_from_max_message_bytes(tp: Proc) -> None:
    assert ask(tp, HELLO)["max_frame_bytes"] == FRAME_CAP


def test_a_300_mib_frame_is_cut_off_at_its_header_and_others_carry_on(tp: Proc) -> None:
    sub = Subscriber(tp.info["address"], tables=["trade"])
    pub = Publisher(tp.info["address"])
    pub.publish("trade", sym="A", price=1.0, size=1)
    pub.flush()
    before, memory_before = ask(tp, STATS), peak_rss(tp.popen.pid)

    sent = zmtp_raw.send_oversized(tp.info["address"], ANNOUNCED)
    # What the kernels' socket buffers took before the close is all that went.
    assert sent < RSS_GROWTH_CAP, f"{sent >> 20} MiB went before the connection was closed"
    assert peak_rss(tp.popen.pid) - memory_before < RSS_GROWTH_CAP

    wait_until(
        lambda: ask(tp, STATS)["ingest_disconnects"] > before["ingest_disconnects"],
        what="the closed connection counted",
    )
    wait_until(lambda: "connection(s) closed" in tp.log(), what="the closed connection logged")
    # The publisher that was connected all along was never cut off, and it goes on.
    pub.publish("trade", sym="B", price=2.0, size=2)
    pub.flush()
    assert pub.disconnects == 0
    assert [r["sym"] for r in rows(sub, 2)] == ["A", "B"]
    pub.close()
    sub.close()


def test_over_the_cap_closes_the_connection_and_below_it_an_error_answers(tp: Proc) -> None:
    ctx = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        dealer.connect(tp.info["address"])
        # Over max_message_bytes, under the cap: read, and refused with an error (and an
        # ACK, as every refused batch is handled).
        table = pa.table({"sym": ["A" * (MAX_MESSAGE + 100)], "price": [1.0], "size": [1]})
        dealer.send(encode_upd(os.urandom(16), 1, 1, b"trade", encode_stream(table, table.schema)))
        replies = [dealer.recv_multipart() for _ in range(2) if dealer.poll(5000)]
        assert [r[0] for r in replies] == [ERR, ACK]
        assert b"exceeds max_message_bytes" in replies[0][2]
        # One byte over the cap: the connection is closed, nothing answers.
        dealer.send(bytes(FRAME_CAP + 1))
        assert monitor.poll(5000), "the tickerplant did not close the connection"
        assert not dealer.poll(200)
    finally:
        ctx.destroy(linger=0)
    assert ask(tp, STATS)["ingest_disconnects"] >= 1


def test_the_publisher_refuses_a_batch_over_max_message_bytes_before_sending(tp: Proc) -> None:
    huge = "A" * (MAX_MESSAGE + 1)
    with Publisher(tp.info["address"]) as pub, Publisher(tp.info["address"], batch_ms=20) as buf:
        for publisher in (pub, buf):
            with pytest.raises(MessageTooLarge, match="exceeds the tickerplant's max_message"):
                publisher.publish_ipc("trade", bytes(MAX_MESSAGE + 1))
            with pytest.raises(MessageTooLarge, match="publish fewer rows at once"):
                publisher.publish("trade", sym=huge, price=1.0, size=1)
                publisher.flush()
            publisher.publish("trade", sym="OK", price=1.0, size=1)
            publisher.flush()  # the too-big rows are gone, the publisher carries on
            assert publisher.disconnects == 0
    assert ask(tp, STATS)["rows"] == 2


def test_a_cap_below_max_message_bytes_is_a_config_error(tmp_path: Path) -> None:
    from tickdb.config import ConfigError, load_config

    config = tmp_path / "tp.toml"
    config.write_text("[tickerplant]\ningest_max_frame_bytes = 1000\n")
    with pytest.raises(ConfigError, match="ingest_max_frame_bytes: 1000 is below"):
        load_config(config)


def test_the_raw_peer_speaks_zmtp(tp: Proc) -> None:
    """The hostile client above is a real ZeroMQ peer: a frame under the cap is answered."""
    conn = zmtp_raw.connect(*zmtp_raw.host_port(tp.info["address"]))
    conn.sendall(zmtp_raw.frame_header(len(HELLO)) + HELLO)
    got = b""
    while b'"publish"' not in got:  # the server's READY, then the HELLO reply
        chunk = conn.recv(65536)
        assert chunk, f"closed after {got!r}"
        got += chunk
    conn.shutdown(socket.SHUT_RDWR)
    conn.close()
