"""A gateway that starts while the order flow never pauses still becomes ready: readiness
is not left to a quiet moment of 50 ms, which a busy day's flow may never have."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.harness import Proc, start_tp
from support.risk import make

from gateway.order_router import OrderRouter
from gateway.order_stream import OrderStream
from tickerplant.publisher import Publisher

# Another gateway's requests, a record every 2 ms, from a process of its own (the sleep
# only paces the flow), until its stdin closes.
FEEDER = """
import sys, threading, time
from orders.model import NewOrder, Side
from orders.rows import encode_requests
from tickerplant.publisher import Publisher

done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
with Publisher(sys.argv[1]) as other:
    i = 0
    while not done.is_set():
        request = NewOrder("A1", "AAPL", f"busy-{i}", Side.BUY, 1, price=10.0)
        other.publish_ipc("order_request", encode_requests([request]))
        i += 1
        if i == 200:
            print("flowing", flush=True)
        time.sleep(0.002)
"""


def test_a_gateway_becomes_ready_under_an_order_flow_without_pauses(
    tmp_path: Path, procs: list[Proc]
) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    feeder = subprocess.Popen(
        [sys.executable, "-c", FEEDER, address],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert feeder.stdout is not None and feeder.stdout.readline().strip() == "flowing"
        router = OrderRouter(make(), Publisher(address))
        stream = OrderStream(router, address).start()
        try:
            assert stream.wait_ready(15), f"not ready at seq {stream.last_seq} of a busy flow"
            assert router.ready
        finally:
            stream.close()
    finally:
        assert feeder.stdin is not None
        feeder.stdin.close()
        feeder.wait(10)
