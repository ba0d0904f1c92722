"""Starting a tickdb component as a child process, and stopping it again.

The one way ``tickdb up`` (``tickdb.stack``), the test harness and the benchmark scripts
start a component: ``python -m tickdb.cli ARGS --ready-file F``, its output appended to a
log file, then wait until it writes its ready file (``tickdb.ready``: its real endpoints).
A process that exits first, or is not ready in time, is stopped and reported with the end
of its log (``LaunchError``), so a failed start never leaves a process behind.

Each component gets a process group of its own, so a terminal's Ctrl-C reaches only its
launcher and ``stop()`` reaches the whole group (SIGTERM, then SIGKILL after a grace
period), but stays in the launcher's session. A new session would put each component in its
own Linux autogroup, and the scheduler would then share the CPU equally between processes,
whatever the priorities of their threads: the RDBs' query threads run below ingest
(``rdb.server.QUERY_NICE``), and that only counts against threads of the same group. With
one group, ingest keeps its lag low under a heavy query load (``docs/architecture.md``, CPU
priority).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickdb.ready import wait_ready

LOG_TAIL_CHARS = 4000  # of a log quoted in a LaunchError: the traceback, not the whole run


class LaunchError(RuntimeError):
    """A component exited or was not ready in time; the message ends with its log's tail."""


@dataclass
class Launched:
    """A started component: its process, its log and what its ready file said."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    ready_file: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    ready_seen: bool = False  # its ready file was read

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def ready(self) -> bool:
        """Whether it wrote its ready file (then read into ``info``) or needs none."""
        if self.ready_file is None or self.ready_seen:
            return True
        try:
            self.info.update(json.loads(self.ready_file.read_text()))
        except (OSError, ValueError):  # not there yet
            return False
        self.ready_seen = True
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.log()[-chars:]

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """Wait for the ready file and keep what it says; on failure stop the process and
        raise ``LaunchError`` with the end of its log."""
        if self.ready_file is None:
            raise ValueError(f"{self.name} was started without a ready file")
        try:
            self.info.update(wait_ready(self.ready_file, timeout_s, alive=self.alive))
            self.ready_seen = True
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise LaunchError(
                f"{self.name} did not start ({exc}); its log ends:\n{self.log_tail()}"
            ) from None
        except BaseException:
            self.stop()  # Ctrl-C while waiting: nothing is left running
            raise
        return self.info

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, for recovery tests)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM the group; SIGKILL it if it has not exited after ``grace_s``."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(grace_s)
            except ProcessLookupError:
                pass
        return self.popen.returncode


def launch(
    args: Sequence[str],
    *,
    name: str,
    log_path: Path,
    ready_file: Path | None = None,
    ready_timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    wait: bool = True,
) -> Launched:
    """Start ``python -m tickdb.cli ARGS`` and, given a ``ready_file``, return once it wrote
    it (``--ready-file`` is added to ``ARGS``). ``env`` adds to this process's environment.
    ``wait=False`` returns at once (a supervisor restarting a component): the file appears
    when the component is ready."""
    command = [sys.executable, "-m", "tickdb.cli", *args]
    if ready_file is not None:
        ready_file.parent.mkdir(parents=True, exist_ok=True)
        ready_file.unlink(missing_ok=True)  # a file from an earlier run says nothing
        command += ["--ready-file", str(ready_file)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        popen = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env else None,
            cwd=cwd,
            process_group=0,
        )
    launched = Launched(name, popen, log_path, ready_file)
    if ready_file is not None and wait:
        launched.wait_ready(ready_timeout_s)
    return launched
