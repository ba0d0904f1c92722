"""The FIX venue adapter against an independent FIX engine acting as the venue: a jspurefix
acceptor (``tests/fix_js/venue.js``) acknowledges, fills, cancels and replaces what shard 0
routes to it."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fix_stack import RISK
from support.harness import free_port, wait_until
from support.order_stack import OrderStack, start_order_stack

JS_DIR = Path(__file__).parent / "fix_js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class JsVenue:
    def __init__(self, workdir: Path) -> None:
        if not (JS_DIR / "node_modules" / "jspurefix").is_dir():
            pytest.fail("jspurefix is not installed: run `npm install` in tests/fix_js")
        self.port = free_port()
        self.log = workdir / "venue-js.log"
        args = {"port": self.port, "sender": "JSVENUE", "target": "OURS"}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(NODE), "venue.js", json.dumps(args)],
                cwd=JS_DIR,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        wait_until(lambda: self.proc.poll() is not None or listening(self.port), 30, "venue.js")
        assert self.proc.poll() is None, self.log.read_text()

    def received(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JsVenue, OrderStack]]:
    root = tmp_path_factory.mktemp("fixvenuejs")
    venue = JsVenue(root)
    toml = (
        RISK
        + "\n[risk.accounts.A1]\n"
        + f'\n[fix]\nstore_dir = "{root / "fix"}"\n'
        + '\n[fix.venues.js]\nshard = 0\nhost = "127.0.0.1"\n'
        + f"port = {venue.port}\n"
        + 'sender_comp_id = "OURS"\ntarget_comp_id = "JSVENUE"\nreconnect_s = 0.2\n'
    )
    try:
        stack = start_order_stack(root, orders={"syms": ["AAPL"]}, extra_toml=toml)
    except Exception:
        venue.stop()
        raise
    yield venue, stack
    stack.stop()
    venue.stop()


def test_orders_fill_cancel_and_replace_at_a_jspurefix_venue(
    setup: tuple[JsVenue, OrderStack],
) -> None:
    venue, stack = setup
    with stack.client() as client:
        wait_until(lambda: any(m["type"] == "ready" for m in venue.received()), 20, "logon")

        def status(clordid: str, want: str) -> dict[str, Any]:
            def check() -> dict[str, Any] | None:
                o = client.order("A1", clordid)
                return o if o["status"] == want else None

            found: dict[str, Any] = wait_until(check, 20, f"{clordid} {want}")
            return found

        client.submit("A1", "AAPL", "buy", 100, 100.0, clordid="j-1")
        filled = status("j-1", "filled")
        assert filled["cum_qty"] == 100 and filled["avg_px"] == 100.0
        assert filled["order_id"] == "F0-JSO1"

        new = client.submit("A1", "AAPL", "buy", 10, 50.0, clordid="j-2")
        assert new["status"] == "new"
        replaced = client.replace("A1", "j-2", qty=20, price=51.0, new_clordid="j-2b")
        assert replaced["qty"] == 20 and replaced["price"] == 51.0
        canceled = client.cancel("A1", "j-2b")
        assert canceled["status"] == "canceled"

    got = venue.received()
    sent = Counter(m["fields"]["ClOrdID"] for m in got if m["type"] == "D")
    assert sorted(sent.values()) == [1, 1], sent
    assert [m["type"] for m in got if m["type"] in "DFG"] == ["D", "D", "G", "F"]
