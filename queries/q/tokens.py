"""Token kinds shared by the lexer and the parser."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    NUM = "number"  # one numeric or temporal atom, or a vector of them (``1 2 3``)
    SYM = "symbol"  # one symbol or a symbol vector (`` `a`b ``)
    STR = "string"  # a char list ``"abc"``
    NAME = "name"  # identifiers, keywords and dotted names such as ``time.minute``
    OP = "operator"  # primitive verbs: + - * % = < > <= >= <> ~ ! @ # $ ^ & | , ? . _
    ADVERB = "adverb"  # ' / \ ': /: \:
    COLON = ":"
    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    LBRACE = "{"
    SEMI = ";"
    EOF = "end of input"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    pos: int
    # NUM: the atom texts of the vector (one item for an atom); SYM: the symbol names.
    items: tuple[str, ...] = ()
    # True when whitespace precedes the token: q reads ``x -1`` and ``x-1`` differently.
    spaced: bool = False
