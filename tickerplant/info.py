"""What the tickerplant tells about itself: HELLO (how to talk to it) and STATS (counters).

Read from the running ``Tickerplant`` through ``TickerplantState``, the attributes they
need, so that this module does not import the server.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from tickdb.config import TickerplantConfig
from tickdb.curve_links import CurveLinks
from tickdb.gc_pauses import frozen_objects
from tickdb.schema import TableSchema
from tickerplant.access import TickerplantAccess
from tickerplant.dedup import PublisherLedger
from tickerplant.ingest_limits import ClosedConnections
from tickerplant.journal import JournalWriter
from tickerplant.protocol import PROTOCOL_VERSION
from tickerplant.pubsub import Fanout
from tickerplant.replay import ReplayServer
from tickerplant.replication import Replicator
from tickerplant.roll_retry import PendingRoll


@dataclass
class Counters:
    """Plain counters: tests assert on them and STATS reports them."""

    messages: int = 0
    rows: int = 0
    records: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    rejected: int = 0
    malformed: int = 0
    rolls: int = 0
    roll_failures: int = 0  # the next journal would not open (``roll_retry``)
    clock_jumps_refused: int = 0
    errors_by_reason: dict[str, int] = field(default_factory=dict)


class TickerplantState(Protocol):
    """The parts of a running tickerplant that HELLO and STATS report."""

    access: TickerplantAccess | None
    address: str
    publish_endpoint: str
    replay: ReplayServer
    committed_seq: int
    session: dt.date
    session_start_seq: int
    epoch: int
    replication: Replicator | None
    tp: TickerplantConfig
    max_frame_bytes: int
    schemas: dict[str, TableSchema]
    counters: Counters
    ledger: PublisherLedger
    fanout: Fanout
    curve: CurveLinks
    journal: JournalWriter
    closed_connections: ClosedConnections
    pending_roll: PendingRoll


def hello_of(self: TickerplantState, who: str | None = None) -> dict[str, object]:
    # With CURVE the asker (its ZAP User-Id) is told what it may do: access.py.
    access = {"access": self.access.describe_name(who)} if self.access is not None else {}
    return {
        **access,
        "protocol": PROTOCOL_VERSION,
        "address": self.address,
        "ingest": self.address,
        "publish": self.publish_endpoint,
        "replay": self.replay.endpoint,
        "seq": self.committed_seq,
        "session": self.session.isoformat(),
        "session_start_seq": self.session_start_seq,
        "epoch": self.epoch,
        **(
            {"role": "primary", "replication": self.replication.endpoint}
            if self.replication
            else {}
        ),
        "mode": self.tp.mode,
        "heartbeat_ms": self.tp.heartbeat_ms,
        "max_message_bytes": self.tp.max_message_bytes,
        "max_frame_bytes": self.max_frame_bytes,
        "max_subscription_bytes": self.tp.publish_max_frame_bytes,
        "max_replay_request_bytes": self.tp.replay_max_frame_bytes,
        "tables": [s.to_json() for s in self.schemas.values()],
    }


def stats_of(self: TickerplantState) -> dict[str, object]:
    counters = dict(vars(self.counters))
    return {
        **counters,
        "seq": self.committed_seq,
        "session": self.session.isoformat(),
        "publishers": len(self.ledger),
        "topics": len(self.fanout.topics),
        "replay_requests": self.replay.requests,
        "bad_subscriptions": self.fanout.bad_subscriptions,
        "refused_subscriptions": self.fanout.refused_subscriptions,
        **self.curve.zap_counters(),
        "zmq_connections": self.curve.open_connections(),  # per port, with CURVE
        "journal_bytes": self.journal.size,  # the session's journal file, flushed part
        "ingest_disconnects": self.closed_connections.count,
        "journal_error": self.pending_roll.error,  # a roll waiting for its journal
        "gc_frozen": frozen_objects(),  # start-up state kept out of full collections
        **(self.replication.stats() if self.replication else {}),
    }
