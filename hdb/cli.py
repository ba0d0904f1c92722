"""``tickdb hdb``: run an HDB (no subcommand), or ``check``, ``retain`` and ``load`` jobs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tickdb.cli_options import ConfigOpt, DataDirOpt, load_config_or_exit

MemoryOpt = Annotated[str, typer.Option("--memory-limit", help="DuckDB memory limit.")]

hdb_app = typer.Typer(
    name="hdb",
    help="Historical database: serve Parquet partitions, or run a maintenance job.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(hdb_app, name="hdb")


@hdb_app.callback()
def serve(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    address: Annotated[
        str | None, typer.Option("--address", "-a", help="Query address (default: hdb.address).")
    ] = None,
    shard: Annotated[str, typer.Option(help="Shard to serve: k/n, or all.")] = "0/1",
    workers: Annotated[int, typer.Option(help="Query worker threads.")] = 2,
    memory_limit: MemoryOpt = "2GB",
    threads: Annotated[int | None, typer.Option(help="DuckDB threads (default: cores).")] = None,
    ready_file: Annotated[
        Path | None, typer.Option("--ready-file", help="Write endpoints here once listening.")
    ] = None,
) -> None:
    """Serve the HDB's partitions over the query protocol until stopped."""
    if ctx.invoked_subcommand is not None:
        return
    from hdb.server import Hdb
    from tickdb.logs import setup_logging
    from tickdb.types import Shard

    setup_logging()
    cfg = load_config_or_exit(config, data_dir, "hdb")
    try:
        selected = None if shard.strip().lower() == "all" else Shard.parse(shard)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}, or all", param_hint="--shard") from None
    hdb = Hdb(
        cfg,
        shard=selected,
        address=address,
        workers=workers,
        memory_limit=memory_limit,
        threads=threads,
    )
    hdb.serve(ready_file)


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=False
    )


@hdb_app.command()
def check(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    journal: Annotated[bool, typer.Option(help="Compare row counts with the journal.")] = True,
) -> None:
    """Check schemas, shard files, sorting and row counts (against the journal)."""
    from hdb.jobs.check import check_hdb, count_partitions

    cfg = load_config_or_exit(config, data_dir)
    counts = None
    if journal:
        from hdb.jobs.journal_counts import journal_row_counts

        def counts(date: dt.date) -> dict[str, int] | None:
            return journal_row_counts(cfg.journal_dir, date)

    with _progress() as progress:
        task = progress.add_task("checking partitions", total=count_partitions(cfg.hdb_dir))
        report = check_hdb(
            cfg.hdb_dir,
            cfg.tables,
            journal_counts=counts,
            on_partition=lambda *_: progress.advance(task),
        )
    for finding in report.findings:
        typer.echo(str(finding), err=finding.level == "error")
    typer.echo(
        f"{report.partitions} partitions, {report.files} files, {report.rows} rows: "
        + ("OK" if report.ok else "PROBLEMS FOUND")
    )
    if not report.ok:
        raise typer.Exit(1)


@hdb_app.command()
def retain(
    days: Annotated[int, typer.Option("--days", help="Keep partitions from the last N days.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    today: Annotated[
        str | None, typer.Option(help="Reference date YYYY-MM-DD (default: today, UTC).")
    ] = None,
    table: Annotated[list[str], typer.Option("--table", help="Only these tables.")] = [],  # noqa: B006
    notify: Annotated[list[str], typer.Option("--notify", help="HDB address to reload.")] = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, do not delete.")] = False,
) -> None:
    """Delete partitions dated before today minus N days."""
    from hdb.jobs.retain import retain as run_retain

    cfg = load_config_or_exit(config, data_dir)
    ref = dt.date.fromisoformat(today) if today else dt.datetime.now(dt.UTC).date()
    report = run_retain(
        cfg.hdb_dir, days, today=ref, tables=table or None, notify=notify, dry_run=dry_run
    )
    verb = "would remove" if dry_run else "removed"
    for name, date in report.removed:
        typer.echo(f"{verb} {name} {date.isoformat()}")
    for address, result in report.notified.items():
        state = "reloaded" if isinstance(result, dict) else f"NOT reloaded ({result})"
        typer.echo(f"{address}: {state}")
    typer.echo(
        f"{verb} {len(report.removed)} partitions before {report.cutoff}, kept {report.kept}"
    )


@hdb_app.command()
def load(
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or Parquet file.")],
    table: Annotated[str, typer.Option("--table", "-t", help="Table to load into.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv or parquet.")] = None,
    shards: Annotated[int, typer.Option(help="Write this many shard files per date.")] = 1,
    if_exists: Annotated[
        str, typer.Option(help="Existing partition: error, replace or append.")
    ] = "error",
    skip_bad: Annotated[bool, typer.Option(help="Load the good rows, skip bad ones.")] = False,
    notify: Annotated[list[str], typer.Option("--notify", help="HDB address to reload.")] = [],  # noqa: B006
    memory_limit: MemoryOpt = "2GB",
) -> None:
    """Backfill partitions from a file, partitioned by the date of time."""
    from hdb.jobs.load import LoadError, load_file
    from hdb.notify import reload_hdbs
    from hdb.parquet_out import WriteOptions

    cfg = load_config_or_exit(config, data_dir)
    if table not in cfg.tables:
        raise typer.BadParameter(f"unknown table {table!r}", param_hint="--table")
    if if_exists not in ("error", "replace", "append"):
        raise typer.BadParameter("error, replace or append", param_hint="--if-exists")
    if shards < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--shards")
    with _progress() as progress:
        task = progress.add_task(f"loading {file.name}", total=None)
        try:
            report = load_file(
                cfg.hdb_dir,
                cfg.tables[table],
                file,
                fmt=fmt,
                shards=shards,
                if_exists=if_exists,  # type: ignore[arg-type]
                skip_bad=skip_bad,
                options=WriteOptions(memory_limit=memory_limit),
                on_dates=lambda n: progress.update(task, total=n * shards),
                on_partition=lambda *_: progress.advance(task),
            )
        except LoadError as exc:
            typer.echo(f"load failed: {exc}", err=True)
            raise typer.Exit(1) from None
    for bad in report.bad_rows:
        where = "" if bad.row < 0 else f"row {bad.row}: "
        typer.echo(f"bad row: {where}{bad.reason}", err=True)
    if report.bad_count > len(report.bad_rows):
        typer.echo(f"... and {report.bad_count - len(report.bad_rows)} more bad rows", err=True)
    if not report.written:
        typer.echo(
            f"nothing written: {report.bad_count} bad rows of {report.rows_read} "
            "(fix them, or pass --skip-bad)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(
        json.dumps(
            {
                "rows_loaded": report.rows_loaded,
                "bad_rows": report.bad_count,
                "partitions": len(report.partitions),
            }
        )
    )
    if notify:
        reload_hdbs(notify)
