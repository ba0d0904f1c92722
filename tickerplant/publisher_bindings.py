"""With CURVE: each publisher id belongs to the identity that first published under it.

CURVE tells the tickerplant who sent each message (``tickdb.zap``). The first batch under a
(public) publisher id binds that id to its sender's identity; a batch under it from any
other identity is refused (``foreign_publisher_id``) before the exactly-once ledger sees
it, so it can never move the real publisher's state, whatever batch number it claims.

The bindings last as long as the ledger they protect, which a restart rebuilds from the
newest journal: each is appended to ``<journal dir>/publisher-ids`` (a line of the public
id in hex and the identity) and fsynced when it is made, before the batch that made it is
journaled. At start the file is read, and rewritten with the bindings of the ids the
rebuilt ledger holds, so it does not grow from day to day. A line a crash cut short is
skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from tickdb.durable import fsync_dir

log = logging.getLogger(__name__)

BINDINGS_FILE = "publisher-ids"


class PublisherBindings:
    def __init__(self, directory: Path, keep: Callable[[bytes], bool]) -> None:
        """The bindings saved under ``directory`` whose id ``keep`` says is still in use."""
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / BINDINGS_FILE
        self._owner: dict[bytes, str] = {}
        for public, identity in _read(self.path):
            if keep(public):
                self._owner.setdefault(public, identity)  # the first binding stands
        _rewrite(self.path, self._owner)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        log.info("%d publisher id(s) bound to identities (%s)", len(self._owner), self.path)

    def __len__(self) -> int:
        return len(self._owner)

    def claim(self, public: bytes, identity: str) -> tuple[str, str] | None:
        """None when the id is ``identity``'s (bound now if it was free), else the reason
        and message of the refusal."""
        owner = self._owner.get(public)
        if owner == identity:
            return None
        if owner is not None:
            # Neither the owner nor the secret is named: the sender may know neither.
            return "foreign_publisher_id", (
                f"publisher id {public.hex()[:8]}... belongs to another identity than "
                f"{identity!r}; publish under an id of your own (a new tickdb.Publisher "
                "makes one)"
            )
        try:
            os.write(self._fd, f"{public.hex()} {identity}\n".encode())
            os.fsync(self._fd)
        except OSError as exc:
            log.error("cannot record publisher id %s for %r: %s", public.hex(), identity, exc)
            return "binding_not_saved", f"cannot record your publisher id now ({exc}); resend"
        self._owner[public] = identity
        return None

    def close(self) -> None:
        os.close(self._fd)


def _read(path: Path) -> list[tuple[bytes, str]]:
    if not path.exists():
        return []
    found = []
    for line in path.read_bytes().split(b"\n"):
        parts = line.split(b" ")
        if len(parts) != 2 or len(parts[0]) != 32:
            continue  # cut short by a crash (or empty)
        try:
            found.append((bytes.fromhex(parts[0].decode()), parts[1].decode()))
        except (ValueError, UnicodeDecodeError):
            continue
    return found


def _rewrite(path: Path, owners: dict[bytes, str]) -> None:
    """The file holding exactly ``owners``, replaced whole (never half written)."""
    fresh = path.with_name(path.name + ".new")
    with open(fresh, "wb") as f:
        f.write(b"".join(f"{p.hex()} {who}\n".encode() for p, who in owners.items()))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(fresh, 0o600)
    os.replace(fresh, path)
    fsync_dir(path.parent)
