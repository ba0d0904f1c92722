"""Fuzz targets of FIX: the framer and decoder, and a session fed arbitrary messages.

A FIX client controls every byte it sends. The framer must cut the same frames however the
bytes arrive; a frame decodes or is a ``BadField`` (a session Reject); and a session, with
the gateway's order entry as its application, answers any sequence of well-framed messages
with well-formed FIX or closes the connection (``Disconnect``), never another exception.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fix.codec import BadField, Framer, MessageTooLarge, decode
from fix.session import Session
from fix.session_types import Disconnect, SessionSettings
from gateway.fix_acceptor import FixAcceptor
from gateway.fix_outbox import ReportOutbox
from gateway.order_router import OrderRejected, OrdersUnavailable
from support.fuzz_core import Reader, Target

MAX_BYTES = 16 * 1024
T = "20240102-09:30:00.000"


def _feed(chunks: list[bytes]) -> tuple[list[bytes], bool]:
    framer = Framer(MAX_BYTES)
    frames: list[bytes] = []
    try:
        for chunk in chunks:
            frames.extend(f for f in framer.feed(chunk) if isinstance(f, bytes))
    except MessageTooLarge:
        return frames, True
    return frames, False


def fuzz_codec(data: bytes) -> None:
    """The first byte is a chunk size: the frames cut from ``data`` fed whole and fed in
    chunks are the same; each decodes or is a BadField; so is ``data`` itself."""
    step = Reader(data).uint(1) % 16 + 1
    stream = data[1:]
    whole = _feed([stream])
    chunked = _feed([stream[i : i + step] for i in range(0, len(stream), step)])
    # A frame over the size limit closes the connection: what the same read held before it
    # is never processed (the peer resends it after logging on again), so only compare
    # frames cut before the limit was hit.
    assert whole[1] == chunked[1], "the size limit depends on how the bytes arrive"
    if not whole[1]:
        assert whole[0] == chunked[0], "frames depend on how the bytes arrive"
    for raw in (*chunked[0], stream, frame(stream)):
        try:
            msg = decode(raw)
        except BadField:
            continue
        repr(msg)
        msg.get(35)


def frame(body: bytes) -> bytes:
    """``body`` (fields after BodyLength, before CheckSum) as a well-framed FIX 4.4 message."""
    head = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
    return head + b"10=%03d\x01" % (sum(head) & 255)


class _Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


class _Router:
    """Refuses every order request (the acceptor then answers with its own messages), so
    the run exercises the acceptor's parsing of fields and its answers, not the venue."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.event_listeners: list[Callable[..., None]] = []

    def submit(self, req: Any, **_: Any) -> Any:
        raise OrderRejected("invalid", "refused by the fuzz router")

    def cancel(self, req: Any, **_: Any) -> Any:
        raise OrderRejected("unknown_order", "refused by the fuzz router")

    def replace(self, req: Any, **_: Any) -> Any:
        raise OrdersUnavailable("refused by the fuzz router")

    def mass_cancel(self, req: Any, **_: Any) -> list[Any]:
        return []

    def send_many(self, requests: list[Any]) -> None:
        pass

    def order(self, account: str, clordid: str) -> None:
        return None


class _Engine:
    def call_soon(self, fn: Callable[[], None]) -> None:
        fn()


def order_entry() -> FixAcceptor:
    """The gateway's FIX order entry without its engine and listening socket, its router
    refusing every request."""
    app = FixAcceptor.__new__(FixAcceptor)
    app.router = _Router()  # type: ignore[assignment]
    app.engine = _Engine()  # type: ignore[assignment]
    app._outbox = []
    app.outbox = ReportOutbox(app.engine)  # type: ignore[arg-type]
    app._tracked = {}
    app._reports = deque()
    app._exec_prefix = "X-"
    app._exec_n = 0
    app.orders_received = 0
    return app


_store_dir: Path | None = None


def fuzz_session(data: bytes) -> None:
    """``data`` is message bodies separated by newlines, each framed well: the session
    answers with well-formed FIX or Disconnect (then the client connects again)."""
    global _store_dir
    if _store_dir is None:
        _store_dir = Path(tempfile.mkdtemp(prefix="fuzz-fix-"))
    settings = SessionSettings(
        name="fuzz",
        sender_comp_id="TICKDB",
        target_comp_id="CLIENT",
        store_dir=_store_dir,
        account="ACC",
        password="pw",
        max_latency_s=1e12,
    )
    app = order_entry()
    session = Session(settings, app, initiator=False)
    transport = _Transport()
    try:
        session.store.reset()
        session.attach(transport)
        for body in data.split(b"\n")[:64]:
            try:
                session.on_frame(frame(body))
            except Disconnect:
                session.detach()
                session.attach(transport)
        session.tick()
    except Disconnect:
        pass
    finally:
        with contextlib.suppress(Exception):
            session.detach()
        session.store.close()
    out, too_large = _feed([b"".join(transport.sent)])
    assert not too_large and sum(map(len, out)) == sum(map(len, transport.sent)), (
        "the session sent bytes that are not whole FIX frames"
    )
    for raw in out:
        decode(raw)


def _body(msg_type: str, seq: int, *fields: tuple[int, object]) -> bytes:
    head = f"35={msg_type}\x0149=CLIENT\x0156=TICKDB\x0134={seq}\x0152={T}\x01"
    return (head + "".join(f"{t}={v}\x01" for t, v in fields)).encode()


def session_seeds() -> list[bytes]:
    logon = _body("A", 1, (98, 0), (108, 30), (554, "pw"))
    order = (
        (11, "c1"),
        (1, "ACC"),
        (55, "AAPL"),
        (54, 1),
        (38, 100),
        (40, 2),
        (44, "10.5"),
        (59, 0),
        (60, T),
    )
    messages = [
        logon,
        _body("D", 2, *order),
        _body("F", 3, (11, "c2"), (41, "c1"), (55, "AAPL"), (54, 1), (60, T)),
        _body("G", 4, (11, "c3"), (41, "c1"), (55, "AAPL"), (54, 1), (38, 5), (40, 2), (60, T)),
        _body("H", 5, (11, "c1"), (55, "AAPL"), (54, 1), (790, "r1")),
        _body("q", 6, (11, "m1"), (530, 1), (55, "AAPL"), (60, T)),
        _body("1", 7, (112, "ping")),
        _body("2", 8, (7, 1), (16, 0)),
        _body("4", 9, (123, "Y"), (36, 12)),
        _body("0", 12),
        _body("4", 12, (36, 20)),
        _body("D", 25, *order),
        _body("5", 26, (58, "bye")),
    ]
    return [b"\n".join(messages), b"\n".join(messages[:2]), logon]


def codec_seeds() -> list[bytes]:
    frames = [frame(body) for body in session_seeds()[0].split(b"\n")]
    return [b"\x03" + b"".join(frames), b"\x00" + b"junk" + frames[1] + frames[2][:30]]


TOKENS = (
    b"8=FIX.4.4\x01",
    b"9=",
    b"10=",
    b"\x01",
    b"=",
    b"35=",
    b"34=",
    b"52=",
    b"43=Y\x01",
    b"122=",
    b"141=Y\x01",
    b"38=",
    b"44=",
    b"nan",
    b"inf",
    b"1e400",
    b"-1",
    b"99999999999999999999",
)

TARGETS = [
    Target("fix_codec", "fix.codec Framer and decode", fuzz_codec, codec_seeds, TOKENS),
    Target(
        "fix_session",
        "fix.session.Session with the gateway's order entry, arbitrary messages",
        fuzz_session,
        session_seeds,
        TOKENS,
    ),
]
