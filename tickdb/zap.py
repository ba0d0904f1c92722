"""CURVE on ZeroMQ sockets, with the client keys of ``[auth]`` as the only ones let in.

libzmq asks a ZAP handler (RFC 27, ``inproc://zeromq.zap.01`` in the socket's context)
whether each CURVE client may connect. :class:`ZapHandler` answers from the
:class:`~tickdb.auth.Authorizer` and names the identity in the reply's User-Id, which
libzmq then attaches to every message from that connection: ``frame.get("User-Id")`` on a
frame received with ``copy=False`` says who sent it (:meth:`ZapHandler.identity_of`), so a
server can bind what a client does to who it proved to be.

Without a ZAP handler a CURVE server lets ANY client key in (it only encrypts), so
:func:`curve_server` refuses a context that has none running.

A server socket may also name the role a client needs at all (``needs``): its ZAP domain
then says so (``tickdb:read:publish``: the publish port, for identities with some ``read``
role), and the handler refuses other identities in the handshake, before they can send a
byte the server would read. Finer checks (which table, which account) stay with the server.

ZeroMQ has no connection cap of its own. A socket watched with a cap (``max_connections``,
:meth:`ZapHandler.watch`) has its connections counted from libzmq's monitor (accepted, then
disconnected: handshaking or in use alike), and a handshake that would take the port past
its cap is refused by ZAP with status 300 (RFC 27's temporary failure). libzmq then tells
the client nothing: its handshake is closed at the socket's ``HANDSHAKE_IVL``
(``curve.handshake_timeout_s``) and libzmq reconnects it, so it gets in by itself once the
port is under its cap. (A 400 would close it at once, but libzmq never retries a client
refused so.) The domain names the port, so the count of the right socket is consulted.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from tickdb.auth import ACTIONS, Action, Authorizer, Identity
from tickdb.keyfiles import CurveKeyPair

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_VERSION = b"1.0"
ZAP_DOMAIN = b"tickdb"
POLL_MS = 100  # how soon stop() is seen

_running: weakref.WeakKeyDictionary[zmq.Context[zmq.Socket[bytes]], ZapHandler] = (
    weakref.WeakKeyDictionary()
)
_running_lock = threading.Lock()


@dataclass
class ZapCounters:
    allowed: int = 0
    denied: int = 0  # every refusal: an unknown key, or a known one without the role
    denied_role: int = 0  # of them, known keys without the role the port needs
    handshake_failed: int = 0  # clients without CURVE, or with another server key (watch)
    denied_busy: int = 0  # handshakes over a port's max_connections (not in denied)


# What a failed handshake's protocol error says of the client (ZMQ_EVENT_HANDSHAKE_FAILED_*).
_HANDSHAKE_ERRORS: dict[int, str] = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: "it does not speak CURVE (no key)",
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: "its handshake does not decrypt (another server key?)",
}
_WATCHED = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
_COUNTED = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED  # a port's open connections
REPORT_EVERY_S = 5.0  # refusals over a cap are logged at most this often
_watch_ids = itertools.count()


class ZapHandler:
    """Answers libzmq's ZAP requests for one context. ``start()`` before binding a CURVE
    server socket in that context; ``stop()`` after closing it."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], authorizer: Authorizer) -> None:
        self.context = context
        self.authorizer = authorizer
        self.counters = ZapCounters()
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._error: Exception | None = None
        self._watches: queue.SimpleQueue[tuple[zmq.Socket[bytes], str]] = queue.SimpleQueue()
        # Per port (its ZAP domain's name): the cap and the connections open now; both
        # touched only on the handler's thread once watch() has queued the port.
        self.caps: dict[str, int] = {}
        self.open: dict[str, int] = {}
        self._busy_unreported = 0
        self._busy_next_report = 0.0
        self._thread = threading.Thread(target=self._run, name="zap", daemon=True)

    def start(self) -> ZapHandler:
        with _running_lock:
            if self.context in _running:
                raise RuntimeError("this context has a ZAP handler already")
            _running[self.context] = self
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            self._forget()
            raise RuntimeError(f"cannot bind {ZAP_ENDPOINT}: {self._error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self._forget()

    def __enter__(self) -> ZapHandler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _forget(self) -> None:
        with _running_lock:
            if _running.get(self.context) is self:
                del _running[self.context]

    def watch(self, socket: zmq.Socket[bytes], port: str, max_connections: int = 0) -> None:
        """Log and count the handshakes ``socket`` (a CURVE server in this context) fails
        before ZAP is asked: a client without CURVE, or one holding another server key; with
        ``max_connections``, count its open connections and refuse handshakes beyond it.
        From the socket's own thread, before it binds."""
        address = f"inproc://zap-watch-{next(_watch_ids)}"
        if max_connections > 0:
            self.caps[port] = max_connections
            self.open.setdefault(port, 0)
        socket.monitor(address, _WATCHED | (_COUNTED if max_connections > 0 else 0))
        pair = self.context.socket(zmq.PAIR)
        pair.linger = 0
        pair.connect(address)
        self._watches.put((pair, port))  # from now on the handler's thread's alone

    def identity_of(self, frame: zmq.Frame) -> Identity | None:
        """Who sent ``frame`` (received with ``copy=False`` on a CURVE server socket), or
        None for a frame without a User-Id (a socket without ZAP)."""
        try:
            user_id = frame.get("User-Id")
        except zmq.ZMQError:
            return None
        if not isinstance(user_id, str) or not user_id:
            return None
        return self.authorizer.identity(user_id)

    # -- the handler thread ---------------------------------------------------------------
    def _run(self) -> None:
        sock = self.context.socket(zmq.REP)
        sock.linger = 0
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = exc
            sock.close()
            self._bound.set()
            return
        self._bound.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        watched: dict[zmq.Socket[bytes], str] = {}
        try:
            while not self._stop.is_set():
                while not self._watches.empty():
                    pair, port = self._watches.get_nowait()
                    watched[pair] = port
                    poller.register(pair, zmq.POLLIN)
                for ready, _ in poller.poll(POLL_MS):
                    if ready is sock:
                        # Connections accepted so far are counted before a handshake is
                        # let in (its own accept came long before: greeting, HELLO).
                        self._drain_events(watched)
                        request = sock.recv_multipart()
                        sock.send_multipart(self._answer(request))
                    else:  # what _drain_events left, if anything
                        while ready.poll(0):
                            self._on_event(recv_monitor_message(ready), watched[ready])
        except zmq.ContextTerminated:
            pass  # the context ended before stop(): nothing is left to answer
        finally:
            sock.close(0)
            for pair in watched:
                pair.close(0)

    def _drain_events(self, watched: dict[zmq.Socket[bytes], str]) -> None:
        for pair, port in watched.items():
            while pair.poll(0):
                self._on_event(recv_monitor_message(pair), port)

    def _on_event(self, event: Mapping[str, Any], port: str) -> None:
        kind = event.get("event")
        if kind == zmq.EVENT_ACCEPTED:
            self.open[port] = self.open.get(port, 0) + 1
        elif kind == zmq.EVENT_DISCONNECTED:
            self.open[port] = max(self.open.get(port, 0) - 1, 0)
        else:
            self._failed_handshake(event, port)

    def _failed_handshake(self, event: Mapping[str, Any], port: str) -> None:
        self.counters.handshake_failed += 1
        value = event.get("value")
        if event.get("event") == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            why = _HANDSHAKE_ERRORS.get(int(value or 0), f"protocol error {value:#x}")
        else:  # the client went first: it gave up on the handshake (errno in value)
            why = "it closed the connection in the handshake (no key, or another server key?)"
        log.warning("zap: a client failed the CURVE handshake on the %s port: %s", port, why)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6 or request[0] != ZAP_VERSION:
            log.error("zap: malformed request of %d frames", len(request))
            request_id = request[1] if len(request) > 1 else b""
            return [ZAP_VERSION, request_id, b"400", b"malformed request", b"", b""]
        _, request_id, domain, address, _routing_id, mechanism, *credentials = request
        peer = address.decode(errors="replace")
        if self._over_cap(parse_domain(domain)[1], peer):
            # 300, RFC 27's temporary failure: the handshake waits out HANDSHAKE_IVL and
            # the client reconnects by itself (a 400 would end its retries: docstring).
            return [ZAP_VERSION, request_id, b"300", b"too many connections", b"", b""]
        try:
            user_id = self._decide(mechanism, credentials, peer, domain)
        except Exception:
            log.exception("zap: request from %s failed", peer)
            return [ZAP_VERSION, request_id, b"500", b"internal error", b"", b""]
        if user_id is None:
            self.counters.denied += 1
            return [ZAP_VERSION, request_id, b"400", b"denied", b"", b""]
        self.counters.allowed += 1
        return [ZAP_VERSION, request_id, b"200", b"OK", user_id.encode(), b""]

    def _decide(
        self, mechanism: bytes, credentials: list[bytes], peer: str, domain: bytes = ZAP_DOMAIN
    ) -> str | None:
        """The User-Id to connect ``peer`` as, or None to deny it."""
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            if not self.authorizer.enabled:
                return ""
            log.warning("zap: denied %s from %s: only CURVE is accepted", mechanism, peer)
            return None
        public = z85.encode(credentials[0]).decode()
        identity = self.authorizer.identity_for_curve_key(public)
        needs, port = parse_domain(domain)
        if identity is None:
            where = f" (the {port} port)" if port else ""
            log.warning("zap: denied CURVE key %s from %s%s: not in [auth]", public, peer, where)
            return None
        if needs and not any(identity.has_role(action) for action in needs):
            self.counters.denied_role += 1
            log.warning(
                "zap: denied CURVE key %s from %s: %r has no %s role, which the %s port needs",
                public,
                peer,
                identity.name,
                " or ".join(needs),
                port,
            )
            return None
        log.info("zap: CURVE key %s from %s is %r", public, peer, identity.name)
        return identity.name

    def _over_cap(self, port: str, peer: str) -> bool:
        """Whether ``port`` has more connections open (this one among them) than its cap;
        counted, and logged at once, then at most every ``REPORT_EVERY_S`` with a count."""
        cap = self.caps.get(port, 0)
        if not cap or self.open.get(port, 0) <= cap:
            return False
        self.counters.denied_busy += 1
        self._busy_unreported += 1
        now = time.monotonic()
        if now >= self._busy_next_report:
            log.warning(
                "zap: refused %d handshake(s) on the %s port (the latest from %s): %d "
                "connections open, its max_connections is %d",
                self._busy_unreported,
                port,
                peer,
                self.open.get(port, 0),
                cap,
            )
            self._busy_unreported = 0
            self._busy_next_report = now + REPORT_EVERY_S
        return True


# The role a client of a port needs at all: one action, or any of several ("read" or
# "trade" on the publish port: a trader may follow its own accounts' orders), or None.
Needs = Action | tuple[Action, ...] | None


def _actions(needs: Needs) -> tuple[Action, ...]:
    return () if needs is None else (needs,) if isinstance(needs, str) else needs


def domain_for(needs: Needs, port: str) -> bytes:
    """The ZAP domain of a server socket whose clients need some role of ``needs``."""
    actions = _actions(needs)
    if not actions:
        # The port is named all the same: its connection cap is looked up by it.
        return b"%s::%s" % (ZAP_DOMAIN, port.encode()) if port else ZAP_DOMAIN
    for action in actions:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
    names = "|".join(actions).encode()
    return b"%s:%s:%s" % (ZAP_DOMAIN, names, port.encode() or b"-")


def parse_domain(domain: bytes) -> tuple[tuple[Action, ...], str]:
    """The roles a ZAP domain accepts (any one will do; empty: any identity) and the port
    it names."""
    _, _, rest = domain.partition(b":")
    names, _, port = rest.decode(errors="replace").partition(":")
    wanted = names.split("|")
    return tuple(a for a in ACTIONS if a in wanted), "" if port == "-" else port


def handler_for(context: zmq.Context[zmq.Socket[bytes]]) -> ZapHandler | None:
    """The ZAP handler running in ``context``, if any."""
    with _running_lock:
        return _running.get(context)


def _key(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) != 40:
        raise ValueError("a CURVE key is 40 characters of z85")
    return raw


def curve_server(
    socket: zmq.Socket[bytes],
    server_secret: str | bytes,
    *,
    needs: Needs = None,
    port: str = "",
) -> None:
    """Make ``socket`` a CURVE server (before it binds): traffic is encrypted and only the
    clients its context's :class:`ZapHandler` allows get in: with ``needs``, only identities
    with some role of that action (``port`` names the socket in the handler's log)."""
    with _running_lock:
        if socket.context not in _running:
            raise RuntimeError(
                "no ZapHandler runs in this socket's context: a CURVE server without one "
                "lets every client key in"
            )
    secret = _key(server_secret)
    socket.curve_secretkey = secret
    socket.curve_publickey = zmq.curve_public(secret)
    socket.zap_domain = domain_for(needs, port)
    # And should the handler stop, libzmq refuses clients rather than letting them in.
    socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
    socket.curve_server = True


def curve_client(
    socket: zmq.Socket[bytes],
    client_keys: CurveKeyPair | tuple[str | bytes, str | bytes],
    server_public: str | bytes,
) -> None:
    """Make ``socket`` a CURVE client (before it connects) of the server whose public key is
    ``server_public``; ``client_keys`` is its own pair (public, secret)."""
    public, secret = (
        (client_keys.public, client_keys.secret)
        if isinstance(client_keys, CurveKeyPair)
        else client_keys
    )
    socket.curve_publickey = _key(public)
    socket.curve_secretkey = _key(secret)
    socket.curve_serverkey = _key(server_public)
