"""``GET /audit``: the audit records (``tickdb.audit``) of every process sharing the gateway's
data directory, for identities with ``admin``.

    GET /audit?since=2025-06-02T14:00:00Z&who=alice&action=order.&limit=100

``since`` (inclusive) and ``until`` (exclusive) are epoch seconds or ISO 8601 (UTC unless
an offset is given); ``action`` ending in a dot takes every action under it (``admin.``).
The answer is ``{"enabled", "records", "truncated"}``, oldest first; ``truncated`` says more
matched than ``limit``: ask again with ``since`` the last record's ``ts``. Reading the audit
is itself recorded (``admin.audit``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.auth_http import HttpAuth
from tickdb.audit import parse_time, read_audit
from tickdb.auth import Identity


def audit_routes(auth: HttpAuth) -> APIRouter:
    api = APIRouter(tags=["audit"])
    admins = Depends(auth.require("admin"))

    @api.get("/audit")
    def audit(
        request: Request,
        who_asks: Identity = admins,
        since: str | None = Query(None, description="From this time (epoch s or ISO 8601)."),
        until: str | None = Query(None, description="Before this time."),
        who: str | None = Query(None, description="Only this identity (or claimed user)."),
        action: str | None = Query(
            None, description="Only this action; ending in '.', every one under it."
        ),
        limit: int = Query(1000, ge=1, le=100_000, description="At most this many records."),
    ) -> Any:
        """Audit records: logins and refusals, admin and order actions; oldest first."""
        directory = auth.audit.directory
        if directory is None:
            return {"enabled": False, "records": [], "truncated": False}
        try:
            since_ts = parse_time(since) if since else None
            until_ts = parse_time(until) if until else None
        except ValueError as exc:
            body = {"error": "bad_request", "code": "bad_request", "message": str(exc)}
            return JSONResponse(body, status_code=400)  # as a malformed request's (RejectBody)
        records, more = read_audit(
            directory, since=since_ts, until=until_ts, who=who, action=action, limit=limit
        )
        asked = {"since": since, "until": until, "who": who, "action": action}
        query = {k: v for k, v in asked.items() if v}
        auth.record(request, who_asks.name, "admin.audit", sync=True, query=query)
        return {"enabled": True, "records": records, "truncated": more}

    return api
