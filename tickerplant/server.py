"""The tickerplant process: ingest, journal, sequence, fan out, roll the day.

One thread owns the ingest ROUTER, the XPUB and the journal; replay runs on its own thread.
Each turn of the loop drains what publishers have sent, validates it, appends it to the
journal, hands the whole turn to the OS in one write, and only then publishes and
acknowledges: a subscriber never sees, and a publisher is never told about, a record that
is not in the journal. That commit (records appended, journaled, then published and
acknowledged) is ``tickerplant.commit``, and the end of day ``tickerplant.day_roll``: both
base classes of ``Tickerplant``; this module is the loop and its requests.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any

import zmq

from tickdb import curve_links
from tickdb.config import Config
from tickdb.curve_links import CurveLinks
from tickdb.lease import Lease
from tickdb.listen import bind
from tickerplant.access import TickerplantAccess
from tickerplant.acks import Acks
from tickerplant.batched import Pending
from tickerplant.clock import Clock, RollCalendar, SystemClock
from tickerplant.commit import CommitTurn
from tickerplant.day_roll import DayRoll
from tickerplant.dedup import PublisherLedger, Verdict
from tickerplant.info import Counters, hello_of, stats_of
from tickerplant.ingest import BatchValidator, IngestError
from tickerplant.ingest_limits import ClosedConnections, ingest_frame_cap
from tickerplant.journal import JournalIndex, JournalWriter, journal_path
from tickerplant.mirror_state import MirroredSession
from tickerplant.protocol import (
    ERR,
    HELLO,
    RESEND,
    ROLL,
    STATS,
    U64,
    UPD,
    ProtocolError,
    decode_upd,
)
from tickerplant.publisher_bindings import PublisherBindings
from tickerplant.publisher_ids import PublisherGate
from tickerplant.pubsub import Fanout, Outgoing
from tickerplant.recovery import recover, recovered_by_mirror
from tickerplant.replay import JournalSource, ReplayServer
from tickerplant.replication import Replicator
from tickerplant.roll_retry import PendingRoll
from tickerplant.runs import RunBuilder
from tickerplant.wakeup import SocketWait

log = logging.getLogger(__name__)

MAX_DRAIN = 2000  # messages per loop turn: bounds latency while amortising the journal write
MAX_DRAIN_S = 0.002  # and at most this long, so a burst is published as it is worked through
_NOBLOCK = int(zmq.NOBLOCK)  # plain ints: combining zmq's flag enums costs more than a recv
_RCVMORE = int(zmq.RCVMORE)
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
# Requests from this size on are used where ZeroMQ received them (a 1000-row table is
# ~32 KB): the journal and the fan-out copy them anyway. Smaller ones are copied out, as
# bytes are cheaper to work with than a view.
IN_PLACE_BYTES = 16 << 10
_DUPLICATE, _OUT_OF_ORDER = Verdict.DUPLICATE, Verdict.OUT_OF_ORDER  # lookups cost, per message


class Tickerplant(CommitTurn, DayRoll):
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        repair_journal: bool = False,
        curve: CurveLinks | None = None,
        lease: Lease | None = None,
        validator: BatchValidator | None = None,
        mirrored: MirroredSession | None = None,
    ) -> None:
        """``lease``: held by this node of a pair (``tickerplant.standby``): its epoch is the
        tickerplant's, and the journal is replicated to the standby (``replication``).
        ``mirrored``: a standby's recovery state, kept as it copied the journal (its
        takeover then reads no journal)."""
        self.config = config
        self.tp = config.tickerplant
        self.clock = clock or SystemClock()
        self.calendar = RollCalendar.from_settings(config.eod.roll_time, config.eod.timezone)
        self.schemas = config.tables
        self.counters = Counters()
        self.ledger = PublisherLedger()
        # Given: built beforehand for these tables (a standby's, ready for its takeover).
        self.validator = validator or BatchValidator(self.schemas, self.tp.max_message_bytes)
        self.index = JournalIndex()
        self.journal_dir = config.journal_dir
        self.epoch = time.time_ns()

        now_ns = self.clock.now_ns()
        state = None
        if mirrored is not None:
            state = recovered_by_mirror(mirrored, self.journal_dir, self.calendar, now_ns)
        if state is not None and mirrored is not None:
            self.ledger = mirrored.ledger
            self.index.preset(mirrored.path, mirrored.index_seqs, mirrored.index_offsets)
        else:
            state = recover(self.journal_dir, self.calendar, now_ns, self.ledger, repair_journal)
        self.seq = state.seq  # last seq assigned
        self.committed_seq = state.seq  # last seq on the journal and published: what others see
        self.session: dt.date = state.session
        self.session_start_seq = state.session_start_seq
        self.journal = self._open_journal(self.session)

        self.ctx = zmq.Context()
        self.curve = curve or curve_links.for_config(config)
        self.ingest = self.ctx.socket(zmq.ROUTER)
        self.ingest.setsockopt(zmq.LINGER, 0)
        self.ingest.setsockopt(zmq.RCVHWM, 100_000)
        self.max_frame_bytes = ingest_frame_cap(
            self.tp.max_message_bytes, self.tp.ingest_max_frame_bytes
        )
        self.ingest.setsockopt(zmq.MAXMSGSIZE, self.max_frame_bytes)  # never buffer more
        # With CURVE, every request is checked against its sender's roles (access.py).
        secure = self.curve.serve(self.ingest, "ingest")
        self.access = TickerplantAccess(self.curve, self.schemas) if secure else None
        # Whose batches go under which publisher id; with CURVE, ids are bound to identities.
        bindings = PublisherBindings(self.journal_dir, self.ledger.__contains__) if secure else None
        self.publishers = PublisherGate(bindings)
        bind(self.ingest, self.tp.address, "tickerplant.address (--address)")
        self.address = self.ingest.getsockopt_string(zmq.LAST_ENDPOINT)
        self.closed_connections = ClosedConnections(
            self.ingest, "ingest", self.max_frame_bytes, watch=not secure
        )
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, self.tp.subscriber_buffer)
        self.pub.setsockopt(zmq.MAXMSGSIZE, self.tp.publish_max_frame_bytes)  # subscriptions
        # "trade" too: a trader may follow its own accounts' order flow (tickerplant.access).
        if self.curve.serve(self.pub, "publish", ("read", "trade")):
            self.pub.setsockopt(zmq.XPUB_MANUAL, 1)  # each subscription checked, pubsub.py
        bind(self.pub, self.tp.publish_address, "tickerplant.publish_address")
        self.publish_endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
        check = self.access.subscription if self.access else None
        self.fanout = Fanout(self.pub, self.schemas, check)
        self._wait = SocketWait(self.ingest, self.pub)
        source = JournalSource(self.journal_dir, self.index, lambda: self.journal.path)
        self.replay = ReplayServer(
            self.ctx,
            self.tp.replay_address,
            source,
            self.schemas,
            lambda: self.committed_seq,
            self.curve,
            max_frame_bytes=self.tp.replay_max_frame_bytes,
        )
        self.pending = Pending()
        # Runs change record boundaries, so immediate mode takes them only when allowed to.
        self._coalesce = self.tp.mode == "batched" or self.tp.coalesce_queued
        self.runs = RunBuilder(self.validator, self.clock, self._accept, self._take)
        self._roll_at: tuple[dt.date | None, int] = (None, 0)
        self.pending_roll = PendingRoll()
        self._outgoing: list[Outgoing] = []
        self._done_batches: list[tuple[bytes, int]] = []
        # pyzmq's own send, without its Python wrapper (acks: three frames each).
        send: Any = super(zmq.Socket, self.ingest).send
        self.acks = Acks(send)
        self._running = False
        now = time.monotonic()
        self._next_heartbeat = now
        self._next_batch = now + self.tp.batch_interval_ms / 1000
        self._next_housekeeping = now
        self.fenced = False  # another node took the lease: stop, acknowledge nothing more
        self.replication: Replicator | None = None
        if lease is not None:
            self.epoch = lease.epoch
            self.replication = Replicator(self, lease, config.replication)
            self._wait.watch(self.replication.socket)

    # -- set-up -------------------------------------------------------------------------
    def hello(self, who: str | None = None) -> dict[str, object]:
        return hello_of(self, who)

    def stats(self) -> dict[str, object]:
        return stats_of(self)

    def _open_journal(self, session: dt.date) -> JournalWriter:
        return JournalWriter(
            journal_path(self.journal_dir, session),
            self.index,
            fsync=self.config.journal.fsync,
            fsync_interval_ns=self.config.journal.fsync_interval_ms * 1_000_000,
        )

    # -- the loop -----------------------------------------------------------------------
    def serve(self, ready: dict[str, object] | None = None) -> None:
        self.replay.start()
        self._running = True
        log.info(
            "tickerplant at %s (publish %s, replay %s), session %s, seq %d, %s mode, "
            "one-row messages packed in %s",
            self.address,
            self.publish_endpoint,
            self.replay.endpoint,
            self.session,
            self.seq,
            self.tp.mode,
            "C" if self.validator.rowpack.name == "c" else "pure Python",
        )
        immediate = self.tp.mode == "immediate"
        while self._running:
            ingest, pub = self._wait.wait(self._next_timer() - time.monotonic())
            if self.replication is not None and not self.replication.turn():
                log.warning("tickerplant fenced: epoch %d is no longer the lease's", self.epoch)
                self.fenced = True
                break
            try:
                if pub:
                    self._drain_subscriptions()
                if ingest:
                    self._drain_ingest()
                    if immediate:
                        self._commit()
                self._timers()
            except zmq.ZMQError as exc:
                # A peer vanishing mid-send must not stop everyone else's feed.
                log.warning("socket error: %s", exc)
        self._shutdown()

    def stop(self) -> None:
        self._running = False

    def _next_timer(self) -> float:
        timers = [self._next_heartbeat, self._next_housekeeping]
        if self.acks.due:
            timers.append(self.acks.next_at)
        if self.tp.mode == "batched":
            timers.append(self._next_batch)
        if self.replication is not None:
            timers.append(self.replication.next_due)
        return min(timers)

    def _timers(self) -> None:
        now = time.monotonic()
        if self.acks.due and now >= self.acks.next_at:
            self._send_acks(force=False)
        if self.tp.mode == "batched" and now >= self._next_batch:
            self._flush_pending()
            self._commit()
            self._next_batch = now + self.tp.batch_interval_ms / 1000
        if now >= self._next_housekeeping:
            self.closed_connections.poll()
            self._check_roll()
            self._next_housekeeping = now + 0.05
        if now >= self._next_heartbeat:
            self.fanout.heartbeat(self.committed_seq)
            self._wait.sent_on_pub()
            self._next_heartbeat = now + self.tp.heartbeat_ms / 1000

    def _drain_subscriptions(self) -> None:
        while True:
            try:
                message = self.pub.recv(zmq.NOBLOCK, copy=self.access is None)
            except zmq.Again:
                return
            if isinstance(message, zmq.Frame):  # CURVE: who asked decides
                who = curve_links.user_id(message)
                self.fanout.on_checked_subscription(message.bytes, who, self.committed_seq)
            else:
                self.fanout.on_subscription(message, self.committed_seq)

    def _drain_ingest(self) -> None:
        # Bounded by count and by time: the first record of a burst is not held back while
        # the rest of the burst is validated.
        deadline = time.monotonic() + MAX_DRAIN_S
        recv, user_id = self.ingest.recv, curve_links.user_id
        get = self.ingest.get
        access, who = self.access, None
        self._wait.ingest_pending = True  # until it is read to empty
        for n in range(MAX_DRAIN):
            # After the first, whether a second waits is asked of the socket (which also runs
            # its commands, as a receive does) rather than found by a receive that fails: a
            # zmq.Again raised and caught per turn cost ~3 µs warm, several times that cold,
            # once per record at the rates orders come in. After the second, a receive that
            # fails ends the turn: asking runs the socket's commands every time (a ``poll``
            # system call, ~2.5 µs of a 1000-row table's), where a receive that succeeds
            # takes the next message from the pipe without them, so a turn of 30 tables
            # paid ~70 µs asking against one failed receive.
            if n == 1 and not int(get(_EVENTS)) & _POLLIN:
                self._wait.ingest_pending = False
                break
            # Frame by frame rather than recv_multipart: a request is almost always exactly
            # [identity, request], and this is the busiest line of the tickerplant.
            try:
                if access is None:
                    identity = recv(_NOBLOCK)
                else:  # CURVE: the routing id's frame also says who sent it (ZAP)
                    head = recv(_NOBLOCK, copy=False)
                    identity, who = head.bytes, user_id(head)
            except zmq.Again:
                self._wait.ingest_pending = False
                break
            # A ROUTER always delivers the sender's identity and at least one frame. The
            # request comes as a zmq.Frame: its ``more`` is free, where asking the socket
            # (RCVMORE) cost more than the receive itself.
            frame = recv(0, False)
            frames: list[Any]
            if frame.more:
                frames = self._whole_request(identity, frame)
            else:
                body = frame.bytes if len(frame) < IN_PLACE_BYTES else frame.buffer
                frames = [identity, body]  # a big one's view: bytes-like
            if frames[1][:3] == UPD:  # almost every request: straight to it
                self._handle_upd(identity, frames, who)
            else:
                self._handle(frames, who)
            if n % 16 == 15 and time.monotonic() > deadline:
                break
        self._end_turn()

    def _whole_request(self, identity: bytes, first: zmq.Frame) -> list[bytes]:
        """A request of several frames (none is valid, but each gets its answer)."""
        frames = [identity, first.bytes]
        while self.ingest.get(_RCVMORE):
            frames.append(self.ingest.recv())
        return frames

    def _end_turn(self) -> None:
        # Batched mode publishes on its timer anyway, so a run of rows that carry their own
        # time stays open across turns, up to the timer: the bigger the run, the cheaper
        # each message. Rows to be stamped are stamped with the turn that received them.
        if self.tp.mode == "immediate" or self.runs.open_untimed:
            self.runs.end()

    def _handle(self, frames: list[bytes], who: str | None = None) -> None:
        """``who``: the sender's identity (its name: the ZAP User-Id), with CURVE on."""
        identity = frames[0]
        tag = frames[1] if len(frames) > 1 else b""
        if tag[:3] == UPD:  # the one request whose frame carries more than its tag
            self._handle_upd(identity, frames, who)
            return
        self.runs.end()  # what came before a request is taken before it is answered
        refusal = self.access.request(who, tag) if self.access is not None else ""
        if refusal:
            self._refuse(identity, 0, "forbidden", refusal)
        elif tag == HELLO:
            self._reply([identity, HELLO, json.dumps(self.hello(who)).encode()])
        elif tag == STATS:
            self._reply([identity, STATS, json.dumps(self.stats()).encode()])
        elif tag == ROLL:
            error = self._forced_roll()
            if error is None:
                self._reply([identity, ROLL, json.dumps(self.hello()).encode()])
            else:
                self._reply([identity, ERR, U64.pack(0), error.encode()])
        else:
            self._refuse(
                identity,
                0,
                "malformed",
                f"unknown request {bytes(tag[:32])!r}; expected one of HELLO, UPD, STATS, ROLL",
            )

    def _reply(self, frames: list[bytes]) -> None:
        """Send on ingest: a refusal can follow the turn's read (``wakeup``)."""
        self.ingest.send_multipart(frames)
        self._wait.sent_on_ingest()

    def _refuse(self, identity: bytes, batch: int, reason: str, message: str) -> None:
        if reason == "malformed":
            self.counters.malformed += 1
        else:
            self.counters.rejected += 1
        by_reason = self.counters.errors_by_reason
        by_reason[reason] = by_reason.get(reason, 0) + 1
        log.warning("refused batch %d: %s", batch, message)
        self._reply([identity, ERR, U64.pack(batch), message.encode()])

    def _handle_upd(self, identity: bytes, frames: list[bytes], who: str | None) -> None:
        try:
            if len(frames) != 2:
                raise ProtocolError(f"expected one frame, UPD and body, got {len(frames) - 1}")
            secret, batch, base, table_name, received = decode_upd(frames[1])
        except ProtocolError as exc:
            self._refuse(identity, 0, "malformed", f"malformed UPD: {exc}")
            return
        # Before the ledger: a batch under an id not the sender's must leave it untouched.
        publisher = self.publishers.admit(secret, who)
        if isinstance(publisher, tuple):
            self._refuse(identity, batch, *publisher)  # no ACK: the id is not the sender's
            return
        verdict = self.ledger.check(publisher, batch, base)
        if verdict is _DUPLICATE:
            self.counters.duplicates += 1
            self.acks.heard[identity] = publisher
            return
        if verdict is _OUT_OF_ORDER:
            self.counters.out_of_order += 1
            if (first := self.ledger.resend_request(publisher, time.monotonic())) is not None:
                self._reply([identity, RESEND, U64.pack(first)])
            return
        self.counters.messages += 1
        self.acks.heard[identity] = publisher
        if self.access is not None and (refusal := self.access.publish(who, table_name)):
            self.runs.end()  # the batches before it are taken first, in order
            self._done_batches.append((publisher, batch))
            self._refuse(identity, batch, "forbidden", refusal)
            return
        if self._coalesce and self.runs.offer((identity, publisher, batch, table_name, received)):
            return
        self.runs.end()
        self._accept(identity, publisher, batch, table_name, received)

    def _accept(
        self, identity: bytes, publisher: bytes, batch: int, table_name: bytes, received: memoryview
    ) -> None:
        """One message on its own: validate it, then take it or refuse it."""
        now = self.clock.now_ns()
        try:
            table = table_name.decode()
            validated = self.validator.validate(table, received, now)
        except IngestError as exc:
            self._done_batches.append((publisher, batch))
            self._refuse(identity, batch, exc.reason, str(exc))
            return
        except UnicodeDecodeError as exc:
            self._done_batches.append((publisher, batch))
            self._refuse(identity, batch, "bad_batch", str(exc))
            return
        self._take(table, validated, [(publisher, batch)], now)

    def _shutdown(self) -> None:
        if not self.fenced:  # a fenced node sends nothing more: its records may be lost
            if self.tp.mode == "batched":
                self._flush_pending()
            self._commit()
            self._send_acks(force=True)
        if self.replication is not None:
            self.replication.close()
        self.journal.close()
        self.replay.stop()
        self.publishers.close()
        self.closed_connections.close()
        self.ingest.close(0)
        self.pub.close(0)
        self.curve.stop(self.ctx)
        self.ctx.term()
        log.info("tickerplant stopped at seq %d", self.seq)
