"""One query's time limit, from the moment it arrives: q translation, planning and running.

``Deadline`` is the limit as an instant, passed down and checked between phases. DuckDB
work is stopped at it with ``interrupt()`` (``queries.service_watchdog.Watchdog``). Python
work - the q translator, sqlglot's parser, the planner - has no such hook, and an 80 KB
select list kept them busy for seconds past a one-second limit; ``run_interruptible``
raises in the thread doing it when the deadline passes, with CPython's
``PyThreadState_SetAsyncExc`` (what delivers an exception to another thread, as
KeyboardInterrupt is delivered). The raise can land at any bytecode of that thread, so only
work that changes no shared state is run this way (translation and planning build new
objects; their caches are filled after they return), and the exit below is written so that
the one raise can never escape as anything but ``QueryError("timeout")``.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gateway.errors import QueryError
from queries.service_watchdog import Watchdog

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    """A time limit: ``at`` is a ``time.monotonic()`` instant, ``timeout_s`` the limit given."""

    at: float
    timeout_s: float

    @classmethod
    def after(cls, timeout_s: float) -> Deadline:
        return cls(time.monotonic() + timeout_s, timeout_s)

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def error(self, what: str) -> QueryError:
        return QueryError(
            "timeout", f"{what} did not finish within the {self.timeout_s:g}s query time limit"
        )

    def check(self, what: str) -> None:
        """Raise ``QueryError("timeout")`` naming ``what`` once the deadline has passed."""
        if self.expired():
            raise self.error(what)


class DeadlineExceeded(BaseException):
    """Raised inside interruptible work at its deadline. A BaseException, so the
    ``except Exception`` of a library does not swallow it."""


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
_set_async_exc.restype = ctypes.c_int


class _Region:
    """One thread's interruptible work; ``interrupt`` is what the watchdog calls (it calls
    again every few ms until finished: only the first raises)."""

    __slots__ = ("_lock", "armed", "done", "fired", "tid")

    def __init__(self) -> None:
        self.tid = threading.get_ident()
        self._lock = threading.Lock()
        self.armed = False  # set once the work starts: nothing may land before that
        self.done = False
        self.fired = False

    def interrupt(self) -> None:
        with self._lock:
            if not self.armed or self.done or self.fired:
                return
            self.fired = True
            _set_async_exc(self.tid, id(DeadlineExceeded))

    def close(self) -> None:
        """Mark the work finished and drop a raise still pending; runs to the end even if
        the one raise lands inside it (it is then caught and the close repeated)."""
        while True:
            try:
                with self._lock:
                    self.done = True
                    if self.fired:
                        _set_async_exc(self.tid, 0)  # NULL: clear a pending exception
                return
            except DeadlineExceeded:
                continue


_watchdog = Watchdog()


def run_interruptible(deadline: Deadline | None, what: str, work: Callable[[], T]) -> T:
    """``work()``, stopped with ``QueryError("timeout")`` naming ``what`` at ``deadline``.

    ``work`` must leave shared state consistent wherever it is stopped. None: no limit.
    """
    if deadline is None:
        return work()
    deadline.check(what)
    region = _Region()
    guard = _watchdog.watch(region, deadline.at)  # type: ignore[arg-type]
    try:
        try:
            region.armed = True
            result = work()
        finally:
            region.close()
    except DeadlineExceeded:
        region.close()  # the raise has landed: nothing can interrupt this any more
        raise deadline.error(what) from None
    finally:
        _watchdog.finish(guard)  # after close(): no raise can land here
    if region.fired:  # the raise was swallowed or cleared: the work still ran too long
        raise deadline.error(what)
    return result
