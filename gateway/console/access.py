"""Who may use the console: the one check every console route (and the login page) goes
through.

Until the gateway's HTTP authentication lands, the check is :func:`users_check`: with no
``[gateway.users]`` it lets everyone in as an admin (the gateway's API is open too); with
users it asks for ``Authorization: Basic user:password`` (or ``Bearer user:password``) from
that table, 401 otherwise. Wiring real authentication is the one line in
:func:`console_check` that picks the dependency.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Header, HTTPException, Request

from gateway.auth_http import HttpAuth

ROLES_ALL = ("read", "trade", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``user`` None when nobody is asked (authentication off)."""

    user: str | None
    roles: tuple[str, ...] = field(default=ROLES_ALL)
    auth: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "roles": list(self.roles), "auth": self.auth}


def credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from a Basic header, or a bearer token written ``user:password``;
    None when absent or malformed."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    elif scheme.lower() != "bearer":
        return None
    user, sep, password = value.partition(":")
    return (user, password) if sep and user else None


def users_check(users: Mapping[str, str]) -> Callable[..., Principal]:
    """The stand-in check: everyone when ``users`` is empty, else that table's users."""
    table = dict(users)
    # A Basic challenge would make the browser ask with its own dialog (and, headless, wait
    # for one); the console's login page is the dialog, so the challenge names Bearer.
    challenge = {"WWW-Authenticate": 'Bearer realm="tickdb"'}

    def check(authorization: str | None = Header(None)) -> Principal:
        if not table:
            return Principal(None)
        found = credentials(authorization)
        if found is None:
            raise HTTPException(401, "credentials required", challenge)
        user, password = found
        expected = table.get(user)
        # Compare in constant time so the answer's timing does not leak the password.
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise HTTPException(401, "wrong user or password", challenge)
        return Principal(user, auth=True)

    return check


def auth_check(auth: HttpAuth) -> Callable[..., Any]:
    """The gateway's own authentication (``[auth]`` on): the identity, with the roles it
    holds at all; what each role covers is checked by the API routes the page calls."""

    async def check(request: Request) -> Principal:
        identity = await auth.identity(request)
        roles = tuple(a for a in ROLES_ALL if identity.has_role(a))  # type: ignore[arg-type]
        return Principal(identity.name, roles=roles, auth=True)

    return check


def console_check(
    users: Mapping[str, str] | None, auth: HttpAuth | None = None
) -> Callable[..., Any]:
    """The dependency every console route uses: ``[auth]`` when it is on, else the
    stand-in over ``[gateway.users]``."""
    if auth is not None and auth.enabled:
        return auth_check(auth)
    return users_check(users or {})
