"""The tickerplant's per-request checks (``tickerplant.access``), the table in its docstring
row by row: HELLO for anyone, STATS for readers and admins, ROLL for admins, UPD for the
publishers of that table, a selection for the readers of its tables (or the traders of its
accounts), and nothing at all for a request without an identity."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tickdb.auth import AuthConfig, Authorizer, IdentityConfig
from tickerplant.access import TickerplantAccess
from tickerplant.protocol import HELLO, ROLL, STATS, TopicFilter

ROLES = {
    "ops": ["admin"],
    "reader": ["read"],
    "trade_reader": ["read:trade"],
    "feed": ["publish:trade"],
    "trader": ["trade:ACC1"],
}


@pytest.fixture(scope="module")
def access() -> TickerplantAccess:
    identities = {name: IdentityConfig(roles=roles) for name, roles in ROLES.items()}
    links: Any = SimpleNamespace(
        authorizer=Authorizer(AuthConfig(mode="on", identities=identities))
    )
    return TickerplantAccess(links, ["trade", "quote", "order"])


@pytest.mark.parametrize(
    ("who", "tag", "refused"),
    [
        (None, HELLO, "without an identity"),
        ("feed", HELLO, ""),
        ("reader", STATS, ""),
        ("ops", STATS, ""),
        ("feed", STATS, "may not ask for STATS (needs read or admin)"),
        ("ops", ROLL, ""),
        ("reader", ROLL, "may not ask for ROLL (needs admin)"),
        ("reader", b"NOPE", ""),  # unknown: the caller refuses it as malformed
    ],
)
def test_requests(access: TickerplantAccess, who: str | None, tag: bytes, refused: str) -> None:
    reason = access.request(who, tag)
    assert (reason == "") if not refused else (refused in reason)


@pytest.mark.parametrize(
    ("who", "table", "refused"),
    [
        ("feed", b"trade", ""),
        ("feed", b"quote", "'feed' may not publish quote"),
        ("ops", b"trade", "'ops' may not publish trade"),
        (None, b"trade", "no identity may publish trade"),
    ],
)
def test_publishing(access: TickerplantAccess, who: str | None, table: bytes, refused: str) -> None:
    assert access.publish(who, table) == refused
    assert access.publish(who, table) == refused  # the second answer is the remembered one


def selecting(tables: set[str] | None, accounts: set[str] | None = None) -> TopicFilter:
    return TopicFilter(
        tables=None if tables is None else frozenset(tables),
        syms=None,
        shard=None,
        accounts=None if accounts is None else frozenset(accounts),
    )


def test_selections(access: TickerplantAccess) -> None:
    every = selecting(None)
    assert access.subscription("reader", every) == ""
    assert access.subscription("trade_reader", selecting({"trade"})) == ""
    assert access.subscription("trade_reader", every) == "order, quote"
    assert access.subscription(None, every) == "anything (no identity)"
    own, other = selecting({"order"}, {"ACC1"}), selecting({"order"}, {"ACC2"})
    assert access.subscription("trader", own) == ""
    assert access.subscription("trader", other) == "order"
