"""The primary's side of a tickerplant pair: its journal, byte for byte, to the standby.

The standby (``tickerplant.mirror``) connects a DEALER to the primary's replication ROUTER
(``replication.address``, CURVE with the ``admin`` role like the other ports) and says where
its copy ends (``SYNC``: session, size, the header of its last record). The primary checks
that its own file holds the same record at that offset, then streams the bytes of its
journal files from there, in chunks of whole records read back from the files it wrote
(``REPL``: epoch, offset, last seq, session): the standby's files are the primary's, byte
for byte, by construction. A copy that does not match (an old primary's records that were
never replicated) is answered ``RESTART``: the standby moves that file aside and takes it
again from the start.

The standby acknowledges each chunk (``RACK``: epoch, last seq, bytes received). In ``sync``
mode every loop turn's commit is held (``hold``): its records are not published and its
publishers not acknowledged until the standby's ``RACK`` covers its last seq, so whatever a
publisher or subscriber has seen is on both nodes. A standby counts (is *attached*) once it
has caught up; before that, after it has been silent for ``standby_timeout_ms``, and once
its process is gone (a connection of the replication socket closed, and the standby's
``flock`` on ``tickerplant.standby.alive`` in the lease directory is free: a dead standby can
never take over, so nothing need wait for it), the primary acknowledges on its own journal (a lone
primary stays available). A standby whose connection closed while it lives (its lock held)
is waited for as a silent one. Every message
carries the primary's epoch (its lease's, ``tickdb.lease``): a standby takes only the
current epoch's records, and the primary confirms its lease before every turn, and reads
it again before it stops waiting for a silent standby, so a primary resumed after a freeze
finds itself fenced before it journals or acknowledges anything.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import zmq

from tickdb.config import ReplicationConfig
from tickdb.lease import Lease
from tickdb.listen import bind
from tickerplant.journal import journal_files, journal_path
from tickerplant.protocol import JOURNAL_MAGIC, RECORD_HEADER, U64

if TYPE_CHECKING:
    from tickdb.curve_links import CurveLinks
    from tickerplant.dedup import PublisherLedger
    from tickerplant.journal import JournalWriter
    from tickerplant.pubsub import Outgoing


class ReplicatedPlant(Protocol):
    """What the replication needs of the tickerplant it serves (``tickerplant.server``)."""

    ctx: zmq.Context[Any]
    curve: CurveLinks
    seq: int
    committed_seq: int
    ledger: PublisherLedger
    session: dt.date
    journal: JournalWriter
    journal_dir: Path

    def released(self, seq: int, outgoing: list[Outgoing], acks: dict[bytes, bytes]) -> None:
        """Publish and acknowledge a commit the standby now has."""

    def sent_on_replication(self) -> None:
        """The replication socket sent: the loop's wake-up must look at it."""


log = logging.getLogger(__name__)

# Standby -> primary.
SYNC = b"SYNC"  # JSON: {"session", "size", "tail_offset", "tail_header"} of its last file
RACK = b"RACK"  # RACK_BODY: epoch, last seq written, bytes received since its SYNC
# Primary -> standby.
REPL = b"REPL"  # REPL_HEAD, then whole records (from offset 0: the file's magic first)
BEAT = b"BEAT"  # BEAT_BODY: the primary is alive, in this epoch, at this committed seq
RESTART = b"RESTART"  # session: the standby's copy of it is not the primary's; take it anew
REFUSED = b"REFUSED"  # a message: the request was not taken (either way)

RACK_BODY = struct.Struct("<QQQ")
REPL_HEAD = struct.Struct("<QQQB10s")  # epoch, offset, last seq, flags, session (ISO date)
BEAT_BODY = struct.Struct("<QQB")  # epoch, committed seq, flags
ATTACHED = 1  # flag: the primary counts this standby in (sync: it waits for its RACK)
_SEQ_AT = RECORD_HEADER.size + 6  # a record's seq: after its header and kind/version/lengths

CHUNK_BYTES = 1 << 20  # a REPL carries about this much (one larger record goes whole)
WINDOW_BYTES = 16 << 20  # sent and not yet acknowledged by the standby, at most
MAX_REQUEST_BYTES = 64 << 10  # what a standby sends is small: SYNC and RACK
# In the lease directory: the standby holds a ``flock`` on it while it mirrors, which the
# kernel frees when it dies (how the primary tells a dead standby from a disconnected one).
STANDBY_ALIVE = "tickerplant.standby.alive"
CLOSED_EVERY_S = 0.02  # after a close, how often the lock is tried (three system calls)
CLOSED_LOOK_S = 2.0  # ... and for how long (a dying process frees it within milliseconds)


@dataclass
class _Gate:
    """One commit held until the standby has its last record (sync mode)."""

    seq: int
    outgoing: list[Outgoing]
    acks: dict[bytes, bytes]  # routing id -> publisher
    levels: dict[bytes, int]  # publisher -> ack level once this commit is released


@dataclass
class _Standby:
    identity: bytes
    session: dt.date
    offset: int
    fd: int = -1
    sent: int = 0  # bytes sent since its SYNC
    acked: int = 0  # bytes it confirmed
    acked_seq: int = 0
    last_heard: float = field(default_factory=time.monotonic)
    attached: bool = False
    # When a connection closed (monotonic; 0: none since): looked at until its lock is free
    # (dropped) or for CLOSED_LOOK_S, every CLOSED_EVERY_S.
    closed_at: float = 0.0
    looked_at: float = 0.0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Replicator:
    """Lives in the primary's loop thread, beside its journal (``Tickerplant.replication``)."""

    def __init__(self, tp: ReplicatedPlant, lease: Lease, settings: ReplicationConfig) -> None:
        self.tp = tp
        self.lease = lease
        self.sync = settings.mode == "sync"
        self.timeout_s = settings.standby_timeout_ms / 1000
        self.socket = tp.ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        self.socket.setsockopt(zmq.SNDHWM, 10_000)
        # Closed connections (``turn``): the standby's, if its process is gone, need not be
        # waited for. (Which connection closed is not said: the lock tells.)
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.standby_alive = lease.path.parent / STANDBY_ALIVE
        # The journal is everything: only identities with the admin role get it.
        tp.curve.serve(self.socket, "replication", "admin")
        bind(self.socket, settings.address, "replication.address")
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.standby: _Standby | None = None
        self.gates: deque[_Gate] = deque()
        self.levels: dict[bytes, int] = {}  # publisher -> level acknowledged to it
        self.released_seq = tp.seq
        self.next_due = time.monotonic()
        self.held_commits = 0  # commits that waited for the standby (stats)
        self._beat_stop = threading.Event()
        self._beat = threading.Thread(target=self._renew, daemon=True, name="tp-lease")
        self._beat.start()

    # -- the lease --------------------------------------------------------------------------
    def _renew(self) -> None:
        """The lease's heartbeat, off the loop thread (a busy turn must not lose it)."""
        while not self._beat_stop.wait(self.lease.ttl_s / 6):
            if self.lease.holds():
                self.lease.renew()

    def turn(self) -> bool:
        """Before each loop turn: False once this node no longer holds the lease (fenced)."""
        if not (self.lease.fresh() or self.lease.renew()):
            return False
        self._drain()
        now = time.monotonic()
        standby = self.standby
        if standby is not None and now - standby.last_heard > self.timeout_s:
            log.warning("standby silent for %.0f ms: dropped", (now - standby.last_heard) * 1e3)
            if not self._drop_standby():
                return False
        elif standby is not None and self._standby_gone(standby, now):
            log.warning("standby's process is gone (its connection closed): dropped")
            if not self._drop_standby():
                return False
        if now >= self.next_due:
            self.next_due = now + self.timeout_s / 4
            if self.standby is not None:
                flags = ATTACHED if self.standby.attached else 0
                body = BEAT_BODY.pack(self.lease.epoch, self.tp.committed_seq, flags)
                self._send(self.standby.identity, BEAT, body)
        return True

    def _standby_gone(self, standby: _Standby, now: float) -> bool:
        """A connection closed lately and the standby's lock is free: it died. (A close
        the standby lives through, its link made again, is not: it is waited for.)"""
        if self.monitor.get(zmq.EVENTS) & zmq.POLLIN:  # one cheap look a turn
            while True:
                try:
                    self.monitor.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
            standby.closed_at = now
        if not standby.closed_at or now - standby.looked_at < CLOSED_EVERY_S:
            return False
        standby.looked_at = now
        if now - standby.closed_at > CLOSED_LOOK_S:
            standby.closed_at = 0.0
            return False
        return process_gone(self.standby_alive)

    # -- commits ----------------------------------------------------------------------------
    @property
    def gating(self) -> bool:
        return self.sync and self.standby is not None and self.standby.attached

    def ack_level(self, publisher: bytes) -> int:
        return self.levels.get(publisher, 0)

    def hold(self, seq: int, outgoing: list[Outgoing], acks: dict[bytes, bytes]) -> None:
        """A commit of the loop (records flushed to the journal up to ``seq``): released
        at once, or in sync mode with an attached standby once it has ``seq``."""
        level = self.tp.ledger.ack_level
        gate = _Gate(seq, outgoing, acks, {p: level(p) for p in set(acks.values())})
        if self.gating:
            assert self.standby is not None
            self.held_commits += 1
            self.gates.append(gate)
            self._release_upto(self.standby.acked_seq)  # a commit of acks alone: at once
        else:
            self._release(gate)
        self.pump()

    def _release(self, gate: _Gate) -> None:
        # Confirmed again right before anything becomes visible: a freeze may have fallen
        # between this turn's check and here. A node that lost the lease releases nothing
        # (its next turn finds it fenced), so it never acknowledges or publishes a write.
        if not (self.lease.fresh() or self.lease.renew()):
            return
        self.levels.update(gate.levels)
        self.released_seq = max(self.released_seq, gate.seq)
        self.tp.released(gate.seq, gate.outgoing, gate.acks)

    def _release_upto(self, seq: int) -> None:
        gates = self.gates
        while gates and gates[0].seq <= seq:
            self._release(gates.popleft())

    def _drop_standby(self) -> bool:
        """No standby any more: what waited for it is released, if the lease is still ours
        (read again: after a freeze, the standby may be the primary now)."""
        if self.standby is not None:
            self.standby.close()
            self.standby = None
        if self.gates:
            if not self.lease.renew():
                return False
            self._release_upto(self.tp.seq)
        return True

    # -- the standby's requests -------------------------------------------------------------
    def _drain(self) -> None:
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            identity, tag = frames[0], frames[1] if len(frames) > 1 else b""
            if tag == RACK and len(frames) == 3 and len(frames[2]) == RACK_BODY.size:
                self._on_rack(identity, *RACK_BODY.unpack(frames[2]))
            elif tag == SYNC and len(frames) == 3:
                self._on_sync(identity, frames[2])
            else:
                message = f"unknown replication request {bytes(tag[:16])!r}; expected SYNC, RACK"
                log.warning("replication: %s", message)
                self._send(identity, REFUSED, message.encode())

    def _on_rack(self, identity: bytes, epoch: int, seq: int, received: int) -> None:
        standby = self.standby
        if standby is None or identity != standby.identity:
            # Dropped (silent too long) or replaced: it is to SYNC again.
            self._send(identity, REFUSED, b"not a standby of this primary: SYNC again")
            return
        if epoch != self.lease.epoch:
            log.warning(
                "standby acknowledged epoch %d, this primary's is %d", epoch, self.lease.epoch
            )
            return
        standby.last_heard = time.monotonic()
        standby.acked = max(standby.acked, received)
        standby.acked_seq = max(standby.acked_seq, seq)
        if not standby.attached and self._caught_up(standby):
            standby.attached = True
            log.warning(
                "standby attached at seq %d (%s replication)", seq, "sync" if self.sync else "async"
            )
            # Told at once, not at the next beat: until it knows, it would not take over a
            # primary that dies (and the pair would be left without one).
            body = BEAT_BODY.pack(self.lease.epoch, self.tp.committed_seq, ATTACHED)
            self._send(standby.identity, BEAT, body)
        self._release_upto(standby.acked_seq)
        self.pump()

    def _caught_up(self, standby: _Standby) -> bool:
        return (
            standby.acked == standby.sent
            and standby.session == self.tp.session
            and standby.offset == self.tp.journal.size
        )

    def _on_sync(self, identity: bytes, body: bytes) -> None:
        try:
            state = json.loads(body)
            session = dt.date.fromisoformat(state["session"]) if state["session"] else None
            size, tail_offset = int(state["size"]), int(state["tail_offset"])
            tail = bytes.fromhex(state["tail_header"])
        except (ValueError, KeyError, TypeError) as exc:
            self._send(identity, REFUSED, f"malformed SYNC: {exc}".encode())
            return
        if self.standby is not None:
            log.warning("replication: a new standby connection replaces the previous one")
            if not self._drop_standby():
                return  # fenced: the next turn stops the loop
        if session is None:
            files = journal_files(self.tp.journal_dir)
            start, offset = (files[0][0] if files else self.tp.session), 0
        elif self._matches(session, size, tail_offset, tail):
            start, offset = session, size
        else:
            log.warning(
                "standby's copy of %s diverges at or before byte %d: restart it", session, size
            )
            self._send(identity, RESTART, session.isoformat().encode())
            return
        self.standby = _Standby(identity, start, offset)
        log.warning("standby connected: from %s byte %d", start, offset)
        self.pump()

    def _matches(self, session: dt.date, size: int, tail_offset: int, tail: bytes) -> bool:
        path = journal_path(self.tp.journal_dir, session)
        try:
            with open(path, "rb") as f:
                if self._size(path, f.fileno()) < size:
                    return False
                return os.pread(f.fileno(), len(tail), tail_offset) == tail
        except OSError:
            return False

    # -- sending the journal ----------------------------------------------------------------
    def _size(self, path: Path, fd: int) -> int:
        # The live file's flushed size (the space reserved past it is not records).
        return self.tp.journal.size if path == self.tp.journal.path else os.fstat(fd).st_size

    def pump(self) -> None:
        """Send the standby what the journal has and it has not, within the window."""
        standby = self.standby
        while standby is not None and standby.sent - standby.acked < WINDOW_BYTES:
            path = journal_path(self.tp.journal_dir, standby.session)
            if standby.fd < 0:
                try:
                    standby.fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    if not self._next_file(standby):
                        return
                    continue
            size = self._size(path, standby.fd)
            if standby.offset >= size:
                if path == self.tp.journal.path or not self._next_file(standby):
                    return
                continue
            data, last_seq = _whole_records(standby.fd, standby.offset, size)
            if not data:  # never expected: the offset is not at a record of the file
                log.error("replication: no whole record at byte %d of %s", standby.offset, path)
                self._drop_standby()
                return
            flags = ATTACHED if standby.attached else 0
            session = standby.session.isoformat().encode()
            head = REPL_HEAD.pack(self.lease.epoch, standby.offset, last_seq, flags, session)
            self._send(standby.identity, REPL, head, data)
            standby.offset += len(data)
            standby.sent += len(data)

    def _next_file(self, standby: _Standby) -> bool:
        later = [d for d, _ in journal_files(self.tp.journal_dir) if d > standby.session]
        if not later:
            return False
        standby.close()
        standby.session, standby.offset = later[0], 0
        return True

    def _send(self, identity: bytes, tag: bytes, *body: bytes) -> None:
        try:
            self.socket.send_multipart([identity, tag, *body], zmq.NOBLOCK)
        except zmq.Again:
            log.warning("replication: the standby's queue is full; it will SYNC again")
        self.tp.sent_on_replication()

    def stats(self) -> dict[str, object]:
        standby = self.standby
        return {
            "replication_mode": "sync" if self.sync else "async",
            "standby_attached": bool(standby and standby.attached),
            "standby_seq": standby.acked_seq if standby else 0,
            "held_commits": self.held_commits,
        }

    def close(self) -> None:
        self._beat_stop.set()
        self._beat.join()
        if self.standby is not None:
            self.standby.close()
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)


def _whole_records(fd: int, offset: int, size: int) -> tuple[bytes, int]:
    """Bytes from ``offset``: whole records only, about ``CHUNK_BYTES`` (at least one
    record), and the last one's seq (0: only the file's magic)."""
    data = os.pread(fd, min(size - offset, CHUNK_BYTES), offset)
    pos = len(JOURNAL_MAGIC) if offset == 0 else 0
    last_seq = 0
    while pos + RECORD_HEADER.size <= len(data):
        length = RECORD_HEADER.unpack_from(data, pos)[0]
        end = pos + RECORD_HEADER.size + length
        if end > len(data):
            if last_seq == 0 and offset + end <= size:  # one record larger than a chunk
                data = data[:pos] + os.pread(fd, end - pos, offset + pos)
                last_seq = U64.unpack_from(data, pos + _SEQ_AT)[0]
                pos = end
            break
        last_seq = U64.unpack_from(data, pos + _SEQ_AT)[0]
        pos = end
    return data[:pos], last_seq


def process_gone(alive: Path) -> bool:
    """Is no process holding the ``flock`` on ``alive`` (the standby's, while it mirrors)?"""
    fd = os.open(alive, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def standby_eligible(flags: int) -> bool:
    """Whether a standby that last heard ``flags`` may take over (it was counted in)."""
    return bool(flags & ATTACHED)
