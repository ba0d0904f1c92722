"""A venue of a primary/standby pair: both apply the same sequenced input, one publishes.

``tickdb venue --lease`` (the primary) and ``tickdb venue --standby`` run this for one shard.
Both replay the journal and follow ``order_request`` (and ``quote`` in paper mode) exactly as
a lone venue does, so their books are identical; they also follow their shard's own
``order`` and ``fill`` rows. Every output batch is kept in ``pending`` until its row comes
back from the tickerplant (journaled): what is pending is exactly what the pair has not yet
journaled, the restart path's ``in_seq`` rule applied continuously.

The holder of the shard's lease (``tickdb.lease``) publishes; the other only computes. When
the holder dies (its ``alive`` lock freed) or stops renewing for ``ttl_s`` (frozen), the
standby takes epoch + 1, publishes its pending batches and from then on everything.

Fencing at the tickerplant: both venues publish under one publisher id (a secret kept in the
lease directory) and number their output batches alike, 1, 2, 3, ... from the start of the
journal (the outputs are a function of it). The tickerplant's exactly-once ledger
(``tickerplant.dedup``) accepts each number once: a batch the dead or frozen primary had
handed to the network, arriving after the new primary sent the same number (or before it),
is journaled once. So a takeover racing the old primary's last bytes, or a frozen primary
resumed with batches in its sockets, doubles nothing; the epoch check then makes the resumed
one step down to standby before it publishes anything new.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from orders.model import Event, Fill
from orders.rows import EVENT_SCHEMA, FILL_SCHEMA, encode_rows, event_row, fill_row
from orders.venue import Output, Venue
from tickdb.durable import write_atomic
from tickdb.gc_pauses import keep_pauses_short
from tickdb.lease import Lease
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Update

log = logging.getLogger(__name__)

CHECK_S = 0.01  # how often a standby looks at the lease (its takeover delay on a SIGKILL)


@dataclass
class Batch:
    number: int  # the pair's batch number (the tickerplant's dedup key)
    seq: int  # in_seq: the input that caused it
    table: str
    payload: bytes


class NumberedPublisher(Publisher):
    """A publisher whose next batch is number ``first``: everything below it is journaled
    (the pair's earlier batches), so the tickerplant is told to wait for none of them."""

    def start_at(self, first: int) -> None:
        with self._lock:
            self._next_batch = self._cursor = self._sent_high = first
            self._acked = first - 1


def pair_secret(directory: Path, key: str) -> bytes:
    """The pair's publisher id, made once by whichever venue starts first (kept as a password
    is: whoever has it publishes as the venue)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.publisher"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        tmp = directory / f".{key}.publisher.{os.getpid()}"
        tmp.write_text(os.urandom(16).hex())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # create-if-absent, whole: the other venue may race us
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return bytes.fromhex(path.read_text().strip())


class PairedVenue(Venue):
    def __init__(
        self,
        *args: Any,
        lease_dir: Path,
        name: str,
        ttl_s: float = 0.3,
        **kwargs: Any,
    ) -> None:
        self.pending: deque[Batch] = deque()
        self.batches = 0  # output batches computed so far: the last one's number
        self.journaled = {"order": 0, "fill": 0}  # highest in_seq of ours seen journaled
        self.name = name
        self.lease_dir = lease_dir
        super().__init__(*args, **kwargs)
        key = f"venue-{self.shard.index}-of-{self.shard.count}"
        self.secret = pair_secret(lease_dir, key)
        self.lease = Lease(lease_dir, key, f"{name}:{os.getpid()}", ttl_s)
        self.role_path = lease_dir / f"{name}.role.json"
        self.took_over_at: float | None = None  # time.time() of the last takeover
        self.first_output_at: float | None = None  # ... and of the first batch after it
        self.role = ""
        self._publisher: NumberedPublisher | None = None
        self._beat_stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="lease-beat")
        self.book_path = lease_dir / f"{name}.book.json"
        self._book_wanted = threading.Event()

    # -- hooks of Venue -----------------------------------------------------------------------
    def _published_upto(self, after: int) -> dict[str, int]:
        # Nothing is published from the replay: pending learns what is journaled as it goes.
        return {"order": 1 << 62, "fill": 1 << 62}

    def _extra_tables(self) -> list[str]:
        return ["order", "fill"]

    def _snapshot_key(self) -> str:
        return f"venue-{self.shard.index}-of-{self.shard.count}-pair"

    def _snapshot_extra(self) -> dict[str, Any]:
        # No flush: what is not journaled yet is ``pending``, kept in the snapshot (the
        # journal after it brings the rows that take batches off, as it did the first time).
        return {
            "pending": [(b.number, b.seq, b.table, b.payload) for b in self.pending],
            "batches": self.batches,
            "journaled": dict(self.journaled),
        }

    def _maybe_snapshot(self) -> None:
        # The standby writes them (the pair's states are equal), so the primary, which
        # answers the orders, never pauses for one; a primary without a standby takes none.
        if self._publisher is None:
            super()._maybe_snapshot()
        elif self.snapshots is not None:
            self.snapshots.poll()  # one it began as the standby: reaped, and logged

    def _restore_extra(self, state: dict[str, Any]) -> None:
        self.pending = deque(Batch(*fields) for fields in state["pending"])
        self.batches = int(state["batches"])
        self.journaled = {name: int(top) for name, top in state["journaled"].items()}

    def _publish(self, seq: int, outputs: list[Output]) -> None:
        events = [event_row(o, self.label, seq) for o in outputs if isinstance(o, Event)]
        fills = [fill_row(o, self.label, seq) for o in outputs if isinstance(o, Fill)]
        if events:
            self._add(Batch(0, seq, "order", encode_rows(events, EVENT_SCHEMA)))
        if fills:
            self._add(Batch(0, seq, "fill", encode_rows(fills, FILL_SCHEMA)))

    # -- output -------------------------------------------------------------------------------
    def _add(self, batch: Batch) -> None:
        self.batches += 1
        batch.number = self.batches
        self.pending.append(batch)
        if self._publisher is not None:
            if self.lease.fresh() or self.lease.renew():
                self._send(batch)
            else:
                self._become_standby()

    def _send(self, batch: Batch) -> None:
        assert self._publisher is not None
        number = self._publisher.publish_ipc(batch.table, batch.payload)
        if number != batch.number:  # never expected: the numbering is the fencing
            log.error("venue %s: batch %d went out as %d", self.label, batch.number, number)
        if self.first_output_at is None:
            self.first_output_at = time.time()
            self._write_role()

    def _on_output(self, message: Update) -> None:
        data = message.data
        mine = data.filter(pa.compute.equal(data.column("venue"), self.label))
        if not mine.num_rows:
            return
        top = int(pa.compute.max(mine.column("in_seq")).as_py() or 0)
        table = message.table
        self.journaled[table] = max(self.journaled[table], top)
        pending, journaled = self.pending, self.journaled
        while pending and pending[0].seq <= journaled[pending[0].table]:
            pending.popleft()

    def step(self, timeout_s: float) -> bool:
        message = self._sub.poll(timeout_s)
        if message is None:
            return False
        if isinstance(message, Update) and message.table in ("order", "fill"):
            self._on_output(message)
            return True
        outputs = self.apply(message)
        if outputs:
            self._publish(message.seq, outputs)
        self.processed_seq = message.seq
        return True

    # -- roles --------------------------------------------------------------------------------
    def _become_primary(self) -> None:
        self.took_over_at = time.time()
        self.first_output_at = None
        # What the journal holds so far: everything queued here, before choosing the first
        # number (the fencing makes a late row of the old primary harmless anyway).
        while self.step(0):
            pass
        first = self.pending[0].number if self.pending else self.batches + 1
        publisher = NumberedPublisher(
            self.tp_address, timeout_s=self.timeout_s, publisher_id=self.secret
        )
        publisher.start_at(first)
        self._publisher = publisher
        self.role = "primary"
        self._write_role()
        log.warning(
            "venue %s (%s): primary, epoch %d, from batch %d (%d pending)",
            self.label,
            self.name,
            self.lease.epoch,
            first,
            len(self.pending),
        )
        for batch in list(self.pending):
            self._send(batch)
        publisher.flush(self.timeout_s)

    def _become_standby(self) -> None:
        was_primary = self._publisher is not None
        if self._publisher is not None:
            self._publisher.close(flush=False)  # a fenced primary sends nothing more
            self._publisher = None
        self.lease.step_down()
        if was_primary:  # before the role file, which is what others watch
            log.warning("venue %s (%s): fenced, now standby", self.label, self.name)
        self.role = "standby"
        self.took_over_at = self.first_output_at = None  # those of the next takeover
        self._write_role()

    def _write_role(self) -> None:
        state, _ = self.lease.read()
        body = {
            "role": self.role,
            "epoch": self.lease.epoch or (state.epoch if state else 0),
            "pid": os.getpid(),
            "took_over_at": self.took_over_at,
            "first_output_at": self.first_output_at,
        }
        write_atomic(self.role_path, json.dumps(body), durable=False)

    def write_book(self) -> None:
        """``<name>.book.json``: the book's digest at the last input applied, so that the
        pair's books can be compared (equal at the same ``seq``: equal books); written on
        SIGUSR1, between two inputs, for ``scripts/chaos.py``."""
        snapshot = self.engine.snapshot()
        body = {
            "seq": self.processed_seq,
            "role": self.role,
            "open_orders": len(snapshot),
            "digest": hashlib.sha256(repr(snapshot).encode()).hexdigest(),
        }
        write_atomic(self.book_path, json.dumps(body), durable=False)

    def _heartbeat(self) -> None:
        while not self._beat_stop.wait(self.lease.ttl_s / 6):
            if self._publisher is not None and self.lease.holds():
                self.lease.renew()

    def _turn(self) -> None:
        """Between inputs: a standby checks the lease; a primary that lost it steps down."""
        if self._publisher is None:
            if self.lease.vacant() and self.lease.acquire():
                self._become_primary()
        elif not self.lease.holds():
            self._become_standby()

    def run(self, stop: threading.Event, on_ready: Callable[[], Any] | None = None) -> None:
        self.catch_up()
        # As a lone venue's run does: the books grow all day, and a full collection visiting
        # them all paused the pair for longer as the day went on (takeovers included).
        keep_pauses_short()
        self.role = "standby"
        self._turn()
        if self._publisher is None:
            self._write_role()
        log.info(
            "venue %s (%s) ready at seq %d as %s: %d open orders, %d pending",
            self.label,
            self.name,
            self.processed_seq,
            self.role,
            len(self.engine.open_orders()),
            len(self.pending),
        )
        if on_ready is not None:
            on_ready()
        self._beat.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, lambda *_: self._book_wanted.set())
        next_check = 0.0
        while not stop.is_set():
            self.step(CHECK_S)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + CHECK_S
                self._turn()
            if self._book_wanted.is_set():
                self._book_wanted.clear()
                self.write_book()
            self._maybe_snapshot()

    def close(self) -> None:
        self._beat_stop.set()
        try:
            if self._publisher is not None:
                self._publisher.close(flush=True)
        finally:
            self.lease.close()
            self._sub.close()
            self._pub.close(flush=False)
            if self.snapshots is not None:
                self.snapshots.close()
