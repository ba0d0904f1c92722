"""End of day through the gateway: real tickerplant, RDB, HDB and gateway processes.

The gateway is started with a refresh interval far longer than the test, so its picture of
which dates the RDB holds is stale for the whole handover: only the per-query checks
(``gateway.handover``) keep the rolled date from going missing or being counted twice.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import httpx
from support.harness import Proc, wait_until
from support.rdb_stack import Stack, client, publish_trades, roll, wait_rows

from gateway.client import Client

DAY_ROWS = 20_000


def polls(day: str) -> dict[str, str]:
    """Queries over the rolled day, one per plan shape; each must count ``DAY_ROWS``."""
    return {
        "date filter": f"SELECT count(*) AS n FROM trade WHERE date = '{day}'",
        "by date": f"SELECT date, count(*) AS n FROM trade GROUP BY date HAVING date = '{day}'",
        # Sizes of the next day start at DAY_ROWS: no date filter, both tiers asked.
        "no date": f"SELECT count(*) AS n FROM trade WHERE size < {DAY_ROWS}",
        "pulled": f"SELECT count(DISTINCT size) AS n FROM trade WHERE size < {DAY_ROWS}",
        "rows": f"SELECT size FROM trade WHERE size < {DAY_ROWS} ORDER BY size DESC LIMIT 1",
    }


def stale_retries(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("tickdb_gateway_stale_retries_total "):
            return float(line.split()[1])
    raise AssertionError("no tickdb_gateway_stale_retries_total metric")


def test_rolled_date_is_never_missing_or_doubled_through_the_gateway(
    tmp_path: Path, procs: list
) -> None:
    stack = Stack(tmp_path, procs)
    hdb_proc = stack.start_hdb()
    rdb_proc = stack.start_rdb("rdb", "--hdb", str(hdb_proc.info["address"]))
    rdb = client(rdb_proc)
    publish_trades(stack.address, 0, DAY_ROWS, per_batch=500)
    wait_rows(rdb, "trade", DAY_ROWS)
    day = rdb.info()["date"]
    args = ["gateway", "--port", "0", "--refresh", "3600", "--timeout", "20"]
    args += ["--rdb", str(rdb_proc.info["address"]), "--hdb", str(hdb_proc.info["address"])]
    gateway = Proc(args, tmp_path, "gateway")
    procs.append(gateway)
    url = str(gateway.info["url"])
    shapes = polls(day)
    seen: dict[str, list[int]] = {name: [] for name in shapes}
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        with Client(url, timeout_s=30) as gw:
            while not stop.is_set():
                for name, sql in shapes.items():
                    try:
                        table = gw.query(sql)
                    except BaseException as exc:
                        errors.append(exc)
                        return
                    value = table.column(table.num_columns - 1).to_pylist()
                    seen[name].append(value[0] + 1 if name == "rows" else value[0])

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    for t in pollers:
        t.start()
    try:
        wait_until(lambda: min(map(len, seen.values())) >= 3, 20, "polls before the roll")
        roll(stack.address)
        publish_trades(stack.address, DAY_ROWS, 2000, per_batch=100)
        wait_until(lambda: day not in rdb.info()["dates"], 60, "the handover")
        after = {name: len(v) for name, v in seen.items()}
        wait_until(
            lambda: all(len(seen[n]) >= after[n] + 3 for n in seen) or errors,
            20,
            "polls after the handover",
        )
    finally:
        stop.set()
        for t in pollers:
            t.join(60)
    assert not errors, errors[:3]
    for name, counts in seen.items():
        assert set(counts) == {DAY_ROWS}, (name, sorted(set(counts))[:5])
    # The gateway never refreshed on its timer: it found the handover by checking answers.
    assert stale_retries(url) >= 1
    with Client(url) as gw:
        plan = gw.plan(shapes["date filter"])
        assert plan["backends"] == [f"hdb:{hdb_proc.info['address']}"]
        next_day = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        new = gw.query(f"SELECT count(*) AS n FROM trade WHERE date = '{next_day}'")
        assert new.column("n")[0].as_py() == 2000
