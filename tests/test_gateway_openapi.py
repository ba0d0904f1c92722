"""The OpenAPI document describes ``/query`` as it behaves, and errors quote the user's SQL."""

from __future__ import annotations

from typing import Any

import pytest
from support.gateway_data import build, make_data

from gateway.app import create_app
from gateway.errors import QueryError


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    router, _ = build(make_data(1, 20, 2, 0.0), 1)
    try:
        return create_app(router).openapi()
    finally:
        router.close()


def test_query_declares_its_result_media_types_and_schema(spec: dict[str, Any]) -> None:
    ok = spec["paths"]["/query"]["post"]["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "application/vnd.apache.arrow.stream", "text/csv"}
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/QueryResult"}
    result = spec["components"]["schemas"]["QueryResult"]
    assert {"columns", "data", "rows", "truncated", "partial", "missing", "plan"} <= set(
        result["properties"]
    )
    assert "ResultColumn" in spec["components"]["schemas"]


def test_query_declares_each_error_status_it_returns_and_no_other(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/query"]["post"]["responses"]
    assert set(responses) == {"200", "400", "403", "413", "429", "500", "503", "504"}
    for status in ("400", "403", "413", "429", "500", "503", "504"):
        body = responses[status]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorBody"}
    # Invalid requests are 400 bad_query (the app's handler), never FastAPI's 422.
    plan_statuses = {"200", "400", "403", "413", "429"}
    assert set(spec["paths"]["/query/plan"]["post"]["responses"]) == plan_statuses


def test_format_is_an_enum_and_the_body_needs_exactly_one_of_sql_and_q(
    spec: dict[str, Any],
) -> None:
    operation = spec["paths"]["/query"]["post"]
    (param,) = [p for p in operation["parameters"] if p["name"] == "format"]
    enums = [s.get("enum") for s in param["schema"].get("anyOf", [param["schema"]])]
    assert ["json", "arrow", "csv"] in enums
    request = spec["components"]["schemas"]["QueryRequest"]
    assert request["oneOf"] == [{"required": ["sql"]}, {"required": ["q"]}]
    assert "Exactly one of" in request["description"]
    body_format = request["properties"]["format"]["anyOf"][0]
    assert body_format["enum"] == ["json", "arrow", "csv"]


def test_sql_errors_quote_the_users_sql_not_a_rewrite() -> None:
    router, _ = build(make_data(1, 20, 2, 0.0), 1)
    try:
        with pytest.raises(QueryError) as info:
            router.run_sql("SELECT sym, nosuch(price) FROM trade")
    finally:
        router.close()
    assert info.value.kind == "bad_query"
    assert "DESCRIBE" not in str(info.value)
    assert "nosuch does not exist" in str(info.value)
