"""What a venue's snapshot holds, and putting it back: the glue between ``orders.venue``
and ``orders.snapshot``.

A snapshot holds the venue's ``MatchingEngine`` whole (pickled: books, queues in time
priority, live and done orders, the order and execution counters, with every shared
reference kept, e.g. a replaced order filed under its old and its new ClOrdID), the
venue's input counters, the day it belongs to and the settings that shaped it; a pair adds
its output bookkeeping (``orders.standby``). Restoring it and replaying the journal after its
seq gives exactly the state of a venue that replayed everything.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import zmq

from orders.book import MatchingEngine
from orders.snapshot import VenueSnapshots
from orders.snapshot_journal import StampUnavailable, record_stamp
from tickdb.curve_links import client_keys
from tickerplant.discovery import Hello
from tickerplant.failover_client import addresses_of, find_primary
from tickerplant.publisher import PublishError
from tickerplant.subscriber import Subscriber

log = logging.getLogger(__name__)


class Venue(Protocol):
    """What of an ``orders.venue.Venue`` (or a pair's) a snapshot reads and restores (a
    protocol: the venue imports this module)."""

    engine: MatchingEngine
    label: str
    tp_address: str
    timeout_s: float
    session: str
    session_start_seq: int
    inputs: int
    bad_inputs: int
    processed_seq: int
    snapshots: VenueSnapshots | None
    _sub: Subscriber

    def _snapshot_extra(self) -> dict[str, Any]: ...

    def _restore_extra(self, state: dict[str, Any]) -> None: ...


def settings_of(venue: Venue) -> dict[str, Any]:
    """The settings a venue's outputs depend on: a snapshot made under others is no use."""
    engine = venue.engine
    return {
        "id_prefix": engine.id_prefix,
        "tick_sizes": sorted(engine.tick_sizes.items()),
        "default_tick": engine.default_tick,
        "stp": str(engine.stp),
        "paper": engine.paper,
        "kind": type(venue).__name__,
    }


def capture(venue: Venue) -> dict[str, Any]:
    """The venue's state between two inputs (references: the writer copies by forking)."""
    extra = venue._snapshot_extra()  # a lone venue's outputs journaled first
    return {
        "stamp": record_stamp(venue._sub.hello, venue.processed_seq, venue.timeout_s),
        "venue": venue.label,
        "settings": settings_of(venue),
        "session": venue.session,
        "session_start_seq": venue.session_start_seq,
        "engine": venue.engine,
        "inputs": venue.inputs,
        "bad_inputs": venue.bad_inputs,
        **extra,
    }


def refusal(venue: Venue, hello: Hello, state: dict[str, Any]) -> str:
    """Why ``state`` cannot be where this venue starts from ("": it can)."""
    if state.get("venue") != venue.label:
        return f"of venue {state.get('venue')!r}"
    if state.get("settings") != settings_of(venue):
        return f"made under other settings {state.get('settings')}"
    if state.get("session_start_seq") != hello.session_start_seq:
        return (
            f"of another day (it started at seq {state.get('session_start_seq')}, "
            f"the tickerplant's at {hello.session_start_seq})"
        )
    if state.get("session") and state["session"] != hello.session.isoformat():
        return f"of session {state['session']}, the tickerplant's is {hello.session}"
    seq = int(state["seq"])
    if seq > hello.seq:
        return f"at seq {seq}, beyond the tickerplant's {hello.seq}"
    try:
        stamp = record_stamp(hello, seq, venue.timeout_s)
    except StampUnavailable as exc:
        return f"its journal record could not be checked: {exc}"
    if stamp != state.get("stamp"):
        return f"of another journal (its record at seq {seq} is not the one it was made from)"
    return ""


def restore(venue: Venue) -> int:
    """Start ``venue`` from its newest usable snapshot; the seq it covers, 0: none (a full
    replay). Also sets the day the venue is in from the tickerplant's HELLO."""
    with zmq.Context() as ctx:
        hello = find_primary(ctx, addresses_of(venue.tp_address), venue.timeout_s, client_keys())[1]
    venue.session = hello.session.isoformat()
    venue.session_start_seq = hello.session_start_seq
    snapshots: VenueSnapshots | None = venue.snapshots
    if snapshots is None:
        return 0
    state = snapshots.load(lambda s: refusal(venue, hello, s))
    if state is None:
        return 0
    venue.engine = state["engine"]
    venue.inputs = int(state["inputs"])
    venue.bad_inputs = int(state["bad_inputs"])
    venue._restore_extra(state)
    return int(state["seq"])


def take(venue: Venue) -> None:
    """Snapshot ``venue`` as of the last input it applied (called between two inputs)."""
    assert venue.snapshots is not None
    since = time.perf_counter()
    try:
        state = capture(venue)
    except (StampUnavailable, TimeoutError, PublishError) as exc:
        # The tickerplant is away: no snapshot this time, the next one when due.
        log.warning("venue %s: no snapshot at seq %d: %s", venue.label, venue.processed_seq, exc)
        venue.snapshots.postpone(venue.processed_seq, venue.inputs)
        return
    venue.snapshots.take(venue.processed_seq, venue.inputs, state, since)
