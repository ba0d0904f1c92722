"""Tickerplant throughput and latency, end to end, against raw pyzmq in the same run.

End to end means publisher -> tickerplant (validate, journal, sequence) -> subscriber
process(es), with the journal on. The baseline moves the same payload bytes, the same number
of messages, from one process to subscriber processes over a bare pyzmq PUB/SUB. A second
baseline sends them through a bare relay process (PULL in, PUB out, no work): the ceiling
for anything that sits between publishers and subscribers, as a tickerplant does.

    .venv/bin/python scripts/bench_tickerplant.py            # full matrix, 3 repeats
    .venv/bin/python scripts/bench_tickerplant.py --quick    # smaller, 1 repeat
    .venv/bin/python scripts/bench_tickerplant.py --rows "" --repeat 5   # latency only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pyarrow as pa
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_bare_roles import role_raw_latency_sub, role_raw_relay, role_raw_sub
from bench_layout import Layout, layout_config, parse_layout, pin, pinned

from tickdb.launch import Launched, launch
from tickdb.schema import default_schemas
from tickerplant.ingest import encode_stream
from tickerplant.journal_writev import IOV_MAX, WRITE_BYTES

TRADE = default_schemas()["trade"]
LAYOUT: Layout = {}  # --cpus
# Payloads from this size on are relayed without copying in the bare relay baseline: its
# fastest way for them (measured: 1000-row payloads +6-11%; one-row payloads -20%).
ZERO_COPY_BYTES = 16 * 1024


def payload(rows: int, ts: int = 0) -> bytes:
    table = pa.table(
        {
            "time": pa.array([ts] * rows, pa.int64()).cast(pa.timestamp("ns")),
            "sym": [f"S{i % 50}" for i in range(rows)],
            "price": [100.0 + i for i in range(rows)],
            "size": list(range(rows)),
        },
        schema=TRADE.arrow,
    )
    return encode_stream(table, TRADE.arrow)


# -- child roles ---------------------------------------------------------------------------
def role_sub(address: str, expect_rows: int) -> None:
    """Count the rows of every record received: each record's data is decoded."""
    from tickerplant.subscriber import Subscriber

    sub = Subscriber(address, tables=["trade"])
    print(json.dumps({"ready": True}), flush=True)
    got = 0
    while got < expect_rows:
        message = sub.poll(30)
        if message is None:
            break
        got += message.data.num_rows
    print(json.dumps({"got": got, "done": time.time(), "gaps": sub.gaps_repaired}), flush=True)
    sub.close()


def role_latency_sub(address: str, expect: int) -> None:
    import pyarrow.ipc as ipc

    from tickerplant.subscriber import Subscriber

    sub = Subscriber(address, tables=["trade"])
    print(json.dumps({"ready": True}), flush=True)
    latencies = []
    to_tp = []  # publisher to the tickerplant's receive stamp: the first hop alone
    while len(latencies) < expect:
        message = sub.poll(30)
        if message is None:
            break
        now = time.time_ns()
        # Every row counts: rows that queued up together arrive in one record.
        times = ipc.open_stream(message.payload).read_all().column("time").cast(pa.int64())
        # The warm-up row (settle_subscribers) has time 0: not one of the paced messages.
        sent = [t for t in times.to_pylist() if t]
        latencies.extend(now - t for t in sent)
        to_tp.extend(message.ts_recv - t for t in sent)
    latencies.sort()
    to_tp.sort()
    print(
        json.dumps(
            {
                "p50": latencies[len(latencies) // 2],
                "p50_to_tp": to_tp[len(to_tp) // 2],
                "p99_to_tp": to_tp[int(len(to_tp) * 0.99)],
                "p99": latencies[int(len(latencies) * 0.99)],
                "max": latencies[-1],
                "n": len(latencies),
            }
        ),
        flush=True,
    )


# -- orchestration -------------------------------------------------------------------------
def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return spawn_with_info(*args, env=env)[0]


def spawn_with_info(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, dict]:
    """A child role, once it has said it is ready, and what it said."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    # --cpus: a relay stands where the tickerplant does; every other role subscribes.
    pin(LAYOUT, "tickerplant" if "raw_relay" in args else "subscriber", proc.pid)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    info = json.loads(line)
    assert info["ready"], line
    return proc, info


def result(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    out = json.loads(proc.stdout.readline())
    proc.wait(30)
    return out


def start_tp(workdir: Path, mode: str) -> Launched:
    """A ``tickdb tp`` in ``mode``, once ready (its endpoints in ``.info``)."""
    config = workdir / "tp.toml"
    config.write_text(
        '[tickerplant]\naddress = "tcp://127.0.0.1:0"\npublish_address = "tcp://127.0.0.1:0"\n'
        f'replay_address = "tcp://127.0.0.1:0"\nmode = "{mode}"\nbatch_interval_ms = 20\n'
        "kdb_port = 0\n"
        + os.environ.get("BENCH_TP_EXTRA", "").replace("\\n", "\n")
        + layout_config(LAYOUT)
    )
    return launch(
        ["tp", "--config", str(config), "--data-dir", str(workdir / "data")],
        name="tp",
        log_path=workdir / "tp.log",
        ready_file=workdir / "tp.ready",
        ready_timeout_s=30,
        env={"TICKDB_LOG_LEVEL": "WARNING"},
    )


def settle_subscribers(address: str) -> None:
    """Publish a warm-up row until it is clearly through (subscriptions propagate async)."""
    from tickerplant.publisher import Publisher

    with Publisher(address) as pub:
        pub.publish_ipc("trade", payload(1))
    time.sleep(0.3)


def run_tickdb(rows: int, messages: int, mode: str, subs: int) -> dict:
    from tickerplant.publisher import Publisher

    with tempfile.TemporaryDirectory() as tmp:
        tp = start_tp(Path(tmp), mode)
        info = tp.info
        try:
            address = info["address"]
            expect = messages * rows + 1  # and the warm-up row
            children = [spawn("--role", "sub", address, str(expect)) for _ in range(subs)]
            settle_subscribers(address)
            body = payload(rows)
            pub = Publisher(address, max_inflight=50_000)
            start = time.time()
            for _ in range(messages):
                pub.publish_ipc("trade", body)
            pub.flush(120)
            published = time.time()
            outs = [result(c) for c in children]
            pub.close()
        finally:
            tp.stop(grace_s=30)
    done = max(o["done"] for o in outs)
    assert all(o["got"] == expect for o in outs), outs
    elapsed = done - start
    return {
        "msgs_s": messages / elapsed,
        "rows_s": messages * rows / elapsed,
        "publish_s": published - start,
        "gaps": sum(o["gaps"] for o in outs),
    }


TOPIC = b"upd/trade/*\0"


def bare(
    relay: str | None, count: int, sub_role: str, subs: int, send: Callable[[zmq.Socket], None]
) -> list[dict]:
    """A baseline: ``send`` puts ``count`` messages into a bare PUB socket (``relay`` None)
    or, over PUSH, into a bare relay process (``relay``: its ``copy`` or ``zerocopy`` mode;
    ``journal`` or ``journal_batch`` over DEALER, acknowledged), with ``subs`` subscriber
    processes of ``sub_role``. Returns each subscriber's result."""
    ctx = zmq.Context()
    relay_proc = None
    journal = relay is not None and relay.startswith("journal")
    kind = zmq.PUB if relay is None else zmq.DEALER if journal else zmq.PUSH
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.SNDHWM, 0)  # before bind or connect: the pipes copy it then
    if relay is None:
        out = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"
    else:
        relay_proc, info = spawn_with_info("--role", "raw_relay", relay, str(count))
        sock.connect(info["in"])
        out = f"tcp://127.0.0.1:{info['out']}"
    children = [spawn("--role", sub_role, out, str(count)) for _ in range(subs)]
    for _ in range(50):  # probes until subscriptions arrive (a relay expects 50 extra)
        sock.send_multipart([b"probe", b""])
        time.sleep(0.01)
    send(sock)
    outs = [result(c) for c in children]
    if relay_proc is not None:
        result(relay_proc)
    sock.close(0)
    ctx.term()
    return outs


def run_bare(rows: int, messages: int, subs: int, relay: bool, mode: str = "") -> dict:
    """The same messages over bare PUB/SUB, or through a bare relay process: its fastest
    plain mode for the size, or ``mode`` (``journal_batch``, its acks read every 64 sends
    as ``Publisher`` does; ``proxy``)."""
    body = payload(rows)
    started: list[float] = []
    journal = mode.startswith("journal")

    def send(sock: zmq.Socket) -> None:
        started.append(time.time())
        for i in range(messages):
            sock.send_multipart([TOPIC, body])
            while journal and i % 64 == 63 and sock.poll(0):
                sock.recv_multipart()

    plain = "zerocopy" if len(body) >= ZERO_COPY_BYTES else "copy"
    outs = bare(mode or (plain if relay else None), messages, "raw_sub", subs, send)
    elapsed = max(o["done"] for o in outs) - started[0]
    return {"msgs_s": messages / elapsed, "rows_s": messages * rows / elapsed}


_SENTINEL = 0x1122334455667788


def stamped_payload_factory() -> tuple[bytes, int]:
    """A one-row payload and the offset of its time value, to stamp just before sending
    (building an Arrow payload per message would sit inside the measured latency)."""
    body = payload(1, _SENTINEL)
    offset = body.index(_SENTINEL.to_bytes(8, "little"))
    return body, offset


def paced_payloads(rate: int, count: int) -> Iterator[bytes]:
    """``count`` one-row payloads at ``rate`` a second, each stamped just as it is due.

    Sleep, not spin: a spinning sender would take a core from the tickerplant on a
    two-core machine. Falling behind a little is caught up right away.
    """
    template, offset = stamped_payload_factory()
    body = bytearray(template)
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for _ in range(count):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        body[offset : offset + 8] = time.time_ns().to_bytes(8, "little")
        yield bytes(body)
        next_at += interval


def run_raw_append(rows: int, messages: int) -> float:
    """Rows/s that plain appends of the same bytes to a file reach: the journal's ceiling."""
    body = payload(rows)
    with tempfile.TemporaryDirectory() as tmp:
        fd = os.open(Path(tmp) / "append", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        start = time.perf_counter()
        # In calls of at most WRITE_BYTES and IOV_MAX buffers, as the journal writes (one
        # writev of many megabytes costs more CPU per byte: tickerplant.journal_writev).
        per_call = max(1, min(IOV_MAX, WRITE_BYTES // len(body)))
        for i in range(0, messages, per_call):
            os.writev(fd, [body] * min(per_call, messages - i))
        elapsed = time.perf_counter() - start
        os.close(fd)
    return messages * rows / elapsed


def run_latency(
    rate: int, seconds: float, start_sub: Callable[[str, int], subprocess.Popen] | None = None
) -> dict:
    """Paced one-row messages through a tickerplant to a subscriber process; its result line.
    ``start_sub(address, count)``: another subscriber (ready when returned) than
    ``latency_sub``."""
    from tickerplant.publisher import Publisher

    count = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        tp = start_tp(Path(tmp), "immediate")
        info = tp.info
        try:
            address = info["address"]
            if start_sub is None:
                child = spawn("--role", "latency_sub", address, str(count))
            else:
                child = start_sub(address, count)
            settle_subscribers(address)  # its row is not counted
            pub = Publisher(address, max_inflight=50_000)
            for body in paced_payloads(rate, count):
                pub.publish_ipc("trade", body)
            pub.flush(60)
            out = result(child)
            pub.close()
        finally:
            tp.stop(grace_s=30)
    return out


def run_bare_latency(rate: int, seconds: float, relay: str | None) -> dict:
    """The same paced one-row messages over bare PUB/SUB, or through a bare relay process
    (``copy``, or ``journal``: journaling and acknowledging): the floors for the latency.
    Acks are read every 64 sends, as ``Publisher`` does."""
    count = int(rate * seconds)

    def send(sock: zmq.Socket) -> None:
        for i, body in enumerate(paced_payloads(rate, count)):
            sock.send_multipart([TOPIC, body])
            while relay == "journal" and i % 64 == 63 and sock.poll(0):
                sock.recv_multipart()

    return bare(relay, count, "raw_latency_sub", 1, send)[0]


def latency(rate: int, seconds: float, repeat: int) -> None:
    """The three set-ups in turn, ``repeat`` rounds: on a shared machine the load drifts,
    so each round's tickdb figures are compared with the relay's of the same round, and
    the medians of those ratios are printed beside the medians of the figures."""
    setups: dict[str, Callable[[int, float], dict]] = {
        "tickdb (pub -> journal -> sub)": run_latency,
        "raw pyzmq PUB/SUB": partial(run_bare_latency, relay=None),
        "raw relay journaling and acking (writev, an ack a ms)": partial(
            run_bare_latency, relay="journal"
        ),
        "raw pyzmq relay (PUSH -> relay process -> PUB/SUB)": partial(
            run_bare_latency, relay="copy"
        ),
    }
    runs: dict[str, list[dict]] = {label: [] for label in setups}
    for _ in range(repeat):
        for label, runner in setups.items():
            runs[label].append(runner(rate, seconds))
    relay = runs[list(setups)[-1]]
    print(
        f"\n| latency at {rate:,} msgs/s, 1-row, immediate, median of {repeat} "
        "| p50 us | p99 us | p50 / relay | p99 / relay |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, got in runs.items():
        p50, p99 = (statistics.median(r[q] for r in got) / 1000 for q in ("p50", "p99"))
        ratios = [
            statistics.median(r[q] / base[q] for r, base in zip(got, relay, strict=True))
            for q in ("p50", "p99")
        ]
        hop = ""
        if "p50_to_tp" in got[0]:
            hop = " (to the tickerplant's receive: p50 {:.0f}, p99 {:.0f})".format(
                statistics.median(r["p50_to_tp"] for r in got) / 1000,
                statistics.median(r["p99_to_tp"] for r in got) / 1000,
            )
        print(
            f"| {label}{hop} | {p50:.0f} | {p99:.0f} | {ratios[0]:.2f} | {ratios[1]:.2f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", default="1,10,100,1000", help="Rows per message to run.")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--latency-rate", type=int, default=10_000, help="One-row messages a second."
    )
    parser.add_argument(
        "--cpus", default="", help="CPU layout (bench_layout.py): tickerplant, subscriber, client"
    )
    opts = parser.parse_args()
    LAYOUT.update(parse_layout(opts.cpus))
    if opts.role:
        {
            "sub": role_sub,
            "raw_sub": role_raw_sub,
            "latency_sub": role_latency_sub,
            "raw_latency_sub": role_raw_latency_sub,
            "raw_relay": role_raw_relay,
        }[opts.role](opts.args[0], int(opts.args[1]))
        return
    repeat = 1 if opts.quick else opts.repeat
    print(
        f"# tickerplant end to end, journal on, median of {repeat}; {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}; CPU layout: {opts.cpus or 'none'}"
    )
    with pinned(LAYOUT.get("client")):
        matrix(opts, repeat)


def matrix(opts: argparse.Namespace, repeat: int) -> None:
    """The throughput matrix, then the latency, as the options ask."""
    scale = 0.25 if opts.quick else 1.0
    plan = {1: 200_000, 10: 100_000, 100: 20_000, 1000: 3_000}
    print(
        "| rows/msg | mode | subs | msgs/s | rows/s | raw pyzmq rows/s | ratio "
        "| raw relay rows/s | ratio to relay | raw file append rows/s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    wanted = {int(r) for r in opts.rows.split(",") if r}
    for rows, messages in plan.items():
        if rows not in wanted:
            continue
        messages = int(messages * scale)
        for subs in (1, 4):
            raw, relay = (
                statistics.median(
                    run_bare(rows, messages, subs, via)["rows_s"] for _ in range(repeat)
                )
                for via in (False, True)
            )
            append = statistics.median(run_raw_append(rows, messages) for _ in range(repeat))
            for mode in ("immediate", "batched"):
                runs = [run_tickdb(rows, messages, mode, subs) for _ in range(repeat)]
                rows_s = statistics.median(r["rows_s"] for r in runs)
                msgs_s = statistics.median(r["msgs_s"] for r in runs)
                print(
                    f"| {rows} | {mode} | {subs} | {msgs_s:,.0f} | {rows_s:,.0f} | "
                    f"{raw:,.0f} | {rows_s / raw:.2f} | {relay:,.0f} | {rows_s / relay:.2f} | "
                    f"{append:,.0f} |",
                    flush=True,
                )
    if opts.no_latency:
        return
    latency(opts.latency_rate, 2.0 if opts.quick else 5.0, repeat)


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
