"""Options every component command shares, and loading the config for a command."""

from __future__ import annotations

import os
from collections.abc import Callable
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


def _to_env(name: str) -> Callable[[Path | None], Path | None]:
    """A typer callback putting the option's value into ``name`` in this process's
    environment: every gateway client the command makes (``tickdb.Client`` reads it) then
    uses it, not only the first."""

    def callback(value: Path | None) -> Path | None:
        if value is not None:
            os.environ[name] = str(value)
        return value

    return callback


# TLS to an https:// gateway (docs/security.md, Encryption).
CaOpt = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        envvar="TICKDB_CA",
        callback=_to_env("TICKDB_CA"),
        help="CA certificate to trust for an https:// gateway (tickdb keys tls: ca.crt).",
    ),
]
CertOpt = Annotated[
    Path | None,
    typer.Option(
        "--cert",
        envvar="TICKDB_CERT",
        callback=_to_env("TICKDB_CERT"),
        help="Client certificate, for a gateway that requires one (tls.client_ca).",
    ),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", envvar="TICKDB_KEY", callback=_to_env("TICKDB_KEY"), help="Its private key."
    ),
]


def load_config_or_exit(
    config: Path | None, data_dir: Path | None, component: str | None = None
) -> Config:
    """The config for a command; a bad one ends it with exit code 2 and the key named.
    The command is then a component of that stack: its ZeroMQ links follow ``[curve]``
    (``tickdb.curve_links.install``), and a server ``component`` (a ``[cpus]`` key) runs
    on the CPUs that section gives it, pinned before it starts any thread of its own."""
    from tickdb import affinity, curve_links
    from tickdb.config import ConfigError, load_config

    try:
        cfg = load_config(config, data_dir)
        if component is not None:
            try:
                affinity.apply(getattr(cfg.cpus, component), component)
            except ValueError as exc:
                raise ConfigError(f"cpus.{component}: {exc}") from exc
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(2) from None
    curve_links.install(cfg)
    return cfg
