"""``tickdb venue`` (serve a shard's matching venue) and the order commands
``tickdb order new|cancel|replace|list``, ``tickdb positions``, ``tickdb risk …``."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.client import DEFAULT_URL
from tickdb.cli_options import TokenOpt
from tickdb.types import Shard

order_app = typer.Typer(help="Enter, cancel, replace and list orders.", no_args_is_help=True)
risk_app = typer.Typer(
    help="Admin risk requests: limits, kill switch, resume.", no_args_is_help=True
)

Url = Annotated[str, typer.Option(help="Gateway URL.")]


def register(app: typer.Typer) -> None:
    app.command("venue")(venue)
    app.add_typer(order_app, name="order")
    app.add_typer(risk_app, name="risk")
    app.command("positions")(positions)
    app.command("strategy")(strategy)


def strategy(
    demo: Annotated[bool, typer.Option("--demo", help="Run the demo strategy.")] = False,
    url: Annotated[str, typer.Option(help="Gateway URL.")] = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Run the demo strategy (two accounts quoting and trading around the demo market)."""
    from orders.demo_strategy import DemoStrategy
    from tickdb.logs import setup_logging

    if not demo:
        raise typer.BadParameter("only the demo strategy ships with tickdb: pass --demo")
    setup_logging()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner = DemoStrategy(url, token=token)
    try:
        runner.run(stop)
    finally:
        runner.close()


def venue(
    shard: Annotated[str, typer.Option(help="The shard this venue owns, k/n.")] = "0/1",
    tp: Annotated[str, typer.Option(help="Tickerplant address.")] = "tcp://127.0.0.1:5010",
    config: Annotated[Path | None, typer.Option(help="tickdb TOML config file.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data directory [`<data>/snapshots`].")
    ] = None,
    paper: Annotated[
        bool | None, typer.Option("--paper/--no-paper", help="Fill against quotes [orders.paper].")
    ] = None,
    ready_file: Annotated[
        Path | None, typer.Option(help="Write {venue, seq} here once ready.")
    ] = None,
    standby: Annotated[
        bool, typer.Option("--standby", help="Hot standby: take over when the primary dies.")
    ] = False,
    lease: Annotated[
        bool, typer.Option("--lease", help="Primary of a pair: hold the shard's lease.")
    ] = False,
    lease_dir: Annotated[
        Path | None, typer.Option(help="The pair's lease files [`<data>/run`].")
    ] = None,
    lease_ttl: Annotated[
        float, typer.Option(help="Seconds without a heartbeat before a standby takes over.")
    ] = 0.3,
    name: Annotated[str | None, typer.Option(help="Name in the lease and role files.")] = None,
) -> None:
    """Run the matching venue of one symbol shard (docs/orders.md); with --lease and
    --standby, a primary/standby pair (docs/architecture.md, Failover)."""
    from orders.model import StpMode
    from orders.snapshot import SnapshotSettings
    from orders.venue import Venue
    from tickdb.cli_options import load_config_or_exit
    from tickdb.logs import setup_logging
    from tickdb.ready import write_ready

    setup_logging()
    cfg = load_config_or_exit(config, data_dir, "venue")
    try:
        owned = Shard.parse(shard)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if _run_fix_venue(cfg, tp, owned, stop, ready_file):
        return
    settings: dict[str, Any] = {
        "tick_sizes": cfg.orders.tick_sizes,
        "default_tick": cfg.orders.tick_size,
        "stp": StpMode(cfg.orders.stp),
        "paper": cfg.orders.paper if paper is None else paper,
        "snapshots": SnapshotSettings.from_config(cfg),
    }
    engine_venue: Venue
    if standby or lease:
        from orders.standby import PairedVenue

        who = name or (ready_file.name.split(".")[0] if ready_file else f"venue-{owned.index}")
        engine_venue = PairedVenue(
            tp,
            owned,
            lease_dir=lease_dir or cfg.data_path / "run",
            name=who,
            ttl_s=lease_ttl,
            **settings,
        )
    else:
        engine_venue = Venue(tp, owned, **settings)

    def ready() -> None:
        info = {"venue": engine_venue.label, "seq": engine_venue.processed_seq}
        if role := getattr(engine_venue, "role", ""):
            info["role"] = role
        write_ready(ready_file, info)
        print(f"venue {engine_venue.label} ready at seq {engine_venue.processed_seq}", flush=True)

    try:
        engine_venue.run(stop, on_ready=ready)
    finally:
        engine_venue.close()


def _run_fix_venue(
    cfg: Any, tp: str, shard: Shard, stop: threading.Event, ready_file: Path | None
) -> bool:
    """A shard in ``[fix.venues]`` is routed to an external FIX venue (docs/fix.md)."""
    from orders.fix_venue import FixVenue
    from orders.fix_venue_map import venue_settings
    from tickdb.ready import write_ready

    settings = venue_settings(cfg, shard.index)
    if settings is None:
        return False
    adapter = FixVenue(tp, shard, settings)

    def ready() -> None:
        info = {"venue": adapter.label, "seq": adapter.processed_seq, "fix": settings.session.key}
        write_ready(ready_file, info)
        print(f"FIX venue {adapter.label} ({settings.host}:{settings.port}) ready", flush=True)

    try:
        adapter.run(stop, on_ready=ready)
    finally:
        adapter.close()
    return True


# -- client commands ---------------------------------------------------------------------------
def _call(url: str, token: str | None, method: str, path: str, body: Any = None) -> Any:
    from gateway.client import Client, GatewayError, GatewayUnreachable

    try:
        with Client(url, token=token) as client:
            return client.order_request(method, path, body)
    except GatewayUnreachable as exc:
        typer.echo(f"cannot reach the gateway at {url}: {exc}", err=True)
        raise typer.Exit(2) from None
    except GatewayError as exc:
        typer.echo(f"{exc.kind}: {exc}", err=True)
        raise typer.Exit(1) from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")  # prices and P&L, not float noise
    return str(value)


def _print(rows: list[dict[str, Any]], title: str, columns: list[str]) -> None:
    from rich.table import Table

    from tickdb.console_out import table_console

    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    table_console().print(table)


ORDER_COLUMNS = ["clordid", "sym", "side", "qty", "price", "status", "cum_qty", "avg_px"]


@order_app.command("new")
def order_new(
    account: Annotated[str, typer.Option(help="Account.")],
    sym: Annotated[str, typer.Argument(help="Symbol.")],
    side: Annotated[str, typer.Argument(help="buy or sell.")],
    qty: Annotated[int, typer.Argument(help="Quantity.")],
    price: Annotated[
        float | None, typer.Argument(help="Limit price; leave out for market.")
    ] = None,
    tif: Annotated[str, typer.Option(help="day, gtc, ioc or fok.")] = "day",
    strategy: Annotated[str, typer.Option(help="Strategy tag.")] = "",
    clordid: Annotated[str | None, typer.Option(help="Client order id (default: new).")] = None,
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Submit an order; prints its state after the venue's answer."""
    body = {
        "account": account,
        "sym": sym,
        "side": side,
        "qty": qty,
        "price": price,
        "type": "market" if price is None else "limit",
        "tif": tif,
        "strategy": strategy,
        "clordid": clordid,
    }
    typer.echo(json.dumps(_call(url, token, "POST", "/orders", body)))


@order_app.command("cancel")
def order_cancel(
    account: Annotated[str, typer.Option(help="Account.")],
    clordid: Annotated[str, typer.Argument(help="ClOrdID of the order.")],
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Cancel an order."""
    body = {"account": account, "orig_clordid": clordid}
    typer.echo(json.dumps(_call(url, token, "POST", "/orders/cancel", body)))


@order_app.command("replace")
def order_replace(
    account: Annotated[str, typer.Option(help="Account.")],
    clordid: Annotated[str, typer.Argument(help="Current ClOrdID of the order.")],
    qty: Annotated[int | None, typer.Option(help="New total quantity.")] = None,
    price: Annotated[float | None, typer.Option(help="New limit price.")] = None,
    new_clordid: Annotated[str | None, typer.Option(help="The order's id from now on.")] = None,
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Change an order's price and/or quantity."""
    body = {
        "account": account,
        "orig_clordid": clordid,
        "clordid": new_clordid,
        "qty": qty,
        "price": price,
    }
    typer.echo(json.dumps(_call(url, token, "POST", "/orders/replace", body)))


@order_app.command("list")
def order_list(
    account: Annotated[str, typer.Option(help="Account (default: all).")] = "",
    open_only: Annotated[bool, typer.Option("--open", help="Only working orders.")] = False,
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """The day's orders."""
    query = f"/orders?account={account}&open={'true' if open_only else 'false'}"
    _print(_call(url, token, "GET", query), f"orders {account or '(all accounts)'}", ORDER_COLUMNS)


def positions(
    account: Annotated[str, typer.Option(help="Account (default: all).")] = "",
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Positions and P&L per account and sym."""
    columns = ["account", "sym", "qty", "avg_price", "mark", "realized_pnl", "unrealized_pnl"]
    _print(_call(url, token, "GET", f"/positions?account={account}"), "positions", columns)


@risk_app.command("limits")
def risk_limits(
    account: Annotated[str | None, typer.Option(help="Account (default: the defaults).")] = None,
    set_: Annotated[
        list[str], typer.Option("--set", help="key=value; repeat. Leave out to show.")
    ] = [],  # noqa: B006
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Show the risk limits and states, or change limits with --set key=value."""
    if not set_:
        typer.echo(json.dumps(_call(url, token, "GET", "/risk"), indent=2))
        return
    changes: dict[str, Any] = {}
    for item in set_:
        key, _, raw = item.partition("=")
        try:
            changes[key] = json.loads(raw)
        except json.JSONDecodeError:
            changes[key] = raw
    body = {"account": account, "changes": changes}
    typer.echo(json.dumps(_call(url, token, "POST", "/risk/limits", body)))


@risk_app.command("kill")
def risk_kill(
    account: Annotated[str | None, typer.Option(help="Account (default: global).")] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy.")] = None,
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Kill switch: refuse new orders and cancel every working order in scope."""
    body = {"account": account, "strategy": strategy}
    typer.echo(json.dumps(_call(url, token, "POST", "/risk/kill", body)))


@risk_app.command("resume")
def risk_resume(
    account: Annotated[str | None, typer.Option(help="Account (default: global).")] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy.")] = None,
    url: Url = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Re-enable trading after a kill switch or a throttle halt."""
    body = {"account": account, "strategy": strategy}
    typer.echo(json.dumps(_call(url, token, "POST", "/risk/resume", body)))
