"""The order commands of the ``tickdb`` CLI against a real gateway and venue."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.order_stack import OrderStack, start_order_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(tmp_path_factory.mktemp("orders-cli"), shards=1)
    yield running
    running.stop()


def tickdb(stack: OrderStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", *args, "--url", stack.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_order_new_list_replace_cancel(stack: OrderStack) -> None:
    new = tickdb(
        stack,
        "order",
        "new",
        "--account",
        "C1",
        "AAPL",
        "buy",
        "10",
        "100.5",
        "--clordid",
        "cli-1",
        "--tif",
        "gtc",
    )
    assert new.returncode == 0, new.stderr
    order = json.loads(new.stdout)
    assert (order["status"], order["clordid"], order["tif"]) == ("new", "cli-1", "gtc")
    listed = tickdb(stack, "order", "list", "--account", "C1", "--open")
    assert listed.returncode == 0 and "cli-1" in listed.stdout and "100.5" in listed.stdout
    moved = tickdb(
        stack,
        "order",
        "replace",
        "--account",
        "C1",
        "cli-1",
        "--price",
        "100.6",
        "--new-clordid",
        "cli-2",
    )
    assert json.loads(moved.stdout)["price"] == 100.6
    canceled = tickdb(stack, "order", "cancel", "--account", "C1", "cli-2")
    assert json.loads(canceled.stdout)["status"] == "canceled"
    assert "cli-2" not in tickdb(stack, "order", "list", "--account", "C1", "--open").stdout


def test_positions_after_a_trade(stack: OrderStack) -> None:
    tickdb(stack, "order", "new", "--account", "C2", "MSFT", "sell", "5", "300")
    tickdb(stack, "order", "new", "--account", "C3", "MSFT", "buy", "5", "300")
    shown = tickdb(stack, "positions", "--account", "C3")
    assert shown.returncode == 0, shown.stderr
    assert "MSFT" in shown.stdout and "C3" in shown.stdout


def test_risk_limits_kill_and_resume(stack: OrderStack) -> None:
    changed = tickdb(stack, "risk", "limits", "--account", "C4", "--set", "max_order_qty=5")
    assert changed.returncode == 0, changed.stderr
    refused = tickdb(stack, "order", "new", "--account", "C4", "AAPL", "buy", "6", "1")
    assert refused.returncode == 1 and "max_order_qty" in refused.stderr
    status = json.loads(tickdb(stack, "risk", "limits").stdout)
    assert status  # the limits and states as JSON
    assert tickdb(stack, "risk", "kill", "--account", "C4").returncode == 0
    killed = tickdb(stack, "order", "new", "--account", "C4", "AAPL", "buy", "1", "1")
    assert killed.returncode == 1 and "killed" in killed.stderr
    assert tickdb(stack, "risk", "resume", "--account", "C4").returncode == 0
    again = tickdb(stack, "order", "new", "--account", "C4", "AAPL", "buy", "1", "1")
    assert again.returncode == 0, again.stderr


def test_an_unreachable_gateway_exits_2(tmp_path_factory: pytest.TempPathFactory) -> None:
    from support.harness import free_port

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickdb.cli",
            "order",
            "list",
            "--url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "cannot reach the gateway" in done.stderr
