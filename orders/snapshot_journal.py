"""Which journal a venue snapshot belongs to: the stamp of the record at its seq.

A snapshot at seq S is the state after the journal's records up to S. Another journal (a
tickerplant started over on an empty data directory, or pointed at another one) also has a
record S, of other orders: the sequence number alone does not say which journal it is. So a
snapshot keeps a stamp of record S (its table, the tickerplant's receive time in ns and a
hash of its payload), asked of the replay endpoint when the snapshot is taken, and a venue
starts from it only if the journal's record S has the same stamp.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import zmq

from tickdb.curve_links import client_keys
from tickerplant.discovery import Hello
from tickerplant.protocol import CHUNK, END, ERR, REPLAY, iter_records


class StampUnavailable(Exception):
    """The tickerplant did not answer for the record."""


def record_stamp(hello: Hello, seq: int, timeout_s: float) -> str:
    """The stamp of the journal's record ``seq`` ("" if it has none: not journaled, or in a
    journal file no longer kept)."""
    if seq <= 0:
        return ""
    request = {"after": seq - 1, "upto": seq, "tables": None, "syms": None}
    request |= {"shard": None, "accounts": None}
    ctx: zmq.Context[Any] = zmq.Context()
    socket = ctx.socket(zmq.DEALER)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        if (keys := client_keys()) is not None:
            keys.apply(socket)
        socket.connect(hello.replay)
        socket.send_multipart([REPLAY, json.dumps(request).encode()])
        stamp = ""
        while True:
            if not socket.poll(int(timeout_s * 1000)):
                raise StampUnavailable(f"no answer from {hello.replay} in {timeout_s}s")
            frames = socket.recv_multipart()
            if frames[0] == CHUNK:
                for record in iter_records(frames[1]):
                    if record.seq == seq:
                        digest = hashlib.sha256(record.payload).hexdigest()[:32]
                        stamp = f"{record.table}:{record.ts_recv}:{digest}"
            elif frames[0] == END:
                return stamp
            elif frames[0] == ERR:
                raise StampUnavailable(frames[1].decode(errors="replace"))
    finally:
        socket.close(0)
        ctx.term()
