"""A tickerplant pair (two ``tickdb tp`` nodes sharing a lease directory) for tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from support.harness import Proc, free_port, wait_until, write_config

NODES = ("a", "b")
WAIT = 30.0  # seconds: a loaded machine starts processes slowly


class Pair:
    def __init__(
        self,
        workdir: Path,
        mode: str = "sync",
        *,
        heartbeat_ms: int = 100,
        standby_timeout_ms: int = 1000,
    ) -> None:
        self.workdir = workdir
        self.mode = mode
        self.procs: dict[str, Proc] = {}
        self.addresses = {n: f"tcp://127.0.0.1:{free_port()}" for n in NODES}
        for node in NODES:
            write_config(
                workdir / f"{node}.toml",
                {
                    "tickerplant": {
                        "address": self.addresses[node],
                        "publish_address": "tcp://127.0.0.1:0",
                        "replay_address": "tcp://127.0.0.1:0",
                        "heartbeat_ms": heartbeat_ms,
                        "kdb_port": 0,
                    },
                    "journal": {"fsync": "never"},
                    "replication": {
                        "mode": mode,
                        "address": "tcp://127.0.0.1:0",
                        "lease_dir": str(workdir / "lease"),
                        "lease_ttl_ms": 1000,
                        "standby_timeout_ms": standby_timeout_ms,
                    },
                },
            )

    @property
    def both(self) -> list[str]:
        return [self.addresses[n] for n in NODES]

    def start(self, node: str) -> Proc:
        args = ["tp", "--config", str(self.workdir / f"{node}.toml")]
        data = ["--data-dir", str(self.workdir / node)]
        proc = Proc([*args, *data], self.workdir, node, ready_timeout=60)
        self.procs[node] = proc
        return proc

    def role(self, node: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.procs[node].ready_file.read_text()))
        except (OSError, ValueError):
            return {}

    def stats(self, node: str) -> dict[str, Any]:
        ctx = zmq.Context.instance()
        socket = ctx.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.connect(self.addresses[node])
            socket.send_multipart([b"STATS"])
            if not socket.poll(1000):
                return {}
            return dict(json.loads(socket.recv_multipart()[1]))
        finally:
            socket.close(0)

    def attached(self, primary: str) -> bool:
        return bool(self.stats(primary).get("standby_attached"))

    def journal(self, node: str) -> Path:
        return self.workdir / node / "journal"

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()


def pair_fixture(**options: Any) -> Callable[[Path], Iterator[Pair]]:
    """A test module's ``pair`` fixture: a ``Pair`` with ``options``, closed after the test
    (``pair = pair_fixture(heartbeat_ms=5000)`` at module level)."""

    @pytest.fixture
    def pair(tmp_path: Path) -> Iterator[Pair]:
        made = Pair(tmp_path, **options)
        try:
            yield made
        finally:
            made.close()

    return pair


def start_pair(pair: Pair) -> None:
    pair.start("a")
    wait_until(lambda: pair.role("a").get("role") == "primary", WAIT, what="a primary")
    pair.start("b")
    wait_until(lambda: pair.attached("a"), WAIT, what="b attached to a")


def same_files(one: Path, other: Path) -> bool:
    names = sorted(p.name for p in one.glob("*.tpj"))
    if names != sorted(p.name for p in other.glob("*.tpj")):
        return False
    return all((one / n).read_bytes() == (other / n).read_bytes() for n in names)
