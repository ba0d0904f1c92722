"""q's names for unnamed result columns.

q names a computed column after the leftmost term of its expression, else ``x``: a primitive
operator takes the name of its left argument (``c2+c3`` -> c2, ``2*c2`` -> x) and a keyword
function the name of its last argument (``max price`` -> price, ``size wavg price`` -> price,
``5 xbar time.minute`` -> minute). Repeated names get 1, 2, ... appended.
"""

from __future__ import annotations

from queries.q.nodes import Call, Name, Node
from queries.q.vocab import FUNCTIONS

DEFAULT = "x"


def default_name(node: Node) -> str:
    if isinstance(node, Name):
        if node.name == "i":
            return DEFAULT
        return node.name.rsplit(".", 1)[-1]
    if isinstance(node, Call) and node.args:
        if node.fn in FUNCTIONS:
            return default_name(node.args[-1])
        return default_name(node.args[0])
    return DEFAULT


def unique_names(names: list[str]) -> list[str]:
    """Suffix repeats with 1, 2, ... as q does (``select c1, c1`` -> c1, c11)."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, k = name, 0
        while candidate in seen:
            k += 1
            candidate = f"{name}{k}"
        seen.add(candidate)
        out.append(candidate)
    return out
