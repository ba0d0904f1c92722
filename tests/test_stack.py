"""``tickdb up``: the whole stack from one command, and nothing left behind after Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.harness import free_port, wait_until, write_config

from gateway.client import Client, GatewayError


def processes_using(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def children_of(parent: int) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # Fields after the command (which may hold spaces): state, ppid, ...
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(pid))
    return found


def test_up_starts_a_sharded_stack_with_a_demo_feed_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "stack-data"
    config = write_config(
        tmp_path / "stack.toml",
        {
            "tickerplant": {
                "address": "tcp://127.0.0.1:0",
                "publish_address": "tcp://127.0.0.1:0",
                "replay_address": "tcp://127.0.0.1:0",
                "kdb_port": 0,
            },
            "rdb": {"address": "tcp://127.0.0.1:0"},
            "hdb": {"address": "tcp://127.0.0.1:0"},
            # A kdb+ port on the gateway: the table lists it, the printed URL must not.
            "gateway": {"port": 0, "kdb_port": free_port(), "order_port": "tcp://127.0.0.1:0"},
            "stack": {"demo_rate": 2000},
        },
    )
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickdb.cli",
            "up",
            "--demo",
            "--shards",
            "2",
            "--config",
            str(config),
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        gateway_ready = data / "run" / "gateway.json"
        wait_until(lambda: gateway_ready.exists() or up.poll() is not None, 90, "the gateway")
        assert up.poll() is None, up.stdout.read() if up.stdout else ""
        url = json.loads(gateway_ready.read_text())["url"]
        # The demo made its credentials on first start, and every port asks for them.
        token = (data / "auth" / "admin.token").read_text().strip()
        assert (data / "auth" / "admin.token").stat().st_mode & 0o777 == 0o600
        with pytest.raises(GatewayError) as refused:
            Client(url).query("select count(*) from trade")
        assert refused.value.status == 401
        client = Client(url, token=token)

        def counted() -> int:
            table = client.query("select count(*) as n from trade")
            return int(table.column("n")[0].as_py())

        wait_until(lambda: counted() > 100, 60, "demo trades visible through the gateway")
        by_sym = client.query("select sym, count(*) n from trade group by sym")
        assert by_sym.num_rows > 1
        names = sorted(p.stem for p in (data / "run").glob("*.json"))
        assert names == [
            "gateway",
            "hdb-0",
            "hdb-1",
            "rdb-0",
            "rdb-1",
            "stack",  # the supervisor's status (tickdb status)
            "tickerplant",
            "venue-0",
            "venue-1",
        ]
        # The demo strategy trades within seconds: orders, fills and positions.
        wait_until(
            lambda: client.query("select count(*) as n from fill").column("n")[0].as_py() > 0,
            60,
            "demo fills visible through the gateway",
        )
        assert client.orders() and client.positions()
        # Components: each its own process group (Ctrl-C reaches only ``up``), all in up's
        # session, so one autogroup and thread priorities that work across processes.
        components = children_of(up.pid)
        # tickerplant, 2 HDBs, 2 RDBs, 2 venues, gateway, feed, demo strategy
        assert len(components) == 10
        for pid in components:
            assert os.getpgid(pid) == pid
            assert os.getsid(pid) == os.getsid(up.pid)
    finally:
        os.killpg(up.pid, signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "stopped." in output
    assert "gateway" in output and "tickerplant" in output
    assert f"Open {url}/docs;" in output  # the bare URL, whatever else the table shows
    squashed = "".join(output.split())  # the console wraps long lines
    assert "TICKDB_TOKEN=$(cat" in squashed and "admin.token" in squashed
    assert processes_using(str(data)) == []
