"""``tickdb gateway`` (serve HTTP), ``tickdb query`` and ``tickdb status`` (its clients)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.client import DEFAULT_URL
from tickdb.listen import AddressInUse

FORMATS = ("table", "csv", "json", "arrow")


def default_in_flight() -> int:
    """Half the cores, at least one: each backend's DuckDB already uses every core for one
    query, so more queries at once per backend only contend with each other and with the
    RDB's ingest (measured with the 20-client load test: p99 ingest lag ~250 ms at 4 in
    flight, ~75-130 ms at 1, on 2 cores)."""
    return max(1, (os.cpu_count() or 2) // 2)


def register(app: typer.Typer) -> None:
    app.command("gateway")(gateway)
    app.command("query")(query)
    app.command("status")(status)


def gateway(
    rdb: Annotated[list[str], typer.Option(help="RDB query address, one per shard.")] = [],  # noqa: B006
    hdb: Annotated[list[str], typer.Option(help="HDB query address, one per shard.")] = [],  # noqa: B006
    config: Annotated[Path | None, typer.Option(help="tickdb TOML config file.")] = None,
    host: Annotated[str | None, typer.Option(help="HTTP host [gateway.host].")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port, 0 = any [gateway.port].")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Query time limit, seconds [gateway.query_timeout_s].")
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option(help="Result row limit [gateway.max_rows].")
    ] = None,
    scan_rows: Annotated[
        int, typer.Option(help="Rows one backend may send for a merge.")
    ] = 5_000_000,
    refresh: Annotated[float, typer.Option(help="Seconds between backend info() calls.")] = 1.0,
    in_flight: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Requests outstanding per backend; more wait here. Default: half the cores.",
        ),
    ] = None,
    nice: Annotated[
        int,
        typer.Option(
            min=0, help="Run this many nice steps below normal, so ingest on the host wins."
        ),
    ] = 0,
    ready_file: Annotated[
        Path | None,
        typer.Option(help="Write {url, host, port, kdb_port} here once listening."),
    ] = None,
    kdb_port: Annotated[
        int | None, typer.Option(help="kdb+ IPC port, 0 = off [gateway.kdb_port].")
    ] = None,
    tp: Annotated[
        str | None,
        typer.Option(help="Tickerplant address: take orders (docs/orders.md) [orders.enabled]."),
    ] = None,
    order_port: Annotated[
        str | None,
        typer.Option(help="Order-entry port address, '' = off [gateway.order_port]."),
    ] = None,
    fix_port: Annotated[
        int | None,
        typer.Option(help="FIX 4.4 acceptor port (0: any free port); turns it on [fix.port]."),
    ] = None,
) -> None:
    """Serve the HTTP query API (and the kdb+ port) over the given RDB and HDB backends."""
    # First, before any thread starts: threads inherit the priority of the one starting them.
    # A gateway is all query work; where it shares cores with a tickerplant and RDBs (tickdb
    # up, one box), 20 busy clients must not take the CPU the feed needs.
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    import uvicorn

    from gateway.app import create_app
    from gateway.backends import BackendState, Topology
    from gateway.router import Limits, Router
    from queries.service import QueryClient
    from tickdb.config import load_config
    from tickdb.ready import write_ready

    cfg = load_config(config)
    limits = Limits(
        timeout_s=timeout or cfg.gateway.query_timeout_s,
        max_rows=max_rows or cfg.gateway.max_rows,
        scan_rows=scan_rows,
        in_flight=in_flight or default_in_flight(),
    )
    if not rdb and not hdb and tp is None:
        raise typer.BadParameter("give at least one --rdb or --hdb address (or --tp)")
    states = [
        BackendState(f"{role}:{addr}", role, QueryClient(addr, limits.timeout_s))
        for role, addrs in (("rdb", rdb), ("hdb", hdb))
        for addr in addrs
    ]
    topology = Topology(states)
    topology.refresh()  # so the first query already routes by shard and date
    router = Router(topology, limits=limits, tables=cfg.tables)
    bind_host = host or cfg.gateway.host
    # proto=IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every response waited ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    http_port = cfg.gateway.port if port is None else port
    try:
        sock.bind((bind_host, http_port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{bind_host}:{http_port}", "gateway.port (--port)") from None
        raise
    bound_port = sock.getsockname()[1]
    orders = _start_orders(cfg, tp, order_port, fix_port)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(
                router,
                refresh_s=refresh,
                orders=orders,
                tp_address=tp,
                order_port=orders.port_endpoint if orders is not None else None,
            ),
            http="httptools",
            log_level="warning",
            access_log=False,
        )
    )
    url = f"http://{bind_host}:{bound_port}"
    kdb = _start_kdb_port(router, cfg.gateway, kdb_port, cfg.auth)
    ready: dict[str, Any] = {"url": url, "host": bind_host, "port": bound_port}
    if kdb is not None:
        ready["kdb_port"] = kdb.port
    if orders is not None and orders.port is not None:
        ready["order_port"] = orders.port.endpoint
    if orders is not None and orders.fix is not None:
        ready["fix_port"] = orders.fix.address[1]

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.01)
        if server.started:
            write_ready(ready_file, ready)
            print(f"gateway listening on {url} (docs at {url}/docs)", flush=True)
            if kdb is not None:
                print(f"gateway kdb+ port {cfg.gateway.kdb_host}:{kdb.port}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run(sockets=[sock])
    finally:
        if kdb is not None:
            kdb.close()
        if orders is not None:
            orders.close()


def _start_orders(cfg: Any, tp: str | None, port: str | None, fix_port: int | None) -> Any:
    """The order path (router fed by its stream), or None without a tickerplant."""
    if tp is None or not cfg.orders.enabled:
        return None
    from gateway.order_setup import start_order_path

    return start_order_path(cfg, tp, port, fix_port=fix_port)


def _start_kdb_port(router: Any, cfg: Any, port: int | None, auth: Any) -> Any:
    """The kdb+ port beside HTTP, or None when it is off or its port is taken."""
    import logging

    from gateway.kdb_port import GatewayKdbPort
    from tickdb.auth import Authorizer

    port = cfg.kdb_port if port is None else port
    if port == 0:
        return None
    try:
        return GatewayKdbPort(
            router, host=cfg.kdb_host, port=port, users=cfg.users, authorizer=Authorizer(auth)
        ).start()
    except OSError as exc:
        # As the tickerplant's: HTTP clients need not lose the gateway to an optional port.
        logging.getLogger("gateway.kdb_port").error(
            "kdb+ port %s:%d unavailable (%s); running without it", cfg.kdb_host, port, exc
        )
        return None


def query(
    sql: Annotated[str | None, typer.Argument(help="SQL over the logical tables.")] = None,
    q: Annotated[
        str | None, typer.Option("--q", help="A q-sql query instead of SQL (docs/q.md).")
    ] = None,
    url: Annotated[str, typer.Option(help="Gateway URL.")] = DEFAULT_URL,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or arrow.")] = "table",
    max_rows: Annotated[int | None, typer.Option(help="Row limit.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Time limit, seconds.")] = None,
    allow_partial: Annotated[bool, typer.Option(help="Accept a partial result.")] = False,
    output: Annotated[Path | None, typer.Option(help="Write the result here.")] = None,
) -> None:
    """Run SQL (or q with --q) through the gateway and print the result."""
    from gateway.client import Client, GatewayError, GatewayUnreachable

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    if (sql is None) == (q is None):
        raise typer.BadParameter('give either SQL or --q "q query", not both')
    options: dict[str, Any] = {"allow_partial": allow_partial}
    if q is not None:
        options["q"] = q
    if max_rows is not None:
        options["max_rows"] = max_rows
    if timeout is not None:
        options["timeout_s"] = timeout
    try:
        with Client(url) as client:
            if fmt == "table":
                body = json.loads(client.raw(sql, "json", **options))
                _print_table(body)
                return
            data = client.raw(sql, fmt, **options)
    except GatewayUnreachable as exc:
        typer.echo(f"cannot reach the gateway at {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    except GatewayError as exc:
        typer.echo(f"error ({exc.kind}): {exc}", err=True)
        raise typer.Exit(1) from None
    if output is not None:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _print_table(body: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*[c["name"] for c in body["columns"]], show_lines=False)
    for row in body["data"]:
        table.add_row(*["" if v is None else str(v) for v in row])
    console = Console()
    console.print(table)
    notes = [f"{body['rows']} rows", f"{body['elapsed_ms']:.1f} ms", f"plan {body['plan']}"]
    if body["truncated"]:
        notes.append("TRUNCATED at the row limit")
    if body["partial"]:
        notes.append(f"PARTIAL: missing {', '.join(body['missing'])}")
    Console(stderr=True).print(", ".join(notes), style="dim")


def status(url: Annotated[str, typer.Option(help="Gateway URL.")] = DEFAULT_URL) -> None:
    """Health of every backend behind the gateway; exit 1 if any is down."""
    from rich.console import Console
    from rich.table import Table

    from gateway.client import Client, GatewayError

    try:
        with Client(url, timeout_s=10) as client:
            health = client.health()
    except GatewayError as exc:  # GatewayUnreachable included
        typer.echo(f"gateway at {url} is not answering: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table(
        "backend",
        "role",
        "shard",
        "up",
        "date",
        "seq lag",
        "heartbeat age s",
        "error",
        title=f"gateway {url}: {health['status']}",
    )
    for b in health["backends"]:
        table.add_row(
            b["name"],
            b["role"],
            "-" if not b["shard"] else f"{b['shard'][0]}/{b['shard'][1]}",
            "yes" if b["up"] else "NO",
            str(b["date"] or "-"),
            "-" if b["seq_lag"] is None else str(b["seq_lag"]),
            "-" if b["heartbeat_age_s"] is None else str(b["heartbeat_age_s"]),
            b["error"] or "",
        )
    Console().print(table)
    from fix.cli import gateway_sessions, print_sessions

    fix_sessions = gateway_sessions(url)
    if fix_sessions:
        print_sessions(fix_sessions, "FIX sessions")
    if health["status"] != "ok":
        raise typer.Exit(1)
