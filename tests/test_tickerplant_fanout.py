"""The fan-out's sends: each topic's records packed into one message, copied by ZeroMQ.

A zero-copy send of a big blob hands it to pyzmq's garbage-collector thread, which takes
the GIL to release it once ZeroMQ has sent it: a thread wake-up and a GIL hand-off per
message, which cost the tickerplant more than the copy (docs/benchmarks.md). So every
frame goes as a copy, whatever its size, and the bytes are the records', in seq order.
"""

from __future__ import annotations

from typing import Any

import zmq

from tickdb.schema import default_schemas
from tickerplant.protocol import DATA, KIND_UPD, U64, iter_records, record_parts, topic_for
from tickerplant.pubsub import MAX_BLOB_BYTES, Fanout, Outgoing


def test_big_blobs_are_copied_and_hold_the_records_in_order() -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    try:
        pub.bind("tcp://127.0.0.1:0")
        fanout = Fanout(pub, default_schemas())
        topic = topic_for(["trade"])
        fanout.on_subscription(b"\x01" + topic, 0)
        sent: list[tuple[bytes, int, Any]] = []

        def send(frame: bytes, flags: int, copy: Any = True) -> None:
            sent.append((bytes(frame), flags, copy))

        fanout._send_frame = send
        payload = bytes(range(256)) * 128  # 32 KiB: a 1000-row table's size
        origin = ((b"P" * 16, 1),)
        outgoing = []
        for seq in range(1, 41):  # ~1.3 MiB: more than one message
            parts = record_parts(KIND_UPD, seq, seq, "trade", origin, payload)
            outgoing.append(Outgoing(KIND_UPD, seq, seq, "trade", origin, payload, parts))
        fanout.publish(outgoing)
    finally:
        pub.close(0)
        ctx.term()

    assert len(sent) % 3 == 0 and len(sent) >= 6
    blobs = sent[2::3]
    assert all(copy is True for _, _, copy in sent), "a frame was sent without a copy"
    assert max(len(blob) for blob, _, _ in blobs) > 64 << 10
    assert all(len(blob) <= MAX_BLOB_BYTES for blob, _, _ in blobs)
    seqs = [r.seq for blob, _, _ in blobs for r in iter_records(blob)]
    assert seqs == list(range(1, 41))
    # Each message names the seq of the topic's previous one.
    prevs = [U64.unpack_from(frame, len(DATA))[0] for frame, _, _ in sent[1::3]]
    lasts = [list(iter_records(blob))[-1].seq for blob, _, _ in blobs]
    assert prevs == [0, *lasts[:-1]]
    assert all(frame == topic for frame, _, _ in sent[0::3])
