"""``tickdb.Publisher``: send rows to a tickerplant, exactly once.

Every batch gets a number; the tickerplant acknowledges batches once they are journaled.
Unacknowledged batches stay in memory (at most ``max_inflight`` of them, and at most
``max_inflight_bytes`` of frames: ``publish`` then waits for acknowledgements, and raises
``PublisherFull`` after ``timeout_s`` without one)
and are resent when the tickerplant asks for them or the connection to it was lost (it
was restarted), and the tickerplant drops the copies it already has. ``flush()`` returns
when everything sent is on the journal.

Every send, new or repeated, goes out in batch order from one cursor, and only to a live
connection; a lost connection, or a RESEND, rewinds the cursor once. That bookkeeping (the
cursor, the replies, the resends) is ``tickerplant.publisher_replies``, a base class of
``Publisher``; this module is the publishing API: rows and tables in, numbered batches out.

Rows can be published one at a time (keyword arguments, a dict, or a tuple in schema order;
``tickerplant.row_writer``) or many at once (an Arrow table, a DataFrame, a dict of columns;
``tickerplant.table_payload``). With ``batch_rows`` or ``batch_ms`` set, rows of a table
are buffered and sent as one batch when ``batch_rows`` wait or every ``batch_ms``; without,
every publish is one batch at once (a single row as a one-row message packed without
Arrow, ``tickerplant.row_message``).

    pub = Publisher("tcp://127.0.0.1:5010", batch_ms=20)
    pub.publish("trade", sym="AAPL", price=189.5, size=100)
    pub.publish("trade", ("MSFT", 410.1, 200))
    pub.flush()

With ``[curve]`` on: ``curve=CurveClient.from_files("feed1.secret", "server.pub")``, or
``TICKDB_CURVE_KEY`` and ``TICKDB_CURVE_SERVER_KEY`` (``tickdb.curve_links``).

A tickerplant pair (``tickerplant.standby``): give both addresses (a list, or one string
with a comma between them). The publisher talks to the one that answers as the primary;
when its connection is lost, or no ack comes for ``resend_after_s``, it looks for the
primary again and sends it everything unacknowledged (its exactly-once ledger, copied
from the old primary's journal, drops what it already has).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import zmq

from tickdb.curve_links import CurveClient, client_keys
from tickdb.schema import SchemaError, TableSchema
from tickerplant.failover_client import addresses_of, find_primary
from tickerplant.publisher_frames import upd_frame
from tickerplant.publisher_replies import (
    COPY_BELOW,
    MAX_INFLIGHT_BYTES,
    NOBLOCK,
    PublisherFull,
    PublishError,
    ReplyBookkeeping,
)
from tickerplant.row_values import NotAValue
from tickerplant.row_writer import MAX_BUFFERED_ROWS, RowWriter
from tickerplant.splice import END_OF_STREAM
from tickerplant.table_payload import to_arrow, to_batch

__all__ = [
    "MAX_BUFFERED_ROWS",
    "MessageTooLarge",
    "PublishError",
    "Publisher",
    "PublisherFull",
    "to_arrow",
]
log = logging.getLogger(__name__)
# ``wait_journaled`` asks the socket again after this long without a signal from it
# (acknowledgements come every millisecond: tickerplant.acks).
JOURNALED_SLICE_S = 0.001


class MessageTooLarge(ValueError):
    """A batch over the tickerplant's ``max_message_bytes``: refused here, before sending
    (a frame far over it would only have the tickerplant close the connection, and the
    batch go again with every reconnect)."""


class Publisher(ReplyBookkeeping):
    def __init__(
        self,
        address: str | list[str] = "tcp://127.0.0.1:5010",
        *,
        batch_rows: int = 0,
        batch_ms: float = 0.0,
        max_inflight: int = 20_000,
        max_inflight_bytes: int = MAX_INFLIGHT_BYTES,
        resend_after_s: float = 1.0,
        timeout_s: float = 30.0,
        publisher_id: bytes | None = None,
        curve: CurveClient | None = None,
    ) -> None:
        self.addresses = addresses_of(address)
        self.address = self.addresses[0]
        self.timeout_s = timeout_s
        self.resend_after_s = resend_after_s
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.batch_rows = batch_rows
        self.batch_ms = batch_ms
        # A secret: whoever sends it publishes as this publisher (``publisher_ids``). Give
        # your own only to keep exactly-once across a restart of this process, random and
        # kept as a password is.
        self.publisher_id = publisher_id or os.urandom(16)
        self._ctx = zmq.Context()
        self._keys = keys = client_keys(curve)
        if len(self.addresses) > 1:  # a pair: connect to the one that is the primary
            self.address, self.hello = find_primary(self._ctx, self.addresses, timeout_s, keys)
            self._open(self.address)
        else:  # connected while HELLO is answered: the first batch goes out at once
            self._open(self.address)
            self.hello = find_primary(self._ctx, self.addresses, timeout_s, keys)[1]
        self.disconnects = 0
        self.failovers = 0  # times it moved to another address's tickerplant
        self._lost_since_ack = False
        self._seek_primary = False
        self._epoch = 0  # the highest epoch acks came from: an older primary's are ignored
        self._lock = threading.RLock()
        self._next_batch = 1
        self._sends_since_check = 0
        # Batch number -> its UPD frame, joined once (``publisher_frames``): sent as it is,
        # or with a newer ``base`` when it goes again.
        self._inflight: OrderedDict[int, bytes] = OrderedDict()
        self._inflight_bytes = 0  # the frames' sizes added up
        # The next batch to hand to ZeroMQ: everything in flight below it has been sent on
        # the current connection (as far as this side can tell). A resend rewinds it.
        self._cursor = 1
        self._last_rewind: tuple[int, float] = (0, 0.0)  # (first batch, when it went again)
        self._rewound_to: int | None = None
        self._acked = 0
        self._last_progress = time.monotonic()
        # How long without an ack before everything in flight is sent again: doubles after
        # each such resend that brings no ack (a slow tickerplant is not a lost one), back to
        # ``resend_after_s`` with the next ack.
        self._stall_s = resend_after_s
        self._errors: list[tuple[int, str]] = []
        # A buffered row too big to send, found by the flush timer: the next flush raises it.
        self._too_large_rows: MessageTooLarge | None = None
        self._buffered = batch_rows > 0 or batch_ms > 0
        self._max_message_bytes = int(self.hello.raw.get("max_message_bytes", 64 << 20))
        self._limit = batch_rows if batch_rows > 0 else MAX_BUFFERED_ROWS
        # Per table: what takes its single rows, and (buffered) the batches of tables
        # published since its last flush, in order, before the rows its writer holds.
        self._writers: dict[str, RowWriter] = {}
        self._parts: dict[str, list[pa.RecordBatch]] = {}
        self._parts_started: dict[str, float] = {}
        self._prefixes: dict[tuple[bytes, int], bytes] = {}
        self.resends = 0  # batches sent more than once
        self._sent_high = 1  # one past the highest batch ever sent
        self._closed = False
        # What reads the replies while the user calls nothing: the flush timer, or for an
        # unbuffered publisher given a pair, the watch for a new primary.
        self._background: threading.Thread | None = None
        if batch_ms > 0:
            self._background = threading.Thread(
                target=self._flush_timer, daemon=True, name="publisher-flush"
            )
        elif len(self.addresses) > 1:
            self._background = threading.Thread(
                target=self._watch_pair, daemon=True, name="publisher-pair"
            )
        if self._background is not None:
            self._background.start()

    @property
    def schemas(self) -> dict[str, TableSchema]:
        return self.hello.schemas

    @property
    def acked(self) -> int:
        """The highest batch number the tickerplant has journaled."""
        return self._acked

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def inflight_bytes(self) -> int:
        """The unacknowledged batches' frames, in bytes (at most ``max_inflight_bytes``, or
        one batch bigger than that)."""
        return self._inflight_bytes

    # -- sending ------------------------------------------------------------------------
    def publish(self, table: str, data: Any = None, /, **row: Any) -> None:
        """Publish one row (keyword arguments, a dict, or a tuple in schema order, ``time``
        first or left out) or many (a pyarrow Table/RecordBatch, a pandas DataFrame, a dict
        of columns). A value of the wrong type raises ``SchemaError`` and nothing is sent."""
        writer = self._writers.get(table) or self._writer(table)
        if data is None:
            if not row:
                raise ValueError(f"table {table!r}: nothing to publish")
            data = row  # keyword arguments: a dict already
        kind = type(data)
        if kind is dict or isinstance(data, dict):
            try:
                writer.row(data)
                return
            except NotAValue:
                pass  # lists or arrays: a dict of columns
        elif kind is tuple or kind is list:
            try:
                writer.tup(data)
                return
            except NotAValue as exc:
                raise SchemaError(
                    f"table {table!r}: column {exc} of a row must be one value, not a "
                    "container (publish a dict of columns or a table for many rows)"
                ) from None
        self._publish_batch(table, to_batch(data, writer.schema))

    def _writer(self, table: str) -> RowWriter:
        schema = self.schemas.get(table)
        if schema is None:
            raise ValueError(f"unknown table {table!r} (known: {', '.join(sorted(self.schemas))})")
        if refusal := self.hello.refusal("publish", [table]):  # the tickerplant would refuse
            raise PermissionError(refusal)
        if self._buffered:
            writer = RowWriter(schema, limit=self._limit, on_full=lambda: self._flush_table(table))
        else:
            name, lock, send_new = table.encode(), self._lock, self._send_new
            limit = self._max_message_bytes

            def send(payload: bytes) -> None:
                if len(payload) > limit:
                    raise self._too_large(table, len(payload))
                with lock:
                    send_new(name, (payload,))

            writer = RowWriter(schema, send=send)
        self._writers[table] = writer
        return writer

    def _publish_batch(self, table: str, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        with self._lock:
            if not self._buffered:
                name = table.encode()
                pieces = self._pieces(name, batch)
                self._check_size(table, pieces)
                self._send_new(name, pieces)
                return
            parts = self._parts.setdefault(table, [])
            writer = self._writers[table]
            started = writer.started if writer.pending else time.monotonic()
            self._parts_started.setdefault(table, started)
            parts += writer.take()  # rows published before it go first
            parts.append(batch)
            if sum(p.num_rows for p in parts) >= self._limit:
                self._send_buffer(table)

    def _pieces(self, table: bytes, batch: pa.RecordBatch) -> tuple[bytes | pa.Buffer, ...]:
        """A batch's payload, as pieces: joined once, with the frame's header, when sent.

        The batch has its table's columns, with or without time (``to_batch``, ``take``);
        the schema message sent is the table's own, the one the tickerplant recognises by
        its bytes, whatever metadata the batch carries."""
        key = (table, batch.num_columns)
        prefix = self._prefixes.get(key)
        if prefix is None:
            schema = self.schemas[table.decode()]
            arrow = schema.arrow if batch.num_columns == len(schema.columns) else None
            arrow = arrow or schema.arrow_without_time
            prefix = self._prefixes[key] = arrow.serialize().to_pybytes()
        return (prefix, batch.serialize(), END_OF_STREAM)

    def publish_ipc(self, table: str, payload: bytes) -> int:
        """Send an already encoded Arrow IPC stream; returns its batch number."""
        self._check_size(table, (payload,))
        with self._lock:
            return self._send_new(table.encode(), (payload,))

    def _check_size(self, table: str, pieces: tuple[bytes | pa.Buffer, ...]) -> None:
        size = sum(len(p) for p in pieces)
        if size > self._max_message_bytes:
            raise self._too_large(table, size)

    def _too_large(self, table: str, size: int) -> MessageTooLarge:
        return MessageTooLarge(
            f"table {table!r}: a batch of {size} bytes exceeds the tickerplant's "
            f"max_message_bytes ({self._max_message_bytes}); publish fewer rows at once"
        )

    def _flush_table(self, table: str) -> None:
        with self._lock:
            self._send_buffer(table)

    def _send_buffer(self, table: str) -> None:
        """Send what the table has buffered: consecutive batches of one schema (with or
        without time) as one batch, cut in halves while a payload is over the
        tickerplant's ``max_message_bytes``. What could not be sent (``PublisherFull``)
        goes back to the buffer, ahead of anything newer; a single row too big to send at
        all (``MessageTooLarge``) is dropped, the rest kept."""
        parts = self._parts.pop(table, [])
        self._parts_started.pop(table, None)
        writer = self._writers.get(table)
        if writer is not None:
            parts += writer.take()
        name = table.encode()
        while parts:
            run = 1
            # Batches with time, or without: the two schemas a table's batches can have.
            while run < len(parts) and parts[run].num_columns == parts[0].num_columns:
                run += 1
            merged = parts[0] if run == 1 else pa.concat_batches(parts[:run])
            del parts[:run]
            pieces = self._cut(name, merged)
            for i, (_, payload) in enumerate(pieces):
                try:
                    self._check_size(table, payload)  # one row alone may still be too big
                    self._send_new(name, payload)
                except BaseException as exc:
                    kept = i + 1 if isinstance(exc, MessageTooLarge) else i
                    unsent = [b for b, _ in pieces[kept:]]
                    self._parts[table] = unsent + parts + self._parts.get(table, [])
                    self._parts_started.setdefault(table, time.monotonic())
                    raise

    def _cut(
        self, name: bytes, batch: pa.RecordBatch
    ) -> list[tuple[pa.RecordBatch, tuple[bytes | pa.Buffer, ...]]]:
        """The batch and its payload, or its halves' while over ``max_message_bytes``."""
        pieces = self._pieces(name, batch)
        if sum(len(p) for p in pieces) <= self._max_message_bytes or batch.num_rows < 2:
            return [(batch, pieces)]
        half = batch.num_rows // 2
        return self._cut(name, batch.slice(0, half)) + self._cut(name, batch.slice(half))

    def _send_new(self, table: bytes, pieces: tuple[bytes | pa.Buffer, ...]) -> int:
        size = sum(map(len, pieces))
        # Look for acks every few sends, not every send: checking costs a syscall.
        self._sends_since_check += 1
        if self._sends_since_check >= 64 or self._full(size):
            self._sends_since_check = 0
            self._process_replies(block_s=0)
            if self._full(size):
                self._wait_for_room(size)
        batch = self._next_batch
        self._next_batch = batch + 1
        # Batches in flight are exactly those above the acknowledged level, so ``base`` is
        # one past it.
        frame = upd_frame(self.publisher_id, batch, self._acked + 1, table, pieces)
        self._inflight[batch] = frame
        self._inflight_bytes += len(frame)
        if self._cursor != batch:
            self._pump()  # older batches wait to go first
            return batch
        # Nothing waits before it (the usual case): send it, without ``_pump``'s search (the
        # window has room: checked above).
        try:
            self._send_frame(frame, NOBLOCK, len(frame) < COPY_BELOW)
        except zmq.Again:
            return batch  # no connection, or its queue is full: ``_pump`` sends it later
        self._cursor = self._sent_high = batch + 1
        return batch

    @property
    def last_batch(self) -> int:
        """The number of the last batch sent (0: none yet), for ``wait_journaled``."""
        return self._next_batch - 1

    def wait_journaled(self, batch: int, timeout_s: float | None = None) -> None:
        """Wait until batch ``batch`` and every one before it are journaled.

        Unlike ``flush``, which holds the publisher while it waits, this takes it only to
        read the acknowledgements that came and waits on the socket's descriptor without
        it: other threads send meanwhile, and threads waiting for their own batches share
        each acknowledgement (one covers every batch up to its level), a group commit.
        The descriptor signals an edge that a send by another thread can take, so the
        wait is at most ``JOURNALED_SLICE_S`` before the socket is asked again. Raises
        ``PublishError`` if the tickerplant refused a batch, and ``TimeoutError``."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            with self._lock:
                if self._acked < batch:
                    self._wait_for_progress(0)  # what came, without waiting
                if self._acked >= batch:
                    errors, self._errors = self._errors, []
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"batch {batch} not acknowledged by {self.address}")
                descriptor = self._socket.FD
            select.select([descriptor], [], [], JOURNALED_SLICE_S)
        if errors:
            raise PublishError(errors)

    def flush(self, timeout_s: float | None = None) -> None:
        """Send buffered rows and wait until every batch is journaled."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            too_large, self._too_large_rows = self._too_large_rows, None
            if too_large is not None:
                raise too_large
            for table in {*self._parts, *self._writers}:
                self._send_buffer(table)
            self._last_progress = max(self._last_progress, time.monotonic() - 0.5)
            while self._inflight:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{len(self._inflight)} batches not acknowledged by {self.address}"
                    )
                self._wait_for_progress()
            errors, self._errors = self._errors, []
        if errors:
            raise PublishError(errors)

    def _flush_timer(self) -> None:
        """Every ``batch_ms / 2``: send what each table has buffered for ``batch_ms`` or more
        (so a row waits at most 1.5 ``batch_ms``), and read acknowledgements."""
        while not self._closed:
            time.sleep(self.batch_ms / 2000)
            with self._lock:
                if self._closed:
                    return
                try:
                    due = time.monotonic() - self.batch_ms / 1000
                    for table, writer in list(self._writers.items()):
                        started = self._parts_started.get(table)
                        if writer.pending and (started is None or writer.started < started):
                            started = writer.started
                        if started is not None and started <= due:
                            self._send_buffer(table)
                    self._pump()
                    self._process_replies(block_s=0)
                except PublisherFull as exc:
                    # Kept in the buffer; publish and flush report it to the caller.
                    log.warning("%s", exc)
                except MessageTooLarge as exc:
                    # The row is dropped; the next flush raises it to the caller.
                    log.error("%s", exc)
                    self._too_large_rows = exc

    def close(self, flush: bool = True) -> None:
        if self._closed:
            return
        try:
            if flush:
                self.flush()
        finally:
            with self._lock:
                self._closed = True
            self._close_socket()
            self._ctx.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(flush=exc[0] is None)
