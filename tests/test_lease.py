"""The lease of a pair (``tickdb.lease``): one holder per epoch, a takeover bumps the epoch,
and a holder that froze never comes back believing it still holds a lease it lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickdb import lease as lease_module
from tickdb.lease import Lease, LeaseState

TTL = 1.0


class Clock:
    """The lease's monotonic clock, moved by the test: a freeze is a jump."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(lease_module.time, "monotonic", fake.monotonic)
    return fake


class FrozenAfterRead(Lease):
    """A holder stopped (SIGSTOP) right after it read the lease file, for ``freeze_s``."""

    def __init__(self, clock: Clock, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self.freeze_s = 0.0

    def read(self) -> tuple[LeaseState | None, float]:
        got = super().read()
        self.clock.now += self.freeze_s
        return got


def test_one_holder_per_epoch(tmp_path: Path, clock: Clock) -> None:
    a = Lease(tmp_path, "role", "a:1", ttl_s=TTL)
    b = Lease(tmp_path, "role", "b:2", ttl_s=TTL)
    assert a.acquire() and a.epoch == 1 and a.fresh()
    assert not b.vacant() and not b.acquire() and b.epoch == 0
    a.close()  # the holder dies: its alive lock goes with it
    assert b.vacant() and b.acquire() and b.epoch == 2
    b.close()


def test_a_holder_that_lost_the_lease_steps_down_on_renewal(tmp_path: Path, clock: Clock) -> None:
    a = Lease(tmp_path, "role", "a:1", ttl_s=TTL)
    assert a.acquire()
    # Another node took epoch 2 (as a standby does once a frozen holder's lease expired).
    (tmp_path / "role.lease").write_text('{"epoch": 2, "holder": "b:2", "alive": false}')
    clock.now += TTL
    assert not a.fresh()
    assert not a.renew() and a.epoch == 0 and not a.holds()
    a.close()


def test_a_renewal_read_before_a_freeze_is_not_fresh_after_it(tmp_path: Path, clock: Clock) -> None:
    """The heartbeat thread reads the lease (still its own), the process is frozen longer
    than the TTL, then it resumes: that old read must not count as a fresh confirmation,
    or the loop would act on a lease another node may have taken meanwhile."""
    a = FrozenAfterRead(clock, tmp_path, "role", "a:1", ttl_s=TTL)
    assert a.acquire()
    a.freeze_s = 3 * TTL
    assert a.renew()  # what it read was its own lease
    assert not a.fresh(), "a read from before the freeze counted as fresh"
    a.close()


def test_an_acquire_read_before_a_freeze_is_not_fresh_after_it(
    tmp_path: Path, clock: Clock
) -> None:
    a = FrozenAfterRead(clock, tmp_path, "role", "a:1", ttl_s=TTL)
    a.freeze_s = 3 * TTL
    assert a.acquire()
    assert not a.fresh()
    a.close()
