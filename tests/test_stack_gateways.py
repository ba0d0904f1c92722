"""``tickdb up --gateways 2``: two active-active gateways, each on ports of its own, and a
FIX client given both that goes on through the other when one is killed (real processes on
loopback, supervised as ``tickdb up`` does: a killed gateway comes back on its ports)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.harness import wait_until, write_config

from fix.client import FixClient
from fix.codec import fix_time
from gateway.client import Client
from tickdb.config import load_config
from tickdb.stack import Stack
from tickdb.stack_status import read_status
from tickerplant.subscriber import Subscriber, Update

SESSION = {"sender_comp_id": "DESK1", "target_comp_id": "TICKDB", "account": "F1"}
RISK = """
[risk.defaults]
max_order_qty = 10000
max_open_orders = 100000
max_open_orders_per_sym = 100000
duplicate_window_s = 0
max_messages_per_s = 100000

[risk.accounts.F1]
"""


class Supervised:
    """A stack of ``tickdb up`` with its supervisor's loop in a thread."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.stack.supervisor.check()

    def gateway(self, name: str) -> Any:
        return next(c for c in self.stack.supervisor.components if c.name == name)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.stack.stop()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    tmp = tmp_path_factory.mktemp("gateways")
    path = write_config(
        tmp / "stack.toml",
        {
            "tickerplant": {
                "address": "tcp://127.0.0.1:0",
                "publish_address": "tcp://127.0.0.1:0",
                "replay_address": "tcp://127.0.0.1:0",
                "heartbeat_ms": 200,
                "kdb_port": 0,
            },
            "rdb": {"address": "tcp://127.0.0.1:0"},
            "hdb": {"address": "tcp://127.0.0.1:0"},
            "gateway": {"port": 0, "kdb_port": 0, "order_port": "tcp://127.0.0.1:0"},
            "orders": {"syms": ["AAPL"]},
            "fix": {"enabled": True, "port": 0, "logon_timeout_s": 3.0},
            "fix.sessions.desk1": {**SESSION, "password": "pw"},
        },
    )
    path.write_text(path.read_text() + RISK)
    stack = Stack(
        load_config(path, tmp / "data"), path, shards=1, demo=False, demo_rate=1, gateways=2
    )
    running = Supervised(stack)
    try:
        stack.start()
        yield running
    finally:
        running.close()


def test_each_gateway_has_ports_and_a_fix_store_of_its_own(up: Supervised) -> None:
    stack = up.stack
    urls = stack.gateway_urls()
    assert len(urls) == 2 and urls[0] != urls[1]
    infos = [up.gateway(name).launched.info for name in ("gateway", "gateway-1")]
    for key in ("port", "order_port", "fix_port"):
        assert infos[0][key] != infos[1][key], key
    for url in urls:
        with Client(url, timeout_s=10) as client:
            assert client.health()["status"] == "ok"
    store = stack.config.data_path / "fix"
    assert (store / "TICKDB-DESK1").is_dir() and (store / "gateway-1" / "TICKDB-DESK1").is_dir()
    status = read_status(stack.config.data_path)
    assert status is not None
    roles = {c["name"]: c["role"] for c in status["components"]}
    assert roles["gateway"] == roles["gateway-1"] == "active"
    where = ["--data-dir", str(stack.config.data_path), "--config", str(stack.config_path)]
    shown = subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "status", "--url", urls[0], *where],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert "gateway-1" in shown.stdout and urls[1] in shown.stdout, shown.stdout + shown.stderr


def new_order(fix: FixClient, clordid: str) -> None:
    body: list[Any] = [(11, clordid), (55, "AAPL"), (54, 1), (38, 1), (40, 2), (44, "80.00")]
    fix.send("D", [*body, (60, fix_time())])


def answered(fix: FixClient, clordids: list[str]) -> bool:
    """Every ClOrdID has an execution report that is not a refusal."""
    seen = {m.get(11) for m in fix.received if m.msg_type == "8" and m.get(39) != "8"}
    return set(clordids) <= seen


def accepted(stack: Stack, account: str) -> dict[str, int]:
    """The venue's ``accepted`` rows in the journal for ``account``: ClOrdID -> count."""
    tp = next(c for c in stack.components if c.name == "tickerplant")
    found: dict[str, int] = {}
    with Subscriber(str(tp.info["address"]), tables=["order"], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                for row in message.data.to_pylist():
                    if row["account"] == account and row["event"] == "accepted":
                        found[row["clordid"]] = found.get(row["clordid"], 0) + 1
    return found


def kill(up: Supervised, name: str) -> dict[str, Any]:
    """SIGKILL a gateway; returns what it had bound (its restart binds the same)."""
    component = up.gateway(name)
    info = dict(component.launched.info)
    os.killpg(component.launched.pid, signal.SIGKILL)
    return info


def test_a_fix_client_given_both_gateways_goes_on_when_one_is_killed(
    up: Supervised, tmp_path: Path
) -> None:
    """Orders sent in bursts while the gateway they go to is killed: each is answered
    (through the other gateway, resent there with PossResend) and is one order. Then the
    killed one is back on its ports, and killing the other fails back to it."""
    stack = up.stack
    ports = [int(up.gateway(n).launched.info["fix_port"]) for n in ("gateway", "gateway-1")]
    sent: list[str] = []
    with FixClient(
        [("127.0.0.1", p) for p in ports],
        sender_comp_id="DESK1",
        target_comp_id="TICKDB",
        password="pw",
        heartbeat_s=1,
        logon_timeout_s=2.0,
        store_dir=tmp_path,
    ) as fix:
        fix.wait_logged_on(20)
        for round_, victim in enumerate(("gateway", "gateway-1")):
            assert fix.address[1] == ports[round_]
            for i in range(30):
                if i == 10:  # some sent, some answered, some in flight
                    killed_pid = up.gateway(victim).launched.pid
                    before = kill(up, victim)
                clordid = f"fo-{round_}-{i}"
                sent.append(clordid)
                new_order(fix, clordid)
            wait_until(lambda: answered(fix, sent), 30, "every order answered")
            assert fix.failovers == round_ + 1
            assert fix.address[1] == ports[1 - round_]
            # The supervisor starts the killed gateway again, on the ports it had: the new
            # process ready (until the supervisor has seen the exit, the component is still
            # the killed one, whose ready file was read long ago).
            wait_until(
                lambda v=victim, gone=killed_pid: (
                    up.gateway(v).launched.pid != gone and up.gateway(v).launched.ready()
                ),
                60,
                f"{victim} back",
            )
            after = up.gateway(victim).launched.info
            assert [after[k] for k in ("url", "order_port", "fix_port")] == [
                before[k] for k in ("url", "order_port", "fix_port")
            ]
    refused = [m for m in fix.received if m.msg_type == "8" and m.get(39) == "8"]
    assert refused == []
    wait_until(lambda: sorted(accepted(stack, "F1")) == sorted(sent), 20, "accepted rows")
    assert set(accepted(stack, "F1").values()) == {1}
