"""q source text -> tokens.

The lexer already groups what q groups at the lexical level: a run of space-separated numeric
or temporal atoms is one vector literal (``1 2 3``, ``09:30 16:00``) and a run of back-ticked
names is one symbol vector (`` `a`b`c ``). It also decides the one context-dependent case of
q's lexis: ``-`` starts a negative number after a non-noun or after whitespace (``x -1``) and
is the minus verb otherwise (``x-1``, ``x - 1``).
"""

from __future__ import annotations

import re

from queries.deadline import checkpoint
from queries.q.errors import TranslationError
from queries.q.tokens import Kind, Token

# One numeric or temporal atom, most specific form first. Nulls and infinities (0N 0n 0Nd 0w
# ...) come before plain numbers so that ``0N`` is not read as ``0`` followed by ``N``.
_ATOM = re.compile(
    r"""-?(?:
      \d{4}\.\d{2}\.\d{2}D(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d*)?)?)?)?   # timestamp
    | \d{4}\.\d{2}\.\d{2}                                              # date
    | \d{4}\.\d{2}m                                                    # month
    | \d+D(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d*)?)?)?)?                   # timespan
    | \d{2}:\d{2}(?::\d{2}(?:\.\d*)?)?[nuvt]?                          # time, minute, second
    | 0[NnWw][a-z]?                                                    # null, infinity
    | (?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?[bhijef]?                       # number
    )(?![A-Za-z0-9_.:])""",
    re.VERBOSE,
)
_VECTOR_GAP = re.compile(r"[ \t]+")
_NAME = re.compile(r"\.?[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
_SYMBOL = re.compile(r"`([A-Za-z0-9_.:/]*)")
_TWO_CHAR_OPS = ("<=", ">=", "<>")
_OPS = set("+-*%=<>~!@#$^&|,?._")
_ADVERBS = ("/:", "\\:", "':", "'", "/", "\\")
_PUNCT = {
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
    "[": Kind.LBRACKET,
    "]": Kind.RBRACKET,
    "{": Kind.LBRACE,
    ";": Kind.SEMI,
    ":": Kind.COLON,
}
# Tokens after which a value has just ended: ``-`` right after one of these is the minus verb.
_NOUN_END = {Kind.NUM, Kind.SYM, Kind.STR, Kind.NAME, Kind.RPAREN, Kind.RBRACKET}


def tokenize(src: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch in " \t\r\n":
            i += 1
            continue
        checkpoint()  # once per token: the query's time limit (queries.deadline)
        start = i
        spaced = start > 0 and src[start - 1] in " \t\r\n"
        if ch == "/" and (start == 0 or spaced):
            # A slash after whitespace (or at the start) begins a comment to end of line.
            end = src.find("\n", start)
            i = n if end < 0 else end
            continue
        prev = tokens[-1] if tokens else None
        if _may_start_number(src, i, prev, spaced):
            i = _number(src, i, tokens, spaced)
            continue
        if ch == "`":
            names = []
            while i < n and src[i] == "`":
                m = _SYMBOL.match(src, i)
                assert m is not None
                names.append(m.group(1))
                i = m.end()
            tokens.append(Token(Kind.SYM, src[start:i], start, tuple(names), spaced))
            continue
        if ch == "{":
            raise TranslationError("lambdas {...} are not supported", start)
        if ch == '"':
            i = _string(src, i, tokens, spaced)
            continue
        m = _NAME.match(src, i)
        if m:
            tokens.append(Token(Kind.NAME, m.group(), start, (), spaced))
            i = m.end()
            continue
        if prev is not None and prev.kind in (Kind.OP, Kind.ADVERB, *_NOUN_END) and not spaced:
            adverb = next((a for a in _ADVERBS if src.startswith(a, i)), None)
            if adverb is not None:
                tokens.append(Token(Kind.ADVERB, adverb, start, (), spaced))
                i += len(adverb)
                continue
        two = src[i : i + 2]
        if two in _TWO_CHAR_OPS:
            tokens.append(Token(Kind.OP, two, start, (), spaced))
            i += 2
            continue
        if ch in _OPS:
            tokens.append(Token(Kind.OP, ch, start, (), spaced))
            i += 1
            continue
        if ch in _PUNCT:
            tokens.append(Token(_PUNCT[ch], ch, start, (), spaced))
            i += 1
            continue
        raise TranslationError(f"unexpected character {ch!r}", start)
    tokens.append(Token(Kind.EOF, "", n, (), True))
    return tokens


def _may_start_number(src: str, i: int, prev: Token | None, spaced: bool) -> bool:
    ch = src[i]
    if ch.isdigit():
        return True
    nxt = src[i + 1 : i + 2]
    if ch == "." and nxt.isdigit():
        return prev is None or prev.kind not in _NOUN_END or spaced
    if ch == "-" and (nxt.isdigit() or (nxt == "." and src[i + 2 : i + 3].isdigit())):
        return prev is None or prev.kind not in _NOUN_END or spaced
    return False


def _number(src: str, i: int, tokens: list[Token], spaced: bool) -> int:
    start = i
    m = _ATOM.match(src, i)
    if m is None:
        raise TranslationError("malformed number or temporal literal", start)
    items = [m.group()]
    i = m.end()
    while True:
        gap = _VECTOR_GAP.match(src, i)
        if gap is None:
            break
        nxt = _ATOM.match(src, gap.end())
        if nxt is None:
            break
        items.append(nxt.group())
        i = nxt.end()
    tokens.append(Token(Kind.NUM, src[start:i], start, tuple(items), spaced))
    return i


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}


def _string(src: str, i: int, tokens: list[Token], spaced: bool) -> int:
    start = i
    i += 1
    out: list[str] = []
    while i < len(src) and src[i] != '"':
        if src[i] == "\\" and i + 1 < len(src):
            esc = _ESCAPES.get(src[i + 1])
            if esc is None:
                raise TranslationError(f"unsupported escape \\{src[i + 1]} in string", i)
            out.append(esc)
            i += 2
            continue
        out.append(src[i])
        i += 1
    if i >= len(src):
        raise TranslationError("unterminated string", start)
    tokens.append(Token(Kind.STR, "".join(out), start, (), spaced))
    return i + 1
