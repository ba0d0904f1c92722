"""The OpenAPI document describes ``/query`` as it behaves, and errors quote the user's SQL."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # schemathesis's validator (the dev extra)
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
    assert request["oneOf"] == [
        {"required": ["sql"], "properties": {"sql": {"type": "string"}}},
        {"required": ["q"], "properties": {"q": {"type": "string"}}},
    ]
    # As the rule reads it: one given as text, the other absent or null.
    valid = jsonschema_rs.validator_for({"oneOf": request["oneOf"]}).is_valid
    assert valid({"sql": "select 1"}) and valid({"q": "select from t", "sql": None})
    assert not valid({"sql": None}) and not valid({}) and not valid({"sql": "x", "q": "y"})
    export = spec["components"]["schemas"]["ExportRequest"]
    assert export["oneOf"] == request["oneOf"]
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


def test_no_operation_declares_fastapis_422_for_a_malformed_request(
    spec: dict[str, Any],
) -> None:
    # The gateway answers a malformed request 400 (``invalid_request``), never 422.
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                assert schema != {"$ref": "#/components/schemas/HTTPValidationError"}, (
                    method,
                    path,
                    status,
                )


def test_routes_outside_query_declare_their_400_as_a_reject_body(spec: dict[str, Any]) -> None:
    reject = {"$ref": "#/components/schemas/RejectBody"}
    for method, path in (("post", "/orders"), ("get", "/audit"), ("get", "/tables/{name}")):
        response = spec["paths"][path][method]["responses"]["400"]
        assert response["content"]["application/json"]["schema"] == reject, path
    # An order refused by risk or its state is still 422, with the same body.
    assert (
        spec["paths"]["/orders"]["post"]["responses"]["422"]["content"]["application/json"][
            "schema"
        ]
        == reject
    )
    assert {"error", "code", "message"} <= set(
        spec["components"]["schemas"]["RejectBody"]["required"]
    )


def test_console_export_declares_its_files_and_a_querys_errors(spec: dict[str, Any]) -> None:
    responses = spec["paths"]["/console/export"]["post"]["responses"]
    assert set(responses["200"]["content"]) == {
        "text/csv",
        "application/vnd.apache.arrow.stream",
        "application/vnd.apache.parquet",
    }
    assert responses["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert {"400", "403", "500", "503", "504"} <= set(responses)
    reset = spec["paths"]["/fix/sessions/{name}/reset"]["post"]["responses"]
    assert "404" in reset
