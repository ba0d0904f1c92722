"""Supervision: ``tickdb up`` restarts a component that exits, with a backoff, and the stack
keeps serving; ``tickdb status`` shows roles, epochs, restarts and failovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.harness import wait_until, write_config
from support.up_stack import running_up

from gateway.client import Client
from tickdb.launch import Launched
from tickdb.stack_status import read_status
from tickdb.supervise import RestartPolicy, Supervised, Supervisor, exit_reason
from tickerplant.publisher import Publisher

# -- the backoff, on a clock the test turns -------------------------------------------------


class FakePopen:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def fake(pid: int) -> Launched:
    return Launched("x", FakePopen(pid), Path("x.log"))  # type: ignore[arg-type]


def test_backoff_doubles_to_its_cap_and_starts_over_after_a_quiet_spell(tmp_path: Path) -> None:
    now = [0.0]
    started: list[list[str]] = []

    def relaunch(component: Supervised) -> Launched:
        started.append(component.restart_args())
        return fake(100 + len(started))

    policy = RestartPolicy(backoff_s=0.1, backoff_max_s=0.4, reset_after_s=30.0)
    supervisor = Supervisor(policy, relaunch, tmp_path / "stack.json", clock=lambda: now[0])
    first = fake(100)
    first.info["address"] = "tcp://127.0.0.1:40000"  # bound on port 0, kept for restarts
    rdb = Supervised("rdb-0", "replica", ["rdb", "--address", "tcp://127.0.0.1:0"], first)
    rdb.pin = ("--address", "address")
    supervisor.add(rdb)
    waits = []
    for _ in range(4):  # crash at once after every start
        rdb.launched.popen.returncode = -signal.SIGKILL  # type: ignore[misc]
        backoff = rdb.backoff_s
        assert supervisor.check() == [f"rdb-0 killed by SIGKILL; restarting in {backoff:g} s"]
        waits.append(rdb.restart_at - now[0])  # type: ignore[operator]
        now[0] = rdb.restart_at  # type: ignore[assignment]
        assert supervisor.check()[0].startswith("rdb-0 restarted")
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.4])
    assert started[0] == ["rdb", "--address", "tcp://127.0.0.1:40000"]
    assert rdb.restarts == 4 and rdb.last_exit == "killed by SIGKILL"
    now[0] += 30.0  # stayed up: the next crash waits the first backoff again
    supervisor.check()
    rdb.launched.popen.returncode = 1  # type: ignore[misc]
    assert supervisor.check() == ["rdb-0 exited with code 1; restarting in 0.1 s"]
    status = json.loads((tmp_path / "stack.json").read_text())
    assert status["components"][0] | {"started": 0} == {
        "name": "rdb-0",
        "role": "replica",
        "pid": 104,
        "alive": False,
        "ready": False,
        "epoch": 0,
        "restarts": 4,
        "started": 0,
        "last_exit": "exited with code 1",
        "address": "tcp://127.0.0.1:40000",
    }


def test_with_restarts_off_the_first_exit_stops_the_stack(tmp_path: Path) -> None:
    supervisor = Supervisor(RestartPolicy(enabled=False), lambda c: fake(2))
    gateway = Supervised("gateway", "primary", ["gateway"], fake(1))
    supervisor.add(gateway)
    assert supervisor.check() == []
    gateway.launched.popen.returncode = 3  # type: ignore[misc]
    assert supervisor.check() == ["stop: gateway exited with code 3 (see x.log)"]
    assert exit_reason(-9) == "killed by SIGKILL"


# -- a real stack ----------------------------------------------------------------------------


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    data = tmp_path / "data"
    config = write_config(
        tmp_path / "stack.toml",
        {
            "tickerplant": {
                "address": "tcp://127.0.0.1:0",
                "publish_address": "tcp://127.0.0.1:0",
                "replay_address": "tcp://127.0.0.1:0",
                "kdb_port": 0,
                "heartbeat_ms": 200,
            },
            "rdb": {"address": "tcp://127.0.0.1:0"},
            "hdb": {"address": "tcp://127.0.0.1:0"},
            "gateway": {"port": 0, "kdb_port": 0, "refresh_s": 0.2},
            "orders": {"enabled": False},
            "stack": {"replicas": 2},
        },
    )
    with running_up(config, data) as proc:
        yield proc, data


def component(data: Path, name: str) -> dict[str, Any]:
    status = read_status(data)
    assert status is not None
    return next(c for c in status["components"] if c["name"] == name)


def test_a_killed_replica_is_restarted_and_the_stack_keeps_serving(
    up: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, data = up
    url = json.loads((data / "run" / "gateway.json").read_text())["url"]
    tp = json.loads((data / "run" / "tickerplant.json").read_text())["address"]
    client = Client(url)
    with Publisher(tp) as pub:
        for i in range(100):
            pub.publish("trade", sym=f"S{i % 7}", price=1.0, size=i)
        pub.flush()

    def counted() -> int:
        return int(client.query("select count(*) n from trade").column("n")[0].as_py())

    wait_until(lambda: counted() == 100, 30, "the rows through the gateway")
    expected = {
        "tickerplant": "primary",
        "hdb-0": "replica",
        "hdb-0-r1": "replica",
        "rdb-0": "replica",
        "rdb-0-r1": "replica",
        "gateway": "primary",
    }

    def roles() -> dict[str, str]:
        status = read_status(data) or {}
        return {c["name"]: c["role"] for c in status.get("components", [])}

    # The gateway's ready file comes a moment before ``tickdb up`` lists it in its status.
    wait_until(lambda: roles() == expected, 30, "every component in the stack's status")
    victim = component(data, "rdb-0-r1")
    os.killpg(victim["pid"], signal.SIGKILL)
    # The other replica answers meanwhile: not one error.
    for _ in range(20):
        assert counted() == 100
    wait_until(lambda: component(data, "rdb-0-r1")["restarts"] == 1, 30, "a restart")
    wait_until(lambda: component(data, "rdb-0-r1")["ready"], 60, "the replica ready again")
    again = component(data, "rdb-0-r1")
    assert again["pid"] != victim["pid"] and again["address"] == victim["address"]
    assert again["last_exit"] == "killed by SIGKILL"
    health = client.health()
    wait_until(
        lambda: all(r["current"] for b in client.health()["backends"] for r in b["replicas"]),
        30,
        "every replica serving",
    )
    # The restarted replica ingests: rows published now are counted by both replicas.
    with Publisher(tp) as pub:
        pub.publish("trade", sym="NEW", price=1.0, size=1)
        pub.flush()
    wait_until(lambda: counted() == 101, 30, "the new row")
    status = subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "status", "--url", url, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "250"},  # no column cut short
    )
    assert status.returncode == 0, status.stdout + status.stderr
    row = next(line for line in status.stdout.splitlines() if "rdb-0-r1" in line)
    assert "replica" in row and "killed by SIGKILL" in row
    assert health["status"] == "ok"
    assert proc.poll() is None
