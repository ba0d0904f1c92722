"""``[cpus]``: each server component pins all its threads (ZeroMQ's I/O thread included) to
the CPUs its key gives, and a setting it cannot honour stops it with the key named."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.harness import EPHEMERAL_TP, Proc, start_tp, write_config

from tickdb.affinity import parse_cpus
from tickdb.config import ConfigError, config_from_dict

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="CPU affinity is Linux's"
)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("", set()),
        ("0", {0}),
        ("0-2", {0, 1, 2}),
        ("0,2", {0, 2}),
        (" 1 , 3-4 ", {1, 3, 4}),
        ("2-2", {2}),
    ],
)
def test_cpu_lists_read_as_taskset_writes_them(text: str, cpus: set[int]) -> None:
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["a", "1-", "-1", "3-1", "0,,1", "0;1", "1.5"])
def test_a_malformed_cpu_list_is_refused_with_its_key(text: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("cpus.venue")):
        config_from_dict({"cpus": {"venue": text}})


def test_an_unknown_component_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("cpus.feed")):
        config_from_dict({"cpus": {"feed": "0"}})


def thread_cpus(pid: int) -> dict[str, str]:
    """Each thread's name and the CPUs it may run on."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        name = re.search(r"^Name:\s*(.*)$", status, re.M)
        allowed = re.search(r"^Cpus_allowed_list:\s*(.*)$", status, re.M)
        assert name and allowed
        out[f"{name.group(1)}:{tid}"] = allowed.group(1)
    return out


def test_a_tickerplant_and_a_venue_run_every_thread_on_their_cpus(tmp_path: Path) -> None:
    first, last = min(os.sched_getaffinity(0)), max(os.sched_getaffinity(0))
    tp = start_tp(tmp_path, cpus={"tickerplant": str(first), "venue": str(last)})
    venue = None
    try:
        threads = thread_cpus(tp.popen.pid)
        assert any(name.startswith("ZMQbg/IO") for name in threads), threads
        assert set(threads.values()) == {str(first)}, threads
        assert f"pinned to CPU(s) {first}" in tp.log()
        config = tmp_path / "tp.toml"  # the same config: the venue reads its own key
        venue = Proc(
            ["venue", "--config", str(config), "--tp", tp.info["address"], "--shard", "0/1"],
            tmp_path,
            "venue",
            ready_timeout=60,
        )
        threads = thread_cpus(venue.popen.pid)
        assert any(name.startswith("ZMQbg/IO") for name in threads), threads
        assert set(threads.values()) == {str(last)}, threads
    finally:
        if venue is not None:
            venue.stop()
        tp.stop()


def test_a_cpu_this_machine_lacks_stops_the_component_with_the_key(tmp_path: Path) -> None:
    missing = max(os.sched_getaffinity(0)) + 64
    config = write_config(
        tmp_path / "tp.toml", {"tickerplant": EPHEMERAL_TP, "cpus": {"tickerplant": str(missing)}}
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickdb.cli",
            "tp",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"cpus.tickerplant: CPU(s) {missing} not available here" in done.stderr
