"""The bare pyzmq roles of ``bench_tickerplant.py``'s baselines: a SUB that counts, a SUB
that measures latency and a relay (PULL in, PUB out, no work). Child processes run them
through ``bench_tickerplant.py --role``."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator

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
    received frames themselves (faster for large messages, slower for small ones), or
    ``journal``: the two things the tickerplant must do besides relaying, and nothing else.
    Each message is appended to a file (one ``writev``, before it goes on, as the journal
    is written before a record is published) and the senders are acknowledged at most once
    a millisecond (ROUTER in; ``tickerplant.acks``' pace). ``journal_batch`` does the same
    the cheapest way pyzmq allows, the floor for throughput: the messages waiting (up to
    64) received without copies, journaled by one ``writev`` and forwarded without copies.
    ``proxy`` is libzmq's own proxy, in C, with no journal: relaying without any Python
    a message (this process's main thread only counts the proxy's captured copies).
    """
    zero_copy = copying == "zerocopy"
    journal = copying.startswith("journal")
    ctx = zmq.Context()
    pull = ctx.socket(zmq.ROUTER if journal else zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 0)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    port_in = pull.bind_to_random_port("tcp://127.0.0.1")
    port_out = pub.bind_to_random_port("tcp://127.0.0.1")
    print(
        json.dumps({"ready": True, "in": f"tcp://127.0.0.1:{port_in}", "out": port_out}),
        flush=True,
    )
    if journal:
        relay = _batched_journaling_relay if copying == "journal_batch" else _journaling_relay
        relay(pull, pub, expect + 50)
    elif copying == "proxy":
        _c_proxy(ctx, pull, pub, expect + 50)
    for _ in range(0 if journal or copying == "proxy" else expect + 50):
        if zero_copy:
            pub.send_multipart(pull.recv_multipart(copy=False), copy=False)
        else:
            pub.send_multipart(pull.recv_multipart())
    print(json.dumps({"done": True}), flush=True)


def _c_proxy(ctx: zmq.Context, pull: zmq.Socket, pub: zmq.Socket, count: int) -> None:
    capture, counted, control, stop = (ctx.socket(zmq.PAIR) for _ in range(4))
    for sock in (capture, counted):
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
    capture.bind("inproc://capture")
    counted.connect("inproc://capture")
    control.bind("inproc://control")
    stop.connect("inproc://control")
    proxy = threading.Thread(target=zmq.proxy_steerable, args=(pull, pub, capture, control))
    proxy.start()
    for _ in range(count):
        counted.recv_multipart(copy=False)
    stop.send(b"TERMINATE")  # the proxy returns; what it sent is flushed as the sockets close
    proxy.join()


@contextlib.contextmanager
def _temporary_journal() -> Iterator[int]:
    """An append-only file descriptor for a relay's journal, gone afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        fd = os.open(os.path.join(tmp, "journal"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            yield fd
        finally:
            os.close(fd)


def _journaling_relay(router: zmq.Socket, pub: zmq.Socket, count: int) -> None:
    with _temporary_journal() as fd:
        due: dict[bytes, int] = {}
        next_ack = 0.0
        for n in range(1, count + 1):
            sender, *frames = router.recv_multipart()
            os.writev(fd, frames)
            pub.send_multipart(frames)
            due[sender] = n
            now = time.monotonic()
            if now >= next_ack:
                next_ack = now + 0.001
                for who, level in due.items():
                    router.send_multipart([who, b"ack", level.to_bytes(8, "little")])
                due.clear()


def _batched_journaling_relay(router: zmq.Socket, pub: zmq.Socket, count: int) -> None:
    with _temporary_journal() as fd:
        next_ack = 0.0
        done = 0
        while done < count:
            waiting = [router.recv_multipart(copy=False)]
            while len(waiting) < 64 and done + len(waiting) < count:
                try:
                    waiting.append(router.recv_multipart(zmq.NOBLOCK, copy=False))
                except zmq.Again:
                    break
            os.writev(fd, [frame.buffer for message in waiting for frame in message[1:]])
            for message in waiting:
                pub.send_multipart(message[1:], copy=False)
            done += len(waiting)
            now = time.monotonic()
            if now >= next_ack:
                next_ack = now + 0.001
                router.send_multipart([waiting[-1][0], b"ack", done.to_bytes(8, "little")])


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
