"""A FIX session's persistent state: its two sequence numbers and the messages it sent.

QuickFIX's FileStore in two files per session, under ``<store_dir>/<Sender>-<Target>/``:

- ``messages``: every application message sent, appended as ``<seq> <length>\\n<raw>\\n``
  before it is sent, so a ResendRequest is answered with the same messages after a restart;
- ``seqnums``: ``<next sender seq> <next target seq>``, rewritten in place (one ``pwrite``
  of fixed width) when an admin message is sent, once per read of the connection
  (``sync``: the target number of every message the read brought) and at close. An
  application message's record is its own proof that the sender number moved past it:
  sending one costs one ``write``, not two, and a restarted process takes the higher of
  ``seqnums``'s sender number and one past the last message stored.

Writes reach the OS at once (a process crash loses nothing); like the tickerplant's journal
with ``fsync = never`` they are not forced to disk per message.
"""

from __future__ import annotations

import os
from pathlib import Path

_SEQ_WIDTH = 20


class FileStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._seq_path = directory / "seqnums"
        self._msg_path = directory / "messages"
        self.next_sender = 1
        self.next_target = 1
        self.messages: dict[int, bytes] = {}
        self._target_unwritten = False  # advance_target moved it since the last write
        self._load()
        self._seq_fd = os.open(self._seq_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._msg_fd = os.open(self._msg_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._write_seqnums()

    def _load(self) -> None:
        seqs = _read_seqnum_file(self._seq_path)
        if seqs is not None:
            self.next_sender, self.next_target = seqs
        self.messages, whole = _read_messages(self._msg_path)
        if self.messages:
            self.next_sender = max(self.next_sender, max(self.messages) + 1)
        if whole is not None:  # a torn last record: the message was never sent whole
            with open(self._msg_path, "r+b") as f:
                f.truncate(whole)

    def _write_seqnums(self) -> None:
        line = f"{self.next_sender:>{_SEQ_WIDTH}} {self.next_target:>{_SEQ_WIDTH}}\n"
        self._target_unwritten = False
        os.pwrite(self._seq_fd, line.encode(), 0)

    def set_next_sender(self, seq: int) -> None:
        self.next_sender = seq
        self._write_seqnums()

    def set_next_target(self, seq: int) -> None:
        self.next_target = seq
        self._write_seqnums()

    def advance_target(self, seq: int) -> None:
        """The target number, moved on by a message read: on disk at the next ``sync``."""
        self.next_target = seq
        self._target_unwritten = True

    def sync(self) -> None:
        """Write the target number if a message moved it since the last write."""
        if self._target_unwritten:
            self._write_seqnums()

    def save(self, seq: int, raw: bytes) -> None:
        """Record an application message sent as ``seq``: the sender seq is then seq+1 (the
        record says so after a restart; ``seqnums`` catches up at the next write)."""
        self.messages[seq] = raw
        record = b"%d %d\n%s\n" % (seq, len(raw), raw)
        while record:  # a regular file takes it whole; a short write is retried
            record = record[os.write(self._msg_fd, record) :]
        self.next_sender = max(self.next_sender, seq + 1)

    def reset(self) -> None:
        """Both sequence numbers back to 1 and the sent messages forgotten."""
        self.messages.clear()
        os.ftruncate(self._msg_fd, 0)
        self.next_sender = self.next_target = 1
        self._write_seqnums()

    def close(self) -> None:
        self._write_seqnums()  # exact on disk after a clean stop
        os.close(self._msg_fd)
        os.close(self._seq_fd)


def _read_seqnum_file(path: Path) -> tuple[int, int] | None:
    try:
        parts = path.read_text().split()
    except FileNotFoundError:
        return None
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 else None


def _read_messages(path: Path) -> tuple[dict[int, bytes], int | None]:
    """The stored messages by sequence number, and where a torn last record starts (None
    when the file ends with a whole record)."""
    messages: dict[int, bytes] = {}
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return messages, None
    pos = 0
    while pos < len(data):
        line_end = data.find(b"\n", pos)
        if line_end < 0:
            break
        seq_text, _, len_text = data[pos:line_end].partition(b" ")
        length = int(len_text)
        end = line_end + 1 + length
        if end + 1 > len(data):
            break
        messages[int(seq_text)] = data[line_end + 1 : end]
        pos = end + 1
    return messages, (pos if pos < len(data) else None)


def read_seqnums(directory: Path) -> tuple[int, int] | None:
    """A session's (next sender, next target) as a restart would resume it, for ``tickdb
    fix sessions``: ``seqnums``, with the sender number past the last message stored."""
    seqs = _read_seqnum_file(directory / "seqnums")
    if seqs is None:
        return None
    messages, _ = _read_messages(directory / "messages")
    return (max(seqs[0], max(messages) + 1) if messages else seqs[0]), seqs[1]
