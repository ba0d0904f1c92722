"""Replay over the network: journal records from seq A to B for any subscriber, any host.

This is r.q's ``.u.rep`` without a shared filesystem, and the Clone pattern's snapshot: the
subscriber asks for ``after < seq <= upto`` with its selection, gets the records exactly as
live subscribers got them, then continues live without gap or duplicate. Runs on its own
thread and socket so a long replay never stalls ingest.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import zmq

from tickdb.auth import Identity
from tickdb.curve_links import CurveLinks, user_id
from tickdb.listen import bind
from tickdb.schema import TableSchema
from tickdb.types import Shard
from tickerplant.access import TickerplantAccess
from tickerplant.journal import (
    JournalCorrupt,
    JournalIndex,
    journal_files,
    read_journal,
    read_journal_encoded,
)
from tickerplant.protocol import (
    CHUNK,
    END,
    ERR,
    REPLAY,
    U64,
    Record,
    TopicFilter,
    encode_record,
)
from tickerplant.pubsub import MAX_BLOB_BYTES, ShardMap, select_rows

log = logging.getLogger(__name__)


def parse_request(
    raw: bytes, schemas: dict[str, TableSchema], current_seq: int
) -> tuple[int, int, TopicFilter]:
    request = json.loads(raw)
    after = int(request.get("after", 0))
    upto = min(int(request.get("upto", current_seq)), current_seq)
    tables = request.get("tables")
    syms = request.get("syms")
    shard = request.get("shard")
    accounts = request.get("accounts")
    empty_syms = bool(request.get("empty_syms", False))
    not_from = request.get("not_from")
    unknown = sorted(set(tables or ()) - set(schemas))
    if unknown:
        raise ValueError(f"unknown tables {unknown}")
    if sum(x is not None for x in (syms, shard, accounts)) > 1:
        raise ValueError("select by syms, by shard or by accounts: one of them")
    if empty_syms and shard is None:
        raise ValueError("empty_syms selects rows beside a shard's: give the shard")
    selection = TopicFilter(
        frozenset(tables) if tables else None,
        frozenset(syms) if syms is not None else None,
        Shard.of(shard) if shard is not None else None,
        frozenset(accounts) if accounts is not None else None,
        empty_syms,
        bytes.fromhex(not_from) if not_from is not None else None,
    )
    return after, upto, selection


class JournalSource:
    """Reads records across the day files of a journal directory."""

    def __init__(
        self, journal_dir: Path, index: JournalIndex, live_path: Callable[[], Path | None]
    ) -> None:
        self.journal_dir = journal_dir
        self.index = index
        self.live_path = live_path
        self._first_seq: dict[Path, int | None] = {}

    def _first(self, path: Path, live: bool) -> int | None:
        if path in self._first_seq:
            return self._first_seq[path]
        first = next((r.seq for r in read_journal(path, live=live)), None)
        if first is not None:
            self._first_seq[path] = first
        return first

    def records(self, after: int, upto: int) -> Iterator[tuple[Record, memoryview | bytes]]:
        files = [p for _, p in journal_files(self.journal_dir)]
        live = self.live_path()
        # Newest first: find the last file that starts at or before the first wanted seq.
        start = 0
        for i in range(len(files) - 1, -1, -1):
            first = self._first(files[i], files[i] == live)
            if first is not None and first <= after + 1:
                start = i
                break
        for path in files[start:]:
            is_live = path == live
            offset = self.index.seek_offset(path, after)
            for record, stored in read_journal_encoded(path, after, upto, offset, live=is_live):
                yield record, stored
                after = record.seq
            if after >= upto:
                return


class ReplayServer:
    def __init__(
        self,
        ctx: zmq.Context,
        address: str,
        source: JournalSource,
        schemas: dict[str, TableSchema],
        current_seq: Callable[[], int],
        curve: CurveLinks | None = None,
        *,
        max_frame_bytes: int = 1 << 20,
    ) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # A request is a few hundred bytes of JSON: a client sending a frame over this is
        # disconnected at the frame's header, none of it buffered (ingest_limits).
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.SNDTIMEO, 10_000)  # a client that stops reading is dropped
        # CURVE: identities with a read role get in, and each request is checked per table.
        self.access: TickerplantAccess | None = None
        if curve is not None and curve.serve(self.socket, "replay", ("read", "trade")):
            self.access = TickerplantAccess(curve, schemas)
        bind(self.socket, address, "tickerplant.replay_address")
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.source = source
        self.schemas = schemas
        self.current_seq = current_seq
        self.shards = ShardMap()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self.requests = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close(0)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            who: Identity | None = None
            if self.access is None:
                frames = self.socket.recv_multipart()
            else:
                parts = self.socket.recv_multipart(copy=False)
                who = self.access.identity(user_id(parts[0]))
                frames = [p.bytes for p in parts]
            identity = frames[0]
            try:
                self._serve(identity, frames[1:], who)
            except zmq.ZMQError as exc:
                log.warning("replay client went away: %s", exc)

    def _serve(self, identity: bytes, frames: list[bytes], who: Identity | None = None) -> None:
        self.requests += 1
        if len(frames) != 2 or frames[0] != REPLAY:
            self.errors += 1
            self._error(
                identity,
                f"malformed replay request: expected [REPLAY, json], got {len(frames)} frames",
            )
            return
        try:
            after, upto, selection = parse_request(frames[1], self.schemas, self.current_seq())
        except (ValueError, TypeError, KeyError) as exc:
            self.errors += 1
            self._error(identity, f"bad replay request: {exc}")
            return
        if self.access is not None and (denied := self.access.selection(who, selection)):
            self.errors += 1
            name = who.name if who is not None else "?"
            self._error(identity, f"forbidden: {name!r} may not read {denied}")
            return
        blob: list[bytes | memoryview] = []
        size = 0
        try:
            for record, stored in self.source.records(after, upto):
                picked = select_rows(selection, record, self.shards, self.schemas)
                if picked is None:
                    continue
                # A record the selection takes whole goes out exactly as the journal holds it.
                encoded = (
                    stored
                    if picked is record
                    else encode_record(
                        picked.kind,
                        picked.seq,
                        picked.ts_recv,
                        picked.table,
                        picked.origins,
                        picked.payload,
                    )
                )
                blob.append(encoded)
                size += len(encoded)
                if size >= MAX_BLOB_BYTES:
                    self.socket.send_multipart([identity, CHUNK, b"".join(blob)])
                    blob, size = [], 0
        except JournalCorrupt as exc:
            self.errors += 1
            self._error(identity, str(exc))
            return
        except OSError as exc:
            # No descriptor left to open a journal file (EMFILE), say: this request fails,
            # the replay thread goes on serving (it used to end here, for good).
            self.errors += 1
            self._error(identity, f"cannot read the journal now, try again: {exc}")
            return
        if blob:
            self.socket.send_multipart([identity, CHUNK, b"".join(blob)])
        self.socket.send_multipart([identity, END, U64.pack(max(after, upto))])

    def _error(self, identity: bytes, message: str) -> None:
        log.warning("%s", message)
        self.socket.send_multipart([identity, ERR, message.encode()])
