"""A gateway's order state as a snapshot: what it holds, whether one fits, putting it back.

A gateway's order state (``gateway.flow_apply``: orders by ClOrdID, the last day's, risk
counters and windows, working orders, positions and P&L, trading states, kill switches,
admin-changed limits, which requests were sequenced first, what each venue answered) is a
function of the journal's order flow: a restart rebuilds it by replaying the flow from
seq 0. A snapshot holds that state as it is after record S, so that a restart restores it
and replays only the records after S (``OrderStream(snapshots=...)``).

The state of the live gateway itself is not that function: its risk checks count
requests (rate and duplicate windows, working orders) when they are made, its own
requests are registered before they are sequenced and left out of its live flow, its
admin decisions are applied when made, and live prices mark its positions. A snapshot of
it would not be what a replay up to any seq gives. So the snapshots are written by a
process of their own (``gateway.order_snapshotter``) that applies the journal's order
flow exactly as a rebuild does; the order thread never stops for one.

Files: ``orders.snapshot_file`` (atomic, checksummed, only these classes), one key per
set of settings that shape the state (risk limits, accounts, syms, ticks: ``settings_of``),
and ``orders.snapshot.VenueSnapshots`` to find the newest usable one. One is refused
(logged, the next older one or the full replay used) when its settings differ, when its
record S is not the journal's (``orders.snapshot_journal``: another journal or day), when
S is beyond the tickerplant's seq, or when it is of the tickerplant's current day by seq but
not by date.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import itertools
import json
from collections import deque
from typing import Any

import zmq

from gateway.flow_apply import FlowApplier
from orders import snapshot_file
from orders.risk import RiskEngine
from orders.snapshot import SnapshotSettings, VenueSnapshots
from orders.snapshot_journal import StampUnavailable, record_stamp
from tickdb.curve_links import client_keys
from tickerplant.discovery import Hello
from tickerplant.failover_client import addresses_of, find_primary
from tickerplant.subscriber import Update

FORMAT = 1  # of the state held: another format's snapshots are refused, not misread
ALLOWED = snapshot_file.Allowed(
    frozenset(
        {
            "orders.model",
            "orders.positions",
            "orders.risk_book",
            "orders.risk_checks",
            "orders.risk_limits",
            "gateway.venue_activity",
        }
    ),
    frozenset({("collections", "deque"), ("collections", "Counter"), ("itertools", "count")}),
)
# Not journal state: live prices (references, marks) reach a gateway on their own.
_RISK_LEFT_OUT = frozenset({"positions", "_refs"})
_POSITIONS_LEFT_OUT = frozenset({"_marks"})


def settings_of(risk: RiskEngine) -> str:
    """The settings the state depends on, of an engine that has applied nothing yet."""
    return json.dumps(
        {
            "format": FORMAT,
            "defaults": dataclasses.asdict(risk._defaults),
            "overrides": risk._overrides,
            "any_account": risk._any_account,
            "accounts": sorted(risk._accounts),
            "syms": None if risk._syms is None else sorted(risk._syms),
            "ticks": sorted(risk._ticks.items()),
            "default_tick": risk._default_tick,
        },
        sort_keys=True,
        default=str,
    )


def snapshots_for(settings: SnapshotSettings, risk: RiskEngine) -> VenueSnapshots:
    """The snapshots of gateways whose state ``risk``'s settings shape (any gateway with
    them: the state is the journal's, not the gateway's, so gateways may share them)."""
    digest = hashlib.sha256(settings_of(risk).encode()).hexdigest()[:12]
    return VenueSnapshots(settings, f"gateway-orders-{digest}", what="gateway", allowed=ALLOWED)


def stamp_of(update: Update) -> str:
    """``orders.snapshot_journal.record_stamp`` of the record ``update`` came from."""
    digest = hashlib.sha256(update.payload).hexdigest()[:32]
    return f"{update.table}:{update.ts_recv}:{digest}"


def capture(
    applier: FlowApplier, settings: str, stamp: str, day_start_seq: int, records: int
) -> dict[str, Any]:
    """The snapshot of the state (references: the writer copies it by forking) after the
    record ``stamp`` names, in the day that started at ``day_start_seq``, the ``records``th
    applied; without its seq (``VenueSnapshots.take`` adds it)."""
    return {
        "kind": "gateway-orders",
        "settings": settings,
        "stamp": stamp,
        "session_start_seq": day_start_seq,
        "inputs": records,
        **state_of(applier),
    }


def state_of(applier: FlowApplier) -> dict[str, Any]:
    """The order state itself (references)."""
    router, peers = applier.router, applier.peers
    risk = router.risk
    return {
        "router": {
            "by_clordid": router._by_clordid,
            "previous_day": router._previous_day,
            "invalid_transitions": router.invalid_transitions,
        },
        "risk": {k: v for k, v in vars(risk).items() if k not in _RISK_LEFT_OUT},
        "positions": {
            k: v for k, v in vars(risk.positions).items() if k not in _POSITIONS_LEFT_OUT
        },
        "peers": {
            "sequenced": peers._sequenced,
            "adopted": peers.adopted,
            "lost_races": peers.lost_races,
        },
        "venues": applier.venues._seen,
    }


def restore(applier: FlowApplier, state: dict[str, Any]) -> None:
    """Put ``state`` (from ``capture``, read back) into a router that has applied nothing."""
    router, peers = applier.router, applier.peers
    router._by_clordid = state["router"]["by_clordid"]
    router._previous_day = state["router"]["previous_day"]
    router.invalid_transitions = state["router"]["invalid_transitions"]
    vars(router.risk).update(state["risk"])
    vars(router.risk.positions).update(state["positions"])
    peers._sequenced = state["peers"]["sequenced"]
    peers.adopted = state["peers"]["adopted"]
    peers.lost_races = state["peers"]["lost_races"]
    applier.venues._seen = state["venues"]


def refusal(state: dict[str, Any], settings: str, hello: Hello, timeout_s: float) -> str:
    """Why ``state`` cannot be where this gateway starts from ("": it can)."""
    if state.get("kind") != "gateway-orders":
        return f"of kind {state.get('kind')!r}, not a gateway's order state"
    if state.get("settings") != settings:
        return "made under other settings (risk limits, accounts, syms or ticks)"
    seq = int(state["seq"])
    if seq > hello.seq:
        return f"at seq {seq}, beyond the tickerplant's {hello.seq}"
    # A snapshot of an earlier day of this journal is fine (the replay after it holds the
    # day's end); one within the tickerplant's current day must have applied that day's
    # start (the end-of-day record at ``session_start_seq``).
    day = state.get("session_start_seq")
    if seq >= hello.session_start_seq and day != hello.session_start_seq:
        return (
            f"of another day (its day started at seq {day}, "
            f"the tickerplant's at {hello.session_start_seq})"
        )
    try:
        stamp = record_stamp(hello, seq, timeout_s)
    except StampUnavailable as exc:
        return f"its journal record could not be checked: {exc}"
    if stamp != state.get("stamp"):
        return f"of another journal (its record at seq {seq} is not the one it was made from)"
    return ""


def tickerplant_hello(tp_address: str, timeout_s: float) -> Hello:
    with zmq.Context() as ctx:
        return find_primary(ctx, addresses_of(tp_address), timeout_s, client_keys())[1]


def restore_newest(
    applier: FlowApplier, snapshots: VenueSnapshots, tp_address: str, timeout_s: float
) -> dict[str, Any] | None:
    """Restore the newest usable snapshot into ``applier``'s fresh state and return it
    (None: there is none, the journal is to be replayed whole)."""
    hello = tickerplant_hello(tp_address, timeout_s)
    settings = settings_of(applier.router.risk)
    # Read with the cycle collector off, what it built frozen after: the day's state is
    # kept all day, as a rebuild's runs are (``OrderStream._apply_replayed``).
    enabled = gc.isenabled()
    gc.disable()
    try:
        state = snapshots.load(lambda s: refusal(s, settings, hello, timeout_s))
        if state is not None:
            restore(applier, state)
    finally:
        if enabled:
            gc.enable()
            gc.freeze()
    return state


def dump(applier: FlowApplier) -> dict[str, Any]:
    """Everything a snapshot holds, as plain comparable data (which ClOrdIDs name one
    order included): two states are the same iff their dumps are equal."""
    router = applier.router
    orders: dict[int, list[Any]] = {}
    for key, order in router._by_clordid.items():
        orders.setdefault(id(order), []).append(key)
    return {
        "state": _plain(state_of(applier)),
        "same_order": sorted(sorted(keys) for keys in orders.values()),
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return sorted(([_plain(k), _plain(v)] for k, v in value.items()), key=repr)
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, list | tuple | deque):
        return [type(value).__name__, [_plain(v) for v in value]]
    if isinstance(value, itertools.count):
        return repr(value)
    fields = getattr(value, "__dict__", None)
    if fields is None:
        slots = getattr(type(value), "__slots__", ())
        fields = {name: getattr(value, name) for name in slots}
    return [type(value).__name__, _plain(fields)]
