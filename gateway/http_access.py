"""Who may use the gateway's query, catalog and health routes: FastAPI dependencies over
:class:`~gateway.auth_http.HttpAuth`, so the routes themselves only name them.

- ``query``: ``read`` on every table the SQL (or the q, translated) reads, found as the
  kdb+ port finds them (:mod:`queries.read_access`): a join, a subquery or a table macro
  naming another table is refused with 403. Only an identity whose read role names tables
  pays for the parse; one with plain ``read`` is let through at once.
- ``readable``: the tables the identity may read (``GET /tables`` lists only those); 403
  without any read role.
- ``health_detail``: whether ``GET /health`` may show its backends: without credentials it
  answers only ``{"status"}`` (a liveness probe needs no more), with an identity that may
  read something or administer, everything.

With ``[auth] mode = "none"`` each answers as if the identity could do everything.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from gateway.auth_http import HttpAuth
from gateway.errors import QueryError
from gateway.qpath import QPath
from gateway.router import Router
from queries.q import TranslationError
from queries.read_access import tables_read
from tickdb.auth import Identity

SEEN_QUERIES = 1024


class GatewayAccess:
    def __init__(self, auth: HttpAuth, router: Router) -> None:
        self.auth = auth
        self.router = router
        self.qpath = QPath(router)
        self._reader = auth.require_role("read")
        # Dashboards send the same queries again and again: each text is parsed once per
        # catalog (a parse costs ~0.5 ms of a ~5 ms round trip).
        self._seen: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()
        self._seen_for: object = None  # the catalog the answers in _seen are for
        self._lock = threading.Lock()

    async def query(self, request: Request) -> Identity:
        """A query route's dependency: 401/403 unless the identity may read every table the
        body's query reads. A body that is not a query passes: the route's validation
        answers it (400), and nothing runs."""
        identity = await self._reader(request)
        role = identity.role("read")
        if not self.auth.enabled or role is None or role.resources is None:
            return identity
        try:
            body = await request.json()
        except ValueError:
            return identity
        tables = await run_in_threadpool(self._tables_of, body)  # a parse: off the loop
        denied = sorted(tables - role.resources)
        if denied:
            raise self.auth.refuse(request, identity, f"read {', '.join(denied)}")
        return identity

    def _tables_of(self, body: Any) -> frozenset[str]:
        """The tables a request body's query reads; empty when the route will not run it."""
        sql, q = (body.get("sql"), body.get("q")) if isinstance(body, dict) else (None, None)
        if isinstance(sql, str):
            key = ("sql", sql)
        elif sql is None and isinstance(q, str):
            key = ("q", q)
        else:
            return frozenset()  # no query the route's validation lets through
        catalog = self.router.catalog
        with self._lock:
            if catalog is not self._seen_for:
                self._seen.clear()
                self._seen_for = catalog
            known = self._seen.get(key)
        if known is None:
            known = frozenset(self._parse(*key))
            with self._lock:
                self._seen[key] = known
                while len(self._seen) > SEEN_QUERIES:
                    self._seen.popitem(last=False)
        return known

    def _parse(self, kind: str, text: str) -> set[str]:
        """The tables ``text`` (SQL, or q translated against the catalog) reads."""
        sql = text
        if kind == "q":
            try:
                sql = self.qpath.translate(text).sql
            except TranslationError:
                return set()  # the route answers the same error, and runs nothing
        try:
            return tables_read(sql, self.router.catalog.columns)
        except QueryError:
            # Unparseable: nobody can say what it reads, so a limited reader may not run it.
            return {"(a query the gateway cannot read)"}

    async def readable(self, request: Request) -> list[str]:
        """The logical tables the request's identity may read, sorted; 403 for none."""
        identity = await self._reader(request)
        names = sorted(self.router.catalog.columns)
        return [n for n in names if self.auth.authorizer.allows(identity, "read", n)]

    async def health_detail(self, request: Request) -> bool:
        """Whether ``GET /health`` shows its backends: open without auth, else for an
        identity that may read or administer (401 for invalid credentials)."""
        identity = await self.auth.optional_identity(request)
        if not self.auth.enabled:
            return True
        return identity is not None and (identity.has_role("read") or identity.has_role("admin"))

    async def monitor(self, request: Request) -> Identity:
        """``GET /metrics``: an identity that may read something, or administer."""
        identity = await self.auth.identity(request)
        if self.auth.enabled and not (identity.has_role("read") or identity.has_role("admin")):
            raise self.auth.refuse(request, identity, "read the metrics (read or admin)")
        return identity
