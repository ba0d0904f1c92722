"""Writes a gateway's order-state snapshots (``gateway.order_snapshot``), in a process of
its own.

The gateway starts it once its order path is ready (``launch``), handing it the config on
its stdin, and starts it again if it exits on its own (with a backoff, ``RESTART``); it
stops when that pipe closes, i.e. when the gateway stops or dies (kill -9 included). It
restores the newest usable snapshot, follows the journal's whole order flow from there
(``ORDER_FLOW``, every gateway's requests and admin rows, as a rebuild does:
``gateway.flow_apply``) and, every ``every_inputs`` records and/or ``every_s`` seconds,
between two runs of records, snapshots the state at the seq of the last record applied: a
forked child pickles and writes it (``VenueSnapshots.take``) while this process goes on.

The gateway's order thread takes no part: it pauses for no snapshot. What it costs is this
process's CPU (applying the flow a second time, ~the rebuild's cost spread over the day, and
a fork and a pickle per snapshot), which competes with the order path on a small host (it
runs ``NICE`` steps below normal so that the order path wins), and memory (a second copy of
the order state).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import pickle
import subprocess
import sys
import threading
import time
from typing import IO, Any, cast

from gateway.flow_apply import FlowApplier
from gateway.order_router import OrderRouter
from gateway.order_snapshot import capture, restore_newest, settings_of, snapshots_for, stamp_of
from gateway.order_stream import ORDER_FLOW, REPLAY_RUN
from gateway.peer_requests import PeerRequests
from gateway.venue_activity import VenueActivity
from orders.risk import risk_engine
from orders.snapshot import SnapshotSettings, VenueSnapshots
from tickdb.logs import setup_logging
from tickdb.supervise import RestartPolicy
from tickerplant.publisher import Publisher
from tickerplant.subscriber import EndOfDay, Message, Subscriber, Update

log = logging.getLogger(__name__)


NICE = 10  # background work: the order path (the gateway, venues) wins the CPU
_START = (
    f"import os\nif hasattr(os, 'nice'): os.nice({NICE})\n"
    "from gateway.order_snapshotter import main\nmain()"
)


# A writer that exits on its own (killed, out of memory, a bug) is started again as ``tickdb
# up`` starts its components again, more slowly: it is background work.
RESTART = RestartPolicy(backoff_s=1.0, backoff_max_s=60.0, reset_after_s=60.0)


class Snapshotter:
    """The gateway's handle on its snapshot writer process, which it keeps running."""

    def __init__(self, cfg: Any, tp_address: str) -> None:
        self._args = pickle.dumps((cfg, tp_address))
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._start()
        self._watch = threading.Thread(target=self._keep, name="snapshot-writer", daemon=True)
        self._watch.start()

    def _start(self) -> None:
        # Niced before its imports: its start-up is a burst of CPU beside a gateway just
        # ready (``docs/benchmarks.md``).
        self.proc = subprocess.Popen([sys.executable, "-c", _START], stdin=subprocess.PIPE)
        self._pipe = cast(IO[bytes], self.proc.stdin)
        self._pipe.write(self._args)
        self._pipe.flush()  # kept open: closed, it tells the process to stop
        self._started = time.monotonic()

    def _keep(self) -> None:
        delay = RESTART.backoff_s
        while not self._stopping.is_set():
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started >= RESTART.reset_after_s:
                delay = RESTART.backoff_s
            log.warning(
                "gateway snapshot writer (pid %d) exited with %s; starting it again in %.0f s",
                self.proc.pid,
                code,
                delay,
            )
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                with contextlib.suppress(OSError):
                    self._pipe.close()
                self._start()
            delay = min(delay * 2, RESTART.backoff_max_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop it, letting a snapshot being written finish (a while)."""
        with self._lock:
            self._stopping.set()
        with contextlib.suppress(OSError):
            self._pipe.close()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def launch(cfg: Any, tp_address: str) -> Snapshotter | None:
    """The snapshot writer when ``orders.gateway_snapshot_*`` turn it on; else None."""
    if SnapshotSettings.for_gateway(cfg) is None:
        return None
    return Snapshotter(cfg, tp_address)


def run(
    cfg: Any,
    tp_address: str,
    stop: threading.Event,
    timeout_s: float = 10.0,
    until_seq: int | None = None,
) -> VenueSnapshots | None:
    """Follow the order flow and write snapshots until ``stop`` is set (or, with
    ``until_seq``, a benchmark's, until the flow is applied up to that seq, where one more
    is written); its snapshots."""
    settings = SnapshotSettings.for_gateway(cfg)
    if settings is None:
        return None
    risk = risk_engine(cfg)
    # It never sends anything: a router only to hold and apply the state.
    router = OrderRouter(risk, cast(Publisher, None))
    applier = FlowApplier(router, PeerRequests(router), VenueActivity())
    snapshots = snapshots_for(settings, risk)
    shaped_by = settings_of(risk)
    state = restore_newest(applier, snapshots, tp_address, timeout_s)
    start_seq = 0 if state is None else int(state["seq"])
    flow = Subscriber(
        tp_address, tables=ORDER_FLOW, start=start_seq or "journal", timeout_s=timeout_s
    )
    hello = flow.hello
    # The seq of the end-of-day record that started the day of the last record applied
    # (``order_snapshot.refusal``); from before the current day's start, the replay holds it.
    if state is not None:
        day = int(state["session_start_seq"])
    else:
        day = hello.session_start_seq if start_seq >= hello.session_start_seq else 0
    records = snapshots.counted_inputs
    log.info("gateway order snapshots: following the order flow from seq %d", start_seq)
    last: Update | None = None  # the last record applied, when it may be snapshot
    try:
        while not stop.is_set():
            messages = _next_run(flow)
            if messages:
                _apply(applier, messages)
                records += len(messages)
                for message in messages:
                    if isinstance(message, EndOfDay):
                        day = message.seq
                last = messages[-1] if isinstance(messages[-1], Update) else None
            else:
                snapshots.poll()
            if last is not None and snapshots.due(records, last.seq):
                since = time.perf_counter()
                taken = capture(applier, shaped_by, stamp_of(last), day, records)
                snapshots.take(last.seq, records, taken, since)
            if until_seq is not None and messages and messages[-1].seq >= until_seq:
                # A benchmark's end: a snapshot there, once the one at work is written.
                snapshots.close()
                if last is not None:
                    taken = capture(applier, shaped_by, stamp_of(last), day, records)
                    snapshots.take(last.seq, records, taken, time.perf_counter())
                break
    finally:
        snapshots.close()
        flow.close()
    return snapshots


def _next_run(flow: Subscriber) -> list[Message]:
    """What has arrived, up to ``REPLAY_RUN`` records (waiting 0.2 s for one at most)."""
    messages: list[Message] = []
    if not flow.pending:
        message = flow.poll(0.2)
        if message is not None:
            messages.append(message)
    while flow.pending and len(messages) < REPLAY_RUN:
        message = flow.poll_now()
        if message is not None:
            messages.append(message)
    return messages


def _apply(applier: FlowApplier, messages: list[Message]) -> None:
    """A run of records, as ``OrderStream._apply_replayed`` applies them: the collector off
    meanwhile, what stays frozen after (fewer full collections over a day's state, and
    fewer pages a forked writer copies)."""
    read = applier.read_run(messages)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for message in messages:
            try:
                applier.apply(message, read.get(message.seq))
            except Exception:  # one bad row must not stop the snapshots
                log.exception("order flow message %r not applied", message)
    finally:
        if enabled:
            gc.enable()
            gc.collect(0)
            gc.freeze()


def _until_eof(stop: threading.Event) -> None:
    try:
        sys.stdin.buffer.read()
    finally:
        stop.set()


def main() -> None:
    cfg, tp_address = pickle.load(sys.stdin.buffer)
    setup_logging()
    stop = threading.Event()
    threading.Thread(target=_until_eof, args=(stop,), daemon=True).start()
    run(cfg, tp_address, stop)
