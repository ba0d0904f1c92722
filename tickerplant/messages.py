"""What a ``Subscriber`` delivers: an ``Update`` (rows of one table) or an ``EndOfDay``.

Each owns its bytes, so any of them can be kept for as long as wanted.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import pyarrow as pa

from tickerplant.delivered import Delivered
from tickerplant.payload_reader import read_table
from tickerplant.protocol import Record


class SubscriptionError(Exception):
    """The tickerplant refused the subscription or a replay."""


class Update:
    """Rows of one table; ``data`` decodes the Arrow payload on first use."""

    __slots__ = ("_data", "payload", "seq", "table", "ts_recv")

    def __init__(self, record: Record | Delivered) -> None:
        self.table = record.table
        self.seq = record.seq
        self.ts_recv = record.ts_recv
        # Its own bytes (records decoded from the wire hold bytes already: no copy), so an
        # Update stays valid whatever arrives after it.
        self.payload: bytes = bytes(record.payload)
        self._data: pa.Table | None = None

    @property
    def data(self) -> pa.Table:
        if self._data is None:
            self._data = read_table(self.payload)
        return self._data

    def __repr__(self) -> str:
        return f"Update(table={self.table!r}, seq={self.seq})"


class EndOfDay:
    __slots__ = ("date", "seq")

    def __init__(self, record: Record | Delivered) -> None:
        self.seq = record.seq
        self.date = dt.date.fromisoformat(record.eod_date)

    def __repr__(self) -> str:
        return f"EndOfDay(date={self.date}, seq={self.seq})"


Message = Update | EndOfDay
Start = Literal["live", "session", "journal"] | int
