"""A kdb+ IPC server (the dispatch table of ``tests/qipc_servers/dispatch_server.py``) in a
process of its own: a PyKX client and a Python server in one process can deadlock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tickdb.ready import wait_ready

SERVER = Path(__file__).parent.parent / "qipc_servers" / "dispatch_server.py"
USER, PASSWORD = "alice", "s3cret"


class ServerProc:
    def __init__(self, tmp_path: Path, *extra: str) -> None:
        ready = tmp_path / "qipc.ready.json"
        self.log_path = tmp_path / "qipc.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, str(SERVER), "--ready-file", str(ready), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        try:
            self.port = int(wait_ready(ready, 30, alive=lambda: self.popen.poll() is None)["port"])
        except Exception:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode
