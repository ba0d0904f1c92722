"""The gateway's kdb+ port: q clients (PyKX, q, qPython, ``c.java``) query the gateway.

Every query goes through the same router as HTTP, so routing, merging, limits and the
read-only check are the HTTP path's. What a client may send, sync or async:

* q text, ``h"select from trade where sym=`IBM"``, through the q translator;
* ``(`.tickdb.q; "q text")`` — the same as a call;
* ``(`.tickdb.sql; "SELECT ...")`` — SQL as over HTTP;
* ``h""`` answers ``::`` (q's "are my async messages done?"), ``tables[]`` and
  ``.tickdb.tables`` the table names.

Results are q tables (keyed where the q query is keyed, see :mod:`gateway.kdb_result`).
Every failure is a q error (type -128) whose text starts with its kind: q errors from the
translator, ``bad_query``/``forbidden`` for SQL, ``unavailable``/``timeout`` for backends,
``limit`` for a result over the row limit (a q client has no flag to see truncation by).
Async messages get no answer; their errors are logged and counted.

Who may connect: with ``[auth] mode = "on"``, an identity with a ``read`` role, logging in
with its password or one of its tokens (the user name is the identity's); an identity whose
read role names tables sees only those (``tables[]``) and queries only those (else a
``forbidden`` error). The deprecated ``[gateway] users`` (plaintext passwords) still log in,
each allowed to read everything, with a warning at start; a name that is an ``[auth]``
identity logs in only with that identity's credentials. With mode none and no users, the
port is open.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.client_limits import ClientQueries, client_key
from gateway.errors import QueryError
from gateway.kdb_result import qtypes_by_name, result_to_q
from gateway.qpath import QPath
from gateway.router import Router
from qipc.limits import ServerLimits
from qipc.server import QConnection, QIpcServer
from qipc.types import SYNC, KeyedTable, QError, QTable
from queries.q import TranslationError
from queries.read_access import check_read
from tickdb.audit import AuditLog
from tickdb.auth import Authorizer, Identity, Role
from tickdb.tls import PortTls

log = logging.getLogger(__name__)

# Wire names a client calls (one place, as for the tickerplant's .u.* names).
CALL_SQL = ".tickdb.sql"
CALL_Q = ".tickdb.q"
CALL_TABLES = ".tickdb.tables"
TABLES_TEXT = ("tables[]", "tables`.", "tables`", CALL_TABLES)


@dataclass
class KdbCounters:
    """Plain counters: tests assert on them."""

    sync: int = 0
    async_: int = 0
    errors: int = 0
    rows: int = 0


class GatewayKdbPort:
    def __init__(
        self,
        router: Router,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Mapping[str, str] | None = None,
        limits: ServerLimits | None = None,
        authorizer: Authorizer | None = None,
        client_queries: ClientQueries | None = None,
        audit: AuditLog | None = None,
        tls: PortTls | None = None,
    ) -> None:
        self.router = router
        self.client_queries = client_queries  # shared with HTTP: gateway.client_limits
        self.audit = audit or AuditLog(None, "gateway")
        self.qpath = QPath(router)
        self.users = dict(users or {})
        self.authorizer = authorizer if authorizer is not None and authorizer.enabled else None
        if self.users:
            log.warning(
                "[gateway] users holds plaintext passwords and is deprecated: give each user "
                "an [auth.identities.NAME] with a password hash (tickdb keys hash-password) "
                'and roles = ["read"] (docs/security.md)'
            )
        self.counters = KdbCounters()
        self._lock = threading.Lock()
        checked = self.authorizer is not None or bool(self.users)
        # A login names the client (for its query slots) only where passwords are checked:
        # with auth off anyone may send any name.
        self._logins_checked = bool(self.users) or bool(self.authorizer and self.authorizer.enabled)
        self.server = QIpcServer(
            self._handle,
            host=host,
            port=port,
            authenticate=self._authenticate if checked else None,
            on_login=self._record_login,
            limits=limits,
            name="gateway-kdb",
            setting="gateway.kdb_port (--kdb-port)",
            tls=tls,
        )

    @property
    def port(self) -> int:
        return int(self.server.port)

    def start(self) -> GatewayKdbPort:
        self.server.start()
        log.info("kdb+ port at %s:%d", self.server.host, self.server.port)
        return self

    def close(self) -> None:
        self.server.close(timeout=2.0)

    def _authenticate(self, user: str, password: str) -> bool:
        if self.authorizer is not None:
            identity = self.authorizer.check_login(user, password)
            if identity is not None:
                if identity.has_role("read"):
                    return True
                log.warning("gateway-kdb: %r has no read role", user)
                return False
            if self.authorizer.identity(user) is not None:
                return False  # an [auth] identity: [gateway] users does not speak for it
        expected = self.users.get(user)
        # compare_digest: the time taken must not tell how much of a password was right.
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    def _record_login(self, user: str, where: str, ok: bool, why: str) -> None:
        self.audit.record(user, "login", ok=ok, where=where, port="gateway-kdb", reason=why or None)

    def _identity(self, conn: QConnection) -> Identity | None:
        """Who ``conn`` logged in as; None when the port checks nobody."""
        if self.authorizer is None and not self.users:
            return None
        identity = conn.state.get("identity")
        if identity is None:
            found = self.authorizer.identity(conn.user) if self.authorizer else None
            # Otherwise it logged in through [gateway] users, which may read everything.
            identity = found or Identity(conn.user, (Role("read"),))
            conn.state["identity"] = identity
        return identity

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:  # one thread per client
            setattr(self.counters, name, getattr(self.counters, name) + n)

    # -- dispatch -----------------------------------------------------------------------
    def _handle(self, value: Any, msg_type: int, conn: QConnection) -> Any:
        sync = msg_type == SYNC
        self._count("sync" if sync else "async_")
        try:
            with self._client_slot(conn):
                return self._dispatch(value, self._identity(conn))
        except QError as exc:
            self._count("errors")
            if sync:
                log.warning("%r: query failed: %s", conn, exc.message[:300])
                raise
            # Nobody waits for an async answer: the log is where the mistake shows.
            log.warning("%r: async query failed: %s", conn, exc.message)
            return None

    @contextmanager
    def _client_slot(self, conn: QConnection) -> Iterator[None]:
        """One of the client's ``gateway.client_queries``; its login counts as its identity
        only when the port checks passwords."""
        if self.client_queries is None:
            yield
            return
        peer = conn.peer[0] if isinstance(conn.peer, tuple) else None
        key = client_key(conn.user if self._logins_checked else None, peer)
        if not self.client_queries.enter(key):
            raise QError(f"limit: {self.client_queries.refusal(key)}")
        try:
            yield
        finally:
            self.client_queries.leave(key)

    def _dispatch(self, value: Any, who: Identity | None) -> Any:
        if isinstance(value, str):  # q text (a char vector), or a bare name as a symbol
            return self._text(value.strip(), who)
        if isinstance(value, list) and value and isinstance(value[0], str):
            name, *args = value
            if name in (CALL_SQL, CALL_Q):
                if len(args) != 1 or not isinstance(args[0], str):
                    raise QError(f'rank: {name} takes one string, e.g. ({name}; "select ...")')
                return self._sql(args[0], who) if name == CALL_SQL else self._q(args[0], who)
            if name == CALL_TABLES and (not args or args == [None]):
                return self._tables(who)
            raise QError(f"{name}: this port answers q text, {CALL_Q}, {CALL_SQL}, {CALL_TABLES}")
        raise QError(f'type: send q text or a call such as ({CALL_SQL}; "select ...")')

    def _text(self, text: str, who: Identity | None) -> Any:
        if text == "":
            return None  # h"": the q idiom for "have my async messages been processed?"
        if text in TABLES_TEXT:
            return self._tables(who)
        return self._q(text, who)

    def _tables(self, who: Identity | None) -> np.ndarray[Any, Any]:
        names = sorted(self.router.catalog.columns)
        role = who.role("read") if who is not None else None
        if role is not None and role.resources is not None:
            names = [n for n in names if n in role.resources]
        return np.array(names, dtype=object)

    def _check_read(self, who: Identity | None, sql: str | None, q: str | None = None) -> None:
        """Whether ``who`` may read what the SQL (or the q, translated) reads. Only an
        identity whose read role names tables pays for the check."""
        role = who.role("read") if who is not None else None
        if who is None or (role is not None and role.resources is None):
            return
        if sql is None:
            sql = self.qpath.translate(q or "").sql
        check_read(who, sql, self.router.catalog.columns)

    # -- queries ------------------------------------------------------------------------
    def _q(self, text: str, who: Identity | None) -> QTable | KeyedTable:
        try:
            self._check_read(who, None, q=text)
            result = self.qpath.run(text)
        except TranslationError as exc:
            raise QError(str(exc)) from None  # the message and (at character N)
        except QueryError as exc:
            raise QError(f"{exc.kind}: {exc}") from None
        return self._answer(result.table, result.result.truncated)

    def _sql(self, sql: str, who: Identity | None) -> QTable | KeyedTable:
        try:
            self._check_read(who, sql)
            result = self.router.run_sql(sql)
        except QueryError as exc:
            raise QError(f"{exc.kind}: {exc}") from None
        return self._answer(result.table, result.truncated)

    def _answer(self, table: Any, truncated: bool) -> QTable | KeyedTable:
        if truncated:
            # q has nowhere to carry a "truncated" flag; a silently short table is worse
            # than an error that says how to get the rest.
            raise QError(
                f"limit: the result has more than {table.num_rows} rows (the gateway's "
                "max_rows); narrow the query or aggregate"
            )
        self._count("rows", table.num_rows)
        hints = qtypes_by_name(self.router.catalog.columns)
        return result_to_q(table, hints)
