"""The syntax tree of the q subset: what the parser builds and the translator reads.

Every node keeps ``pos``, the 0-based offset of the source text it came from, so that a
construct outside the subset can be reported where the user wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Num(Node):
    """A numeric or temporal atom, or a vector of them when ``len(items) > 1``."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Sym(Node):
    names: tuple[str, ...]
    is_list: bool


@dataclass(frozen=True)
class Str(Node):
    text: str


@dataclass(frozen=True)
class Name(Node):
    """A column, table or function name, possibly dotted (``time.minute``)."""

    name: str


@dataclass(frozen=True)
class Func(Node):
    """A function used as a value (``max`` in ``(max;price) fby sym``, or a bare verb)."""

    name: str


@dataclass(frozen=True)
class Call(Node):
    """Application of a primitive verb or keyword: ``max price``, ``a+b``, ``xbar[5;x]``.

    ``adverb`` is the adverb written right after the function (``+\\:``), if any.
    """

    fn: str
    args: tuple[Node, ...]
    adverb: str | None = None
    infix: bool = False


@dataclass(frozen=True)
class ListExpr(Node):
    """A general list ``(a;b;c)``."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Phrase(Node):
    """One comma-separated subphrase of a q-sql template, optionally named ``name:expr``."""

    name: str | None
    expr: Node


QueryKind = Literal["select", "exec", "update", "delete"]


@dataclass(frozen=True)
class Query(Node):
    kind: QueryKind
    columns: tuple[Phrase, ...]
    by: tuple[Phrase, ...] | None
    table: Node
    where: tuple[Node, ...]
    limit: tuple[Node, ...] | None = field(default=None)
