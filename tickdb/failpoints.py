"""Test-only holds at named points of a component, set from the environment.

``TICKDB_HOLD_<POINT>=<file>`` makes the point wait until ``<file>`` exists. A test uses it to
keep a process in a state that is otherwise too brief to observe (an RDB still replaying
its journal: ``rdb_replay``) and to release it on a condition of its own, never after a
fixed time. Unset, which is always the case outside tests, a point costs one environment
lookup when its component starts.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("tickdb.failpoints")

_POLL_S = 0.01


def hold_file(point: str) -> Path | None:
    """The file that releases ``point``, when a test set one."""
    value = os.environ.get(f"TICKDB_HOLD_{point.upper()}")
    return Path(value) if value else None


def wait_released(point: str, release: Path, stop: threading.Event) -> None:
    """Wait at ``point`` until ``release`` exists (or ``stop`` is set)."""
    if release.exists():
        return
    log.warning("held at %s until %s exists (a test's failpoint)", point, release)
    while not release.exists() and not stop.wait(_POLL_S):
        pass
    log.warning("released at %s", point)
