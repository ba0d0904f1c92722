"""The query server: a ZeroMQ ROUTER in front of DuckDB worker threads.

Threads and sockets: the router thread alone touches the ROUTER socket. It hands QUERY
requests to a bounded queue read by ``workers`` query threads, and INFO and extra-handler
requests to one control thread, so a health check or a RELOAD is never stuck behind long
queries. Workers send their replies to the router thread over an inproc PUSH/PULL pair (one
PUSH per thread, as ZeroMQ sockets are not thread-safe); the router forwards them.

Each query gets its connection from ``prepare()``, a time limit (one watchdog thread calls
``interrupt()`` on that connection at the deadline, guarded so it can never hit the next
query on a reused cursor) and a row limit (rows are streamed and reading stops after
``max_rows + 1``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import zmq

from queries.service_access import QueryAccess
from queries.service_protocol import (
    INFO,
    QUERY,
    QueryError,
    QueryRequest,
    decode_request,
    encode_result,
)
from queries.service_watchdog import QueryGuard, Watchdog, lower_thread_priority
from queries.sqlsafety import check_read_only
from tickdb.auth import Identity
from tickdb.curve_links import CurveLinks
from tickdb.listen import bind

log = logging.getLogger("tickdb.queries")

Handler = Callable[[list[bytes]], list[bytes]]
_POLL_MS = 100
_MAX_REQUEST_BYTES = 64 * 1024 * 1024
_QUEUE_PER_WORKER = 64
_MAX_BATCH_ROWS = 1_000_000


@dataclass
class _Job:
    envelope: list[bytes]  # ROUTER identity, plus the empty delimiter of a REQ client
    tag: bytes
    frames: list[bytes]
    received: float  # time.monotonic() at arrival: the time limit counts queueing too
    who: Identity | None = None  # the sender, when CURVE says (``access``)


_PREFIX_KINDS = (
    ("INTERRUPT Error", "timeout"),
    ("Permission Error", "forbidden"),
    ("IO Error", "unavailable"),
    ("Out of Memory Error", "internal"),
    ("INTERNAL Error", "internal"),
    ("FATAL Error", "internal"),
)


def classify(exc: BaseException) -> QueryError:
    """Map an exception from DuckDB or Arrow to a QueryError with DuckDB's message."""
    if isinstance(exc, QueryError):
        return exc
    message = str(exc)
    if isinstance(exc, duckdb.PermissionException):
        return QueryError("forbidden", message)
    if isinstance(exc, duckdb.IOException):
        return QueryError("unavailable", message)
    if isinstance(
        exc, duckdb.OutOfMemoryException | duckdb.InternalException | duckdb.FatalException
    ):
        return QueryError("internal", message)
    if isinstance(exc, duckdb.Error | OSError | pa.ArrowException):
        for prefix, kind in _PREFIX_KINDS:
            if message.startswith(prefix):
                return QueryError(kind, message)
        return QueryError("bad_query", message)
    return QueryError("internal", f"internal error: {type(exc).__name__}: {message}")


def _relation(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    # Kept apart so the frame that runs user SQL holds no Python data a replacement scan
    # could pick up (lock_down also turns replacement scans off).
    return con.sql(sql)


@dataclass(frozen=True)
class Prepared:
    """A connection and reply metadata describing the same state: an RDB's cursor and the
    dates of the snapshot it reads, so the reply says which dates it answered for."""

    con: duckdb.DuckDBPyConnection
    meta: dict[str, Any]


class QueryServer:
    """Serves read-only SQL over ZeroMQ; see ``queries.service_protocol`` for the frames.

    ``prepare(request)`` returns the DuckDB connection (or cursor) ``request.sql`` runs on, or
    a ``Prepared`` whose metadata goes into the reply (an RDB sets up only the tables the
    query names); the server drops its reference when the query ends and never closes it,
    so ``prepare`` may hand out a fresh cursor per query or reuse one per worker thread.
    ``on_error`` (optional) is called with a failed query's error; returning True retries
    the query once (the HDB reloads its views when a partition file vanished under it).
    """

    def __init__(
        self,
        address: str,
        prepare: Callable[[QueryRequest], duckdb.DuckDBPyConnection | Prepared],
        *,
        info: Callable[[], dict[str, Any]],
        timeout_s: float,
        max_rows: int,
        workers: int = 2,
        extra_handlers: dict[bytes, Handler] | None = None,
        on_error: Callable[[QueryError], bool] | None = None,
        worker_nice: int = 0,
        setting: str = "address",
        curve: CurveLinks | None = None,
        tables: Collection[str] = (),
    ) -> None:
        """``setting`` names what chose ``address``, for the error when it is in use.
        ``curve``: with ``[curve]`` on, clients are CURVE clients with a ``read`` role, and
        each query is checked against the sender's read role on ``tables``."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._prepare = prepare
        self._info = info
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.workers = workers
        # Query threads run this many nice steps below the process's other threads (an
        # RDB's ingest must win the CPU over its queries); the router and control threads
        # stay at normal priority.
        self.worker_nice = worker_nice
        self._handlers = dict(extra_handlers or {})
        self._on_error = on_error
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.MAXMSGSIZE, _MAX_REQUEST_BYTES)
        self._curve = curve
        self._access = None
        if curve is not None and curve.serve(self._router, setting.split(" ")[0], "read"):
            self._access = QueryAccess(curve, tables)
        bind(self._router, address, setting)
        self.endpoint: str = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._replies_addr = f"inproc://query-replies-{id(self)}"
        self._pull = self._ctx.socket(zmq.PULL)
        self._pull.bind(self._replies_addr)
        self._queries: queue.Queue[_Job | None] = queue.Queue(workers * _QUEUE_PER_WORKER)
        self._control: queue.Queue[_Job | None] = queue.Queue(256)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watchdog = Watchdog()
        self._running: set[QueryGuard] = set()
        self._running_lock = threading.Lock()
        # This run of the process, in INFO and in every reply (``QueryResult.incarnation``).
        self.incarnation = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Counters, plain attributes for tests and INFO.
        self.queries_ok = 0
        self.queries_failed = 0
        self.timeouts = 0
        self.rejected = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        # The safety check's one-time setup (sqlglot's dialect, DuckDB's parser: ~80 ms)
        # before the first query, not in it: a restarted replica's first answers would
        # otherwise be the slowest, just when it takes over a dead one's load.
        check_read_only("SELECT 1")
        targets: list[tuple[str, Callable[[], None]]] = [("router", self._route)]
        targets += [(f"query-{i}", self._query_worker) for i in range(self.workers)]
        targets.append(("control", self._control_worker))
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"qs-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        with self._running_lock:
            for guard in list(self._running):
                self._watchdog.expire_now(guard)
        for _ in range(self.workers):
            self._put_sentinel(self._queries)
        self._put_sentinel(self._control)
        for thread in self._threads:
            thread.join(timeout=10)
        self._watchdog.stop()
        if not self._threads:  # never started: the sockets are still ours to close
            self._router.close(0)
            self._pull.close(0)
        self._threads.clear()
        if self._curve is not None:
            self._curve.stop(self._ctx)
        self._ctx.term()

    @staticmethod
    def _put_sentinel(q: queue.Queue[_Job | None]) -> None:
        while True:
            try:
                q.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    q.get_nowait()

    # -- router thread ---------------------------------------------------------------------

    def _route(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._pull, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(_POLL_MS))
                if self._pull in events:
                    while True:
                        try:
                            reply = self._pull.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self._router.send_multipart(reply, copy=False)
                if self._router in events:
                    while True:
                        try:
                            frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        who = self._access.identity(frames[0]) if self._access else None
                        self._dispatch([f.bytes for f in frames], who)
        finally:
            self._router.close(0)
            self._pull.close(0)

    def _dispatch(self, frames: list[bytes], who: Identity | None = None) -> None:
        envelope, rest = frames[:1], frames[1:]
        if rest and rest[0] == b"":  # a REQ client: keep its delimiter for the reply
            envelope, rest = frames[:2], frames[2:]
        if not rest:
            self._reply_now(envelope, QueryError("bad_query", "empty request").to_frames())
            return
        tag, body = rest[0], rest[1:]
        job = _Job(envelope, tag, body, time.monotonic(), who)
        if tag == QUERY:
            try:
                self._queries.put_nowait(job)
            except queue.Full:
                self.rejected += 1
                log.warning("query queue full, rejecting a query")
                err = QueryError("unavailable", "server busy: too many queued queries")
                self._reply_now(envelope, err.to_frames())
        elif tag == INFO or tag in self._handlers:
            try:
                self._control.put_nowait(job)
            except queue.Full:
                err = QueryError("unavailable", "server busy: too many control requests")
                self._reply_now(envelope, err.to_frames())
        else:
            log.warning("unknown request tag %r", tag[:40])
            known = ", ".join(t.decode(errors="replace") for t in [QUERY, INFO, *self._handlers])
            msg = f"unknown request tag {tag[:40]!r} (known: {known})"
            self._reply_now(envelope, QueryError("bad_query", msg).to_frames())

    def _reply_now(self, envelope: list[bytes], reply: list[bytes]) -> None:
        self._router.send_multipart([*envelope, *reply])

    # -- worker threads --------------------------------------------------------------------

    def _connect_push(self) -> zmq.Socket[Any]:
        push = self._ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(self._replies_addr)
        return push

    def _send(self, push: zmq.Socket[Any], job: _Job, reply: list[Any]) -> None:
        """Hand a reply to the router thread. Never waits past the server's stop: the router
        thread closes its end (the PULL) as it stops, and a PUSH with no peer waits for one
        for ever, which held a worker that finished during a stop, and ``close()`` with it,
        until the context ended under it."""
        frames = [*job.envelope, *reply]
        while True:
            try:
                push.send_multipart(frames, zmq.NOBLOCK, copy=False)
                return
            except zmq.Again:  # the router's queue is full, or it has stopped
                if self._stop.is_set():
                    log.info("reply to %s dropped: the query server is stopping", job.tag[:40])
                    return
                push.poll(_POLL_MS, zmq.POLLOUT)
            except zmq.ContextTerminated:
                return

    def _query_worker(self) -> None:
        lower_thread_priority(self.worker_nice)
        push = self._connect_push()
        try:
            while (job := self._queries.get()) is not None:
                self._send(push, job, self._answer_query(job))
        finally:
            push.close(0)

    def _control_worker(self) -> None:
        push = self._connect_push()
        try:
            while (job := self._control.get()) is not None:
                self._send(push, job, self._answer_control(job))
        finally:
            push.close(0)

    def _answer_control(self, job: _Job) -> list[bytes]:
        try:
            if self._access is not None:
                self._access.check_control(job.who, job.tag)
            if job.tag == INFO:
                return [INFO, json.dumps(self.describe(), default=str).encode()]
            return list(self._handlers[job.tag](job.frames))
        except QueryError as exc:
            log.warning("%s request failed: %s", job.tag[:40], exc)
            return exc.to_frames()
        except Exception as exc:
            log.error("%s handler failed:\n%s", job.tag[:40], traceback.format_exc())
            return QueryError("internal", f"{type(exc).__name__}: {exc}").to_frames()

    def describe(self) -> dict[str, Any]:
        """The INFO reply: the owner's ``info()`` plus this service's counters."""
        return {
            **self._info(),
            "query_service": {
                "endpoint": self.endpoint,
                "incarnation": self.incarnation,
                "workers": self.workers,
                "timeout_s": self.timeout_s,
                "max_rows": self.max_rows,
                "queries_ok": self.queries_ok,
                "queries_failed": self.queries_failed,
                "timeouts": self.timeouts,
                "rejected": self.rejected,
                **(self._curve.zap_counters() if self._curve is not None else {}),
                "queued": self._queries.qsize(),
                "running": len(self._running),
            },
        }

    def _answer_query(self, job: _Job) -> list[Any]:
        try:
            request = decode_request(job.frames)
            check_read_only(request.sql)
            if self._access is not None:
                self._access.check_query(job.who, request.sql)
            timeout = min(self.timeout_s, request.timeout_s or self.timeout_s)
            max_rows = self.max_rows if request.max_rows is None else request.max_rows
            max_rows = min(max_rows, self.max_rows)
            try:
                table, truncated, meta = self._execute(request, job.received, timeout, max_rows)
            except QueryError as exc:
                if self._on_error is None or self._stop.is_set() or not self._on_error(exc):
                    raise
                log.info("retrying a query after %s error: %s", exc.kind, exc)
                table, truncated, meta = self._execute(request, job.received, timeout, max_rows)
            table, truncated = _limit(table, max_rows, truncated)
            elapsed_ms = (time.monotonic() - job.received) * 1000
            reply = encode_result(
                table, truncated, elapsed_ms, {**meta, "incarnation": self.incarnation}
            )
        except QueryError as exc:
            self.queries_failed += 1
            if exc.kind == "timeout":
                self.timeouts += 1
            level = logging.ERROR if exc.kind == "internal" else logging.INFO
            log.log(level, "query failed (%s): %s", exc.kind, str(exc).splitlines()[0][:300])
            return exc.to_frames()
        except Exception as exc:
            self.queries_failed += 1
            log.error("query failed:\n%s", traceback.format_exc())
            return classify(exc).to_frames()
        self.queries_ok += 1
        return reply

    def _execute(
        self, request: QueryRequest, received: float, timeout: float, max_rows: int
    ) -> tuple[pa.Table, bool, dict[str, Any]]:
        sql = request.sql
        remaining = received + timeout - time.monotonic()
        if remaining <= 0:
            raise QueryError("timeout", "query spent its whole time limit waiting in the queue")
        prepared = self._prepare(request)
        con, meta = (
            (prepared.con, prepared.meta) if isinstance(prepared, Prepared) else (prepared, {})
        )
        guard = self._watchdog.watch(con, received + timeout)
        with self._running_lock:
            self._running.add(guard)
        try:
            relation = _relation(con, sql)
            if relation is None:
                raise QueryError("bad_query", "the statement returns no rows")
            if guard.fired:
                raise QueryError("timeout", "interrupted before it started")
            batch_rows = min(max(max_rows + 1, 2048), _MAX_BATCH_ROWS)
            reader = relation.to_arrow_reader(batch_rows)
            batches: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > max_rows:
                    break
            truncated = rows > max_rows
            if truncated:
                reader.close()  # frees the open result so a reused cursor can run again
            return pa.Table.from_batches(batches, schema=reader.schema), truncated, meta
        except Exception as exc:
            if guard.fired:
                why = "server stopping" if self._stop.is_set() else f"{timeout:g}s time limit"
                raise QueryError("timeout", f"query interrupted: {why}") from None
            raise classify(exc) from None
        finally:
            self._watchdog.finish(guard)
            with self._running_lock:
                self._running.discard(guard)


def _limit(table: pa.Table, max_rows: int, truncated: bool) -> tuple[pa.Table, bool]:
    if table.num_rows > max_rows:
        return table.slice(0, max_rows), True
    return table, truncated
