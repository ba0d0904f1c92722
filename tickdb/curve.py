"""CURVE on the ZeroMQ ports: the ``[curve]`` section and its checks.

```toml
[curve]
mode = "on"                       # every ZeroMQ port of the stack is a CURVE server
server_key = "keys/server.secret" # the stack's server key pair (tickdb keys curve server)
client_key = "keys/tickdb.secret" # the pair tickdb's own components connect with
max_connections = 1024            # per ZeroMQ port, enforced by ZAP (so with CURVE on)
handshake_timeout_s = 10          # these three on every ZeroMQ server socket, CURVE or not
heartbeat_s = 10
heartbeat_timeout_s = 60
```

A key pair is named by its secret file, as ``tickdb keys curve NAME`` writes it
(``NAME.secret``, 0600); the public half follows from it, and a ``NAME.pub`` beside it must
match. The client key's public half must be a ``curve_keys`` entry of an ``[auth]``
identity holding :data:`COMPONENT_ROLES`: the RDBs subscribe and ask the HDBs to reload,
the gateway and the venues publish orders and fills, the tickerplant's kdb+ port publishes
for q feedhandlers. The config lives beside its checks, as ``[tls]`` does; the sockets are
made CURVE servers and clients in ``tickdb.curve_links``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tickdb.auth import AuthConfig, Identity
from tickdb.keyfiles import PUBLIC_SUFFIX, SECRET_SUFFIX, CurveKeyPair, read_key

CurveMode = Literal["off", "on"]
# What tickdb's components do over each other's ZeroMQ ports (docs/security.md).
COMPONENT_ROLES = ("read", "publish:*", "admin")


@dataclass(frozen=True, kw_only=True)
class CurveConfig:
    # "on": every ZeroMQ port is a CURVE server that lets in only the curve_keys of [auth].
    mode: CurveMode = "off"
    # Secret file of the stack's server key pair; every ZeroMQ server socket uses it.
    server_key: str = ""
    # Secret file of the key pair tickdb's components connect to each other with.
    client_key: str = ""
    # Bounds of every ZeroMQ server socket (tickdb.curve_links, docs/security.md). The cap
    # is enforced by the ZAP handler, so with mode "on" only; 0: no cap.
    max_connections: int = 1024
    # A connection that has not finished its ZMTP (and CURVE) handshake by then is closed.
    handshake_timeout_s: float = 10.0
    # A ZMTP PING to each peer this often; a peer silent for heartbeat_timeout_s after one
    # is closed (a dead host, a half-open TCP connection). 0: no heartbeats.
    heartbeat_s: float = 10.0
    heartbeat_timeout_s: float = 60.0


def load_pair(path: str | Path, setting: str = "") -> CurveKeyPair:
    """The key pair whose secret file is ``path``; ValueError naming ``setting`` if the file
    cannot be read, or the ``.pub`` beside it is another key's."""
    secret_path = Path(path)
    where = f"{setting}: " if setting else ""
    try:
        pair = CurveKeyPair.from_secret(read_key(secret_path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{where}cannot read a CURVE secret key from {path}: {exc}") from None
    stem = secret_path.name.removesuffix(SECRET_SUFFIX)
    public_path = secret_path.with_name(stem + PUBLIC_SUFFIX)
    if secret_path.name.endswith(SECRET_SUFFIX) and public_path.exists():
        try:
            public = read_key(public_path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{where}{public_path}: {exc}") from None
        if public != pair.public:
            raise ValueError(f"{where}{public_path} is not the public key of {secret_path}")
    return pair


def component_identity_problem(identity: Identity) -> str:
    """What ``identity`` lacks of :data:`COMPONENT_ROLES` ("" when nothing)."""
    missing = []
    read, publish = identity.role("read"), identity.role("publish")
    if read is None or read.resources is not None:
        missing.append("read")
    if publish is None or publish.resources is not None:
        missing.append("publish:*")
    if not identity.has_role("admin"):
        missing.append("admin")
    return ", ".join(missing)


def check_curve_config(cfg: CurveConfig, auth: AuthConfig) -> None:
    """Raise ValueError naming the key: with CURVE on, both key pairs must load, and (with
    ``[auth]`` on) the client key must be an identity that may do what components do."""
    for name in ("max_connections", "handshake_timeout_s", "heartbeat_s", "heartbeat_timeout_s"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"curve.{name}: must not be negative (0: none)")
    if cfg.heartbeat_s and cfg.heartbeat_timeout_s and cfg.heartbeat_timeout_s < cfg.heartbeat_s:
        raise ValueError("curve.heartbeat_timeout_s: must be at least heartbeat_s")
    if cfg.mode == "off":
        return
    for name in ("server_key", "client_key"):
        if not getattr(cfg, name):
            raise ValueError(f"curve.{name}: required when curve.mode is on")
    server = load_pair(cfg.server_key, "curve.server_key")
    client = load_pair(cfg.client_key, "curve.client_key")
    if server.public == client.public:
        raise ValueError("curve.client_key: must not be the server's key pair")
    if auth.mode != "on":
        return
    owner = next(
        (name for name, ident in auth.identities.items() if client.public in ident.curve_keys),
        None,
    )
    if owner is None:
        raise ValueError(
            f"curve.client_key: its public key {client.public} is no identity's curve_keys "
            "in [auth]; add it to one with roles " + ", ".join(f'"{r}"' for r in COMPONENT_ROLES)
        )
    missing = component_identity_problem(Identity.from_roles(owner, auth.identities[owner].roles))
    if missing:
        raise ValueError(
            f"curve.client_key: identity {owner!r} lacks {missing}, which tickdb's "
            "components need of each other"
        )
