"""What a query's text may be before any parser sees it: its length, its nesting, Unicode.

The parsers behind the gateway (the q translator, sqlglot, DuckDB's binder) recurse once or
more per nesting level; sqlglot runs out of Python stack at about 45 levels of brackets, and
a 210-byte request of nested brackets cost an HTTP 500 and ~184 KB of traceback in the log.
So the text is measured first, cheaply (a regex that skips strings and comments), and
refused with a short ``bad_query`` when it is longer or deeper than the gateway allows
(``gateway.max_query_chars``, ``gateway.max_nesting``). Nesting that hides outside brackets
(operator chains, CASE in CASE) still reaches the parsers: their ``RecursionError`` is
turned into the same ``bad_query`` by ``parse_within``, which also runs the parsing under
the query's deadline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, TypeVar

from gateway.deadline import Deadline, run_within
from gateway.errors import QueryError
from queries.q import TranslationError

T = TypeVar("T")

Language = Literal["sql", "q"]

_OPEN = frozenset("([{")
_CLOSE = frozenset(")]}")
# Brackets, and the spans whose brackets do not count: strings, quoted identifiers and
# comments (SQL), strings (q). Unterminated ones run to the end of the text.
_SQL_TOKENS = re.compile(
    r"""[()\[\]{}]|'(?:[^']|'')*'?|"(?:[^"]|"")*"?|--[^\n]*|/\*.*?(?:\*/|\Z)""", re.S
)
_Q_TOKENS = re.compile(r'[()\[\]{}]|"(?:[^"\\]|\\.)*"?', re.S)


def nesting(text: str, language: Language, limit: int) -> tuple[int, int]:
    """The deepest bracket nesting of ``text`` and where it is; stops past ``limit``."""
    depth = deepest = at = 0
    for match in (_SQL_TOKENS if language == "sql" else _Q_TOKENS).finditer(text):
        token = match.group()
        if token in _OPEN:
            depth += 1
            if depth > deepest:
                deepest, at = depth, match.start()
                if deepest > limit:
                    break
        elif token in _CLOSE:
            depth = max(depth - 1, 0)
    return deepest, at


def check_text(text: str, language: Language, *, max_chars: int, max_nesting: int) -> None:
    """Raise ``QueryError("bad_query")`` unless ``text`` is within the gateway's bounds."""
    if len(text) > max_chars:
        raise QueryError(
            "bad_query",
            f"the query is {len(text)} characters long; the gateway takes at most "
            f"{max_chars} (gateway.max_query_chars)",
        )
    try:
        if not text.isascii():  # O(1); only other text is encoded to find a lone surrogate
            text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(
            "bad_query",
            f"the query is not valid Unicode: a lone surrogate at character {exc.start}",
        ) from None
    deepest, at = nesting(text, language, max_nesting)
    if deepest > max_nesting:
        raise QueryError(
            "bad_query",
            f"the query nests brackets more than {max_nesting} deep (at character {at}); "
            "the gateway's limit is gateway.max_nesting",
        )


def nested_too_deeply() -> QueryError:
    """The error for a parser's ``RecursionError``: nesting the bracket count did not see."""
    return QueryError(
        "bad_query",
        "the query is nested too deeply for the parser (operators, CASE or subqueries within "
        "one another); flatten it",
    )


def parse_within(deadline: Deadline | None, what: str, work: Callable[[], T]) -> T:
    """``work()`` (translating or planning: parsers at work), stopped at ``deadline``.

    A parser failure of any kind is the query's fault, never a 500 with a traceback: a
    ``RecursionError`` is ``nested_too_deeply``, anything unexpected a ``bad_query`` naming
    it (the port logs it, in one line). ``QueryError`` and the q translator's errors pass
    unchanged.
    """
    try:
        return run_within(deadline, what, work)
    except (QueryError, TranslationError):
        raise
    except RecursionError:
        raise nested_too_deeply() from None
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise QueryError("bad_query", f"{what} failed: {type(exc).__name__}: {first}") from None
