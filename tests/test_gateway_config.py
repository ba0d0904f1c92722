"""Every gateway setting comes from ``[gateway]`` in the config file; flags override it."""

from __future__ import annotations

import os
from pathlib import Path

from support.harness import Proc, free_port, write_config

from gateway.client import Client
from gateway.server import default_in_flight, limits_of
from tickdb.config import GatewayConfig

# Nothing listens there: the gateway starts anyway and reports the backend down.
ABSENT = [f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"]


def backends(url: str) -> list[str]:
    with Client(url, timeout_s=10) as client:
        return sorted(b["name"] for b in client.health()["backends"])


def nice_of(pid: int) -> int:
    # /proc/PID/stat: the 19th field is the nice value; the command (2nd) may hold spaces.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_a_config_file_alone_describes_a_gateway(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "gateway.toml",
        {
            "gateway": {
                "port": 0,
                "kdb_port": 0,
                "rdb_addresses": [ABSENT[0]],
                "hdb_addresses": [ABSENT[1]],
                "refresh_s": 0.2,
                "query_timeout_s": 0.5,
                "nice": 3,
            }
        },
    )
    gateway = Proc(["gateway", "--config", str(config)], tmp_path, "gateway")
    try:
        assert backends(gateway.info["url"]) == [f"hdb:{ABSENT[1]}", f"rdb:{ABSENT[0]}"]
        assert nice_of(gateway.popen.pid) == os.nice(0) + 3
        assert "kdb_port" not in gateway.info
    finally:
        gateway.stop()


def test_flags_override_the_config(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "gateway.toml",
        {"gateway": {"port": 0, "kdb_port": 0, "hdb_addresses": [ABSENT[1]], "nice": 3}},
    )
    args = ["gateway", "--config", str(config), "--hdb", ABSENT[0], "--nice", "0"]
    gateway = Proc([*args, "--timeout", "0.5"], tmp_path, "gateway")
    try:
        assert backends(gateway.info["url"]) == [f"hdb:{ABSENT[0]}"]
        assert nice_of(gateway.popen.pid) == os.nice(0)
    finally:
        gateway.stop()


def test_limits_follow_the_settings() -> None:
    limits = limits_of(GatewayConfig(scan_rows=10, in_flight=3, query_timeout_s=2.0))
    assert (limits.scan_rows, limits.in_flight, limits.timeout_s) == (10, 3, 2.0)
    assert limits_of(GatewayConfig()).in_flight == default_in_flight()
