"""The q lexer and parser: q's lexical rules and right-to-left evaluation."""

from __future__ import annotations

import pytest

from queries.q import TranslationError
from queries.q.lexer import tokenize
from queries.q.nodes import Call, Name, Num, Query, Sym
from queries.q.parser import parse
from queries.q.tokens import Kind


def test_arithmetic_evaluates_right_to_left_without_precedence() -> None:
    tree = parse("a*b+c")
    assert isinstance(tree, Call) and tree.fn == "*"
    assert tree.args[0] == Name(0, "a")
    inner = tree.args[1]
    assert isinstance(inner, Call) and inner.fn == "+"


def test_parentheses_group_on_the_left() -> None:
    tree = parse("(a*b)+c")
    assert isinstance(tree, Call) and tree.fn == "+"
    assert isinstance(tree.args[0], Call) and tree.args[0].fn == "*"


def test_minus_after_a_space_starts_a_negative_number() -> None:
    assert [t.kind for t in tokenize("x -1")][:2] == [Kind.NAME, Kind.NUM]
    assert [t.text for t in tokenize("x-1")][:3] == ["x", "-", "1"]
    assert [t.text for t in tokenize("x - 1")][:3] == ["x", "-", "1"]


def test_space_separated_atoms_are_one_vector() -> None:
    tok = tokenize("10 20.5 -3")[0]
    assert tok.kind is Kind.NUM and tok.items == ("10", "20.5", "-3")
    sym = tokenize("`a`b`c")[0]
    assert sym.kind is Kind.SYM and sym.items == ("a", "b", "c")


def test_temporal_literals_are_single_atoms() -> None:
    texts = ["2024.01.02", "2024.01.02D09:30:00.000", "09:30", "0D00:05", "2024.01m", "0Nd"]
    for text in texts:
        (tok, eof) = tokenize(text)
        assert tok.kind is Kind.NUM and tok.items == (text,), text
        assert eof.kind is Kind.EOF


def test_dotted_names_stay_whole() -> None:
    assert tokenize("time.minute")[0].text == "time.minute"


def test_comment_after_whitespace_is_dropped() -> None:
    assert [t.kind for t in tokenize("a / a comment")] == [Kind.NAME, Kind.EOF]


def test_select_template_phrases() -> None:
    tree = parse("select m:max price, last size by sym from trade where price>1, size<2")
    assert isinstance(tree, Query) and tree.kind == "select"
    assert [p.name for p in tree.columns] == ["m", None]
    assert tree.by is not None and [p.expr for p in tree.by] == [Name(33, "sym")]
    assert tree.table == Name(42, "trade")
    assert len(tree.where) == 2


def test_select_limit_and_sort() -> None:
    tree = parse("select[5;>price] from trade")
    assert isinstance(tree, Query) and tree.limit is not None
    assert tree.limit[0] == Num(7, ("5",))
    assert isinstance(tree.limit[1], Call) and tree.limit[1].fn == ">"


def test_bracket_application_and_infix_agree() -> None:
    infix = parse("5 xbar x")
    bracket = parse("xbar[5;x]")
    assert isinstance(infix, Call) and isinstance(bracket, Call)
    assert (infix.fn, len(infix.args)) == (bracket.fn, len(bracket.args)) == ("xbar", 2)


def test_symbol_atom_and_list() -> None:
    atom, lst = parse("`a"), parse("`a`b")
    assert isinstance(atom, Sym) and not atom.is_list
    assert isinstance(lst, Sym) and lst.is_list


@pytest.mark.parametrize(
    ("q", "pos", "fragment"),
    [
        ("select from t where {x} 1", 20, "lambda"),
        ("select a b from t", 9, "juxtaposition"),
        ("select from t where a=1 )", 24, "unexpected"),
        ('"abc', 0, "unterminated"),
        ("select from t where a[1]", 21, "indexing"),
        ("x+/y", 2, "adverb"),
        ("select a from", 13, "expected an expression"),
        ("xbar[;1]", 5, "projection"),
        ("select a", 8, "'from'"),
    ],
)
def test_syntax_outside_the_subset_is_reported_where_it_is(q: str, pos: int, fragment: str) -> None:
    with pytest.raises(TranslationError) as info:
        parse(q)
    assert info.value.position == pos
    assert fragment in info.value.message
