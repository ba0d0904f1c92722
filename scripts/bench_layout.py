"""A benchmark's CPU layout (``--cpus``): where each process it starts runs.

``"tickerplant=0,venue=0,gateway=1,client=1"``: each part ``NAME=CPUS``, CPUS in taskset's
list syntax with ``+`` for its comma (``0+2``) or a range (``0-1``). The stack's components
(``tickdb.affinity.COMPONENTS``) get a ``[cpus]`` section in their config and pin
themselves, as a deployment would; ``client`` is the benchmark's own process (and what it
starts besides the stack), ``subscriber`` a subscriber process it starts. A baseline's
stand-in for a component (a bare relay where the tickerplant is) runs on that component's
CPUs, so both sides of a comparison get the same layout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tickdb.affinity import COMPONENTS, parse_cpus, pin_process

Layout = dict[str, frozenset[int]]
ROLES = ("client", "subscriber")


def parse_layout(text: str) -> Layout:
    layout: Layout = {}
    for part in filter(None, text.split(",")):
        name, _, cpus = part.partition("=")
        if name not in (*COMPONENTS, *ROLES):
            raise SystemExit(f"--cpus: unknown part {name!r} (known: {(*COMPONENTS, *ROLES)})")
        layout[name] = parse_cpus(cpus.replace("+", ","))
    return layout


def layout_config(layout: Layout) -> str:
    """The ``[cpus]`` section that lays the stack out (empty without components in it)."""
    lines = [
        f'{name} = "{",".join(map(str, sorted(cpus)))}"'
        for name, cpus in layout.items()
        if name in COMPONENTS
    ]
    return "\n[cpus]\n" + "\n".join(lines) + "\n" if lines else ""


def pin(layout: Layout, name: str, pid: int) -> None:
    """Process ``pid`` (all its threads) on ``name``'s CPUs, if the layout names any."""
    if cpus := layout.get(name):
        pin_process(cpus, pid)


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """This process on ``cpus`` meanwhile (every thread; what it starts inherits it)."""
    if not cpus:
        yield
        return
    before = frozenset(os.sched_getaffinity(0))
    pin_process(cpus)
    try:
        yield
    finally:
        pin_process(before)
