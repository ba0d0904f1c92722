"""What the gateway can tell about each matching venue from the order flow it follows.

A venue has no port of its own: it subscribes to ``order_request`` at the tickerplant and
publishes ``order`` and ``fill`` rows, each naming its shard (``venue``) and the input that
caused it (``in_seq``). So the gateway judges a venue by its answers: when it last
published, how far into the input it has answered, and whether orders routed to it wait
in a pending state (new, cancel, replace) for longer than a healthy venue takes. A venue
with pending orders and nothing published for ``stale_s`` is ``waiting``: dead, stopped
or far behind; one with nothing to answer is ``idle``, which is not an error.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orders.model import Order, OrdStatus
from tickdb.types import Shard

PENDING = frozenset({OrdStatus.PENDING_NEW, OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE})
STALE_S = 2.0  # a healthy venue answers in milliseconds; the submit timeout is 2 s


@dataclass
class VenueSeen:
    events: int = 0
    fills: int = 0
    last_in_seq: int = 0
    last_at: float = 0.0  # wall clock of the last row applied (live or replayed)


class VenueActivity:
    """Per venue label ("k/n"), what its published rows say. Fed by the order stream's
    thread, read by the console's; one lock."""

    def __init__(self, stale_s: float = STALE_S) -> None:
        self.stale_s = stale_s
        self._seen: dict[str, VenueSeen] = {}
        self._lock = threading.Lock()

    def saw(self, table: str, rows: Iterable[dict[str, Any]], now: float | None = None) -> None:
        """Rows of ``order`` or ``fill``; the gateway's own rejects (no venue) are skipped."""
        when = time.time() if now is None else now
        with self._lock:
            for row in rows:
                label = row.get("venue") or ""
                if not label:
                    continue
                seen = self._seen.setdefault(label, VenueSeen())
                if table == "fill":
                    seen.fills += 1
                else:
                    seen.events += 1
                seen.last_in_seq = max(seen.last_in_seq, int(row.get("in_seq") or 0))
                seen.last_at = when

    def saw_columns(self, table: str, by_name: dict[str, list[Any]], now: float) -> None:
        """``saw`` of a record's rows given as columns by name: one count per venue, not
        a dict per row (a mass cancel's answer holds thousands)."""
        counts = Counter(by_name["venue"])
        counts.pop("", None)
        counts.pop(None, None)
        if not counts:
            return
        last: dict[str, int] = {}
        for label, in_seq in zip(by_name["venue"], by_name["in_seq"], strict=True):
            if label in counts and (in_seq or 0) > last.get(label, 0):
                last[label] = int(in_seq)
        with self._lock:
            for label, count in counts.items():
                seen = self._seen.setdefault(label, VenueSeen())
                if table == "fill":
                    seen.fills += count
                else:
                    seen.events += count
                seen.last_in_seq = max(seen.last_in_seq, last.get(label, 0))
                seen.last_at = now

    def rows(self, shard_count: int, orders: Iterable[Order], now: float) -> list[dict[str, Any]]:
        """One row per venue. The venues are those of the shard count the flow's labels
        name (``tickdb up`` starts one per data shard), so one that never answered is
        listed beside those that did; before any venue has published, ``shard_count`` (the
        data backends') says how many to expect."""
        with self._lock:
            seen = dict(self._seen)
        labelled = [_shard(label) for label in seen]
        counts = [s.count for s in labelled if s is not None]
        count = max(counts) if counts else shard_count
        shards = {str(Shard(k, count)): Shard(k, count) for k in range(count)}
        shards.update((str(s), s) for s in labelled if s is not None)
        open_by: dict[str, int] = dict.fromkeys(shards, 0)
        pending_by: dict[str, int] = dict.fromkeys(shards, 0)
        for order in orders:
            if not order.is_open:
                continue
            for label, shard in shards.items():
                if shard.owns(order.sym):
                    open_by[label] += 1
                    pending_by[label] += order.status in PENDING
        out = []
        for label, shard in sorted(shards.items(), key=lambda kv: (kv[1].count, kv[1].index)):
            venue = seen.get(label, VenueSeen())
            age = round(now - venue.last_at, 3) if venue.last_at else None
            stale = age is None or age > self.stale_s
            state = "waiting" if pending_by[label] and stale else "answering"
            if not pending_by[label]:
                state = "idle" if stale else "answering"
            out.append(
                {
                    "name": f"venue-{shard.index}" if shard.count == count else f"venue-{label}",
                    "role": "venue",
                    "shard": label,
                    "state": state,
                    "events": venue.events,
                    "fills": venue.fills,
                    "last_in_seq": venue.last_in_seq,
                    "last_event_age_s": age,
                    "open_orders": open_by[label],
                    "pending_orders": pending_by[label],
                }
            )
        return out


def _shard(label: str) -> Shard | None:
    try:
        return Shard.parse(label)
    except ValueError:
        return None
