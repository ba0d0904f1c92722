"""A real gateway process over real query services: ``queries.service.QueryServer``s on
ephemeral ports, in this process, serving in-test data split as a stack places it (3 shards
x today/past), and ``tickdb gateway`` started with ``--rdb``/``--hdb`` for each."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from gateway.local import local_topology
from queries.service import QueryServer
from support.gateway_data import TODAY
from support.harness import Proc, free_port, write_config


def one_duckdb(data: Mapping[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """Every row in one DuckDB: the reference answers come from here."""
    con = duckdb.connect()
    for name, table in data.items():
        con.register(name, table)
    return con


def start_stack(
    workdir: Path,
    data: dict[str, pa.Table],
    timeout_s: float = 3.0,
    max_rows: int | None = None,
    users: Mapping[str, str] | None = None,
    sections: Mapping[str, dict[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """QueryServers for 3 shards x 2 tiers and ``tickdb gateway`` over them.

    ``users``: turn the gateway's kdb+ port on (on a ``free_port()``, from the config) with
    this user table. ``max_rows``: the gateway's row limit (its default otherwise).
    ``sections``: more config sections (``{"auth": {...}}``).
    ``settings``: more ``[gateway]`` settings, from the config.
    """
    servers = {}
    for name, backend in local_topology(data, shards=3, today=TODAY).items():
        server = QueryServer(
            "tcp://127.0.0.1:0",
            lambda _request, b=backend: b.cursor(),
            info=backend.info,
            timeout_s=10,
            max_rows=1_000_000,
        )
        server.start()
        servers[name] = server
    args = ["gateway"]
    if users is not None or settings or sections:
        config: dict[str, dict[str, Any]] = {"gateway": dict(settings or {})}
        if users is not None:
            config["gateway"]["kdb_port"] = free_port()
            config["gateway.users"] = dict(users)
        config.update(sections or {})
        args += ["--config", str(write_config(workdir / "gateway.toml", config))]
        args += ["--data-dir", str(workdir / "data")]  # its audit log, with [auth] on
    args += ["--port", "0", "--refresh", "0.2", "--timeout", str(timeout_s)]
    if max_rows is not None:
        args += ["--max-rows", str(max_rows)]
    for name, server in servers.items():
        args += [f"--{name[:3]}", server.endpoint]
    try:
        gateway = Proc(args, workdir, "gateway")
    except Exception:
        for server in servers.values():
            server.close()
        raise
    return {
        "url": gateway.info["url"],
        "kdb_port": gateway.info.get("kdb_port"),
        "servers": servers,
        "proc": gateway,
    }


def stop_stack(stack: dict[str, Any]) -> None:
    stack["proc"].stop()
    for server in stack["servers"].values():
        server.close()
