"""The tickerplant's kdb+ port: q feedhandlers ``.u.upd``, q subscribers ``.u.sub``.

It runs in the tickerplant process as threads beside the main loop and goes through the
same front door as every other client, so journaling, sequencing, duplicate handling and
validation are the ZeroMQ path's and the main loop knows nothing about q:

* ``.u.upd[t; data]`` converts ``data`` (a row, a list of columns or a table; see
  :mod:`tickerplant.kdb_convert`) to Arrow and sends it with a :class:`Publisher` owned by
  that q connection. A sync call returns only once the batch is journaled, or a q error if
  it was refused. An async call (how tick feeds send) returns nothing: its errors are
  logged and counted, and a checker thread collects the tickerplant's verdicts on them.
* ``.u.sub[t; syms]`` registers the client for ``upd``/``.u.end`` pushes
  (:mod:`tickerplant.kdb_subs`).
* ``.u.i`` (the last committed seq), ``.u.t`` (table names) answer status queries.

Each may also come as q text (``.u.sub[`;`]``, ``.u.upd[`trade;(`A;1.5;100)]``), read by
:mod:`tickerplant.kdb_text` into the values the binary call would carry. An async message
that fails is logged (here, or by the IPC server for anything else), never dropped unseen.

With an :class:`~tickdb.auth.Authorizer` whose mode is on, a client logs in as an ``[auth]``
identity (its password, or one of its tokens as the password) that may publish or read
something; ``.u.upd[t; …]`` needs ``publish`` on ``t`` and ``.u.sub[t; …]`` ``read`` on
every table it names (`` ` `` names them all). A refusal is q's ``access`` error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qipc.limits import ServerLimits
from qipc.server import Authenticator, QConnection, QIpcServer
from qipc.types import SYNC, QError
from tickdb.audit import AuditLog
from tickdb.auth import Action, Authorizer
from tickdb.schema import TableSchema
from tickdb.tls import PortTls
from tickerplant.clock import Clock, SystemClock
from tickerplant.ingest import encode_stream
from tickerplant.kdb_convert import upd_to_arrow
from tickerplant.kdb_subs import QFanout
from tickerplant.kdb_text import QTextError, parse_call
from tickerplant.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.1  # how soon an async .u.upd refused by the tickerplant is logged
# Texts answered as status queries rather than parsed as calls.
_STATUS = frozenset({"", ".u.i", ".u.t", "tables[]", "tables`."})


def _parse_text(text: str) -> tuple[str, list[Any]] | None:
    try:
        return parse_call(text)
    except QTextError as exc:
        raise QError(f"{exc} in {text[:60]!r}") from None


@dataclass
class KdbCounters:
    """Plain counters: tests assert on them."""

    upd_sync: int = 0
    upd_async: int = 0
    rows: int = 0
    refused_sync: int = 0
    refused_async: int = 0


class _Feed:
    """One q connection's publisher. ``lock`` keeps the checker thread from taking the
    verdict of a sync call's batch, which belongs to that call."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.lock = threading.Lock()
        self.unchecked = False  # async batches sent whose verdict nobody has looked at


class KdbPort:
    def __init__(
        self,
        tp_address: str,
        schemas: dict[str, TableSchema],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        seq_source: Callable[[], int] | None = None,
        authenticate: Authenticator | None = None,
        limits: ServerLimits | None = None,
        authorizer: Authorizer | None = None,
        audit: AuditLog | None = None,
        max_queue_bytes: int = 64 << 20,
        max_queue_messages: int = 100_000,
        timeout_s: float = 10.0,
        tls: PortTls | None = None,
    ) -> None:
        self.tp_address = tp_address
        self.schemas = schemas
        self.clock = clock or SystemClock()
        self.timeout_s = timeout_s
        self.counters = KdbCounters()
        self.authorizer = authorizer if authorizer is not None and authorizer.enabled else None
        self.audit = audit or AuditLog(None, "tickerplant")
        if self.authorizer is not None:
            if authenticate is not None:
                raise ValueError("pass authenticate or an authorizer, not both")
            authenticate = self._authenticate
        self.fanout = QFanout(
            tp_address,
            schemas,
            seq_source=seq_source,
            max_queue_bytes=max_queue_bytes,
            max_queue_messages=max_queue_messages,
            timeout_s=timeout_s,
        )
        self._seq_source = seq_source or self.fanout.current_seq
        self._feeds: dict[int, _Feed] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checker = threading.Thread(target=self._check_loop, name="tp-kdb-check", daemon=True)
        self.server = QIpcServer(
            self._handle,
            host=host,
            port=port,
            authenticate=authenticate,
            limits=limits,
            on_close=self._on_close,
            on_login=self._record_login,
            name="tp-kdb",
            setting="tickerplant.kdb_port",
            tls=tls,
        )

    @property
    def port(self) -> int:
        return int(self.server.port)

    def start(self) -> KdbPort:
        self.server.start()
        self._checker.start()
        log.info("kdb+ port at %s:%d", self.server.host, self.server.port)
        return self

    def close(self) -> None:
        self._stop.set()
        self.server.close(timeout=2.0)
        self.fanout.close()
        self._checker.join(2.0)
        with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.publisher.close(flush=False)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:  # client threads count concurrently
            setattr(self.counters, name, getattr(self.counters, name) + n)

    # -- who may do what ----------------------------------------------------------------
    def _authenticate(self, user: str, password: str) -> bool:
        assert self.authorizer is not None
        identity = self.authorizer.check_login(user, password)
        if identity is None:
            return False
        if not (identity.has_role("publish") or identity.has_role("read")):
            log.warning("tp-kdb: %r may neither publish nor read", user)
            return False
        return True

    def _record_login(self, user: str, where: str, ok: bool, why: str) -> None:
        self.audit.record(user, "login", ok=ok, where=where, port="tp-kdb", reason=why or None)

    def _require(self, conn: QConnection, action: Action, tables: list[str]) -> None:
        """QError ``access`` unless ``conn``'s identity may ``action`` every one of ``tables``."""
        if self.authorizer is None:
            return
        identity = self.authorizer.identity(conn.user)
        denied = [t for t in tables if not self.authorizer.allows(identity, action, t)]
        if denied:
            what = "publish to" if action == "publish" else action
            log.warning("%r may not %s %s", conn, what, ", ".join(denied))
            raise QError(f"access: {conn.user!r} may not {what} {', '.join(denied)}")

    def _sub_tables(self, value: Any) -> list[str]:
        """The tables a ``.u.sub`` names, as ``QFanout`` reads them (it reports bad types)."""
        if isinstance(value, str):
            return [str(value)] if value else list(self.schemas)
        if isinstance(value, np.ndarray) and value.dtype.kind in "OU":
            return [str(v) for v in value]
        return []

    # -- dispatch -----------------------------------------------------------------------
    def _handle(self, value: Any, msg_type: int, conn: QConnection) -> Any:
        feed = conn.state.get("feed")
        if msg_type == SYNC and feed is not None and feed.unchecked:
            # As in q, a sync message answers after every async one sent before it took
            # effect: feeds rely on `neg[h] x; h""` to know their updates are in.
            with feed.lock:
                self._settle(feed, conn.id)
        if isinstance(value, str):  # q text, or a bare name sent as a symbol
            text = value.strip()
            call = None if text in _STATUS else _parse_text(text)
            if call is None:
                return self._query(text)
            value = [call[0], *call[1]]  # .u.upd[...] as text: the same call as sent binary
        if isinstance(value, list) and value and isinstance(value[0], str):
            name, *args = value
            if name == ".u.upd":
                return self._upd(conn, args, sync=msg_type == SYNC)
            if name == ".u.sub":
                if args:
                    self._require(conn, "read", self._sub_tables(args[0]))
                answer = self.fanout.subscribe(conn, args)
                conn.keep_open = True  # it waits for pushes: quiet, never idle
                return answer
            if not args or (len(args) == 1 and args[0] is None):  # f[] or (`f; ::)
                return self._query(str(name))
            raise QError(str(name))  # q's error for an unknown name is the name
        raise QError("type: send a call such as (`.u.upd; `trade; data) or .u.i / .u.t")

    def _query(self, text: str) -> Any:
        if text == "":
            return None  # h"": the q idiom for "have my async messages been processed?"
        if text == ".u.i":
            return np.int64(self._seq_source())
        if text in (".u.t", "tables[]", "tables`."):
            return np.array(list(self.schemas), dtype=object)
        raise QError(f"{text}: this port answers .u.upd, .u.sub, .u.i and .u.t only")

    # -- .u.upd -------------------------------------------------------------------------
    def _upd(self, conn: QConnection, args: list[Any], *, sync: bool) -> Any:
        self._count("upd_sync" if sync else "upd_async")
        try:
            self._publish(conn, args, sync)
        except QError as exc:
            self._count("refused_sync" if sync else "refused_async")
            if sync:
                raise
            # Nobody is waiting for an answer: the log is where a feed's bug shows.
            log.warning("%r: async .u.upd refused: %s", conn, exc.message)
        except Exception:
            if sync:
                raise
            self._count("refused_async")
            log.exception("%r: async .u.upd failed", conn)
        return None

    def _publish(self, conn: QConnection, args: list[Any], sync: bool) -> None:
        if len(args) != 2:
            raise QError(f"rank: .u.upd takes 2 arguments (table; data), got {len(args)}")
        table, data = args
        if not isinstance(table, str):
            raise QError(f"type: .u.upd's table must be a symbol, got {type(table).__name__}")
        self._require(conn, "publish", [str(table)])
        schema = self.schemas.get(table)
        if schema is None:
            raise QError(f"{table}: unknown table (known: {', '.join(sorted(self.schemas))})")
        arrow = upd_to_arrow(schema, data, self.clock.now_ns())
        if arrow.num_rows == 0:
            return
        payload = encode_stream(arrow, arrow.schema)
        feed = self._feed(conn)
        with feed.lock:
            feed.publisher.publish_ipc(str(table), payload)
            self._count("rows", arrow.num_rows)
            if not sync:
                feed.unchecked = True
                return
            try:
                feed.publisher.flush()  # also settles this client's earlier async batches
            except PublishError as exc:
                raise QError(f"refused: {'; '.join(m for _, m in exc.errors)}") from None
            except TimeoutError as exc:
                raise QError(f"timeout: {exc}") from None
            finally:
                feed.unchecked = False

    def _feed(self, conn: QConnection) -> _Feed:
        feed = conn.state.get("feed")
        if feed is None:
            publisher = Publisher(self.tp_address, timeout_s=self.timeout_s)
            feed = _Feed(publisher)
            conn.state["feed"] = feed
            with self._lock:
                self._feeds[conn.id] = feed
        return feed

    def _settle(self, feed: _Feed, conn_id: int) -> None:
        """Wait for the verdicts on a feed's async batches; log and count refusals."""
        try:
            feed.publisher.flush(self.timeout_s)
            feed.unchecked = False
        except PublishError as exc:
            feed.unchecked = False
            self._count("refused_async", len(exc.errors))
            for batch, message in exc.errors:
                log.warning(
                    "q connection %d: async .u.upd batch %d refused: %s", conn_id, batch, message
                )
        except TimeoutError as exc:
            log.warning("q connection %d: %s", conn_id, exc)

    def _check_loop(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL_S):
            with self._lock:
                feeds = list(self._feeds.items())
            for conn_id, feed in feeds:
                # Skip a feed its own thread is using: it settles its batches itself.
                if feed.unchecked and feed.lock.acquire(blocking=False):
                    try:
                        self._settle(feed, conn_id)
                    finally:
                        feed.lock.release()

    def _on_close(self, conn: QConnection) -> None:
        self.fanout.unsubscribe(conn)
        with self._lock:
            feed = self._feeds.pop(conn.id, None)
        if feed is None:
            return
        with feed.lock:
            if feed.unchecked and not self._stop.is_set():
                self._settle(feed, conn.id)  # what it sent before leaving still counts
            feed.publisher.close(flush=False)
