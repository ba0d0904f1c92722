"""A matching venue for one symbol shard: a deterministic subscriber of the order flow.

The gateway publishes every request that passed its risk checks to the tickerplant's
``order_request`` table; the tickerplant sequences and journals it like a tick. The venue of
shard k/n subscribes to that stream (and, in paper mode, to ``quote``) by shard, with the
rows of an empty sym too (``protocol.TopicFilter.empty_syms``): the tickerplant sends it the
records with a row whose sym it owns (the same sym → shard function as the data) or a mass
cancel addressed to every venue, and no record of the other shards alone; it keeps those
rows (a run of requests for several shards comes whole). It applies them in sequence
order to its ``MatchingEngine``, and publishes what happened to the ``order`` and ``fill``
tables. Day ends arrive in the same stream, so
DAY orders expire at exactly the same point of the input on every run.

Its state is therefore a function of the journal alone. At start it replays the journal
through the engine, which rebuilds books, open orders and ids (from its newest snapshot,
``orders.snapshot``, only the records after it; else all of them), and publishes only
the output the journal does not hold yet: every output row carries ``in_seq``, the sequence
number of the input that caused it, and the venue first reads the highest ``in_seq`` of its
own rows already journaled. So ``kill -9`` at any point loses nothing and doubles nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from orders import snapshot_state
from orders.book import MatchingEngine
from orders.model import Event, Fill, MassCancel, NewOrder, RequestType, StpMode
from orders.rows import (
    EVENT_SCHEMA,
    FILL_SCHEMA,
    encode_outputs,
    request_from_row,
    warm_up,
)
from orders.snapshot import SnapshotSettings, VenueSnapshots
from tickdb.gc_pauses import collect_all, keep_pauses_short
from tickdb.types import Shard
from tickerplant.payload_rows import read_columns
from tickerplant.publisher import Publisher
from tickerplant.subscriber import EndOfDay, Subscriber, Update

log = logging.getLogger(__name__)

Output = Event | Fill


def published_upto(
    tp_address: str, shard: Shard, timeout_s: float, after: int = 0
) -> dict[str, int]:
    """Per output table, the highest ``in_seq`` of this venue's rows already journaled.

    From a snapshot at seq ``after`` (``orders.snapshot``: every output of an input up to
    it was journaled before it was written) only the journal after it is read, and
    ``after`` stands for what is before: every output still to come has a higher in_seq."""
    label = str(shard)  # the ``venue`` column
    upto = {"order": after, "fill": after}
    with Subscriber(
        tp_address,
        tables=["order", "fill"],
        shard=shard,
        start=after or "journal",
        timeout_s=timeout_s,
    ) as sub:
        # The constructor replays the journal up to the current sequence number.
        while (message := sub.poll(0)) is not None:
            if not isinstance(message, Update):
                continue
            data = message.data
            mine = data.filter(pa.compute.equal(data.column("venue"), label))
            if mine.num_rows:
                top = pa.compute.max(mine.column("in_seq")).as_py() or 0
                upto[message.table] = max(upto[message.table], int(top))
    return upto


class Venue:
    def __init__(
        self,
        tp_address: str,
        shard: Shard,
        *,
        tick_sizes: Mapping[str, float] | None = None,
        default_tick: float = 0.01,
        stp: StpMode = StpMode.CANCEL_INCOMING,
        paper: bool = False,
        timeout_s: float = 10.0,
        snapshots: SnapshotSettings | None = None,
    ) -> None:
        self.tp_address = tp_address
        self.shard = shard
        self.label = str(shard)
        self.paper = paper
        self.timeout_s = timeout_s
        self.engine = MatchingEngine(
            id_prefix=f"V{shard.index}-",
            tick_sizes=tick_sizes,
            default_tick=default_tick,
            stp=stp,
            paper=paper,
        )
        warm_up()
        self.inputs = 0
        self.bad_inputs = 0
        self.session, self.session_start_seq = "", 0  # the day (restore sets it)
        self.snapshots: VenueSnapshots | None = None
        if snapshots is not None:
            self.snapshots = VenueSnapshots(snapshots, self._snapshot_key())
        # From the newest usable snapshot, if any: the journal after it only.
        self.processed_seq = start = snapshot_state.restore(self)
        self.already = self._published_upto(start)
        tables = ["order_request", "quote"] if paper else ["order_request"]
        tables += self._extra_tables()
        # Only this shard's rows and those of an empty sym (mass cancels for every venue):
        # the tickerplant filters, so another shard's order never wakes this venue.
        self._sub = Subscriber(
            tp_address,
            tables=tables,
            shard=shard,
            empty_syms=True,
            start=start or "journal",
            timeout_s=timeout_s,
        )
        self._pub = Publisher(tp_address, timeout_s=timeout_s)
        self.caught_up_seq = self._sub.hello.seq
        self._owned: dict[str, bool] = {}

    # -- hooks for a primary/standby pair (orders.standby) -----------------------------------
    def _published_upto(self, after: int) -> dict[str, int]:
        return published_upto(self.tp_address, self.shard, self.timeout_s, after)

    def _extra_tables(self) -> list[str]:
        """Tables taken beside the inputs (a standby follows its pair's output)."""
        return []

    # -- snapshots (orders.snapshot_state) ----------------------------------------------------
    def _snapshot_key(self) -> str:
        return f"venue-{self.shard.index}-of-{self.shard.count}"

    def _snapshot_extra(self) -> dict[str, Any]:
        """Called as a snapshot is taken: every output so far journaled first (a restart
        from it republishes nothing of before it); what a pair adds to it."""
        self._pub.flush()
        return {}

    def _restore_extra(self, state: dict[str, Any]) -> None:
        """A pair's own part of a snapshot."""

    def _maybe_snapshot(self) -> None:
        if self.snapshots is not None and self.snapshots.due(self.inputs, self.processed_seq):
            snapshot_state.take(self)

    # -- one input message ----------------------------------------------------------------
    def _owns(self, sym: str) -> bool:
        owned = self._owned.get(sym)
        if owned is None:
            owned = self._owned[sym] = self.shard.owns(sym)
        return owned

    def _requests(self, payload: bytes) -> list[Output]:
        out: list[Output] = []
        # Read without pyarrow (``payload_rows``: a request is one small record, and the
        # reader's fixed cost was most of a venue's time per order). Rows for this venue
        # (its syms, and mass cancels for every venue) only: the tickerplant sends a record
        # of several rows whole when one of them is this venue's.
        names, columns = read_columns(payload)
        by_name = dict(zip(names, columns, strict=True))
        syms, kinds = by_name["sym"], by_name["request"]
        keep = [
            i
            for i, (sym, kind) in enumerate(zip(syms, kinds, strict=True))
            if (self._owns(sym) if sym else kind == RequestType.MASS_CANCEL)
        ]
        for i in keep:
            row = {name: column[i] for name, column in by_name.items()}
            try:
                req = request_from_row(row)
            except (ValueError, TypeError, KeyError) as exc:
                # The gateway validated it, so only a foreign publisher gets here.
                self.bad_inputs += 1
                log.error("venue %s: unusable order_request row %r: %s", self.label, row, exc)
                continue
            self.inputs += 1
            if isinstance(req, NewOrder):
                out += self.engine.new(req)
            elif isinstance(req, MassCancel):
                out += self.engine.mass_cancel(req)
            elif row["request"] == RequestType.CANCEL:
                out += self.engine.cancel(req)  # type: ignore[arg-type]
            else:
                out += self.engine.replace(req)  # type: ignore[arg-type]
        return out

    def _quotes(self, data: pa.Table) -> list[Output]:
        out: list[Output] = []
        cols = data.select(["sym", "bid", "ask", "bsize", "asize"]).to_pydict()
        for sym, bid, ask, bsize, asize in zip(*cols.values(), strict=True):
            if sym and self._owns(sym):
                out += self.engine.on_quote(sym, bid, ask, bsize, asize)
        return out

    def apply(self, message: Update | EndOfDay) -> list[Output]:
        """Apply one sequenced input; returns what happened, in order."""
        if isinstance(message, EndOfDay):
            self.session, self.session_start_seq = "", message.seq  # a snapshot's day
            expired = self.engine.end_of_day()
            collect_all()  # the day's orders are gone: a quiet moment for a full collection
            return expired
        if message.table == "order_request":
            return self._requests(message.payload)
        if message.table == "quote":
            return self._quotes(message.data)
        return []

    def _publish(self, seq: int, outputs: list[Output]) -> None:
        # One message per table for the whole input (a mass cancel's thousands of events).
        events = [o for o in outputs if isinstance(o, Event)]
        fills = [o for o in outputs if isinstance(o, Fill)]
        if events and seq > self.already["order"]:
            self._pub.publish_ipc("order", encode_outputs(events, EVENT_SCHEMA, self.label, seq))
        if fills and seq > self.already["fill"]:
            self._pub.publish_ipc("fill", encode_outputs(fills, FILL_SCHEMA, self.label, seq))

    def step(self, timeout_s: float) -> bool:
        """Process one message if one arrives within ``timeout_s``; False if none did."""
        message = self._sub.poll(timeout_s)
        if message is None:
            return False
        outputs = self.apply(message)
        if outputs:
            self._publish(message.seq, outputs)
        self.processed_seq = message.seq
        return True

    def catch_up(self) -> None:
        """Process the replayed journal, up to the sequence number seen at start, then
        until the subscription is live (its first heartbeat at most) and what queued
        meanwhile, so that a request sent once this venue says it is ready goes straight
        to it, not through a gap repair or a backlog."""
        # The subscriber replayed the journal up to the current seq when it was made: its
        # records are queued here (the last ones may be of tables this venue does not
        # take, so processed_seq need not reach caught_up_seq).
        while self.step(0):
            pass
        while not self._sub.live:
            self.step(0.05)
        # Live means the first live message (or heartbeat) arrived, not the last: what the
        # tickerplant published while the replay ran is queued behind it, or is a gap the
        # subscription repairs. A venue ready (or a standby promoted) before it has worked
        # through that answers the next request only after it: later the longer the day's
        # replay took. So: up to the tickerplant's seq as of now, then what is queued.
        target = self._sub.tickerplant_seq()
        deadline = time.monotonic() + self.timeout_s
        while self._sub.last_seq < target and time.monotonic() < deadline:
            self.step(0.05)
        while self.step(0):
            pass
        self._pub.flush()

    def run(self, stop: threading.Event, on_ready: Callable[[], Any] | None = None) -> None:
        self.catch_up()
        keep_pauses_short()  # the books grow all day: no full collection may visit them all
        log.info(
            "venue %s ready at seq %d: %d open orders",
            self.label,
            self.processed_seq,
            len(self.engine.open_orders()),
        )
        if on_ready is not None:
            on_ready()
        while not stop.is_set():
            self.step(0.2)
            self._maybe_snapshot()

    def close(self) -> None:
        try:
            self._pub.close(flush=True)
        finally:
            self._sub.close()
            if self.snapshots is not None:
                self.snapshots.close()
