"""FIX 4.4 order entry: NewOrderSingle -> ExecutionReport(New) over one session.

Starts a tickerplant, one venue and a gateway with the FIX acceptor (real processes on
loopback), logs on with tickdb's FIX client and measures:

- latency: one order at a time, NewOrderSingle sent -> its ExecutionReport(New) received
  (gateway risk, tickerplant journal, venue, tickerplant, gateway, back), p50/p99;
- throughput: orders pipelined on one session, orders/s until the last New arrives;
- the baselines, in the same run: a raw TCP round trip (64-byte echo) between two
  processes; and the same order, one at a time, through the gateway's order port
  (``gateway.order_port``, JSON over ZeroMQ, ``wait``: answered once the venue accepted)
  of a second gateway started on the same tickerplant and venue once the FIX runs are
  done: the order path without FIX, so the difference is what FIX costs;
- the codec: simplefix's parser and encoder against fix.codec's, per message.

Each figure is the median of ``--runs`` runs. Goals: p50 <= 1 ms, p99 <= 3 ms, >= 5k/s.

    python scripts/bench_fix.py [--runs 3] [--orders 2000] [--burst 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from orders_bench_lib import cpu_ns  # noqa: E402
from support.simplefix_ref import simplefix_encode  # noqa: E402

from fix.client import FixClient  # noqa: E402
from fix.codec import Field, Framer, Message, decode, encode, fix_time  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402

CONFIG = """
[tickerplant]
address = "tcp://127.0.0.1:0"
publish_address = "tcp://127.0.0.1:0"
replay_address = "tcp://127.0.0.1:0"
kdb_port = 0

[journal]
fsync = "never"

[risk.defaults]
max_order_qty = 1000000
duplicate_window_s = 0
max_messages_per_s = 10000000
max_open_orders = 10000000
max_open_orders_per_sym = 10000000
max_long_position = 1000000000000
max_short_position = 1000000000000
max_gross_exposure = 1000000000000000
max_order_notional = 1000000000000

[fix]
enabled = true
port = 0
store_dir = "{store}"

[fix.sessions.bench]
sender_comp_id = "BENCH"
target_comp_id = "TICKDB"
account = "B1"
password = "bench"
"""


def start(args: list[str], workdir: Path, name: str) -> Launched:
    """A ``tickdb`` component, once it wrote its ready file."""
    log, ready = workdir / f"{name}.log", workdir / f"{name}.ready.json"
    return launch(args, name=name, log_path=log, ready_file=ready)


def stop(procs: list[Launched]) -> None:
    for p in reversed(procs):
        p.stop()


def nos(clordid: str, price: str) -> list[Field]:
    return [
        (11, clordid),
        (55, "AAPL"),
        (54, 1),
        (38, 1),
        (40, 2),
        (44, price),
        (59, 0),
        (60, fix_time()),
    ]


def _is_new(clordid: str, msg: Message) -> bool:
    return msg.get(11) == clordid and msg.get(150) == "0"


def fix_run(port: int, run: int, orders: int, burst: int) -> tuple[float, float, float]:
    with FixClient("127.0.0.1", port, "BENCH", "TICKDB", password="bench") as client:
        client.wait_logged_on()
        lat: list[float] = []
        for i in range(orders):
            clordid = f"r{run}-l{i}"
            start_n = len(client.received)
            t0 = time.perf_counter()
            client.send("D", nos(clordid, f"{100 + (i % 50) / 100:.2f}"))
            client.wait_for(partial(_is_new, clordid), start=start_n)
            lat.append(time.perf_counter() - t0)
        lat.sort()
        start_n = len(client.received)
        t0 = time.perf_counter()
        for i in range(burst):
            client.send("D", nos(f"r{run}-b{i}", f"{90 + (i % 50) / 100:.2f}"))
        last = f"r{run}-b{burst - 1}"
        client.wait_for(lambda m: m.get(11) == last and m.get(150) == "0", 120, start=start_n)
        rate = burst / (time.perf_counter() - t0)
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6, rate


def raw_fix_run(port: int, run: int, orders: int, gw_pid: int) -> tuple[float, float, float]:
    """p50, p99 and the gateway's CPU per order (µs) of NewOrderSingle -> ExecutionReport(New)
    from a bare socket in one thread (encode, send, read until the report): the acceptor's
    latency without a FIX engine's threads on the client's side, as the order port's
    baseline has none."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    framer = Framer()
    pending: list[bytes] = []
    seq = 1

    def send(msg_type: str, body: list[Field]) -> None:
        nonlocal seq
        header: list[Field] = [(49, "BENCH"), (56, "TICKDB"), (34, seq), (52, fix_time())]
        sock.sendall(encode(msg_type, header, body))
        seq += 1

    def until(match: Callable[[Message], bool]) -> None:
        while True:
            while pending:
                if match(decode(pending.pop(0))):
                    return
            pending.extend(f for f in framer.feed(sock.recv(65536)) if isinstance(f, bytes))

    send("A", [(98, 0), (108, 30), (141, "Y"), (554, "bench")])
    until(lambda m: m.msg_type == "A")
    lat: list[float] = []
    cpu_before = cpu_ns(gw_pid)
    for i in range(orders):
        clordid = f"x{run}-l{i}"
        t0 = time.perf_counter()
        send("D", nos(clordid, f"{100 + (i % 50) / 100:.2f}"))
        until(partial(_is_new, clordid))
        lat.append(time.perf_counter() - t0)
    cpu_us = (cpu_ns(gw_pid) - cpu_before) / orders / 1e3
    send("5", [])
    with contextlib.suppress(OSError):
        until(lambda m: m.msg_type == "5")
    sock.close()
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6, cpu_us


def port_run(endpoint: str, run: int, orders: int, gw_pid: int) -> tuple[float, float, float]:
    """p50, p99 and the gateway's CPU per order (µs) of one order at a time over the order
    port, answered once accepted."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    lat: list[float] = []
    cpu_before = cpu_ns(gw_pid)
    for i in range(orders):
        request = {
            "op": "new",
            "id": i,
            "wait": True,
            "account": "P1",
            "sym": "AAPL",
            "side": "buy",
            "qty": 1,
            "price": 100 + (i % 50) / 100,
            "clordid": f"p{run}-l{i}",
        }
        t0 = time.perf_counter()
        sock.send(orjson.dumps(request))
        answer = orjson.loads(sock.recv())
        lat.append(time.perf_counter() - t0)
        if not answer.get("ok") or answer["order"]["status"] != "new":
            raise RuntimeError(f"order port: {answer}")
    cpu_us = (cpu_ns(gw_pid) - cpu_before) / orders / 1e3
    sock.close(0)
    ctx.term()
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6, cpu_us


def _echo(port_queue: mp.Queue) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port_queue.put(srv.getsockname()[1])
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(65536):
        conn.sendall(data)


def tcp_baseline(n: int) -> tuple[float, float]:
    q: mp.Queue = mp.Queue()
    proc = mp.Process(target=_echo, args=(q,), daemon=True)
    proc.start()
    sock = socket.create_connection(("127.0.0.1", q.get(timeout=10)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = b"x" * 64
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        sock.sendall(payload)
        got = 0
        while got < len(payload):
            got += len(sock.recv(65536))
        lat.append(time.perf_counter() - t0)
    sock.close()
    proc.join(5)
    lat.sort()
    return lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6


def codec_costs(n: int = 20000) -> tuple[float, float, float, float]:
    """µs per NewOrderSingle: simplefix parse, split decode, simplefix encode, encode."""
    import simplefix

    header: list[Field] = [
        (49, "BENCH"),
        (56, "TICKDB"),
        (34, 12345),
        (52, "20250101-00:00:00.000"),
    ]
    body = nos("ord-000001", "189.50")
    raw = encode("D", header, body)
    assert raw == simplefix_encode("D", header, body)
    t0 = time.perf_counter()
    for _ in range(n):
        parser = simplefix.FixParser()
        parser.append_buffer(raw)
        parser.get_message()
    t1 = time.perf_counter()
    for _ in range(n):
        decode(raw)
    t2 = time.perf_counter()
    for _ in range(n):
        simplefix_encode("D", header, body)
    t3 = time.perf_counter()
    for _ in range(n):
        encode("D", header, body)
    t4 = time.perf_counter()
    per = [(b - a) / n * 1e6 for a, b in ((t0, t1), (t1, t2), (t2, t3), (t3, t4))]
    return per[0], per[1], per[2], per[3]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--orders", type=int, default=2000, help="latency samples per run")
    ap.add_argument("--burst", type=int, default=20000, help="orders pipelined per run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = workdir / "bench.toml"
        config.write_text(CONFIG.replace("{store}", str(workdir / "fix")))
        data = ["--config", str(config), "--data-dir", str(workdir / "data")]
        procs: list[Launched] = []
        try:
            tp = start(["tp", *data], workdir, "tp")
            procs.append(tp)
            tp_address = tp.info["address"]
            venue_args = ["venue", *data, "--tp", tp_address, "--shard", "0/1"]
            procs.append(start(venue_args, workdir, "venue"))
            gateway_args = ["gateway", "--config", str(config), "--port", "0", "--kdb-port", "0"]
            gateway_args += ["--tp", tp_address]
            gw = start([*gateway_args, "--order-port", ""], workdir, "gateway")
            procs.append(gw)
            results, raw = [], []
            for r in range(args.runs):
                results.append(fix_run(gw.info["fix_port"], r, args.orders, args.burst))
                raw.append(raw_fix_run(gw.info["fix_port"], r, args.orders, gw.pid))
            gw.stop()
            procs.remove(gw)
            # The baseline gateway's FIX sessions are configured but nobody logs on.
            (workdir / "fix").rename(workdir / "fix-done")
            port_gw = start([*gateway_args, "--order-port", "tcp://127.0.0.1:0"], workdir, "gw2")
            procs.append(port_gw)
            port = [
                port_run(port_gw.info["order_port"], r, args.orders, port_gw.pid)
                for r in range(args.runs)
            ]
        finally:
            stop(procs)
    tcp = [tcp_baseline(args.orders) for _ in range(args.runs)]
    parse_us, split_us, simplefix_encode_us, encode_us = codec_costs()
    med = statistics.median
    print(f"FIX NewOrderSingle -> ExecutionReport(New), one session, median of {args.runs} runs")
    print(
        f"  p50 {med(r[0] for r in results):8.0f} us   (runs: "
        f"{', '.join(f'{r[0]:.0f}' for r in results)})"
    )
    print(
        f"  p99 {med(r[1] for r in results):8.0f} us   (runs: "
        f"{', '.join(f'{r[1]:.0f}' for r in results)})"
    )
    print(
        f"  sustained {med(r[2] for r in results):8.0f} orders/s   (runs: "
        f"{', '.join(f'{r[2]:.0f}' for r in results)})"
    )
    port_p50, raw_p50 = med(p[0] for p in port), med(r[0] for r in raw)
    print(
        f"  same from a bare socket, one thread: p50 {raw_p50:.0f} us, p99 "
        f"{med(r[1] for r in raw):.0f} us   (runs: {', '.join(f'{r[0]:.0f}' for r in raw)})"
    )
    print(
        f"order port, same order one at a time (no FIX): p50 {port_p50:.0f} us, p99 "
        f"{med(p[1] for p in port):.0f} us; FIX from a bare socket adds "
        f"{raw_p50 - port_p50:.0f} us at the p50 ({raw_p50 / port_p50:.2f}x)"
    )
    fix_cpu, port_cpu = med(r[2] for r in raw), med(p[2] for p in port)
    print(
        f"gateway CPU per order (all threads), one at a time: FIX {fix_cpu:.0f} us, order "
        f"port {port_cpu:.0f} us ({fix_cpu / port_cpu:.2f}x)"
    )
    print(
        f"raw TCP round trip, 64 bytes, two processes: p50 {med(t[0] for t in tcp):.0f} us, "
        f"p99 {med(t[1] for t in tcp):.0f} us"
    )
    print(
        f"codec per NewOrderSingle: simplefix parse {parse_us:.1f} us, split decode "
        f"{split_us:.1f} us ({parse_us / split_us:.1f}x less); simplefix encode "
        f"{simplefix_encode_us:.1f} us, fix.codec encode {encode_us:.1f} us "
        f"({simplefix_encode_us / encode_us:.1f}x less)"
    )


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
