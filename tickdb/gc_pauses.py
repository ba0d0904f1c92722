"""Short garbage-collector pauses for processes that hold a trading day's state.

CPython's cycle collector runs a full collection each time the objects that survived the
younger generations grow by a quarter, and a full collection visits every tracked object
the process holds. The gateway keeps every order of the day (and its ClOrdIDs), a venue
every resting order, so their full collections grew with the day: 60-360 ms in the
gateway and 50-180 ms in a venue a few minutes into the order benchmark (under load),
which set the order path's p99.

``keep_pauses_short`` freezes what is alive now (the state rebuilt at start) and, after
every full collection, whatever survived it: a frozen object is never visited again, so a
full collection visits only what arrived since the last one. Reference counting still frees
frozen objects that are no longer used (the order state has no reference cycles); what a
frozen object can no longer be is cyclic garbage found by the collector. So at the day's
end, when the day's orders are let go, ``collect_all`` unfreezes and runs one full
collection over everything, which bounds what a frozen cycle could hold to one day.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

_installed = False


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def keep_pauses_short(collect: bool = True) -> None:
    """Freeze the live objects now and after every full collection (idempotent).

    ``collect=False`` freezes without collecting first, for a moment when a full
    collection's pause would be on someone's path (a standby tickerplant taking over):
    what is garbage now is then kept until the day's ``collect_all``.
    """
    global _installed
    if collect:
        gc.collect()
    gc.freeze()
    if not _installed:
        gc.callbacks.append(_after_collection)
        _installed = True


def collect_all() -> None:
    """One full collection over every object, frozen or not, which are frozen again after
    it: for quiet moments (the day's end), where a long pause costs nothing."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()  # frozen again by ``_after_collection`` when installed
    log.info("full garbage collection: %.1f ms", (time.perf_counter() - started) * 1000)


def frozen_objects() -> int:
    """How many objects are frozen out of full collections (the tickerplant's STATS and a
    tickerplant node's role report it: what shows that its heap was frozen)."""
    return gc.get_freeze_count()
