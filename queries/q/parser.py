"""Tokens -> syntax tree, following q's evaluation rule: right to left, no precedence.

``a*b+c`` is ``a*(b+c)``: an expression is a noun, optionally followed by a verb and the
whole expression to its right; a function followed by an expression is applied to all of
it. q-sql templates (``select ... by ... from ... where ...``) are terms whose phrases are
comma-separated subphrases, each an ordinary q expression.
"""

from __future__ import annotations

from queries.deadline import checkpoint
from queries.q import vocab
from queries.q.errors import TranslationError
from queries.q.lexer import tokenize
from queries.q.nodes import (
    Call,
    Func,
    ListExpr,
    Name,
    Node,
    Num,
    Phrase,
    Query,
    QueryKind,
    Str,
    Sym,
)
from queries.q.tokens import Kind, Token

# Tokens that end any expression; templates add ``,``, ``by``, ``from`` and ``where``.
_CLOSERS = {Kind.RPAREN, Kind.RBRACKET, Kind.SEMI, Kind.EOF}
Stops = frozenset[str]
_NONE: Stops = frozenset()
# Expressions within expressions (brackets, and each verb of a chain: ``a+b+c`` is 3 deep),
# past which a query is refused with a short error: the parser and translator recurse per
# level, and a few thousand levels ended in a RecursionError and its traceback.
MAX_DEPTH = 64


def parse(src: str) -> Node:
    parser = _Parser(tokenize(src))
    node = parser.expr(_NONE)
    tok = parser.peek()
    if tok.kind is not Kind.EOF:
        raise TranslationError(
            f"unexpected {_describe(tok)}; only one expression is supported", tok.pos
        )
    return node


def _describe(tok: Token) -> str:
    if tok.kind is Kind.EOF:
        return "end of input"
    return f"{tok.kind.value} {tok.text!r}" if tok.text else tok.kind.value


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        checkpoint()  # the query's time limit (queries.deadline)
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def at_stop(self, stops: Stops) -> bool:
        tok = self.peek()
        if tok.kind in _CLOSERS:
            return True
        if tok.kind is Kind.OP and tok.text == "," and "," in stops:
            return True
        return tok.kind is Kind.NAME and tok.text in stops

    def expect_name(self, word: str, context: str) -> Token:
        tok = self.peek()
        if tok.kind is not Kind.NAME or tok.text != word:
            raise TranslationError(
                f"expected '{word}' in {context}, found {_describe(tok)}", tok.pos
            )
        return self.advance()

    # -- expressions ---------------------------------------------------------------------

    def expr(self, stops: Stops) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise TranslationError(
                    f"the query nests expressions more than {MAX_DEPTH} deep", self.peek().pos
                )
            return self._expr(stops)
        finally:
            self.depth -= 1

    def _expr(self, stops: Stops) -> Node:
        if self.at_stop(stops):
            tok = self.peek()
            raise TranslationError(f"expected an expression, found {_describe(tok)}", tok.pos)
        left = self.term(stops)
        if isinstance(left, Func):
            if self.at_stop(stops):
                return left  # a function as a value, e.g. the max in (max;price)
            if left.name in vocab.INFIX or left.name in vocab.BRACKET_ONLY:
                raise TranslationError(f"'{left.name}' takes arguments on both sides", left.pos)
            arg = self.expr(stops)
            return Call(left.pos, left.name, (arg,))
        if self.at_stop(stops):
            return left
        tok = self.peek()
        if tok.kind is Kind.OP or (tok.kind is Kind.NAME and tok.text in vocab.INFIX):
            self.advance()
            adverb = None
            if self.peek().kind is Kind.ADVERB:
                adverb_tok = self.advance()
                # Only each-left, in wj's window bounds (lo hi +\: t.time), is understood.
                if adverb_tok.text != "\\:":
                    raise TranslationError(
                        f"adverb {adverb_tok.text!r} is not supported", adverb_tok.pos
                    )
                adverb = adverb_tok.text
            right = self.expr(stops)
            return Call(tok.pos, tok.text, (left, right), adverb, infix=True)
        if tok.kind is Kind.ADVERB:
            raise TranslationError(f"adverb {tok.text!r} is not supported", tok.pos)
        raise TranslationError(
            f"{_describe(tok)} follows a value: indexing or applying a value by juxtaposition "
            "is not supported",
            tok.pos,
        )

    def term(self, stops: Stops) -> Node:
        tok = self.advance()
        node: Node
        if tok.kind is Kind.NUM:
            node = Num(tok.pos, tok.items)
        elif tok.kind is Kind.SYM:
            node = Sym(tok.pos, tok.items, len(tok.items) > 1)
        elif tok.kind is Kind.STR:
            node = Str(tok.pos, tok.text)
        elif tok.kind is Kind.NAME:
            if tok.text in vocab.QUERY_KEYWORDS:
                return self.query(tok)
            if tok.text in vocab.TEMPLATE_WORDS - {"where"}:
                raise TranslationError(f"'{tok.text}' outside a select/exec/update/delete", tok.pos)
            node = (
                Func(tok.pos, tok.text) if tok.text in vocab.FUNCTIONS else Name(tok.pos, tok.text)
            )
        elif tok.kind is Kind.OP:
            node = Func(tok.pos, tok.text)
        elif tok.kind is Kind.LPAREN:
            node = self.paren(tok)
        elif tok.kind is Kind.LBRACE:
            raise TranslationError("lambdas {...} are not supported", tok.pos)
        elif tok.kind is Kind.COLON:
            raise TranslationError("assignment ':' is not supported", tok.pos)
        else:
            raise TranslationError(f"unexpected {_describe(tok)}", tok.pos)
        while self.peek().kind is Kind.LBRACKET:
            node = self.bracket_call(node)
        if self.peek().kind is Kind.ADVERB and not isinstance(node, Func):
            adverb = self.peek()
            raise TranslationError(f"adverb {adverb.text!r} is not supported", adverb.pos)
        return node

    def paren(self, open_tok: Token) -> Node:
        if self.peek().kind is Kind.RPAREN:
            self.advance()
            return ListExpr(open_tok.pos, ())
        if self.peek().kind is Kind.LBRACKET:
            raise TranslationError("table literals ([] ...) are not supported", open_tok.pos)
        items = [self.expr(_NONE)]
        while self.peek().kind is Kind.SEMI:
            self.advance()
            items.append(self.expr(_NONE))
        self.close(Kind.RPAREN, open_tok)
        return items[0] if len(items) == 1 else ListExpr(open_tok.pos, tuple(items))

    def close(self, kind: Kind, open_tok: Token) -> None:
        tok = self.peek()
        if tok.kind is not kind:
            raise TranslationError(
                f"expected '{kind.value}' to close '{open_tok.text}' at {open_tok.pos}, "
                f"found {_describe(tok)}",
                tok.pos,
            )
        self.advance()

    def bracket_args(self) -> tuple[Node, ...]:
        open_tok = self.advance()
        args: list[Node] = []
        while True:
            if self.peek().kind in (Kind.SEMI, Kind.RBRACKET):
                raise TranslationError(
                    "projection (an empty argument in [...]) is not supported", self.peek().pos
                )
            args.append(self.expr(_NONE))
            if self.peek().kind is not Kind.SEMI:
                break
            self.advance()
        self.close(Kind.RBRACKET, open_tok)
        return tuple(args)

    def bracket_call(self, head: Node) -> Node:
        pos = self.peek().pos
        if not isinstance(head, Func):
            raise TranslationError("indexing a value with [...] is not supported", pos)
        return Call(head.pos, head.name, self.bracket_args())

    # -- q-sql templates -----------------------------------------------------------------

    def query(self, kw: Token) -> Query:
        kind: QueryKind = kw.text  # type: ignore[assignment]
        limit = None
        if self.peek().kind is Kind.LBRACKET and not self.peek().spaced:
            if kind != "select":
                raise TranslationError(
                    f"'{kind}[...]' limit expressions are not supported", self.peek().pos
                )
            limit = self.bracket_args()
        columns: tuple[Phrase, ...] = ()
        if not self.at_stop(frozenset({"by", "from"})):
            columns = self.phrases(frozenset({",", "by", "from"}), named=True)
        by = None
        if self.peek().kind is Kind.NAME and self.peek().text == "by":
            if kind == "delete":
                raise TranslationError("'delete' takes no 'by' phrase", self.peek().pos)
            self.advance()
            by = self.phrases(frozenset({",", "from"}), named=True)
        self.expect_name("from", f"'{kind}'")
        table = self.expr(frozenset({"where"}))
        where: tuple[Node, ...] = ()
        if self.peek().kind is Kind.NAME and self.peek().text == "where":
            self.advance()
            where = tuple(p.expr for p in self.phrases(frozenset({","}), named=False))
        return Query(kw.pos, kind, columns, by, table, where, limit)

    def phrases(self, stops: Stops, *, named: bool) -> tuple[Phrase, ...]:
        out = []
        while True:
            tok = self.peek()
            name = None
            if named and tok.kind is Kind.NAME and self.peek(1).kind is Kind.COLON:
                name = tok.text
                self.advance()
                self.advance()
            out.append(Phrase(tok.pos, name, self.expr(stops)))
            if not (self.peek().kind is Kind.OP and self.peek().text == ","):
                return tuple(out)
            self.advance()
