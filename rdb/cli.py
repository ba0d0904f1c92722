"""Commands of the rdb package: ``tickdb rdb`` (the process) and ``tickdb eod`` (the job)."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from typing import Annotated

import typer

from tickdb.cli_options import ConfigOpt, DataDirOpt, ReadyOpt, load_config_or_exit
from tickdb.types import Shard

TpOpt = Annotated[str, typer.Option("--tp", help="Tickerplant address.")]
ShardOpt = Annotated[
    str | None, typer.Option("--shard", help="Hold shard k of n of the syms, as k/n.")
]
HdbOpt = Annotated[
    list[str] | None,
    typer.Option("--hdb", help="HDB address to RELOAD after a write-down (repeatable)."),
]
DEFAULT_TP = "tcp://127.0.0.1:5010"


def parse_shard(text: str | None) -> Shard | None:
    if text is None:
        return None
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None


def rdb_command(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    ready_file: ReadyOpt = None,
    tp: TpOpt = DEFAULT_TP,
    shard: ShardOpt = None,
    hdb: HdbOpt = None,
    address: Annotated[str | None, typer.Option(help="Override rdb.address.")] = None,
    replica: Annotated[
        int,
        typer.Option(
            min=0,
            help="Replica number within the shard: each keeps its own state and intraday "
            "files (tickdb up --replicas).",
        ),
    ] = 0,
) -> None:
    """Run a realtime database: subscribe, hold the day in memory, answer SQL, write down."""
    from rdb.server import Rdb, run_rdb
    from tickdb.logs import setup_logging
    from tickerplant.discovery import TickerplantUnavailable

    setup_logging()
    cfg = load_config_or_exit(config, data_dir, "rdb")
    try:
        rdb = Rdb(
            cfg,
            tp_address=tp,
            shard=parse_shard(shard),
            hdb_addresses=list(hdb or []),
            address=address,
            replica=replica,
        )
    except TickerplantUnavailable as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(1) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_rdb(rdb, ready_file, stop)


def eod_command(
    date: Annotated[str, typer.Option("--date", help="Session date to write, YYYY-MM-DD.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    shard: ShardOpt = None,
    hdb: HdbOpt = None,
    tables: Annotated[
        list[str] | None, typer.Option("--table", help="Only this table (repeatable).")
    ] = None,
) -> None:
    """Write a session's partitions from the journal (after a crash); safe to rerun."""
    from rdb.eodjob import EodJobError, run_eod_job
    from tickdb.logs import setup_logging

    setup_logging("WARNING")
    cfg = load_config_or_exit(config, data_dir)
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise typer.BadParameter(f"--date must be YYYY-MM-DD, got {date!r}") from None
    try:
        run_eod_job(
            cfg, day, shard=parse_shard(shard), hdb_addresses=list(hdb or []), tables=tables
        )
    except EodJobError as exc:
        typer.echo(f"eod failed: {exc}", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("rdb")(rdb_command)
    app.command("eod")(eod_command)
