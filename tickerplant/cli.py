"""Commands of the tickerplant package: ``tp``, ``feed``, ``sub``, ``journal``."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tickdb.cli_options import ConfigOpt, DataDirOpt, ReadyOpt, load_config_or_exit

AddressOpt = Annotated[str, typer.Option("--address", "-a", help="Tickerplant address.")]
DEFAULT_ADDRESS = "tcp://127.0.0.1:5010"


def _run_tp(
    config: Path | None,
    data_dir: Path | None,
    ready_file: Path | None,
    repair: bool,
    address: str | None,
    clock_start: str | None,
    pair: tuple[str | None, Path | None, int] = (None, None, 0),
) -> None:
    """Run the tickerplant."""
    import dataclasses
    import logging

    from tickdb import curve_links
    from tickdb.auth import Authorizer
    from tickdb.gc_pauses import keep_pauses_short
    from tickdb.logs import setup_logging
    from tickdb.malloc import keep_large_buffers
    from tickdb.ready import write_ready
    from tickerplant.journal import JournalCorrupt
    from tickerplant.server import Tickerplant

    setup_logging()
    keep_large_buffers()
    cfg = load_config_or_exit(config, data_dir, "tickerplant")
    if address:
        cfg = dataclasses.replace(
            cfg, tickerplant=dataclasses.replace(cfg.tickerplant, address=address)
        )
    cfg = _pair_options(cfg, *pair)
    authorizer = Authorizer(cfg.auth)
    # Its ZeroMQ ports, and the kdb+ port's own clients of them, follow [curve].
    curve_links.install(cfg, authorizer)
    if cfg.replication.mode != "off":
        _run_node(cfg, ready_file, clock_start)
        return
    try:
        tp = Tickerplant(cfg, clock=_clock(clock_start), repair_journal=repair)
    except JournalCorrupt as exc:
        typer.echo(f"cannot start: {exc}\nOr start with `tickdb tp --repair`.", err=True)
        raise typer.Exit(3) from None
    kdb = None
    if cfg.tickerplant.kdb_port != 0:
        from tickdb.audit import AuditLog
        from tickdb.config import kdb_limits
        from tickdb.tls import port_tls
        from tickerplant.kdb_port import KdbPort

        # Threads beside the main loop; they reach it through its own ZeroMQ address.
        try:
            kdb = KdbPort(
                tp.address,
                cfg.tables,
                host=cfg.tickerplant.kdb_host,
                port=cfg.tickerplant.kdb_port,
                limits=kdb_limits(cfg.tickerplant),
                clock=tp.clock,
                seq_source=lambda: tp.committed_seq,
                authorizer=authorizer,
                audit=AuditLog.for_config(cfg, "tickerplant"),
                tls=port_tls(cfg.tls, "tickerplant_kdb"),
            ).start()
        except OSError as exc:
            # ZeroMQ feeds and subscribers need not stop for an optional port in use.
            logging.getLogger("tickerplant.kdb_port").error(
                "kdb+ port %s:%d unavailable (%s); running without it",
                cfg.tickerplant.kdb_host,
                cfg.tickerplant.kdb_port,
                exc,
            )
    signal.signal(signal.SIGTERM, lambda *_: tp.stop())
    signal.signal(signal.SIGINT, lambda *_: tp.stop())
    info = tp.hello()
    if kdb is not None:
        info["kdb_port"] = kdb.port
    # What start-up built (imports, the recovered ledger) is frozen, and so is whatever
    # survives each full collection: the collector never walks it again. Before, the first
    # full collection under load walked the whole start-up heap, ~45 ms of the main thread
    # (tickdb.gc_pauses; docs/benchmarks.md, "the tickerplant's CPU a table").
    keep_pauses_short()
    write_ready(ready_file, info)
    try:
        tp.serve()
    finally:
        if kdb is not None:
            kdb.close()
            kdb.audit.close()


def _pair_options(cfg: Any, mode: str | None, lease_dir: Path | None, offset: int) -> Any:
    """``--replication``, ``--lease-dir`` and ``--port-offset`` (the second node of a pair
    on the same host: every port of this node moved by ``offset``)."""
    import dataclasses

    from tickdb.config import ConfigError
    from tickdb.stack import _port_plus

    replication = cfg.replication
    if mode is not None:
        replication = dataclasses.replace(replication, mode=mode)
    if lease_dir is not None:
        replication = dataclasses.replace(replication, lease_dir=str(lease_dir))
    if replication.mode != "off" and not replication.lease_dir:
        raise ConfigError("replication.lease_dir: required when replication.mode is not off")
    tp = cfg.tickerplant
    if offset:
        tp = dataclasses.replace(
            tp,
            **{
                k: _port_plus(getattr(tp, k), offset)
                for k in ("address", "publish_address", "replay_address")
            },
        )
        replication = dataclasses.replace(
            replication, address=_port_plus(replication.address, offset)
        )
    return dataclasses.replace(cfg, tickerplant=tp, replication=replication)


def _run_node(cfg: Any, ready_file: Path | None, clock_start: str | None) -> None:
    """One node of a tickerplant pair (``tickerplant.standby``): the ready file is written
    again at each change of role."""
    from tickdb.ready import write_ready
    from tickerplant.standby import TickerplantNode

    node = TickerplantNode(
        cfg, clock=_clock(clock_start), on_role=lambda info: write_ready(ready_file, info)
    )
    signal.signal(signal.SIGTERM, lambda *_: node.stop())
    signal.signal(signal.SIGINT, lambda *_: node.stop())
    node.run()


def tp_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    ready_file: ReadyOpt = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Cut a torn journal tail (kept beside it) and start.")
    ] = False,
    address: Annotated[str | None, typer.Option(help="Override tickerplant.address.")] = None,
    clock_start: Annotated[
        str | None, typer.Option(hidden=True, help="Run the clock from this ISO instant (tests).")
    ] = None,
    replication: Annotated[
        str | None,
        typer.Option(help="A node of a pair: sync or async (off: alone) [replication.mode]."),
    ] = None,
    lease_dir: Annotated[
        Path | None, typer.Option(help="The pair's shared directory [replication.lease_dir].")
    ] = None,
    port_offset: Annotated[
        int, typer.Option(help="Move every port of this node by this much (a pair on one host).")
    ] = 0,
) -> None:
    """Run the tickerplant (or one of its subcommands)."""
    if replication not in (None, "off", "sync", "async"):
        raise typer.BadParameter("--replication: off, sync or async")
    if ctx.invoked_subcommand is None:
        pair = (replication, lease_dir, port_offset)
        _run_tp(config, data_dir, ready_file, repair, address, clock_start, pair)


def _clock(clock_start: str | None) -> Any:
    import datetime as dt

    from tickerplant.clock import OffsetClock, SystemClock, datetime_to_ns

    if clock_start is None:
        return SystemClock()
    return OffsetClock(datetime_to_ns(dt.datetime.fromisoformat(clock_start)))


def tp_roll(address: AddressOpt = DEFAULT_ADDRESS) -> None:
    """End the current session now (e.g. after the tickerplant refused a clock jump).
    With [curve] on: an admin's key in TICKDB_CURVE_KEY, TICKDB_CURVE_SERVER_KEY."""
    reply = _request(address, b"ROLL")
    typer.echo(f"rolled; session {reply['session']} from seq {reply['seq']}")


def tp_stats(address: AddressOpt = DEFAULT_ADDRESS) -> None:
    """Print the tickerplant's counters as JSON."""
    typer.echo(json.dumps(_request(address, b"STATS"), indent=2))


def _request(address: str, tag: bytes) -> dict[str, Any]:
    import zmq

    from tickerplant.discovery import (
        TickerplantRefused,
        TickerplantUnavailable,
        answer,
        request,
    )

    ctx = zmq.Context()
    try:
        body = answer(request(ctx, address, [tag], 10.0), address)
    except (TickerplantUnavailable, TickerplantRefused, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        ctx.term()
    return dict(json.loads(body))


def feed(
    address: AddressOpt = DEFAULT_ADDRESS,
    demo: Annotated[bool, typer.Option("--demo", help="Synthetic trades and quotes.")] = False,
    rate: Annotated[int, typer.Option(help="Rows per second.")] = 1000,
    syms: Annotated[int, typer.Option(help="Number of symbols.")] = 100,
    duration: Annotated[float | None, typer.Option(help="Seconds to run.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Publish a feed to a tickerplant (today: the synthetic demo feed)."""
    from tickdb.logs import setup_logging
    from tickerplant.demo_feed import run_demo_feed

    if not demo:
        typer.echo(
            "only --demo feeds are built in; publish your own with tickdb.Publisher", err=True
        )
        raise typer.Exit(2)
    setup_logging()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sent = run_demo_feed(address, rate, syms, duration, seed)
    except KeyboardInterrupt:
        return
    typer.echo(f"published {sent} rows")


def sub(
    tables: Annotated[list[str] | None, typer.Argument(help="Tables (default: all).")] = None,
    address: AddressOpt = DEFAULT_ADDRESS,
    syms: Annotated[str | None, typer.Option(help="Comma-separated syms.")] = None,
    shard: Annotated[str | None, typer.Option(help="Shard k/N.")] = None,
    start: Annotated[
        str, typer.Option(help="live, session (replay today), journal (replay all) or a seq.")
    ] = "live",
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
) -> None:
    """Subscribe and print what arrives."""
    from tickerplant.subscriber import EndOfDay, Subscriber

    start_at: Any = int(start) if start.isdigit() else start
    subscriber = Subscriber(
        address,
        tables=tables or None,
        syms=syms.split(",") if syms else None,
        shard=shard,
        start=start_at,
    )
    received = 0
    try:
        for message in subscriber:
            if isinstance(message, EndOfDay):
                typer.echo(f"#{message.seq} end of day {message.date}")
            else:
                for row in message.data.to_pylist():
                    values = " ".join(f"{k}={v}" for k, v in row.items())
                    typer.echo(f"#{message.seq} {message.table} {values}")
            received += 1
            if count is not None and received >= count:
                break
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.close()


def register(app: typer.Typer) -> None:
    from tickerplant.journal_cli import journal_app

    tp_app = typer.Typer(help="The tickerplant.", invoke_without_command=True)
    tp_app.callback()(tp_command)
    tp_app.command("roll")(tp_roll)
    tp_app.command("stats")(tp_stats)
    app.add_typer(tp_app, name="tp")
    app.command("feed")(feed)
    app.command("sub")(sub)
    app.add_typer(journal_app, name="journal")
