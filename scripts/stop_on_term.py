"""SIGTERM stops a benchmark the way Ctrl-C does.

Python's default for SIGTERM ends the process at once: no ``finally`` runs, so the stacks
and helper processes a benchmark started (each in its own process group) go on running
after ``timeout``, ``kill`` or a cancelled job stopped it. Raising ``SystemExit`` instead
unwinds the benchmark through its ``finally`` blocks, which stop them.
"""

from __future__ import annotations

import signal
import sys


def stop_on_term() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
