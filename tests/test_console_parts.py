"""The console's server-side pieces without a browser: credentials, the stand-in check, the
live stream's encoding, and a gateway that stops with a live stream open."""

from __future__ import annotations

import base64
import datetime as dt
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from fastapi import HTTPException
from support.order_stack import start_order_stack

from gateway.console.access import credentials, users_check
from gateway.console.live import columns, sse


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_from_basic_and_bearer() -> None:
    assert credentials(basic("al", "pw:with:colons")) == ("al", "pw:with:colons")
    assert credentials("Bearer al:pw") == ("al", "pw")
    assert credentials(None) is None
    assert credentials("Basic !!notbase64") is None
    assert credentials("Digest x") is None
    assert credentials(basic("", "pw")) is None


def test_the_stand_in_check() -> None:
    open_check = users_check({})
    assert open_check(None).user is None and "admin" in open_check(None).roles
    check = users_check({"al": "pw"})
    assert check(basic("al", "pw")).user == "al"
    for header in (None, basic("al", "wrong"), basic("bob", "pw"), "Bearer al"):
        with pytest.raises(HTTPException) as refused:
            check(header)
        assert refused.value.status_code == 401
        # A Basic challenge would bring up the browser's own dialog over the login page.
        assert refused.value.headers == {"WWW-Authenticate": 'Bearer realm="tickdb"'}


def test_live_columns_are_json_ready() -> None:
    t0 = dt.datetime(2024, 1, 2, 9, 30, 0, 123456)
    table = pa.table(
        {
            "time": pa.array([t0, None], pa.timestamp("ns")),
            "sym": pa.array(["A", "B"]).dictionary_encode(),
            "price": [1.5, 2.5],
            "size": pa.array([1, None], pa.int64()),
            "date": pa.array([dt.date(2024, 1, 2)] * 2),
        }
    )
    out = orjson.loads(orjson.dumps(columns(table), option=orjson.OPT_SERIALIZE_NUMPY))
    ms = t0.replace(tzinfo=dt.UTC).timestamp() * 1000
    assert out["time"][0] == pytest.approx(ms, abs=1e-3) and out["time"][1] is None
    assert out["sym"] == ["A", "B"]
    assert out["price"] == [1.5, 2.5]
    assert out["size"] == [1, None]
    assert out["date"] == ["2024-01-02", "2024-01-02"]


def test_sse_framing() -> None:
    assert sse("rows", {"a": 1}) == b'event: rows\ndata: {"a":1}\n\n'


def test_an_open_live_stream_does_not_hold_the_gateway_at_stop(tmp_path: Path) -> None:
    """uvicorn waits for open responses before it exits; a live stream must end with it."""
    stack = start_order_stack(tmp_path, shards=1)
    try:
        assert stack.gateway is not None
        with urllib.request.urlopen(stack.url + "/console/live?tables=trade", timeout=10) as r:
            assert r.readline() == b"event: hello\n"
            started = time.monotonic()
            assert stack.gateway.stop(timeout=10) == 0
            assert time.monotonic() - started < 5
    finally:
        stack.stop()


def test_live_by_syms_and_accounts_at_once_is_a_bad_query(tmp_path: Path) -> None:
    """A subscription takes syms or accounts, not both: said as a 400 (was a 500)."""
    stack = start_order_stack(tmp_path, shards=1)
    try:
        url = stack.url + "/console/live?tables=order&syms=AAPL&accounts=A1"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 400
        body = orjson.loads(refused.value.read())
        assert body["error"] == "bad_query" and "one of them" in body["message"]
        with urllib.request.urlopen(stack.url + "/console/live?tables=trade", timeout=10) as r:
            assert r.readline() == b"event: hello\n"  # and the gateway serves on
    finally:
        stack.stop()
