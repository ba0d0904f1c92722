"""FIX 4.4 on the wire: framing, the checks a frame gets before it is read, and the codec.

Encoding uses simplefix (``FixMessage.encode`` sets BodyLength and CheckSum). Decoding does
not: simplefix's parser walks a message byte by byte in Python and costs about 140 µs for a
170-byte NewOrderSingle, against about 5 µs for splitting a frame whose BodyLength and
CheckSum the framer has already verified (``scripts/bench_fix.py`` measures both). At 5,000
orders/s that is the difference between 70% of a core and 3%.

A frame is ``8=FIX.4.4|9=<len>|<body>|10=<ccc>|``. The framer drops, and counts, what FIX
says to drop without an answer: bytes before a BeginString (garbage), a frame whose
BodyLength does not land on its CheckSum field, and a frame whose CheckSum is wrong. The
sequence number of a dropped frame is not consumed, so the next good one shows a gap and the
session asks for a resend: nothing is lost.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import simplefix

SOH = b"\x01"
# An integer field: at most 18 digits, so any value fits an int64 (and int() never meets
# Python's limit on digits).
INT = re.compile(rb"-?[0-9]{1,18}")
BEGIN_STRING = "FIX.4.4"
BEGIN = b"8=FIX.4.4\x01"
_MARK = b"8=FIX"


class MessageTooLarge(Exception):
    """A BodyLength above the configured bound: the connection is closed."""


@dataclass
class Dropped:
    """A frame (or bytes) thrown away, and why: the session logs and counts it."""

    reason: str


@dataclass
class Framer:
    max_bytes: int = 64 * 1024
    buf: bytearray = field(default_factory=bytearray)
    garbage_bytes: int = 0

    def feed(self, data: bytes) -> list[bytes | Dropped]:
        """Append received bytes; return the complete frames (or drops) found, in order."""
        self.buf += data
        out: list[bytes | Dropped] = []
        buf = self.buf
        while buf:
            start = buf.find(_MARK)
            if start < 0:
                keep = 4  # "8=FI" may be the start of the next frame
                if len(buf) > keep:
                    self.garbage_bytes += len(buf) - keep
                    out.append(Dropped(f"{len(buf) - keep} bytes without a BeginString"))
                    del buf[: len(buf) - keep]
                break
            if start:
                self.garbage_bytes += start
                out.append(Dropped(f"{start} bytes before a BeginString"))
                del buf[:start]
            head_end = buf.find(SOH, 0, 16)
            if head_end < 0:
                if len(buf) >= 16:
                    out.append(Dropped("BeginString is not FIX.4.4"))
                    del buf[:1]
                    continue
                break
            if buf[: head_end + 1] != BEGIN:
                out.append(Dropped(f"BeginString {bytes(buf[2:head_end])!r} is not FIX.4.4"))
                del buf[:1]
                continue
            p = head_end + 1
            len_end = buf.find(SOH, p, p + 12)
            if len_end < 0:
                if len(buf) - p >= 12:
                    out.append(Dropped("no BodyLength after the BeginString"))
                    del buf[:1]
                    continue
                break
            if buf[p : p + 2] != b"9=" or not buf[p + 2 : len_end].isdigit():
                out.append(Dropped("no BodyLength after the BeginString"))
                del buf[:1]
                continue
            length = int(buf[p + 2 : len_end])
            if length > self.max_bytes:
                raise MessageTooLarge(f"BodyLength {length} exceeds {self.max_bytes} bytes")
            body_end = len_end + 1 + length
            total = body_end + 7
            if len(buf) < total:
                break
            if buf[body_end : body_end + 3] != b"10=" or buf[total - 1] != 1:
                # BodyLength does not end where the CheckSum starts: garbled, resync.
                out.append(Dropped(f"BodyLength {length} does not end at the CheckSum field"))
                del buf[:1]
                continue
            expected = sum(memoryview(buf)[:body_end]) & 255
            got = buf[body_end + 3 : total - 1]
            if not got.isdigit() or int(got) != expected:
                out.append(Dropped(f"CheckSum {got.decode(errors='replace')} != {expected:03d}"))
                del buf[:total]
                continue
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out


class Message:
    """A decoded message: fields in order, and the first value of each tag by number."""

    __slots__ = ("fields", "raw", "values")

    def __init__(self, fields: list[tuple[int, bytes]], raw: bytes = b"") -> None:
        self.fields = fields
        self.raw = raw
        self.values: dict[int, bytes] = {}
        for tag, value in fields:
            self.values.setdefault(tag, value)

    @property
    def msg_type(self) -> str:
        return self.get(35)

    @property
    def seq(self) -> int:
        return self.num(34)

    def get(self, tag: int, default: str = "") -> str:
        value = self.values.get(tag)
        return default if value is None else value.decode("latin-1")

    def num(self, tag: int, default: int = 0) -> int:
        """The tag's integer value; BadField when it is not one (a session Reject)."""
        value = self.values.get(tag)
        if value is None:
            return default
        if not INT.fullmatch(value):
            raise BadField(f"tag {tag}: {value[:32]!r} is not an integer", tag)
        return int(value)

    def __contains__(self, tag: int) -> bool:
        return tag in self.values

    def __repr__(self) -> str:
        return "|".join(f"{t}={v.decode('latin-1')}" for t, v in self.fields)


class BadField(ValueError):
    """A field that is not ``tag=value`` with a numeric tag (a session Reject, 373=0/6)."""

    def __init__(self, message: str, tag: int = 0) -> None:
        super().__init__(message)
        self.tag = tag


def decode(raw: bytes) -> Message:
    """Split a frame the framer verified into its fields."""
    fields: list[tuple[int, bytes]] = []
    for part in raw.split(SOH)[:-1]:
        tag, eq, value = part.partition(b"=")
        if not eq or not tag.isdigit() or len(tag) > 9:
            raise BadField(f"malformed field {part[:32]!r}")
        if not value:
            raise BadField(f"tag {int(tag)} has no value", int(tag))
        fields.append((int(tag), value))
    return Message(fields, raw)


Field = tuple[int, str | int | float | bytes]


def encode(msg_type: str, header: Iterable[Field], body: Iterable[Field]) -> bytes:
    msg = simplefix.FixMessage()
    msg.append_pair(8, BEGIN_STRING, header=True)
    msg.append_pair(35, msg_type, header=True)
    for tag, value in header:
        msg.append_pair(tag, value, header=True)
    for tag, value in body:
        msg.append_pair(tag, value)
    return bytes(msg.encode())


def fix_time(ts_ns: int | None = None) -> str:
    """UTCTimestamp with milliseconds: ``YYYYMMDD-HH:MM:SS.sss``."""
    ns = time.time_ns() if ts_ns is None else ts_ns
    secs, rem = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs)) + f".{rem // 1_000_000:03d}"


def parse_fix_time(text: str) -> int:
    """ns since the epoch of a UTCTimestamp (seconds, ms, µs or ns precision)."""
    import calendar

    whole, _, frac = text.partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y%m%d-%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def fix_price(price: float) -> str:
    return f"{price:.10f}".rstrip("0").rstrip(".") if price == price else "0"
