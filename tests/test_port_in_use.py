"""A port already in use is one clear line naming the port and the setting, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.harness import Proc, write_config


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], port: int, setting: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    last = [line for line in done.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("tickdb: cannot listen on ") and f":{port}" in last, output
    assert "already in use" in last and setting in last, output


def test_tickerplant_address_in_use(tmp_path: Path, taken: int) -> None:
    done = run(["tp", "--data-dir", "d", "--address", f"tcp://127.0.0.1:{taken}"], tmp_path)
    assert_one_line(done, taken, "tickerplant.address")


def test_tickerplant_publish_address_in_use(tmp_path: Path, taken: int) -> None:
    config = write_config(
        tmp_path / "t.toml",
        {
            "tickerplant": {
                "address": "tcp://127.0.0.1:0",
                "publish_address": f"tcp://127.0.0.1:{taken}",
                "kdb_port": 0,
            }
        },
    )
    done = run(["tp", "--config", str(config), "--data-dir", "d"], tmp_path)
    assert_one_line(done, taken, "tickerplant.publish_address")


def test_hdb_address_in_use(tmp_path: Path, taken: int) -> None:
    done = run(["hdb", "--data-dir", "d", "--address", f"tcp://127.0.0.1:{taken}"], tmp_path)
    assert_one_line(done, taken, "hdb.address")


def test_gateway_ports_in_use(tmp_path: Path, taken: int) -> None:
    # A backend that is not there: the gateway starts anyway (it asks again later).
    backend = ["--hdb", "tcp://127.0.0.1:9", "--timeout", "0.5"]
    done = run(["gateway", "--port", str(taken), *backend], tmp_path)
    assert_one_line(done, taken, "gateway.port")


def test_gateway_runs_without_a_kdb_port_in_use_and_says_so(
    tmp_path: Path, taken: int, procs: list[Proc]
) -> None:
    args = ["gateway", "--port", "0", "--kdb-port", str(taken), "--hdb", "tcp://127.0.0.1:9"]
    gateway = Proc(args, tmp_path, "gateway")
    procs.append(gateway)
    (line,) = [ln for ln in gateway.log().splitlines() if "kdb+ port" in ln]
    assert f":{taken}" in line and "already in use" in line and "gateway.kdb_port" in line
    assert "Traceback" not in gateway.log()
