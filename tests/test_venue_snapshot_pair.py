"""A venue of a primary/standby pair restarted from its snapshot numbers its output batches
as the whole replay would: killed, restarted from the snapshot as the standby, then
promoted by a second kill, it publishes exactly what a fresh engine makes of the journal."""

from __future__ import annotations

import re
from pathlib import Path

from support.harness import wait_until
from support.venue_pair import Orders, assert_exactly_once, role, start

from orders.snapshot_file import newest_first

KEY = "venue-0-of-1-pair"


def test_a_pair_venue_restarted_from_its_snapshot_takes_over_exactly_once(
    tmp_path: Path,
) -> None:
    lease = ("--lease-dir", str(tmp_path / "run"))
    stack, standby = start(
        tmp_path,
        snapshot_every_inputs=30,
        snapshot_every_s=0,
        snapshot_dir=str(tmp_path / "snapshots"),
    )
    orders = Orders(stack)
    try:
        orders.start()
        wait_until(lambda: orders.count() > 150, timeout=30, what="orders flowing")
        wait_until(lambda: any(newest_first(tmp_path / "snapshots", KEY)), 30, "a snapshot")
        stack.venues[0].kill9()
        wait_until(lambda: role(tmp_path, "venue-0-s").get("epoch") == 2, 10, "the takeover")
        restarted = stack.start_venue(0, "--standby", "--name", "venue-0", *lease)
        found = re.findall(r"starting from snapshot \S+ \(seq (\d+)\)", restarted.log())
        assert found and int(found[-1]) > 0, "the restarted venue replayed the whole journal"
        count = orders.count()
        wait_until(lambda: orders.count() > count + 100, timeout=30, what="orders after it")
        standby.kill9()  # the restarted one, started from its snapshot, takes over
        took = wait_until(
            lambda: (r := role(tmp_path, "venue-0")).get("first_output_at") and r,
            timeout=10,
            what="the restarted venue's first output as the primary",
        )
        assert took["role"] == "primary" and took["epoch"] == 3
        count = orders.count()
        wait_until(lambda: orders.count() > count + 100, timeout=30, what="orders after it")
        orders.stop.set()
        orders.join(10)
        assert_exactly_once(stack, orders)
    finally:
        orders.stop.set()
        standby.stop()
        stack.stop()
