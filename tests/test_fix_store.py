"""A FIX session's store across a crash: a sent application message's record moves the
sender sequence number on by itself (no ``seqnums`` write per message), so a process killed
at any point resumes past every message it sent and resends them all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fix_stack import RawFix, fix_port, nos, start_fix_stack
from support.harness import wait_until
from support.order_stack import OrderStack

from fix.codec import Field, encode, fix_time
from fix.store import FileStore, read_seqnums


def message(seq: int) -> bytes:
    header: list[Field] = [(49, "TICKDB"), (56, "C1"), (34, seq), (52, fix_time())]
    return encode("8", header, [(11, f"o{seq}"), (58, "line\nbreak")])


def test_a_crash_resumes_past_every_stored_message(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.set_next_sender(2)  # a Logon (admin) went out as 1
    store.set_next_target(5)
    sent = {seq: message(seq) for seq in (2, 3, 4)}
    for seq, raw in sent.items():
        store.save(seq, raw)
    assert store.next_sender == 5
    # Killed here: the store is never closed, ``seqnums`` still says 2.
    assert (tmp_path / "seqnums").read_text().split() == ["2", "5"]
    assert read_seqnums(tmp_path) == (5, 5)
    again = FileStore(tmp_path)
    assert (again.next_sender, again.next_target) == (5, 5)
    assert again.messages == sent
    # An admin message after the restart writes the numbers through.
    again.set_next_sender(again.next_sender + 1)
    again.close()
    assert (tmp_path / "seqnums").read_text().split() == ["6", "5"]
    assert FileStore(tmp_path).next_sender == 6


def test_the_target_number_is_written_once_per_sync(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for seq in (2, 3, 4):  # three messages of one read
        store.advance_target(seq)
    assert read_seqnums(tmp_path) == (1, 1)
    store.sync()
    assert read_seqnums(tmp_path) == (1, 4)
    store.advance_target(5)
    store.set_next_sender(2)  # an admin message writes both numbers
    assert read_seqnums(tmp_path) == (2, 5)


def test_close_writes_the_numbers_and_reset_forgets_the_messages(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.save(1, message(1))
    store.close()
    assert (tmp_path / "seqnums").read_text().split() == ["2", "1"]
    store = FileStore(tmp_path)
    store.reset()
    store.save(1, message(1))  # appended to the emptied file, not after the old records
    store.close()
    again = FileStore(tmp_path)
    assert (again.next_sender, list(again.messages)) == (2, [1])


def test_a_torn_last_record_is_dropped(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = message(1)  # kept: a message made again would carry a later SendingTime
    store.save(1, first)
    store.save(2, message(2))
    path = tmp_path / "messages"
    path.write_bytes(path.read_bytes()[:-5])  # killed inside the last write: never closed
    again = FileStore(tmp_path)
    # The torn message was never sent (a message is stored before it is sent): number 2
    # is free again, and the file ends with the last whole record.
    assert (list(again.messages), again.next_sender) == ([1], 2)
    assert path.read_bytes().endswith(first + b"\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_fix_stack(tmp_path_factory.mktemp("fix"), {"s1": ("C1", "F1", "pw1")})
    yield running
    running.stop()


def test_a_killed_gateway_resumes_the_sequence_and_resends_its_reports(
    stack: OrderStack,
) -> None:
    fix = RawFix(fix_port(stack), "C1")
    fix.logon("pw1")
    reports = []
    for i in range(3):
        fix.send("D", nos(f"kill-{i}", price="50"))
        reports.append(fix.expect(lambda m, c=f"kill-{i}": m.msg_type == "8" and m.get(11) == c))
    client_next = fix.seq
    # The target number reaches the disk after each read's batch went to the tickerplant.
    store_dir = stack.workdir / "fix" / "TICKDB-C1"
    wait_until(lambda: read_seqnums(store_dir) == (reports[-1].seq + 1, client_next))
    gw = stack.gateway
    assert gw is not None
    gw.kill9()  # no Logout, no clean close of the store
    fix.close()
    stack.start_gateway()
    fix = RawFix(fix_port(stack), "C1")
    fix.seq = client_next
    reply = fix.logon("pw1", reset=False)
    assert reply.msg_type == "A" and reply.seq == reports[-1].seq + 1
    fix.send("1", [(112, "after-kill")])  # answered in sequence: no gap, no ResendRequest
    answer = fix.read()
    assert answer is not None and (answer.msg_type, answer.get(112)) == ("0", "after-kill")
    fix.send("2", [(7, reports[0].seq), (16, 0)])
    for report in reports:
        again = fix.expect(lambda m, s=report.seq: m.seq == s and m.msg_type == "8")
        assert again.get(43) == "Y" and again.get(122) == report.get(52)
        assert again.get(11) == report.get(11) and again.get(17) == report.get(17)
    fix.send("5", [])
    fix.expect(lambda m: m.msg_type == "5")
