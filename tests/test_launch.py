"""``tickdb.launch``: a component that fails to start is reported with its log and leaves no
process behind; ``stop()`` ends one that ignores SIGTERM."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support.harness import EPHEMERAL_TP, write_config

from tickdb.launch import LaunchError, launch


def running_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line mentions ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(pid))
    return found


def tp_args(workdir: Path) -> list[str]:
    config = write_config(workdir / "tp.toml", {"tickerplant": EPHEMERAL_TP})
    return ["tp", "--config", str(config), "--data-dir", str(workdir / "data")]


def test_a_component_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(LaunchError, match=r"(?s)tp did not start.*log ends.*does not exist"):
        launch(
            ["tp", "--config", str(missing)],
            name="tp",
            log_path=tmp_path / "tp.log",
            ready_file=tmp_path / "tp.json",
        )
    assert not running_with(str(missing))


def test_a_component_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"tp did not start .*no ready file"):
        launch(
            tp_args(tmp_path),
            name="tp",
            log_path=tmp_path / "tp.log",
            ready_file=tmp_path / "tp.json",
            ready_timeout_s=0.001,
        )
    assert not running_with(str(tmp_path))


def test_stop_kills_what_does_not_end_on_sigterm(tmp_path: Path) -> None:
    tp = launch(
        tp_args(tmp_path), name="tp", log_path=tmp_path / "tp.log", ready_file=tmp_path / "tp.json"
    )
    assert tp.info["address"].startswith("tcp://127.0.0.1:")
    os.kill(tp.pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM
    try:
        assert tp.stop(grace_s=0.5) == -signal.SIGKILL
    finally:
        tp.kill()
    assert not tp.alive() and not running_with(str(tmp_path))
