"""Exactly-once ingest: which publisher batches the journal already holds.

Each publisher numbers its batches 1, 2, 3, ... and sends with each batch ``base``, its
lowest unacknowledged number (everything below ``base`` was acknowledged, hence journaled).
The tickerplant accepts only the next batch in order, drops (and re-acknowledges) any it has
already journaled, and asks for a resend when one is missing, so a publisher that reconnects
and resends never doubles a row and never skips one. The state is rebuilt from the journal's
record origins at start-up. Publishers are known here by their public ids
(``publisher_ids``): what a publisher sends is a secret only it knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tickerplant.protocol import BODY_PREFIX, ORIGIN


class Verdict(Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


# A gap is asked for again only after this long: every batch that arrives behind a gap
# would otherwise ask for the whole window once more (a restart's resend storm).
RESEND_REPEAT_S = 0.5


@dataclass
class PublisherState:
    accepted: int = 0  # highest batch number accepted (maybe not yet journaled)
    journaled: int = 0  # highest batch number on disk: what acks report
    asked: int = 0  # the batch last asked for with RESEND
    asked_at: float = 0.0  # when (monotonic seconds)


class PublisherLedger:
    def __init__(self) -> None:
        self._publishers: dict[bytes, PublisherState] = {}

    def restore(self, publisher: bytes, batch: int) -> None:
        """Note a batch found in the journal at start-up."""
        state = self._publishers.setdefault(publisher, PublisherState())
        state.accepted = state.journaled = max(state.journaled, batch)

    def restore_record(self, body: bytes | memoryview) -> None:
        """Note every batch a journal record names (its origins), as a start-up scan does."""
        _kind, _v, name_len, n_origins, _seq, _ts = BODY_PREFIX.unpack_from(body, 0)
        pos = BODY_PREFIX.size + name_len
        for _ in range(n_origins):
            publisher, batch = ORIGIN.unpack_from(body, pos)
            self.restore(publisher, batch)
            pos += ORIGIN.size

    def check(self, publisher: bytes, batch: int, base: int) -> Verdict:
        state = self._publishers.get(publisher)
        if state is None:  # not setdefault: that would make a state per message
            state = self._publishers[publisher] = PublisherState()
        if base - 1 > state.accepted:
            # Batches below base were acknowledged before (e.g. by a previous session's
            # journal, or rejected as bad input): nothing to wait for below it.
            state.accepted = max(state.accepted, base - 1)
            state.journaled = max(state.journaled, base - 1)
        if batch <= state.accepted:
            return Verdict.DUPLICATE
        if batch != state.accepted + 1:
            return Verdict.OUT_OF_ORDER
        state.accepted = batch
        return Verdict.ACCEPT

    def expected(self, publisher: bytes) -> int:
        return self._publishers[publisher].accepted + 1

    def resend_request(self, publisher: bytes, now: float) -> int | None:
        """The batch to ask a resend from after an out-of-order batch, or None when the
        same gap was asked for within ``RESEND_REPEAT_S``."""
        state = self._publishers[publisher]
        expected = state.accepted + 1
        if state.asked == expected and now - state.asked_at < RESEND_REPEAT_S:
            return None
        state.asked, state.asked_at = expected, now
        return expected

    def journaled(self, publisher: bytes, batch: int) -> None:
        state = self._publishers[publisher]
        state.journaled = max(state.journaled, batch)

    def ack_level(self, publisher: bytes) -> int:
        return self._publishers[publisher].journaled

    def __len__(self) -> int:
        return len(self._publishers)

    def __contains__(self, publisher: bytes) -> bool:
        return publisher in self._publishers


def last_batch_per_publisher(origins: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
    """The origins a record of several batches names: each publisher's last batch (a
    publisher's batches are journaled in order, so the last one covers the rest).

    ``origins`` are in the order their batches were accepted, in which each publisher's
    numbers rise (``PublisherLedger.check``): so a dict of them keeps each publisher's
    highest, without a comparison per batch in Python."""
    return sorted(dict(origins).items())
