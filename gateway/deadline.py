"""One query's time limit, from the moment it arrives: q translation, planning and running.

``Deadline`` is the limit as an instant, passed down and checked between phases. DuckDB
work is stopped at it with ``interrupt()`` (``queries.service_watchdog.Watchdog``). Python
work - the q translator, sqlglot's parser and generator, the planner - stops at the next
``queries.deadline.checkpoint()`` past it: ``run_within`` sets the thread's deadline, and
the checkpoints sit in the q translator's loops and, installed here once, in sqlglot's
per-token and per-node steps (tokenizing, parsing, walking a tree, rendering SQL). An 80 KB
select list kept them busy for seconds past a one-second limit. What no checkpoint reaches
is C: DuckDB parsing and binding the text, ~0.6 s for 60 KB, bounded by the text's length
(``gateway.max_query_chars``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlglot import tokenizer_core
from sqlglot.expressions import Expr
from sqlglot.generator import Generator
from sqlglot.parser import Parser

from gateway.errors import QueryError
from queries.deadline import DeadlineExceeded, checkpoint, deadline_at

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


def run_within(deadline: Deadline | None, what: str, work: Callable[[], T]) -> T:
    """``work()``, stopped with ``QueryError("timeout")`` naming ``what`` at ``deadline``
    (at its next checkpoint, or when it returns). None: no limit."""
    if deadline is None:
        return work()
    deadline.check(what)
    try:
        with deadline_at(deadline.at):
            result = work()
    except DeadlineExceeded:
        raise deadline.error(what) from None
    deadline.check(what)
    return result


def _with_checkpoint(method: Callable[..., Any]) -> Callable[..., Any]:
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        checkpoint()
        return method(self, *args, **kwargs)

    checked.__name__ = method.__name__
    checked.__doc__ = method.__doc__
    return checked


def _install_sqlglot_checkpoints() -> None:
    """Once per process: sqlglot's loops get a checkpoint (a no-op without a deadline).
    Skipped where sqlglot's classes cannot be changed (a compiled build): the phases are
    then still checked between them."""
    steps: list[tuple[Any, str]] = [
        (getattr(tokenizer_core, "TokenizerCore", None), "_add"),  # a token
        (Parser, "_advance"),  # a token
        (Expr, "iter_expressions"),  # a node, walking a tree
        (Generator, "sql"),  # a node, rendering SQL
    ]
    for cls, name in steps:
        method = getattr(cls, name, None)
        if method is None or getattr(method, "_checkpointed", False):
            continue
        checked = _with_checkpoint(method)
        checked._checkpointed = True  # type: ignore[attr-defined]
        try:
            setattr(cls, name, checked)
        except (AttributeError, TypeError):
            continue


_install_sqlglot_checkpoints()
