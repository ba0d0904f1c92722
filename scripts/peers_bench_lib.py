"""The peers of ``scripts/bench_peers.py``: their servers and their subscriber processes.

A NATS server with JetStream (file storage) and a Redis server with its append-only file,
each started on loopback on a free port in a temporary directory and stopped afterwards;
and the subscriber roles, run as ``python scripts/peers_bench_lib.py ROLE ARGS...``, which
print ``{"ready": true}`` once subscribed and one JSON line of results at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.ipc as ipc
from bench_layout import Layout, pin

LAYOUT: Layout = {}  # bench_peers.py --cpus
SUBJECT = "trade"  # the NATS subject and stream, and the Redis stream key
IDLE_S = 30.0  # a subscriber gives up after this long without a message
# Redis's durability, chosen to match the tickerplant's default journal (``fsync =
# "interval"``): a reply follows the write to the OS, an fsync follows within a second.
REDIS_APPENDFSYNC = "everysec"


def missing(peer: str) -> list[str]:
    """What has to be installed before ``peer`` can run: empty when nothing."""
    server, module, dist = {
        "nats": ("nats-server", "nats", "nats-py"),
        "redis": ("redis-server", "redis", "redis"),
    }[peer]
    needs = []
    if shutil.which(server) is None:
        needs.append(f"apt-get install {server}")
    if importlib.util.find_spec(module) is None:
        needs.append(f"pip install {dist}  (or: pip install -e '.[peers]')")
    return needs


def nats_version() -> tuple[int, ...]:
    out = subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in found.groups()) if found else (0, 0, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.02)
    return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _server_config(peer: str, workdir: Path, port: int) -> list[str]:
    """The command line that starts ``peer`` on ``port`` with its files in ``workdir``."""
    if peer == "nats":
        # JetStream's file store writes each message to the OS before the publish ack
        # (2.9: "flush in place"). Its fsync interval is configurable from 2.10 on:
        # set it to the tickerplant's one second there; 2.9 syncs every two minutes.
        sync = '  sync_interval: "1s"\n' if nats_version() >= (2, 10, 0) else ""
        conf = workdir / "nats.conf"
        conf.write_text(
            f"listen: 127.0.0.1:{port}\nmax_payload: 8MB\n"
            f'jetstream {{\n  store_dir: "{workdir / "js"}"\n{sync}}}\n'
        )
        return ["nats-server", "-c", str(conf)]
    conf = workdir / "redis.conf"
    conf.write_text(
        f"bind 127.0.0.1\nport {port}\ndir {workdir}\nlogfile {workdir / 'redis.log'}\n"
        f'save ""\nappendonly yes\nappendfsync {REDIS_APPENDFSYNC}\n'
        # No background rewrite (a fork) in the middle of a run: the tickerplant's journal
        # is never compacted either.
        "auto-aof-rewrite-percentage 0\n"
    )
    return ["redis-server", str(conf)]


@contextlib.contextmanager
def server(peer: str, workdir: Path) -> Iterator[str]:
    """Run ``peer``'s server (``nats`` or ``redis``) until the block ends; yields its URL."""
    for _ in range(3):  # a free port can be taken between finding and binding it
        port = free_port()
        log = open(workdir / f"{peer}.out", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            _server_config(peer, workdir, port), stdout=log, stderr=subprocess.STDOUT
        )
        pin(LAYOUT, "tickerplant", proc.pid)  # --cpus: the server in the tickerplant's place
        try:
            if _wait_port(port, proc):
                yield f"{peer}://127.0.0.1:{port}"
                return
        finally:
            _stop(proc)
            log.close()
    raise RuntimeError(f"{peer} server did not start: see {workdir / f'{peer}.out'}")


def spawn(script: str, *args: str) -> subprocess.Popen:
    """A subscriber role (of this module or ``bench_tickerplant.py``) in a process of its
    own, once it says it is subscribed."""
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, text=True)
    pin(LAYOUT, "subscriber", proc.pid)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
    except BaseException:
        reap(proc)
        raise
    if not line or not json.loads(line).get("ready"):
        _stop(proc)
        raise RuntimeError(f"subscriber {args} did not start: {line!r}")
    return proc


def reap(proc: subprocess.Popen | None) -> None:
    """End a subscriber process that is still running (a run that failed)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def result(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.wait(30)
    if not line:
        raise RuntimeError("subscriber ended without a result")
    return dict(json.loads(line))


# -- what a subscriber does with one message ----------------------------------------------
def arrow_rows(payload: bytes) -> int:
    """Rows of an Arrow IPC stream, decoded: the work the tickdb subscriber does."""
    return int(ipc.open_stream(payload).read_all().num_rows)


def arrow_time(payload: bytes) -> int:
    """The ``time`` (ns) of a one-row Arrow IPC stream."""
    return int(ipc.open_stream(payload).read_all().column("time")[0].value)


class Counter:
    """Counts rows (``kind`` ``arrow`` or ``row``) or one-way latencies (``latency``)."""

    def __init__(self, kind: str, expect: int) -> None:
        self.kind, self.expect = kind, expect
        self.got = 0
        self.latencies: list[int] = []
        self.to_server: list[int] = []  # publisher to the server's store stamp

    def add(self, payload: bytes, stored_ns: int | None = None) -> None:
        """One message; ``stored_ns`` is the server's time of storing it, when known."""
        if self.kind == "arrow":
            self.got += arrow_rows(payload)
        elif self.kind == "row":
            orjson.loads(payload)
            self.got += 1
        else:
            now = time.time_ns()
            sent = arrow_time(payload)
            self.latencies.append(now - sent)
            if stored_ns is not None:
                self.to_server.append(stored_ns - sent)
            self.got += 1

    @property
    def done(self) -> bool:
        return self.got >= self.expect

    def report(self) -> dict:
        if self.kind != "latency":
            return {"got": self.got, "done": time.time()}
        out: dict = {"got": self.got}
        for name, values in (("", self.latencies), ("_to_server", self.to_server)):
            if values:
                values.sort()
                out[f"p50{name}"] = values[len(values) // 2]
                out[f"p99{name}"] = values[int(len(values) * 0.99)]
        return out


def _ready() -> None:
    print(json.dumps({"ready": True}), flush=True)


# -- subscriber roles -----------------------------------------------------------------------
async def _nats_sub(url: str, kind: str, expect: int) -> dict:
    """An ordered push consumer: no acks, in stream order, gaps repaired by the client
    (it recreates the consumer from the last sequence seen): JetStream's nearest thing to a
    tickdb subscriber."""
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    counter = Counter(kind, expect)
    finished = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<seq>.<stored ns>.<pending>
        counter.add(msg.data, int(msg.reply.split(".")[7]) if kind == "latency" else None)
        if counter.done:
            finished.set()

    await js.subscribe(
        SUBJECT,
        cb=on_msg,
        ordered_consumer=True,
        pending_msgs_limit=0,  # unbounded: no slow-consumer drops
        pending_bytes_limit=0,
    )
    _ready()
    while not finished.is_set():
        seen = counter.got
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(finished.wait(), IDLE_S)
        if counter.got == seen and not finished.is_set():
            break
    out = counter.report()
    await nc.close()
    return out


def role_nats_sub(url: str, kind: str, expect: str) -> None:
    print(json.dumps(asyncio.run(_nats_sub(url, kind, int(expect)))), flush=True)


def role_redis_sub(url: str, kind: str, expect: str) -> None:
    """XREAD BLOCK from the last id seen: the stream is the log, nothing is acknowledged."""
    import redis

    r = redis.Redis.from_url(url)
    counter = Counter(kind, int(expect))
    # Replies of about a megabyte: a few dozen 1000-row batches, a thousand single rows.
    count = 32 if kind == "arrow" else 1000
    last = b"0-0"
    r.ping()
    _ready()
    while not counter.done:
        reply: Any = r.xread({SUBJECT: last}, count=count, block=int(IDLE_S * 1000))
        if not reply:
            break
        for entry_id, fields in reply[0][1]:
            last = entry_id
            if kind == "row":
                counter.got += 1  # the fields are the row, already decoded by the client
            else:
                counter.add(fields[b"d"])
    print(json.dumps(counter.report()), flush=True)
    r.close()


if __name__ == "__main__":
    {"nats_sub": role_nats_sub, "redis_sub": role_redis_sub}[sys.argv[1]](*sys.argv[2:])
