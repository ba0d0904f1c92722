"""``.u.sub`` for q clients: ``upd[t; data]`` and ``.u.end[date]`` pushed as kdb+tick does.

One tickerplant :class:`~tickerplant.subscriber.Subscriber` (all tables, all syms) feeds
every q client, so messages reach each client in the tickerplant's order and the end of day
arrives once. A dispatcher thread filters each update per distinct (table, syms) selection,
encodes it once and queues the bytes per client; each client has its own sender thread.
So a slow q client blocks only its own sender, and its queue is bounded (bytes and
messages): when it overflows, that client is disconnected with a log line, as TorQ's
tickerplant does with ``.u.w`` clients that fall too far behind, instead of growing memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qipc.arrow import table_to_q
from qipc.codec import encode
from qipc.server import QConnection
from qipc.types import ASYNC, QError, Symbol
from tickdb.schema import TableSchema
from tickerplant.discovery import request_hello
from tickerplant.subscriber import EndOfDay, Message, Subscriber

log = logging.getLogger(__name__)

Syms = frozenset[str] | None  # None: every sym


@dataclass(frozen=True)
class Selection:
    syms: Syms
    after_seq: int  # updates at or below this were committed before the client asked


@dataclass
class SubCounters:
    clients: int = 0
    messages_queued: int = 0
    slow_disconnects: int = 0
    dispatch_errors: int = 0


class _Client:
    """One q subscriber: its selections, its bounded queue and its sender thread."""

    def __init__(self, conn: QConnection, max_bytes: int, max_messages: int) -> None:
        self.conn = conn
        self.selections: dict[str, Selection] = {}
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.dead = False
        self.cond = threading.Condition()
        # Pushes must not overtake the response to the first .u.sub (q is single threaded,
        # so its subscribers rely on that): hold them until that response has gone out.
        self.replies_before_sub = conn.messages_out
        self.thread = threading.Thread(target=self._send_loop, name="tp-kdb-sub", daemon=True)

    def push(self, message: bytes) -> bool:
        """Queue ``message``; False when the queue is full (the caller drops the client)."""
        with self.cond:
            if self.dead:
                return True
            if (
                self.queued_bytes + len(message) > self.max_bytes
                or len(self.queue) >= self.max_messages
            ):
                return False
            self.queue.append(message)
            self.queued_bytes += len(message)
            self.cond.notify()
            return True

    def stop(self) -> None:
        with self.cond:
            self.dead = True
            self.queue.clear()
            self.queued_bytes = 0
            self.cond.notify()

    def _send_loop(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.conn.messages_out <= self.replies_before_sub and not self.dead:
            if time.monotonic() > deadline or self.conn.closed:
                break
            time.sleep(0.001)
        while True:
            with self.cond:
                while not self.queue and not self.dead:
                    self.cond.wait()
                if self.dead:
                    return
                message = self.queue.popleft()
                self.queued_bytes -= len(message)
            try:
                self.conn.send_message(message)
            except ConnectionError:
                self.stop()
                return


class QFanout:
    def __init__(
        self,
        tp_address: str,
        schemas: dict[str, TableSchema],
        *,
        seq_source: Callable[[], int] | None = None,
        max_queue_bytes: int = 64 << 20,
        max_queue_messages: int = 100_000,
        timeout_s: float = 10.0,
    ) -> None:
        self.tp_address = tp_address
        self.schemas = schemas
        self.seq_source = seq_source
        self.max_queue_bytes = max_queue_bytes
        self.max_queue_messages = max_queue_messages
        self.timeout_s = timeout_s
        self.counters = SubCounters()
        self._clients: dict[int, _Client] = {}
        self._lock = threading.Lock()
        self._subscriber: Subscriber | None = None
        self._dispatcher: threading.Thread | None = None
        self._stop = threading.Event()

    # -- .u.sub -------------------------------------------------------------------------
    def subscribe(self, conn: QConnection, args: list[Any]) -> Any:
        """``.u.sub[t; syms]``: returns ``(t; empty t)``, or a list of those for t = `."""
        if len(args) != 2:
            raise QError(f"rank: .u.sub takes 2 arguments (table; syms), got {len(args)}")
        tables = self._tables(args[0])
        syms = _syms(args[1])
        with self._lock:
            seq = self.current_seq()
            if self._subscriber is None:
                # Start at the position just read: nothing committed after it is missed.
                self._subscriber = Subscriber(self.tp_address, start=seq, timeout_s=self.timeout_s)
                self._dispatcher = threading.Thread(
                    target=self._dispatch_loop, name="tp-kdb-dispatch", daemon=True
                )
                self._dispatcher.start()
            client = self._clients.get(conn.id)
            if client is None:
                client = _Client(conn, self.max_queue_bytes, self.max_queue_messages)
                self._clients[conn.id] = client
                self.counters.clients = len(self._clients)
                client.thread.start()
            for name in tables:
                client.selections[name] = Selection(syms, seq)
        log.info("%r subscribed to %s (syms %s) after seq %d", conn, tables, syms or "all", seq)
        answers = [[Symbol(name), self._empty(name)] for name in tables]
        return answers[0] if isinstance(args[0], str) and args[0] else answers

    def unsubscribe(self, conn: QConnection) -> None:
        with self._lock:
            client = self._clients.pop(conn.id, None)
            self.counters.clients = len(self._clients)
        if client is not None:
            client.stop()

    def _tables(self, value: Any) -> list[str]:
        if isinstance(value, str):
            names = [str(value)] if value else list(self.schemas)
        elif isinstance(value, np.ndarray) and value.dtype.kind in "OU":
            names = [str(v) for v in value]
        else:
            raise QError(f"type: .u.sub's table must be a symbol, got {type(value).__name__}")
        for name in names:
            if name not in self.schemas:
                raise QError(f"{name}: unknown table (known: {', '.join(sorted(self.schemas))})")
        return names

    def _empty(self, name: str) -> Any:
        schema = self.schemas[name]
        return table_to_q(schema.arrow.empty_table(), schema.qtypes())

    def current_seq(self) -> int:
        if self.seq_source is not None:
            return self.seq_source()
        import zmq

        ctx = zmq.Context()
        try:
            return request_hello(ctx, self.tp_address, self.timeout_s).seq
        finally:
            ctx.term()

    # -- dispatch -----------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        subscriber = self._subscriber
        assert subscriber is not None
        while not self._stop.is_set():
            try:
                message = subscriber.poll(0.2)
                if message is not None:
                    self._dispatch(message)
            except Exception:
                # One bad message or a tickerplant hiccup must not end every q subscription.
                self.counters.dispatch_errors += 1
                log.exception("q subscription dispatch failed")
                self._stop.wait(0.5)

    def _dispatch(self, message: Message) -> None:
        with self._lock:
            clients = list(self._clients.values())
        if isinstance(message, EndOfDay):
            date = np.datetime64(message.date.isoformat(), "D")
            end = encode([Symbol(".u.end"), date], ASYNC)
            for client in clients:
                if client.selections:
                    self._push(client, end)
            return
        targets = []
        for client in clients:
            selection = client.selections.get(message.table)
            if selection is not None and message.seq > selection.after_seq:
                targets.append((client, selection.syms))
        if not targets:
            return
        encoded: dict[Syms, bytes | None] = {}
        for client, syms in targets:
            if syms not in encoded:
                encoded[syms] = self._encode_upd(message.table, message.data, syms)
            payload = encoded[syms]
            if payload is not None:
                self._push(client, payload)

    def _encode_upd(self, table: str, data: pa.Table, syms: Syms) -> bytes | None:
        if syms is not None:
            wanted = pa.array(sorted(syms), pa.string())
            data = data.filter(pc.is_in(data.column("sym"), value_set=wanted))
            if data.num_rows == 0:
                return None
        qtable = table_to_q(data, self.schemas[table].qtypes())
        return encode([Symbol("upd"), Symbol(table), qtable], ASYNC)

    def _push(self, client: _Client, message: bytes) -> None:
        if client.push(message):
            self.counters.messages_queued += 1
            return
        self.counters.slow_disconnects += 1
        log.warning(
            "%r: q subscriber fell behind (%d messages, %d bytes queued); disconnecting it",
            client.conn,
            len(client.queue),
            client.queued_bytes,
        )
        self.unsubscribe(client.conn)
        client.conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._dispatcher is not None:
            self._dispatcher.join(5)
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.stop()
        if self._subscriber is not None:
            self._subscriber.close()


def _syms(value: Any) -> Syms:
    if isinstance(value, str):
        return frozenset([str(value)]) if value else None
    if isinstance(value, np.ndarray) and value.dtype.kind in "OU":
        return frozenset(str(v) for v in value)
    if isinstance(value, list) and not value:
        return frozenset()
    raise QError(f"type: .u.sub's syms must be a symbol or symbols, got {type(value).__name__}")
