"""``tickdb journal check|replay|repair PATH``: inspect and mend journal files offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

journal_app = typer.Typer(help="Check, replay and repair journal files.", no_args_is_help=True)
PathArg = Annotated[
    Path,
    typer.Argument(help="A journal file (`<data>/journal/DATE.tpj`).", exists=True, dir_okay=False),
]


def _progress(total: int) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=total < 64 * 1024 * 1024,
    )


@journal_app.command("check")
def check(
    path: PathArg, rows: Annotated[bool, typer.Option(help="Also count rows per table.")] = False
) -> None:
    """Validate every record; exit 1 if the tail is torn or corrupt."""
    from tickerplant.journal import scan_journal

    total = path.stat().st_size
    with _progress(total) as progress:
        task = progress.add_task("checking", total=total)
        scan = scan_journal(
            path, progress=lambda done: progress.update(task, completed=done), count_rows=rows
        )
    typer.echo(scan.describe())
    for table, count in sorted(scan.rows_by_table.items()):
        typer.echo(f"  {table}: {count} rows")
    if scan.corrupt:
        raise typer.Exit(1)


@journal_app.command("repair")
def repair(path: PathArg) -> None:
    """Cut the file after its last valid record; the cut bytes are kept beside it."""
    from tickerplant.journal import repair_journal, scan_journal

    before = scan_journal(path)
    if not before.corrupt:
        typer.echo(f"nothing to repair: {before.describe()}")
        return
    after = repair_journal(path)
    typer.echo(
        f"cut {before.total_bytes - before.valid_bytes} bytes after record "
        f"{before.last_seq}; kept them in {path.name}.corrupt-{before.valid_bytes}"
    )
    typer.echo(after.describe())


@journal_app.command("replay")
def replay(
    path: PathArg,
    after: Annotated[int, typer.Option(help="Start after this seq.")] = 0,
    upto: Annotated[int | None, typer.Option(help="Stop at this seq.")] = None,
    table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the rows of --table to this Parquet file instead of printing."),
    ] = None,
) -> None:
    """Read records back: a summary line per record, or one table's rows to Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tickerplant.journal import JournalCorrupt, read_journal_encoded
    from tickerplant.protocol import KIND_EOD

    if out is not None and table is None:
        typer.echo("--out needs --table", err=True)
        raise typer.Exit(2)
    parts: list[pa.Table] = []
    total = path.stat().st_size
    try:
        with _progress(total) as progress:
            task = progress.add_task("replaying", total=total)
            read = 0  # bytes of the records read: the bar counts bytes, as check's does
            for i, (record, encoded) in enumerate(read_journal_encoded(path, after, upto)):
                read += len(encoded)
                if record.kind == KIND_EOD:
                    if out is None:
                        typer.echo(f"#{record.seq} end of day {record.eod_date}")
                    continue
                if table is not None and record.table != table:
                    continue
                data = record.to_table()
                if out is not None:
                    parts.append(data)
                else:
                    typer.echo(f"#{record.seq} {record.table} {data.num_rows} rows")
                if i % 1000 == 0:
                    progress.update(task, completed=min(total, read))
    except JournalCorrupt as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if out is not None:
        pq.write_table(pa.concat_tables(parts) if parts else pa.table({}), out)
        typer.echo(f"wrote {sum(p.num_rows for p in parts)} rows to {out}")
