"""``[cpus]``: each server component pins all its threads (ZeroMQ's I/O thread included) to
the CPUs its key gives, and a setting it cannot honour stops it with the key named."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.harness import EPHEMERAL_TP, write_config
from support.order_stack import start_order_stack

from tickdb.affinity import parse_cpus
from tickdb.config import ConfigError, config_from_dict

RISK = "[risk.accounts.A1]\n"
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


def test_a_pinned_stack_runs_every_thread_where_its_key_says_and_trades(
    tmp_path: Path,
) -> None:
    """tickerplant, venue, RDB and gateway, each with its own [cpus] key, all threads
    (ZeroMQ's I/O threads too) on their CPUs; and the stack still takes an order."""
    first, last = str(min(os.sched_getaffinity(0))), str(max(os.sched_getaffinity(0)))
    cpus = {"tickerplant": first, "venue": last, "rdb": first, "gateway": last}
    stack = start_order_stack(
        tmp_path, shards=1, rdbs=True, orders={"syms": ["AAPL"]}, cpus=cpus, extra_toml=RISK
    )
    try:
        assert stack.gateway is not None
        procs = {
            "tickerplant": stack.tp,
            "venue": stack.venues[0],
            "rdb": stack.rdbs[0],
            "gateway": stack.gateway,
        }
        for component, proc in procs.items():
            threads = thread_cpus(proc.popen.pid)
            assert any(name.startswith("ZMQbg/IO") for name in threads), (component, threads)
            assert set(threads.values()) == {cpus[component]}, (component, threads)
        with stack.client() as client:
            order = client.submit("A1", "AAPL", "buy", 10, 100.00)
        assert order["status"] == "new"
    finally:
        stack.stop()


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


def test_status_shows_the_cpus_each_component_may_run_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.cli_status import print_components
    from tickdb.affinity import pin_process

    monkeypatch.setenv("COLUMNS", "250")  # no column cut short
    first = min(os.sched_getaffinity(0))
    pinned = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    free = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pin_process(frozenset({first}), pinned.pid)
        row = {"role": "primary", "ready": True, "alive": True, "epoch": 0, "restarts": 0}
        row |= {"started": time.time(), "last_exit": None, "address": ""}
        stack = {
            "pid": os.getpid(),
            "components": [
                {**row, "name": "tp", "pid": pinned.pid},
                {**row, "name": "gateway", "pid": free.pid},
            ],
        }
        print_components(stack, {})
    finally:
        pinned.kill()
        free.kill()
        pinned.wait()
        free.wait()
    lines = capsys.readouterr().out.splitlines()
    names = [cell.strip() for cell in next(x for x in lines if "cpus" in x).split("┃")]
    rows = {
        cells[1]: cells
        for line in lines
        if "│" in line
        for cells in [[cell.strip() for cell in line.split("│")]]
    }
    cpus = names.index("cpus")
    alone = len(os.sched_getaffinity(0)) == 1  # then pinned to its one CPU is all of them
    assert rows["tp"][cpus] == ("all" if alone else str(first))
    assert rows["gateway"][cpus] == "all"
