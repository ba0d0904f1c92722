"""The audit log: who did what, when and from where, appended as JSON lines.

Each process that checks credentials keeps one (``<data_dir>/audit/<component>-<date>.jsonl``,
a file per UTC day) while ``[auth] mode = "on"``. A record is one line:

    {"ts": "2025-06-02T14:03:11.520114Z", "who": "alice", "action": "order.new",
     "ok": true, "where": "10.0.0.7:53122", "port": "http", "account": "DESK1", ...}

``action`` is ``login`` (with ``ok`` false for a refused one), ``denied`` (a valid identity
without the role), ``order.*`` and ``admin.*``; other keys say what it was about. Lines are
written with one ``write`` on a file opened for appending, so records of concurrent writers
never interleave, and fsynced within ``fsync_interval_s`` by a background thread (an admin
action at once). Refused logins from one address are capped: a burst of ``refusal_burst``,
then ``refusals_per_s`` a second (a token bucket); the next record written for that address
says how many were left out (``suppressed``), so a flood of bad credentials cannot fill the
disk. Records of identities that proved who they are (orders, admin actions, refused roles)
are never left out.

``read_audit`` reads every process's files back, filtered, in time order (the gateway's
``GET /audit``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tickdb.durable import fsync_dir, make_dirs

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
MAX_TRACKED_PEERS = 10_000


def timestamp(seconds: float) -> str:
    """ISO 8601 in UTC with microseconds: records sort by this text."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> str:
    """A ``since``/``until`` bound as a record timestamp: epoch seconds or ISO 8601 (a date,
    or a time with or without an offset; none means UTC)."""
    try:
        return timestamp(float(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch seconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return timestamp(moment.timestamp())


@dataclass(slots=True)
class _Peer:
    allowance: float  # refused logins this host may still have recorded now
    at: float  # when ``allowance`` was last topped up
    suppressed: int = 0  # refusals left out since the last record from this host


class AuditLog:
    """One process's audit file. ``directory`` None: records go nowhere (auth is off)."""

    def __init__(
        self,
        directory: Path | None,
        component: str,
        *,
        fsync_interval_s: float = 1.0,
        refusals_per_s: float = 10.0,
        refusal_burst: int = 100,
        clock: Any = time.time,
    ) -> None:
        self.directory = directory
        self.component = component
        self.refusals_per_s = refusals_per_s
        self.refusal_burst = refusal_burst
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._day = ""
        self._dirty = False
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._stop = threading.Event()
        self._interval = fsync_interval_s
        self._thread: threading.Thread | None = None
        if directory is not None:
            make_dirs(directory)
            self._thread = threading.Thread(target=self._sync_loop, name="audit-fsync", daemon=True)
            self._thread.start()

    @classmethod
    def for_config(cls, cfg: Any, component: str) -> AuditLog:
        """The audit log of ``component`` under ``<data_dir>/audit``; off unless auth is on."""
        directory = cfg.data_path / "audit" if cfg.auth.mode == "on" else None
        return cls(directory, component)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def record(
        self,
        who: str,
        action: str,
        *,
        ok: bool = True,
        where: str = "",
        port: str = "",
        sync: bool = False,
        **detail: Any,
    ) -> None:
        """Append one record; ``sync``: fsync before returning (admin actions). Details
        that are None are left out."""
        if self.directory is None:
            return
        now = self._clock()
        with self._lock:
            suppressed = self._count(where, now, capped=not ok and action == "login")
            if suppressed is None:
                return
            entry: dict[str, Any] = {
                "ts": timestamp(now),
                "who": who,
                "action": action,
                "ok": ok,
                "where": where,
                "port": port,
                **{k: v for k, v in detail.items() if v is not None},
            }
            if suppressed:
                entry["suppressed"] = suppressed
            line = json.dumps(entry, default=str, separators=(",", ":")) + "\n"
            try:
                fd = self._file(entry["ts"][:10])
                os.write(fd, line.encode())
                if sync:
                    os.fsync(fd)
                else:
                    self._dirty = True
            except OSError as exc:
                # The action itself already happened; losing its record must be loud.
                log.error("audit: cannot write %s record for %r: %s", action, who, exc)

    def _count(self, where: str, now: float, capped: bool) -> int | None:
        """How many refused logins from ``where``'s host were left out before this record;
        None: leave this one (a refused login, ``capped``) out too."""
        host = where.rsplit(":", 1)[0] if where.count(":") == 1 else where
        peer = self._peers.get(host)
        if not capped:
            if peer is None or not peer.suppressed:
                return 0
            left_out, peer.suppressed = peer.suppressed, 0
            return left_out
        if peer is None:
            peer = self._peers[host] = _Peer(float(self.refusal_burst), now)
            while len(self._peers) > MAX_TRACKED_PEERS:
                self._peers.popitem(last=False)
        self._peers.move_to_end(host)
        topped = peer.allowance + (now - peer.at) * self.refusals_per_s
        peer.allowance, peer.at = min(float(self.refusal_burst), topped), now
        if peer.allowance < 1.0:
            peer.suppressed += 1
            return None
        peer.allowance -= 1.0
        left_out, peer.suppressed = peer.suppressed, 0
        return left_out

    def _file(self, day: str) -> int:
        if self._fd is None or day != self._day:
            assert self.directory is not None
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
            path = self.directory / f"{self.component}-{day}{SUFFIX}"
            created = not path.exists()
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._day = day
            if created:
                fsync_dir(self.directory)
            elif _torn(path):
                os.write(self._fd, b"\n")  # a crash cut the last line: start a fresh one
        return self._fd

    def _sync_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._fd is not None and self._dirty:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    log.error("audit: fsync failed: %s", exc)
                self._dirty = False

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _torn(path: Path) -> bool:
    """Whether the file's last line lacks its newline."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def read_audit(
    directory: Path,
    *,
    since: str | None = None,
    until: str | None = None,
    who: str | None = None,
    action: str | None = None,
    limit: int = 1000,
) -> tuple[list[dict[str, Any]], bool]:
    """Records of every process under ``directory`` with ``since <= ts < until`` (record
    timestamps, see ``parse_time``), by ``who`` and of ``action`` (or every ``action``
    under ``prefix.`` when it ends with a dot), oldest first; at most ``limit`` and whether
    more matched."""
    found = []
    for record in _records(directory, since[:10] if since else ""):
        ts = str(record.get("ts", ""))
        if (since and ts < since) or (until and ts >= until):
            continue
        if who is not None and record.get("who") != who:
            continue
        kind = str(record.get("action", ""))
        if action is not None and not (
            kind == action or (action.endswith(".") and kind.startswith(action))
        ):
            continue
        found.append(record)
    found.sort(key=lambda r: str(r.get("ts", "")))
    return found[:limit], len(found) > limit


def _records(directory: Path, first_day: str) -> Iterator[dict[str, Any]]:
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        day = path.stem[-10:]
        if first_day and day < first_day:
            continue
        with path.open("rb") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash mid-write
                if isinstance(record, dict):
                    yield record
