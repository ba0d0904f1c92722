"""Who an HTTP request comes from, and whether it may do what it asks: FastAPI dependencies
over the :class:`~tickdb.auth.Authorizer`.

A request carries ``Authorization: Bearer TOKEN`` (an API token) or ``Authorization: Basic``
``user:password`` (a password, or the user's own token as the password). Without valid
credentials the answer is 401 with ``WWW-Authenticate: Bearer``; with credentials whose
identity lacks the role, 403. With ``[auth] mode = "none"`` every request is the
anonymous identity with every role.

    auth = HttpAuth(authorizer)
    install_auth_errors(app)  # 401/403 bodies in the gateway's {"error", "message"} shape

    @app.post("/admin/roll", dependencies=[Depends(auth.require("admin"))])
    readers = Depends(auth.require("read", path_param("table")))

    @app.get("/tables/{table}")
    def read(table: str, who: Annotated[Identity, readers]): ...

The dependencies are plain functions, so FastAPI runs them in its thread pool: a password's
argon2 check (50-300 ms, once per password: see ``Authorizer``) never blocks the
event loop.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from tickdb.auth import ANONYMOUS, RESOURCE_KIND, Action, Authorizer, Identity

log = logging.getLogger(__name__)

REALM = 'Bearer realm="tickdb"'
Resource = str | Callable[[Request], str] | None


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


class HttpAuth:
    """The dependencies for one app: ``identity`` (any valid credentials) and
    ``require(action, resource)`` (credentials whose identity has that role)."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def identity(self, request: Request) -> Identity:
        """Who sent ``request``; 401 without valid credentials."""
        if not self.authorizer.enabled:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        peer = request.client.host if request.client else "?"
        if not header:
            raise _unauthorized(
                "credentials required: Authorization: Bearer TOKEN, or Basic user:password"
            )
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            who, identity = "a bearer token", self.authorizer.check_token(value)
        elif scheme.lower() == "basic":
            user, password = _basic(value)
            who, identity = f"user {user!r}", self.authorizer.check_login(user, password)
        else:
            raise _unauthorized(f"unsupported authorization scheme {scheme!r}: Bearer or Basic")
        if identity is None:
            log.warning("%s %s from %s: refused %s", request.method, request.url.path, peer, who)
            raise _unauthorized("invalid credentials", invalid=True)
        request.state.identity = identity
        return identity

    def require(self, action: Action, resource: Resource = None) -> Callable[[Request], Identity]:
        """A dependency: the request's identity, if it may ``action`` ``resource`` (a name,
        or a function of the request such as :func:`path_param`); else 401 or 403."""
        if action != "admin" and resource is None:
            raise ValueError(f"{action} needs the {RESOURCE_KIND[action]} it is for")

        def dependency(request: Request) -> Identity:
            identity = self.identity(request)
            name = resource(request) if callable(resource) else resource
            if not self.authorizer.allows(identity, action, name):
                what = action if name is None else f"{action} {name}"
                log.warning(
                    "%s %s: %r may not %s", request.method, request.url.path, identity.name, what
                )
                raise AuthError(403, "forbidden", f"{identity.name!r} may not {what}")
            return identity

        return dependency


def _basic(value: str) -> tuple[str, str]:
    try:
        text = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("Basic credentials must be base64 of user:password") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise _unauthorized("Basic credentials must be base64 of user:password")
    return user, password
