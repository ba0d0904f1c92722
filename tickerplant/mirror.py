"""The standby's side of a tickerplant pair: a byte-for-byte copy of the primary's journal.

``JournalMirror`` holds the copy: the standby's own journal directory, whose files it only
ever appends to with the bytes the primary sent (``tickerplant.replication``), checked first:
each chunk must start where the file ends, hold whole records with valid checksums and
consecutive seqs. ``MirrorLink`` is the connection to the primary: it says where the copy
ends (``SYNC``), writes each ``REPL`` of the current epoch and acknowledges it (``RACK``),
refuses a chunk of an older epoch (a fenced primary's), and moves a diverging file aside
when told (``RESTART``: an old primary's records that never reached the new one).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import zmq

from tickdb import curve_links
from tickerplant.checksum import crc32
from tickerplant.journal import _iter_raw, journal_files, journal_path, repair_journal
from tickerplant.mirror_state import MirroredSession
from tickerplant.protocol import JOURNAL_MAGIC, RECORD_HEADER, U64
from tickerplant.replication import (
    ATTACHED,
    BEAT,
    BEAT_BODY,
    CHUNK_BYTES,
    RACK,
    RACK_BODY,
    REFUSED,
    REPL,
    REPL_HEAD,
    RESTART,
    SYNC,
)

log = logging.getLogger(__name__)

_SEQ_AT = 6  # a record body's seq, after kind, version and the two lengths


class MirrorError(Exception):
    """A chunk that does not continue the copy: the link SYNCs again."""


class JournalMirror:
    """The standby's journal files. ``session``/``size``: where the copy ends."""

    def __init__(self, journal_dir: Path, fsync: bool) -> None:
        self.dir = journal_dir
        self.fsync = fsync
        self.dir.mkdir(parents=True, exist_ok=True)
        self.session: dt.date | None = None
        self.size = 0
        self.last_seq = 0
        self.tail_offset = 0
        self.tail_header = b""
        # What a takeover would otherwise scan the copy for, kept record by record.
        self.recovery: MirroredSession | None = None
        self._fd = -1
        self._open_last()

    def _open_last(self) -> None:
        self.close()
        self.session, self.size, self.last_seq, self.tail_offset, self.tail_header = (
            None,
            0,
            0,
            0,
            b"",
        )
        self.recovery = None
        files = journal_files(self.dir)
        if not files:
            return
        session, path = files[-1]
        recovery = MirroredSession(path, session)
        for offset, body, _ in _iter_raw(path):
            if isinstance(body, str):  # a torn tail: cut (kept beside it), taken again
                log.warning("standby journal %s: %s at byte %d; cutting", path.name, body, offset)
                repair_journal(path)
                break
            self.tail_offset = offset
            self.last_seq = U64.unpack_from(body, _SEQ_AT)[0]
            recovery.take(offset, self.last_seq, body)
        self.recovery = recovery
        self.session, self.size = session, path.stat().st_size
        if self.size:
            with open(path, "rb") as f:
                self.tail_header = os.pread(f.fileno(), RECORD_HEADER.size, self.tail_offset)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def state(self) -> dict[str, Any]:
        """What ``SYNC`` says: where the copy ends, and its last record's header."""
        return {
            "session": self.session.isoformat() if self.session else "",
            "size": self.size,
            "tail_offset": self.tail_offset,
            "tail_header": self.tail_header.hex(),
        }

    def write(self, session: dt.date, offset: int, data: bytes) -> None:
        """Append a chunk the primary sent, after checking it continues the copy."""
        if session != self.session:
            if offset != 0 or (self.session is not None and session < self.session):
                raise MirrorError(
                    f"chunk of {session} at byte {offset}; the copy is at {self.session}"
                )
            self._start(session)
        elif offset != self.size:
            raise MirrorError(f"chunk at byte {offset} of {session}; the copy ends at {self.size}")
        pos = 0
        if offset == 0:
            if data[: len(JOURNAL_MAGIC)] != JOURNAL_MAGIC:
                raise MirrorError("a journal's first chunk without the journal's magic")
            pos = len(JOURNAL_MAGIC)
        view = memoryview(data)
        # Seqs run on across a session's file (each new file: checked from its first).
        tail_offset, last_seq = self.tail_offset, self.last_seq if offset else 0
        checked: list[tuple[int, int, memoryview]] = []  # taken into ``recovery`` once written
        while pos < len(data):
            if len(data) - pos < RECORD_HEADER.size:
                raise MirrorError("a chunk ending in a torn record header")
            length, crc = RECORD_HEADER.unpack_from(data, pos)
            end = pos + RECORD_HEADER.size + length
            body = view[pos + RECORD_HEADER.size : end]
            if end > len(data) or length < _SEQ_AT + 8 or crc32(body) != crc:
                raise MirrorError(f"a torn or corrupt record at byte {offset + pos}")
            seq = U64.unpack_from(body, _SEQ_AT)[0]
            if last_seq and seq != last_seq + 1:
                raise MirrorError(f"seq jumps from {last_seq} to {seq}")
            tail_offset, last_seq = offset + pos, seq
            checked.append((offset + pos, seq, body))
            pos = end
        written = os.write(self._fd, data)
        while written < len(data):
            written += os.write(self._fd, view[written:])
        if self.fsync:
            os.fsync(self._fd)
        if self.recovery is not None:
            for at, seq, body in checked:
                self.recovery.take(at, seq, body)
        self.size += len(data)
        self.tail_offset, self.last_seq = tail_offset, last_seq
        if self.size > len(JOURNAL_MAGIC):
            start = tail_offset - offset
            self.tail_header = bytes(data[start : start + RECORD_HEADER.size])

    def _start(self, session: dt.date) -> None:
        path = journal_path(self.dir, session)
        if path.exists() and path.stat().st_size:
            self._move_aside(path, "replaced")
        self.close()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.session, self.size, self.tail_offset, self.tail_header = session, 0, 0, b""
        self.recovery = MirroredSession(path, session)

    def restart(self, session: dt.date) -> None:
        """The primary's copy of ``session`` differs: move ours (and any later) aside."""
        for day, path in journal_files(self.dir):
            if day >= session:
                self._move_aside(path, "diverged")
        self._open_last()

    def _move_aside(self, path: Path, why: str) -> None:
        kept = path.with_name(f"{path.name}.{why}-{time.time_ns()}")
        os.replace(path, kept)
        log.warning("standby journal %s %s: kept as %s", path.name, why, kept.name)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class MirrorLink:
    """One connection to one primary (one epoch): SYNC, then REPL in and RACK out."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        epoch: int,
        mirror: JournalMirror,
        timeout_s: float,
        max_message_bytes: int,
    ) -> None:
        self.endpoint = endpoint
        self.epoch = epoch
        self.mirror = mirror
        self.beat_s = timeout_s / 4
        # The primary drops a standby it has not heard from for ``timeout_s`` (and then
        # acknowledges alone): RACKs further apart than this may have let it.
        self.risk_s = 0.6 * timeout_s
        self._last_ack = time.monotonic()
        self.attached = False  # the primary's last word: it counts this standby in
        self.last_heard = time.monotonic()
        self.received = 0
        self._synced_at = 0.0
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes + CHUNK_BYTES + 4096)
        curve_links.secure_client(self.socket)
        self.socket.connect(endpoint)
        self._next_beat = 0.0
        self._sync()

    def _sync(self) -> None:
        self.received = 0
        self.attached = False
        self._synced_at = time.monotonic()
        self.socket.send_multipart([SYNC, json.dumps(self.mirror.state()).encode()])

    def _resync(self) -> None:
        """SYNC again, unless just done: what the primary sent before it had our last SYNC
        (chunks of the stream it replaced, refusals of our earlier RACKs) asks nothing new."""
        if time.monotonic() - self._synced_at > self.beat_s:
            self._sync()
        else:
            self.attached = False

    def step(self, timeout_s: float) -> None:
        """Take what the primary sent within ``timeout_s``; acknowledge it."""
        if self.socket.poll(int(timeout_s * 1000)):
            while True:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.last_heard = time.monotonic()
                self._on_message(frames)
        now = time.monotonic()
        if now - self._last_ack > self.risk_s:
            # This side stalled (frozen, starved): until the primary says otherwise, it may
            # have dropped this standby, which must then not take over.
            self.attached = False
        if now >= self._next_beat:
            self._ack()

    def _on_message(self, frames: list[bytes]) -> None:
        tag = frames[0]
        if tag == REPL and len(frames) == 3 and len(frames[1]) == REPL_HEAD.size:
            epoch, offset, _last, flags, session = REPL_HEAD.unpack(frames[1])
            if not self._current(epoch):
                return
            try:
                self.mirror.write(dt.date.fromisoformat(session.decode()), offset, frames[2])
            except (MirrorError, ValueError) as exc:
                log.warning("replication chunk not taken (%s); syncing again", exc)
                self._resync()
                return
            self.received += len(frames[2])
            self.attached = bool(flags & ATTACHED)
            self._ack()
        elif tag == BEAT and len(frames) == 2 and len(frames[1]) == BEAT_BODY.size:
            epoch, _seq, flags = BEAT_BODY.unpack(frames[1])
            if self._current(epoch):
                self.attached = bool(flags & ATTACHED)
        elif tag == RESTART and len(frames) == 2:
            try:
                self.mirror.restart(dt.date.fromisoformat(frames[1].decode()))
            except ValueError:
                log.warning("malformed RESTART from the primary")
                return
            self._sync()
        elif tag == REFUSED:  # e.g. dropped as silent: start over from where the copy ends
            log.warning("primary refused: %s", b" ".join(frames[1:2]).decode(errors="replace"))
            self._resync()
        else:
            log.warning("unknown replication message %r", bytes(tag[:16]))

    def _current(self, epoch: int) -> bool:
        """Only the epoch this link was opened for: an older primary is fenced."""
        if epoch == self.epoch:
            return True
        log.warning(
            "replication message of epoch %d refused (the lease's is %d)", epoch, self.epoch
        )
        self.socket.send_multipart([REFUSED, f"fenced: epoch {epoch} < {self.epoch}".encode()])
        return False

    def _ack(self) -> None:
        self._last_ack = time.monotonic()
        self._next_beat = self._last_ack + self.beat_s
        body = RACK_BODY.pack(self.epoch, self.mirror.last_seq, self.received)
        self.socket.send_multipart([RACK, body])

    def close(self) -> None:
        self.socket.close(0)
