"""TLS on the HTTP, kdb+ and FIX ports: the ``[tls]`` section and the contexts made from it.

One server certificate (``tickdb keys tls``) serves every port of a stack that turns TLS on;
each port has its own mode:

```toml
[tls]
cert = "tls/server.crt"
key = "tls/server.key"
client_ca = ""              # set: clients present a certificate this CA signed
client_cert = "required"    #   "optional": one that is presented must check out
http = "on"                 # the gateway's HTTP API and console
gateway_kdb = "optional"    # kdb+ ports: "optional" takes TLS and plaintext (q -E 1),
tickerplant_kdb = "on"      #   "on" TLS only (q -E 2)
fix = "on"                  # the gateway's FIX acceptor
```

The files are read again when they change (checked at most once a second, as connections
arrive), so a renewed certificate (``tickdb keys tls --renew``) is served to new
connections without a restart; connections already open keep the one they started with.
The config lives beside its checks, as ``[auth]`` does, so this module imports no config.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

TlsMode = Literal["off", "on"]
ClientCertMode = Literal["required", "optional"]
KdbTlsMode = Literal["off", "optional", "on"]
PortName = Literal["http", "gateway_kdb", "tickerplant_kdb", "fix"]
RELOAD_CHECK_S = 1.0


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    # The server certificate (PEM, intermediates after it) and its private key.
    cert: str = ""
    key: str = ""
    # When set, every TLS port requires a client certificate signed by this CA.
    client_ca: str = ""
    # With client_ca: "optional" asks for a certificate and checks one that is sent, but
    # lets clients without one in (HTTP then takes a token; a certificate named in [auth]
    # is an identity: gateway.https_identity).
    client_cert: ClientCertMode = "required"
    http: TlsMode = "off"
    gateway_kdb: KdbTlsMode = "off"
    tickerplant_kdb: KdbTlsMode = "off"
    fix: TlsMode = "off"


PORTS: tuple[PortName, ...] = ("http", "gateway_kdb", "tickerplant_kdb", "fix")


def ports_on(cfg: TlsConfig) -> list[str]:
    """The ports whose mode is not ``off``."""
    return [port for port in PORTS if getattr(cfg, port) != "off"]


def check_tls_config(cfg: TlsConfig) -> None:
    """Raise ValueError naming the key: a port with TLS on needs a certificate and key that
    load (checked at start, so a wrong path fails there and not at the first client)."""
    if cfg.client_cert not in ("required", "optional"):
        raise ValueError(f"tls.client_cert: {cfg.client_cert!r}: required or optional")
    if cfg.client_cert == "optional" and not cfg.client_ca:
        raise ValueError("tls.client_cert: optional needs tls.client_ca (the CA to check with)")
    on = ports_on(cfg)
    if not on:
        return
    for name in ("cert", "key"):
        if not getattr(cfg, name):
            raise ValueError(f"tls.{name}: required when TLS is on ({', '.join(on)})")
    make_server_context(cfg)


def make_server_context(cfg: TlsConfig) -> ssl.SSLContext:
    """A server context from the files ``cfg`` names; ValueError naming the key if one
    cannot be read."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # Renegotiation is the one way a write could need a read (TLS 1.2); nothing uses it.
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cfg.cert, cfg.key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls.cert, tls.key: cannot load {cfg.cert}, {cfg.key}: {exc}") from None
    if cfg.client_ca:
        try:
            ctx.load_verify_locations(cfg.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"tls.client_ca: cannot load {cfg.client_ca}: {exc}") from None
        optional = cfg.client_cert == "optional"
        ctx.verify_mode = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED
    return ctx


def client_context(
    ca: str | Path | None = None,
    *,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client context: trusts ``ca`` (a PEM file; None: the system's store), presents
    ``cert``/``key`` when the server asks for a client certificate. ``verify=False`` checks
    nothing (encryption without knowing who answers: tests and first steps only)."""
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class PortTls:
    """TLS for one listening port: the context to wrap connections with, and whether
    plaintext clients are still accepted (kdb+ ``optional``)."""

    context: ssl.SSLContext
    optional: bool = False


class ReloadingContext:
    """A server context that hands each new connection the newest certificate.

    ``context`` is what a server wraps sockets with; its SNI callback (OpenSSL calls it for
    every ClientHello, with or without a server name) swaps in a context built from the
    files as they are now, when their modification times or sizes changed. A file that no
    longer loads (a half-written renewal) is logged and the previous context kept."""

    def __init__(self, cfg: TlsConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._current = make_server_context(cfg)
        self._stamp = self._stamps()
        self._checked = time.monotonic()
        self.reloads = 0
        self.context = make_server_context(cfg)
        self.context.sni_callback = self._on_hello

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in (self.cfg.cert, self.cfg.key, self.cfg.client_ca):
            try:
                st = os.stat(path) if path else None
            except OSError:
                st = None
            stamps.append((st.st_mtime_ns, st.st_size) if st else (0, 0))
        return tuple(stamps)

    def current(self) -> ssl.SSLContext:
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= RELOAD_CHECK_S:
                self._checked = now
                self._reload_if_changed()
            return self._current

    def _reload_if_changed(self) -> None:
        stamp = self._stamps()
        if stamp == self._stamp:
            return
        try:
            self._current = make_server_context(self.cfg)
        except ValueError as exc:  # tried again at the next check
            log.error("TLS files changed but do not load (%s); serving the old ones", exc)
            return
        self._stamp = stamp
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.cfg.cert)

    def _on_hello(
        self, conn: ssl.SSLSocket | ssl.SSLObject, _server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        conn.context = self.current()


_reloading: dict[TlsConfig, ReloadingContext] = {}
_reloading_lock = threading.Lock()


def port_tls(cfg: TlsConfig, port: PortName) -> PortTls | None:
    """TLS for ``port`` as ``cfg`` sets it; None when it is off. Ports of one process
    share one reloading context."""
    mode = getattr(cfg, port)
    if mode == "off":
        return None
    with _reloading_lock:
        reloading = _reloading.get(cfg)
        if reloading is None:
            reloading = _reloading[cfg] = ReloadingContext(cfg)
    return PortTls(reloading.context, optional=mode == "optional")


__all__ = [
    "PortTls",
    "ReloadingContext",
    "TlsConfig",
    "check_tls_config",
    "client_context",
    "make_server_context",
    "port_tls",
]
