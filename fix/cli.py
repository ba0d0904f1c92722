"""``tickdb fix sessions`` and ``tickdb fix reset NAME``: the FIX sessions of a gateway (its
acceptor, over HTTP) and of the FIX venue adapters (``[fix.venues]``, from their stores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.client import DEFAULT_URL
from tickdb.cli_options import TokenOpt

fix_app = typer.Typer(help="FIX sessions: state, sequence numbers, reset.", no_args_is_help=True)

Url = Annotated[str, typer.Option(help="Gateway URL.")]
ConfigOpt = Annotated[
    Path | None, typer.Option(help="tickdb TOML config: also the [fix.venues] sessions.")
]
COLUMNS = ["name", "role", "sender_comp_id", "target_comp_id", "state", "next_sender_seq"]
COLUMNS += ["next_target_seq"]


def register(app: typer.Typer) -> None:
    app.add_typer(fix_app, name="fix")


def gateway_sessions(url: str, token: str | None = None) -> list[dict[str, Any]] | None:
    """The acceptor's sessions, or None if the gateway does not answer (or not to us)."""
    from gateway.client import Client, GatewayError

    try:
        with Client(url, timeout_s=10, token=token) as client:
            reply = client.get("/fix/sessions")
    except GatewayError:
        return None
    if not reply.is_success:
        return None
    return [{**s, "role": "acceptor"} for s in reply.json()["sessions"]]


def venue_sessions(config: Path | None) -> list[dict[str, Any]]:
    """The ``[fix.venues]`` initiator sessions, read from their stores on disk."""
    if config is None:
        return []
    from fix.store import read_seqnums
    from orders.fix_venue_map import venue_settings
    from tickdb.config import load_config

    cfg = load_config(config, None)
    rows = []
    for raw in cfg.fix.venues.values():
        settings = venue_settings(cfg, int(str(raw["shard"])))
        assert settings is not None
        s = settings.session
        seqs = read_seqnums(s.store_dir / s.key) or (1, 1)
        rows.append(
            {
                "name": s.name,
                "role": f"venue {settings.shard} -> {settings.host}:{settings.port}",
                "sender_comp_id": s.sender_comp_id,
                "target_comp_id": s.target_comp_id,
                "state": "-",
                "next_sender_seq": seqs[0],
                "next_target_seq": seqs[1],
            }
        )
    return rows


def print_sessions(rows: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    from tickdb.console_out import table_console

    table = Table(*COLUMNS, title=title)
    for row in rows:
        table.add_row(*[str(row.get(c, "")) for c in COLUMNS])
    table_console().print(table)


@fix_app.command("sessions")
def sessions(
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """State and sequence numbers of every FIX session."""
    rows = gateway_sessions(url, token)
    if rows is None:
        typer.echo(f"gateway at {url} is not answering", err=True)
        if config is None:
            raise typer.Exit(2)
        rows = []
    rows += venue_sessions(config)
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        print_sessions(rows, "FIX sessions")


@fix_app.command("reset")
def reset(
    name: Annotated[str, typer.Argument(help="Session name or Sender-Target key.")],
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Both sequence numbers of a session back to 1 (a logged on session is logged out).

    An acceptor session is reset in the running gateway; a [fix.venues] session (with
    --config) in its store on disk, which only a stopped venue adapter leaves alone."""
    from gateway.client import Client, GatewayError

    for row in venue_sessions(config):
        if name in (row["name"], f"{row['sender_comp_id']}-{row['target_comp_id']}"):
            _reset_venue_store(config, row["name"])
            typer.echo(json.dumps({"reset": True, "session": row["name"]}))
            return
    try:
        with Client(url, timeout_s=10, token=token) as client:
            reply = client.post(f"/fix/sessions/{name}/reset", {})
    except GatewayError as exc:
        typer.echo(f"gateway at {url} is not answering: {exc}", err=True)
        raise typer.Exit(2) from None
    if not reply.is_success:
        typer.echo(reply.json().get("message", reply.text), err=True)
        raise typer.Exit(1)
    typer.echo(reply.text)


def _reset_venue_store(config: Path | None, name: str) -> None:
    from fix.store import FileStore
    from orders.fix_venue_map import venue_settings
    from tickdb.config import load_config

    cfg = load_config(config, None)

    settings = venue_settings(cfg, int(str(cfg.fix.venues[name]["shard"])))
    assert settings is not None
    store = FileStore(settings.session.store_dir / settings.session.key)
    store.reset()
    store.close()
    (store.directory / "applied").unlink(missing_ok=True)
