"""The part of ``tickdb.Publisher`` that talks to one address of several: a tickerplant
pair's primary (``tickerplant.standby``), followed when it changes.

The publisher's DEALER is connected to one address at a time. A lost connection (the
socket monitor), or no ack for ``resend_after_s`` with batches waiting (a frozen primary
keeps its connections), has it ask every address (``failover_client.find_primary``); on an
answer from another node, or a new epoch, it connects there and sends everything
unacknowledged again, in order, from the first: the new primary's exactly-once ledger, made
from its copy of the journal, drops what it already has.

That look is taken whenever the publisher reads its replies: on a publish every 64 sends, on
a flush, on a buffered publisher's timer. An unbuffered one also has a thread of its own
(``_watch_pair``) take it every ``WATCH_S`` while batches wait for acks, because its user
may not call it again: the gateway's order path publishes one request and waits for the
venue's answer, which never comes while the request sits unsent for a primary that died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from tickdb.curve_links import CurveClient
from tickerplant.discovery import Hello, TickerplantUnavailable
from tickerplant.failover_client import ROUND_S, find_primary

log = logging.getLogger("tickerplant.publisher")

WATCH_S = 0.05  # how often a quiet pair publisher with batches in flight looks at its link


class PairFollowing:
    if TYPE_CHECKING:  # what it uses of the Publisher
        addresses: list[str]
        address: str
        hello: Hello
        max_inflight: int
        resend_after_s: float
        failovers: int
        _ctx: zmq.Context[Any]
        _keys: CurveClient | None
        _socket: zmq.Socket[Any]
        _monitor: zmq.Socket[Any]
        _send_frame: Callable[[bytes, int, bool], object]
        _inflight: OrderedDict[int, Any]
        _last_progress: float
        _lost_since_ack: bool
        _seek_primary: bool
        _closed: bool
        _lock: threading.RLock

        def _rewind(self, first: int) -> None: ...
        def _pump(self) -> None: ...
        def _process_replies(self, block_s: float) -> None: ...

    def _open(self, address: str) -> None:
        self._socket = self._ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        # Only a connected tickerplant takes messages: queueing them for an absent one
        # duplicated, in ZeroMQ's buffers, what ``_inflight`` holds already.
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        self._socket.setsockopt(zmq.SNDHWM, self.max_inflight + 1)
        if self._keys is not None:
            self._keys.apply(self._socket)
        self._socket.connect(address)
        # pyzmq's own send, without its Python wrapper's checks for options this socket
        # never uses (routing ids, groups): 0.23 against 0.6 µs a call, per one-row message.
        send: Any = super(zmq.Socket, self._socket).send
        self._send_frame: Callable[[bytes, int, bool], object] = send
        # Connection losses, as they happen: what was sent on a lost connection is resent
        # once from the first unacknowledged batch when the next one is up, and a silence
        # without a loss is a slow tickerplant, never a reason to send the window again.
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)

    def _close_socket(self) -> None:
        self._socket.disable_monitor()
        self._monitor.close(0)
        self._socket.close(0)

    def _follow_primary(self) -> None:
        """A pair's primary was lost (or went silent): find the one that answers now and
        send it everything unacknowledged, in order."""
        try:
            address, hello = find_primary(self._ctx, self.addresses, ROUND_S, self._keys)
        except TickerplantUnavailable:
            return  # (the round took ROUND_S: asked again at the next look)
        self._seek_primary = False
        if address == self.address and hello.epoch == self.hello.epoch:
            self._last_progress = time.monotonic()  # only slow: wait a stall again
            return
        log.warning("tickerplant primary now at %s (epoch %d)", address, hello.epoch)
        self._close_socket()
        self._open(address)
        # Sends go only to a connected peer (IMMEDIATE): wait the few ms of its handshake.
        self._socket.poll(int(ROUND_S * 1000), zmq.POLLOUT)
        self.address, self.hello = address, hello
        self.failovers += 1
        self._lost_since_ack = True
        self._last_progress = time.monotonic()
        if self._inflight:
            self._rewind(next(iter(self._inflight)))
        self._pump()

    def _check_pair(self) -> None:
        """Several addresses: look for the primary after a loss, or a silence with batches
        waiting for acks."""
        if self._seek_primary or (
            self._inflight and time.monotonic() - self._last_progress > self.resend_after_s
        ):
            self._follow_primary()

    def _watch_pair(self) -> None:
        """While batches wait for acks: read the replies (acks, a lost link, a silence),
        following a new primary and resending to it, even if no one publishes or flushes."""
        while not self._closed:
            time.sleep(WATCH_S)
            with self._lock:
                if self._closed:
                    return
                if not self._inflight:
                    continue
                try:
                    self._pump()
                    self._process_replies(block_s=0)
                except Exception:  # the next publish or flush sees it too: never end here
                    log.exception("looking for the tickerplant pair's primary")
