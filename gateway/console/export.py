"""``POST /console/export``: a query's result as a file: CSV, Arrow IPC stream or Parquet.

CSV and Arrow are the encodings of ``POST /query``; Parquet is added here (zstd, one file),
so a result can be opened by DuckDB, Polars or Spark as it is.
"""

from __future__ import annotations

import io
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway import formats
from gateway.errors import HTTP_STATUS, QueryError
from gateway.merge import GatewayResult
from gateway.openapi import error_responses, exactly_one_string_of
from gateway.qpath import QPath
from gateway.router import Router
from queries.q import TranslationError

ExportFormat = Literal["csv", "arrow", "parquet"]
MEDIA = {
    "csv": formats.CSV,
    "arrow": formats.ARROW_STREAM,
    "parquet": "application/vnd.apache.parquet",
}
SUFFIX = {"csv": "csv", "arrow": "arrows", "parquet": "parquet"}
# What the OpenAPI document says it answers: the file, or a query's error.
EXPORT_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "The result as a file (Content-Disposition: attachment).",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA.values()
        },
    },
    **error_responses(),
}


class ExportRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra=exactly_one_string_of("sql", "q"))

    sql: str | None = None
    q: str | None = None
    format: ExportFormat = "csv"
    max_rows: int | None = Field(None, ge=0)
    timeout_s: float | None = Field(None, ge=0.001)

    @model_validator(mode="after")
    def _one_query(self) -> ExportRequest:
        if (self.sql is None) == (self.q is None):
            raise ValueError("give exactly one of sql and q")
        return self


def to_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def encoded(result: GatewayResult, fmt: ExportFormat) -> bytes | memoryview:
    if fmt == "parquet":
        return to_parquet(result.table)
    return formats.encode(result, fmt)


def run_export(router: Router, qpath: QPath, body: ExportRequest) -> Response:
    limits: dict[str, Any] = {"timeout_s": body.timeout_s, "max_rows": body.max_rows}
    try:
        if body.q is not None:
            result = qpath.run(body.q, **limits).result
        else:
            result = router.run_sql(str(body.sql), **limits)
    except TranslationError as exc:
        return JSONResponse(
            {"error": "bad_query", "message": str(exc), "position": exc.position}, 400
        )
    except QueryError as exc:
        return JSONResponse(
            {"error": exc.kind, "message": str(exc)}, HTTP_STATUS.get(exc.kind, 500)
        )
    headers = formats.headers(result)
    headers["Content-Disposition"] = f'attachment; filename="result.{SUFFIX[body.format]}"'
    return Response(encoded(result, body.format), media_type=MEDIA[body.format], headers=headers)
