"""``tickdb status``: the stack's components (as ``tickdb up`` supervises them) and every
backend replica behind the gateway (as the gateway sees them)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from gateway.client import DEFAULT_URL
from tickdb.cli_options import CaOpt, CertOpt, ConfigOpt, DataDirOpt, KeyOpt, TokenOpt


def status(
    url: Annotated[str, typer.Option(help="Gateway URL.")] = DEFAULT_URL,
    token: TokenOpt = None,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Components of `tickdb up` (role, epoch, restarts, failovers) and the health of every
    backend replica behind the gateway; exit 1 if any is down."""
    from gateway.client import Client, GatewayError
    from tickdb.config import ConfigError, load_config
    from tickdb.stack_status import read_status

    try:
        stack = read_status(load_config(config, data_dir).data_path)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None
    health: dict[str, Any] | None = None
    problem: str | None = None
    try:
        # With several gateways (tickdb up --gateways N), the others when this one is down.
        with Client([url, *other_gateways(stack, url)], timeout_s=10, token=token) as client:
            health = client.health()
            url = client.url
    except GatewayError as exc:  # GatewayUnreachable included
        what = "refused the credentials" if exc.status == 401 else "is not answering"
        problem = f"gateway at {url} {what}: {exc}"
    down = False
    if stack is not None:
        down = print_components(stack, replicas_of(health)) or down
    if health is None:
        typer.echo(problem, err=True)
        raise typer.Exit(2)
    if "backends" not in health:
        # [auth] on: without an identity that may read, the gateway says only its status.
        typer.echo(
            f"gateway {url}: {health['status']} (backends shown only with a token that may "
            "read: --token or TICKDB_TOKEN)"
        )
        raise typer.Exit(0 if health["status"] == "ok" and not down else 1)
    print_backends(url, health)
    from fix.cli import gateway_sessions, print_sessions

    fix_sessions = gateway_sessions(url, token)
    if fix_sessions:
        print_sessions(fix_sessions, "FIX sessions")
    if down or health["status"] != "ok" or health.get("replicas_down"):
        raise typer.Exit(1)


def other_gateways(stack: dict[str, Any] | None, url: str) -> list[str]:
    """The addresses of the stack's active-active gateways other than ``url``."""
    components = (stack or {}).get("components", [])
    found = [str(c.get("address", "")) for c in components if c.get("role") == "active"]
    return [a for a in found if a.startswith("http") and a != url]


def replicas_of(health: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every replica the gateway reports, by address (``rdb:tcp://h:p`` -> ``tcp://h:p``)."""
    if not health:
        return {}
    return {
        r["name"].split(":", 1)[1]: r
        for b in health.get("backends", [])
        for r in b.get("replicas", [])
    }


def print_components(stack: dict[str, Any], replicas: dict[str, dict[str, Any]]) -> bool:
    """The table of ``tickdb up``'s components; True if one is not running (a status left by
    a ``tickdb up`` that has ended is shown, marked, and counts for nothing)."""
    from rich.table import Table

    from tickdb.affinity import cpus_of
    from tickdb.console_out import table_console
    from tickdb.durable import pid_alive

    supervisor = int(stack.get("pid") or 0)
    running = bool(supervisor) and pid_alive(supervisor)
    title = f"tickdb up (pid {supervisor})" + ("" if running else ": NOT RUNNING, last status")
    table = Table(
        "component",
        "role",
        "pid",
        "up",
        "epoch",
        "restarts",
        "failovers",
        "up for s",
        "last exit",
        "cpus",
        "address",
        title=title,
    )
    now, down = time.time(), False
    for c in stack.get("components", []):
        state = "yes" if c["ready"] else ("starting" if c["alive"] else "NO")
        down = down or (running and not c["alive"])
        failovers = replicas.get(c.get("address") or "", {}).get("failovers")
        table.add_row(
            c["name"],
            c["role"],
            str(c["pid"]),
            state,
            str(c["epoch"]),
            str(c["restarts"]),
            "-" if failovers is None else str(failovers),
            f"{now - c['started']:.0f}" if c["alive"] else "-",
            c["last_exit"] or "",
            cpus_of(int(c["pid"])) if running and c["alive"] else "-",
            c.get("address") or "",
        )
    table_console().print(table)
    return down


def print_backends(url: str, health: dict[str, Any]) -> None:
    """One row per replica of every backend (a backend without replicas: its own row)."""
    from rich.table import Table

    from tickdb.console_out import table_console
    from tickdb.types import Shard

    table = Table(
        "backend",
        "role",
        "shard",
        "up",
        "current",
        "date",
        "seq lag",
        "heartbeat age s",
        "parts",
        "failovers",
        "error",
        title=f"gateway {url}: {health['status']}",
    )
    for backend in health["backends"]:
        for r in backend.get("replicas") or [backend]:
            table.add_row(
                r["name"],
                r["role"],
                "-" if not r["shard"] else str(Shard.of(r["shard"])),
                "yes" if r["up"] else "NO",
                "yes" if r.get("current", r["up"]) else "no",
                str(r["date"] or "-"),
                "-" if r["seq_lag"] is None else str(r["seq_lag"]),
                "-" if r["heartbeat_age_s"] is None else str(r["heartbeat_age_s"]),
                str(r.get("routed", "-")),
                str(r.get("failovers", "-")),
                r["error"] or r.get("suspect") or "",
            )
    table_console().print(table)
