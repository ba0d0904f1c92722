"""Conformance cases: aggregates inside vector expressions, which q broadcasts.

q evaluates right to left, so ``max price - min price`` is ``max (price - min price)``: the
inner aggregate is one value, broadcast over the vector it is subtracted from, and the outer
aggregate reduces the result. Per group with ``by``, per filtered table in ``where``, per
partition in ``update ... by``.
"""

from __future__ import annotations

from q_conformance.data import FULL, Case, rows

# trade: a 10 100, b 20 200, a 11 300, b 19 100, a 12 200 (time order)
CASES: list[Case] = [
    Case("broadcast-range", "select r:max price - min price from trade", ["r"], [(10.0,)]),
    Case(
        "broadcast-range-by",
        "select max price - min price by sym from trade",
        ["sym", "price"],
        [("a", 2.0), ("b", 1.0)],
        source="basics/qsql: the column takes the name of its leftmost term",
    ),
    Case(
        "broadcast-by-with-others",
        "select n:count i, r:max price - min price by sym from trade where size>100",
        ["sym", "n", "r"],
        [("a", 2, 1.0), ("b", 1, 0.0)],
    ),
    Case(
        "broadcast-vwap-by",
        "select v:sum price * size % sum size by sym from trade",
        ["sym", "v"],
        [("a", 6700 / 600), ("b", 5900 / 300)],
    ),
    Case(
        "broadcast-sum-of-deviations-by",
        "select d:sum size - avg size by sym from trade",
        ["sym", "d"],
        [("a", 0.0), ("b", 0.0)],
    ),
    Case(
        "broadcast-wavg-of-deviations-by",
        "select x:size wavg price - avg price by sym from trade",
        ["sym", "x"],
        [("a", 100 / 600), ("b", 50 / 300)],
    ),
    Case(
        "broadcast-per-row-by-is-a-list",
        "select dev:price - avg price by sym from trade",
        ["sym", "dev"],
        [("a", [-1.0, 0.0, 1.0]), ("b", [0.5, -0.5])],
    ),
    Case(
        "broadcast-per-row-ungrouped",
        "select dev:price - avg price from trade",
        ["dev"],
        [(-4.4,), (5.6,), (-3.4,), (4.6,), (-2.4,)],
    ),
    Case("broadcast-where", "select from trade where price > avg price", FULL, rows(2, 4)),
    Case(
        "broadcast-where-nested",
        "select from trade where price > max price - min price",
        FULL,
        rows(2, 3, 4, 5),
    ),
    Case(
        "broadcast-where-successive",
        "select from trade where sym=`a, size < max size - min size",
        FULL,
        rows(1),
    ),
    Case(
        "broadcast-where-uniform",
        "select from trade where price>prev price, sym=`a, size<max deltas size",
        FULL,
        [],
    ),
    Case(
        "broadcast-where-uniform-successive",
        "select from trade where sym=`a, size<max deltas size",
        FULL,
        rows(1),
    ),
    Case(
        "broadcast-update-by",
        "update dev:price - avg price by sym from trade",
        [*FULL, "dev"],
        [(*r, d) for r, d in zip(rows(1, 2, 3, 4, 5), [-1.0, 0.5, 0.0, -0.5, 1.0], strict=True)],
    ),
    Case(
        "broadcast-update-nested-by",
        "update r:max price - min price by sym from trade",
        [*FULL, "r"],
        [(*r, x) for r, x in zip(rows(1, 2, 3, 4, 5), [2.0, 1.0, 2.0, 1.0, 2.0], strict=True)],
    ),
]
