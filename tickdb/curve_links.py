"""Every ZeroMQ link of tickdb made a CURVE server or client as ``[curve]`` says: the one
place each component calls, before a socket binds or connects.

Servers: ``links.serve(socket, port, needs)`` makes the socket a CURVE server with the
stack's server key (``curve.server_key``) and starts a :class:`~tickdb.zap.ZapHandler` in
its context, which lets in only the ``curve_keys`` of ``[auth]`` whose identity has some
``needs`` role; ``links.identity_of(frame)`` then says who sent a message (received with
``copy=False``), for the server's own per-table or per-account checks. With ``[curve]`` off
a socket stays plaintext, and with ``[auth]`` on that is said loudly at start.

Clients take their keys, first found wins, from: an explicit ``curve=`` argument
(:class:`CurveClient`), the process's component config (:func:`install`: ``curve.client_key``
and the public half of ``curve.server_key``), or the environment: ``TICKDB_CURVE_KEY`` (the
client's secret key file) and ``TICKDB_CURVE_SERVER_KEY`` (the server's public key, a
``.pub`` file or the 40 characters themselves). None of them: plaintext.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from tickdb.auth import AuthConfig, Authorizer, Identity
from tickdb.curve import CurveConfig, load_pair
from tickdb.keyfiles import CurveKeyPair, read_key
from tickdb.zap import Needs, ZapHandler, curve_client, curve_server, handler_for

if TYPE_CHECKING:
    from tickdb.config import Config

log = logging.getLogger(__name__)

ENV_KEY = "TICKDB_CURVE_KEY"
ENV_SERVER_KEY = "TICKDB_CURVE_SERVER_KEY"
OPEN_WARNING = (
    '[auth] mode = "on" but [curve] mode = "off": THE ZEROMQ PORTS ARE OPEN (tickerplant '
    "ingest, publish and replay, RDB and HDB queries, the order port). Anyone who can reach "
    'them may publish, read and trade without credentials. Set [curve] mode = "on" '
    "(docs/security.md)."
)
_warned_open = threading.Event()


@dataclass(frozen=True)
class CurveClient:
    """A client's key pair and the public key of the server it talks to."""

    keys: CurveKeyPair
    server_public: str

    @classmethod
    def from_files(cls, key: str | Path, server_key: str | Path) -> CurveClient:
        """``key``: the client's secret key file (``tickdb keys curve NAME``: NAME.secret);
        ``server_key``: the server's ``.pub`` file, or its 40 characters of z85."""
        return cls(load_pair(key), server_public_key(server_key))

    @classmethod
    def from_env(cls) -> CurveClient | None:
        """From ``TICKDB_CURVE_KEY`` and ``TICKDB_CURVE_SERVER_KEY``; None when neither is
        set, ValueError when only one is."""
        return _from_env(os.environ.get(ENV_KEY, ""), os.environ.get(ENV_SERVER_KEY, ""))

    def apply(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` a CURVE client of that server (before it connects)."""
        curve_client(socket, self.keys, self.server_public)


@functools.lru_cache(maxsize=4)
def _from_env(key: str, server: str) -> CurveClient | None:
    if not key and not server:
        return None
    if not key or not server:
        raise ValueError(f"set both {ENV_KEY} and {ENV_SERVER_KEY} (or neither)")
    return CurveClient.from_files(key, server)


def server_public_key(value: str | Path) -> str:
    """A server's public key: a file holding it, or the z85 text itself."""
    text = str(value).strip()
    if len(text) == 40 and not Path(text).exists():
        return text
    return read_key(Path(value))


class CurveLinks:
    """The ``[curve]`` section of one process, applied to its sockets."""

    def __init__(
        self, config: CurveConfig, auth: AuthConfig, authorizer: Authorizer | None = None
    ) -> None:
        self.config = config
        self.auth = auth
        self.enabled = config.mode == "on"
        self._authorizer = authorizer
        self._lock = threading.Lock()
        self._handlers: list[ZapHandler] = []
        self.server_keys: CurveKeyPair | None = None
        self.client: CurveClient | None = None  # what this stack's components connect with
        if self.enabled:
            self.server_keys = load_pair(config.server_key, "curve.server_key")
            self.client = CurveClient(
                load_pair(config.client_key, "curve.client_key"), self.server_keys.public
            )

    @classmethod
    def from_config(cls, config: Config, authorizer: Authorizer | None = None) -> CurveLinks:
        return cls(config.curve, config.auth, authorizer)

    @property
    def authorizer(self) -> Authorizer:
        with self._lock:
            if self._authorizer is None:
                self._authorizer = Authorizer(self.auth)
            return self._authorizer

    # -- servers --------------------------------------------------------------------------
    def serve(self, socket: zmq.Socket[Any], port: str, needs: Needs = None) -> bool:
        """Make ``socket`` (not yet bound) a CURVE server when ``[curve]`` is on, for
        identities with some ``needs`` role (None: any identity); whether it now is one.
        Either way it gets the handshake and heartbeat bounds of ``[curve]``, and with
        CURVE its ``max_connections`` (counted and enforced by the ZAP handler)."""
        bound_connections(socket, self.config)
        if not self.enabled:
            if self.auth.mode == "on" and not _warned_open.is_set():
                _warned_open.set()
                log.warning(OPEN_WARNING)
            return False
        assert self.server_keys is not None
        handler = handler_for(socket.context)
        if handler is None:
            handler = ZapHandler(socket.context, self.authorizer).start()
            with self._lock:
                self._handlers.append(handler)
        curve_server(socket, self.server_keys.secret, needs=needs, port=port)
        handler.watch(socket, port, self.config.max_connections)
        return True

    def identity_of(self, frame: zmq.Frame) -> Identity | None:
        """Who sent ``frame`` (received with ``copy=False`` on a socket :meth:`serve` made a
        CURVE server); None for a frame without a ZAP User-Id."""
        name = user_id(frame)
        return None if name is None else self.authorizer.identity(name)

    def zap_counters(self) -> dict[str, int]:
        """Connections the ZAP handlers of this process let in and refused."""
        with self._lock:
            handlers = list(self._handlers)
        return {
            "zap_allowed": sum(h.counters.allowed for h in handlers),
            "zap_denied": sum(h.counters.denied for h in handlers),
            "zap_denied_role": sum(h.counters.denied_role for h in handlers),
            "handshake_failed": sum(h.counters.handshake_failed for h in handlers),
            "zap_denied_busy": sum(h.counters.denied_busy for h in handlers),
        }

    def open_connections(self) -> dict[str, int]:
        """Connections open now per capped port (``max_connections``; CURVE on)."""
        with self._lock:
            handlers = list(self._handlers)
        return {port: n for h in handlers for port, n in dict(h.open).items()}

    def stop(self, context: zmq.Context[Any] | None = None) -> None:
        """Stop the ZAP handlers started for ``context`` (None: all): before it is
        terminated, or its termination waits for the handler's socket."""
        with self._lock:
            stopping = [h for h in self._handlers if context is None or h.context is context]
        for handler in stopping:
            handler.stop()

    # -- clients --------------------------------------------------------------------------
    def client_keys(self, curve: CurveClient | None = None) -> CurveClient | None:
        """``curve`` if given, else this stack's component keys (None with CURVE off)."""
        return curve if curve is not None else self.client


def bound_connections(socket: zmq.Socket[Any], config: CurveConfig) -> None:
    """ZeroMQ's own connection bounds on a server socket (before it binds): the handshake
    must finish within ``handshake_timeout_s``, and a peer that answers no PING within
    ``heartbeat_timeout_s`` is closed. A live client that is merely quiet stays connected
    (ZeroMQ has no idle timeout): ``max_connections`` bounds those."""
    socket.setsockopt(zmq.HANDSHAKE_IVL, int(config.handshake_timeout_s * 1000))
    if config.heartbeat_s > 0:
        socket.setsockopt(zmq.HEARTBEAT_IVL, int(config.heartbeat_s * 1000))
        if config.heartbeat_timeout_s > 0:  # else ZeroMQ's default: heartbeat_s
            socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(config.heartbeat_timeout_s * 1000))


def user_id(frame: zmq.Frame) -> str | None:
    """The ZAP User-Id libzmq attached to ``frame`` (the identity's name), or None."""
    try:
        name = frame.get("User-Id")
    except zmq.ZMQError:  # no metadata: a plaintext socket, or libzmq's own message
        return None
    return name if isinstance(name, str) and name else None


_installed: CurveLinks | None = None


def install(config: Config, authorizer: Authorizer | None = None) -> CurveLinks:
    """This process is a component of the stack ``config`` describes: its servers and
    clients follow ``[curve]`` (and the environment's keys are not used)."""
    global _installed
    _installed = CurveLinks.from_config(config, authorizer)
    return _installed


def for_config(config: Config) -> CurveLinks:
    """The links of a component built from ``config``: the installed ones when they are
    for the same sections, else new ones."""
    links = _installed
    if links is not None and links.config == config.curve and links.auth == config.auth:
        return links
    return CurveLinks.from_config(config)


def counters() -> dict[str, int]:
    """The ZAP counters of this process's component links (empty when none installed)."""
    return _installed.zap_counters() if _installed is not None else {}


def client_keys(curve: CurveClient | None = None) -> CurveClient | None:
    """The keys a client socket connects with: ``curve``, else the installed component
    config's, else the environment's (module docstring); None: plaintext."""
    if curve is not None:
        return curve
    if _installed is not None:
        return _installed.client
    return CurveClient.from_env()


def secure_client(socket: zmq.Socket[Any], curve: CurveClient | None = None) -> None:
    """Make ``socket`` (not yet connected) a CURVE client when :func:`client_keys` has keys."""
    keys = client_keys(curve)
    if keys is not None:
        keys.apply(socket)
