"""Conformance cases for lists and value functions: general lists of literals as bounds,
``null``, ``string``, ``upper``, and the vector conditional on numbers.

Expected results are kdb+'s: ``(a;b)`` of atoms of one type is a vector of that type,
``x within (lo;hi)`` is ``lo <= x <= hi``, ``null`` is 1b for q's nulls, ``string`` of a
symbol its name, ``upper`` of a symbol a symbol.
"""

from __future__ import annotations

from q_conformance.data import FULL, Case, floats, rows

CASES: list[Case] = [
    Case(
        "within-general-list-of-floats",
        "select from trade where price within (10.5;12.0)",
        FULL,
        rows(3, 5),
    ),
    Case(
        "within-general-list-of-longs",
        "select from trade where size within (150;250)",
        FULL,
        rows(2, 5),
    ),
    Case(
        "null-of-floats",
        "select n:null x from t",
        ["n"],
        [(False,), (True,), (False,)],
        {"t": floats(1.0, None, 0.0)},
    ),
    Case(
        "string-and-upper-of-symbols",
        "select s:string sym, u:upper sym from trade where size=300",
        ["s", "u"],
        [("a", "A")],
    ),
    Case(
        "vector-conditional-of-longs",
        "select c:?[price>15;1;0] from trade",
        ["c"],
        [(0,), (1,), (0,), (1,), (0,)],
    ),
]
