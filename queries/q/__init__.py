"""q-sql -> DuckDB SQL translation.

``translate(q, schemas)`` parses a q query (right-to-left, q's own precedence) and returns a
``QTranslation`` whose ``.sql`` is one read-only DuckDB SELECT over the logical tables
(``trade``, ``quote``, ...), each expected to carry the virtual ``date`` partition column.
Anything outside the supported subset raises ``TranslationError`` with the position of the
construct.
See docs/q.md.
"""

from queries.q.errors import TranslationError
from queries.q.translate import QTranslation, translate

__all__ = ["QTranslation", "TranslationError", "translate"]
