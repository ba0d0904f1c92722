"""Answers to the probes a PyKX ``QConnection`` sends on connect, so PyKX works unmodified.

PyKX builds its context interface when it connects: it asks what ``.q`` is with a k lambda
(``k){x:. x;$[99h<@x;:`$"_pykx_fn_marker";…]}``) applied to ``".q"``, then lists the
context with ``key ".q"``. Without answers the connection fails in its constructor (unless
the user passes ``no_ctx=True``). We answer as a q process with an empty ``.q`` would:
``.q`` and ``.z`` are contexts, and listing a context gives no names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qipc.types import QError, Symbol

_PROBE_PREFIX = 'k){x:. x;$[99h<@x;:`$"_pykx_fn_marker"'
_CONTEXTS = frozenset({".q", ".z", ".Q", ".h", ".j"})
NOT_A_PROBE = object()


def answer_probe(value: Any) -> Any:
    """The answer to a PyKX probe, or ``NOT_A_PROBE`` for anything else."""
    if not isinstance(value, list) or len(value) != 2:
        return NOT_A_PROBE
    func, name = value
    if not isinstance(func, str) or not isinstance(name, str):
        return NOT_A_PROBE
    if func.startswith(_PROBE_PREFIX):
        if name in _CONTEXTS:
            return Symbol("_pykx_ctx_marker")
        raise QError(name.lstrip("."))
    if func == "key" and name in _CONTEXTS:
        return np.array([], dtype=object)
    return NOT_A_PROBE
