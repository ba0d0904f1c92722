"""What the OpenAPI document (``/docs``, ``/openapi.json``) says beyond what FastAPI infers.

``POST /query``'s handler returns a ``Response`` it encodes itself (JSON, Arrow IPC stream
or CSV), so FastAPI cannot infer the result: the models and media types are declared here.
Its errors are the ``QueryError`` kinds' statuses, each with its body.

No route answers FastAPI's automatic 422 (``HTTPValidationError``): the app's handler
(``gateway.app.invalid_request``) answers a malformed request 400, ``bad_query`` on the
query routes and ``bad_request`` (a ``RejectBody``) on every other. The document says so.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from gateway.errors import HTTP_STATUS
from gateway.formats import ARROW_STREAM, CSV, JSON

QUERY_PATHS = ("/query", "/query/plan")
# Routes whose errors are a query's (``ErrorBody``, a malformed request ``bad_query``).
QUERY_ERROR_PATHS = (*QUERY_PATHS, "/console/export")

ERROR_DESCRIPTIONS = {
    "bad_query": "The SQL or q is invalid (DuckDB's or the q translator's message, which "
    "quotes the query as sent), or the request is malformed.",
    "forbidden": "The SQL is not read-only or uses a forbidden function; the message names it.",
    "timeout": "The query did not finish within its time limit.",
    "unavailable": "A backend the query needs did not answer (without allow_partial).",
    "internal": "A backend failed unexpectedly; the gateway logged it.",
}
# Statuses /query/plan can give: planning never reaches a backend.
PLAN_KINDS = ("bad_query", "forbidden")


def exactly_one_string_of(*names: str) -> dict[str, Any]:
    """A request model's rule "exactly one of these, as text" in JSON Schema (its
    validator enforces it): each branch holds when its key is a string, so a key sent as
    null counts as absent, as the model takes it."""
    return {
        "oneOf": [{"required": [name], "properties": {name: {"type": "string"}}} for name in names]
    }


class RejectBody(BaseModel):
    """A refused request outside ``/query``: a malformed one (400, ``bad_request``), an
    order a risk check or the order's state refused (422), or the order path down (503)."""

    error: str
    code: str
    message: str
    order: dict[str, Any] | None = None


# FastAPI's 422 for a malformed request, as the app answers it instead.
BAD_REQUEST: dict[str, Any] = {
    "description": "`bad_request`: the request is malformed (a field missing, of the wrong "
    "type or out of range); the message says which.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RejectBody"}}},
}
VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


class ErrorBody(BaseModel):
    error: str = Field(
        description="The kind: " + ", ".join([*HTTP_STATUS, "too_many_queries"]) + "."
    )
    message: str
    position: int | None = Field(None, description="q queries: the 0-based character at fault.")


class ResultColumn(BaseModel):
    name: str
    type: str = Field(description="Arrow type, e.g. timestamp[ns], string, double, int64.")


class QueryResult(BaseModel):
    """The JSON encoding of a result (``format=json`` or ``Accept: application/json``)."""

    keys: list[str] | None = Field(
        None, description="q keyed results (select ... by): the key columns, which lead."
    )
    columns: list[ResultColumn]
    data: list[list[Any]] = Field(
        description="Rows as arrays in column order: times as ISO 8601 text, NaN and "
        "infinities as null, timespans as seconds."
    )
    rows: int
    truncated: bool = Field(description="More rows matched than max_rows.")
    partial: bool = Field(description="allow_partial: some backends did not answer.")
    missing: dict[str, str] = Field(description="Backends that did not answer, and why.")
    plan: str = Field(description="single, groups, aggregate, rows or pull (docs/gateway.md).")
    elapsed_ms: float


def error_responses(kinds: tuple[str, ...] = tuple(HTTP_STATUS)) -> dict[int | str, Any]:
    return {
        HTTP_STATUS[kind]: {"model": ErrorBody, "description": f"`{kind}`: {text}"}
        for kind, text in ERROR_DESCRIPTIONS.items()
        if kind in kinds
    }


# Refusals before a query route runs (``gateway.client_limits``).
ADMISSION_RESPONSES: dict[int | str, Any] = {
    413: {
        "model": ErrorBody,
        "description": "`bad_query`: the body is larger than any query the gateway takes "
        "(gateway.max_query_chars).",
    },
    429: {
        "model": ErrorBody,
        "description": "`too_many_queries`: this client already has gateway.client_queries "
        "queries running; retry after `Retry-After` seconds.",
    },
}

QUERY_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "The result, encoded as `format` (or `Accept`) asks; flags also in "
        "the X-Tickdb-* headers (and, for Arrow, the schema metadata tickdb.*).",
        "content": {
            JSON: {"schema": {"$ref": "#/components/schemas/QueryResult"}},
            ARROW_STREAM: {
                "schema": {"type": "string", "format": "binary"},
                "description": "An Arrow IPC stream.",
            },
            CSV: {"schema": {"type": "string"}, "description": "CSV with a header row."},
        },
    },
    **error_responses(),
    **ADMISSION_RESPONSES,
}


# With ``[auth]`` on (``gateway.auth_http``): how a request authenticates, and its refusals.
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API token ([auth])."},
    "basic": {
        "type": "http",
        "scheme": "basic",
        "description": "user:password, or the user's own API token as the password.",
    },
}
CREDENTIALS: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]
AUTH_RESPONSES: dict[str, Any] = {
    status: {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for status, text in (
        ("401", "`unauthorized`: no valid credentials (`WWW-Authenticate: Bearer`)."),
        ("403", "`forbidden`: the identity does not hold the role this needs."),
    )
}
# Answered without credentials: the console's page, and /health (its backends only to an
# identity that may read or administer; invalid credentials are still 401).
OPEN_PATHS: dict[str, list[dict[str, list[str]]]] = {"/": [], "/health": [{}, *CREDENTIALS]}


def install(app: FastAPI, auth_on: bool = False) -> None:
    """Replace the app's OpenAPI generator with one that answers malformed requests 400,
    as the app does, declares the models FastAPI cannot infer and, with ``auth_on``, the
    credentials each route takes and its 401 and 403."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                _answer_validation_with_400(operation.get("responses", {}), path)
                if auth_on:
                    _declare_credentials(operation, path)
        if auth_on:
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in VALIDATION_SCHEMAS:
            components.pop(name, None)
        for model in (QueryResult, ResultColumn, RejectBody, ErrorBody):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            model_schema.pop("$defs", None)  # ResultColumn is a component of its own
            components[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _answer_validation_with_400(responses: dict[str, Any], path: str) -> None:
    """FastAPI's 422 for a malformed request becomes the 400 the app answers instead (the
    routes with a query's errors declare theirs)."""
    validation = responses.get("422", {}).get("content", {}).get("application/json", {})
    if validation.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
        if path not in QUERY_ERROR_PATHS:
            responses.setdefault("400", BAD_REQUEST)


def _declare_credentials(operation: dict[str, Any], path: str) -> None:
    """The credentials ``operation`` takes ([auth] on), and the 401 and 403 it answers."""
    open_to = OPEN_PATHS.get(path)
    operation["security"] = CREDENTIALS if open_to is None else open_to
    responses = operation.setdefault("responses", {})
    if open_to is None or open_to:  # a route that checks credentials when sent: 401
        responses.setdefault("401", AUTH_RESPONSES["401"])
    if open_to is None:
        responses.setdefault("403", AUTH_RESPONSES["403"])
