"""Telling HDB processes to reload, for the RDB's end of day and the maintenance jobs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from hdb.protocol import RELOAD, RELOADED
from queries.service import QueryClient, QueryError

log = logging.getLogger("tickdb.hdb")


def reload_hdbs(addresses: Iterable[str], timeout_s: float = 10.0) -> dict[str, Any]:
    """Send RELOAD to each address; returns address -> summary, or the QueryError.

    Never raises for an HDB that is down: the others still get told, and an HDB that
    restarts scans the directory anyway.
    """
    results: dict[str, Any] = {}
    for address in addresses:
        client = QueryClient(address, timeout_s=timeout_s)
        try:
            reply = client.call(RELOAD)
            if reply[0] != RELOADED or len(reply) != 2:
                raise QueryError("internal", f"unexpected reply {reply[:1]!r} to RELOAD")
            results[address] = json.loads(reply[1])
        except QueryError as exc:
            log.warning("HDB %s did not reload: %s", address, exc)
            results[address] = exc
        finally:
            client.close()
    return results
