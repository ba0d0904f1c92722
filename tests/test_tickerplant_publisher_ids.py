"""A publisher's id cannot be taken over, against real tickerplant processes.

The tickerplant takes a publisher's batches in order by its 16-byte id and drops any batch
at or below the last one taken under it. Records showed that id to every subscriber, and
the tickerplant trusted any client's batch numbers for it: one UPD under it with a huge
batch number made the tickerplant drop the real publisher's later batches as duplicates
(acknowledged, never journaled), across restarts too. Here an attacker learns all it can
from the stream and replay and tries: without CURVE (the id it sees is a digest of the
real one, useless to send), and with CURVE (the id is bound to the identity that first
used it, also after a restart).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import zmq
from support.curve_clients import raw_socket
from support.curve_keys import CurveKeys
from support.harness import Proc, free_port, start_tp

from tickdb.curve_links import CurveClient
from tickerplant.discovery import answer
from tickerplant.discovery import request as tp_request
from tickerplant.ingest import encode_stream
from tickerplant.protocol import (
    ACK,
    CHUNK,
    DATA,
    END,
    ERR,
    KIND_UPD,
    REPLAY,
    STATS,
    Record,
    encode_upd,
    iter_records,
    topic_for,
)
from tickerplant.publisher import Publisher
from tickerplant.publisher_bindings import BINDINGS_FILE
from tickerplant.publisher_ids import public_id

SECRET = os.urandom(16)  # the real publisher's id, as it sends it
HUGE = 2**62  # the batch number an attacker claims


class Tickerplant:
    """A tickerplant on a fixed address, to be restarted on its journal."""

    def __init__(self, tmp_path: Path, procs: list[Proc], **sections: dict[str, Any]) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.sections = {"tickerplant": {"address": self.address}, **sections}
        self.tmp_path, self.procs = tmp_path, procs
        self.proc = self.start()

    def start(self) -> Proc:
        proc = start_tp(self.tmp_path, f"tp{len(self.procs)}", (), **self.sections)
        self.procs.append(proc)
        return proc

    def restart(self) -> None:
        self.proc.kill9()
        self.proc = self.start()


def row(sym: str, size: int) -> bytes:
    table = pa.table({"sym": [sym], "price": [1.0], "size": pa.array([size], pa.int64())})
    return encode_stream(table, table.schema)


def forge(address: str, secret: bytes, curve: CurveClient | None = None) -> list[list[bytes]]:
    """One UPD under ``secret`` with a huge batch number; the replies to it."""
    with raw_socket(zmq.DEALER, address, curve) as sock:
        sock.send(encode_upd(secret, HUGE, HUGE, b"trade", row("EVIL", -1)))
        assert sock.poll(10_000), "no answer to the forged batch"
        replies = [sock.recv_multipart()]
        while sock.poll(400):  # an ACK would follow within a millisecond or so
            replies.append(sock.recv_multipart())
    return replies


def ask(tp: Tickerplant, frames: list[bytes], curve: CurveClient | None = None) -> list[bytes]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        return tp_request(ctx, tp.address, frames, 10.0, curve)
    finally:
        ctx.term()


def stats(tp: Tickerplant, curve: CurveClient | None = None) -> dict[str, Any]:
    return dict(json.loads(answer(ask(tp, [STATS], curve), "tp")))


def replayed(tp: Tickerplant, curve: CurveClient | None = None) -> tuple[bytes, list[Record]]:
    """Every record from the start, by replay: the bytes as sent, and the records."""
    hello = json.loads(answer(ask(tp, [b"HELLO"], curve), "tp"))
    with raw_socket(zmq.DEALER, hello["replay"], curve) as sock:
        sock.send_multipart([REPLAY, b'{"after": 0}'])
        blobs = []
        while True:
            assert sock.poll(10_000), "replay went quiet"
            reply = sock.recv_multipart()
            if reply[0] == END:
                break
            assert reply[0] == CHUNK, reply
            blobs.append(reply[1])
    blob = b"".join(blobs)
    return blob, list(iter_records(blob))


def sizes_of(records: list[Record], sym: str) -> list[int]:
    return [
        r["size"]
        for record in records
        if record.kind == KIND_UPD
        for r in record.to_table().to_pylist()
        if r["sym"] == sym
    ]


@pytest.fixture
def plain(tmp_path: Path, procs: list[Proc]) -> Iterator[Tickerplant]:
    tp = Tickerplant(tmp_path, procs)
    yield tp
    assert tp.proc.alive(), tp.proc.log()


def test_subscribers_and_replay_never_see_a_publishers_secret(plain: Tickerplant) -> None:
    with raw_socket(zmq.SUB, plain.proc.info["publish"], None, topic_for()) as live:
        # A heartbeat proves the subscription reached the tickerplant: records published
        # before that would be dropped by the PUB socket (ZeroMQ's slow joiner).
        assert live.poll(10_000), "no heartbeat"
        live.recv_multipart()
        with Publisher(plain.address, publisher_id=SECRET) as pub:
            for size in range(3):
                pub.publish("trade", sym="A", price=1.0, size=size)
            pub.flush()
        seen = b""
        while len(sizes_of(list(iter_records(seen)), "A")) < 3:
            assert live.poll(10_000), "nothing published"
            frames = live.recv_multipart()  # data, or a heartbeat (two frames)
            if frames[1][:1] == DATA:
                seen += frames[2]
    blob, records = replayed(plain)
    for what in (seen, blob):
        assert SECRET not in what
    origins = {origin for record in records for origin in record.origins}
    assert {p for p, _ in origins} == {public_id(SECRET)}


def test_a_batch_under_a_seen_id_never_touches_the_real_publisher(plain: Tickerplant) -> None:
    pub = Publisher(plain.address, publisher_id=SECRET, resend_after_s=0.3)
    for size in range(3):
        pub.publish("trade", sym="A", price=1.0, size=size)
    pub.flush()
    # All an attacker can learn: the ids records carry.
    (seen,) = {p for record in replayed(plain)[1] for p, _ in record.origins}
    replies = forge(plain.address, seen)
    assert [r[0] for r in replies] == [ERR]  # refused, and no ACK: the id is not its own
    assert b"another publisher's public id" in replies[0][2]
    assert stats(plain)["errors_by_reason"]["foreign_publisher_id"] == 1
    assert "another publisher's public id" in plain.proc.log()
    for size in (3, 4):
        pub.publish("trade", sym="A", price=1.0, size=size)
    pub.flush()
    assert sizes_of(replayed(plain)[1], "A") == [0, 1, 2, 3, 4]
    # Across a restart: the forged id first (a fresh tickerplant has handed out no public
    # id yet, so it is taken as some other publisher's secret), then the real publisher.
    plain.restart()
    forge(plain.address, seen)
    for size in (5, 6):
        pub.publish("trade", sym="A", price=1.0, size=size)
    pub.flush()
    pub.close()
    records = replayed(plain)[1]
    assert sizes_of(records, "A") == list(range(7))  # every row, once, in order
    assert public_id(seen) in {p for record in records for p, _ in record.origins}


ROLES = {"feed": ["publish:trade"], "rogue": ["publish:trade"], "admin": ["admin", "read"]}


@pytest.fixture
def curve(tmp_path: Path, procs: list[Proc]) -> Iterator[tuple[Tickerplant, CurveKeys]]:
    (tmp_path / "keys").mkdir()
    keys = CurveKeys(tmp_path / "keys", ROLES)
    tp = Tickerplant(tmp_path, procs, **keys.sections())
    yield tp, keys
    assert tp.proc.alive(), tp.proc.log()


def test_with_curve_a_publisher_id_belongs_to_the_identity_that_first_used_it(
    curve: tuple[Tickerplant, CurveKeys],
) -> None:
    tp, keys = curve
    admin, rogue = keys.client("admin"), keys.client("rogue")
    pub = Publisher(tp.address, publisher_id=SECRET, curve=keys.client("feed"))
    for size in range(3):
        pub.publish("trade", sym="A", price=1.0, size=size)
    pub.flush()
    # Another identity that somehow holds the secret id itself.
    replies = forge(tp.address, SECRET, rogue)
    assert [r[0] for r in replies] == [ERR]
    assert b"belongs to another identity than 'rogue'" in replies[0][2]
    assert stats(tp, admin)["errors_by_reason"]["foreign_publisher_id"] == 1
    pub.publish("trade", sym="A", price=1.0, size=3)
    pub.flush()
    # The binding outlives a restart: the rogue goes first, and is still refused.
    tp.restart()
    replies = forge(tp.address, SECRET, rogue)
    assert [r[0] for r in replies] == [ERR]
    assert b"belongs to another identity" in replies[0][2]
    for size in (4, 5):
        pub.publish("trade", sym="A", price=1.0, size=size)
    pub.flush()
    pub.close()
    # Under an id of its own, the rogue publishes as any publisher does.
    replies = forge(tp.address, os.urandom(16), rogue)
    assert [r[0] for r in replies] == [ACK]
    records = replayed(tp, admin)[1]
    assert sizes_of(records, "A") == list(range(6))
    assert sizes_of(records, "EVIL") == [-1]
    bindings = tp.tmp_path / "data" / "journal" / BINDINGS_FILE
    assert stat.S_IMODE(bindings.stat().st_mode) == 0o600
    assert f"{public_id(SECRET).hex()} feed" in bindings.read_text()
    assert SECRET.hex() not in bindings.read_text()
