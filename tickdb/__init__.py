"""tickdb: a kdb+-style tick system in Python.

The client API is re-exported here and imported lazily, so ``import tickdb`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "Orders", "Publisher", "Subscriber"]

_EXPORTS = {
    "Publisher": "tickerplant.publisher",
    "Subscriber": "tickerplant.subscriber",
    "Client": "gateway.client",
    "Orders": "gateway.order_session",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tickdb' has no attribute {name!r}")
