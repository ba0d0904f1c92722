"""Runs: consecutive small messages of one table, validated together and taken as one.

One reader (or, for one-row batches, one pass of array operations) and one validation for
many messages is most of what lets a tickerplant in Python keep up with single-row feeds.
Messages are never held back for it: in immediate mode a run ends with the turn of the
loop that received it. If anything in a run is wrong, its messages are taken one at a time
instead, so each bad one is refused with its own error and the rest go through, in order.
"""

from __future__ import annotations

from collections.abc import Callable

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


class RunBuilder:
    """Collects the current run; ``end()`` hands it on, validated, or message by message.

    ``accept`` takes one message on its own (validating it, refusing it if bad); ``take``
    takes a validated run with the publisher batches it carries and its receive time.
    The open run is plain attributes, not an object: one is made per turn of the loop.
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
        self._table: bytes | None = None  # the open run's table; None: no run is open
        self._has_time = False
        self._spans: list[memoryview] = []
        self._arrivals: list[Arrival] = []
        self._nbytes = 0

    @property
    def open_untimed(self) -> bool:
        """A run of rows waiting to be stamped with the receive time is open."""
        return self._table is not None and not self._has_time

    def offer(self, arrival: Arrival) -> bool:
        """Add a message to the run; False if it cannot join one (the caller takes it)."""
        table_name, received = arrival[3], arrival[4]
        if len(received) > SPLICE_MAX_BYTES:
            return False
        piece = self.validator.spliceable(table_name, received)
        if piece is None:
            return False
        has_time, span = piece
        if self._table is not None and (
            self._table != table_name or self._has_time != has_time or self._nbytes >= RUN_BYTES
        ):
            self.end()
        if self._table is None:
            self._table, self._has_time = table_name, has_time
        self._spans.append(span)
        self._arrivals.append(arrival)
        self._nbytes += len(span)
        return True

    def end(self) -> None:
        table_name, spans, arrivals = self._table, self._spans, self._arrivals
        if table_name is None:
            return
        self._table, self._spans, self._arrivals, self._nbytes = None, [], [], 0
        table = table_name.decode()  # a known table: spliceable() checked it
        now = self.clock.now_ns()
        if len(spans) > 1:
            validated = self.validator.validate_run(table, self._has_time, spans, now)
        else:
            validated = self.validator.validate_one(table, self._has_time, arrivals[0][4], now)
        if validated is None:
            for arrival in arrivals:
                self.accept(*arrival)
            return
        self.take(table, validated, [(p, b) for _, p, b, _, _ in arrivals], now)
