"""Web console benchmark, in headless Chromium against a real stack (tickerplant, one RDB,
a gateway with ``--tp``; real processes on loopback).

1. Query: Ctrl-Enter to the frame that paints the first rows of a 100,000-row result
   (``select * from trade limit 100000``: Arrow from the gateway, decoded by apache-arrow
   JS, shown by the virtual grid). Baseline in the same page: ``fetch()`` of the same
   Arrow bytes and reading them (``arrayBuffer()``), nothing decoded or drawn. Goal <= 1 s.
2. Live: frames per second of the live view while the tickerplant publishes 10,000
   trades/s to it (``/console/live`` server-sent events, rows folded in once per
   animation frame), counted by a requestAnimationFrame probe in the page; the longest
   frame too. Baseline: the same page and probe with the stream open but idle. Goal >= 30.

Skips (exit 0, with the reason) without Playwright or Chromium.

    .venv/bin/python scripts/bench_console.py                 # 5 query runs, 8 s of live
    .venv/bin/python scripts/bench_console.py --runs 3 --seconds 5 --rate 10000
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support import browser  # noqa: E402

from tickdb.launch import Launched, launch  # noqa: E402
from tickerplant.publisher import Publisher  # noqa: E402

ROWS = 100_000
QUERY = f"select * from trade limit {ROWS}"
SYMS = [f"S{i:03d}" for i in range(50)]
CONFIG = """
[tickerplant]
address = "tcp://127.0.0.1:0"
publish_address = "tcp://127.0.0.1:0"
replay_address = "tcp://127.0.0.1:0"
kdb_port = 0

[orders]
enabled = false
"""


def start(workdir: Path) -> tuple[list[Launched], str, str]:
    config = workdir / "bench.toml"
    config.write_text(CONFIG)
    data = str(workdir / "data")

    def run(name: str, *args: str) -> Launched:
        return launch(
            list(args),
            name=name,
            log_path=workdir / f"{name}.log",
            ready_file=workdir / f"{name}.ready.json",
        )

    procs = [run("tp", "tp", "--config", str(config), "--data-dir", data)]
    tp = str(procs[0].info["address"])
    procs.append(
        run("rdb", "rdb", "--config", str(config), "--data-dir", data, "--tp", tp,
            "--address", "tcp://127.0.0.1:0")
    )  # fmt: skip
    rdb = str(procs[1].info["address"])
    procs.append(
        run("gateway", "gateway", "--config", str(config), "--port", "0", "--kdb-port", "0",
            "--tp", tp, "--rdb", rdb, "--refresh", "0.2")
    )  # fmt: skip
    return procs, tp, str(procs[2].info["url"])


def trades(n: int, offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "sym": [SYMS[(i + offset) % len(SYMS)] for i in range(n)],
            "price": [100.0 + ((i + offset) % 500) * 0.01 for i in range(n)],
            "size": [100 + i % 9 for i in range(n)],
        }
    )


def count(url: str) -> int:
    body = json.dumps({"sql": "select count(*) from trade"}).encode()
    request = urllib.request.Request(url + "/query", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.loads(response.read())["data"][0][0])


def load(tp: str, url: str) -> None:
    pub = Publisher(tp)
    for start in range(0, ROWS, 10_000):
        pub.publish("trade", trades(10_000, start))
    pub.flush()
    pub.close()
    deadline = time.monotonic() + 60
    while count(url) < ROWS:
        if time.monotonic() > deadline:
            raise SystemExit("the RDB did not take the trades in 60 s")
        time.sleep(0.1)


BASELINE_FETCH = """async (q) => {
  const t0 = performance.now();
  const r = await fetch('/query', {method: 'POST', body: JSON.stringify({sql: q, format: 'arrow'}),
    headers: {'Content-Type': 'application/json', Accept: 'application/vnd.apache.arrow.stream'}});
  const bytes = await r.arrayBuffer();
  return [performance.now() - t0, bytes.byteLength];
}"""

FRAME_PROBE = """() => { window.__frames = []; const tick = (t) => { window.__frames.push(t);
  if (!window.__stopFrames) requestAnimationFrame(tick); }; window.__stopFrames = false;
  requestAnimationFrame(tick); }"""


def query_phase(page: Any, url: str, runs: int) -> dict[str, float]:
    page.goto(url + "/#query")
    page.wait_for_selector(".cm-content")
    page.evaluate(BASELINE_FETCH, QUERY)  # a first run warms the gateway's plan cache
    fetch_ms: list[float] = []
    paint_ms: list[float] = []
    size = 0
    for _ in range(runs):  # baseline and console alternate, so both see the same load
        ms, size = page.evaluate(BASELINE_FETCH, QUERY)
        fetch_ms.append(ms)
        page.click(".cm-content")
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(QUERY)
        page.evaluate("document.querySelector('[data-testid=query-status]').dataset.state = ''")
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "document.querySelector('[data-testid=query-status]').dataset.state === 'done'",
            timeout=60_000,
        )
        status = page.eval_on_selector("[data-testid=query-status]", "s => ({...s.dataset})")
        assert status["rows"] == str(ROWS), status
        paint_ms.append(float(status["paintMs"]))
    return {
        "bytes": size,
        "fetch_ms": statistics.median(fetch_ms),
        "paint_ms": statistics.median(paint_ms),
        "paint_max_ms": max(paint_ms),
    }


def frames(page: Any, seconds: float) -> tuple[float, float]:
    """Frames per second and the longest frame (ms) over ``seconds``."""
    page.evaluate(FRAME_PROBE)
    time.sleep(seconds)
    stamps = page.evaluate("() => { window.__stopFrames = true; return window.__frames; }")
    if len(stamps) < 2:
        return 0.0, float("inf")
    span = (stamps[-1] - stamps[0]) / 1000
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return (len(stamps) - 1) / span, max(gaps)


def publish_at(tp: str, rate: int, seconds: float, stop: threading.Event) -> int:
    """``rate`` rows/s in batches every 20 ms, for ``seconds``; returns rows sent."""
    pub = Publisher(tp)
    batch = max(1, rate // 50)
    sent, started = 0, time.monotonic()
    while not stop.is_set() and time.monotonic() - started < seconds:
        pub.publish("trade", trades(batch, sent))
        sent += batch
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    pub.flush()
    pub.close()
    return sent


def live_phase(page: Any, tp: str, url: str, rate: int, seconds: float) -> dict[str, float]:
    page.goto(url + "/#live")
    page.wait_for_selector("#view-live input[value=trade]")
    page.uncheck("#view-live input[value=quote]")
    page.click("[data-testid=live-start]")
    page.wait_for_function("document.querySelector('[data-testid=live-status]').dataset.state")
    idle_fps, idle_gap = frames(page, 3)
    stop = threading.Event()
    sent: list[int] = []
    feeder = threading.Thread(target=lambda: sent.append(publish_at(tp, rate, seconds + 1, stop)))
    feeder.start()
    time.sleep(1)  # the stream at full rate before counting
    before = int(
        page.evaluate("document.querySelector('[data-testid=live-status]').dataset.received || 0")
    )
    started = time.monotonic()
    fps, gap = frames(page, seconds)
    got = int(page.evaluate("document.querySelector('[data-testid=live-status]').dataset.received"))
    elapsed = time.monotonic() - started
    stop.set()
    feeder.join()
    return {
        "idle_fps": idle_fps,
        "idle_gap_ms": idle_gap,
        "fps": fps,
        "gap_ms": gap,
        "rows_per_s": (got - before) / elapsed,
        "sent": sum(sent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="query runs (median)")
    parser.add_argument("--seconds", type=float, default=8.0, help="live phase length")
    parser.add_argument("--rate", type=int, default=10_000, help="live rows per second")
    args = parser.parse_args()
    reason = browser.missing()
    if reason:
        print(f"bench_console: skipped: {reason}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        procs, tp, url = start(Path(tmp))
        try:
            load(tp, url)
            with browser.browser_context() as context:
                page = context.new_page()
                page.set_default_timeout(30_000)
                q = query_phase(page, url, args.runs)
                live = live_phase(page, tp, url, args.rate, args.seconds)
        finally:
            for proc in reversed(procs):
                proc.stop()
    print(f"query: {ROWS:,} rows, {q['bytes'] / 1e6:.1f} MB of Arrow, median of {args.runs}")
    print(f"  baseline fetch() of the Arrow bytes   {q['fetch_ms']:8.1f} ms")
    print(
        f"  Ctrl-Enter -> first rows painted      {q['paint_ms']:8.1f} ms"
        f"  (max {q['paint_max_ms']:.1f}; x{q['paint_ms'] / q['fetch_ms']:.2f} the fetch;"
        f" goal <= 1000 ms: {'met' if q['paint_ms'] <= 1000 else 'MISSED'})"
    )
    print(f"live: {args.rate:,} trades/s published for {args.seconds:.0f} s")
    print(f"  baseline idle stream                  {live['idle_fps']:8.1f} fps"
          f"  (longest frame {live['idle_gap_ms']:.0f} ms)")  # fmt: skip
    print(
        f"  under the stream                      {live['fps']:8.1f} fps"
        f"  (longest frame {live['gap_ms']:.0f} ms; x{live['fps'] / live['idle_fps']:.2f} idle;"
        f" {live['rows_per_s']:,.0f} rows/s shown;"
        f" goal >= 30 fps: {'met' if live['fps'] >= 30 else 'MISSED'})"
    )


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
