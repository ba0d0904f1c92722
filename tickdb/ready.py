"""Readiness files: how a started process tells its launcher where it listens.

Every long-running component accepts ``--ready-file PATH``. Once all its sockets are bound it
writes a JSON object (its actual endpoints, so ephemeral ports work) to a temporary name and
renames it into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tickdb.durable import write_atomic


def write_ready(path: str | Path | None, info: dict[str, Any]) -> None:
    if path is None:
        return
    # Atomic but not fsynced: a ready file describes a running process, which a crash ends.
    write_atomic(Path(path), json.dumps(info), durable=False)


def wait_ready(path: str | Path, timeout: float, alive: Any = None) -> dict[str, Any]:
    """Wait for a ready file; ``alive()`` returning False aborts early (the process died)."""
    target = Path(path)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        if target.exists():
            return dict(json.loads(target.read_text()))
        if alive is not None and not alive():
            raise RuntimeError(f"process exited before writing {target}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    raise TimeoutError(f"no ready file at {target} after {timeout}s")
