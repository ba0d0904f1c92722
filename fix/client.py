"""A small FIX 4.4 initiator: tickdb's own client, for scripts, tests and the benchmark.

```python
with FixClient("127.0.0.1", 9878, "DESK1", "TICKDB", password="secret") as fix:
    fix.send("D", [(11, "o1"), (55, "AAPL"), (54, 1), (38, 100), (40, 2), (44, "189.5"),
                   (60, fix_time())])
    report = fix.wait_for(lambda m: m.msg_type == "8" and m.get(11) == "o1")
```

It runs the same session layer as the gateway (``fix.session``): sequence numbers persist
under ``store_dir`` (a temporary directory by default), gaps are resent, heartbeats kept.
``tls=True`` connects over TLS trusting the system's CAs; an ``ssl.SSLContext``
(``tickdb.tls.client_context("ca.crt")``) trusts your own.
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fix.codec import Field, Message
from fix.engine import Engine
from fix.session import Session, SessionSettings


class FixTimeout(TimeoutError):
    pass


class FixClient:
    def __init__(
        self,
        host: str,
        port: int,
        sender_comp_id: str,
        target_comp_id: str,
        *,
        password: str = "",
        username: str = "",
        heartbeat_s: int = 30,
        reset_on_logon: bool = True,
        store_dir: Path | None = None,
        connect: bool = True,
        tls: bool | ssl.SSLContext = False,
    ) -> None:
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
        self.engine.dial(self.session, host, port, reconnect_s=0.2 if connect else 1e9, tls=context)
        if not connect:
            self.engine._dials[0].next_try = float("inf")
        self.engine.start()

    # -- the session's callbacks (engine thread) --------------------------------------------
    def on_logon(self, session: Session) -> None:
        with self._changed:
            self._changed.notify_all()

    def on_logout(self, session: Session) -> None:
        with self._changed:
            self.logouts += 1
            self._changed.notify_all()

    def on_message(self, session: Session, msg: Message) -> bool:
        if self.on_app is not None:
            self.on_app(msg)
            return True
        with self._changed:
            self.received.append(msg)
            self._changed.notify_all()
        return True

    # -- the caller's side -------------------------------------------------------------------
    def send(self, msg_type: str, body: list[Field]) -> int:
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
