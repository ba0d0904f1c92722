"""The bare pyzmq roles of ``bench_tickerplant.py``'s baselines: a SUB that counts, a SUB
that measures latency and a relay (PULL in, PUB out, no work). Child processes run them
through ``bench_tickerplant.py --role``."""

from __future__ import annotations

import json
import time

import pyarrow.ipc as ipc
import zmq


def raw_sub_socket(endpoint: str) -> zmq.Socket:
    """A bare SUB socket subscribed to everything, unbounded, for the baselines."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock


def role_raw_sub(endpoint: str, expect: int) -> None:
    sock = raw_sub_socket(endpoint)
    # Wait for the subscription to arrive: the publisher sends probes until one comes back.
    print(json.dumps({"ready": True}), flush=True)
    got = 0
    while got < expect:
        frames = sock.recv_multipart()
        if frames[0] == b"probe":
            continue
        got += 1
    print(json.dumps({"got": got, "done": time.time()}), flush=True)


def role_raw_relay(copying: str, expect: int) -> None:
    """A bare relay: PULL in, PUB out, every frame forwarded as it arrives.

    The floor for any tickerplant, which is a relay plus its own work: two hops, and a
    process in the middle that has to be woken. ``copying`` is ``zerocopy`` to forward the
    received frames themselves (faster for large messages, slower for small ones).
    """
    zero_copy = copying == "zerocopy"
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 0)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    port_in = pull.bind_to_random_port("tcp://127.0.0.1")
    port_out = pub.bind_to_random_port("tcp://127.0.0.1")
    print(
        json.dumps({"ready": True, "in": f"tcp://127.0.0.1:{port_in}", "out": port_out}),
        flush=True,
    )
    for _ in range(expect + 50):
        if zero_copy:
            pub.send_multipart(pull.recv_multipart(copy=False), copy=False)
        else:
            pub.send_multipart(pull.recv_multipart())
    print(json.dumps({"done": True}), flush=True)


def role_raw_latency_sub(endpoint: str, expect: int) -> None:
    sock = raw_sub_socket(endpoint)
    print(json.dumps({"ready": True}), flush=True)
    latencies = []
    while len(latencies) < expect:
        frames = sock.recv_multipart()
        if frames[0] == b"probe":
            continue
        now = time.time_ns()
        sent = ipc.open_stream(frames[1]).read_all().column("time")[0].value
        latencies.append(now - sent)
    latencies.sort()
    print(
        json.dumps(
            {"p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99)]}
        ),
        flush=True,
    )
