"""Single rows of one table, checked and buffered (or encoded at once) for about a µs each.

Publishing a row at a time is what feed handlers do, and anything per row that is not
essential shows: a dict lookup per column, a loop over the schema, an Arrow array per value.
So the code that takes a row is generated per table when it is first published, straight
line: ``row(mapping)`` reads each column by its name once (cheaper than binding keyword
arguments: ~75 against ~125 ns for three columns; an unknown or missing name shows as a
length or a key that does not fit) and ``tup(sequence)`` unpacks a tuple in schema order.
Then each value passes its column's fast type test
(``tickerplant.row_values``; the slow normaliser runs only when that fails), and the row
is either appended to the table's buffer (its values, by one ``list.extend``), or, in
immediate mode, packed into a one-row Arrow message at once (``tickerplant.row_message``)
and handed to ``send``.

A buffer becomes one Arrow batch when the publisher flushes it (``take``): each column is a
slice of the buffer (every n-th value) converted by one ``pa.array`` call, which cannot fail
on values that passed the checks. A flat list costs less than a list per column (one call
per row, not one per value; measured 90 against 105 ns for three columns) and less than a
list of tuples at flush time (a slice is ~1 ns a value, transposing tuples ~20).

A row without ``time`` (or with ``time=None``) is stamped by the tickerplant, as any batch
without a ``time`` column is; rows with and without one go in separate batches, so a
switch between the two flushes what was buffered first (order is kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from tickdb.schema import SchemaError, TableSchema
from tickerplant.row_message import RowMessages
from tickerplant.row_values import RULES, normaliser

# A buffer is sent at this many rows when ``batch_rows`` does not say: bounds a message
# when only ``batch_ms`` is set and rows come fast.
MAX_BUFFERED_ROWS = 100_000
# Prefix of the generated code's own names (column names appear in it only as strings).
_OWN = "_tdb_"


class RowWriter:
    """Takes single rows of one table: ``row(mapping)``, ``tup(sequence)``, ``kw(**row)``.

    Buffered (``send`` None): rows collect until ``take()``; ``on_full()`` is called when
    ``limit`` rows wait (and before rows with ``time`` follow rows without, or back).
    Immediate: each row is encoded and passed to ``send(payload)``.
    """

    def __init__(
        self,
        schema: TableSchema,
        *,
        send: Callable[[bytes], object] | None = None,
        limit: int = 0,
        on_full: Callable[[], object] | None = None,
    ) -> None:
        self.schema = schema
        self.names = schema.column_names[1:]  # all but time
        # The buffered rows' values, row after row (one ``extend`` per row).
        self.timed: list[Any] = []
        self.untimed: list[Any] = []
        self.started = 0.0  # when the first of the buffered rows came (time.monotonic)
        self._messages: dict[bool, RowMessages] = {}
        self.row: Callable[[dict[Any, Any]], None]
        self.tup: Callable[[Any], None]
        self.row, self.tup = self._generate(send, limit, on_full)

    def kw(self, **row: Any) -> None:
        """A row as keyword arguments (``row`` is the faster way in)."""
        self.row(row)

    def _mark(self) -> None:
        self.started = time.monotonic()

    def messages(self, timed: bool) -> RowMessages:
        if timed not in self._messages:
            arrow = self.schema.arrow if timed else self.schema.arrow_without_time
            self._messages[timed] = RowMessages(arrow, self.schema.name)
        return self._messages[timed]

    @property
    def pending(self) -> int:
        """Rows buffered."""
        return len(self.untimed) // len(self.names) + len(self.timed) // (len(self.names) + 1)

    def take(self) -> list[pa.RecordBatch]:
        """The buffered rows as batches (at most two: rows without time, rows with), and an
        empty buffer. Safe against appends from other threads: a row is appended by one
        ``list.extend`` (atomic), and only what was there is taken (from the front)."""
        batches = []
        for values, arrow in (
            (self.untimed, self.schema.arrow_without_time),
            (self.timed, self.schema.arrow),
        ):
            count = len(values)
            if count == 0:
                continue
            # Row-major values, column i every ``width`` from i: a C-speed slice each.
            width = len(arrow)
            arrays = [pa.array(values[i:count:width], type=f.type) for i, f in enumerate(arrow)]
            del values[:count]
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=arrow))
        return batches

    def names_error(self, row: dict[Any, Any]) -> SchemaError:
        """The clear error for a row whose names do not fit the table."""
        names = set(self.schema.column_names)
        unknown = sorted(str(k) for k in row if k not in names)
        missing = [n for n in self.names if n not in row]
        where = f"table {self.schema.name!r}"
        if unknown:
            return SchemaError(f"{where}: unknown columns {unknown} (columns: {sorted(names)})")
        return SchemaError(f"{where}: missing columns {missing} (only time may be left out)")

    def length_error(self, count: int) -> SchemaError:
        names = self.schema.column_names
        return SchemaError(
            f"table {self.schema.name!r}: a row needs {len(names) - 1} values "
            f"({', '.join(names[1:])}) or {len(names)} with time first, got {count}"
        )

    # -- the generated code -----------------------------------------------------------
    def _generate(
        self,
        send: Callable[[bytes], object] | None,
        limit: int,
        on_full: Callable[[], object] | None,
    ) -> tuple[Callable[[dict[Any, Any]], None], Callable[[Any], None]]:
        """``row(mapping)`` and ``tup(sequence)``: one body, two ways in. The code's own
        names all start with ``_tdb_``; the column names appear only as string keys."""
        table = self.schema.name
        columns = self.schema.columns[1:]
        local = [f"{_OWN}v{i}" for i in range(len(columns))]
        t = f"{_OWN}time"
        namespace: dict[str, Any] = {
            # Only the slow path sees a None, so refusing a null sym here costs nothing.
            f"{_OWN}norm{i}": normaliser(table, c.name, c.qtype, nullable=c.name != "sym")
            for i, c in enumerate(columns)
        }
        namespace[f"{_OWN}norm_time"] = normaliser(table, "time", self.schema.columns[0].qtype)
        body = [
            f"if not {RULES[c.qtype].fast.format(v=v)}: {v} = {_OWN}norm{i}({v})"
            for i, (c, v) in enumerate(zip(columns, local, strict=True))
        ]
        time_fast = RULES["timestamp"].fast.format(v=t)
        time_check = f"if not {time_fast}: {t} = {_OWN}norm_time({t})"
        values = ", ".join(local)
        if send is not None:
            namespace[f"{_OWN}send"] = send
            namespace[f"{_OWN}enc_u"] = self.messages(False).encode
            namespace[f"{_OWN}enc_t"] = self.messages(True).encode
            body += [
                f"if {t} is None:",
                f"    {_OWN}send({_OWN}enc_u({values}))",
                "else:",
                f"    {time_check}",
                f"    {_OWN}send({_OWN}enc_t({t}, {values}))",
            ]
        else:
            assert on_full is not None and limit > 0
            namespace.update(
                {
                    f"{_OWN}full": on_full,
                    f"{_OWN}u": self.untimed,
                    f"{_OWN}t": self.timed,
                    f"{_OWN}u_extend": self.untimed.extend,
                    f"{_OWN}t_extend": self.timed.extend,
                    f"{_OWN}mark": self._mark,
                }
            )
            body += [
                f"if {t} is None:",
                f"    if {_OWN}t: {_OWN}full()",
                f"    if not {_OWN}u: {_OWN}mark()",
                f"    {_OWN}u_extend(({values},))",
                f"    if len({_OWN}u) >= {limit * len(local)}: {_OWN}full()",
                "else:",
                f"    {time_check}",
                f"    if {_OWN}u: {_OWN}full()",
                f"    if not {_OWN}t: {_OWN}mark()",
                f"    {_OWN}t_extend(({t}, {values}))",
                f"    if len({_OWN}t) >= {limit * (len(local) + 1)}: {_OWN}full()",
            ]
        namespace[f"{_OWN}length_error"] = self.length_error
        namespace[f"{_OWN}names_error"] = self.names_error
        count = len(local)
        row_head = [
            f"def row({_OWN}row):",
            f"    {_OWN}n = len({_OWN}row)",
            "    try:",
            *(f"        {v} = {_OWN}row[{c.name!r}]" for v, c in zip(local, columns, strict=True)),
            f"        if {_OWN}n == {count}:",
            f"            {t} = None",
            f"        elif {_OWN}n == {count + 1}:",
            f"            {t} = {_OWN}row['time']",
            "        else:",
            "            raise KeyError",
            "    except KeyError:",
            f"        raise {_OWN}names_error({_OWN}row) from None",
        ]
        tup_head = [
            f"def tup({_OWN}row):",
            f"    {_OWN}n = len({_OWN}row)",
            f"    if {_OWN}n == {count}:",
            f"        {values}, = {_OWN}row",
            f"        {t} = None",
            f"    elif {_OWN}n == {count + 1}:",
            f"        {t}, {values}, = {_OWN}row",
            "    else:",
            f"        raise {_OWN}length_error({_OWN}n)",
        ]
        source = "\n".join(
            [*row_head, *(f"    {line}" for line in body), *tup_head]
            + [f"    {line}" for line in body]
        )
        exec(compile(source, f"<rows of {table}>", "exec"), namespace)
        return namespace["row"], namespace["tup"]
