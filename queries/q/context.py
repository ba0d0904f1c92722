"""State shared by one translation: the schemas, fresh aliases and table resolution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from queries.q.nodes import Node
from queries.q.rel import Aliases, Rel


@dataclass
class Context:
    table: Callable[[Node], Rel]
    aliases: Aliases = field(default_factory=Aliases)
