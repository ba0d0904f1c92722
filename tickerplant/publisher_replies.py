"""The part of ``tickdb.Publisher`` that keeps its batches until they are acknowledged:
the send cursor, the tickerplant's replies (ACK, ERR, RESEND), lost connections, and the
resends that follow them.

Every send, new or repeated, goes out in batch order from one cursor, and only to a live
connection: while the tickerplant is down nothing is queued (the batches are already held
here). A lost connection, or a RESEND, rewinds the cursor once, instead of queueing the
whole window again per request; acknowledgements that are only slow resend nothing. So
after a restart each unacknowledged batch is sent again once, in order, no further than
``max_inflight`` batches past what the tickerplant acknowledged.

A base class of ``publisher.Publisher``, which owns the state it works on (set up in its
``__init__``); with a pair's addresses, ``publisher_pair`` follows the primary. Called
once per send or per wait, never once per row, so it adds no layer to the publishing path.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import zmq

from tickerplant.protocol import ACK, ERR, HELLO, RESEND, U64
from tickerplant.publisher_frames import with_base
from tickerplant.publisher_pair import PairFollowing

log = logging.getLogger("tickerplant.publisher")

# A plain int: combining zmq's flag enums costs more than the send itself for small messages.
POLLIN = int(zmq.POLLIN)
NOBLOCK = int(zmq.NOBLOCK)
# Frames from this size on are handed to ZeroMQ without a copy (below, copying is cheaper
# than keeping the frame alive for ZeroMQ's I/O thread).
COPY_BELOW = 65536
# At most this many bytes of frames await acknowledgement (besides ``max_inflight``
# batches), whatever a batch's size. A publisher faster than its tickerplant otherwise
# holds a window of batches that only grows, every new frame in memory never touched
# before: 32 KB of fresh pages took ~11 µs to fill against ~1 µs for memory freed by an
# ack and used again, and the tickerplant's receive queue grew the same way. 16 MiB is
# ~500 1000-row tables, ~25 ms of a tickerplant's work: acks come every millisecond.
MAX_INFLIGHT_BYTES = 16 << 20


class PublisherFull(TimeoutError):
    """``max_inflight`` batches await acknowledgement and none came for ``timeout_s``."""


class PublishError(Exception):
    """Batches the tickerplant refused: ``errors`` is a list of (batch number, message)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        detail = "; ".join(f"batch {b}: {m}" for b, m in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} batch(es) refused: {detail}{more}")


class ReplyBookkeeping(PairFollowing):
    if TYPE_CHECKING:  # what it uses of the Publisher
        timeout_s: float
        disconnects: int
        resends: int
        _epoch: int
        _next_batch: int
        _inflight: OrderedDict[int, bytes]
        _inflight_bytes: int
        max_inflight_bytes: int
        _cursor: int
        _last_rewind: tuple[int, float]
        _rewound_to: int | None
        _acked: int
        _stall_s: float
        _errors: list[tuple[int, str]]
        _sent_high: int

    def _full(self, size: int) -> bool:
        """Whether a new frame of about ``size`` bytes must wait for acknowledgements: the
        window holds ``max_inflight`` batches, or it would pass ``max_inflight_bytes``
        (a batch bigger than that alone waits only for an empty window)."""
        inflight = self._inflight
        return len(inflight) >= self.max_inflight or (
            self._inflight_bytes + size > self.max_inflight_bytes and len(inflight) > 0
        )

    def _wait_for_room(self, size: int) -> None:
        waited_from = time.monotonic()
        while self._full(size):
            acked = self._acked
            self._wait_for_progress()
            if self._acked != acked:
                waited_from = time.monotonic()
            elif time.monotonic() - waited_from > self.timeout_s:
                raise PublisherFull(
                    f"{len(self._inflight)} batches ({self._inflight_bytes} bytes; "
                    f"max_inflight {self.max_inflight}, max_inflight_bytes "
                    f"{self.max_inflight_bytes}) await acknowledgement and the tickerplant "
                    f"at {self.address} acknowledged none for {self.timeout_s:g}s"
                )

    def _pump(self) -> None:
        """Send in flight batches from the cursor, in order, while the connection takes them
        and no further than ``max_inflight`` past the acknowledged level."""
        if not self._inflight:
            self._cursor = self._next_batch
            return
        first = next(iter(self._inflight))
        self._cursor = max(self._cursor, first)
        limit = min(self._next_batch, self._acked + self.max_inflight + 1)
        while self._cursor < limit:
            frame = with_base(self._inflight[self._cursor], first)
            try:
                self._send_frame(frame, NOBLOCK, len(frame) < COPY_BELOW)
            except zmq.Again:
                return  # no connection, or its queue is full: try again later
            if self._cursor < self._sent_high:
                self.resends += 1
            if self._cursor == self._rewound_to:
                # A rewind counts from when its first batch really went out: one made while
                # the tickerplant was down sent nothing, and must not hide a RESEND after.
                self._last_rewind, self._rewound_to = (self._cursor, time.monotonic()), None
            self._cursor += 1
            self._sent_high = max(self._sent_high, self._cursor)

    def _resend_from(self, first: int) -> None:
        """Send everything in flight from ``first`` again, once: the tickerplant asks with
        every out-of-order batch it gets, and all such requests for one gap carry the same
        ``first`` until the resent batches reach it."""
        last_first, last_at = self._last_rewind
        if first == last_first and time.monotonic() - last_at < self._stall_s:
            return
        if first > self._acked and first < self._cursor:
            self._rewind(first)
        self._pump()

    def _rewind(self, first: int) -> None:
        self._cursor = self._rewound_to = first

    # -- acknowledgements ---------------------------------------------------------------
    def _check_connection(self) -> None:
        while True:
            try:
                self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.disconnects += 1
            self._lost_since_ack = True
            self._seek_primary = len(self.addresses) > 1
            if self._inflight:
                self._rewind(next(iter(self._inflight)))

    def _process_replies(self, block_s: float) -> None:
        self._check_connection()
        if len(self.addresses) > 1:
            self._check_pair()
            if self._seek_primary:
                return  # nothing comes on the lost connection
        deadline = time.monotonic() + block_s
        while True:
            wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if wait_ms == 0:
                if not int(self._socket.get(zmq.EVENTS)) & POLLIN:
                    return
            elif not self._socket.poll(wait_ms):
                return
            while True:
                try:
                    frames = self._socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_reply(frames)
            if block_s == 0 or not self._inflight:
                return

    def _on_reply(self, frames: list[bytes]) -> None:
        tag = frames[0]
        if tag == ACK:
            if len(frames) > 2:  # a pair's primary: acks carry its epoch
                epoch = U64.unpack(frames[2])[0]
                if epoch < self._epoch:
                    return  # from a primary fenced since: never counted
                self._epoch = epoch
            level = U64.unpack(frames[1])[0]
            if level > self._acked:
                self._acked = level
                self._last_progress = time.monotonic()
                self._stall_s = self.resend_after_s
                self._lost_since_ack = False
            inflight = self._inflight
            if inflight:
                # In flight are consecutive batch numbers, in order: those up to ``level``
                # are the first ones (counted, not compared one by one: an ack covers
                # hundreds of one-row batches).
                done = min(level, self._next_batch - 1) - next(iter(inflight)) + 1
                freed = 0
                for _ in range(done):
                    freed += len(inflight.popitem(last=False)[1])
                self._inflight_bytes -= freed
            self._pump()  # the window moved on
        elif tag == ERR:
            batch = U64.unpack(frames[1])[0]
            message = frames[2].decode(errors="replace")
            log.error("tickerplant refused batch %d: %s", batch, message)
            self._errors.append((batch, message))
        elif tag == RESEND:
            self._resend_from(U64.unpack(frames[1])[0])
        elif tag == HELLO:
            pass  # a late answer to a hello that timed out

    def _wait_for_progress(self, block_s: float = 0.05) -> None:
        self._pump()  # what the connection refused before, if it is back
        self._process_replies(block_s)
        stalled = time.monotonic() - self._last_progress > self._stall_s
        if self._inflight and stalled and self._lost_since_ack:
            # No acks for a while since a connection was lost: what went out again may have
            # been lost too (a second restart). Send everything unacknowledged again, once;
            # the tickerplant drops what it has.
            self._rewind(next(iter(self._inflight)))
            self._pump()
            self._last_progress = time.monotonic()
            self._stall_s = min(2 * self._stall_s, 8 * self.resend_after_s)
