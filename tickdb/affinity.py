"""CPU affinity per component: the ``[cpus]`` config section (docs/config.md).

A trading desk pins its latency-critical processes to cores, as kdb+ deployments do with
``taskset``. On a virtual machine an idle core halts, and waking a thread on it costs
100-250 µs (``scripts/bench_wakeups.py``), while a wake on the core the waker runs on is
cheap. Every ZeroMQ message crosses two threads of each process it visits (the I/O thread
and the thread that reads it), so keeping a process's threads on one core keeps those
hand-offs cheap, and a layout that also puts the processes which talk most on one core
(the tickerplant with the venues, the gateway with its order clients) keeps most of a
round trip there (docs/benchmarks.md, "Orders: a core per component").

Unset (the default) leaves every component where the OS schedules it.
"""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger(__name__)

# The components whose process can be pinned: a [cpus] key each.
COMPONENTS = ("tickerplant", "rdb", "hdb", "gateway", "venue")


def parse_cpus(text: str) -> frozenset[int]:
    """CPUs in ``taskset``'s list syntax: ``"0"``, ``"0-3"``, ``"0,2,4-5"``; empty for none.
    ValueError says what is wrong."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            if text.strip():
                raise ValueError(f'{text!r}: an empty item (write e.g. "0", "0-3" or "0,2")')
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"{text!r}: {part!r} is not a CPU number or a range like 0-3")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"{text!r}: the range {part!r} runs backwards")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def pin_process(cpus: frozenset[int], pid: int = 0) -> None:
    """Every thread of process ``pid`` (0: this one) on ``cpus``; threads it starts later
    inherit the mask. ValueError when a CPU is not one the machine (or the process's
    cgroup) lets it use: the kernel grants only those, or none."""
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("CPU affinity needs Linux (os.sched_setaffinity)")
    pid = pid or os.getpid()
    try:
        os.sched_setaffinity(pid, cpus)  # the main thread first: what the kernel grants
    except OSError as exc:
        raise ValueError(f"CPU(s) {_format(cpus)} not available here ({exc.strerror})") from None
    granted = os.sched_getaffinity(pid)
    if missing := cpus - granted:
        raise ValueError(
            f"CPU(s) {_format(missing)} not available here (granted only {_format(granted)})"
        )
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def apply(setting: str, component: str) -> None:
    """Pin this process as ``[cpus] <component> = setting`` says (unset: nothing)."""
    if cpus := parse_cpus(setting):
        pin_process(cpus)
        log.info("%s pinned to CPU(s) %s", component, _format(cpus))


def cpus_of(pid: int) -> str:
    """The CPUs process ``pid`` may run on, in the list syntax (``tickdb status``): "all"
    when they are all the CPUs this process may use, "-" when it cannot be asked."""
    try:
        allowed = os.sched_getaffinity(pid)
        everything = os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not Linux, or the process is gone
        return "-"
    return "all" if allowed >= everything else _format(allowed)


def _format(cpus: set[int] | frozenset[int]) -> str:
    return ",".join(map(str, sorted(cpus)))
