"""Options every component command shares, and loading the config for a command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tickdb.config import Config

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TICKDB_TOKEN",
        show_envvar=True,
        help="API token for a gateway with [auth] on (prefer the environment variable: a "
        "command line is visible to other users).",
    ),
]
ReadyOpt = Annotated[
    Path | None, typer.Option("--ready-file", help="Write endpoints here once listening.")
]


def load_config_or_exit(config: Path | None, data_dir: Path | None) -> Config:
    """The config for a command; a bad one ends it with exit code 2 and the key named."""
    from tickdb.config import ConfigError, load_config

    try:
        return load_config(config, data_dir)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None
