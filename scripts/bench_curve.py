"""What CURVE costs the tickerplant: the same run with ``[curve]`` off and on.

    python scripts/bench_curve.py [--repeat 5] [--messages-1000 10000] [--messages-1 100000]

Publisher (this process, ``Publisher.publish_ipc`` of pre-encoded trade payloads) ->
``tickdb tp`` (journal on, immediate mode) -> one ``tickdb.Subscriber`` process decoding
every record, as ``scripts/bench_tickerplant.py`` measures it, for 1000-row and one-row
messages. Each repeat runs plaintext and CURVE back to back (in alternating order, as the
machine's load drifts), each with a fresh tickerplant: with CURVE every link is encrypted
(``[curve] mode = "on"``, ``[auth] mode = "on"``, the publisher and the subscriber each with
a key of its own identity). Printed: medians of the repeats, and the median of each
repeat's CURVE/plaintext ratio. Beside the throughput (end to end: first publish to the
last row at the subscriber), the CPU time per message of the tickerplant process and of
all three processes together (user + system, ``/proc``): steadier than wall-clock figures
on a busy machine. The raw baseline: CURVE's cipher alone (libsodium's ``crypto_box``
after the key exchange, XSalsa20-Poly1305, the library libzmq uses) on the same payload,
CPU time in this process; a message is encrypted and decrypted twice end to end
(publisher -> tickerplant, tickerplant -> subscriber).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tickerplant import payload

from tickdb.curve import COMPONENT_ROLES
from tickdb.curve_links import ENV_KEY, ENV_SERVER_KEY, CurveClient
from tickdb.keyfiles import CurveKeyPair, curve_paths
from tickdb.launch import Launched, launch

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, task: int | None = None) -> float:
    """User + system CPU seconds of a process (or of one of its threads) so far."""
    where = f"/proc/{pid}" if task is None else f"/proc/{pid}/task/{task}"
    fields = Path(f"{where}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def cipher_us(size: int, count: int = 2000) -> tuple[float, float] | None:
    """CPU µs to encrypt and to decrypt ``size`` bytes with libsodium's crypto_box after
    the key exchange (what CURVE does per message), or None without a libsodium to load."""
    import zmq

    found = sorted((Path(zmq.__file__).parent.parent / "pyzmq.libs").glob("libsodium*"))
    try:
        lib = ctypes.CDLL(str(found[0]) if found else "libsodium.so")
    except OSError:
        return None
    lib.sodium_init()
    key, nonce, length = os.urandom(32), os.urandom(24), ctypes.c_ulonglong(32 + size)
    plain, boxed = ctypes.create_string_buffer(32 + size), ctypes.create_string_buffer(32 + size)
    timings = []
    for call, out, into in (
        (lib.crypto_box_afternm, boxed, plain),
        (lib.crypto_box_open_afternm, plain, boxed),
    ):
        start = time.process_time()
        for _ in range(count):
            call(out, into, length, nonce, key)
        timings.append((time.process_time() - start) / count * 1e6)
    return timings[0], timings[1]


def role_sub(address: str, expect_rows: int) -> None:
    """Count the rows of every record received (keys, if any, from the environment)."""
    from tickerplant.subscriber import Subscriber

    sub = Subscriber(address, tables=["trade"], timeout_s=30)
    started = time.process_time()
    print(json.dumps({"ready": True}), flush=True)
    got = 0
    while got < expect_rows:
        message = sub.poll(30)
        if message is None:
            break
        got += message.data.num_rows
    done = time.time()
    sub.close()
    cpu = time.process_time() - started
    gaps = sub.gaps_repaired
    print(json.dumps({"got": got, "done": done, "cpu": cpu, "gaps": gaps}), flush=True)


class Keys:
    """Server, component, feed and subscriber key pairs, and the config sections naming them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pairs = {n: CurveKeyPair.new() for n in ("server", "tickdb", "feed", "sub")}
        for name, pair in self.pairs.items():
            pair.save(directory, name)

    def secret(self, name: str) -> str:
        return str(curve_paths(self.directory, name)[1])

    def toml(self) -> str:
        roles = {"tickdb": list(COMPONENT_ROLES), "feed": ["publish:trade"], "sub": ["read"]}
        lines = [
            "[curve]",
            'mode = "on"',
            f'server_key = "{self.secret("server")}"',
            f'client_key = "{self.secret("tickdb")}"',
            "[auth]",
            'mode = "on"',
        ]
        for name, granted in roles.items():
            lines += [
                f"[auth.identities.{name}]",
                f'curve_keys = ["{self.pairs[name].public}"]',
                f"roles = {json.dumps(granted)}",
            ]
        return "\n".join(lines) + "\n"

    def client(self, name: str) -> CurveClient:
        return CurveClient(self.pairs[name], self.pairs["server"].public)


def start_tp(workdir: Path, keys: Keys | None) -> Launched:
    config = workdir / "tp.toml"
    config.write_text(
        '[tickerplant]\naddress = "tcp://127.0.0.1:0"\npublish_address = "tcp://127.0.0.1:0"\n'
        'replay_address = "tcp://127.0.0.1:0"\nmode = "immediate"\nkdb_port = 0\n'
        + (keys.toml() if keys else "")
    )
    return launch(
        ["tp", "--config", str(config), "--data-dir", str(workdir / "data")],
        name="tp",
        log_path=workdir / "tp.log",
        ready_file=workdir / "tp.ready",
        ready_timeout_s=30,
        env={"TICKDB_LOG_LEVEL": "WARNING"},
    )


def spawn_sub(address: str, expect: int, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--role", "sub", address, str(expect)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["ready"]
    return proc


def run(rows: int, messages: int, curve: bool) -> dict[str, float]:
    """One end-to-end run; throughput and CPU seconds per message."""
    from tickerplant.publisher import Publisher

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        keys = Keys(workdir / "keys") if curve else None
        tp = start_tp(workdir, keys)
        try:
            address = str(tp.info["address"])
            env = {}
            if keys is not None:
                env = {ENV_KEY: keys.secret("sub"), ENV_SERVER_KEY: keys.pairs["server"].public}
            expect = messages * rows + 1
            sub = spawn_sub(address, expect, env)
            # Up to ~150 MB of 1000-row batches held for acknowledgement.
            inflight = max(100, 5_000_000 // rows)
            pub = Publisher(
                address, max_inflight=inflight, curve=keys.client("feed") if keys else None
            )
            pub.publish_ipc("trade", payload(1))  # the subscription is live once this is in
            pub.flush(30)
            time.sleep(0.3)
            body = payload(rows)
            # The tickerplant's main thread (the loop) apart: libzmq's I/O thread does CURVE.
            main_cpu, tp_cpu = cpu_s(tp.pid, tp.pid), cpu_s(tp.pid)
            pub_cpu, start = time.process_time(), time.time()
            for _ in range(messages):
                pub.publish_ipc("trade", body)
            pub.flush(120)
            published = time.time()
            pub_cpu = time.process_time() - pub_cpu
            assert sub.stdout is not None
            out = json.loads(sub.stdout.readline())
            sub.wait(30)
            tp_cpu = cpu_s(tp.pid) - tp_cpu
            main_cpu = cpu_s(tp.pid, tp.pid) - main_cpu
            pub.close()
        finally:
            tp.stop(grace_s=30)
    assert out["got"] == expect, out
    elapsed = out["done"] - start
    return {
        "msgs_s": messages / elapsed,
        "rows_s": messages * rows / elapsed,
        "tp_cpu_us": tp_cpu / messages * 1e6,
        "main_cpu_us": main_cpu / messages * 1e6,
        "all_cpu_us": (tp_cpu + pub_cpu + out["cpu"]) / messages * 1e6,
        "gaps": out["gaps"],
        "resends": pub.resends,
        "publish_s": published - start,
        "elapsed_s": elapsed,
    }


def row(rows: int, messages: int, plain: list[dict[str, Any]], secure: list[dict[str, Any]]) -> str:
    """The table row of one message size: medians, and medians of the per-repeat ratios."""

    def med(got: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in got)

    def ratio(key: str) -> float:
        return statistics.median(s[key] / p[key] for s, p in zip(secure, plain, strict=True))

    throughput = ratio("msgs_s")
    return (
        f"| {rows} | {messages:,} | {med(plain, 'msgs_s'):,.0f} | "
        f"{med(secure, 'msgs_s'):,.0f} | {throughput:.2f} | {1 - throughput:.0%} | "
        f"{med(plain, 'tp_cpu_us'):.0f} → {med(secure, 'tp_cpu_us'):.0f} µs | "
        f"{med(plain, 'main_cpu_us'):.0f} → {med(secure, 'main_cpu_us'):.0f} µs | "
        f"{med(plain, 'all_cpu_us'):.0f} → {med(secure, 'all_cpu_us'):.0f} µs | "
        f"{ratio('all_cpu_us'):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--messages-1000", type=int, default=10_000)
    parser.add_argument("--messages-1", type=int, default=100_000)
    parser.add_argument("--verbose", action="store_true", help="Print every run's figures.")
    opts = parser.parse_args()
    if opts.role == "sub":
        role_sub(opts.args[0], int(opts.args[1]))
        return
    print(
        f"# tickerplant end to end, plaintext vs CURVE, median of {opts.repeat}; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        "| rows/msg | messages | plain msgs/s | CURVE msgs/s | throughput ratio | cost "
        "| tp CPU/msg plain → CURVE | its main thread | all CPU/msg plain → CURVE | CPU ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---|---|---:|")
    for rows, messages in ((1000, opts.messages_1000), (1, opts.messages_1)):
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for i in range(opts.repeat):
            for curve in (False, True) if i % 2 == 0 else (True, False):
                runs[curve].append(run(rows, messages, curve))
                if opts.verbose:
                    print(f"#   {rows} rows, {'CURVE' if curve else 'plain'}: {runs[curve][-1]}")
        print(row(rows, messages, runs[False], runs[True]), flush=True)
    for rows in (1000, 1):
        cipher = cipher_us(len(payload(rows)))
        if cipher is not None:
            print(
                f"# raw baseline, CURVE's cipher alone on a {rows}-row payload "
                f"({len(payload(rows)):,} bytes): encrypt {cipher[0]:.1f} µs, decrypt "
                f"{cipher[1]:.1f} µs of CPU; x2 per message end to end: "
                f"{2 * sum(cipher):.0f} µs"
            )
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
