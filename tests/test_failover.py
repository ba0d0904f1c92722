"""Query-side replicas: the gateway spreads queries over the replicas of a backend, runs a
part again on another replica when one dies mid-query, and never asks a replica that is
still replaying. Real processes on loopback; the stack is shared by the module's tests,
and each test brings back what it killed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.harness import Proc, wait_until
from support.rdb_stack import roll
from support.replica_stack import Load, ReplicaStack, freeze, kill


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaStack]:
    procs: list[Proc] = []
    try:
        replicas = ReplicaStack(tmp_path_factory.mktemp("replicas"), procs)
    except BaseException:
        for proc in reversed(procs):
            proc.stop()
        raise
    try:
        yield replicas
    finally:
        replicas.close()


def failovers(url: str, replica: str) -> float:
    import httpx

    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("tickdb_gateway_replica_failovers_total{") and (
            f'replica="{replica}"' in line
        ):
            return float(line.split()[-1])
    raise AssertionError(f"no failover counter for {replica}")


def test_queries_spread_over_the_replicas(stack: ReplicaStack) -> None:
    before = {name: r["routed"] for name, r in stack.replicas().items()}
    for _ in range(8):
        assert stack.count() == stack.rows
    after = stack.replicas()
    for name, replica in after.items():
        assert replica["routed"] > before[name], f"{name} got no part of 8 queries"


@pytest.mark.parametrize("role", ["rdb", "hdb"])
def test_a_replica_killed_mid_query_costs_the_clients_nothing(
    stack: ReplicaStack, role: str
) -> None:
    victim = 1
    procs = stack.rdbs if role == "rdb" else stack.hdbs
    address = (stack.rdb_addresses if role == "rdb" else stack.hdb_addresses)[victim]
    with Load(stack, clients=4) as load:
        load.wait_more(20)
        # Frozen, it holds the parts sent to it; killed, it drops them mid-query.
        freeze(procs[victim])
        wait_until(lambda: stack.replica(role, victim)["outstanding"] > 0, 10, "a part in flight")
        kill(procs[victim])
        load.wait_more(40)
    assert load.errors == []
    assert load.answers and set(load.answers) == {stack.rows}
    assert failovers(stack.url, f"{role}:{address}") >= 1
    wait_until(lambda: not stack.replica(role, victim)["up"], 10, "the dead replica down")
    # A supervisor would restart it: it rejoins by itself on the same address.
    procs[victim] = stack.start_rdb(victim) if role == "rdb" else stack.start_hdb(victim)
    wait_until(lambda: stack.serving() == 4, 30, "the restarted replica serving")
    assert stack.count() == stack.rows


def test_a_replica_still_replaying_gets_no_query(stack: ReplicaStack, tmp_path: Path) -> None:
    victim = 1
    kill(stack.rdbs[victim])
    wait_until(lambda: not stack.replica("rdb", victim)["up"], 10, "the killed replica down")
    stack.publish(500)  # rows it has not seen: its backlog grows
    release = tmp_path / "release"
    held = stack.start_rdb_held(victim, release)
    try:
        wait_until(lambda: stack.replica("rdb", victim)["up"], 30, "the held replica answering")
        entry = stack.replica("rdb", victim)
        assert entry["current"] is False
        assert stack.rdb_info(victim)["current"] is False
        # Asked directly, it would answer wrong: it has applied nothing yet.
        assert stack.rdb_rows(victim) < stack.today
        routed = entry["routed"]
        served = stack.rdb_info(victim)["query_service"]["queries_ok"]
        for _ in range(30):
            assert stack.count() == stack.rows
        assert stack.replica("rdb", victim)["routed"] == routed
        # Our one direct query above is the only one it served.
        assert stack.rdb_info(victim)["query_service"]["queries_ok"] == served
        release.touch()
        wait_until(lambda: stack.replica("rdb", victim)["current"], 30, "current after replay")
        assert stack.rdb_rows(victim) == stack.today

        def takes_queries() -> bool:
            assert stack.count() == stack.rows
            return bool(stack.replica("rdb", victim)["routed"] > routed)

        wait_until(takes_queries, 30, "the caught-up replica taking queries again")
    finally:
        release.touch()
    assert held.alive()


def test_end_of_day_with_replicas_neither_loses_nor_doubles_a_row(stack: ReplicaStack) -> None:
    """Every RDB replica writes the day under the same name (one file, whole) and drops it
    only once every HDB replica serves it; queries meanwhile count every row once."""
    import pyarrow.parquet as pq

    from hdb.layout import list_dates, partition_dir

    with Load(stack, clients=3) as load:
        load.wait_more(10)
        roll(stack.base.address)
        stack.today = 0
        stack.wait_rdbs(lambda r: len(stack.rdb_info(r)["dates"]) == 1, "handed over")
        load.wait_more(20)
    assert load.errors == []
    assert set(load.answers) == {stack.rows}
    hdb = stack.base.data / "hdb"
    days = list_dates(hdb, "trade")
    assert len(days) == 2
    for day in days:
        files = sorted(p.name for p in partition_dir(hdb, "trade", day).iterdir())
        assert files == ["part-0-of-1.parquet"]  # no temporary file left, one part
    rows = sum(
        pq.read_metadata(partition_dir(hdb, "trade", day) / "part-0-of-1.parquet").num_rows
        for day in days
    )
    assert rows == stack.rows == stack.count()
