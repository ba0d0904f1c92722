"""The ``tickdb up`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def up(
    demo: Annotated[bool, typer.Option("--demo", help="Also run the synthetic feed.")] = False,
    shards: Annotated[int | None, typer.Option(help="Symbol shards [stack.shards].")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    rate: Annotated[int | None, typer.Option(help="Demo rows/s [stack.demo_rate].")] = None,
    replicas: Annotated[
        int | None,
        typer.Option(min=1, help="RDBs and HDBs per shard, all serving [stack.replicas]."),
    ] = None,
    venue_standby: Annotated[
        bool,
        typer.Option(
            "--venue-standby", help="A hot standby beside each venue [stack.venue_standby]."
        ),
    ] = False,
    gateways: Annotated[
        int | None,
        typer.Option(
            min=1, help="Active-active gateways, each on the configured ports + i [stack.gateways]."
        ),
    ] = None,
    tp_standby: Annotated[
        bool, typer.Option("--tp-standby", help="A standby tickerplant (a pair, [replication]).")
    ] = False,
) -> None:
    """Start the whole stack (tickerplant, RDB + HDB per shard, gateway) until Ctrl-C;
    restart a component that exits (stack.restart).

    With ``--demo`` and no ``[auth]`` section in the config, credentials are made on first
    start under ``<data-dir>/auth`` and every port asks for them (docs/security.md)."""
    from rich.table import Table

    from tickdb.config import ConfigError, load_config
    from tickdb.console_out import table_console
    from tickdb.stack import Stack

    console = table_console()
    try:
        cfg = load_config(config, data_dir)
    except ConfigError as exc:
        console.print(f"[red]config error:[/] {exc}")
        raise typer.Exit(2) from None
    env: dict[str, str] = {}
    credentials = None
    if demo:
        from tickdb.demo_auth import demo_config, read_secret

        made = demo_config(cfg.data_path, config)
        if made is not None:
            config, credentials = made
            cfg = load_config(config, data_dir)
            env["TICKDB_TOKEN"] = read_secret(credentials.token_file)
    stack = Stack(
        cfg,
        config,
        shards or cfg.stack.shards,
        demo,
        rate or cfg.stack.demo_rate,
        replicas=replicas or cfg.stack.replicas,
        env=env,
        venue_standby=venue_standby or cfg.stack.venue_standby,
        gateways=gateways or cfg.stack.gateways,
        tp_standby=tp_standby,
    )
    try:
        with console.status("starting tickdb…"):
            stack.start()
        table = Table(title=f"tickdb is up — data in {cfg.data_path}", show_header=True)
        table.add_column("component")
        table.add_column("address")
        for name, where in stack.endpoints():
            table.add_row(name, where)
        console.print(table)
        url = stack.gateway_url()
        if len(urls := stack.gateway_urls()) > 1:
            console.print(
                f"{len(urls)} gateways, active-active: {', '.join(urls)}. Give clients all of "
                f"them (`tickdb.Client([...])`, `tickdb.Orders([...])`, `--url {','.join(urls)}`)"
                "; a request goes on through the next when one is down."
            )
        if credentials is not None:
            console.print(
                f"Credentials (made on first start) are in {credentials.directory}: sign in "
                f"to {url} as [bold]{credentials.user}[/] with the password in "
                f"{credentials.password_file.name}; for the CLI and clients, "
                f"`export TICKDB_TOKEN=$(cat {credentials.token_file})`."
            )
            if cfg.curve.mode == "on":
                console.print(
                    "The ZeroMQ ports take CURVE keys: for tickdb.Publisher, Subscriber and "
                    f"the ZeroMQ commands, `export TICKDB_CURVE_KEY={credentials.client_secret} "
                    f"TICKDB_CURVE_SERVER_KEY={credentials.server_public}`."
                )
        console.print(
            f'Open [bold]{url}/docs[/]; try `tickdb query "select count(*) from '
            f'trade"`. Logs: {stack.log_dir}. Ctrl-C stops everything.'
        )
        why = stack.wait()
        console.print(f"stopping ({why})…")
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    finally:
        stack.stop()
    console.print("stopped.")
