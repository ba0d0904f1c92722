"""Operations on the gateway's FIX sessions: HTTP routes and Prometheus metrics.

- ``GET /fix/sessions``: ``{"enabled": bool, "sessions": [...]}``, each session's state,
  next sender and target sequence numbers and counters (``FixAcceptor.info``);
- ``POST /fix/sessions/{name}/reset``: both sequence numbers of the session (its name or
  ``Sender-Target`` key) back to 1; a logged on session is logged out first. 404 for an
  unknown name (every name while the acceptor is off).

``tickdb fix sessions`` / ``tickdb fix reset`` and ``tickdb status`` call these routes; the
``/metrics`` page carries ``tickdb_fix_session_*`` per session. Both routes need ``admin``
(``[auth]``); a reset is an audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.auth_http import HttpAuth
from gateway.openapi import ErrorBody
from tickdb.auth import AuthConfig, Authorizer, Identity

GetAcceptor = Callable[[], Any]  # the FixAcceptor, or None when FIX is off


def fix_routes(get_acceptor: GetAcceptor, auth: HttpAuth | None = None) -> APIRouter:
    api = APIRouter(tags=["fix"])
    auth = auth or HttpAuth(Authorizer(AuthConfig()))
    admins = Depends(auth.require("admin"))

    @api.get("/fix/sessions", dependencies=[admins])
    def sessions() -> JSONResponse:
        """The FIX sessions of the acceptor: state and sequence numbers."""
        acceptor = get_acceptor()
        info = acceptor.info() if acceptor is not None else []
        return JSONResponse({"enabled": acceptor is not None, "sessions": info})

    @api.post(
        "/fix/sessions/{name}/reset",
        responses={404: {"model": ErrorBody, "description": "`not_found`: no such session"}},
    )
    def reset(name: str, request: Request, who: Identity = admins) -> JSONResponse:
        """Both sequence numbers of a session back to 1 (logs a live session out)."""
        answer = _reset(name)
        auth.record(
            request,
            who.name,
            "admin.fix_reset",
            sync=True,
            session=name,
            ok=answer.status_code == 200,
        )
        return answer

    def _reset(name: str) -> JSONResponse:
        acceptor = get_acceptor()
        if acceptor is None:
            # Not a 503: nothing will make the session appear by itself later.
            message = f"the FIX acceptor is off: no FIX session {name!r}"
            return JSONResponse({"error": "not_found", "message": message}, status_code=404)
        if not acceptor.reset(name):
            return JSONResponse(
                {"error": "not_found", "message": f"no FIX session {name!r}"}, status_code=404
            )
        session = next(s for s in acceptor.info() if name in (s["name"], _key(s)))
        return JSONResponse({"reset": True, "session": session})

    return api


def _key(info: dict[str, Any]) -> str:
    return f"{info['sender_comp_id']}-{info['target_comp_id']}"


GAUGES = {
    "next_sender_seq": "MsgSeqNum of the next message sent",
    "next_target_seq": "MsgSeqNum expected of the next message received",
}
COUNTERS = {
    "received": "Frames received",
    "sent": "Messages sent",
    "dropped": "Garbled frames dropped",
    "rejects_sent": "Session-level Rejects sent",
    "resend_requests_sent": "ResendRequests sent",
    "logons": "Logons completed",
}


class FixCollector(Collector):
    """``tickdb_fix_session_*`` for every session of the acceptor, read at scrape time."""

    def __init__(self, get_acceptor: GetAcceptor) -> None:
        self.get_acceptor = get_acceptor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        acceptor = self.get_acceptor()
        infos = acceptor.info() if acceptor is not None else []
        labels = ["session", "sender_comp_id", "target_comp_id"]
        up = GaugeMetricFamily(
            "tickdb_fix_session_logged_on", "1 if the session is logged on", labels=labels
        )
        gauges = {
            k: GaugeMetricFamily(f"tickdb_fix_session_{k}", text, labels=labels)
            for k, text in GAUGES.items()
        }
        counters = {
            k: CounterMetricFamily(f"tickdb_fix_session_{k}", text, labels=labels)
            for k, text in COUNTERS.items()
        }
        for info in infos:
            values = [info["name"], info["sender_comp_id"], info["target_comp_id"]]
            up.add_metric(values, 1.0 if info["state"] == "logged_on" else 0.0)
            for k, family in gauges.items():
                family.add_metric(values, float(info[k]))
            for k, counter in counters.items():
                counter.add_metric(values, float(info[k]))
        yield up
        yield from gauges.values()
        yield from counters.values()
