"""The conformance table: q queries, their input tables and the results kdb+ gives.

Expected results are kdb+'s, worked out from its documented semantics (code.kx.com reference
pages; the page is named in ``source`` where a case is a documented example).
"""

from __future__ import annotations

from q_conformance.cases_broadcast import CASES as BROADCAST_CASES
from q_conformance.cases_query import CASES as QUERY_CASES
from q_conformance.cases_tables import CASES as TABLE_CASES
from q_conformance.cases_temporal import CASES as TEMPORAL_CASES
from q_conformance.cases_values import CASES as VALUE_CASES
from q_conformance.data import Case

CASES: list[Case] = QUERY_CASES + BROADCAST_CASES + TABLE_CASES + TEMPORAL_CASES + VALUE_CASES
