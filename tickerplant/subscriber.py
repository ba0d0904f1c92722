"""``tickdb.Subscriber``: every record you asked for, in order, once.

Joining, falling behind and reconnecting are one mechanism (the Clone pattern): the
subscriber remembers the last seq it delivered; whenever the tickerplant shows it a later
position on its topic (``prev`` of a data message, or a heartbeat) than what it has, it
asks the replay endpoint for exactly the missing range and drops anything at or below its
position. So a late join, a message ZeroMQ dropped for a slow consumer and a tickerplant
restart all end the same way: no gap, no duplicate.

    for msg in Subscriber("tcp://127.0.0.1:5010", tables=["trade"], start="session"):
        if isinstance(msg, Update):
            print(msg.table, msg.data.num_rows)

or, for the rows alone, each record's Arrow batches as they arrive:

    for table, batch in Subscriber("tcp://127.0.0.1:5010", tables=["trade"]).batches():
        print(table, batch.num_rows)

A tickerplant pair (``tickerplant.standby``): give both addresses (a list, or one string
with a comma between them); when the primary goes quiet the subscriber asks them all,
follows the one that answers, and fetches what it missed from that one's replay.

With ``[curve]`` on, give the client's key pair and the server's public key (``curve=``, a
``tickdb.curve_links.CurveClient``, or ``TICKDB_CURVE_KEY`` and ``TICKDB_CURVE_SERVER_KEY``).

Records are split out of each message by ``tickerplant.delivered`` and payloads decoded by
``tickerplant.payload_reader`` (the schema looked up by its bytes, the batches read
directly). Every ``Update`` and batch owns its memory (each record's payload is copied out
of the received message, once, which also aligns it for Arrow), so any of them can be kept
for as long as wanted.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import zmq

from tickdb.curve_links import CurveClient, client_keys
from tickdb.types import Shard
from tickerplant.delivered import Delivered, delivered
from tickerplant.discovery import Hello, TickerplantUnavailable
from tickerplant.failover_client import addresses_of, find_primary
from tickerplant.messages import EndOfDay, Message, Start, SubscriptionError, Update
from tickerplant.payload_reader import read_batches
from tickerplant.protocol import (
    CHUNK,
    DATA,
    END,
    ERR,
    HEADER_SIZE,
    HEARTBEAT,
    KIND_EOD,
    REPLAY,
    U64,
    ProtocolError,
    peek_seq,
    topic_for,
)
from tickerplant.pubsub import TOPIC_ERROR

__all__ = ["EndOfDay", "Message", "Start", "Subscriber", "SubscriptionError", "Update"]

log = logging.getLogger(__name__)


class Subscriber:
    def __init__(
        self,
        address: str | list[str] = "tcp://127.0.0.1:5010",
        *,
        tables: list[str] | None = None,
        syms: list[str] | None = None,
        shard: Shard | tuple[int, int] | str | None = None,
        accounts: list[str] | None = None,
        empty_syms: bool = False,
        not_from: bytes | None = None,
        start: Start = "live",
        timeout_s: float = 10.0,
        receive_buffer: int = 100_000,
        curve: CurveClient | None = None,
    ) -> None:
        self.addresses = addresses_of(address)
        self.address = self.addresses[0]
        self.tables = tables
        self.syms = syms
        self.shard = None if shard is None else Shard.of(shard)
        self.accounts = accounts
        self.empty_syms = empty_syms  # with shard: rows of an empty sym too (protocol.py)
        self.not_from = not_from  # a publisher's public id whose own records are left out
        self.timeout_s = timeout_s
        self._ctx = zmq.Context()
        self._curve = client_keys(curve)
        self.hello: Hello = self._ask(timeout_s)
        unknown = sorted(set(tables or ()) - set(self.hello.schemas))
        if unknown:
            raise SubscriptionError(
                f"unknown tables {unknown} (known: {', '.join(sorted(self.hello.schemas))})"
            )
        # The tickerplant would send nothing for a selection it may not read (CURVE).
        if refusal := self.hello.refusal("read", tables or self.hello.schemas, accounts):
            raise SubscriptionError(refusal)
        try:
            self.topic = topic_for(tables, syms, self.shard, accounts, empty_syms, not_from)
        except ValueError as exc:  # a selection no topic can say (syms and accounts both)
            raise SubscriptionError(str(exc)) from None
        # The tickerplant disconnects a subscription over its cap (and the SUB socket would
        # resend it for ever): say so here instead.
        self._check_size("subscription", len(self.topic) + 1, "max_subscription_bytes")
        self._receive_buffer = receive_buffer
        self._pair = len(self.addresses) > 1
        self._seeking = False  # a pair's connection closed: the primary is looked for
        self._lost: zmq.Socket | None = None
        self._sub = self._connect(self.hello.publish)
        # Records delivered and not yet handed over: poll() makes them messages, batches()
        # hands over their rows.
        self._ready: deque[Delivered] = deque()
        self.last_end_of_day: EndOfDay | None = None
        self.gaps_repaired = 0
        # True once the topic delivered anything (data or a heartbeat): the tickerplant has
        # the subscription, so nothing published from then on is missed.
        self.live = False
        self.duplicates_dropped = 0
        self.replayed_records = 0
        self._last_heard = time.monotonic()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if start == "live":
            self.last_seq = self.hello.seq
        elif start == "session":
            self.last_seq = self.hello.session_start_seq
        elif start == "journal":
            self.last_seq = 0
        else:
            self.last_seq = int(start)
        if self.last_seq < self.hello.seq:
            self._replay(self.hello.seq)

    @property
    def socket(self) -> zmq.Socket:
        """The SUB socket, for a caller's own poller (it changes if the tickerplant moves):
        readable, or ``pending``, means ``poll_now`` has something."""
        return self._sub

    @property
    def pending(self) -> int:
        """Records already received and not yet handed over by ``poll``."""
        return len(self._ready)

    def _connect(self, endpoint: str) -> zmq.Socket:
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        self._wait_ms = -1  # the socket's receive timeout (poll sets it)
        sub.setsockopt(zmq.RCVHWM, self._receive_buffer)
        if self._curve is not None:
            self._curve.apply(sub)
        # A pair (several addresses): the connection's close, watched, has the primary looked
        # for at once (``_check_liveness``), not after three silent heartbeats.
        self._lost = sub.get_monitor_socket(zmq.EVENT_DISCONNECTED) if self._pair else None
        sub.connect(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, self.topic)
        return sub

    def _close_sub(self) -> None:
        if self._lost is not None:
            self._sub.disable_monitor()
            self._lost.close(0)
        self._sub.close(0)

    def _connection_lost(self) -> bool:
        """A pair's connection closed since the last look (one cheap option read)."""
        lost = self._lost
        if lost is None or not int(lost.get(zmq.EVENTS)) & zmq.POLLIN:
            return False
        while True:
            try:
                lost.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True

    # -- replay -------------------------------------------------------------------------
    def _replay(self, upto: int) -> bool:
        """Fetch ``(last_seq, upto]`` from the journal; False if the tickerplant is away.

        A replay that goes quiet for a liveness interval asks the one address again: if a
        restarted tickerplant answers (a new epoch), the replay starts over from the
        position reached, at the new replay endpoint; if the same one answers, it is only
        slow. ``timeout_s`` without progress and without a new tickerplant gives up (the
        next message or heartbeat shows the gap again, so nothing is skipped).
        """
        quiet_s = max(3 * self.hello.heartbeat_ms / 1000, 0.5)
        deadline = time.monotonic() + self.timeout_s
        while True:
            socket = self._send_replay(upto)
            try:
                while True:
                    if not socket.poll(int(quiet_s * 1000)):
                        if self._restarted(deadline):
                            deadline = time.monotonic() + self.timeout_s
                            break  # ask the new tickerplant
                        if time.monotonic() >= deadline:
                            log.warning("replay from %s timed out; will retry", self.hello.replay)
                            return False
                        continue
                    frames = socket.recv_multipart()
                    deadline = time.monotonic() + self.timeout_s
                    if frames[0] == CHUNK:
                        for record in delivered(frames[1]):
                            self.replayed_records += 1
                            self._accept(record)
                    elif frames[0] == END:
                        self.last_seq = max(self.last_seq, U64.unpack(frames[1])[0])
                        return True
                    elif frames[0] == ERR:
                        raise SubscriptionError(f"replay refused: {frames[1].decode()}")
            finally:
                socket.close(0)

    def _send_replay(self, upto: int) -> zmq.Socket:
        request: dict[str, Any] = {
            "after": self.last_seq,
            "upto": upto,
            "tables": self.tables,
            "syms": self.syms,
            "shard": self.shard.to_json() if self.shard else None,
            "accounts": self.accounts,
        }
        if self.empty_syms:
            request["empty_syms"] = True
        if self.not_from is not None:
            request["not_from"] = self.not_from.hex()
        body = json.dumps(request).encode()
        self._check_size("replay request", len(body), "max_replay_request_bytes")
        socket = self._ctx.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        if self._curve is not None:
            self._curve.apply(socket)
        socket.connect(self.hello.replay)
        socket.send_multipart([REPLAY, body])
        return socket

    def _check_size(self, what: str, size: int, limit_name: str) -> None:
        limit = self.hello.raw.get(limit_name)
        if isinstance(limit, int) and size > limit:
            raise SubscriptionError(
                f"this {what} is {size} bytes, over the tickerplant's {limit_name} ({limit}): "
                "select fewer syms or accounts (or by shard)"
            )

    def tickerplant_seq(self, timeout_s: float | None = None) -> int:
        """The tickerplant's committed seq now (a HELLO): once ``last_seq`` reaches it,
        this subscriber has been handed everything published before the call."""
        return self._ask(self.timeout_s if timeout_s is None else timeout_s).seq

    def _ask(self, timeout_s: float) -> Hello:
        """The HELLO of the tickerplant at the address, or of a pair's primary."""
        self.address, hello = find_primary(self._ctx, self.addresses, timeout_s, self._curve)
        return hello

    def _restarted(self, deadline: float) -> bool:
        """Whether a new tickerplant (another epoch) now answers the address; follow it."""
        wait = min(1.0, max(deadline - time.monotonic(), 0.05))
        try:
            hello = self._ask(wait)
        except TickerplantUnavailable:
            return False
        if hello.epoch == self.hello.epoch:
            return False
        log.info("tickerplant restarted (epoch %d); following it", hello.epoch)
        self._follow(hello)
        return True

    def _follow(self, hello: Hello) -> None:
        if hello.publish != self.hello.publish:
            log.info("tickerplant moved to %s; reconnecting", hello.publish)
            self._close_sub()
            self._sub = self._connect(hello.publish)
        self.hello = hello

    def _accept(self, record: Delivered) -> None:
        if record.seq <= self.last_seq:
            self.duplicates_dropped += 1
            return
        self.last_seq = record.seq
        self._ready.append(record)

    # -- live ---------------------------------------------------------------------------
    def _on_message(self, frames: list[zmq.Frame]) -> None:
        meta = frames[1].bytes
        kind = meta[:1]
        self._last_heard = time.monotonic()
        self.live = True
        if kind == DATA:
            prev = U64.unpack_from(meta, 1)[0]
            # A view of ZeroMQ's own buffer (up to a megabyte of records), not a copy: each
            # record's payload is copied out of it once, by ``delivered``.
            blob = frames[2].buffer
            if prev > self.last_seq:
                # Something between our position and this message never reached us.
                self.gaps_repaired += 1
                if not self._replay(peek_seq(bytes(blob[:HEADER_SIZE])) - 1):
                    return  # the next message shows the gap again; nothing is skipped
            for record in delivered(blob):
                self._accept(record)
        elif kind == HEARTBEAT:
            topic_last, tp_seq = U64.unpack_from(meta, 1)[0], U64.unpack_from(meta, 9)[0]
            if topic_last > self.last_seq:
                self.gaps_repaired += 1
                if not self._replay(topic_last):
                    return
            # Everything on our topic up to the tickerplant's seq has been sent to us.
            self.last_seq = max(self.last_seq, tp_seq)
        elif kind == TOPIC_ERROR:
            raise SubscriptionError(meta[1:].decode(errors="replace"))
        else:
            raise ProtocolError(f"unknown message kind {kind!r}")

    def _check_liveness(self) -> None:
        if self._connection_lost():
            self._seeking = True  # until a primary answers
        silent = time.monotonic() - self._last_heard
        if silent < 3 * self.hello.heartbeat_ms / 1000 and not self._seeking:
            return
        # The tickerplant went quiet: maybe restarted elsewhere (ephemeral ports). Ask the
        # one fixed address again and follow it; replay then closes any gap.
        try:
            hello = self._ask(min(self.timeout_s, 1.0))
        except TickerplantUnavailable:
            self._last_heard = time.monotonic()
            return
        self._seeking = False
        self._follow(hello)
        self._last_heard = time.monotonic()
        if self.last_seq < hello.seq:
            self._replay(hello.seq)

    def poll(self, timeout_s: float | None = None) -> Message | None:
        """The next message, or None if none arrived within ``timeout_s`` (None: wait)."""
        record = self._next_record(timeout_s)
        if record is None:
            return None
        return EndOfDay(record) if record.kind == KIND_EOD else Update(record)

    def poll_now(self) -> Message | None:
        """The next message if there is one without waiting: a record already received, or
        what one receive that does not block brings. For a caller that polls ``socket``
        with its own sockets; call it when that is readable, or at least every heartbeat
        interval (it is also what notices a silent tickerplant)."""
        if not self._ready and not self._closed:
            self._receive_within(0)
        if not self._ready:
            return None
        record = self._ready.popleft()
        return EndOfDay(record) if record.kind == KIND_EOD else Update(record)

    def batches(self, timeout_s: float | None = None) -> Iterator[tuple[str, pa.RecordBatch]]:
        """``(table, record batch)`` for every batch of rows, in order, as they arrive:
        the rows without a message object per record. Ends at ``close()`` or, with
        ``timeout_s``, when nothing arrived for that long. End-of-day records have no rows:
        the last one seen is ``last_end_of_day``."""
        while not self._closed:
            record = self._next_record(timeout_s)
            if record is None:
                if timeout_s is not None:
                    return
                continue
            if record.kind == KIND_EOD:
                self.last_end_of_day = EndOfDay(record)
                continue
            for batch in read_batches(record.payload):
                yield record.table, batch

    def _next_record(self, timeout_s: float | None) -> Delivered | None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._ready:
            remaining = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if remaining < 0:
                return None
            # Rounded up: a wait of less than a millisecond rounded down to 0 made a
            # non-blocking receive, again and again until the deadline (a spin). A blocking
            # receive with a timeout: a system call or two where a poll and then a receive
            # made about ten, on the path of every message.
            self._receive_within(math.ceil(remaining * 1000))
            if self._closed:
                return None
        return self._ready.popleft()

    def _receive_within(self, wait_ms: int) -> None:
        """Receive and take in one message, or see that none came within ``wait_ms``."""
        if wait_ms != self._wait_ms:
            self._sub.setsockopt(zmq.RCVTIMEO, wait_ms)
            self._wait_ms = wait_ms
        try:
            frames = self._receive()
        except zmq.Again:
            self._check_liveness()
        else:
            self._on_message(frames)

    def _receive(self) -> list[zmq.Frame]:
        """One message, frame by frame, without copies: each frame says whether more follow,
        where ``recv_multipart`` asks the socket (RCVMORE) after each one, an option lookup
        that costs more than the receive. zmq.Again when nothing came in time."""
        recv = self._sub.recv
        frame = recv(0, False)
        frames = [frame]
        while frame.more:
            frame = recv(0, False)
            frames.append(frame)
        return frames

    def __iter__(self) -> Iterator[Message]:
        while not self._closed:
            message = self.poll()
            if message is not None:
                yield message

    # -- callback form ------------------------------------------------------------------
    def run(self, callback: Callable[[Message], Any], stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        while not stop.is_set() and not self._closed:
            message = self.poll(0.1)
            if message is not None:
                callback(message)

    def start(self, callback: Callable[[Message], Any]) -> threading.Thread:
        """Deliver messages to ``callback`` on a background thread until ``close()``."""
        self._thread = threading.Thread(
            target=self.run, args=(callback,), daemon=True, name="subscriber"
        )
        self._thread.start()
        return self._thread

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._closed = True
        self._close_sub()
        self._ctx.term()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
