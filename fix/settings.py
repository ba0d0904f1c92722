"""The ``[fix]`` config section as ``SessionSettings`` for the acceptor's client sessions.

```toml
[fix]
enabled = true
port = 9878

[fix.sessions.desk1]           # a client: its CompID, ours, the account it trades for
sender_comp_id = "DESK1"       # the client's SenderCompID (our TargetCompID)
target_comp_id = "TICKDB"      # the client's TargetCompID (our SenderCompID)
account = "A1"
password = "secret"            # required in Password (554) at logon
username = ""                  # when set, required in Username (553)

```

With ``[auth] mode = "on"`` a session names an identity instead of holding a password:
``identity = "desk1"``. The client logs on with that identity's password or one of its
tokens in Password (554) (and, if it sends Username (553), the identity's name), and the
identity's ``trade`` role must cover the session's account. ``password`` and ``username``
are then refused: the identity's credentials are the only ones.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fix.session_types import SessionSettings
from tickdb.auth import AuthConfig, Identity

SESSION_KEYS = {"sender_comp_id": str, "target_comp_id": str, "account": str}
SESSION_OPTIONAL = {"password": str, "username": str, "identity": str}


def _check(
    where: str, raw: Any, required: Mapping[str, type], optional: Mapping[str, type]
) -> None:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table of settings")
    known = {**required, **optional}
    for key, value in raw.items():
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown setting (known: {', '.join(sorted(known))})")
        kind = known[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    for key in required:
        if key not in raw or raw[key] == "":
            raise ValueError(f"{where}.{key}: required")


def check_fix_config(fix: Any, auth: AuthConfig | None = None) -> None:
    """Raise ValueError naming the key for anything that cannot be used."""
    seen: set[tuple[str, str]] = set()
    for name, raw in fix.sessions.items():
        _check(f"fix.sessions.{name}", raw, SESSION_KEYS, SESSION_OPTIONAL)
        if auth is not None and auth.mode == "on":
            _check_identity(f"fix.sessions.{name}", raw, auth)
        pair = (raw["sender_comp_id"], raw["target_comp_id"])
        if pair in seen:
            raise ValueError(f"fix.sessions.{name}: CompIDs {pair} are used by another session")
        seen.add(pair)
    check_fix_venues(fix)
    for key in ("max_message_bytes", "max_connections", "logon_timeout_s", "max_latency_s"):
        if getattr(fix, key) <= 0:
            raise ValueError(f"fix.{key}: must be positive")


def _check_identity(where: str, raw: dict[str, Any], auth: AuthConfig) -> None:
    """With auth on, a session logs on as an ``[auth]`` identity that may trade its account."""
    name = raw.get("identity", "")
    if not name:
        raise ValueError(
            f'{where}.identity: required with [auth] mode = "on" (the identity whose '
            "password or token the client sends in 554)"
        )
    for key in ("password", "username"):
        if raw.get(key):
            raise ValueError(
                f"{where}.{key}: not used with [auth] on (the identity {name!r}'s "
                "credentials are checked); remove it"
            )
    ident = auth.identities.get(name)
    if ident is None:
        raise ValueError(f"{where}.identity: no [auth.identities.{name}]")
    try:
        identity = Identity.from_roles(name, ident.roles)
    except ValueError:
        return  # a bad role: check_auth_config names it
    if not identity.may("trade", raw["account"]):
        raise ValueError(f"{where}.identity: {name!r} may not trade account {raw['account']!r}")


def store_dir(cfg: Any) -> Path:
    return Path(cfg.fix.store_dir) if cfg.fix.store_dir else cfg.data_path / "fix"


def acceptor_sessions(cfg: Any) -> list[SessionSettings]:
    fix = cfg.fix
    return [
        SessionSettings(
            name=name,
            # Ours is the client's TargetCompID, and the other way round.
            sender_comp_id=raw["target_comp_id"],
            target_comp_id=raw["sender_comp_id"],
            account=raw["account"],
            password=raw.get("password", ""),
            username=raw.get("username", ""),
            identity=raw.get("identity", ""),
            store_dir=store_dir(cfg),
            max_latency_s=fix.max_latency_s,
            logon_timeout_s=fix.logon_timeout_s,
        )
        for name, raw in fix.sessions.items()
    ]


VENUE_KEYS = {
    "shard": int,
    "host": str,
    "port": int,
    "sender_comp_id": str,
    "target_comp_id": str,
}
VENUE_OPTIONAL = {
    "password": str,
    "username": str,
    "heartbeat_s": int,
    "reconnect_s": float,
    # TLS to the venue: the CA to trust (empty: the system's), a client certificate.
    "tls": bool,
    "tls_ca": str,
    "tls_cert": str,
    "tls_key": str,
}


def venue_tls(where: str, raw: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The client context ``[fix.venues.NAME]`` asks for; None without ``tls = true``."""
    if not raw.get("tls", False):
        if any(raw.get(k) for k in ("tls_ca", "tls_cert", "tls_key")):
            raise ValueError(f"{where}.tls: set tls = true to use tls_ca, tls_cert, tls_key")
        return None
    from tickdb.tls import client_context

    try:
        return client_context(
            raw.get("tls_ca") or None, cert=raw.get("tls_cert") or None, key=raw.get("tls_key")
        )
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{where}.tls_ca, tls_cert, tls_key: cannot load: {exc}") from None


def check_fix_venues(fix: Any) -> None:
    """``[fix.venues.NAME]``: a shard routed to an external FIX venue (orders.fix_venue)."""
    shards: set[int] = set()
    for name, raw in fix.venues.items():
        where = f"fix.venues.{name}"
        _check(where, raw, VENUE_KEYS, VENUE_OPTIONAL)
        if raw["shard"] < 0:
            raise ValueError(f"{where}.shard: must be 0 or more")
        if raw["shard"] in shards:
            raise ValueError(f"{where}.shard: shard {raw['shard']} has another FIX venue")
        shards.add(raw["shard"])
        if not 0 < raw["port"] < 65536:
            raise ValueError(f"{where}.port: must be a TCP port")
        venue_tls(where, raw)
