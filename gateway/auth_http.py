"""Who an HTTP request comes from, and whether it may do what it asks: FastAPI dependencies
over the :class:`~tickdb.auth.Authorizer`.

A request carries ``Authorization: Bearer TOKEN`` (an API token) or ``Authorization: Basic``
``user:password`` (a password, or the user's own token as the password); over HTTPS with
``tls.client_ca``, a request without that header may instead be authenticated by the
client certificate of its connection (``gateway.https_identity``), when an identity names
it (``cert_subjects``, ``cert_fingerprints``): a header, when sent, decides. Without valid
credentials the answer is 401 with ``WWW-Authenticate: Bearer``; with credentials whose
identity lacks the role, 403. With ``[auth] mode = "none"`` every request is the
anonymous identity with every role.

    auth = HttpAuth(authorizer)
    install_auth_errors(app)  # 401/403 bodies in the gateway's {"error", "message"} shape

    @app.post("/admin/roll", dependencies=[Depends(auth.require("admin"))])
    readers = Depends(auth.require("read", path_param("table")))

    @app.get("/tables/{table}")
    def read(table: str, who: Annotated[Identity, readers]): ...

The dependencies are coroutines that check a token (a sha256) or mode none on the event
loop, with no thread-pool hop on the request path, and a Basic password in the thread pool,
so its argon2 check (50-300 ms, once per password: see ``Authorizer``) never blocks the
event loop. ``authenticate`` is the same check as a plain function.

With an :class:`~tickdb.audit.AuditLog`, refused credentials (``login``, ok false) and
refused roles (``denied``) are recorded, and so is an identity's first request from an
address (``login``), again at most once an hour: HTTP has no sessions, so that is its login.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from gateway.https_identity import ClientCert, client_cert
from tickdb.audit import AuditLog
from tickdb.auth import ANONYMOUS, RESOURCE_KIND, Action, Authorizer, Identity

log = logging.getLogger(__name__)

REALM = 'Bearer realm="tickdb"'
LOGIN_RECORD_S = 3600.0  # an identity's requests from one address are one login per hour
MAX_LOGINS_REMEMBERED = 4096
Resource = str | Callable[[Request], str] | None
Dependency = Callable[[Request], Awaitable[Identity]]


class AuthError(HTTPException):
    """401 or 403. Its ``detail`` is the gateway's error body; :func:`install_auth_errors`
    sends it as the whole body, otherwise FastAPI nests it under ``detail``."""

    def __init__(self, status: int, kind: str, message: str, challenge: str | None = None):
        headers = {"WWW-Authenticate": challenge} if challenge else None
        super().__init__(status, detail={"error": kind, "message": message}, headers=headers)


def install_auth_errors(app: FastAPI) -> None:
    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        return JSONResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(AuthError, handler)


def path_param(name: str) -> Callable[[Request], str]:
    """The resource of a request is its path parameter ``name`` (e.g. ``/tables/{table}``)."""

    def resource(request: Request) -> str:
        return str(request.path_params[name])

    return resource


def _unauthorized(message: str, invalid: bool = False) -> AuthError:
    challenge = REALM + (', error="invalid_token"' if invalid else "")
    return AuthError(401, "unauthorized", message, challenge)


def peer(request: Request) -> str:
    """Where a request comes from, ``host:port``, for logs and the audit."""
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


class HttpAuth:
    """The dependencies for one app: ``identity`` (any valid credentials) and
    ``require(action, resource)`` (credentials whose identity has that role)."""

    def __init__(self, authorizer: Authorizer, audit: AuditLog | None = None) -> None:
        self.authorizer = authorizer
        self.audit = audit or AuditLog(None, "http")
        self._logins: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.authorizer.enabled

    async def identity(self, request: Request) -> Identity:
        """A dependency: who sent ``request``; 401 without valid credentials."""
        if not self.authorizer.enabled:
            return ANONYMOUS
        if request.headers.get("authorization", "").lstrip()[:6].lower() == "basic ":
            return await run_in_threadpool(self.authenticate, request)
        return self.authenticate(request)

    def authenticate(self, request: Request) -> Identity:
        """Who sent ``request``; 401 without valid credentials. Blocks for argon2 when a
        Basic password is new to this process."""
        if not self.authorizer.enabled:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        if not header:
            cert = client_cert(request.scope)
            if cert is not None:
                return self._by_certificate(request, cert)
            raise _unauthorized(
                "credentials required: Authorization: Bearer TOKEN, or Basic user:password"
            )
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        user = ""
        if scheme.lower() == "bearer":
            who, identity = "a bearer token", self.authorizer.check_token(value)
        elif scheme.lower() == "basic":
            user, password = _basic(value)
            who, identity = f"user {user!r}", self.authorizer.check_login(user, password)
        else:
            raise _unauthorized(f"unsupported authorization scheme {scheme!r}: Bearer or Basic")
        if identity is None:
            log.warning(
                "%s %s from %s: refused %s", request.method, request.url.path, peer(request), who
            )
            self.record(request, user, "login", ok=False, scheme=scheme.lower())
            raise _unauthorized("invalid credentials", invalid=True)
        self._first_login(request, identity)
        request.state.identity = identity
        return identity

    def _by_certificate(self, request: Request, cert: ClientCert) -> Identity:
        """The identity a verified client certificate names; 401 if none does."""
        identity = self.authorizer.identity_for_cert(cert.fingerprint, cert.subject)
        if identity is None:
            log.warning(
                "%s %s from %s: refused client certificate %s: no identity names it",
                request.method,
                request.url.path,
                peer(request),
                cert.describe(),
            )
            self.record(request, cert.subject, "login", ok=False, scheme="certificate")
            raise _unauthorized(
                f"the client certificate {cert.describe()} is no identity's in [auth] "
                "(cert_subjects, cert_fingerprints); or send Authorization",
                invalid=True,
            )
        self._first_login(request, identity)
        request.state.identity = identity
        return identity

    def counted_user(self, scope: Scope) -> str | None:
        """The name a request's queries count under before its route authenticates it
        (``gateway.client_limits``): a valid bearer token's identity, or the user a Basic
        login names (checked at the route, which refuses a false one at once); None
        counts it by address. Never argon2 here: this runs on the event loop."""
        if not self.authorizer.enabled:
            return None
        header = dict(scope.get("headers") or ()).get(b"authorization", b"").decode("latin-1")
        cert = client_cert(scope) if not header else None
        if cert is not None:
            identity = self.authorizer.identity_for_cert(cert.fingerprint, cert.subject)
            return identity.name if identity is not None else None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            identity = self.authorizer.check_token(value.strip())
            return identity.name if identity is not None else None
        if scheme.lower() == "basic":
            try:
                return _basic(value.strip())[0] or None
            except AuthError:
                return None
        return None

    async def optional_identity(self, request: Request) -> Identity | None:
        """Who sent ``request``, None when it carries no credentials (401 for invalid ones)."""
        if (
            self.authorizer.enabled
            and not request.headers.get("authorization")
            and client_cert(request.scope) is None
        ):
            return None
        return await self.identity(request)

    def require(self, action: Action, resource: Resource = None) -> Dependency:
        """A dependency: the request's identity, if it may ``action`` ``resource`` (a name,
        or a function of the request such as :func:`path_param`); else 401 or 403."""
        if action != "admin" and resource is None:
            raise ValueError(f"{action} needs the {RESOURCE_KIND[action]} it is for")

        async def dependency(request: Request) -> Identity:
            identity = await self.identity(request)
            name = resource(request) if callable(resource) else resource
            self.check(request, identity, action, name)
            return identity

        return dependency

    def require_role(self, action: Action) -> Dependency:
        """A dependency: the request's identity, if it may ``action`` anything at all (e.g.
        read some table); the route narrows it down with :meth:`check`."""

        async def dependency(request: Request) -> Identity:
            identity = await self.identity(request)
            if self.authorizer.enabled and not identity.has_role(action):
                raise self.refuse(request, identity, action)
            return identity

        return dependency

    def check(
        self, request: Request, identity: Identity, action: Action, resource: str | None
    ) -> None:
        """Raise 403 (recorded) unless ``identity`` may ``action`` ``resource``."""
        if not self.authorizer.allows(identity, action, resource):
            raise self.refuse(
                request, identity, action if resource is None else f"{action} {resource}"
            )

    def refuse(self, request: Request, identity: Identity, what: str) -> AuthError:
        """The 403 for ``identity`` asking for ``what`` (``"read quote"``), logged and recorded."""
        log.warning("%s %s: %r may not %s", request.method, request.url.path, identity.name, what)
        self.record(request, identity.name, "denied", ok=False, wanted=what)
        return AuthError(403, "forbidden", f"{identity.name!r} may not {what}")

    def record(self, request: Request, who: str, action: str, **detail: Any) -> None:
        """An audit record of ``request`` (who, what; when and where are added)."""
        if self.audit.enabled:
            route = f"{request.method} {request.url.path}"
            self.audit.record(who, action, where=peer(request), port="http", route=route, **detail)

    def _first_login(self, request: Request, identity: Identity) -> None:
        if not self.audit.enabled:
            return
        key = (identity.name, request.client.host if request.client else "?")
        now = time.monotonic()
        with self._lock:
            last = self._logins.get(key)
            if last is not None and now - last < LOGIN_RECORD_S:
                return
            self._logins[key] = now
            self._logins.move_to_end(key)
            while len(self._logins) > MAX_LOGINS_REMEMBERED:
                self._logins.popitem(last=False)
        self.record(request, identity.name, "login")


def _basic(value: str) -> tuple[str, str]:
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("Basic credentials must be base64 of user:password") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise _unauthorized("Basic credentials must be base64 of user:password")
    return user, password
