"""The names the parser must know to read q: which words are functions and how they apply.

The translator decides what each function means in SQL; the parser only needs to know
whether a name is a noun (a column or table) or a function applied prefix (``max x``) or
infix (``x within y``).
"""

from __future__ import annotations

QUERY_KEYWORDS = frozenset({"select", "exec", "update", "delete"})
TEMPLATE_WORDS = frozenset({"by", "from", "where"})

# Keywords that take their argument on the right: ``max price``, ``neg x``.
PREFIX = frozenset(
    {
        "abs", "asc", "avg", "avgs", "ceiling", "count", "cols", "desc", "dev", "deltas",
        "differ", "distinct", "enlist", "exp", "fills", "first", "flip", "floor", "key",
        "last", "log", "lower", "max", "maxs", "med", "min", "mins", "neg", "next", "not",
        "null", "prd", "prds", "prev", "ratios", "reciprocal", "reverse", "sdev", "signum",
        "sqrt", "string", "sum", "sums", "svar", "til", "type", "upper", "value", "var",
        "where", "raze", "group", "iasc", "idesc", "rank", "any", "all", "meta", "tables",
    }
)  # fmt: skip

# Keywords written between their arguments: ``x within y``, ``5 xbar t``.
INFIX = frozenset(
    {
        "and", "or", "within", "in", "like", "xbar", "wavg", "wsum", "mavg", "msum", "mmax",
        "mmin", "mcount", "mdev", "xasc", "xdesc", "lj", "ljf", "ij", "ijf", "uj", "pj",
        "xkey", "xcol", "xcols", "fby", "div", "mod", "sublist", "except", "inter", "union",
        "cross", "bin", "binr", "each", "over", "scan", "prior", "ema", "cor", "cov", "xlog",
        "xexp", "xprev", "xrank", "ss", "sv", "vs", "rotate", "peach", "ej",
    }
)  # fmt: skip

# Keywords used only with brackets: ``aj[`sym`time;t;q]``.
BRACKET_ONLY = frozenset({"aj", "aj0", "ajf", "ajf0", "wj", "wj1", "ssr"})

FUNCTIONS = PREFIX | INFIX | BRACKET_ONLY
