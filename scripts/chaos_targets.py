"""What ``scripts/chaos.py`` hits: each target names the components it may hit now (a
pair's node by its lease, the gateway the query clients use) and the requests whose first
success after the hit ends its failover."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos import Chaos


@dataclass(frozen=True)
class Target:
    kind: str  # its name in the report
    pick: Callable[[Chaos], list[str]]  # the components it may hit now
    probes: tuple[str, ...]  # requests whose first success ends its failover


def _named(prefix: str) -> Callable[[Chaos], list[str]]:
    return lambda chaos: [c.name for c in chaos.components() if c.name.startswith(prefix)]


def _venue_primaries(chaos: Chaos) -> list[str]:
    return [name for name, role in chaos.venue_roles().items() if role == "primary"]


def _tp_node(role: str) -> Callable[[Chaos], list[str]]:
    return lambda chaos: [name for name, r in chaos.tp_roles().items() if r == role]


def _gateway_in_use(chaos: Chaos) -> list[str]:
    """The gateway the first query client uses now (the load spreads its clients over the
    gateways): killing it makes the clients on it fail over."""
    client = chaos.load.query_client if chaos.load else None
    url = client.url if client is not None else ""
    names = [c.name for c in chaos.components() if c.name.startswith("gateway")]
    return [n for n in names if chaos.component(n).launched.info.get("url") == url] or names


TARGETS = [
    Target("rdb", _named("rdb-"), ("query",)),
    Target("hdb", _named("hdb-"), ("query",)),
    Target("venue", _venue_primaries, ("order",)),
    Target("gateway", _gateway_in_use, ("query", "order")),
    Target("tp-primary", _tp_node("primary"), ("publish", "order")),
    Target("tp-standby", _tp_node("standby"), ("publish", "order")),
]
