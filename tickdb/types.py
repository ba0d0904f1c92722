"""The small vocabulary of types the packages share.

Each name here means one thing everywhere: a ``Shard`` is shard ``k`` of ``n`` of the syms,
whether it arrives as ``--shard 1/3``, in a subscription topic, in a replay request, in a
backend's ``info()`` or in an HDB file name. Only the base layer may be imported here, so
every package (tickerplant, rdb, hdb, gateway, orders) can use it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass


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
