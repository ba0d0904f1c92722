"""FIX logons through the :class:`~tickdb.auth.Authorizer`, for the gateway's acceptor.

With ``[auth] mode = "on"`` each ``[fix.sessions.NAME]`` names an identity (``fix.settings``).
A Logon (A) is accepted when Password (554) is that identity's password or one of its
tokens, Username (553), if sent, is the identity's name, and the identity may ``trade`` the
session's account. Anything else is a Logout whose Text (58) says why (credentials are not
told apart: "invalid username or password") and an audit record (``login``, ok false); an
accepted logon is recorded too.

The check runs on the FIX engine's thread, which serves every session. A token costs a
sha256; a password argon2 (50-300 ms) the first time it verifies in this process, then
microseconds (``Authorizer``). A wrong password always costs argon2, so after a refused
logon an address waits 0.1 s, doubling to 5 s per further refusal, before its next logon is
checked: one sooner is refused unchecked, and costs nothing.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fix.codec import Message
from fix.session import Session
from tickdb.audit import AuditLog
from tickdb.auth import Authorizer

log = logging.getLogger(__name__)

INVALID = "Logon refused: invalid username or password"
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 5.0
FORGET_S = 60.0
MAX_HOSTS = 10_000


@dataclass
class _Failures:
    count: int = 0
    retry_at: float = 0.0  # monotonic: no logon from this host is checked before this
    last: float = 0.0


class FixLogonCheck:
    """``Session.check_logon`` for an acceptor's sessions: None accepts, a text refuses."""

    def __init__(
        self,
        authorizer: Authorizer,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authorizer = authorizer
        self.audit = audit or AuditLog(None, "gateway")
        self._clock = clock
        self._hosts: OrderedDict[str, _Failures] = OrderedDict()
        self.refused = 0
        self.throttled = 0

    def __call__(self, session: Session, msg: Message) -> str | None:
        s = session.settings
        where = session.peer
        host = where.rsplit(":", 1)[0]
        claimed = msg.get(553, "") or s.identity
        now = self._clock()
        failures = self._hosts.get(host)
        if failures is not None and now - failures.last > FORGET_S:
            del self._hosts[host]
            failures = None
        if failures is not None and now < failures.retry_at:
            self.throttled += 1
            wait = failures.retry_at - now
            self._record(session, claimed, False, "throttled")
            return f"Logon refused: too many failed logons from {host}; retry in {wait:.1f}s"
        refusal = self._refusal(session, msg)
        if refusal is None:
            self._hosts.pop(host, None)
            self._record(session, claimed, True, "")
            return None
        self.refused += 1
        self._failed(host, now)
        self._record(session, claimed, False, refusal)
        return refusal

    def _refusal(self, session: Session, msg: Message) -> str | None:
        s = session.settings
        if not s.identity:
            return "Logon refused: this session names no [auth] identity"
        user = msg.get(553, "")
        if user and user != s.identity:
            return INVALID
        identity = self.authorizer.check_login(s.identity, msg.get(554, ""))
        if identity is None:
            return INVALID
        if not self.authorizer.allows(identity, "trade", s.account):
            return f"Logon refused: {identity.name!r} may not trade account {s.account!r}"
        return None

    def _failed(self, host: str, now: float) -> None:
        failures = self._hosts.pop(host, None) or _Failures()
        self._hosts[host] = failures  # re-inserted: the oldest host is forgotten first
        while len(self._hosts) > MAX_HOSTS:
            self._hosts.popitem(last=False)
        failures.count += 1
        failures.last = now
        delay = min(BACKOFF_BASE_S * 2 ** min(failures.count - 1, 16), BACKOFF_MAX_S)
        failures.retry_at = now + delay

    def _record(self, session: Session, who: str, ok: bool, why: str) -> None:
        s = session.settings
        self.audit.record(
            who,
            "login",
            ok=ok,
            where=session.peer,
            port="fix",
            session=s.name,
            account=s.account,
            reason=why or None,
        )
