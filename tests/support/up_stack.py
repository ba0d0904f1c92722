"""``tickdb up`` as a test runs it: a process group of its own, up once the gateway is."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from support.harness import wait_until


@contextlib.contextmanager
def running_up(config: Path, data: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """``tickdb up --config config --data-dir data *options``, once its gateway is ready;
    stopped with Ctrl-C (SIGINT to its group) at the end."""
    command = [sys.executable, "-m", "tickdb.cli", "up", *options, "--config", str(config)]
    proc = subprocess.Popen(
        [*command, "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        ready = data / "run" / "gateway.json"
        wait_until(lambda: ready.exists() or proc.poll() is not None, 90, "the stack")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
