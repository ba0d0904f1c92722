"""Start real component processes for tests, on loopback and ephemeral ports.

A started process writes a ready file with its real endpoints (see ``tickdb.ready``); the
harness waits for that file, never for a fixed time, and kills the whole process group at
teardown so nothing outlives the test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tickdb.launch import Launched, launch


class Proc:
    """A component process started with ``python -m tickdb.cli ...``."""

    def __init__(
        self,
        args: Sequence[str],
        workdir: Path,
        name: str,
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.ready_file = workdir / f"{name}.ready.json"
        self.log_path = workdir / f"{name}.log"
        self.process = launch(
            args,
            name=name,
            log_path=self.log_path,
            ready_file=self.ready_file,
            ready_timeout_s=ready_timeout,
            env={"PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.popen = self.process.popen
        self.info: dict[str, Any] = self.process.info

    def _launched(self) -> Launched:
        # A subclass may start its process itself and set only ``popen`` and ``log_path``.
        if "process" not in self.__dict__:
            self.process = Launched(self.name, self.popen, self.log_path)
        return self.process

    def log(self) -> str:
        return self._launched().log()

    def alive(self) -> bool:
        return self._launched().alive()

    def kill9(self) -> None:
        self._launched().kill()

    def stop(self, timeout: float = 10.0) -> int | None:
        code = self._launched().stop(grace_s=timeout)
        own_log = self.__dict__.get("_log")  # such a subclass's handle on its log
        if own_log is not None:
            own_log.close()
        return code


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a small TOML config: ``{"tickerplant": {"mode": "batched"}}``."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


EPHEMERAL_TP = {
    "address": "tcp://127.0.0.1:0",
    "publish_address": "tcp://127.0.0.1:0",
    "replay_address": "tcp://127.0.0.1:0",
    "heartbeat_ms": 200,
    "kdb_port": 0,  # off unless a test asks for it
}


def start_tp(
    workdir: Path, name: str = "tp", extra_args: Sequence[str] = (), **settings: dict[str, Any]
) -> Proc:
    """A tickerplant on ephemeral loopback ports with data under ``workdir/data``."""
    sections = {k: dict(v) for k, v in settings.items()}
    sections["tickerplant"] = {**EPHEMERAL_TP, **sections.get("tickerplant", {})}
    config = write_config(workdir / f"{name}.toml", sections)
    return Proc(
        ["tp", "--config", str(config), "--data-dir", str(workdir / "data"), *extra_args],
        workdir,
        name,
    )


def free_port() -> int:
    """A port free right now, for processes that must come back on the same address."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair(offset: int = 100) -> int:
    """A free port whose ``+ offset`` is free too: a tickerplant pair's, whose standby
    ``tickdb up --tp-standby`` puts 100 ports above."""
    import socket

    while True:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            if port + offset > 65535:
                continue
            try:
                b.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            return port


def peak_rss(pid: int) -> int:
    """The most resident memory process ``pid`` has had (a buffered frame comes and goes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")
