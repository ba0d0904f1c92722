"""What ``scripts/chaos.py`` checks once the chaos has stopped and the stack is quiet.

- rows: the tickerplant's journal against what was stored, exactly: today's rows of each
  table in every RDB replica, the rolled day's in every HDB replica, all of them through
  the gateway;
- orders: every acknowledged order has one ``accepted`` row, and no venue event or fill
  appears twice in the journal (a venue takeover must neither lose nor repeat output);
- books: the venue pair's books are equal at the same sequence number (their digests,
  ``orders.standby.PairedVenue.write_book``).

Each check returns a list of problems: empty is a pass.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from gateway.client import Client
from queries.service_client import QueryClient
from tickerplant.subscriber import EndOfDay, Subscriber, Update

ROW_TABLES = ("trade", "quote")


def journal(tp_address: str, tables: list[str]) -> dict[str, Any]:
    """The journal replayed: per table, the rows of today and of earlier days (counts), and
    the rows of the order flow tables themselves."""
    today: Counter[str] = Counter()
    before: Counter[str] = Counter()
    rows: dict[str, list[dict[str, Any]]] = {"order": [], "fill": []}
    with Subscriber(tp_address, tables=tables, start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, EndOfDay):
                before += today
                today = Counter()
            elif isinstance(message, Update):
                today[message.table] += message.data.num_rows
                if message.table in rows:
                    rows[message.table] += message.data.to_pylist()
    return {"today": today, "before": before, "rows": rows}


def count(address: str, table: str) -> int:
    with QueryClient(address, timeout_s=30) as client:
        return int(client.query(f"SELECT count(*) AS n FROM {table}").table.column(0)[0].as_py())


def check_rows(
    seen: dict[str, Any], rdbs: list[str], hdbs: list[str], urls: list[str]
) -> list[str]:
    problems = []
    with Client(urls, timeout_s=60) as client:
        for table in ROW_TABLES:
            today, before = seen["today"][table], seen["before"][table]
            for address in rdbs:
                if (got := count(address, table)) != today:
                    problems.append(f"{table}: RDB {address} holds {got} rows, journal {today}")
            for address in hdbs:
                if (got := count(address, table)) != before:
                    problems.append(f"{table}: HDB {address} holds {got} rows, journal {before}")
            answer = client.query(f"SELECT count(*) AS n FROM {table}")
            if (got := int(answer.column(0)[0].as_py())) != today + before:
                problems.append(f"{table}: the gateway counts {got}, journal {today + before}")
    return problems


def check_orders(seen: dict[str, Any], account: str, acked: list[str]) -> list[str]:
    problems = []
    events = seen["rows"]["order"]
    accepted = Counter(
        r["clordid"] for r in events if r["account"] == account and r["event"] == "accepted"
    )
    missing = [c for c in acked if accepted[c] == 0]
    doubled = [c for c, n in accepted.items() if n > 1]
    if missing:
        problems.append(f"{len(missing)} acknowledged orders have no accepted event: {missing[:5]}")
    if doubled:
        problems.append(f"{len(doubled)} orders accepted more than once: {doubled[:5]}")
    key_of = ("venue", "in_seq", "order_id", "event", "status", "cum_qty", "leaves_qty", "exec_id")
    repeated = [k for k, n in Counter(tuple(r[k] for k in key_of) for r in events).items() if n > 1]
    if repeated:
        problems.append(f"{len(repeated)} order events journaled twice: {repeated[:3]}")
    fills = Counter((r["exec_id"], r["order_id"]) for r in seen["rows"]["fill"])
    if twice := [k for k, n in fills.items() if n > 1]:
        problems.append(f"{len(twice)} fills journaled twice: {twice[:3]}")
    return problems


def book(run_dir: Path, name: str, pid: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """Ask a venue of the pair for its book's digest (SIGUSR1) and read it."""
    path = run_dir / f"{name}.book.json"
    asked = time.time()
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if path.stat().st_mtime >= asked - 0.01:
                return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{name} wrote no book digest")


def check_books(run_dir: Path, pair: dict[str, int], timeout_s: float = 30.0) -> list[str]:
    """``pair``: name -> pid of the two venues of one shard. Equal digests at one seq."""
    deadline = time.monotonic() + timeout_s
    while True:
        books = {name: book(run_dir, name, pid) for name, pid in pair.items()}
        seqs = {b["seq"] for b in books.values()}
        if len(seqs) == 1:
            digests = {b["digest"] for b in books.values()}
            if len(digests) == 1:
                return []
            return [f"books differ at seq {seqs.pop()}: {books}"]
        if time.monotonic() > deadline:
            return [f"the pair never reached one seq: {books}"]
        time.sleep(0.1)
