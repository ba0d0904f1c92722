"""``keep_large_buffers``: large blocks freed and allocated again stop costing page faults.

Each case runs in a fresh interpreter (the setting is process-wide): a few megabyte-sized
buffers live at once, as fan-out blobs queued in ZeroMQ do, with sizes creeping up past
glibc's adaptive threshold.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CHURN = """
import collections, resource, sys
from tickdb.malloc import keep_large_buffers
if sys.argv[1] == "keep" and not keep_large_buffers():
    print(-1)
    sys.exit()
def churn(n):
    live = collections.deque(maxlen=4)
    for i in range(n):
        live.append(b"\\0" * ((1 << 20) + (i % 7) * 65536))
churn(10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn(200)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(out.stdout)


def test_large_buffers_are_reused_instead_of_faulted_in_again() -> None:
    kept = faults("keep")
    if kept < 0:
        pytest.skip("not glibc: mallopt is not available")
    default = faults("default")
    # 200 blobs of ~1 MB: thousands of faults by default (pages mapped afresh), a few
    # hundred at most when the heap keeps them.
    assert default > 2000
    assert kept * 5 < default
