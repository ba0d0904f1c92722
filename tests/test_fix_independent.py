"""The acceptor against an independent FIX engine: jspurefix (npm), a pure JavaScript
engine with its own session layer and its own reading of the FIX 4.4 dictionary, logs on,
sends a NewOrderSingle, an OrderStatusRequest and an OrderCancelRequest, and logs out.

``make test`` installs it (``npm install`` in ``tests/fix_js``); without Node.js the test
is skipped."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fix_stack import fix_port, start_fix_stack
from support.order_stack import OrderStack

JS_DIR = Path(__file__).parent / "fix_js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    if not (JS_DIR / "node_modules" / "jspurefix").is_dir():
        pytest.fail(
            "jspurefix is not installed: run `npm install` in tests/fix_js (make test does)"
        )
    running = start_fix_stack(tmp_path_factory.mktemp("fixjs"), {"js": ("JSCLIENT", "J1", "jspw")})
    yield running
    running.stop()


def run_js(stack: OrderStack, **args: object) -> list[dict]:
    params = {"host": "127.0.0.1", "port": fix_port(stack), "target": "TICKDB", **args}
    done = subprocess.run(
        [str(NODE), "client.js", json.dumps(params)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (done.stdout, done.stderr)
    return lines


def test_independent_engine_trades_through_the_acceptor(stack: OrderStack) -> None:
    lines = run_js(stack, sender="JSCLIENT", password="jspw", sym="AAPL", clordid="js-1")
    kinds = [(m["type"], m["fields"].get("ExecType")) for m in lines]
    assert kinds[0] == ("ready", None)
    reports = [m["fields"] for m in lines if m["type"] == "8"]
    new, status, pending, canceled = reports
    assert (new["ExecType"], new["OrdStatus"], new["ClOrdID"]) == ("0", "0", "js-1")
    assert new["LeavesQty"] == 100 and new["CumQty"] == 0 and new["Account"] == "J1"
    assert (status["ExecType"], status["OrdStatus"]) == ("I", "0")
    assert (pending["ExecType"], pending["OrdStatus"]) == ("6", "6")
    assert (canceled["ExecType"], canceled["OrdStatus"]) == ("4", "4")
    assert canceled["ClOrdID"] == "js-1-cxl" and canceled["OrigClOrdID"] == "js-1"
    assert lines[-1]["type"] == "stopped"


def test_independent_engine_with_a_wrong_password_is_refused(stack: OrderStack) -> None:
    params = {
        "host": "127.0.0.1",
        "port": fix_port(stack),
        "target": "TICKDB",
        "sender": "JSCLIENT",
        "password": "nope",
        "sym": "AAPL",
        "clordid": "js-2",
    }
    done = subprocess.run(
        [str(NODE), "client.js", json.dumps(params)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"ready"' not in done.stdout
