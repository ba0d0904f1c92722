"""A trading stack for tests: a tickerplant, a venue per shard and a gateway taking orders
(optionally RDBs behind it), real processes on loopback, stopped at teardown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.client import Client
from support.harness import EPHEMERAL_TP, Proc, start_tp, write_config


@dataclass
class OrderStack:
    workdir: Path
    config: Path
    shards: int
    tp: Proc
    venues: list[Proc] = field(default_factory=list)
    rdbs: list[Proc] = field(default_factory=list)
    gateway: Proc | None = None
    # Gateways beyond the first (active-active: the same tickerplant and venues).
    more_gateways: list[Proc] = field(default_factory=list)

    @property
    def tp_address(self) -> str:
        return str(self.tp.info["address"])

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return str(self.gateway.info["url"])

    def client(self) -> Client:
        return Client(self.url, timeout_s=30)

    def start_venue(self, k: int, *extra: str) -> Proc:
        proc = Proc(
            [
                "venue",
                "--config",
                str(self.config),
                "--tp",
                self.tp_address,
                "--shard",
                f"{k}/{self.shards}",
                *extra,
            ],
            self.workdir,
            f"venue-{k}",
            ready_timeout=60,
        )
        if k < len(self.venues):
            self.venues[k] = proc
        else:
            self.venues.append(proc)
        return proc

    def start_rdb(self, k: int) -> Proc:
        proc = Proc(
            [
                "rdb",
                "--config",
                str(self.config),
                "--data-dir",
                str(self.workdir / "data"),
                "--tp",
                self.tp_address,
                "--shard",
                f"{k}/{self.shards}",
                "--address",
                "tcp://127.0.0.1:0",
            ],
            self.workdir,
            f"rdb-{k}",
        )
        self.rdbs.append(proc)
        return proc

    def start_gateway(self, port: int = 0, order_port: int = 0, name: str = "gateway") -> Proc:
        """The stack's gateway, or with another ``name`` one more beside it."""
        args = [
            "gateway",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.workdir / "data"),
            "--port",
            str(port),
            "--kdb-port",
            "0",
            "--order-port",
            f"tcp://127.0.0.1:{order_port}",
            "--refresh",
            "0.2",
            "--tp",
            self.tp_address,
        ]
        for rdb in self.rdbs:
            args += ["--rdb", str(rdb.info["address"])]
        proc = Proc(args, self.workdir, name, ready_timeout=60)
        if name == "gateway":
            self.gateway = proc
        else:
            self.more_gateways.append(proc)
        return proc

    def procs(self) -> list[Proc]:
        gateways = [self.gateway, *self.more_gateways]
        return [p for p in [*gateways, *self.venues, *self.rdbs, self.tp] if p is not None]

    def stop(self) -> None:
        for proc in self.procs():
            proc.stop()


def start_order_stack(
    workdir: Path,
    shards: int = 1,
    rdbs: bool = False,
    gateway_port: int = 0,
    order_port: int = 0,
    venue_args: tuple[str, ...] = (),
    **sections: Any,
) -> OrderStack:
    """Tickerplant, ``shards`` venues, optional RDBs, and a gateway with ``--tp``.

    ``sections`` are extra config sections (``orders={...}``, ``risk={...}`` is not
    supported here: pass ``risk_toml`` text through ``extra_toml`` instead)."""
    extra_toml = str(sections.pop("extra_toml", ""))
    # The venues' snapshots in the test's own directory, not the default under the cwd.
    sections["orders"] = {"snapshot_dir": str(workdir / "snapshots"), **sections.get("orders", {})}
    tp = start_tp(workdir, **sections)
    config = write_config(
        workdir / "stack.toml",
        {
            "tickerplant": {**EPHEMERAL_TP, **sections.get("tickerplant", {})},
            **{k: v for k, v in sections.items() if k != "tickerplant"},
        },
    )
    if extra_toml:
        config.write_text(config.read_text() + "\n" + extra_toml)
    stack = OrderStack(workdir, config, shards, tp)
    try:
        for k in range(shards):
            stack.start_venue(k, *venue_args)
        if rdbs:
            for k in range(shards):
                stack.start_rdb(k)
        stack.start_gateway(gateway_port, order_port)
    except Exception:
        stack.stop()
        raise
    return stack
