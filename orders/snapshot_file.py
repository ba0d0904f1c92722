"""A state snapshot's file: a versioned, checksummed pickle, written atomically.

Layout: ``MAGIC`` (8 bytes), format version (u32), body length (u64), SHA-256 of the body
(32 bytes), then the body: a pickle of a dict (a venue's state, ``orders.snapshot``, or a
gateway's order state, ``gateway.order_snapshot``). The name carries the key (which venue,
which gateway settings) and the sequence number it covers,
``<key>.<seq, 20 digits>.snap``, so the newest sorts last.

Written as every file tickdb publishes (``tickdb.durable``: ``.<name>.tmp-<pid>``, fsynced,
renamed onto its name, the directory fsynced): a reader sees a whole file or none, and a
writer killed half way leaves only a temporary file that nothing reads (the next prune
removes it). Read back, anything
that is not exactly what was written (short, another version, a checksum mismatch, a class
outside the order model) raises ``SnapshotInvalid``: the caller then replays the journal.

The pickle is read with an unpickler that builds only the classes its reader allows
(``Allowed``: for a venue the order model's own classes and a deque): a snapshot names no
code to run, whatever its bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickdb import durable

MAGIC = b"TDBVSNAP"
VERSION = 1
HEADER = struct.Struct("<8sIQ32s")
SUFFIX = ".snap"


@dataclass(frozen=True)
class Allowed:
    """The classes a snapshot may hold: those defined in ``modules``, and ``names``."""

    modules: frozenset[str]
    names: frozenset[tuple[str, str]] = frozenset()


# A venue's: the engine, its books and orders.
VENUE_CLASSES = Allowed(
    frozenset({"orders.book", "orders.book_side", "orders.model"}),
    frozenset({("collections", "deque")}),
)


class SnapshotInvalid(Exception):
    """A snapshot file that must not be trusted (the message says why)."""


class _ModelUnpickler(pickle.Unpickler):
    def __init__(self, data: io.BytesIO, allowed: Allowed) -> None:
        super().__init__(data)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        allowed = self._allowed
        if module in allowed.modules or (module, name) in allowed.names:
            found = super().find_class(module, name)
            # Defined there, not imported into it (orders.book imports other names).
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise SnapshotInvalid(f"holds {module}.{name}, not a class of the order model")


def file_name(key: str, seq: int) -> str:
    return f"{key}.{seq:020d}{SUFFIX}"


def encode(state: dict[str, Any]) -> bytes:
    body = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(MAGIC, VERSION, len(body), hashlib.sha256(body).digest()) + body


def decode(data: bytes, allowed: Allowed = VENUE_CLASSES) -> dict[str, Any]:
    if len(data) < HEADER.size:
        raise SnapshotInvalid(f"{len(data)} bytes: shorter than its header")
    magic, version, length, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotInvalid("not a snapshot (bad magic)")
    if version != VERSION:
        raise SnapshotInvalid(f"format version {version}, this code reads {VERSION}")
    body = data[HEADER.size :]
    if len(body) != length:
        raise SnapshotInvalid(f"body of {len(body)} bytes, the header says {length}")
    if hashlib.sha256(body).digest() != digest:
        raise SnapshotInvalid("checksum mismatch")
    try:
        state = _ModelUnpickler(io.BytesIO(body), allowed).load()
    except SnapshotInvalid:
        raise
    except Exception as exc:  # a valid checksum over a body this code cannot read
        raise SnapshotInvalid(f"unreadable body: {exc!r}") from exc
    if not isinstance(state, dict):
        raise SnapshotInvalid(f"body is a {type(state).__name__}, not a dict")
    return state


def write(directory: Path, key: str, seq: int, data: bytes, hold: Any = None) -> Path:
    """Write ``data`` (from ``encode``) as the snapshot of ``key`` at ``seq``, atomically
    (``tickdb.durable``). ``hold``, a test's failpoint, is called half way through the
    temporary file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(key, seq)
    tmp = durable.tmp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        half = len(data) // 2
        os.write(fd, data[:half])
        if hold is not None:
            hold()
        view = memoryview(data)[half:]
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    durable.publish(tmp, path)
    return path


def newest_first(directory: Path, key: str) -> Iterator[tuple[int, Path]]:
    """The snapshots of ``key`` in ``directory``, highest sequence number first."""
    found: list[tuple[int, Path]] = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return iter(())
    prefix = f"{key}."
    for name in names:
        if not (name.startswith(prefix) and name.endswith(SUFFIX)):
            continue
        digits = name[len(prefix) : -len(SUFFIX)]
        if digits.isdigit():
            found.append((int(digits), directory / name))
    return iter(sorted(found, reverse=True))


def prune(directory: Path, key: str, keep: int) -> None:
    """Remove all but the ``keep`` newest snapshots of ``key``, and temporaries whose
    writer is gone."""
    for _, path in list(newest_first(directory, key))[keep:]:
        path.unlink(missing_ok=True)
    durable.remove_stale_tmp(directory)
