"""What a WHERE clause says about ``date`` and ``sym``: the two columns data is placed by.

The router only needs a safe over-approximation: the set of dates and the set of syms a row
can have and still pass the predicate. ``None`` means "anything" (no restriction known), so
every construct this module does not understand makes routing wider, never wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

# Inclusive date intervals; unions of them describe the dates a predicate allows.
Interval = tuple[dt.date, dt.date]
MIN_DATE = dt.date.min
MAX_DATE = dt.date.max


@dataclass(frozen=True)
class DateSet:
    intervals: tuple[Interval, ...]

    @classmethod
    def between(cls, lo: dt.date = MIN_DATE, hi: dt.date = MAX_DATE) -> DateSet:
        return cls(((lo, hi),) if lo <= hi else ())

    @classmethod
    def of(cls, dates: list[dt.date]) -> DateSet:
        return cls(()).union(*(cls.between(d, d) for d in dates))

    def union(self, *others: DateSet) -> DateSet:
        spans = sorted([i for s in (self, *others) for i in s.intervals])
        merged: list[Interval] = []
        for lo, hi in spans:
            if merged and lo <= _next_day(merged[-1][1]):
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return DateSet(tuple(merged))

    def intersect(self, other: DateSet) -> DateSet:
        out = []
        for a_lo, a_hi in self.intervals:
            for b_lo, b_hi in other.intervals:
                lo, hi = max(a_lo, b_lo), min(a_hi, b_hi)
                if lo <= hi:
                    out.append((lo, hi))
        return DateSet(()).union(DateSet(tuple(out)))

    def contains(self, day: dt.date) -> bool:
        return any(lo <= day <= hi for lo, hi in self.intervals)

    @property
    def empty(self) -> bool:
        return not self.intervals


def _next_day(day: dt.date) -> dt.date:
    return day if day == MAX_DATE else day + dt.timedelta(days=1)


def _prev_day(day: dt.date) -> dt.date:
    return day if day == MIN_DATE else day - dt.timedelta(days=1)


@dataclass(frozen=True)
class Restriction:
    """Dates and syms a row may have; None is unrestricted."""

    dates: DateSet | None = None
    syms: frozenset[str] | None = None

    def both(self, other: Restriction) -> Restriction:
        dates = (
            other.dates
            if self.dates is None
            else (self.dates if other.dates is None else self.dates.intersect(other.dates))
        )
        syms = (
            other.syms
            if self.syms is None
            else (self.syms if other.syms is None else self.syms & other.syms)
        )
        return Restriction(dates, syms)

    def either(self, other: Restriction) -> Restriction:
        dates = None if self.dates is None or other.dates is None else self.dates.union(other.dates)
        syms = None if self.syms is None or other.syms is None else self.syms | other.syms
        return Restriction(dates, syms)


UNRESTRICTED = Restriction()
# The columns data is placed by: ``date`` picks the tier, ``sym`` the shard.
ROUTING = frozenset({"date", "sym"})

# Decides whether a column node is the date or sym column of the rows being routed.
ColumnRole = Callable[[exp.Column], str | None]


def conjuncts(node: exp.Expr | None) -> list[exp.Expr]:
    if node is None:
        return []
    if isinstance(node, exp.Where):
        node = node.this
    if isinstance(node, exp.Paren):
        return conjuncts(node.this)
    if isinstance(node, exp.And):
        return conjuncts(node.this) + conjuncts(node.expression)
    return [node]


def date_literal(node: exp.Expr) -> dt.date | None:
    """A constant date: '2024-01-02', DATE '2024-01-02', '2024-01-02'::DATE."""
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            return dt.date.fromisoformat(node.this)
        except ValueError:
            return None
    return None


def _sym_literal(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.VARCHAR):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    return None


_FLIP: dict[type, type] = {
    exp.GT: exp.LT,
    exp.GTE: exp.LTE,
    exp.LT: exp.GT,
    exp.LTE: exp.GTE,
    exp.EQ: exp.EQ,
}


def _compare(op: type, role: str, value: exp.Expr) -> Restriction:
    if role == "sym":
        sym = _sym_literal(value)
        if op is exp.EQ and sym is not None:
            return Restriction(syms=frozenset([sym]))
        return UNRESTRICTED
    day = date_literal(value)
    if day is None:
        return UNRESTRICTED
    if op is exp.EQ:
        return Restriction(dates=DateSet.between(day, day))
    if op is exp.GT:
        return Restriction(dates=DateSet.between(lo=_next_day(day)))
    if op is exp.GTE:
        return Restriction(dates=DateSet.between(lo=day))
    if op is exp.LT:
        return Restriction(dates=DateSet.between(hi=_prev_day(day)))
    return Restriction(dates=DateSet.between(hi=day))  # LTE


def restriction_of(node: exp.Expr, role: ColumnRole) -> Restriction:
    """The dates and syms rows passing ``node`` can have."""
    if isinstance(node, exp.Paren):
        return restriction_of(node.this, role)
    if isinstance(node, exp.And):
        return restriction_of(node.this, role).both(restriction_of(node.expression, role))
    if isinstance(node, exp.Or):
        return restriction_of(node.this, role).either(restriction_of(node.expression, role))
    if type(node) in _FLIP:
        left, right = node.this, node.expression
        if isinstance(left, exp.Column) and role(left):
            return _compare(type(node), str(role(left)), right)
        if isinstance(right, exp.Column) and role(right):
            return _compare(_FLIP[type(node)], str(role(right)), left)
        return UNRESTRICTED
    if (
        isinstance(node, exp.In)
        and isinstance(node.this, exp.Column)
        and not node.args.get("query")
        and not node.args.get("not")
    ):
        which = role(node.this)
        parts = [_compare(exp.EQ, which, v) for v in node.expressions] if which else []
        if not parts:
            return UNRESTRICTED
        out = parts[0]
        for part in parts[1:]:
            out = out.either(part)
        return out
    if (
        isinstance(node, exp.Between)
        and isinstance(node.this, exp.Column)
        and (role(node.this) == "date")
    ):
        lo, hi = date_literal(node.args["low"]), date_literal(node.args["high"])
        if lo is not None and hi is not None:
            return Restriction(dates=DateSet.between(lo, hi))
    return UNRESTRICTED


def restriction_of_all(nodes: list[exp.Expr], role: ColumnRole) -> Restriction:
    out = UNRESTRICTED
    for node in nodes:
        out = out.both(restriction_of(node, role))
    return out
