"""The gateway process: the HTTP API, the kdb+ port and the order path over its backends.

Built from the config alone (``[gateway]``, with ``tickdb gateway``'s flags already applied,
``gateway.cli``): ``start()`` connects the backends, binds the HTTP socket and starts the
order path and the kdb+ port; ``serve()`` answers HTTP until ``stop()`` (SIGTERM), writes
the ready file once HTTP accepts connections, and closes everything when it returns.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

from gateway.app import create_app
from gateway.auth_http import HttpAuth
from gateway.backends import BackendState, Replica, Topology
from gateway.client_limits import ClientQueries
from gateway.console.live import end_live_streams
from gateway.kdb_port import GatewayKdbPort
from gateway.planner import plan_query
from gateway.router import Limits, Router
from gateway.warm_up import warm_http, warm_up
from queries.service import QueryClient
from tickdb import curve_links
from tickdb.audit import AuditLog
from tickdb.auth import Authorizer
from tickdb.config import Config, GatewayConfig, kdb_limits
from tickdb.listen import AddressInUse
from tickdb.ready import write_ready
from tickdb.tls import ReloadingContext, port_tls
from tickdb.tls_failures import HandshakeFailures

if TYPE_CHECKING:  # the order path is imported only by a gateway that takes orders
    from gateway.order_setup import OrderPath


def default_in_flight() -> int:
    """Half the cores, at least two: each backend's DuckDB already uses every core for one
    query, so more queries at once per backend only contend with each other and with the
    RDB's ingest (measured with the 20-client load test: p99 ingest lag ~250 ms at 4 in
    flight, ~75-130 ms at 1, on 2 cores). Not one, though: a single slow query then held a
    backend's only slot and every other client's query to it waited out its time limit (a
    backend runs two queries at a time, its worker threads)."""
    return max(2, (os.cpu_count() or 2) // 2)


def limits_of(settings: GatewayConfig) -> Limits:
    return Limits(
        timeout_s=settings.query_timeout_s,
        max_rows=settings.max_rows,
        scan_rows=settings.scan_rows,
        in_flight=settings.in_flight or default_in_flight(),
        max_query_chars=settings.max_query_chars,
        max_nesting=settings.max_nesting,
        client_queries=settings.client_queries,
    )


class _Server(uvicorn.Server):
    """uvicorn's server; on SIGTERM/SIGINT (its own handlers while it runs) the console's
    live streams end too, since uvicorn waits for open responses before it exits."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        end_live_streams()
        super().handle_exit(sig, frame)


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.gateway
        self.limits = limits_of(self.settings)
        self.host = self.settings.host
        self.port = 0  # the bound HTTP port, once started
        self.router: Router | None = None
        self.orders: OrderPath | None = None
        self.kdb: GatewayKdbPort | None = None
        self.https_failures = HandshakeFailures("HTTP")
        # Queries running per client, over HTTP and the kdb+ port together.
        self.client_queries = ClientQueries(self.limits.client_queries)
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        # One of each per process: every port checks the same identities and writes one
        # audit file (<data_dir>/audit/gateway-<day>.jsonl while [auth] is on).
        self.authorizer = Authorizer(config.auth)
        self.audit = AuditLog.for_config(config, "gateway")

    @property
    def url(self) -> str:
        scheme = "http" if self.config.tls.http == "off" else "https"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def takes_orders(self) -> bool:
        return bool(self.settings.tp_address) and self.config.orders.enabled

    def start(self) -> None:
        # First, before any thread starts: threads inherit the priority of the one starting
        # them. A gateway is all query work; where it shares cores with a tickerplant and
        # RDBs (tickdb up, one box), 20 busy clients must not take the CPU the feed needs.
        if self.settings.nice and hasattr(os, "nice"):
            os.nice(self.settings.nice)
        try:
            self.router = self._connect_backends()
            self._sock = self._bind_http()
            self.port = self._sock.getsockname()[1]
            if self.takes_orders:
                from gateway.order_setup import start_order_path

                self.orders = start_order_path(
                    self.config,
                    self.settings.tp_address,
                    authorizer=self.authorizer,
                    audit=self.audit,
                )
            self._server = _Server(
                uvicorn.Config(
                    create_app(
                        self.router,
                        refresh_s=self.settings.refresh_s,
                        orders=self.orders,
                        tp_address=self.settings.tp_address or None,
                        order_port=self.orders.port_endpoint if self.orders else None,
                        users=self.settings.users,
                        client_queries=self.client_queries,
                        auth=HttpAuth(self.authorizer, self.audit),
                    ),
                    http=self._http_protocol(),
                    log_level="warning",
                    access_log=False,
                )
            )
            self._use_tls(self._server.config)
            self.kdb = self._start_kdb_port(self.router)
        except BaseException:
            self.close()
            raise

    def _http_protocol(self) -> Any:
        """httptools; with client certificates, the version that reads them
        (``gateway.https_identity``: a certificate may be an ``[auth]`` identity)."""
        if self.config.tls.http == "off" or not self.config.tls.client_ca:
            return "httptools"
        from gateway.https_identity import CertHttpProtocol

        return CertHttpProtocol

    def _use_tls(self, server_config: uvicorn.Config) -> None:
        """HTTPS when ``tls.http`` is on, with our context (it reloads a renewed
        certificate), not one uvicorn builds once from file names."""
        if self.config.tls.http == "off":
            return
        # A context of its own, so that failed handshakes are reported from it (asyncio
        # would drop them unlogged); the kdb+ and FIX ports report theirs themselves.
        reloading = ReloadingContext(self.config.tls)
        self.https_failures.install(reloading.context)
        server_config.load()
        server_config.ssl = reloading.context

    def _connect_backends(self) -> Router:
        curve = curve_links.for_config(self.config).client  # [curve]: the component's keys
        states = [
            self._backend(role, entry, curve)
            for role, entries in (
                ("rdb", self.settings.rdb_addresses),
                ("hdb", self.settings.hdb_addresses),
            )
            for entry in entries
        ]
        topology = Topology(states)
        topology.refresh()  # so the first query already routes by shard and date
        router = Router(topology, limits=self.limits, tables=self.config.tables)
        # Once, outside any query's time limit: the parsers' one-time setup (DuckDB's parser
        # connection, sqlglot's dialect; ~0.2-0.4 s) is not charged to the first query.
        plan_query("SELECT 1", router.catalog, topology)
        warm_up(router)  # and a real query's first-use costs (``gateway.warm_up``)
        return router

    def _backend(self, role: str, entry: str, curve: Any = None) -> BackendState:
        """One backend from its configured entry: an address, or its replicas' addresses
        separated by commas (``tcp://h:5020,tcp://h:5022``); ``curve``: the keys its
        clients connect with (``[curve]``)."""
        addresses = [a.strip() for a in entry.split(",") if a.strip()]
        if not addresses:
            raise ValueError(f"gateway.{role}_addresses: an empty entry")
        clients = [QueryClient(a, self.limits.timeout_s, curve) for a in addresses]
        if len(addresses) == 1:
            return BackendState(f"{role}:{addresses[0]}", role, clients[0])
        replicas = [
            Replica(f"{role}:{a}", role, c) for a, c in zip(addresses, clients, strict=True)
        ]
        # The state's own backend is never asked: every part goes to one of its replicas.
        return BackendState(f"{role}:{','.join(addresses)}", role, clients[0], replicas=replicas)

    def _bind_http(self) -> socket.socket:
        host, port = self.host, self.settings.port
        # proto=IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets
        # whose proto says TCP, and without it every response waited ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"{host}:{port}", "gateway.port (--port)") from None
            raise
        return sock

    def _start_kdb_port(self, router: Router) -> GatewayKdbPort | None:
        """The kdb+ port beside HTTP, or None when it is off or its port is taken."""
        settings = self.settings
        if settings.kdb_port == 0:
            return None
        try:
            return GatewayKdbPort(
                router,
                host=settings.kdb_host,
                port=settings.kdb_port,
                users=settings.users,
                limits=kdb_limits(settings),
                authorizer=self.authorizer,
                audit=self.audit,
                client_queries=self.client_queries,
                tls=port_tls(self.config.tls, "gateway_kdb"),
            ).start()
        except OSError as exc:
            # As the tickerplant's: HTTP clients need not lose the gateway to an optional port.
            logging.getLogger("gateway.kdb_port").error(
                "kdb+ port %s:%d unavailable (%s); running without it",
                settings.kdb_host,
                settings.kdb_port,
                exc,
            )
            return None

    def ready_info(self) -> dict[str, Any]:
        """What the ready file says: every endpoint as bound (ephemeral ports resolved)."""
        ready: dict[str, Any] = {"url": self.url, "host": self.host, "port": self.port}
        if self.kdb is not None:
            ready["kdb_port"] = self.kdb.port
        if self.orders is not None and self.orders.port is not None:
            ready["order_port"] = self.orders.port.endpoint
        if self.orders is not None and self.orders.fix is not None:
            ready["fix_port"] = self.orders.fix.address[1]
        return ready

    def serve(self, ready_file: Path | None = None) -> None:
        """Answer HTTP until ``stop()``; then close the kdb+ port and the order path."""
        server, sock = self._server, self._sock
        if server is None or sock is None:
            raise RuntimeError("Gateway.serve() before start()")
        threading.Thread(
            target=self._announce, args=(server, ready_file), name="gateway-ready", daemon=True
        ).start()
        try:
            server.run(sockets=[sock])
        finally:
            self.close()

    def _announce(self, server: uvicorn.Server, ready_file: Path | None) -> None:
        """Write the ready file once uvicorn accepts connections."""
        while not server.started and not server.should_exit:
            threading.Event().wait(0.01)
        if server.started:
            warm_http(self.host, self.port, self.config.tls.http != "off")
            write_ready(ready_file, self.ready_info())
            print(f"gateway listening on {self.url} (docs at {self.url}/docs)", flush=True)
            if self.kdb is not None:
                print(f"gateway kdb+ port {self.settings.kdb_host}:{self.kdb.port}", flush=True)

    def stop(self) -> None:
        """Ask ``serve()`` to return (safe from a signal handler)."""
        if self._server is not None:
            self._server.should_exit = True
        end_live_streams()  # the console's open streams, which uvicorn would wait for

    def close(self) -> None:
        """Release what ``start()`` took; the router itself closes with the app's lifespan,
        or here when the app never ran."""
        if self.kdb is not None:
            self.kdb.close()
            self.kdb = None
        if self.orders is not None:
            self.orders.close()
            self.orders = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.router is not None and (self._server is None or not self._server.started):
            self.router.close()
        self.audit.close()
