"""``tickdb gateway`` (serve HTTP), ``tickdb query`` and ``tickdb status`` (its clients)."""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli_status import status
from gateway.client import DEFAULT_URL
from tickdb.cli_options import CaOpt, CertOpt, DataDirOpt, KeyOpt, TokenOpt

FORMATS = ("table", "csv", "json", "arrow")


def register(app: typer.Typer) -> None:
    app.command("gateway")(gateway)
    app.command("query")(query)
    app.command("status")(status)
    app.command("audit")(audit)


def gateway(
    rdb: Annotated[
        list[str] | None,
        typer.Option(help="RDB query address, one per shard [gateway.rdb_addresses]."),
    ] = None,
    hdb: Annotated[
        list[str] | None,
        typer.Option(help="HDB query address, one per shard [gateway.hdb_addresses]."),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="tickdb TOML config file.")] = None,
    data_dir: DataDirOpt = None,
    host: Annotated[str | None, typer.Option(help="HTTP host [gateway.host].")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port, 0 = any [gateway.port].")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Query time limit, seconds [gateway.query_timeout_s].")
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option(help="Result row limit [gateway.max_rows].")
    ] = None,
    scan_rows: Annotated[
        int | None,
        typer.Option(min=1, help="Rows one backend may send for a merge [gateway.scan_rows]."),
    ] = None,
    refresh: Annotated[
        float | None,
        typer.Option(help="Seconds between backend info() calls [gateway.refresh_s]."),
    ] = None,
    in_flight: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Requests outstanding per backend; more wait here. Default: half the cores "
            "[gateway.in_flight].",
        ),
    ] = None,
    nice: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Run this many nice steps below normal, so ingest on the host wins "
            "[gateway.nice].",
        ),
    ] = None,
    ready_file: Annotated[
        Path | None,
        typer.Option(help="Write {url, host, port, kdb_port} here once listening."),
    ] = None,
    kdb_port: Annotated[
        int | None, typer.Option(help="kdb+ IPC port, 0 = off [gateway.kdb_port].")
    ] = None,
    tp: Annotated[
        str | None,
        typer.Option(
            help="Tickerplant address: take orders (docs/orders.md) [gateway.tp_address]."
        ),
    ] = None,
    order_port: Annotated[
        str | None,
        typer.Option(help="Order-entry port address, '' = off [gateway.order_port]."),
    ] = None,
    fix_port: Annotated[
        int | None,
        typer.Option(help="FIX 4.4 acceptor port (0: any free port); turns it on [fix.port]."),
    ] = None,
    fix_store_dir: Annotated[
        Path | None,
        typer.Option(help="FIX sessions' sequence numbers and messages [fix.store_dir]."),
    ] = None,
) -> None:
    """Serve the HTTP query API (and the kdb+ port) over the given RDB and HDB backends."""
    from gateway.server import Gateway
    from tickdb.cli_options import load_config_or_exit
    from tickdb.logs import setup_logging

    # Flags override the config; a flag left out keeps the config's setting.
    flags: dict[str, Any] = {
        "rdb_addresses": rdb or None,
        "hdb_addresses": hdb or None,
        "host": host,
        "port": port,
        "query_timeout_s": timeout or None,
        "max_rows": max_rows or None,
        "scan_rows": scan_rows,
        "refresh_s": refresh,
        "in_flight": in_flight,
        "nice": nice,
        "kdb_port": kdb_port,
        "tp_address": tp,
        "order_port": order_port,
    }
    # A handler of our own on the root logger, as every component has: the console's
    # recent-errors handler would otherwise take the place of Python's last-resort one,
    # and warnings would no longer reach stderr (the log file under tickdb up). Set up
    # first, so that what loading the config logs (the CPUs it pins) is there too.
    setup_logging()
    cfg = load_config_or_exit(config, data_dir, "gateway")
    settings = replace(cfg.gateway, **{k: v for k, v in flags.items() if v is not None})
    cfg = replace(cfg, gateway=settings)
    if fix_port is not None:
        cfg = replace(cfg, fix=replace(cfg.fix, enabled=True, port=fix_port))
    if fix_store_dir is not None:  # a second gateway on the same data directory has its own
        cfg = replace(cfg, fix=replace(cfg.fix, store_dir=str(fix_store_dir)))
    if not settings.rdb_addresses and not settings.hdb_addresses and not settings.tp_address:
        raise typer.BadParameter(
            "give at least one --rdb or --hdb address (or --tp), or set "
            "gateway.rdb_addresses, gateway.hdb_addresses or gateway.tp_address"
        )
    for role in ("rdb", "hdb"):
        for entry in getattr(settings, f"{role}_addresses"):
            if any(not address.strip() for address in entry.split(",")):
                raise typer.BadParameter(
                    f"--{role} (gateway.{role}_addresses): {entry!r} has an empty address; "
                    "a shard's replicas are separated by single commas"
                )
    server = Gateway(cfg)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.serve(ready_file)


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
    token: TokenOpt = None,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
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
        with Client(url, token=token) as client:
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
    from rich.table import Table

    from tickdb.console_out import table_console

    table = Table(*[c["name"] for c in body["columns"]], show_lines=False)
    for row in body["data"]:
        table.add_row(*["" if v is None else str(v) for v in row])
    console = table_console()
    console.print(table)
    notes = [f"{body['rows']} rows", f"{body['elapsed_ms']:.1f} ms", f"plan {body['plan']}"]
    if body["truncated"]:
        notes.append("TRUNCATED at the row limit")
    if body["partial"]:
        notes.append(f"PARTIAL: missing {', '.join(body['missing'])}")
    table_console(stderr=True).print(", ".join(notes), style="dim")


def audit(
    since: Annotated[
        str | None, typer.Option(help="From this time: epoch seconds or ISO 8601 (UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    who: Annotated[str | None, typer.Option(help="Only this identity.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (login, order.new, admin. for all ...).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many records.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    url: Annotated[str, typer.Option(help="Gateway URL.")] = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """The audit log (logins, refusals, admin and order actions); needs an admin token."""
    from rich.table import Table

    from gateway.client import Client, GatewayError
    from tickdb.console_out import table_console

    try:
        with Client(url, timeout_s=30, token=token) as client:
            answer = client.audit(since=since, until=until, who=who, action=action, limit=limit)
    except GatewayError as exc:
        typer.echo(f"error ({exc.kind}): {exc}", err=True)
        raise typer.Exit(2 if exc.status in (0, 401) else 1) from None
    if not answer["enabled"]:
        typer.echo("the gateway keeps no audit log ([auth] mode is not on)", err=True)
    records = answer["records"]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
    else:
        fixed = ("ts", "who", "action", "ok", "where", "port")
        table = Table(*fixed, "detail", title=f"audit {url}")
        for r in records:
            rest = {k: v for k, v in r.items() if k not in fixed}
            table.add_row(*[str(r.get(k, "")) for k in fixed], json.dumps(rest))
        table_console().print(table)
    if answer["truncated"]:
        typer.echo(f"more records match: --since {records[-1]['ts']}", err=True)
