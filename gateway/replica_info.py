"""One backend's picture from the infos of its replicas, for planning.

Replicas hold the same rows, but not always at the same instant: around end of day one
RDB replica may have handed a date over while another still holds it, and an HDB replica
may have loaded a partition the other has not. The planner only uses a backend's info to
rule it out ("it cannot hold rows of these dates"), so the merged picture is the widest:
every date any replica holds. What a chosen replica really holds is checked per query,
from that replica's own info (``gateway.failover``, ``gateway.handover``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tickdb.types import BackendInfo, TableInfo


def merged_info(infos: Sequence[BackendInfo]) -> BackendInfo:
    """The union of what ``infos`` (one backend's replicas, at least one) say they hold."""
    if len(infos) == 1:
        return infos[0]
    first = infos[0]
    tables: dict[str, TableInfo] = {}
    for info in infos:
        for name, meta in info.tables.items():
            seen = tables.get(name)
            if seen is None:
                tables[name] = meta
                continue
            tables[name] = TableInfo(
                columns=seen.columns or meta.columns,
                rows=max(seen.rows, meta.rows),
                dates=tuple(sorted(set(seen.dates) | set(meta.dates))),
                files=seen.files,
                extra=seen.extra,
            )
    held = sorted({d for info in infos for d in info.dates or ()})
    sessions = [info.date for info in infos if info.date is not None]
    states: dict[dt.date, str] = {}
    for info in reversed(infos):  # the first replica's word wins
        states.update(info.states or {})
    return BackendInfo(
        role=first.role,
        shard=first.shard,
        tables=tables,
        # The oldest session: a replica that has not rolled yet still answers for it.
        date=min(sessions, default=None),
        dates=tuple(held) if any(info.dates is not None for info in infos) else None,
        query_dates=True if all(info.query_dates for info in infos) else first.query_dates,
        states=states if any(info.states is not None for info in infos) else None,
        seq=max((i.seq for i in infos if i.seq is not None), default=None),
        tp_seq=max((i.tp_seq for i in infos if i.tp_seq is not None), default=None),
        last_heartbeat=max(
            (i.last_heartbeat for i in infos if i.last_heartbeat is not None), default=None
        ),
        current=any(info.current is not False for info in infos),
        extra=first.extra,
    )
