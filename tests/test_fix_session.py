"""The FIX session layer of the gateway's acceptor, driven over loopback by hand-built frames:
logon and logout, passwords, heartbeats and timeouts, gaps and resends both ways, PossDup,
malformed messages, and a gateway restart that continues the sequence."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fix_stack import RawFix, fix_port, nos, start_fix_stack
from support.order_stack import OrderStack

from fix.codec import encode, fix_time

SESSIONS = {
    "s1": ("C1", "F1", "pw1"),
    "s2": ("C2", "F2", "pw2"),
    "s3": ("C3", "F3", "pw3"),
    "s4": ("C4", "F4", "pw4"),
    "s5": ("C5", "F5", "pw5"),
    "s6": ("C6", "F6", "pw6"),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_fix_stack(tmp_path_factory.mktemp("fix"), SESSIONS)
    yield running
    running.stop()


def connect(stack: OrderStack, comp: str) -> RawFix:
    return RawFix(fix_port(stack), comp)


def test_logon_and_logout(stack: OrderStack) -> None:
    fix = connect(stack, "C1")
    reply = fix.logon("pw1")
    assert reply.msg_type == "A" and reply.get(141) == "Y" and reply.seq == 1
    assert reply.get(49) == "TICKDB" and reply.get(56) == "C1" and reply.get(108) == "30"
    fix.send("5", [(58, "bye")])
    assert fix.expect(lambda m: m.msg_type == "5").seq == 2
    assert fix.closed()


def test_wrong_password_is_refused(stack: OrderStack) -> None:
    fix = connect(stack, "C1")
    reply = fix.logon("wrong")
    assert reply.msg_type == "5" and "password" in reply.get(58)
    assert fix.closed()
    unknown = connect(stack, "NOBODY")
    unknown.send("A", [(98, 0), (108, 30), (554, "x")])
    assert unknown.closed()


def test_test_request_is_answered_and_silent_peer_is_dropped(stack: OrderStack) -> None:
    fix = connect(stack, "C2")
    assert fix.logon("pw2", hb=1).msg_type == "A"
    fix.send("1", [(112, "ping")])
    assert fix.expect(lambda m: m.msg_type == "0").get(112) == "ping"
    # Silent from now on: a TestRequest after 1.2 x HeartBtInt, then the connection closes.
    test_request = fix.expect(lambda m: m.msg_type == "1", timeout=5)
    assert test_request.get(112)
    assert fix.closed(timeout=5)


def test_heartbeats_flow_when_idle(stack: OrderStack) -> None:
    fix = connect(stack, "C2")
    assert fix.logon("pw2", hb=1).msg_type == "A"
    fix.expect(lambda m: m.msg_type == "0", timeout=5)
    fix.send("5", [])
    fix.expect(lambda m: m.msg_type == "5")
    fix.close()


def test_gap_from_client_is_resent_and_queued_messages_processed(stack: OrderStack) -> None:
    fix = connect(stack, "C3")
    fix.logon("pw3")
    # Seq 2 is "lost": 3 arrives first; the acceptor asks for 2.. and holds 3.
    fix.send("D", nos("gap-b", price="101"), seq=3)
    rr = fix.expect(lambda m: m.msg_type == "2")
    assert rr.get(7) == "2" and rr.get(16) == "0"
    # Resend 2 (PossDup) and 3 again: 2 is processed, then the queued 3, once each.
    fix.send("D", nos("gap-a", price="100"), seq=2, poss_dup=True)
    fix.send("D", nos("gap-b", price="101"), seq=3, poss_dup=True)
    fix.seq = 4
    a = fix.expect(lambda m: m.msg_type == "8" and m.get(11) == "gap-a")
    b = fix.expect(lambda m: m.msg_type == "8" and m.get(11) == "gap-b")
    assert a.get(150) == "0" and b.get(150) == "0"
    fix.send("H", [(11, "gap-b"), (55, "AAPL"), (54, 1)])
    status = fix.expect(lambda m: m.msg_type == "8" and m.get(150) == "I")
    assert status.get(39) == "0"
    assert not [m for m in fix.inbox if m.get(11) == "gap-b" and m.get(150) == "0"]
    fix.send("5", [])
    fix.expect(lambda m: m.msg_type == "5")


def test_resend_request_from_client_gets_app_messages_and_gap_fills(stack: OrderStack) -> None:
    fix = connect(stack, "C4")
    fix.logon("pw4")  # acceptor seq 1: Logon (admin)
    fix.send("D", nos("rr-1", price="90"))  # ER New: acceptor seq 2
    er = fix.expect(lambda m: m.msg_type == "8" and m.get(11) == "rr-1")
    fix.send("1", [(112, "t")])  # Heartbeat: acceptor seq 3 (admin)
    fix.expect(lambda m: m.msg_type == "0")
    fix.send("2", [(7, 1), (16, 0)])
    fill1 = fix.expect(lambda m: m.msg_type == "4")  # seq 1 (Logon) -> gap fill to 2
    assert (fill1.seq, fill1.get(123), fill1.get(36), fill1.get(43)) == (1, "Y", "2", "Y")
    again = fix.expect(lambda m: m.msg_type == "8")
    assert again.seq == er.seq == 2 and again.get(43) == "Y"
    assert again.get(122) == er.get(52) and again.get(11) == "rr-1"
    fill3 = fix.expect(lambda m: m.msg_type == "4")
    assert fill3.seq == 3 and fill3.get(36) == "4"


def test_seq_too_low_without_possdup_is_a_logout(stack: OrderStack) -> None:
    fix = connect(stack, "C5")
    fix.logon("pw5")
    fix.send("0", [])
    fix.send("0", [], seq=2)  # again, without PossDupFlag
    logout = fix.expect(lambda m: m.msg_type == "5")
    assert "too low" in logout.get(58)
    assert fix.closed()
    # With PossDupFlag the duplicate is ignored and the session lives on.
    fix = connect(stack, "C5")
    fix.logon("pw5")
    fix.send("0", [])
    fix.send("0", [], seq=2, poss_dup=True)
    fix.send("1", [(112, "alive")])
    assert fix.expect(lambda m: m.msg_type == "0").get(112) == "alive"


def test_sequence_reset_gap_fill_and_reset(stack: OrderStack) -> None:
    fix = connect(stack, "C5")
    fix.logon("pw5")
    fix.send("4", [(123, "Y"), (36, 10)])  # seq 2 fills 2..9
    fix.seq = 10
    fix.send("1", [(112, "after-fill")])
    assert fix.expect(lambda m: m.msg_type == "0").get(112) == "after-fill"
    fix.send("4", [(36, 50)], seq=999)  # reset mode: MsgSeqNum ignored
    fix.seq = 50
    fix.send("1", [(112, "after-reset")])
    assert fix.expect(lambda m: m.msg_type == "0").get(112) == "after-reset"
    fix.send("4", [(36, 5)], seq=51)  # backwards: Reject, value incorrect
    rej = fix.expect(lambda m: m.msg_type == "3")
    assert rej.get(373) == "5"


def test_malformed_messages(stack: OrderStack) -> None:
    fix = connect(stack, "C6")
    fix.logon("pw6")
    # Garbage bytes: dropped, the session goes on.
    fix.send_raw(b"\x00garbage\x01 before a frame")
    # Bad checksum: dropped, its seq (2) not consumed.
    good = fix.frame("1", [(112, "bad-sum")])
    fix.send_raw(good[:-4] + (b"000" if good[-4:-1] != b"000" else b"001") + b"\x01")
    # Bad BodyLength: dropped.
    frame = fix.frame("1", [(112, "bad-len")])
    length = int(frame.split(b"\x01")[1][2:])
    fix.send_raw(frame.replace(b"\x019=%d\x01" % length, b"\x019=%d\x01" % (length - 5), 1))
    fix.send("1", [(112, "good")])  # seq 2: in sequence, the drops consumed nothing
    assert fix.expect(lambda m: m.msg_type == "0").get(112) == "good"
    # Required tag missing (NewOrderSingle without Side): session Reject 373=1, 371=54.
    fix.send("D", [(11, "x"), (55, "AAPL"), (38, 1), (40, 2), (44, "1"), (60, fix_time())])
    rej = fix.expect(lambda m: m.msg_type == "3")
    assert (rej.get(373), rej.get(371), rej.get(372)) == ("1", "54", "D")
    # Not a FIX 4.4 MsgType: Reject 373=11; an unsupported one: BusinessMessageReject.
    fix.send("ZZ", [(58, "?")])
    assert fix.expect(lambda m: m.msg_type == "3").get(373) == "11"
    fix.send("R", [(131, "q1"), (55, "AAPL")])
    bmr = fix.expect(lambda m: m.msg_type == "j")
    assert bmr.get(380) == "3" and bmr.get(372) == "R"
    # A field that is not tag=value: Reject, and the sequence goes on.
    broken = encode("1", [(49, "C6"), (56, "TICKDB"), (34, fix.seq), (52, fix_time())], [])
    broken = broken.replace(b"\x0152=", b"\x01x52=", 1)
    body_fixed = _with_length_and_sum(broken)
    fix.send_raw(body_fixed)
    fix.seq += 1
    assert fix.expect(lambda m: m.msg_type == "3").get(373) in ("0", "6")
    fix.send("1", [(112, "still")])
    assert fix.expect(lambda m: m.msg_type == "0").get(112) == "still"
    # Wrong CompID: Reject 373=9 and Logout.
    fix.sock.sendall(
        encode("1", [(49, "C6"), (56, "OTHER"), (34, fix.seq), (52, fix_time())], [(112, "x")])
    )
    assert fix.expect(lambda m: m.msg_type == "3").get(373) == "9"
    assert fix.closed()
    # A message larger than max_message_bytes closes the connection.
    fix = connect(stack, "C6")
    fix.logon("pw6")
    fix.send("1", [(112, "x" * 5000)])
    assert fix.closed()


def _with_length_and_sum(frame: bytes) -> bytes:
    """Recompute BodyLength and CheckSum of a hand-edited frame."""
    head, _, rest = frame.partition(b"\x019=")
    body = rest.split(b"\x01", 1)[1]
    body = body[: body.rfind(b"10=")]
    out = head + b"\x019=" + str(len(body)).encode() + b"\x01" + body
    return out + b"10=%03d\x01" % (sum(out) & 255)


def test_gateway_restart_continues_the_sequence(stack: OrderStack) -> None:
    fix = connect(stack, "C1")
    fix.logon("pw1")
    fix.send("D", nos("restart-1", sym="MSFT", price="50"))
    fix.expect(lambda m: m.msg_type == "8" and m.get(11) == "restart-1")
    fix.send("5", [])
    last = fix.expect(lambda m: m.msg_type == "5")
    client_next = fix.seq
    fix.close()
    gw = stack.gateway
    assert gw is not None
    gw.stop()
    stack.start_gateway()
    fix = connect(stack, "C1")
    fix.seq = client_next
    reply = fix.logon("pw1", reset=False)
    assert reply.msg_type == "A" and reply.seq == last.seq + 1
    fix.send("H", [(11, "restart-1"), (55, "MSFT"), (54, 1)])
    status = fix.expect(lambda m: m.msg_type == "8" and m.get(150) == "I")
    assert status.get(39) == "0" and status.get(11) == "restart-1"
    # A client that resumes with too low a number is logged out.
    fix.send("5", [])
    fix.expect(lambda m: m.msg_type == "5")
    assert fix.closed()
    low = connect(stack, "C1")
    low.seq = 1
    assert low.logon("pw1", reset=False).msg_type == "5"
