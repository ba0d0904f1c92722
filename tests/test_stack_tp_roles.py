"""``tickdb up --tp-standby``: the stack's status follows the tickerplant pair's takeovers.

``<data>/run/stack.json`` (and ``tickdb status``) must say which node is the primary now,
from the pair's lease, not the role each node was started in: after the primary is killed,
the standby that took over is ``primary`` with the new epoch and the restarted node is
``standby``; after that new primary is frozen, the other takes the lease back and the frozen
one, though its own process still believes otherwise until it runs again, is ``standby``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from support.harness import free_port_pair, wait_until, write_config
from support.up_stack import running_up

from tickdb.stack_status import read_status
from tickerplant.discovery import TickerplantRefused, TickerplantUnavailable, answer, request
from tickerplant.protocol import STATS
from tickerplant.publisher import Publisher


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, str]]:
    data = tmp_path / "data"
    port = free_port_pair()
    config = write_config(
        tmp_path / "stack.toml",
        {
            "tickerplant": {
                "address": f"tcp://127.0.0.1:{port}",
                "publish_address": "tcp://127.0.0.1:0",
                "replay_address": "tcp://127.0.0.1:0",
                "kdb_port": 0,
                "heartbeat_ms": 200,
            },
            "replication": {
                "address": "tcp://127.0.0.1:0",
                "lease_ttl_ms": 1000,
                "standby_timeout_ms": 2000,
            },
            "rdb": {"address": "tcp://127.0.0.1:0"},
            "hdb": {"address": "tcp://127.0.0.1:0"},
            "gateway": {"port": 0, "kdb_port": 0, "refresh_s": 0.2},
            "orders": {"enabled": False},
            "stack": {"replicas": 1},
        },
    )
    with running_up(config, data, "--tp-standby") as proc:
        yield proc, data, f"tcp://127.0.0.1:{port},tcp://127.0.0.1:{port + 100}"


def roles(data: Path) -> dict[str, tuple[str, int, int]]:
    """Each tickerplant node: (role, epoch, pid) as the status says."""
    status = read_status(data) or {}
    return {
        c["name"]: (c["role"], c["epoch"], c["pid"])
        for c in status.get("components", [])
        if c["name"].startswith("tickerplant")
    }


def attached(primary: str) -> bool:
    """Does the primary at ``primary`` count its standby in (eligible to take over)?"""
    ctx = zmq.Context()
    try:
        reply = answer(request(ctx, primary, [STATS], 5.0), primary)
        return bool(json.loads(reply).get("standby_attached"))
    except (TickerplantUnavailable, TickerplantRefused):
        return False
    finally:
        ctx.term()


def acknowledged(addresses: str) -> None:
    with Publisher(addresses, timeout_s=60) as pub:
        pub.publish("trade", sym="A", price=1.0, size=1)
        pub.flush()


def test_the_status_follows_the_tickerplant_pairs_takeovers(
    up: tuple[subprocess.Popen[str], Path, str],
) -> None:
    proc, data, addresses = up
    wait_until(
        lambda: [(r, e) for r, e, _ in roles(data).values()] == [("primary", 1), ("standby", 1)],
        30,
        "tickerplant primary, tickerplant-s standby, epoch 1",
    )
    acknowledged(addresses)
    first = roles(data)["tickerplant"][2]
    os.killpg(first, signal.SIGKILL)

    def swapped(epoch: int, primary: str, standby: str) -> bool:
        now = roles(data)
        return now[primary][:2] == ("primary", epoch) and now[standby][:2] == ("standby", epoch)

    wait_until(lambda: swapped(2, "tickerplant-s", "tickerplant"), 60, "tickerplant-s primary")
    acknowledged(addresses)  # the new primary serves

    # The restarted node attaches as the standby; then the new primary is frozen: the lease
    # expires, the other takes it, and the frozen node (which still believes it leads) is
    # shown as the standby it has become.
    wait_until(lambda: attached(addresses.split(",")[1]), 60, "the restarted node attached")
    # An acknowledged publish: in sync mode its replication told the standby it is counted
    # in (until then only the primary knows, and a standby not told so never takes over).
    acknowledged(addresses)
    frozen = roles(data)["tickerplant-s"][2]
    os.killpg(frozen, signal.SIGSTOP)
    try:
        wait_until(lambda: swapped(3, "tickerplant", "tickerplant-s"), 60, "tickerplant primary")
        acknowledged(addresses)
    finally:
        os.killpg(frozen, signal.SIGCONT)
    url = json.loads((data / "run" / "gateway.json").read_text())["url"]
    status = subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "status", "--url", url, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},
    )
    cells = [[x.strip() for x in line.split("│")] for line in status.stdout.splitlines()]
    shown = {row[1]: row[2:6] for row in cells if len(row) > 6}  # role, pid, up, epoch
    assert shown["tickerplant"][0] == "primary", status.stdout
    assert shown["tickerplant-s"][0] == "standby", status.stdout
    assert shown["tickerplant"][3] == shown["tickerplant-s"][3] == "3", status.stdout
    assert proc.poll() is None
