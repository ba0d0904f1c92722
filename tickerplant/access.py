"""Who may do what on the tickerplant's ZeroMQ ports, once CURVE says who each client is.

The ZAP handler already let in only identities of ``[auth]`` (the publish and replay ports:
only those with a ``read`` role). Each request is then checked here against the roles of
its sender (``docs/security.md``):

=========================  ========================================================
request                    needs
=========================  ========================================================
HELLO                      any identity (its reply says what that identity may do)
UPD of table t             ``publish`` on t
STATS                      ``read`` (some table) or ``admin``
ROLL                       ``admin``
subscription, replay       ``read`` on every table selected (none named: every table)
=========================  ========================================================
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tickdb.auth import Identity
from tickdb.curve_links import CurveLinks
from tickerplant.protocol import HELLO, ROLL, STATS, TopicFilter


class TickerplantAccess:
    def __init__(self, links: CurveLinks, tables: Collection[str]) -> None:
        self.links = links
        self.authorizer = links.authorizer
        self.tables = sorted(tables)
        self._publish: dict[tuple[str, bytes], str] = {}  # (identity, table) -> refusal

    def identity(self, name: str | None) -> Identity | None:
        return None if name is None else self.authorizer.identity(name)

    def request(self, name: str | None, tag: bytes) -> str:
        """Why the identity ``name`` may not make the request ``tag`` ("" when it may)."""
        who = self.identity(name)
        if who is None:
            return "a request without an identity"
        if tag == HELLO:
            return ""
        if tag == STATS and (who.has_role("read") or who.has_role("admin")):
            return ""
        if tag == ROLL and who.has_role("admin"):
            return ""
        if tag in (STATS, ROLL):
            needs = "admin" if tag == ROLL else "read or admin"
            return f"{who.name!r} may not ask for {tag.decode()} (needs {needs})"
        return ""  # an unknown request: refused as malformed by the caller

    def publish(self, name: str | None, table: bytes) -> str:
        """Why the identity ``name`` may not publish rows of ``table`` ("" when it may);
        worked out once per (identity, table), as this is asked for every message."""
        key = (name or "", table)
        refusal = self._publish.get(key)
        if refusal is None:
            text = table.decode(errors="replace")
            who = self.identity(name)
            if who is None:
                refusal = f"no identity may publish {text}"
            elif not self.authorizer.allows(who, "publish", text):
                refusal = f"{name!r} may not publish {text}"
            else:
                refusal = ""
            if len(self._publish) < 100_000:  # table names are the sender's: bounded
                self._publish[key] = refusal
        return refusal

    def read(self, who: Identity | None, tables: frozenset[str] | None) -> str:
        """The tables of a selection ``who`` may not read, or "" (None: every table)."""
        if who is None:
            return "anything (no identity)"
        wanted = sorted(tables) if tables is not None else self.tables
        return ", ".join(t for t in wanted if not self.authorizer.allows(who, "read", t))

    def selection(self, who: Identity | None, selection: TopicFilter) -> str:
        """What of a subscription or replay ``who`` may not read ("" when it may read it
        all): the tables it names, unless it selects by accounts that ``who`` trades. Such a
        selection gets only rows of tables with an ``account`` column, of those accounts
        (``pubsub.select_rows``): a trader follows its own orders and fills, no one
        else's, without a ``read`` role."""
        denied = self.read(who, selection.tables)
        if (
            denied
            and who is not None
            and selection.accounts
            and all(self.authorizer.allows(who, "trade", a) for a in selection.accounts)
        ):
            return ""
        return denied

    def subscription(self, who: str | None, selection: TopicFilter) -> str:
        """``pubsub.Fanout``'s check of one subscription."""
        return self.selection(self.identity(who), selection)

    def describe_name(self, name: str | None) -> dict[str, Any]:
        return self.describe(self.identity(name))

    def describe(self, who: Identity | None) -> dict[str, Any]:
        """What HELLO tells a client about itself, so it can refuse early what the
        tickerplant would refuse: ``{"identity", "read", "publish", "admin"}``, tables as
        lists (every table: ``"*"``)."""
        if who is None:
            return {"identity": None, "read": [], "publish": [], "admin": False}

        def tables(action: str) -> list[str] | str:
            role = who.role(action)  # type: ignore[arg-type]
            if role is None:
                return []
            return "*" if role.resources is None else sorted(role.resources)

        return {
            "identity": who.name,
            "read": tables("read"),
            "publish": tables("publish"),
            "trade": tables("trade"),  # accounts, whose order flow it may follow
            "admin": who.has_role("admin"),
        }
