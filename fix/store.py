"""A FIX session's persistent state: its two sequence numbers and the messages it sent.

QuickFIX's FileStore in two files per session, under ``<store_dir>/<Sender>-<Target>/``:

- ``seqnums``: ``<next sender seq> <next target seq>``, rewritten in place (one ``pwrite``
  of fixed width) whenever either moves, so a restarted process resumes the session where
  it stopped;
- ``messages``: every application message sent, appended as ``<seq> <length>\\n<raw>\\n``,
  so a ResendRequest is answered with the same messages after a restart.

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
        self._load()
        self._seq_fd = os.open(self._seq_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._msg_file = open(self._msg_path, "ab")  # noqa: SIM115 - held open for appends
        self._write_seqnums()

    def _load(self) -> None:
        if self._seq_path.exists():
            parts = self._seq_path.read_text().split()
            if len(parts) == 2:
                self.next_sender, self.next_target = int(parts[0]), int(parts[1])
        if self._msg_path.exists():
            data = self._msg_path.read_bytes()
            pos = 0
            while pos < len(data):
                line_end = data.find(b"\n", pos)
                if line_end < 0:
                    break
                seq_text, _, len_text = data[pos:line_end].partition(b" ")
                length = int(len_text)
                end = line_end + 1 + length
                if end + 1 > len(data):
                    break  # a torn last record: the message was never sent whole
                self.messages[int(seq_text)] = data[line_end + 1 : end]
                pos = end + 1
            if pos < len(data):
                with open(self._msg_path, "r+b") as f:
                    f.truncate(pos)

    def _write_seqnums(self) -> None:
        line = f"{self.next_sender:>{_SEQ_WIDTH}} {self.next_target:>{_SEQ_WIDTH}}\n"
        os.pwrite(self._seq_fd, line.encode(), 0)

    def set_next_sender(self, seq: int) -> None:
        self.next_sender = seq
        self._write_seqnums()

    def set_next_target(self, seq: int) -> None:
        self.next_target = seq
        self._write_seqnums()

    def save(self, seq: int, raw: bytes) -> None:
        """Record an application message sent as ``seq`` (the sender seq is then seq+1)."""
        self.messages[seq] = raw
        self._msg_file.write(b"%d %d\n%s\n" % (seq, len(raw), raw))
        self._msg_file.flush()

    def reset(self) -> None:
        """Both sequence numbers back to 1 and the sent messages forgotten."""
        self.messages.clear()
        self._msg_file.truncate(0)
        self._msg_file.seek(0)
        self.next_sender = self.next_target = 1
        self._write_seqnums()

    def close(self) -> None:
        self._msg_file.close()
        os.close(self._seq_fd)


def read_seqnums(directory: Path) -> tuple[int, int] | None:
    """A stopped session's (next sender, next target), for ``tickdb fix sessions``."""
    try:
        parts = (directory / "seqnums").read_text().split()
    except FileNotFoundError:
        return None
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 else None
