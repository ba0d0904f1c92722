"""``tickdb.durable``: a replaced file is whole for every reader, on disk before it is
renamed, its directory fsynced after; the RDB's recovery state is written that way."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading
from pathlib import Path

import pytest

from rdb.recovery import STATE_FILE, RdbState
from tickdb.durable import pid_alive, write_atomic
from tickdb.ready import write_ready


class Fsyncs:
    """Records what each ``os.fsync`` reached: (is a directory, inode)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[bool, int]] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            st = os.fstat(fd)
            self.calls.append((stat.S_ISDIR(st.st_mode), st.st_ino))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def reached(self, path: Path) -> bool:
        st = path.stat()
        return (stat.S_ISDIR(st.st_mode), st.st_ino) in self.calls


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


def test_write_atomic_syncs_the_file_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    fsyncs = Fsyncs(monkeypatch)
    write_atomic(target, '{"new": true}')
    assert target.read_text() == '{"new": true}'
    # The inode now named state.json was fsynced (under its temporary name), then the
    # directory holding the new name.
    assert fsyncs.calls == [(False, target.stat().st_ino), (True, tmp_path.stat().st_ino)]
    assert leftovers(tmp_path) == []


def test_a_failed_replace_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_readers_see_a_whole_file_while_it_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    versions = [bytes([65 + k]) * 4_000_000 for k in range(2)]  # 4 MB: several writes each
    write_atomic(target, versions[0], durable=False)
    done = threading.Event()
    seen: set[bytes] = set()

    def read() -> None:
        while not done.is_set():
            body = target.read_bytes()
            seen.add(body[:1] if body in versions else b"torn")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(20):
            write_atomic(target, versions[k % 2], durable=False)
    finally:
        done.set()
        reader.join(30)
    assert b"torn" not in seen and seen


def test_the_rdb_state_is_written_durably_and_reread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "rdb" / "rdb-0-of-2"
    fsyncs = Fsyncs(monkeypatch)
    state = RdbState(directory)
    state.begin(dt.date(2024, 1, 2), 1200)
    state.chunk_intent("trade", dt.date(2024, 1, 2), 0, 1500)
    path = directory / STATE_FILE
    assert fsyncs.reached(path) and fsyncs.reached(directory)
    assert fsyncs.reached(directory.parent)  # the directory was new: its entry too
    assert leftovers(directory) == []
    again = RdbState(directory)
    assert again.pending == {dt.date(2024, 1, 2): 1200}
    assert again.chunk_seq("trade", dt.date(2024, 1, 2), 0) == 1500


def test_a_save_a_crash_interrupted_is_cleared_at_start(tmp_path: Path) -> None:
    state = RdbState(tmp_path)
    state.begin(dt.date(2024, 1, 2), 7)
    dead = next(pid for pid in range(4_194_000, 4_000_000, -1) if not pid_alive(pid))
    torn = tmp_path / f".{STATE_FILE}.tmp-{dead}"
    torn.write_text('{"pending": {"2024-01-0')
    assert RdbState(tmp_path).pending == {dt.date(2024, 1, 2): 7}
    assert not torn.exists()


def test_a_ready_file_is_replaced_atomically_without_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    write_ready(tmp_path / "gw.json", {"url": "http://127.0.0.1:1"})
    assert (tmp_path / "gw.json").read_text() == '{"url": "http://127.0.0.1:1"}'
    assert fsyncs.calls == [] and leftovers(tmp_path) == []
