"""The FIX 4.4 session layer, as QuickFIX runs it, independent of sockets and of roles.

One ``Session`` per configured counterparty (SenderCompID/TargetCompID pair). The engine
(``fix.engine``) gives it a transport when a connection is up and feeds it frames and timer
ticks; the application (the gateway's order entry, the venue adapter, a test client) gets
its application messages, in sequence, exactly once.

For every frame, in this order (QuickFIX's ``Session::verify``):

1. garbled frames (``fix.codec.Framer``: bad BodyLength or CheckSum, garbage) are dropped
   without an answer and do not consume a sequence number;
2. a field that is not ``tag=value``, or a missing header field (35 49 56 34 52) is a
   session Reject (373=0/1); a missing MsgSeqNum is a Logout;
3. before logon, only a Logon is read (anything else closes the connection); a Logon with
   a wrong password (554) or username (553) is answered with a Logout and the connection
   closed (an acceptor given ``check_logon`` asks it instead of comparing the settings');
4. CompIDs other than the session's: Reject (373=9), Logout; a SendingTime further than
   ``max_latency_s`` from now: Reject (373=10), Logout;
5. MsgSeqNum: the expected one is processed; a higher one is queued and a ResendRequest
   sent for the gap (once per gap), the queue drained when the gap is filled; a lower one
   is ignored with PossDupFlag=Y and is a Logout without it;
6. admin messages are handled here (Heartbeat, TestRequest, ResendRequest, Reject,
   SequenceReset in both modes, Logout); an unknown MsgType is a Reject (373=11);
   application messages go to the application, which answers a type it does not support
   with a BusinessMessageReject (380=3).

Timers (``tick``): a Heartbeat after ``HeartBtInt`` without sending; a TestRequest after
1.2 x HeartBtInt without receiving, and the connection closed at 2.4 x (QuickFIX's numbers).

Sent application messages are stored (``fix.store``) and resent on a ResendRequest with
PossDupFlag=Y and OrigSendingTime; admin messages in a resent range become one
SequenceReset-GapFill per run. Messages sent while the counterparty is not logged on are
stored and numbered, and reach it through that resend when it logs on again.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

from fix.codec import BadField, Dropped, Field, Message, decode, encode, fix_time, parse_fix_time
from fix.session_types import (
    Disconnect,
    SessionRejectReason,
    SessionSettings,
    State,
    Transport,
)
from fix.store import FileStore

log = logging.getLogger(__name__)

ADMIN_TYPES = frozenset("012345A")
_FIX44_TYPE = re.compile(r"^([0-9A-Za-z]|A[A-Z]|B[A-J])$")
_UINT = re.compile(rb"[0-9]{1,18}")  # MsgSeqNum, HeartBtInt: an int64, never 5,000 digits


class Application(Protocol):
    def on_logon(self, session: Session) -> None: ...

    def on_logout(self, session: Session) -> None: ...

    def on_message(self, session: Session, msg: Message) -> bool:
        """Handle one application message; False: unsupported (BusinessMessageReject)."""
        ...


# check_logon(session, logon) -> None to accept it, or the Text (58) of the refusing Logout.
LogonCheck = Callable[["Session", Message], "str | None"]


class Session:
    def __init__(
        self,
        settings: SessionSettings,
        app: Application,
        *,
        initiator: bool,
        clock: Callable[[], float] = time.monotonic,
        check_logon: LogonCheck | None = None,
    ) -> None:
        self.settings = settings
        self.check_logon = check_logon
        self.app = app
        self.initiator = initiator
        self.clock = clock
        self.store = FileStore(settings.store_dir / settings.key)
        self.state = State.DISCONNECTED
        self.heartbeat_s = float(settings.heartbeat_s)
        self.lock = threading.RLock()
        self._transport: Transport | None = None
        self._queue: dict[int, Message] = {}
        self._resend_upto = 0  # a ResendRequest is outstanding for seqs below this
        self._last_sent = self._last_recv = self._connected_at = self._logout_at = 0.0
        self._test_requests = 0
        self._test_id = 0
        self._logout_text = ""
        # Initiator: reset the sequence numbers at the next logon only (a failover to another
        # acceptor process, ``fix.engine.Dial``); logon_reset says whether the last one did.
        self.reset_next_logon = False
        self.logon_reset = False
        # Counters: plain attributes that tests and /metrics read.
        self.received = self.sent = self.dropped = self.rejects_sent = 0
        self.resend_requests_sent = self.resends_answered = self.logons = 0

    # -- the engine's side ---------------------------------------------------------------
    @property
    def logged_on(self) -> bool:
        return self.state is State.LOGGED_ON

    @property
    def peer(self) -> str:
        """Where the connection comes from (``host:port``), or "" when disconnected."""
        transport = self._transport
        return str(getattr(transport, "peer", "")) if transport is not None else ""

    def writable_now(self) -> bool:
        """Whether ``send`` can write at once without waiting for the peer (its transport
        says so; one without ``writable_now`` never does)."""
        check = getattr(self._transport, "writable_now", None)
        return bool(check is not None and check())

    def attach(self, transport: Transport) -> None:
        with self.lock:
            self._transport = transport
            self.state = State.AWAITING_LOGON
            self._connected_at = self._last_recv = self._last_sent = self.clock()
            self._queue.clear()
            self._resend_upto = 0
            self._test_requests = 0
            if self.initiator:
                self._send_logon()

    def detach(self) -> None:
        with self.lock:
            was_logged_on = self.state is State.LOGGED_ON
            self._transport = None
            self.state = State.DISCONNECTED
            self._queue.clear()
        if was_logged_on:
            self.app.on_logout(self)

    def on_frame(self, frame: bytes | Dropped) -> None:
        """One frame from the framer. Raises ``Disconnect`` to close the connection."""
        with self.lock:
            if isinstance(frame, Dropped):
                self.dropped += 1
                log.warning("fix %s: dropped: %s", self.settings.key, frame.reason)
                return
            self._last_recv = self.clock()
            self._test_requests = 0
            self.received += 1
            try:
                msg = decode(frame)
            except BadField as exc:
                self._reject_malformed(frame, exc)
                return
            try:
                self._verify_and_process(msg)
            except BadField as exc:  # an integer field that is not one (7, 16, 36, ...)
                self.reject(msg, SessionRejectReason.INCORRECT_FORMAT, str(exc), exc.tag)

    def sync_store(self) -> None:
        """Write the target number the messages read since the last call moved on (the
        engine calls it after each read's batch: one write per read, not per message)."""
        with self.lock:
            self.store.sync()

    def tick(self) -> None:
        """Timers; call a few times per second. Raises ``Disconnect``."""
        with self.lock:
            now = self.clock()
            if self.state is State.AWAITING_LOGON:
                if now - self._connected_at > self.settings.logon_timeout_s:
                    raise Disconnect("no Logon in time")
                return
            if self.state is State.LOGOUT_SENT:
                if now - self._logout_at > 2.0:
                    raise Disconnect("no Logout answer in time")
                return
            if self.state is not State.LOGGED_ON:
                return
            silent = now - self._last_recv
            if silent >= 2.4 * self.heartbeat_s:
                raise Disconnect(f"nothing received for {silent:.1f} s: timed out")
            if silent >= 1.2 * self.heartbeat_s * (self._test_requests + 1):
                self._test_requests += 1
                self._test_id += 1
                self._send_admin("1", [(112, f"TEST{self._test_id}")])
            if now - self._last_sent >= self.heartbeat_s:
                self._send_admin("0", [])

    # -- sending -------------------------------------------------------------------------
    def _header(self, seq: int, sending_time: str) -> list[Field]:
        s = self.settings
        return [(49, s.sender_comp_id), (56, s.target_comp_id), (34, seq), (52, sending_time)]

    def _write(self, raw: bytes) -> None:
        if self._transport is not None:
            self._last_sent = self.clock()
            self.sent += 1
            self._transport.send(raw)

    def _send_admin(self, msg_type: str, body: list[Field]) -> int:
        seq = self.store.next_sender
        raw = encode(msg_type, self._header(seq, fix_time()), body)
        self.store.set_next_sender(seq + 1)
        self._write(raw)
        return seq

    def send(self, msg_type: str, body: list[Field]) -> int:
        """Send an application message (stored; held for resend if not logged on)."""
        with self.lock:
            seq = self.store.next_sender
            raw = encode(msg_type, self._header(seq, fix_time()), body)
            self.store.save(seq, raw)  # stored before sent; moves the sender seq on too
            if self.state is State.LOGGED_ON:
                self._write(raw)
            return seq

    def heartbeat(self) -> None:
        """A Heartbeat now: after a logon, it shows the counterparty the numbers of
        messages stored while the session was down, so it asks for them (a resend)."""
        with self.lock:
            if self.state is State.LOGGED_ON:
                self._send_admin("0", [])

    def logout(self, text: str = "") -> None:
        with self.lock:
            if self.state in (State.LOGGED_ON, State.AWAITING_LOGON) and self._transport:
                self._send_admin("5", [(58, text)] if text else [])
                self.state = State.LOGOUT_SENT
                self._logout_at = self.clock()

    def reset(self) -> None:
        """``tickdb fix reset``: both sequence numbers to 1 (logs out a live session)."""
        with self.lock:
            if self._transport is not None:
                self.logout("sequence numbers reset by the operator")
            self.store.reset()

    def reject(self, ref: Message, reason: int, text: str, tag: int = 0) -> None:
        """A session-level Reject (35=3) of ``ref``."""
        body: list[Field] = [(45, ref.get(34, "0")), (373, reason), (58, text)]
        if tag:
            body.insert(1, (371, tag))
        if ref.msg_type:
            body.insert(1, (372, ref.msg_type))
        self.rejects_sent += 1
        log.warning("fix %s: reject seq %s: %s", self.settings.key, ref.get(34), text)
        self._send_admin("3", body)

    def business_reject(self, ref: Message, reason: int, text: str) -> None:
        self.send(
            "j",
            [(45, ref.get(34, "0")), (372, ref.msg_type), (380, reason), (58, text)],
        )

    def _send_logon(self) -> None:
        s = self.settings
        body: list[Field] = [(98, 0), (108, int(self.heartbeat_s))]
        self.logon_reset = self.initiator and (s.reset_on_logon or self.reset_next_logon)
        self.reset_next_logon = False
        if self.logon_reset:
            self.store.reset()
            body.append((141, "Y"))
        if s.username:
            body.append((553, s.username))
        if s.password and self.initiator:
            body.append((554, s.password))
        self._send_admin("A", body)

    # -- receiving -----------------------------------------------------------------------
    def _reject_malformed(self, raw: bytes, exc: BadField) -> None:
        seq = 0
        for part in raw.split(b"\x01"):
            if part.startswith(b"34=") and _UINT.fullmatch(part[3:]):
                seq = int(part[3:])
        ref = Message([(34, str(seq).encode())] if seq else [])
        reason = (
            SessionRejectReason.INCORRECT_FORMAT if exc.tag else SessionRejectReason.INVALID_TAG
        )
        self.reject(ref, reason, str(exc), exc.tag)
        if seq == self.store.next_target:
            self.store.advance_target(seq + 1)

    def _verify_and_process(self, msg: Message) -> None:
        if not _UINT.fullmatch(msg.values.get(34, b"")):
            self.logout("MsgSeqNum (34) missing or not a number")
            raise Disconnect("MsgSeqNum missing")
        msg_type = msg.msg_type
        if self.state is State.AWAITING_LOGON and msg_type != "A":
            raise Disconnect(f"first message is {msg_type!r}, not a Logon")
        for tag in (35, 49, 56, 52):
            if tag not in msg.values:
                self.reject(
                    msg, SessionRejectReason.REQUIRED_TAG_MISSING, f"tag {tag} missing", tag
                )
                self._advance_if_expected(msg)
                return
        s = self.settings
        if msg.get(49) != s.target_comp_id or msg.get(56) != s.sender_comp_id:
            self.reject(msg, SessionRejectReason.COMP_ID_PROBLEM, "CompID problem")
            self.logout("CompID problem")
            raise Disconnect("CompID problem")
        try:
            skew = abs(time.time_ns() - parse_fix_time(msg.get(52))) / 1e9
        except ValueError:
            self.reject(msg, SessionRejectReason.INCORRECT_FORMAT, "SendingTime (52)", 52)
            self._advance_if_expected(msg)
            return
        if skew > s.max_latency_s and msg.get(43) != "Y":
            self.reject(msg, SessionRejectReason.SENDING_TIME_ACCURACY, "SendingTime accuracy")
            self.logout("SendingTime accuracy problem")
            raise Disconnect("SendingTime accuracy")
        if msg_type == "A":
            self._on_logon(msg)
            return
        if msg_type == "4" and msg.get(123) != "Y":
            self._on_sequence_reset(msg)  # Reset mode ignores MsgSeqNum
            return
        seq, expected = msg.seq, self.store.next_target
        if seq > expected:
            if msg_type == "5":
                self._on_logout(msg)
                return
            if msg_type == "2":
                self._on_resend_request(msg)
            self._queue[seq] = msg
            self._request_resend(expected, seq)
            return
        if seq < expected:
            if msg.get(43) == "Y":
                if 122 not in msg.values and msg_type not in ("4",):
                    self.reject(
                        msg, SessionRejectReason.REQUIRED_TAG_MISSING, "tag 122 missing", 122
                    )
                return  # a duplicate of what was already processed
            text = f"MsgSeqNum too low, expecting {expected} but received {seq}"
            self.logout(text)
            raise Disconnect(text)
        self._process(msg)
        self._drain_queue()

    def _advance_if_expected(self, msg: Message) -> None:
        if msg.seq == self.store.next_target:
            self.store.advance_target(msg.seq + 1)
            self._drain_queue()

    def _drain_queue(self) -> None:
        while self.store.next_target in self._queue:
            queued = self._queue.pop(self.store.next_target)
            self._process(queued)
        if self._resend_upto and self.store.next_target >= self._resend_upto:
            self._resend_upto = 0

    def _request_resend(self, expected: int, seq: int) -> None:
        if self._resend_upto and self._resend_upto >= seq:
            return  # already asked for this gap
        self._resend_upto = seq
        self.resend_requests_sent += 1
        log.info("fix %s: gap %d..%d: resend requested", self.settings.key, expected, seq - 1)
        self._send_admin("2", [(7, expected), (16, 0)])

    def _process(self, msg: Message) -> None:
        """A message in sequence: consume its number, then act on it."""
        self.store.advance_target(msg.seq + 1)
        msg_type = msg.msg_type
        if msg_type == "0":
            return
        if msg_type == "1":
            if 112 not in msg.values:
                self.reject(msg, SessionRejectReason.REQUIRED_TAG_MISSING, "tag 112 missing", 112)
                return
            self._send_admin("0", [(112, msg.get(112))])
        elif msg_type == "2":
            self._on_resend_request(msg)
        elif msg_type == "3":
            log.warning("fix %s: rejected by the counterparty: %r", self.settings.key, msg)
        elif msg_type == "4":
            self._on_sequence_reset(msg)
        elif msg_type == "5":
            self._on_logout(msg)
        elif msg_type == "A":
            return  # a second Logon on a live session: nothing to do
        elif not _FIX44_TYPE.match(msg_type):
            self.reject(
                msg, SessionRejectReason.INVALID_MSG_TYPE, f"MsgType {msg_type!r} is not FIX 4.4"
            )
        elif not self.app.on_message(self, msg):
            self.business_reject(msg, 3, f"MsgType {msg_type} is not supported")

    # -- admin messages ------------------------------------------------------------------
    def _on_logon(self, msg: Message) -> None:
        s = self.settings
        if self.state is State.LOGGED_ON:
            self._advance_if_expected(msg)
            return
        if not self.initiator:
            if not _UINT.fullmatch(msg.values.get(108, b"")):
                self.reject(msg, SessionRejectReason.REQUIRED_TAG_MISSING, "tag 108 missing", 108)
                raise Disconnect("Logon without HeartBtInt")
            if self.check_logon is not None:
                refusal = self.check_logon(self, msg)
            elif (s.password and msg.get(554) != s.password) or (
                s.username and msg.get(553) != s.username
            ):
                refusal = "Logon refused: invalid username or password"
            else:
                refusal = None
            if refusal is not None:
                log.warning("fix %s: logon from %s refused: %s", s.key, self.peer, refusal)
                self._send_admin("5", [(58, refusal)])
                raise Disconnect("logon refused")
            self.heartbeat_s = float(msg.num(108)) or self.heartbeat_s
        reset = msg.get(141) == "Y"
        if reset and not self.initiator:
            self.store.reset()
        seq, expected = msg.seq, self.store.next_target
        if seq < expected and not reset:
            text = f"MsgSeqNum too low, expecting {expected} but received {seq}"
            self._send_admin("5", [(58, text)])
            raise Disconnect(text)
        if not self.initiator:
            body: list[Field] = [(98, 0), (108, int(self.heartbeat_s))]
            if reset:
                body.append((141, "Y"))
            self._send_admin("A", body)
        self.state = State.LOGGED_ON
        self.logons += 1
        log.info("fix %s: logged on (in %d, out %d)", s.key, seq, self.store.next_sender)
        if seq == expected:
            self.store.advance_target(seq + 1)
        else:
            self._request_resend(expected, seq)
        self.app.on_logon(self)
        self._drain_queue()

    def _on_resend_request(self, msg: Message) -> None:
        begin, end = msg.num(7), msg.num(16)
        last = self.store.next_sender - 1
        if end == 0 or end > last:
            end = last
        self.resends_answered += 1
        log.info("fix %s: resending %d..%d", self.settings.key, begin, end)
        gap_start = 0
        for seq in range(max(begin, 1), end + 1):
            raw = self.store.messages.get(seq)
            if raw is None:
                gap_start = gap_start or seq
                continue
            if gap_start:
                self._gap_fill(gap_start, seq)
                gap_start = 0
            self._resend(decode(raw))
        if gap_start:
            self._gap_fill(gap_start, end + 1)

    def _gap_fill(self, seq: int, new_seq: int) -> None:
        header = [*self._header(seq, fix_time()), (43, "Y")]
        self._write(encode("4", header, [(123, "Y"), (36, new_seq)]))

    def _resend(self, original: Message) -> None:
        header = [*self._header(original.seq, fix_time()), (43, "Y"), (122, original.get(52))]
        skip = {8, 9, 10, 35, 49, 56, 34, 52, 43, 122}
        body = [(t, v) for t, v in original.fields if t not in skip]
        self._write(encode(original.msg_type, header, body))

    def _on_sequence_reset(self, msg: Message) -> None:
        new_seq = msg.num(36)
        if 36 not in msg.values:
            self.reject(msg, SessionRejectReason.REQUIRED_TAG_MISSING, "tag 36 missing", 36)
            return
        expected = self.store.next_target
        if new_seq < expected:
            self.reject(
                msg,
                SessionRejectReason.VALUE_INCORRECT,
                f"NewSeqNo {new_seq} is below the expected {expected}",
                36,
            )
            return
        self.store.advance_target(new_seq)
        self._drain_queue()

    def _on_logout(self, msg: Message) -> None:
        if self.state is not State.LOGOUT_SENT:
            self.store.advance_target(max(self.store.next_target, msg.seq + 1))
            self._send_admin("5", [])
            raise Disconnect(f"logout: {msg.get(58)}")
        raise Disconnect("logout confirmed")
