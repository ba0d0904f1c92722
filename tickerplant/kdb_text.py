"""q text calls on the kdb+ ports: ``.u.sub[`;`]``, ``.u.upd[`trade;(`AAPL;189.5;100)]``.

Clients that have no q serializer for their own values send q text (node-q's README
subscribes with ``.u.sub[`;`]``). This reads one call of a name on literal arguments into
the values the IPC decoder would give for the same call, so the text and the binary forms
meet the same checks. It is not a q interpreter: anything but a call on literals (atoms,
vectors, symbols, strings, general lists ``(a;b)``, ``enlist``) is refused with q's
``'parse``-style error naming what was not understood.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from qipc.types import Symbol

_CALL = re.compile(r"^\s*(\.?[A-Za-z][\w.]*)\s*\[(.*)\]\s*$", re.S)

# Numeric atom forms: value text, then an optional type suffix.
_NUMBER = re.compile(r"^(-?(?:\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?|0[nNwW]))([hijef]?)$")
_SUFFIX_DTYPE: dict[str, Any] = {
    "h": np.int16,
    "i": np.int32,
    "j": np.int64,
    "e": np.float32,
    "f": np.float64,
}
_INT_NULL: dict[Any, int] = {np.int16: -(2**15), np.int32: -(2**31), np.int64: -(2**63)}
_DATE = re.compile(r"^\d{4}\.\d{2}\.\d{2}$")
_TIMESTAMP = re.compile(r"^(\d{4}\.\d{2}\.\d{2})[DT](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)$")
_TIMESPAN = re.compile(r"^(-?)(\d+)D(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$")
_CLOCK = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$")


class QTextError(ValueError):
    """Text that is not a call on literals; the message says what was not understood."""


def parse_call(text: str) -> tuple[str, list[Any]] | None:
    """``name[a;b;…]`` as ``(name, [values])``; None when ``text`` is not of that shape."""
    match = _CALL.match(text)
    if match is None:
        return None
    name, inside = match.group(1), match.group(2)
    args = [parse_value(part) for part in _split(inside, ";")]
    return name, args


def _split(text: str, sep: str) -> list[str]:
    """``text`` cut at top-level ``sep`` (outside brackets, parentheses and strings)."""
    parts, depth, quoted, start = [], 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                raise QTextError(f"parse: unbalanced {ch!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if depth or quoted:
        raise QTextError("parse: unbalanced brackets or quotes")
    parts.append(text[start:])
    return parts


def parse_value(text: str) -> Any:
    """One literal: an atom (numpy scalar, ``Symbol``, ``str`` for a string), a vector
    (numpy array; symbols as an object array) or a general list (``list``)."""
    text = text.strip()
    if text == "" or text == "::":
        return None  # an elided argument, as in f[;x]: q's generic null
    if text.startswith("(") and text.endswith(")") and _closes_at_end(text):
        inner = text[1:-1].strip()
        if inner == "":
            return []
        items = _split(inner, ";")
        if len(items) == 1:
            return parse_value(items[0])  # (x) is x
        return [parse_value(item) for item in items]
    if text.startswith("enlist "):
        value = parse_value(text[len("enlist ") :])
        if isinstance(value, Symbol):
            return np.array([str(value)], dtype=object)
        if isinstance(value, np.generic):
            return np.array([value])
        return [value]
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise QTextError(f"parse: unterminated string {text[:20]}")
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    if text.startswith("`"):
        names = text[1:].split("`")
        if any(not re.fullmatch(r"[\w.:/]*", n) for n in names):
            raise QTextError(f"parse: not a symbol {text[:40]}")
        if len(names) == 1:
            return Symbol(names[0])
        return np.array(names, dtype=object)
    return _atoms(text.split())


def _closes_at_end(text: str) -> bool:
    """Whether the parenthesis opening ``text`` is the one closing it."""
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i == len(text) - 1
    return False


def _atoms(tokens: list[str]) -> Any:
    if len(tokens) == 1 and re.fullmatch(r"[01]+b", tokens[0]):
        bits = [c == "1" for c in tokens[0][:-1]]
        return np.bool_(bits[0]) if len(bits) == 1 else np.array(bits, dtype=np.bool_)
    # q types a numeric vector by its last item's suffix: 1 2 3h is three shorts.
    numbers = [_NUMBER.match(token) for token in tokens]
    *head, last = numbers
    if (
        head
        and last is not None
        and last.group(2)
        and all(n is not None and not n.group(2) for n in head)
    ):
        suffix = last.group(2)
        items = [_number(n.group(1), suffix) for n in numbers if n is not None]
        return np.array(items, dtype=_SUFFIX_DTYPE[suffix])
    values = [_atom(token) for token in tokens]
    if len(values) == 1:
        return values[0]
    # q's vector literal 1 2 3.5: one type for all, floats winning over integers.
    if any(isinstance(v, np.floating) for v in values) and all(
        isinstance(v, np.number) for v in values
    ):
        kinds = {type(v) for v in values}
        dtype = np.float32 if kinds == {np.float32} else np.float64
        return np.array(values, dtype=dtype)
    kinds = {v.dtype for v in values}
    if len(kinds) != 1:
        raise QTextError(f"parse: a vector of mixed types {' '.join(tokens)[:40]}")
    return np.array(values)


def _atom(token: str) -> Any:
    number = _NUMBER.match(token)
    if number is not None:
        return _number(number.group(1), number.group(2))
    if _DATE.match(token):
        return np.datetime64(token.replace(".", "-"), "D")
    stamp = _TIMESTAMP.match(token)
    if stamp is not None:
        return np.datetime64(f"{stamp.group(1).replace('.', '-')}T{stamp.group(2)}", "ns")
    span = _TIMESPAN.match(token)
    if span is not None:
        sign, days, hh, mm, ss, frac = span.groups()
        nanos = _clock_ns(hh, mm, ss, frac) + int(days) * 86_400 * 10**9
        return np.timedelta64(-nanos if sign else nanos, "ns")
    clock = _CLOCK.match(token)
    if clock is not None:
        hh, mm, ss, frac = clock.groups()
        nanos = _clock_ns(hh, mm, ss, frac)
        if frac is not None and len(frac) > 3:
            return np.timedelta64(nanos, "ns")  # 09:30:00.000000001 is a timespan in q
        if frac is not None:
            return np.timedelta64(nanos // 10**6, "ms")  # q time
        if ss is not None:
            return np.timedelta64(nanos // 10**9, "s")  # q second
        return np.timedelta64(nanos // (60 * 10**9), "m")  # q minute
    raise QTextError(f"parse: not a literal {token[:40]!r}")


def _clock_ns(hh: str, mm: str, ss: str | None, frac: str | None) -> int:
    seconds = int(hh) * 3600 + int(mm) * 60 + int(ss or 0)
    return seconds * 10**9 + int((frac or "").ljust(9, "0") or 0)


def _number(value: str, suffix: str) -> Any:
    floating = suffix in ("e", "f") or any(c in value for c in ".e") or value in ("0n", "0w")
    if value.lower() in ("0n", "0w", "-0w") or value.endswith(("0N", "0W", "0n", "0w")):
        return _special(value, suffix)
    if floating and suffix in ("h", "i", "j"):
        raise QTextError(f"parse: {value}{suffix} is not a whole number")
    if floating:
        return (np.float32 if suffix == "e" else np.float64)(float(value))
    dtype = _SUFFIX_DTYPE.get(suffix, np.int64)
    return dtype(int(value))


def _special(value: str, suffix: str) -> Any:
    """Nulls and infinities: 0N 0Ni 0n 0w -0w 0W."""
    if value in ("0n", "0w", "-0w") and suffix in ("", "f", "e"):
        number = {"0n": np.nan, "0w": np.inf, "-0w": -np.inf}[value]
        return (np.float32 if suffix == "e" else np.float64)(number)
    dtype: Any = _SUFFIX_DTYPE.get(suffix or "j", np.int64)
    if dtype in (np.float32, np.float64):
        return dtype(np.nan if value.endswith(("N", "n")) else np.inf)
    if value.endswith("N"):
        return dtype(_INT_NULL[dtype])
    bound = np.iinfo(dtype).max
    return dtype(-bound if value.startswith("-") else bound)
