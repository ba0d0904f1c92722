"""The small vocabulary of types the packages share.

Each name here means one thing everywhere: a ``Shard`` is shard ``k`` of ``n`` of the syms,
whether it arrives as ``--shard 1/3``, in a subscription topic, in a replay request, in a
backend's ``info()`` or in an HDB file name; a ``BackendInfo`` is what an RDB or HDB reports
about itself, written by them and read by the gateway. Nothing here imports the packages,
so every one of them (tickerplant, rdb, hdb, gateway, orders) can use it.
"""

from __future__ import annotations

import datetime as dt
import typing
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

# How the tickerplant journals and publishes: each batch as it arrives (``immediate``), or
# rows coalesced per table every ``tickerplant.batch_interval_ms`` (``batched``). Set in the
# config (``tickerplant.mode``), acted on by ``tickerplant.server``, reported by its INFO.
PublishMode = Literal["immediate", "batched"]


def shard_of(sym: str, shards: int) -> int:
    """Stable shard of a symbol: CRC-32 of its UTF-8 bytes, mod the shard count.

    Stable across processes and languages (Python's hash() is salted per process). The
    tickerplant routes rows with it and every venue, RDB, HDB writer and gateway places syms
    with it, so it is the only sym -> shard function there is.
    """
    return zlib.crc32(sym.encode()) % shards


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` of the syms: the rows whose ``shard_of(sym, count)`` is
    ``index``. Written ``k/n`` in text (``str(shard)``) and ``[k, n]`` in JSON."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"bad shard {self.index}/{self.count}: need 0 <= k < n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"k/n"`` -> ``Shard(k, n)``; anything else is a ValueError that quotes it."""
        try:
            k, n = (int(x) for x in text.split("/"))
            return cls(k, n)
        except ValueError:
            msg = f"shard must be k/n with 0 <= k < n (e.g. 1/3), got {text!r}"
            raise ValueError(msg) from None

    @classmethod
    def of(cls, value: Shard | Sequence[int] | str) -> Shard:
        """A shard given as a ``Shard``, ``"k/n"`` or a ``(k, n)`` pair (JSON's ``[k, n]``)."""
        if isinstance(value, Shard):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        try:
            k, n = value
            return cls(int(k), int(n))
        except (TypeError, ValueError):
            raise ValueError(f"shard must be [k, n] with 0 <= k < n, got {value!r}") from None

    def owns(self, sym: str) -> bool:
        """Whether rows of ``sym`` belong to this shard."""
        return shard_of(sym, self.count) == self.index

    def to_json(self) -> list[int]:
        return [self.index, self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


UNSHARDED = Shard(0, 1)


# -- what a backend reports about itself --------------------------------------------------

BackendRole = Literal["rdb", "hdb"]
_ROLES: frozenset[str] = frozenset(typing.get_args(BackendRole))


def _date(value: Any) -> dt.date:
    """An ISO date (a timestamp's date part is accepted too)."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def _dates(values: Any) -> tuple[dt.date, ...]:
    return tuple(_date(v) for v in values or ())


def _iso(days: Iterable[dt.date]) -> list[str]:
    return [d.isoformat() for d in days]


@dataclass(frozen=True, kw_only=True)
class TableInfo:
    """One table as a backend describes it: ``info()["tables"][name]``."""

    columns: tuple[tuple[str, str], ...] = ()  # (name, q type), without ``date``
    rows: int = 0
    dates: tuple[dt.date, ...] = ()  # the dates it holds rows (or files) for
    files: int | None = None  # HDB: the Parquet files behind its view
    extra: Mapping[str, Any] = field(default_factory=dict)  # other keys, as sent

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TableInfo:
        return cls(
            columns=tuple((str(name), str(qtype)) for name, qtype in raw.get("columns") or ()),
            rows=int(raw.get("rows") or 0),
            dates=_dates(raw.get("dates")),
            files=None if raw.get("files") is None else int(raw["files"]),
            extra={k: v for k, v in raw.items() if k not in _TABLE_KEYS},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "columns": [[name, qtype] for name, qtype in self.columns],
            "rows": self.rows,
            "dates": _iso(self.dates),
        }
        if self.files is not None:
            out["files"] = self.files
        return {**out, **self.extra}


_TABLE_KEYS = frozenset(f.name for f in fields(TableInfo)) - {"extra"}


@dataclass(frozen=True, kw_only=True)
class BackendInfo:
    """What an RDB or HDB reports about itself: its query service's INFO reply.

    The RDB and HDB write it (``to_json``), the gateway reads it (``from_json``) to route
    by shard and date. The optional fields are the RDB's session, which an HDB does not
    report: None there, and left out of the JSON. Keys this version does not know (newer
    backends, the query service's counters, each role's own counters) are kept in
    ``extra`` and written back as they came, so a reader never refuses a newer backend.
    """

    role: BackendRole
    shard: Shard | None = None  # None: every sym
    tables: Mapping[str, TableInfo] = field(default_factory=dict)
    date: dt.date | None = None  # RDB: the live session date
    dates: tuple[dt.date, ...] | None = None  # RDB: every date it answers for, rolled ones too
    query_dates: bool | None = None  # RDB: each query reply lists its snapshot's dates
    states: Mapping[dt.date, str] | None = None  # RDB: each date's state (``rdb.store``)
    seq: int | None = None  # RDB: the last sequence number it applied
    tp_seq: int | None = None  # RDB: the tickerplant's, as last heard
    last_heartbeat: float | None = None  # RDB: time.time() of the last message it got
    # RDB: it has applied everything the tickerplant had when it subscribed (a restarted RDB
    # replays first); the gateway routes only to current replicas. None: not reported.
    current: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # other keys, as sent

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BackendInfo:
        """Read an INFO reply; ValueError if it is not one (no known ``role``, bad values)."""
        role = raw.get("role")
        if role not in _ROLES:
            raise ValueError(f"backend info: role must be rdb or hdb, got {role!r}")
        try:
            shard = raw.get("shard")
            states = raw.get("states")
            return cls(
                role=role,
                shard=None if not shard else Shard.of(shard),
                tables={
                    str(name): TableInfo.from_json(meta)
                    for name, meta in (raw.get("tables") or {}).items()
                },
                date=None if raw.get("date") is None else _date(raw["date"]),
                dates=None if raw.get("dates") is None else _dates(raw["dates"]),
                query_dates=None if raw.get("query_dates") is None else bool(raw["query_dates"]),
                states=None if states is None else {_date(d): str(s) for d, s in states.items()},
                seq=None if raw.get("seq") is None else int(raw["seq"]),
                tp_seq=None if raw.get("tp_seq") is None else int(raw["tp_seq"]),
                last_heartbeat=(
                    None if raw.get("last_heartbeat") is None else float(raw["last_heartbeat"])
                ),
                current=None if raw.get("current") is None else bool(raw["current"]),
                extra={k: v for k, v in raw.items() if k not in _BACKEND_KEYS},
            )
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"backend info: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "shard": None if self.shard is None else self.shard.to_json(),
        }
        if self.date is not None:
            out["date"] = self.date.isoformat()
        if self.dates is not None:
            out["dates"] = _iso(self.dates)
        if self.query_dates is not None:
            out["query_dates"] = self.query_dates
        if self.states is not None:
            out["states"] = {d.isoformat(): s for d, s in self.states.items()}
        for key in ("seq", "tp_seq", "last_heartbeat", "current"):
            if (value := getattr(self, key)) is not None:
                out[key] = value
        out["tables"] = {name: meta.to_json() for name, meta in self.tables.items()}
        return {**out, **self.extra}


_BACKEND_KEYS = frozenset(f.name for f in fields(BackendInfo)) - {"extra"}
