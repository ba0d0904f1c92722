"""Every HTTP operation of a live gateway, driven by schemathesis from its own OpenAPI
document: whatever a client sends, the answer is never a server error, and its status,
media type and body are ones the document declares for that operation. Found this way: a
live stream by syms and accounts at once, a price of 1e400 in an order (its reject could
not be written as JSON) and a time limit of 5e-324 s (all 500s or 504s, now 400s); a
document that declared FastAPI's 422 where the gateway answers 400, and a body that is not
JSON answered ``{"detail": ...}`` instead of the gateway's error shape."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.auth_config import auth_toml, identity
from support.order_stack import OrderStack, start_order_stack

READER = "tdb_openapi_reader"
RISK = """
[risk.accounts.A1]
[risk.accounts.A2]
"""
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Streams answer until the client goes: not a request with one answer to check.
STREAMS = ("/orders-stream", "/console/live")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("openapi"),
        shards=2,
        rdbs=True,
        orders={"syms": ["AAPL", "MSFT"]},
        extra_toml=RISK,
    )
    yield running
    running.stop()


def schemathesis(url: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """schemathesis's own command, in a process of its own (its pytest plugin does not
    follow pytest 9); the same seed every run, so a failure here is a regression."""
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", url + "/openapi.json"),
        *("--url", url, "--checks", ",".join(CHECKS), "--max-examples", "8"),
        *("--seed", "1", "--generation-deterministic", "--workers", "1", "--no-color"),
        *("--request-timeout", "30"),
        *[arg for path in STREAMS for arg in ("--exclude-path", path)],
        *extra,
    ]
    # In its own directory: it keeps a cache (.schemathesis) where it runs.
    return subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=cwd)


def test_no_request_gets_a_server_error(stack: OrderStack, tmp_path: Path) -> None:
    run = schemathesis(stack.url, tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    """The same with ``[auth]`` on: a reader, who may not trade or administer."""
    running = start_order_stack(
        tmp_path_factory.mktemp("openapi_auth"),
        orders={"syms": ["AAPL", "MSFT"]},
        extra_toml=RISK + auth_toml({"reader": identity(["read"], READER)}),
    )
    yield running
    running.stop()


@pytest.mark.parametrize("who", ["nobody", "reader"])
def test_with_auth_on_every_refusal_is_one_the_document_declares(
    guarded: OrderStack, tmp_path: Path, who: str
) -> None:
    spec = json.loads(urllib.request.urlopen(guarded.url + "/openapi.json", timeout=10).read())
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "basic"}
    orders = spec["paths"]["/orders"]["post"]
    assert orders["security"] == [{"bearer": []}, {"basic": []}]
    assert {"401", "403"} <= set(orders["responses"])
    headers = ("--header", f"Authorization: Bearer {READER}") if who == "reader" else ()
    # Without credentials every answer is a 401; a reader's orders and admin requests 403s.
    run = schemathesis(guarded.url, tmp_path, *headers)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def post_raw(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_body_that_is_not_json_gets_the_gateways_error_shape(stack: OrderStack) -> None:
    not_utf8 = b"\xff\xfe{"
    status, body = post_raw(stack.url + "/orders", not_utf8)
    assert (status, body["error"], body["code"]) == (400, "bad_request", "bad_request")
    assert "parsing the body" in body["message"]
    status, body = post_raw(stack.url + "/query", not_utf8)
    assert (status, body["error"]) == (400, "bad_query")
    status, body = post_raw(stack.url + "/no-such-route", b"{}")
    assert (status, body["error"]) == (404, "not_found")
