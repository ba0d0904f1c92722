"""q literal atoms (numbers with type suffixes, temporals, nulls, infinities) -> typed SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass

from queries.q.errors import TranslationError
from queries.q.qtypes import INT_INFINITY, sql_type


@dataclass(frozen=True)
class Atom:
    sql: str
    qtype: str
    is_null: bool = False
    # For timespans: the exact value in nanoseconds (INTERVAL only keeps microseconds).
    nanos: int | None = None


_SUFFIX_TYPE = {"h": "short", "i": "int", "j": "long", "e": "real", "f": "float", "b": "boolean"}
_NULL_TYPE = {
    "": "long", "h": "short", "i": "int", "j": "long", "e": "real", "f": "float",
    "d": "date", "p": "timestamp", "m": "month", "n": "timespan", "u": "minute",
    "v": "second", "t": "time",
}  # fmt: skip
_TIMESTAMP = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})D(.*)")
_DATE = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})")
_MONTH = re.compile(r"(\d{4})\.(\d{2})m")
_TIMESPAN = re.compile(r"(\d+)D(.*)")
_CLOCK = re.compile(r"(\d{2})(?::(\d{2}))?(?::(\d{2}))?(?:\.(\d*))?")
_TIME_OF_DAY = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d*)?)?)([nuvt]?)")


def null_atom(qtype: str) -> Atom:
    return Atom(f"CAST(NULL AS {sql_type(qtype)})", qtype, is_null=True)


def vector_atoms(items: tuple[str, ...], pos: int) -> list[Atom]:
    """Atoms of a vector literal; a type suffix on the last item types the whole vector."""
    last = items[-1]
    if len(items) == 1 and re.fullmatch(r"[01]{2,}b", last):
        return boolean_vector(last)
    if len(items) > 1 and last[-1] in "hijef" and not last.startswith(("0N", "0W", "-0W")):
        suffix = last[-1]
        return [atom(i if i[-1] == suffix else i + suffix, pos) for i in items]
    atoms = [atom(i, pos) for i in items]
    if {a.qtype for a in atoms} == {"long", "float"}:
        # 1 2.5 and 1 0n are float vectors in q.
        return [_as_float(a, i, pos) for a, i in zip(atoms, items, strict=True)]
    return atoms


def _as_float(a: Atom, text: str, pos: int) -> Atom:
    if a.qtype != "long":
        return a
    return null_atom("float") if a.is_null else atom(text + "f", pos)


def atom(text: str, pos: int) -> Atom:
    try:
        return _atom(text, pos)
    except TranslationError:
        raise
    except ValueError:  # float() or int() of a malformed body (``09:30e``), or 5,000 digits
        raise TranslationError(f"malformed literal {text[:40]!r}", pos) from None


def _atom(text: str, pos: int) -> Atom:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    if body[:2] in ("0N", "0n"):
        return _null(body, pos)
    if body[:2] in ("0W", "0w"):
        return _infinity(body, neg, pos)
    m = _TIMESTAMP.fullmatch(body)
    if m:
        clock = _clock_nanos(m.group(4) or "00", pos)
        return _timestamp(m.group(1), m.group(2), m.group(3), clock, neg, pos)
    m = _MONTH.fullmatch(body)
    if m:
        _check_negative(neg, "month", pos)
        return Atom(f"DATE '{m.group(1)}-{m.group(2)}-01'", "month")
    m = _DATE.fullmatch(body)
    if m:
        _check_negative(neg, "date", pos)
        return Atom(f"DATE '{m.group(1)}-{m.group(2)}-{m.group(3)}'", "date")
    m = _TIMESPAN.fullmatch(body)
    if m:
        nanos = int(m.group(1)) * 86_400_000_000_000 + _clock_nanos(m.group(2) or "00", pos)
        return _timespan(-nanos if neg else nanos)
    m = _TIME_OF_DAY.fullmatch(body)
    if m:
        return _time_of_day(m.group(1), m.group(2), neg, pos)
    return _number(body, neg, pos)


def _check_negative(neg: bool, what: str, pos: int) -> None:
    if neg:
        raise TranslationError(f"negative {what} literal is not supported", pos)


def _null(body: str, pos: int) -> Atom:
    if body == "0n":
        return null_atom("float")
    suffix = body[2:]
    if suffix not in _NULL_TYPE:
        raise TranslationError(f"null literal {body!r} is not supported", pos)
    return null_atom(_NULL_TYPE[suffix])


def _infinity(body: str, neg: bool, pos: int) -> Atom:
    sign = "-" if neg else ""
    if body == "0w":
        return Atom(f"'{sign}inf'::DOUBLE", "float")
    qtype = {"0W": "long", "0Wj": "long", "0Wi": "int", "0Wh": "short"}.get(body)
    if qtype is None:
        raise TranslationError(f"infinity literal {body!r} is not supported", pos)
    return Atom(f"CAST({sign}{INT_INFINITY[qtype]} AS {sql_type(qtype)})", qtype)


def _clock_nanos(text: str, pos: int) -> int:
    m = _CLOCK.fullmatch(text)
    if m is None:
        raise TranslationError(f"malformed time {text!r}", pos)
    hh, mm, ss, frac = (m.group(i) for i in range(1, 5))
    seconds = int(hh) * 3600 + int(mm or 0) * 60 + int(ss or 0)
    frac_nanos = int((frac or "").ljust(9, "0")[:9] or 0)
    return seconds * 1_000_000_000 + frac_nanos


def _timestamp(y: str, mo: str, d: str, clock: int, neg: bool, pos: int) -> Atom:
    _check_negative(neg, "timestamp", pos)
    secs, frac = divmod(clock, 1_000_000_000)
    hh, rem = divmod(secs, 3600)
    mm, ss = divmod(rem, 60)
    if hh >= 24:
        raise TranslationError("timestamp time of day must be before 24:00", pos)
    return Atom(f"TIMESTAMP_NS '{y}-{mo}-{d} {hh:02d}:{mm:02d}:{ss:02d}.{frac:09d}'", "timestamp")


def _timespan(nanos: int) -> Atom:
    micros = nanos // 1000 if nanos >= 0 else -((-nanos) // 1000)
    return Atom(f"to_microseconds({micros}::BIGINT)", "timespan", nanos=nanos)


def _time_of_day(text: str, suffix: str, neg: bool, pos: int) -> Atom:
    parts = text.split(":")
    frac = text.split(".")[1] if "." in text else None
    if suffix:
        qtype = {"n": "timespan", "u": "minute", "v": "second", "t": "time"}[suffix]
    elif len(parts) == 2:
        qtype = "minute"
    elif frac is None:
        qtype = "second"
    elif len(frac) <= 3:
        qtype = "time"
    else:
        qtype = "timespan"  # 09:30:00.000000000 is a timespan in q
    nanos = _clock_nanos(text, pos)
    if qtype == "timespan":
        return _timespan(-nanos if neg else nanos)
    _check_negative(neg, qtype, pos)
    if nanos >= 86_400_000_000_000:
        raise TranslationError(f"{qtype} literal {text!r} past 24:00 is not supported", pos)
    secs, rest = divmod(nanos, 1_000_000_000)
    hh, rem = divmod(secs, 3600)
    mm, ss = divmod(rem, 60)
    millis = rest // 1_000_000
    return Atom(f"TIME '{hh:02d}:{mm:02d}:{ss:02d}.{millis:03d}'", qtype)


def _number(body: str, neg: bool, pos: int) -> Atom:
    sign = "-" if neg else ""
    suffix = body[-1] if body[-1] in _SUFFIX_TYPE else ""
    digits = body[:-1] if suffix else body
    if suffix == "b":
        if neg or len(digits) != 1 or digits not in "01":
            raise TranslationError(f"boolean literal {body!r}: use one of 0b 1b", pos)
        return Atom("true" if digits == "1" else "false", "boolean")
    is_float = "." in digits or "e" in digits
    qtype = _SUFFIX_TYPE.get(suffix, "float" if is_float else "long")
    if is_float and qtype not in ("real", "float"):
        raise TranslationError(f"number {body!r} has a fraction but an integer type suffix", pos)
    value = float(sign + digits) if qtype in ("real", "float") else int(sign + digits)
    return Atom(f"CAST({value!r} AS {sql_type(qtype)})", qtype)


def boolean_vector(text: str) -> list[Atom]:
    """``101b`` is a boolean vector in q."""
    return [Atom("true" if ch == "1" else "false", "boolean") for ch in text[:-1]]
