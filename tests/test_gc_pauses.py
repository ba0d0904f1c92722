"""``tickdb.gc_pauses``: full collections visit only what is new, and the day's end frees
cyclic garbage that was frozen. Run in a child process: freezing is process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, weakref
    from tickdb.gc_pauses import collect_all, keep_pauses_short

    class Node:
        pass

    state = [Node() for _ in range(50_000)]  # a day's orders, alive
    keep_pauses_short()
    frozen = gc.get_freeze_count()
    assert frozen >= 50_000, frozen

    # A cycle that is alive at a full collection is frozen by it ...
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    more = [Node() for _ in range(1_000)]
    gc.collect()
    assert gc.get_freeze_count() > frozen
    # ... and a full collection visits only what arrived since: nothing is left unfrozen.
    assert len(gc.get_objects(generation=2)) == 0
    # Dropped, the frozen cycle is garbage no collection sees until the day's end.
    del a, b
    gc.collect()
    assert gone() is not None
    collect_all()
    assert gone() is None
    assert gc.get_freeze_count() >= 50_000 and len(gc.get_objects(generation=2)) == 0
    # Reference counting still frees frozen objects that are not in a cycle.
    first = weakref.ref(state[0])
    del state[0]
    assert first() is None
    print("ok")
    """
)


def test_full_collections_visit_only_new_objects() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
