"""Choosing a replica, failing a part over to another one, and one backend's picture from
its replicas' infos (``gateway.failover``, ``gateway.replica_info``), in process."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.backends import BackendState, Replica
from gateway.errors import QueryError
from gateway.failover import PartRunner, Picker
from gateway.handover import StaleTopology
from gateway.replica_info import merged_info
from tickdb.types import BackendInfo, TableInfo

D1, D2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)


@dataclass
class Fake:
    """A backend whose answers the test sets: a value, or an exception to raise."""

    answers: list[Any] = field(default_factory=list)
    asked: int = 0

    def query(self, sql: str, **_: Any) -> Any:
        self.asked += 1
        answer = self.answers.pop(0) if self.answers else "ok"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def info(self) -> dict[str, Any]:
        return {}


@dataclass
class Reply:
    incarnation: str | None


def rdb_info(*dates: dt.date, current: bool | None = True, incarnation: str = "a") -> BackendInfo:
    return BackendInfo(
        role="rdb",
        tables={"trade": TableInfo(columns=(("sym", "s"),), rows=10, dates=dates)},
        date=max(dates),
        dates=dates,
        query_dates=True,
        current=current,
        seq=5,
        tp_seq=9,
        extra={"query_service": {"incarnation": incarnation}},
    )


def backend(*replicas: Replica) -> BackendState:
    return BackendState("rdb:a,b", "rdb", replicas[0].backend, replicas=list(replicas))


def replica(name: str, info: BackendInfo | None, **kwargs: Any) -> Replica:
    return Replica(name, "rdb", Fake(**kwargs), info=info)


def send(target: Replica) -> Any:
    return target.backend.query("select 1", timeout_s=1.0, max_rows=10)


def test_merged_info_holds_every_date_any_replica_holds() -> None:
    merged = merged_info([rdb_info(D2), rdb_info(D1, D2, current=False)])
    assert merged.dates == (D1, D2)
    assert merged.tables["trade"].dates == (D1, D2)
    assert merged.date == D2 and merged.current is True and merged.query_dates is True


def test_only_current_replicas_are_chosen_and_in_turn() -> None:
    a, b = replica("a", rdb_info(D2)), replica("b", rdb_info(D2))
    catching_up = replica("c", rdb_info(D2, current=False))
    state = backend(a, b, catching_up)
    picker = Picker()
    chosen = [picker.choose(state) for _ in range(6)]
    assert chosen == [a, b, a, b, a, b]
    b.outstanding = 2  # the least busy first
    assert {picker.choose(state).name for _ in range(4)} == {"a"}  # type: ignore[union-attr]
    a.suspect = b.suspect = "connection lost"
    a.outstanding = 0
    assert picker.choose(state) is a  # a suspect, current replica before none
    a.info = b.info = None
    a.suspect = b.suspect = None
    assert picker.choose(state) in (a, b)  # never answered: asked, to fail loudly


def test_no_replica_to_ask_says_why() -> None:
    state = backend(replica("c", rdb_info(D2, current=False)))
    error = PartRunner(lambda s, r: None).first(state)
    assert isinstance(error, QueryError) and error.kind == "unavailable"
    assert "catching up (seq 5 of 9)" in str(error)


def test_a_failed_part_runs_again_on_another_replica() -> None:
    lost = QueryError("unavailable", "connection lost")
    a, b = replica("a", rdb_info(D2), answers=[lost]), replica("b", rdb_info(D2))
    state = backend(a, b)
    runner = PartRunner(lambda s, r: None)
    result = runner.run(state, a, send, compatible=lambda r: True, abandoned=threading.Event())
    assert result == "ok" and b.backend.asked == 1  # type: ignore[attr-defined]
    assert a.failovers == runner.failovers == 1 and a.suspect == "connection lost"
    assert a.outstanding == b.outstanding == 0 and a.routed == b.routed == 1


def test_a_query_fault_is_not_failed_over() -> None:
    bad = QueryError("bad_query", "no such column")
    a, b = replica("a", rdb_info(D2), answers=[bad]), replica("b", rdb_info(D2))
    with pytest.raises(QueryError, match="no such column"):
        PartRunner(lambda s, r: None).run(
            backend(a, b), a, send, compatible=lambda r: True, abandoned=threading.Event()
        )
    assert b.backend.asked == 0  # type: ignore[attr-defined]


def test_another_replica_holding_other_dates_makes_the_query_run_again() -> None:
    lost = QueryError("unavailable", "connection lost")
    a, b = replica("a", rdb_info(D1, D2), answers=[lost]), replica("b", rdb_info(D2))
    with pytest.raises(StaleTopology):
        PartRunner(lambda s, r: None).run(
            backend(a, b), a, send, compatible=lambda r: r is a, abandoned=threading.Event()
        )


def test_every_replica_failing_names_each() -> None:
    a = replica("a", rdb_info(D2), answers=[QueryError("unavailable", "lost a")])
    b = replica("b", rdb_info(D2), answers=[QueryError("unavailable", "lost b")])
    with pytest.raises(QueryError, match="a: lost a; b: lost b"):
        PartRunner(lambda s, r: None).run(
            backend(a, b), a, send, compatible=lambda r: True, abandoned=threading.Event()
        )


def test_a_reply_from_a_restarted_replica_is_dropped_until_it_is_current() -> None:
    a = replica("a", rdb_info(D2, incarnation="old"), answers=[Reply("new")])
    b = replica("b", rdb_info(D2))

    def refresh(state: BackendState, target: Replica) -> None:
        target.info = rdb_info(D2, current=False, incarnation="new")

    runner = PartRunner(refresh)
    result = runner.run(
        backend(a, b), a, send, compatible=lambda r: True, abandoned=threading.Event()
    )
    assert result == "ok" and runner.restarts_seen == 1 and a.failovers == 1
    assert not a.current


def test_a_restarted_lone_replica_answers_again_once_current() -> None:
    a = replica("a", rdb_info(D2, incarnation="old"), answers=[Reply("new"), Reply("new")])

    def refresh(state: BackendState, target: Replica) -> None:
        target.info = rdb_info(D2, incarnation="new")

    result = PartRunner(refresh).run(
        backend(a), a, send, compatible=lambda r: True, abandoned=threading.Event()
    )
    assert result == Reply("new") and a.backend.asked == 2  # type: ignore[attr-defined]


def test_a_listed_replica_of_another_shard_is_kept_out() -> None:
    from gateway.backends import Topology
    from tickdb.types import Shard

    class Reports(Fake):
        def __init__(self, shard: Shard) -> None:
            super().__init__()
            self.shard = shard

        def info(self) -> dict[str, Any]:
            return BackendInfo(role="rdb", shard=self.shard, current=True).to_json()

    right = Replica("rdb:a", "rdb", Reports(Shard(0, 2)))
    wrong = Replica("rdb:b", "rdb", Reports(Shard(1, 2)))
    topology = Topology([BackendState("rdb:a,b", "rdb", right.backend, replicas=[right, wrong])])
    topology.refresh_replica(topology.states[0], right)
    topology.refresh_replica(topology.states[0], wrong)
    assert right.current and not wrong.up
    assert "not a replica of the same backend" in (wrong.error or "")
    assert topology.states[0].up and topology.states[0].shard == Shard(0, 2)
