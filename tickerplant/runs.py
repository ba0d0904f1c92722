"""Runs: consecutive small messages of one table, validated together and taken as one.

One reader (or, for one-row batches, one pass of array operations) and one validation for
many messages is most of what lets a tickerplant in Python keep up with single-row feeds.
Messages are never held back for it: in immediate mode a run ends with the turn of the
loop that received it. If anything in a run is wrong, its messages are taken one at a time
instead, so each bad one is refused with its own error and the rest go through, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tickerplant.clock import Clock
from tickerplant.ingest import BatchValidator, Validated

# A run is ended once it holds about this many bytes: records stay modest.
RUN_BYTES = 1 << 20
# Messages up to this size can join a run; a bigger one has little framing to save and
# would only be copied into the run.
SPLICE_MAX_BYTES = 16 << 10

# identity, publisher, batch number, table name, payload: a message as it arrived
Arrival = tuple[bytes, bytes, int, bytes, memoryview]
Origins = list[tuple[bytes, int]]


@dataclass
class _Run:
    table_name: bytes
    has_time: bool
    spans: list[memoryview] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    nbytes: int = 0


class RunBuilder:
    """Collects the current run; ``end()`` hands it on, validated, or message by message.

    ``accept`` takes one message on its own (validating it, refusing it if bad); ``take``
    takes a validated run with the publisher batches it carries and its receive time.
    """

    def __init__(
        self,
        validator: BatchValidator,
        clock: Clock,
        accept: Callable[[bytes, bytes, int, bytes, memoryview], None],
        take: Callable[[str, Validated, Origins, int], None],
    ) -> None:
        self.validator = validator
        self.clock = clock
        self.accept = accept
        self.take = take
        self._run: _Run | None = None

    @property
    def open_untimed(self) -> bool:
        """A run of rows waiting to be stamped with the receive time is open."""
        return self._run is not None and not self._run.has_time

    def offer(self, arrival: Arrival) -> bool:
        """Add a message to the run; False if it cannot join one (the caller takes it)."""
        table_name, received = arrival[3], arrival[4]
        if len(received) > SPLICE_MAX_BYTES:
            return False
        piece = self.validator.spliceable(table_name, received)
        if piece is None:
            return False
        has_time, span = piece
        run = self._run
        if run is not None and (
            run.table_name != table_name or run.has_time != has_time or run.nbytes >= RUN_BYTES
        ):
            self.end()
            run = None
        if run is None:
            run = self._run = _Run(table_name, has_time)
        run.spans.append(span)
        run.arrivals.append(arrival)
        run.nbytes += len(span)
        return True

    def end(self) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        table = run.table_name.decode()  # a known table: spliceable() checked it
        now = self.clock.now_ns()
        validated = None
        if len(run.spans) > 1:
            validated = self.validator.validate_run(table, run.has_time, run.spans, now)
        if validated is None:
            for arrival in run.arrivals:
                self.accept(*arrival)
            return
        self.take(table, validated, [(p, b) for _, p, b, _, _ in run.arrivals], now)
