"""The tickerplant's commit: what a loop turn took becomes records on the journal, and only
then is published and acknowledged.

Validated batches are appended as records at once (immediate mode) or held for the
batched timer (``batched``); ``_commit`` hands the turn's records to the OS in one write,
then publishes them and acknowledges their batches (``acks``), or, on a pair's primary,
holds both until the standby has the records (``replication``, which calls ``released``).

A base class of ``server.Tickerplant``, which owns the state it works on; kept apart so
that each file stays one readable size. Its methods are the loop's own (no layer between
the loop and the journal): ``_take`` and ``_append`` run once per message or run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tickerplant.batched import Pending
from tickerplant.dedup import last_batch_per_publisher
from tickerplant.protocol import KIND_UPD, record_parts
from tickerplant.pubsub import Outgoing

if TYPE_CHECKING:
    from tickdb.config import TickerplantConfig
    from tickdb.schema import TableSchema
    from tickerplant.acks import Acks
    from tickerplant.clock import Clock
    from tickerplant.dedup import PublisherLedger
    from tickerplant.ingest import BatchValidator, Validated
    from tickerplant.journal import JournalWriter
    from tickerplant.pubsub import Fanout
    from tickerplant.replication import Replicator
    from tickerplant.runs import RunBuilder
    from tickerplant.wakeup import SocketWait


class CommitTurn:
    if TYPE_CHECKING:  # what it uses of the Tickerplant
        tp: TickerplantConfig
        clock: Clock
        counters: Any
        schemas: dict[str, TableSchema]
        validator: BatchValidator
        ledger: PublisherLedger
        seq: int
        committed_seq: int
        epoch: int
        journal: JournalWriter
        fanout: Fanout
        pending: Pending
        runs: RunBuilder
        acks: Acks
        replication: Replicator | None
        _outgoing: list[Outgoing]
        _done_batches: list[tuple[bytes, int]]
        _wait: SocketWait

    def _take(
        self, table: str, validated: Validated, origins: list[tuple[bytes, int]], now: int
    ) -> None:
        rows = validated.num_rows
        self.counters.rows += rows
        if rows == 0:
            self._done_batches.extend(origins)
        elif self.tp.mode == "immediate":
            record_origins = origins if len(origins) == 1 else last_batch_per_publisher(origins)
            self._append(KIND_UPD, table, record_origins, validated.payload, now)
            # Each publisher's last batch: the ledger keeps the highest journaled one.
            self._done_batches.extend(record_origins)
        else:
            self.pending.add(table, validated, origins)

    def _append(
        self,
        kind: int,
        table: str,
        origins: tuple[tuple[bytes, int], ...] | list,
        payload: bytes | memoryview,
        ts_recv: int,
    ) -> None:
        self.seq = seq = self.seq + 1
        origins = tuple(origins)
        parts = record_parts(kind, seq, ts_recv, table, origins, payload)
        self.journal.append_parts(parts, seq)
        self.counters.records += 1
        self._outgoing.append(Outgoing(kind, seq, ts_recv, table, origins, payload, parts))

    def _flush_pending(self) -> None:
        """Batched mode's timer: the waiting batches journaled as records (``batched``)."""
        self.runs.end()
        now = self.clock.now_ns()
        prefix = self.validator.canonical_prefix
        for table, origins, payload in self.pending.records(self.schemas, prefix):
            self._append(KIND_UPD, table, origins, payload, now)
        self._done_batches.extend(self.pending.batches())
        self.pending = Pending()

    def _commit(self) -> None:
        """Journal, then publish, then acknowledge what this turn produced."""
        if self._outgoing or self._done_batches:
            self.journal.flush()
            if self.replication is None:
                self.committed_seq = self.seq
        if self.replication is not None:  # published and acknowledged when it says
            for publisher, batch in self._done_batches:
                self.ledger.journaled(publisher, batch)
            self._done_batches = []
            acks, self.acks.heard = self.acks.heard, {}
            outgoing, self._outgoing = self._outgoing, []
            self.replication.hold(self.seq, outgoing, acks)
            self._send_acks(force=False)
            return
        if self._outgoing:
            self.fanout.publish(self._outgoing)
            self._outgoing = []
            self._wait.sent_on_pub()
        for publisher, batch in self._done_batches:
            self.ledger.journaled(publisher, batch)
        self._done_batches = []
        self.acks.committed()
        self._send_acks(force=False)

    def _send_acks(self, force: bool) -> None:
        """Acknowledge what is journaled (``acks``); a pair's primary, what the standby has."""
        if self.replication is None:
            sent = self.acks.send(force, self.ledger.ack_level, None)
        else:
            sent = self.acks.send(force, self.replication.ack_level, self.epoch)
        if sent:
            self._wait.sent_on_ingest()

    def released(self, seq: int, outgoing: list[Outgoing], acks: dict[bytes, bytes]) -> None:
        """A commit the replication let go (``Replicator.hold``): now others may see it."""
        self.committed_seq = max(self.committed_seq, seq)
        if outgoing:
            self.fanout.publish(outgoing)
            self._wait.sent_on_pub()
        self.acks.due.update(acks)

    def sent_on_replication(self) -> None:
        self._wait.sent_on_extra()
