"""Who may connect, and what each identity may do: the ``[auth]`` section, checked.

An identity (``[auth.identities.NAME]``) proves itself with any of its credentials: a
password (stored as an argon2 hash), an API token (stored as ``sha256:<hex>``), a CURVE
public key (ZeroMQ) or an HTTPS client certificate (by subject or fingerprint). Its roles
say what it may do:

========  ==============================================  ====================
role      allows                                          resource
========  ==============================================  ====================
read      queries and subscriptions                       tables, or every one
publish   rows into the tickerplant                       tables, or ``*``
trade     orders, cancels and replaces                    accounts, or ``*``
admin     roll, reload, risk limits, kill switch, repl.   none
========  ==============================================  ====================

A port asks :meth:`Authorizer.check_password`, :meth:`~Authorizer.check_token` or
:meth:`~Authorizer.identity_for_curve_key` who a client is, then
:meth:`~Authorizer.allows` whether it may do what it asks. With ``mode = "none"`` every
check passes (an identity with every role) and the Authorizer says so in a WARNING at start.

Secrets are compared in constant time, and an unknown user costs an argon2 verification
like a known one, so neither timing nor speed tells which part of a login was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from zmq.utils import z85

log = logging.getLogger(__name__)

Action = Literal["read", "publish", "trade", "admin"]
ACTIONS: tuple[Action, ...] = get_args(Action)
# What names the resource of each action, for messages ("publish needs a table").
RESOURCE_KIND: dict[Action, str] = {"read": "table", "publish": "table", "trade": "account"}
ALL = "*"
TOKEN_PREFIX = "sha256:"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
OPEN_WARNING = (
    '[auth] mode = "none": EVERY PORT IS OPEN. Anyone who can reach a port may read, '
    'publish, trade and administer without credentials. Set [auth] mode = "on" with '
    "identities (docs/security.md)."
)
VERIFIED_CACHE = 1024  # successful password checks remembered (HTTP Basic on every request)


@dataclass(frozen=True, kw_only=True)
class IdentityConfig:
    # [auth.identities.NAME] (docs/security.md); tickdb.auth checks each value.
    # An argon2 hash (`tickdb keys hash-password`), never the password; empty: no password.
    password: str = ""
    # "sha256:<hex>" of API tokens (`tickdb keys token`); two while one is rotated out.
    tokens: list[str] = field(default_factory=list)
    # z85 CURVE public keys of this identity's ZeroMQ clients (`tickdb keys curve`).
    curve_keys: list[str] = field(default_factory=list)
    # HTTPS client certificates (tls.client_ca signs them; `tickdb keys tls-client`): by
    # subject, RFC 4514 ("CN=desk1,O=tickdb": any certificate the CA signs with it), or
    # by fingerprint ("sha256:<hex>" of the DER: that one certificate).
    cert_subjects: list[str] = field(default_factory=list)
    cert_fingerprints: list[str] = field(default_factory=list)
    # "read", "read:TABLE", "publish:TABLE", "publish:*", "trade:ACCOUNT", "trade:*", "admin".
    roles: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    # "none": every port open, said loudly at start; "on": credentials and roles checked.
    mode: Literal["on", "none"] = "none"
    identities: dict[str, IdentityConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class Role:
    """One action an identity may take, on some resources or (``resources`` None) all."""

    action: Action
    resources: frozenset[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Role:
        """``"read"``, ``"read:trade"``, ``"publish:*"``, ``"trade:ACC1"``, ``"admin"``."""
        action, _, resource = text.partition(":")
        if action not in ACTIONS:
            raise ValueError(f"unknown role {text!r} (roles: {', '.join(ACTIONS)})")
        if action == "admin":
            if resource:
                raise ValueError(f"role {text!r}: admin takes no resource, write 'admin'")
            return cls("admin")
        if not resource and action != "read":
            kind = RESOURCE_KIND[action]
            raise ValueError(f"role {text!r}: name the {kind} ({action}:NAME) or write {action}:*")
        if resource in ("", ALL):
            return cls(action)
        return cls(action, frozenset([resource]))

    def covers(self, resource: str) -> bool:
        return self.resources is None or resource in self.resources

    def __str__(self) -> str:
        if self.action == "admin":
            return "admin"
        if self.resources is None:
            return f"{self.action}:*"
        return ", ".join(f"{self.action}:{r}" for r in sorted(self.resources))


@dataclass(frozen=True)
class Identity:
    """Who a client is and, per action, what it may touch. ``roles`` has at most one
    Role per action (the resources of every grant of that action together)."""

    name: str
    roles: tuple[Role, ...] = ()

    @classmethod
    def from_roles(cls, name: str, texts: Iterable[str]) -> Identity:
        merged: dict[Action, frozenset[str] | None] = {}
        for role in map(Role.parse, texts):
            if role.action in merged:
                before = merged[role.action]
                both = None if before is None or role.resources is None else before | role.resources
                merged[role.action] = both
            else:
                merged[role.action] = role.resources
        return cls(name, tuple(Role(a, merged[a]) for a in ACTIONS if a in merged))

    def role(self, action: Action) -> Role | None:
        return next((r for r in self.roles if r.action == action), None)

    def has_role(self, action: Action) -> bool:
        """Whether it may ``action`` anything at all (e.g. read some table)."""
        return self.role(action) is not None

    def may(self, action: Action, resource: str | None = None) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (actions: {', '.join(ACTIONS)})")
        if action != "admin" and resource is None:
            raise ValueError(f"{action} needs the {RESOURCE_KIND[action]} it is for")
        role = self.role(action)
        return role is not None and (resource is None or role.covers(resource))


# mode = "none": whoever connects may do everything.
ANONYMOUS = Identity("anonymous", tuple(Role(a) for a in ACTIONS))


def hash_token(token: str) -> str:
    """The config form of an API token: tokens are long and random, so one sha256 is
    enough (argon2's cost is for guessable passwords)."""
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def check_auth_config(config: AuthConfig, tables: Mapping[str, object] | None = None) -> None:
    """Raise ValueError naming the key for anything the Authorizer could not use: a
    plaintext password, a malformed token hash or key, an unknown role or table, one
    credential on two identities."""
    owners: dict[str, str] = {}
    for name, ident in config.identities.items():
        key = f"auth.identities.{name}"
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"{key}: a name is letters, digits and _.@- (up to 64)")
        if ident.password:
            try:
                argon2.extract_parameters(ident.password)
            except InvalidHashError:
                raise ValueError(
                    f"{key}.password: not an argon2 hash; plaintext passwords are not "
                    "accepted (make a hash with `tickdb keys hash-password`)"
                ) from None
        for i, token in enumerate(ident.tokens):
            digest = token.removeprefix(TOKEN_PREFIX)
            if not token.startswith(TOKEN_PREFIX) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(
                    f"{key}.tokens[{i}]: expected sha256:<64 hex digits> (the line "
                    "`tickdb keys token` prints), never the token itself"
                )
        for i, public in enumerate(ident.curve_keys):
            if _curve_bytes(public) is None:
                raise ValueError(f"{key}.curve_keys[{i}]: not a z85 CURVE public key (40 chars)")
        for i, text in enumerate(ident.roles):
            try:
                role = Role.parse(text)
            except ValueError as exc:
                raise ValueError(f"{key}.roles[{i}]: {exc}") from None
            unknown = sorted((role.resources or frozenset()) - set(tables or ()))
            if tables is not None and role.action in ("read", "publish") and unknown:
                raise ValueError(f"{key}.roles[{i}]: unknown table {unknown[0]!r}")
        for i, fingerprint in enumerate(ident.cert_fingerprints):
            if cert_fingerprint(fingerprint) is None:
                raise ValueError(
                    f"{key}.cert_fingerprints[{i}]: expected sha256:<64 hex digits> (colons "
                    "allowed), the line `tickdb keys tls-client` prints"
                )
        for i, subject in enumerate(ident.cert_subjects):
            if "=" not in subject:
                raise ValueError(f"{key}.cert_subjects[{i}]: expected RFC 4514, CN=NAME,O=ORG")
        credentials = [
            *ident.tokens,
            *(_curve_id(k) for k in ident.curve_keys),
            *(f"cert:{cert_fingerprint(f)}" for f in ident.cert_fingerprints),
            *(f"subject:{s}" for s in ident.cert_subjects),
        ]
        for credential in credentials:
            other = owners.setdefault(credential, name)
            if other != name:
                raise ValueError(
                    f"{key}: a token, CURVE key or client certificate of {other!r} too"
                )


def cert_fingerprint(text: str) -> str | None:
    """``sha256:AB:CD:…`` or ``sha256:abcd…`` as 64 lowercase hex digits; None if not one."""
    if not text.lower().startswith(TOKEN_PREFIX):
        return None
    digest = text[len(TOKEN_PREFIX) :].replace(":", "").lower()
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _curve_bytes(public: str | bytes) -> bytes | None:
    text = public.encode() if isinstance(public, str) else public
    if len(text) != 40:
        return None
    try:
        return bytes(z85.decode(text))
    except (ValueError, KeyError, TypeError):
        return None


def _curve_id(public: str) -> str:
    return "curve:" + (_curve_bytes(public) or b"").hex()


class Authorizer:
    """The ``[auth]`` section, ready for the ports: who a credential belongs to, and what
    that identity may do. Thread-safe; one per process."""

    def __init__(self, config: AuthConfig, *, hasher: argon2.PasswordHasher | None = None) -> None:
        check_auth_config(config)
        self.mode = config.mode
        self.enabled = config.mode == "on"
        self._hasher = hasher or argon2.PasswordHasher()
        self._identities = {
            name: Identity.from_roles(name, ident.roles)
            for name, ident in config.identities.items()
        }
        self._passwords = {n: i.password for n, i in config.identities.items() if i.password}
        self._tokens = [
            (bytes.fromhex(t.removeprefix(TOKEN_PREFIX)), n)
            for n, i in config.identities.items()
            for t in i.tokens
        ]
        self._curve = [
            (_curve_bytes(k) or b"", n) for n, i in config.identities.items() for k in i.curve_keys
        ]
        self._cert_fingerprints = {
            cert_fingerprint(f): n
            for n, i in config.identities.items()
            for f in i.cert_fingerprints
        }
        self._cert_subjects = {s: n for n, i in config.identities.items() for s in i.cert_subjects}
        self._dummy_hash: str | None = None
        # A keyed digest of each password that verified, so HTTP Basic does not pay argon2
        # on every request; the key lives only in this process.
        self._cache_key = secrets.token_bytes(32)
        self._verified: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._lock = threading.Lock()
        if not self.enabled:
            log.warning(OPEN_WARNING)
        elif not self._identities:
            log.warning('[auth] mode = "on" with no identities: every client is refused')
        else:
            log.info("auth on: %d identities", len(self._identities))

    # -- who ----------------------------------------------------------------------------
    def identity(self, name: str) -> Identity | None:
        """The identity called ``name`` (a kdb+ user, a ZAP User-Id); anyone in mode none."""
        if not self.enabled:
            return ANONYMOUS
        return self._identities.get(name)

    def check_password(self, user: str, password: str) -> Identity | None:
        if not self.enabled:
            return ANONYMOUS
        stored = self._passwords.get(user)
        tag = (user, hmac.digest(self._cache_key, password.encode(), "sha256"))
        if stored is not None:
            with self._lock:
                if tag in self._verified:
                    self._verified.move_to_end(tag)
                    return self._identities[user]
        try:
            # An unknown user costs a verification too: the answer's timing says nothing.
            self._hasher.verify(stored or self._dummy(), password)
        except (VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        with self._lock:
            self._verified[tag] = None
            while len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return self._identities[user]

    def check_token(self, token: str) -> Identity | None:
        if not self.enabled:
            return ANONYMOUS
        digest = hashlib.sha256(token.encode()).digest()
        return self._find(self._tokens, digest)

    def check_login(self, user: str, secret: str) -> Identity | None:
        """A kdb+ or HTTP Basic login: ``user``'s password, or a token of ``user``'s.

        The token must belong to ``user`` so that the connection's user name always names
        the identity it acts as."""
        identity = self.check_password(user, secret)
        if identity is None and secret:
            by_token = self.check_token(secret)
            if by_token is not None and by_token.name == user:
                identity = by_token
        return identity

    def identity_for_curve_key(self, public: str | bytes) -> Identity | None:
        """The identity of a CURVE client's z85 public key; None for an unknown key."""
        if not self.enabled:
            return ANONYMOUS
        raw = _curve_bytes(public)
        return None if raw is None else self._find(self._curve, raw)

    def identity_for_cert(self, fingerprint: str, subject: str) -> Identity | None:
        """The identity of a client certificate the TLS handshake verified: its sha256
        ``fingerprint`` (hex) or its RFC 4514 ``subject`` names it (a fingerprint first);
        None for one no identity names. Neither is a secret: the CA's signature is what
        the client proved, so no constant-time compare is needed."""
        if not self.enabled:
            return ANONYMOUS
        name = self._cert_fingerprints.get(fingerprint) or self._cert_subjects.get(subject)
        return None if name is None else self._identities[name]

    def _find(self, pairs: list[tuple[bytes, str]], secret: bytes) -> Identity | None:
        found = None
        for stored, name in pairs:  # all of them, every time: constant time in the match
            if hmac.compare_digest(stored, secret):
                found = name
        return None if found is None else self._identities[found]

    def _dummy(self) -> str:
        """A hash to verify an unknown user against, as costly as a configured one."""
        if self._dummy_hash is None:
            hasher = self._hasher
            if self._passwords:
                params = argon2.extract_parameters(next(iter(self._passwords.values())))
                hasher = argon2.PasswordHasher.from_parameters(params)
            self._dummy_hash = hasher.hash(secrets.token_hex(16))
        return self._dummy_hash

    # -- what ---------------------------------------------------------------------------
    def allows(
        self, identity: Identity | None, action: Action, resource: str | None = None
    ) -> bool:
        """Whether ``identity`` may ``action`` ``resource`` (a table for read/publish, an
        account for trade, nothing for admin)."""
        if not self.enabled:
            return True
        return identity is not None and identity.may(action, resource)
