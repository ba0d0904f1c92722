"""The gateway's recent warnings and errors, kept in memory for the console's operations view."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any


class RecentErrors(logging.Handler):
    """Keeps the last ``size`` records at WARNING and above (a bounded deque: a flood of
    errors costs the same memory as a few)."""

    def __init__(self, size: int = 200) -> None:
        super().__init__(logging.WARNING)
        self._records: deque[dict[str, Any]] = deque(maxlen=size)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the caller's logging
            message = str(record.msg)
        entry = {
            "time": record.created,
            "level": record.levelname,
            "logger": record.name,
            "message": message[:2000],
        }
        with self._guard:
            self._records.append(entry)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        with self._guard:
            return list(reversed(self._records))[:limit]


_installed: RecentErrors | None = None
_install_guard = threading.Lock()


def install() -> RecentErrors:
    """The process's one handler on the root logger (several apps in one process share it)."""
    global _installed
    with _install_guard:
        if _installed is None:
            _installed = RecentErrors()
            logging.getLogger().addHandler(_installed)
        return _installed


def age_s(entry: dict[str, Any]) -> float:
    return round(time.time() - float(entry["time"]), 3)
