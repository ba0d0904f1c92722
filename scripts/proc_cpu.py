"""A process's CPU time, every thread of it, for the benchmarks' CPU-per-message figures."""

from __future__ import annotations

import contextlib
from pathlib import Path


def cpu_ns(pid: int) -> int:
    """CPU time of all threads of ``pid`` so far, ns (``/proc/<pid>/task/*/schedstat``:
    nanosecond counts, where ``/proc/<pid>/stat`` has 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
            total += int((task / "schedstat").read_text().split()[0])
    return total
