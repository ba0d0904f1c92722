"""Checkpoints at which long Python work stops once its thread's deadline has passed.

The q translator and the gateway's planner are plain Python over a query's text, and a long
enough text kept them busy for seconds past a query's time limit. Their loops call
``checkpoint()``: cheap (a thread-local read and a clock read) while no deadline is set for
the thread, or before it passes; past it, ``DeadlineExceeded`` is raised there. The caller
that set the deadline (``gateway.deadline.run_within``) turns that into a ``timeout``.

Raising only at these points, never from outside the thread, is deliberate: an exception
delivered at an arbitrary bytecode can land between a lock's ``acquire`` and its ``try``
(logging's handlers, the import system) and leave the lock held for good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DeadlineExceeded(BaseException):
    """Raised by ``checkpoint()`` past the thread's deadline. A BaseException, so that no
    ``except Exception`` of the code it passes through swallows it."""


_local = threading.local()


def checkpoint() -> None:
    """Raise ``DeadlineExceeded`` if this thread's deadline (``deadline_at``) has passed."""
    at = getattr(_local, "at", None)
    if at is not None and time.monotonic() >= at:
        raise DeadlineExceeded


@contextmanager
def deadline_at(at: float | None) -> Iterator[None]:
    """Within the block, ``checkpoint()`` in this thread stops at ``at`` (time.monotonic();
    None: never). Blocks nest; the previous deadline is restored after."""
    previous = getattr(_local, "at", None)
    _local.at = at
    try:
        yield
    finally:
        _local.at = previous
