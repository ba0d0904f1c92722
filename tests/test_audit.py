"""The audit log (``tickdb.audit``): one JSON line per record, a file per process and UTC
day, refusals from one address capped per second, and read back filtered in time order."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tickdb.audit import AuditLog, parse_time, read_audit, timestamp

DAY1 = 1_748_822_400.0  # 2025-06-02T00:00:00Z


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_record_is_one_line_with_who_what_when_where(tmp_path: Path) -> None:
    clock = Clock(DAY1 + 3600.5)
    audit = AuditLog(tmp_path / "audit", "gateway", clock=clock)
    audit.record("alice", "order.new", where="10.0.0.7:53122", port="http", account="D1")
    audit.record("ops", "admin.kill", where="10.0.0.8:1", port="http", sync=True, scope=None)
    audit.close()
    path = tmp_path / "audit" / "gateway-2025-06-02.jsonl"
    assert lines(path) == [
        {
            "ts": "2025-06-02T01:00:00.500000Z",
            "who": "alice",
            "action": "order.new",
            "ok": True,
            "where": "10.0.0.7:53122",
            "port": "http",
            "account": "D1",
        },
        {
            "ts": "2025-06-02T01:00:00.500000Z",
            "who": "ops",
            "action": "admin.kill",
            "ok": True,
            "where": "10.0.0.8:1",
            "port": "http",
        },
    ]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_new_utc_day_starts_a_new_file_and_writers_append(tmp_path: Path) -> None:
    clock = Clock(DAY1 - 1)
    first = AuditLog(tmp_path, "gateway", clock=clock)
    first.record("a", "login")
    clock.now = DAY1 + 1
    first.record("b", "login")
    first.close()
    again = AuditLog(tmp_path, "gateway", clock=clock)  # a restarted process appends
    again.record("c", "login")
    again.close()
    assert [r["who"] for r in lines(tmp_path / "gateway-2025-06-01.jsonl")] == ["a"]
    assert [r["who"] for r in lines(tmp_path / "gateway-2025-06-02.jsonl")] == ["b", "c"]


def test_refused_logins_from_one_address_are_capped_and_the_gap_counted(tmp_path: Path) -> None:
    clock = Clock(DAY1)
    audit = AuditLog(tmp_path, "gateway", clock=clock, refusals_per_s=2, refusal_burst=3)
    for _ in range(10):
        audit.record("x", "login", ok=False, where="10.0.0.9:1000")
    audit.record("y", "login", ok=False, where="10.0.0.10:1000")  # another address: its own
    audit.record("x", "denied", ok=False, where="10.0.0.9:1000")  # an identity: never capped
    clock.now += 0.5  # one more allowed
    audit.record("x", "login", ok=False, where="10.0.0.9:1001")
    audit.record("x", "login", ok=False, where="10.0.0.9:1002")
    clock.now += 10  # the burst again, no more
    for _ in range(5):
        audit.record("z", "login", ok=False, where="10.0.0.9:1003")
    audit.record("x", "order.new", where="10.0.0.9:1004")
    audit.close()
    records = lines(tmp_path / "gateway-2025-06-02.jsonl")
    assert [(r["who"], r["action"], r.get("suppressed")) for r in records] == [
        ("x", "login", None),
        ("x", "login", None),
        ("x", "login", None),
        ("y", "login", None),
        ("x", "denied", 7),
        ("x", "login", None),
        ("z", "login", 1),
        ("z", "login", None),
        ("z", "login", None),
        ("x", "order.new", 2),
    ]


def test_off_without_a_directory(tmp_path: Path) -> None:
    audit = AuditLog(None, "gateway")
    audit.record("a", "login")
    audit.close()
    assert not audit.enabled


def test_read_back_filtered_in_time_order_across_processes(tmp_path: Path) -> None:
    clock = Clock(DAY1 + 10)
    gateway = AuditLog(tmp_path, "gateway", clock=clock)
    tp = AuditLog(tmp_path, "tickerplant", clock=clock)
    gateway.record("alice", "login", where="h:1")
    clock.now += 1
    tp.record("feed", "login", ok=False, where="h:2", port="tp-kdb")
    clock.now += 1
    gateway.record("ops", "admin.kill", where="h:3")
    clock.now += 1
    gateway.record("ops", "admin.resume", where="h:3")
    tp.close()
    with (tmp_path / "gateway-2025-06-02.jsonl").open("a") as f:
        f.write('{"ts": "2025-06-02T00:00:1')  # a line a crash cut short
    gateway.close()
    again = AuditLog(tmp_path, "gateway", clock=clock)  # restarted: starts a fresh line
    again.record("ops", "admin.limits", where="h:3")
    again.close()
    everything, more = read_audit(tmp_path)
    assert [r["who"] for r in everything] == ["alice", "feed", "ops", "ops", "ops"] and not more
    since = timestamp(DAY1 + 11)
    assert [r["action"] for r in read_audit(tmp_path, since=since)[0]] == [
        "login",
        "admin.kill",
        "admin.resume",
        "admin.limits",
    ]
    assert [r["action"] for r in read_audit(tmp_path, action="admin.")[0]] == [
        "admin.kill",
        "admin.resume",
        "admin.limits",
    ]
    assert read_audit(tmp_path, who="feed")[0][0]["ok"] is False
    until = timestamp(DAY1 + 12)
    assert [r["who"] for r in read_audit(tmp_path, until=until)[0]] == ["alice", "feed"]
    first, more = read_audit(tmp_path, limit=3)
    assert len(first) == 3 and more


def test_parse_time_takes_epoch_seconds_and_iso() -> None:
    assert parse_time(str(DAY1)) == "2025-06-02T00:00:00.000000Z"
    assert parse_time("2025-06-02") == "2025-06-02T00:00:00.000000Z"
    assert parse_time("2025-06-02T02:00:00+02:00") == "2025-06-02T00:00:00.000000Z"
    assert parse_time("2025-06-02T00:00:00Z") == "2025-06-02T00:00:00.000000Z"
    with pytest.raises(ValueError, match="neither epoch seconds nor"):
        parse_time("yesterday")
