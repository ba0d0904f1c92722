"""FIX operations: ``tickdb fix sessions``, ``tickdb fix reset``, the sessions in ``tickdb
status`` and on the gateway's ``/metrics``, and the HTTP routes behind them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from support.fix_stack import start_fix_stack
from support.harness import wait_until
from support.order_stack import OrderStack

from fix.client import FixClient

SESSIONS = {"ops": ("COPS", "OPS1", "opw")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_fix_stack(tmp_path_factory.mktemp("fixops"), SESSIONS)
    yield running
    running.stop()


def tickdb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", *args], capture_output=True, text=True, timeout=60
    )


def sessions(stack: OrderStack) -> dict[str, dict]:
    with stack.client() as client:
        body = client.get("/fix/sessions").json()
    assert body["enabled"] is True
    return {s["name"]: s for s in body["sessions"]}


def test_sessions_status_metrics_and_reset(stack: OrderStack) -> None:
    assert stack.gateway is not None
    port = int(stack.gateway.info["fix_port"])
    with FixClient("127.0.0.1", port, "COPS", "TICKDB", password="opw") as fix:
        fix.wait_logged_on()
        for _ in range(3):
            fix.send("0", [])
        ops = wait_until(lambda: (s := sessions(stack)["ops"])["next_target_seq"] >= 5 and s)
        assert ops["state"] == "logged_on" and ops["account"] == "OPS1"
        assert ops["sender_comp_id"] == "TICKDB" and ops["target_comp_id"] == "COPS"

        listed = tickdb("fix", "sessions", "--url", stack.url, "--json")
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)
        assert row["name"] == "ops" and row["role"] == "acceptor"
        assert row["next_target_seq"] >= 5

        status = tickdb("status", "--url", stack.url)
        assert "FIX sessions" in status.stdout and "logged_on" in status.stdout

        with stack.client() as client:
            metrics = client.get("/metrics").text
        labels = 'sender_comp_id="TICKDB",session="ops",target_comp_id="COPS"'
        assert f"tickdb_fix_session_logged_on{{{labels}}} 1.0" in metrics
        assert f"tickdb_fix_session_next_target_seq{{{labels}}}" in metrics
        assert f"tickdb_fix_session_received_total{{{labels}}}" in metrics

        unknown = tickdb("fix", "reset", "nope", "--url", stack.url)
        assert unknown.returncode == 1 and "no FIX session" in unknown.stderr

        reset = tickdb("fix", "reset", "ops", "--url", stack.url)
        assert reset.returncode == 0, reset.stderr
        assert json.loads(reset.stdout)["reset"] is True
        # The live session was logged out, its numbers start again.
        wait_until(lambda: not fix.session.logged_on, 10, "client logged out")
        after = wait_until(lambda: (s := sessions(stack)["ops"])["state"] != "logged_on" and s)
        assert after["next_sender_seq"] <= 2 and after["next_target_seq"] <= 2


def test_the_routes_when_fix_is_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    from support.order_stack import start_order_stack

    stack = start_order_stack(tmp_path_factory.mktemp("nofix"), orders={"syms": ["AAPL"]})
    try:
        with stack.client() as client:
            assert client.get("/fix/sessions").json() == {"enabled": False, "sessions": []}
            assert client.post("/fix/sessions/x/reset", {}).status == 404
        status = tickdb("status", "--url", stack.url)
        assert "FIX sessions" not in status.stdout
    finally:
        stack.stop()
