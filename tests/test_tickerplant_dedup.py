"""The exactly-once ledger (``tickerplant.dedup``), verdict by verdict, as tables.

Each row is one publisher's history as the tickerplant saw it (batches found in the journal
at start-up, batches taken since and how many of those are journaled), then one arriving
batch with its ``base`` (the publisher's lowest unacknowledged batch): the verdict, the
batch the ledger waits for next, and the level an ACK reports. See docs/protocol.md,
"Exactly once".
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tickerplant.dedup import RESEND_REPEAT_S, PublisherLedger, Verdict

A, B = b"A" * 16, b"B" * 16
ACCEPT, DUPLICATE, OUT_OF_ORDER = Verdict.ACCEPT, Verdict.DUPLICATE, Verdict.OUT_OF_ORDER


@dataclass(frozen=True)
class Case:
    name: str
    batch: int  # the arriving batch ...
    base: int  # ... and the base it carries
    verdict: Verdict
    waits_for: int  # the batch taken next, afterwards
    ack: int  # what an ACK reports, afterwards
    restored: tuple[int, ...] = ()  # batches of this publisher found in the journal at start
    taken: tuple[int, ...] = ()  # then batches taken since, in order (base 1) ...
    on_disk: int | None = None  # ... of which those up to here are journaled (default: all)


CASES = [
    # -- in order
    Case("a new publisher's first batch is taken", 1, 1, ACCEPT, 2, 0),
    Case("the next batch in order is taken", 3, 1, ACCEPT, 4, 2, taken=(1, 2)),
    Case("a base behind the ledger changes nothing", 4, 2, ACCEPT, 5, 3, taken=(1, 2, 3)),
    # -- duplicates: dropped, and acknowledged again by the tickerplant
    Case("a resend of a journaled batch", 2, 1, DUPLICATE, 4, 3, taken=(1, 2, 3)),
    Case("a resend of the last batch taken", 3, 1, DUPLICATE, 4, 3, taken=(1, 2, 3)),
    Case(
        "a resend of a batch taken but not journaled yet",
        2,
        1,
        DUPLICATE,
        3,
        1,
        taken=(1, 2),
        on_disk=1,
    ),
    # -- gaps: the tickerplant asks for a resend; the ledger keeps waiting for the missing one
    Case("a batch after a gap", 3, 1, OUT_OF_ORDER, 2, 1, taken=(1,)),
    Case("a new publisher whose first batch was lost", 2, 1, OUT_OF_ORDER, 1, 0),
    # -- base: every batch below it was acknowledged, so there is nothing to wait for there
    Case("a publisher acknowledged by an earlier session, new here", 5, 5, ACCEPT, 6, 4),
    Case("a base past the ledger, with a gap after it", 6, 4, OUT_OF_ORDER, 4, 3, taken=(1,)),
    Case("a batch below its own base", 3, 5, DUPLICATE, 5, 4, taken=(1,)),
    # -- restart: the state comes back from the record origins in the journal
    Case("after a restart, a resend of a journaled batch", 7, 3, DUPLICATE, 8, 7, restored=(7,)),
    Case("after a restart, the batch after the journal's last", 8, 3, ACCEPT, 9, 7, restored=(7,)),
    Case("after a restart, a batch lost in the crash", 9, 8, OUT_OF_ORDER, 8, 7, restored=(7,)),
    Case(
        "after a restart the journal's highest batch counts, whatever the record order",
        6,
        1,
        DUPLICATE,
        8,
        7,
        restored=(3, 7, 5),
    ),
    Case(
        "after a restart, batches taken since",
        9,
        1,
        ACCEPT,
        10,
        8,
        restored=(7,),
        taken=(8,),
    ),
]


def ledger_for(case: Case) -> PublisherLedger:
    ledger = PublisherLedger()
    for batch in case.restored:
        ledger.restore(A, batch)
    for batch in case.taken:
        assert ledger.check(A, batch, 1) is ACCEPT, f"history: batch {batch}"
    if case.taken:
        ledger.journaled(A, case.taken[-1] if case.on_disk is None else case.on_disk)
    return ledger


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict(case: Case) -> None:
    ledger = ledger_for(case)
    assert ledger.check(A, case.batch, case.base) is case.verdict
    assert ledger.expected(A) == case.waits_for
    assert ledger.ack_level(A) == case.ack


def test_a_verdict_is_final_the_same_batch_again_is_a_duplicate() -> None:
    ledger = PublisherLedger()
    assert [ledger.check(A, 1, 1), ledger.check(A, 1, 1)] == [ACCEPT, DUPLICATE]


def test_publishers_are_counted_apart() -> None:
    ledger = PublisherLedger()
    for batch in (1, 2, 3):
        ledger.check(A, batch, 1)
    ledger.journaled(A, 3)
    assert ledger.check(B, 1, 1) is ACCEPT  # B's batch 1 is not A's
    assert ledger.check(B, 3, 1) is OUT_OF_ORDER
    assert (ledger.expected(A), ledger.expected(B)) == (4, 2)
    assert (ledger.ack_level(A), ledger.ack_level(B)) == (3, 0)
    assert len(ledger) == 2


def test_the_ack_level_never_goes_down() -> None:
    ledger = PublisherLedger()
    for batch in (1, 2, 3):
        ledger.check(A, batch, 1)
    levels = []
    for batch in (2, 3, 1, 3):  # journaled out of order: a later record's origins first
        ledger.journaled(A, batch)
        levels.append(ledger.ack_level(A))
    assert levels == [2, 3, 3, 3]


# A publisher that took batch 1 and then sends batches behind a gap at these times (seconds); a
# number in the steps is a batch arriving in order in between. What each arrival behind a
# gap asks for: the batch to resend from, or None (asked for within RESEND_REPEAT_S).
R = RESEND_REPEAT_S
RESENDS = [
    ("the first arrival behind a gap asks from the missing batch", [0.0], [2]),
    ("arrivals behind the gap soon after ask nothing", [0.0, 0.1, R - 0.01], [2, None, None]),
    ("the gap is asked again after the repeat time", [0.0, R, R + 0.1, 2 * R], [2, 2, None, 2]),
    ("a new gap, once the old one is filled, is asked for at once", [0.0, 2, 0.1], [2, 3]),
]


@pytest.mark.parametrize(("steps", "asked"), [r[1:] for r in RESENDS], ids=[r[0] for r in RESENDS])
def test_resend_requests(steps: list[float | int], asked: list[int | None]) -> None:
    ledger = PublisherLedger()
    assert ledger.check(A, 1, 1) is ACCEPT
    got: list[int | None] = []
    for step in steps:
        if isinstance(step, int):
            assert ledger.check(A, step, 1) is ACCEPT
            continue
        assert ledger.check(A, ledger.expected(A) + 5, 1) is OUT_OF_ORDER
        got.append(ledger.resend_request(A, 100.0 + step))
    assert got == asked
