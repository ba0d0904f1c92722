"""A small FIX 4.4 initiator: tickdb's own client, for scripts, tests and the benchmark.

```python
with FixClient("127.0.0.1", 9878, "DESK1", "TICKDB", password="secret") as fix:
    fix.send("D", [(11, "o1"), (55, "AAPL"), (54, 1), (38, 100), (40, 2), (44, "189.5"),
                   (60, fix_time())])
    report = fix.wait_for(lambda m: m.msg_type == "8" and m.get(11) == "o1")
```

It runs the same session layer as the gateway (``fix.session``): sequence numbers persist
under ``store_dir`` (a temporary directory by default), gaps are resent, heartbeats kept.

Several gateways (active-active, ``tickdb up --gateways N``): ``host`` as a list of
``(host, port)`` or ``"host:port,host:port"`` (``port`` left out). The client logs on to
the first; when the connection drops it logs on to the next at once (``failovers`` counts),
with sequence numbers reset (141=Y: that gateway keeps its own), and recovers as FIX
clients do after a failover: every NewOrderSingle, cancel and replace not answered yet is
sent again with PossResend (97=Y) and its ClOrdID, which the gateways share, so a retry is
answered with the order it already made (never a second one); then an OrderStatusRequest
for every order still open brings the reports missed in between up to date.
``tls=True`` connects over TLS trusting the system's CAs; an ``ssl.SSLContext``
(``tickdb.tls.client_context("ca.crt")``) trusts your own.
"""

from __future__ import annotations

import contextlib
import itertools
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fix.codec import Field, Message
from fix.engine import Engine
from fix.session import Session
from fix.session_types import SessionSettings


class FixTimeout(TimeoutError):
    pass


# Requests a gateway answers (by their ClOrdID), resent with PossResend after a failover.
_REQUESTS = frozenset("DFG")
# OrdStatus (39) of an order that is done: no status request for it after a failover.
_DONE = frozenset("248C")


def fix_addresses(host: str | Sequence[tuple[str, int]], port: int = 0) -> list[tuple[str, int]]:
    """``host, port``; a list of ``(host, port)``; or ``"h:p,h:p"`` with ``port`` 0."""
    if not isinstance(host, str):
        found = [(str(h), int(p)) for h, p in host]
    elif port:
        found = [(host, port)]
    else:
        found = []
        for part in host.split(","):
            name, _, number = part.strip().rpartition(":")
            if not name or not number.isdigit():
                raise ValueError(f"FIX address {part.strip()!r} is not host:port")
            found.append((name, int(number)))
    if not found:
        raise ValueError(f"no FIX address in {host!r}")
    return found


class FixClient:
    def __init__(
        self,
        host: str | Sequence[tuple[str, int]],
        port: int = 0,
        sender_comp_id: str = "",
        target_comp_id: str = "",
        *,
        password: str = "",
        username: str = "",
        heartbeat_s: int = 30,
        reset_on_logon: bool = True,
        store_dir: Path | None = None,
        connect: bool = True,
        tls: bool | ssl.SSLContext = False,
        logon_timeout_s: float = 10.0,
    ) -> None:
        self.addresses = fix_addresses(host, port)
        self._tmp = None if store_dir is not None else tempfile.TemporaryDirectory()
        directory = store_dir if store_dir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.settings = SessionSettings(
            name="client",
            sender_comp_id=sender_comp_id,
            target_comp_id=target_comp_id,
            password=password,
            username=username,
            heartbeat_s=heartbeat_s,
            reset_on_logon=reset_on_logon,
            store_dir=directory,
            logon_timeout_s=logon_timeout_s,
        )
        self.received: list[Message] = []
        self.logouts = 0
        self._changed = threading.Condition()
        self.on_app: Callable[[Message], None] | None = None
        self.engine = Engine(name="fix-client")
        self.session = Session(self.settings, self, initiator=True)
        context = tls if isinstance(tls, ssl.SSLContext) else None
        if tls is True:
            context = ssl.create_default_context()
        # Several gateways: what a failover must send again (by ClOrdID), and the orders
        # still open (their status is asked for after one).
        self._unanswered: dict[str, tuple[str, list[Field]]] = {}
        self._open: dict[str, list[Field]] = {}
        self._status_ids = itertools.count(1)
        (first_host, first_port), *more = self.addresses
        self._dial = self.engine.dial(
            self.session,
            first_host,
            first_port,
            reconnect_s=0.2 if connect else 1e9,
            tls=context,
            more=more,
        )
        if not connect:
            self._dial.next_try = float("inf")
        self.engine.start()

    @property
    def address(self) -> tuple[str, int]:
        """The gateway connected to now (or dialled next)."""
        return self.addresses[self._dial.connected if self._dial.connected >= 0 else 0]

    @property
    def failovers(self) -> int:
        """Logons to another gateway than the one before."""
        return self._dial.failovers

    # -- the session's callbacks (engine thread) --------------------------------------------
    def on_logon(self, session: Session) -> None:
        if len(self.addresses) > 1 and session.logon_reset:
            self._recover(session)
        with self._changed:
            self._changed.notify_all()

    def _recover(self, session: Session) -> None:
        """After a logon that started the sequence numbers over (another gateway): what was
        sent and not answered goes again as PossResend; open orders' status is asked for."""
        with self._changed:
            resend = list(self._unanswered.values())
            ask = [body for clordid, body in self._open.items() if clordid not in self._unanswered]
        for msg_type, body in resend:
            session.send(msg_type, [*body, (97, "Y")])
        for body in ask:
            session.send("H", [*body, (790, f"failover-{next(self._status_ids)}")])

    def on_logout(self, session: Session) -> None:
        with self._changed:
            self.logouts += 1
            self._changed.notify_all()

    def on_message(self, session: Session, msg: Message) -> bool:
        if len(self.addresses) > 1 and msg.msg_type in ("8", "9"):
            self._answered(msg)
        if self.on_app is not None:
            self.on_app(msg)
            return True
        with self._changed:
            self.received.append(msg)
            self._changed.notify_all()
        return True

    def _answered(self, msg: Message) -> None:
        clordid, status = msg.get(11), msg.get(39)
        with self._changed:
            self._unanswered.pop(clordid, None)
            if msg.msg_type == "8" and clordid in self._open and status in _DONE:
                del self._open[clordid]
            if msg.get(150) == "5":  # replaced: the order goes on under its new ClOrdID
                self._open.pop(msg.get(41), None)

    # -- the caller's side -------------------------------------------------------------------
    def send(self, msg_type: str, body: list[Field]) -> int:
        if len(self.addresses) == 1 or msg_type not in _REQUESTS:
            return self.session.send(msg_type, body)
        fields = dict(body)
        clordid = str(fields.get(11, ""))
        # The session's lock first, as the engine's thread takes them: a failover's resend
        # and this send never both carry the same request.
        with self.session.lock:
            with self._changed:
                self._unanswered[clordid] = (msg_type, list(body))
                if msg_type in "DG":
                    self._open[clordid] = [
                        (11, clordid),
                        (55, fields.get(55, "")),
                        (54, fields.get(54, "")),
                    ]
            return self.session.send(msg_type, body)

    def wait_until(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := condition()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FixTimeout("condition not met in time")
                self._changed.wait(min(remaining, 0.05))
            return result

    def wait_logged_on(self, timeout: float = 10.0) -> None:
        self.wait_until(lambda: self.session.logged_on, timeout)

    def wait_for(
        self, match: Callable[[Message], bool], timeout: float = 10.0, start: int = 0
    ) -> Message:
        def find() -> Message | None:
            return next((m for m in self.received[start:] if match(m)), None)

        found: Message = self.wait_until(find, timeout)
        return found

    def close(self) -> None:
        if self.session.logged_on:
            self.session.logout()
            with contextlib.suppress(FixTimeout):
                self.wait_until(lambda: not self.session.logged_on, 2.0)
        self.engine.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> FixClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
