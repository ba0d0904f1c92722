"""FIX 4.4 order entry: NewOrderSingle -> ExecutionReport(New) over one session.

Starts a tickerplant, one venue and a gateway with the FIX acceptor (real processes on
loopback), logs on with tickdb's FIX client and measures:

- latency: one order at a time, NewOrderSingle sent -> its ExecutionReport(New) received
  (gateway risk, tickerplant journal, venue, tickerplant, gateway, back), p50/p99;
- throughput: orders pipelined on one session, orders/s until the last New arrives;
- the baseline: a raw TCP round trip (64-byte echo) between two processes, in the same run;
- the codec: simplefix's parser and encoder against fix.codec's, per message.

Each figure is the median of ``--runs`` runs. Goals: p50 <= 1 ms, p99 <= 3 ms, >= 5k/s.

    python scripts/bench_fix.py [--runs 3] [--orders 2000] [--burst 20000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fix.client import FixClient  # noqa: E402
from fix.codec import Field, Message, decode, encode, fix_time  # noqa: E402
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


def simplefix_encode(msg_type: str, header: list[Field], body: list[Field]) -> bytes:
    import simplefix

    msg = simplefix.FixMessage()
    msg.append_pair(8, "FIX.4.4", header=True)
    msg.append_pair(35, msg_type, header=True)
    for tag, value in header:
        msg.append_pair(tag, value, header=True)
    for tag, value in body:
        msg.append_pair(tag, value)
    return bytes(msg.encode())


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
            gw = start(
                [
                    "gateway",
                    "--config",
                    str(config),
                    "--port",
                    "0",
                    "--kdb-port",
                    "0",
                    "--order-port",
                    "",
                    "--tp",
                    tp_address,
                ],
                workdir,
                "gateway",
            )
            procs.append(gw)
            gw_info = gw.info
            results = [
                fix_run(gw_info["fix_port"], r, args.orders, args.burst) for r in range(args.runs)
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
    main()
