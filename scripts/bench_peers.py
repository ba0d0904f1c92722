"""tickdb against what a Python user would pick instead: NATS JetStream and Redis Streams.

One run, the same workloads through each, every server started here on loopback (a free
port, files in a temporary directory) and stopped at the end; the publisher runs in this
process and one subscriber in a process of its own, as in ``scripts/bench_tickerplant.py``:

1. batches: 1000-row Arrow IPC payloads of the trade table (the same bytes for all three;
   for the peers they are the message payload), publisher -> server -> subscriber, which
   decodes every payload; rows/s from the first publish to the last row received.
2. rows: one row at a time, a dict per row, with each system's own batching: tickdb
   ``Publisher.publish`` with ``batch_rows``/``batch_ms``; NATS ``publish_async`` (acks
   pipelined, up to 4000 pending) of the row as JSON; Redis ``XADD`` of the row's fields,
   pipelined 1000 at a time. Rows/s end to end, as above.
3. latency: one-row Arrow payloads at 10k msgs/s, each stamped with the publisher's clock
   just before it is sent; p50/p99 of the subscriber's clock at receipt minus the stamp,
   and the rate the paced publisher reached (tickdb ``publish_ipc``, NATS
   ``publish_async``, Redis one ``XADD`` per round trip, those due meanwhile pipelined).

Durability is matched to the tickerplant's default journal (``fsync = "interval"``: a record
is handed to the OS before it is acknowledged or published, fsynced within a second):
Redis ``appendonly yes`` with ``appendfsync everysec``; JetStream's file store, which
writes each message to the OS before its publish ack (fsync: see the fairness lines).

Needs ``nats-server`` and ``redis-server`` (Debian: ``apt-get install nats-server
redis-server``) and ``pip install -e '.[peers]'`` (nats-py, redis with hiredis); a peer
whose server or client is missing is skipped, with what to install.

    .venv/bin/python scripts/bench_peers.py             # 3 repeats, medians
    .venv/bin/python scripts/bench_peers.py --quick     # smaller, 1 repeat
    .venv/bin/python scripts/bench_peers.py --workloads latency --peers redis --rate 5000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_tickerplant
import peers_bench_lib as lib
from bench_layout import parse_layout, pinned
from bench_tickerplant import (
    paced_payloads,
    payload,
    settle_subscribers,
    stamped_payload_factory,
    start_tp,
)

BENCH_TP = str(Path(__file__).with_name("bench_tickerplant.py"))
BATCH_ROWS = 1000  # rows per batch in the rows workload: tickdb's batch_rows, Redis's pipeline
BATCH_MS = 5.0  # tickdb's batch_ms: a part batch goes out after this long
NATS_MAX_PENDING = 4000  # nats-py's default publish_async window
REDIS_BATCH_PIPELINE = 32  # 1000-row payloads per Redis pipeline (about 1 MiB)
SYSTEMS = ("tickdb", "nats", "redis")
NAMES = {"tickdb": "tickdb", "nats": "NATS JetStream", "redis": "Redis Streams"}


def rows(n: int) -> list[dict[str, Any]]:
    """``n`` trade rows as a feed hands them over, one dict each (``time`` left to the
    server: the tickerplant stamps it, a JetStream message and a Redis entry id carry the
    server's receive time)."""
    return [{"sym": f"S{i % 50}", "price": 100.0 + i % 997 / 100, "size": i} for i in range(n)]


# -- tickdb -------------------------------------------------------------------------------
def on_tickdb(role: str, expect: int, send: Callable[[str], float]) -> tuple[dict, float]:
    """A fresh tickerplant, a subscriber process (``bench_tickerplant.py``'s ``role``) that
    waits for ``expect`` rows, and ``send(address)``, which publishes and returns when it
    started. Returns the subscriber's result and that start."""
    with tempfile.TemporaryDirectory() as tmp:
        tp = start_tp(Path(tmp), "immediate")
        info = tp.info
        child = None
        try:
            address = info["address"]
            child = lib.spawn(BENCH_TP, "--role", role, address, str(expect))
            settle_subscribers(address)
            start = send(address)
            out = lib.result(child)
        finally:
            lib.reap(child)
            tp.stop(grace_s=30)
    return out, start


def tickdb_batches(messages: int) -> dict:
    """As ``bench_tickerplant.run_tickdb`` with 1000-row messages and one subscriber."""
    from tickerplant.publisher import Publisher

    body = payload(1000)

    def send(address: str) -> float:
        with Publisher(address, max_inflight=50_000) as pub:
            start = time.time()
            for _ in range(messages):
                pub.publish_ipc("trade", body)
            pub.flush(120)
        return start

    out, start = on_tickdb("sub", messages * 1000 + 1, send)  # and the warm-up row
    assert out["got"] == messages * 1000 + 1, out
    return {"rows_s": messages * 1000 / (out["done"] - start)}


def tickdb_rows(n: int) -> dict:
    from tickerplant.publisher import Publisher

    data = rows(n)

    def send(address: str) -> float:
        with Publisher(address, batch_rows=BATCH_ROWS, batch_ms=BATCH_MS) as pub:
            start = time.time()
            for row in data:
                pub.publish("trade", row)
            pub.flush(120)
        return start

    out, start = on_tickdb("sub", n + 1, send)
    assert out["got"] == n + 1, out
    return {"rows_s": n / (out["done"] - start)}


def timed(items: Iterable[Any], marks: list[float]) -> Iterator[Any]:
    """``items``, noting the time before the first and after the last has been used."""
    marks.append(time.time())
    yield from items
    marks.append(time.time())


def sent_rate(count: int, marks: list[float]) -> float:
    return count / (marks[1] - marks[0])


def tickdb_latency(rate: int, seconds: float) -> dict:
    """As ``bench_tickerplant.run_latency``, noting the rate the publisher reached."""
    from tickerplant.publisher import Publisher

    count, marks = int(rate * seconds), list[float]()

    def send(address: str) -> float:
        with Publisher(address, max_inflight=50_000) as pub:
            for body in timed(paced_payloads(rate, count), marks):
                pub.publish_ipc("trade", body)
            pub.flush(60)
        return marks[0]

    out, _ = on_tickdb("latency_sub", count, send)
    return {
        **out,
        "p50_to_server": out["p50_to_tp"],
        "p99_to_server": out["p99_to_tp"],
        "sent_s": sent_rate(count, marks),
    }


# -- peers ----------------------------------------------------------------------------------
def run_peer(peer: str, kind: str, expect: int, send: Callable[[str], float]) -> dict:
    """A fresh ``peer`` server, a subscriber process counting ``expect`` rows (``kind``:
    ``arrow``, ``row`` or ``latency``), and ``send(url)``, which publishes and returns when
    it started. Rows/s end to end, or the subscriber's latencies."""
    with tempfile.TemporaryDirectory() as tmp, lib.server(peer, Path(tmp)) as url:
        if peer == "nats":
            asyncio.run(nats_stream(url))
        child = lib.spawn(lib.__file__, f"{peer}_sub", url, kind, str(expect))
        try:
            start = send(url)
            published = time.time()
            out = lib.result(child)
        finally:
            lib.reap(child)
    assert out["got"] == expect, (peer, kind, out)
    if kind == "latency":
        return {**out, "publish_s": published - start}
    return {"rows_s": expect / (out["done"] - start), "publish_s": published - start}


async def nats_stream(url: str) -> None:
    """The stream every workload publishes to: file storage, default limits."""
    import nats
    from nats.js.api import StorageType

    nc = await nats.connect(url)
    js = nc.jetstream()
    for attempt in range(50):  # JetStream may still be starting
        try:
            await js.add_stream(name=lib.SUBJECT, subjects=[lib.SUBJECT], storage=StorageType.FILE)
            break
        except Exception:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    await nc.close()


async def _nats_send(url: str, payloads: Iterable[bytes], paced: bool) -> float:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=NATS_MAX_PENDING)
    futures = []
    start = time.time()
    for body in payloads:
        futures.append(await js.publish_async(lib.SUBJECT, body))
        if paced:
            await asyncio.sleep(0)  # let the client's flusher write it now
    await js.publish_async_completed()
    failed = [f.exception() for f in futures if f.exception() is not None]
    await nc.close()
    assert not failed, failed[:3]
    return start


def nats_send(payloads: Iterable[bytes], paced: bool = False) -> Callable[[str], float]:
    return lambda url: asyncio.run(_nats_send(url, payloads, paced))


def redis_send(entries: Iterable[dict], pipeline: int) -> Callable[[str], float]:
    """XADD every entry, ``pipeline`` commands per round trip."""

    def send(url: str) -> float:
        import redis

        r = redis.Redis.from_url(url)
        start = time.time()
        pipe = r.pipeline(transaction=False)
        for i, entry in enumerate(entries, 1):
            pipe.xadd(lib.SUBJECT, entry)
            if i % pipeline == 0:
                pipe.execute()
        pipe.execute()
        r.close()
        return start

    return send


def redis_paced(rate: int, count: int, marks: list[float]) -> Callable[[str], float]:
    """XADD the paced one-row payloads as they fall due, each stamped as it is queued: one
    per round trip while the publisher keeps up; those that fell due while it waited for a
    reply go together in one pipeline (a blocking client cannot reach the rate otherwise)."""

    def send(url: str) -> float:
        import redis

        r = redis.Redis.from_url(url)
        pipe = r.pipeline(transaction=False)
        template, offset = stamped_payload_factory()
        body = bytearray(template)
        interval, sent = 1.0 / rate, 0
        marks.append(time.time())
        next_at = time.perf_counter()
        while sent < count:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.perf_counter()
            while sent < count and next_at <= now:
                body[offset : offset + 8] = time.time_ns().to_bytes(8, "little")
                pipe.xadd(lib.SUBJECT, {"d": bytes(body)})
                sent, next_at = sent + 1, next_at + interval
            pipe.execute()
        marks.append(time.time())
        r.close()
        return marks[0]

    return send


def peer_batches(peer: str, messages: int) -> dict:
    body = payload(1000)
    bodies = [body] * messages
    if peer == "nats":
        send = nats_send(bodies)
    else:
        send = redis_send(({"d": b} for b in bodies), REDIS_BATCH_PIPELINE)
    return run_peer(peer, "arrow", messages * 1000, send)


def peer_rows(peer: str, n: int) -> dict:
    data = rows(n)
    if peer == "nats":
        return run_peer(peer, "row", n, nats_send(orjson.dumps(row) for row in data))
    return run_peer(peer, "row", n, redis_send(data, BATCH_ROWS))


def peer_latency(peer: str, rate: int, seconds: float) -> dict:
    count, marks = int(rate * seconds), list[float]()
    paced = timed(paced_payloads(rate, count), marks)
    send = nats_send(paced, paced=True) if peer == "nats" else redis_paced(rate, count, marks)
    return {**run_peer(peer, "latency", count, send), "sent_s": sent_rate(count, marks)}


# -- the report -----------------------------------------------------------------------------
def versions() -> dict[str, str]:
    out = {"tickdb": "journal fsync interval (1 s)"}
    if not lib.missing("nats"):
        server = ".".join(map(str, lib.nats_version()))
        out["nats"] = f"nats-server {server}, nats-py {version('nats-py')}"
    if not lib.missing("redis"):
        line = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        server = line.stdout.split("v=")[1].split()[0] if "v=" in line.stdout else "?"
        from redis.utils import HIREDIS_AVAILABLE

        parser = "hiredis" if HIREDIS_AVAILABLE else "pure-Python parser: pip install hiredis"
        out["redis"] = f"redis-server {server}, redis-py {version('redis')} ({parser})"
    return out


def fairness(nats_ver: tuple[int, ...]) -> dict[str, str]:
    nats_sync = (
        "fsync every second (sync_interval 1s)"
        if nats_ver >= (2, 10, 0)
        else "fsync every 2 minutes (2.9's fixed interval; 1 s is settable from 2.10)"
    )
    return {
        "tickdb": (
            "records on the journal (write() to the OS, so a kill -9 loses nothing) before "
            "they are acknowledged or published; fsync every second on a background thread; "
            "cumulative acks, up to 50,000 batches in flight (batches; rows: the default "
            "20,000); one total order (a global "
            "seq); exactly once: numbered publisher batches, resends dropped, across "
            "restarts; the subscriber sends no acks and replays any gap from the journal."
        ),
        "nats": (
            f"JetStream file store: each message written to the OS before its publish ack, "
            f"{nats_sync}; publish_async, one ack per message, up to {NATS_MAX_PENDING} "
            "pending; ordered per stream; at least once (a resend after a lost ack is stored "
            "twice: dedup needs a Nats-Msg-Id header per message, not set here); ordered "
            "push consumer, no acks, the client recreates it on a gap."
        ),
        "redis": (
            f"AOF, appendfsync {lib.REDIS_APPENDFSYNC} (replies after the write() to the OS, "
            "fsync every second), no AOF rewrite during the run; every XADD answered, "
            f"pipelined ({REDIS_BATCH_PIPELINE} batches or {BATCH_ROWS} rows per round trip; "
            "latency: one by one, those that fell due during a round trip pipelined "
            "together); ordered per stream; at least once (auto ids: a resend is a second "
            "entry); XREAD BLOCK from the last id, no acks, gapless while the stream is not "
            "trimmed."
        ),
    }


def fmt(value: float | None, unit: str, ran: bool) -> str:
    if value is None:
        return "n/a" if ran else "skipped"
    return f"{value / 1000:,.0f}" if unit == "us" else f"{value:,.0f}"


def report(results: dict[tuple[str, str], list[float]], systems: list[str]) -> None:
    peers = [p for p in ("nats", "redis") if p in systems]
    head = " | ".join(NAMES[s] for s in SYSTEMS)
    ratios = " | ".join(f"tickdb/{NAMES[p].split()[0]}" for p in ("nats", "redis"))
    print(f"\n| workload | unit | {head} | {ratios} |")
    print("|---|---|" + "---:|" * (len(SYSTEMS) + 2))
    for workload, unit in (
        ("batches", "rows/s"),
        ("rows", "rows/s"),
        ("latency sent", "msgs/s"),
        ("latency p50", "us"),
        ("latency p99", "us"),
        ("to server p50", "us"),
        ("to server p99", "us"),
    ):
        if not any((workload, s) in results for s in SYSTEMS):
            continue
        med = {
            s: statistics.median(results[(workload, s)]) if (workload, s) in results else None
            for s in SYSTEMS
        }
        cells = " | ".join(fmt(med[s], unit, s in systems) for s in SYSTEMS)
        tick = med["tickdb"]
        ratio = " | ".join(
            f"{tick / v:.2f}" if tick and (v := med[p]) and p in peers else "-"
            for p in ("nats", "redis")
        )
        print(f"| {workload} | {unit} | {cells} | {ratio} |", flush=True)
    print(
        "\nrows/s, msgs/s: a ratio above 1 means tickdb is faster; us: below 1 means lower. "
        "'latency sent': the rate the paced publisher reached (below the target: it could "
        "not keep up, and the latency is not at that rate). 'to server': publisher to the "
        "server's own stamp (tickdb: the tickerplant's receive "
        "time; JetStream: the stored message's time; Redis ids stamp milliseconds only)."
    )


def measure(opts: argparse.Namespace, systems: list[str]) -> dict[tuple[str, str], list[float]]:
    messages = 750 if opts.quick else 3000  # of 1000 rows
    n_rows = 20_000 if opts.quick else 100_000
    seconds = 2.0 if opts.quick else 5.0
    runners: dict[str, dict[str, Callable[[], dict]]] = {
        "batches": {"tickdb": lambda: tickdb_batches(messages)},
        "rows": {"tickdb": lambda: tickdb_rows(n_rows)},
        "latency": {"tickdb": lambda: tickdb_latency(opts.rate, seconds)},
    }
    for peer in systems[1:]:
        runners["batches"][peer] = partial(peer_batches, peer, messages)
        runners["rows"][peer] = partial(peer_rows, peer, n_rows)
        runners["latency"][peer] = partial(peer_latency, peer, opts.rate, seconds)
    wanted = opts.workloads.split(",")
    results: dict[tuple[str, str], list[float]] = {}
    for rep in range(1 if opts.quick else opts.repeat):
        for workload in wanted:
            for system in systems:
                out = runners[workload][system]()
                if workload == "latency":
                    results.setdefault(("latency sent", system), []).append(out["sent_s"])
                    for q in ("p50", "p99"):
                        results.setdefault((f"latency {q}", system), []).append(out[q])
                        if f"{q}_to_server" in out:
                            hop = out[f"{q}_to_server"]
                            results.setdefault((f"to server {q}", system), []).append(hop)
                    shown = (
                        f"p50 {out['p50'] / 1000:,.0f} us, p99 {out['p99'] / 1000:,.0f} us, "
                        f"sent {out['sent_s']:,.0f} msgs/s"
                    )
                else:
                    results.setdefault((workload, system), []).append(out["rows_s"])
                    shown = f"{out['rows_s']:,.0f} rows/s"
                print(f"# repeat {rep + 1} {workload} {NAMES[system]}: {shown}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, 1 repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="batches,rows,latency")
    parser.add_argument("--rate", type=int, default=10_000, help="msgs/s of the latency run")
    parser.add_argument("--peers", default="nats,redis", help="peers to run (comma separated)")
    parser.add_argument(
        "--cpus",
        default="",
        help="CPU layout (bench_layout.py): tickerplant (each server), subscriber, client",
    )
    opts = parser.parse_args()
    lib.LAYOUT.update(parse_layout(opts.cpus))
    bench_tickerplant.LAYOUT.update(lib.LAYOUT)  # the tickerplant's [cpus] section
    systems = ["tickdb"]
    for peer in opts.peers.split(","):
        if not peer:
            continue
        needs = lib.missing(peer)
        if needs:
            print(f"# skipping {NAMES[peer]}: needs " + "; ".join(needs), flush=True)
        else:
            systems.append(peer)
    ver = versions()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"# tickdb vs peers, median of {1 if opts.quick else opts.repeat}; {os.cpu_count()} "
        f"cores, Python {sys.version.split()[0]}, load average {load}"
    )
    for s in systems:
        print(f"# {NAMES[s]}: {ver[s]}")
    print(f"# CPU layout: {opts.cpus or 'none (where the OS schedules)'}")
    with pinned(lib.LAYOUT.get("client")):
        results = measure(opts, systems)
    report(results, systems)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    notes = fairness(lib.nats_version() if "nats" in systems else (0,))
    for s in systems:
        print(f"- {NAMES[s]}: {notes[s]}")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
