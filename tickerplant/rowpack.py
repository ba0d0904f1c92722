"""One-row messages without an Arrow reader: check each, pack a short run into one batch.

A feed that sends a row per message at a modest rate is the latency case: the tickerplant
sees one message, or a few that queued together, per turn of its loop. An Arrow reader
costs several microseconds per message and a reader over a few spliced messages, plus the
re-encoding, tens; that was most of a one-row message's time in the tickerplant. So, as in
``onerow.py`` (which decodes long runs with numpy), the metadata of one-row batch messages
of one schema from one writer is a fixed flatbuffer in which only numbers change: a
*layout* learned from a message pyarrow has read says which words all such messages share
and where the numbers are. Each message is then checked word by word and number by number
(one row, buffers inside the body, string offsets inside their data, valid UTF-8), and a
run is packed into one batch message of the table's canonical schema by writing the numbers
into the canonical layout and copying the values; rows sent without ``time`` get the
receive time there. The packed batch is byte for byte what pyarrow writes for the same rows
(``onerow``'s decoding or a reader, then ``encode_rows``): tests hold it to that, so which
of them takes a run never shows.

The work is done by the C extension ``tickerplant._rowpack`` (built by ``pip install``,
``setup.py``) when it is there, else by the pure-Python functions below, which give the
same answers and the same bytes (the tests hold them to each other and to pyarrow's
reader). ``TICKDB_PURE_PYTHON=1`` in the environment forces the pure-Python ones. Compiled,
it packs runs of any length (a few microseconds for thousands of rows); in pure Python,
which costs microseconds a row, it takes short runs only and leaves long ones to
``onerow``.

A message of a run may hold several rows: a gateway sends a burst of order requests as one
batch, a venue its answers to them, both without ``time``. Compiled, such a message is
checked as ``rows_check`` checks a table (every row) and packed row by row like the rest,
so the stamp costs no reader and no re-encoding either. The pure-Python fallback leaves it
to a reader and ``ingest._stamped`` (the same bytes); ``PurePython(many_rows=True)`` packs
it as the C extension does, the reference the tests hold the C extension to.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol

import pyarrow as pa

# The layouts (``row_layout``) and the pure-Python implementation (``rowpack_python``)
# live in modules of their own; their verdicts and ``PurePython`` are named here too.
from tickerplant.row_layout import FITS, OTHER_LAYOUT, REFUSED, Layout, canonical_layout
from tickerplant.rowpack_python import PurePython
from tickerplant.rows_check import ROWS_REFUSED

log = logging.getLogger(__name__)

PURE_PYTHON_ENV = "TICKDB_PURE_PYTHON"

# -- the two implementations --------------------------------------------------------------


class Implementation(Protocol):
    name: str

    def check(self, layout: Layout, message: memoryview | bytes) -> int: ...

    def check_rows(self, layout: Layout, message: memoryview | bytes) -> int: ...

    def pack(
        self,
        out: Layout,
        into: Layout,
        prefix: bytes,
        messages: Sequence[memoryview | bytes],
        stamp: int | None,
    ) -> bytes | None: ...


class Compiled:
    """The C extension, behind the same methods."""

    name = "c"

    def __init__(self, module: ModuleType) -> None:
        self._check = module.check
        self._check_rows = module.check_rows
        self._pack = module.pack
        self._columns = module.columns

    def columns(self, layout: Layout, kinds: bytes, message: memoryview | bytes) -> Any:
        """Each field's values (a list per field) of a batch message of ``layout``, any
        number of rows, by ``kinds`` (a struct code per field, ``s`` a UTF-8 string); None
        when it does not fit (``tickerplant.payload_columns``)."""
        return self._columns(layout.spec, kinds, message)

    def check(self, layout: Layout, message: memoryview | bytes) -> int:
        return int(self._check(layout.spec, message))

    def check_rows(self, layout: Layout, message: memoryview | bytes) -> int:
        return int(self._check_rows(layout.spec, message))

    def pack(
        self,
        out: Layout,
        into: Layout,
        prefix: bytes,
        messages: Sequence[memoryview | bytes],
        stamp: int | None,
    ) -> bytes | None:
        packed: bytes | None = self._pack(out.spec, into.spec, prefix, messages, stamp)
        return packed


def compiled() -> Compiled | None:
    """The C extension, or None when it was not built."""
    try:
        from tickerplant import _rowpack  # type: ignore[attr-defined]
    except ImportError:
        return None
    return Compiled(_rowpack)


def implementation() -> Implementation:
    """The C extension unless it is missing or ``TICKDB_PURE_PYTHON`` is set."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return PurePython()
    found = compiled()
    if found is None:
        log.warning(
            "tickerplant._rowpack is not built: one-row messages are checked in pure "
            "Python, several times slower (`pip install -e .` builds it)"
        )
        return PurePython()
    return found


# -- per table ----------------------------------------------------------------------------
MAX_LAYOUTS = 4  # per table and timed or not: publishers with different Arrow writers


class RowPacker:
    """One table's one-row messages, sent with ``time`` or without: the layouts seen so far
    (learned from the first message of each, read by pyarrow), checking and packing."""

    def __init__(self, schema: pa.Schema, untimed: pa.Schema, impl: Implementation) -> None:
        self.impl = impl
        self.prefix = schema.serialize().to_pybytes()
        self.output = canonical_layout(schema)
        self._schemas = {True: schema, False: untimed}
        self._layouts: dict[bool, list[Layout]] = {True: [], False: []}

    def packed_nulls_at(self, column: int) -> int:
        """Where a payload ``pack`` returns holds ``column``'s null count (a u64)."""
        return 0 if self.output is None else len(self.prefix) + self.output.nulls_at[column]

    def layout_for(self, has_time: bool, message: memoryview) -> Layout | None:
        """The layout ``message`` fits, learning it if it is new; None if it fits none."""
        if self.output is None:
            return None
        layouts = self._layouts[has_time]
        for layout in layouts:
            verdict = self.impl.check(layout, message)
            if verdict == FITS:
                return layout
            if verdict == REFUSED:
                return None  # a known shape, so not a new layout: just not one row, or bad
        learned = self._learn(has_time, message)
        return learned if learned and self.impl.check(learned, message) == FITS else None

    def rows_of(self, has_time: bool, message: memoryview) -> int | None:
        """The rows of ``message``, a batch message of any number of rows, when it fits a
        layout (learning its layout if it is new, as ``layout_for``); None when it does not:
        a reader has to look at it."""
        fitted = self.fit_rows(has_time, message)
        return None if fitted is None else fitted[0]

    def fit_rows(self, has_time: bool, message: memoryview) -> tuple[int, Layout] | None:
        """``rows_of``, with the layout the message fits (where its null counts are)."""
        if self.output is None:
            return None
        layouts = self._layouts[has_time]
        for layout in layouts:
            rows = self.impl.check_rows(layout, message)
            if rows >= 0:
                return rows, layout
            if rows == ROWS_REFUSED:
                return None  # a known shape: bad, or more than Arrow's checks would take
        learned = self._learn(has_time, message)
        rows = -1 if learned is None else self.impl.check_rows(learned, message)
        return (rows, learned) if learned is not None and rows >= 0 else None

    def _learn(self, has_time: bool, message: memoryview) -> Layout | None:
        """The layout of a message no known layout takes, now known first; None when it
        has none (a reader has to look at it) or it is one already known."""
        layouts = self._layouts[has_time]
        learned = Layout.of(self._schemas[has_time], message)
        if learned is None or learned in layouts:
            return None
        layouts.insert(0, learned)
        del layouts[MAX_LAYOUTS:]
        return learned

    def packed_rows(self, packed: bytes) -> int:
        """The rows of a payload ``pack`` returned."""
        assert self.output is not None
        at = len(self.prefix) + 8 * self.output.w_rows
        return int.from_bytes(packed[at : at + 8], "little")

    def pack(self, has_time: bool, messages: Sequence[memoryview], stamp: int) -> bytes | None:
        """The canonical payload of a run of batch messages, each of one row or more (the
        first decides the layout, and is learned from when it is a one-row message),
        stamped with ``stamp`` when they came without ``time``; None if one does not fit."""
        if self.output is None:
            return None
        stamped = None if has_time else stamp
        # Packing checks every message: only when that fails is it asked why, so that a
        # run of a known layout is read once.
        for layout in self._layouts[has_time]:
            packed = self.impl.pack(self.output, layout, self.prefix, messages, stamped)
            if packed is not None:
                return packed
            if self.impl.check(layout, messages[0]) != OTHER_LAYOUT:
                return None  # the first fits (a later one does not), or is refused
        learned = self.layout_for(has_time, messages[0])  # a new layout, perhaps
        if learned is None:
            return None
        return self.impl.pack(self.output, learned, self.prefix, messages, stamped)
