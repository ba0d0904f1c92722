"""Orders over FIX through the gateway's order path: every application message round trip,
with the ExecutionReport fields at each step, risk rejects, duplicate ClOrdIDs and a cancel
that races a fill. Two client sessions (accounts FA and FB) trade against each other."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fix_stack import RISK, start_fix_stack
from support.order_stack import OrderStack

from fix.client import FixClient
from fix.codec import Message, fix_time

SESSIONS = {"a": ("CA", "FA", "pa"), "b": ("CB", "FB", "pb")}
LIMITS = RISK + "\n[risk.accounts.FA]\nmax_order_qty = 5000\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_fix_stack(tmp_path_factory.mktemp("fixorders"), SESSIONS, risk=LIMITS)
    yield running
    running.stop()


def client(stack: OrderStack, comp: str, password: str) -> FixClient:
    assert stack.gateway is not None
    c = FixClient(
        "127.0.0.1", int(stack.gateway.info["fix_port"]), comp, "TICKDB", password=password
    )
    c.wait_logged_on()
    return c


@pytest.fixture(scope="module")
def fa(stack: OrderStack) -> Iterator[FixClient]:
    c = client(stack, "CA", "pa")
    yield c
    c.close()


@pytest.fixture(scope="module")
def fb(stack: OrderStack) -> Iterator[FixClient]:
    c = client(stack, "CB", "pb")
    yield c
    c.close()


def new(c: FixClient, clordid: str, side: int, qty: int, price: str, sym: str = "AAPL") -> None:
    c.send(
        "D",
        [
            (11, clordid),
            (55, sym),
            (54, side),
            (38, qty),
            (40, 2),
            (44, price),
            (59, 0),
            (60, fix_time()),
        ],
    )


def report(c: FixClient, clordid: str, exec_type: str, msg_type: str = "8") -> Message:
    return c.wait_for(
        lambda m: (
            m.msg_type == msg_type
            and m.get(11) == clordid
            and (msg_type != "8" or m.get(150) == exec_type)
        )
    )


def fields(m: Message, *tags: int) -> tuple[str, ...]:
    return tuple(m.get(t) for t in tags)


def test_new_fill_and_reports(fa: FixClient, fb: FixClient) -> None:
    new(fa, "n-buy", 1, 300, "10.00", sym="TSLA")
    ack = report(fa, "n-buy", "0")
    assert fields(ack, 39, 14, 151, 6, 1, 55, 54, 38, 44) == (
        "0",
        "0",
        "300",
        "0",
        "FA",
        "TSLA",
        "1",
        "300",
        "10",
    )
    assert ack.get(37) and ack.get(17)
    new(fb, "n-sell", 2, 100, "10.00", sym="TSLA")
    partial = report(fa, "n-buy", "F")
    assert fields(partial, 39, 32, 31, 14, 151, 6) == ("1", "100", "10", "100", "200", "10")
    sell = report(fb, "n-sell", "F")
    assert fields(sell, 39, 14, 151) == ("2", "100", "0")
    new(fb, "n-sell2", 2, 200, "9.99", sym="TSLA")
    full = fa.wait_for(lambda m: m.get(11) == "n-buy" and m.get(39) == "2")
    assert fields(full, 150, 32, 14, 151) == ("F", "200", "300", "0")


def test_cancel_replace_status(fa: FixClient) -> None:
    new(fa, "c-1", 1, 100, "5.00", sym="BAC")
    report(fa, "c-1", "0")
    fa.send(
        "G",
        [
            (11, "c-2"),
            (41, "c-1"),
            (55, "BAC"),
            (54, 1),
            (38, 150),
            (40, 2),
            (44, "5.01"),
            (60, fix_time()),
        ],
    )
    pending = report(fa, "c-2", "E")
    assert fields(pending, 39, 41) == ("E", "c-1")
    replaced = report(fa, "c-2", "5")
    assert fields(replaced, 39, 41, 38, 44, 151) == ("0", "c-1", "150", "5.01", "150")
    fa.send("H", [(11, "c-2"), (55, "BAC"), (54, 1), (790, "st-1")])
    status = report(fa, "c-2", "I")
    assert fields(status, 39, 790, 38) == ("0", "st-1", "150")
    fa.send("F", [(11, "c-3"), (41, "c-2"), (55, "BAC"), (54, 1), (60, fix_time())])
    assert report(fa, "c-3", "6").get(39) == "6"
    canceled = report(fa, "c-3", "4")
    assert fields(canceled, 39, 41, 151, 14) == ("4", "c-2", "0", "0")
    # Too late: the order is done.
    fa.send("F", [(11, "c-4"), (41, "c-2"), (55, "BAC"), (54, 1), (60, fix_time())])
    reject = report(fa, "c-4", "", msg_type="9")
    assert fields(reject, 102, 434, 39, 41) == ("0", "1", "4", "c-2")
    # Unknown order.
    fa.send("F", [(11, "c-5"), (41, "nope"), (55, "BAC"), (54, 1), (60, fix_time())])
    assert report(fa, "c-5", "", msg_type="9").get(102) == "1"
    fa.send("H", [(11, "nope"), (55, "BAC"), (54, 1)])
    assert report(fa, "nope", "I").get(39) == "8"


def test_risk_reject_and_duplicate_clordid(fa: FixClient) -> None:
    new(fa, "r-big", 1, 6000, "1.00", sym="META")
    rej = report(fa, "r-big", "8")
    assert fields(rej, 39, 103) == ("8", "3")
    assert rej.get(58).startswith("max_order_qty:")
    new(fa, "d-1", 1, 10, "1.00", sym="META")
    report(fa, "d-1", "0")
    start = len(fa.received)
    new(fa, "d-1", 2, 20, "1.50", sym="META")
    dup = fa.wait_for(lambda m: m.get(11) == "d-1" and m.get(150) == "8", start=start)
    assert dup.get(103) == "6" and "duplicate" in dup.get(58)
    # A cancel reusing a ClOrdID already taken.
    fa.send("F", [(11, "r-big"), (41, "d-1"), (55, "META"), (54, 1), (60, fix_time())])
    assert fa.wait_for(lambda m: m.msg_type == "9" and m.get(11) == "r-big").get(102) == "6"


def test_quantity_no_column_holds_is_a_reject_and_the_session_goes_on(fa: FixClient) -> None:
    # 10^20: above int64's range, which the reject's own record could not hold before.
    new(fa, "q-huge", 1, 10**20, "1.00", sym="META")
    rej = report(fa, "q-huge", "8")
    assert fields(rej, 39, 103) == ("8", "13")  # incorrect quantity
    assert rej.get(58).startswith("bad_quantity:") and str(10**20) in rej.get(58)
    new(fa, "q-after", 1, 10, "1.00", sym="META")
    assert report(fa, "q-after", "0").get(39) == "0"


def test_cancel_racing_a_fill(fa: FixClient, fb: FixClient) -> None:
    new(fa, "race-buy", 1, 100, "20.00", sym="GOOG")
    report(fa, "race-buy", "0")
    # In one batch: a sell that fills the buy, then the buy's cancel. The gateway sends
    # the cancel while the buy still looks working; the venue fills it first.
    new(fb, "race-sell", 2, 100, "20.00", sym="GOOG")
    fa.send("F", [(11, "race-cxl"), (41, "race-buy"), (55, "GOOG"), (54, 1), (60, fix_time())])
    filled = fa.wait_for(lambda m: m.get(11) == "race-buy" and m.get(150) == "F")
    assert filled.get(39) == "2"
    answer = fa.wait_for(
        lambda m: m.get(11) == "race-cxl" and m.msg_type in ("9", "8") and m.get(150) != "6"
    )
    assert answer.msg_type == "9" and fields(answer, 102, 39) == ("0", "2")


def test_mass_cancel(fa: FixClient) -> None:
    for i in range(3):
        new(fa, f"m-{i}", 1, 10, f"3.0{i}", sym="MSFT")
        report(fa, f"m-{i}", "0")
    fa.send("q", [(11, "mass-1"), (530, 1), (55, "MSFT"), (60, fix_time())])
    mass = fa.wait_for(lambda m: m.msg_type == "r" and m.get(11) == "mass-1")
    assert fields(mass, 530, 531, 533) == ("1", "1", "3")
    for i in range(3):
        assert report(fa, f"m-{i}", "4").get(39) == "4"
