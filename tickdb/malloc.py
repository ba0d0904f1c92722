"""Keep a process's large buffers mapped between uses: fewer page faults per message.

glibc serves an allocation above ``M_MMAP_THRESHOLD`` (128 KiB at start, raised as large
blocks are freed) with a fresh ``mmap``, and gives the top of the heap back to the kernel
once more than ``M_TRIM_THRESHOLD`` of it is free. The tickerplant builds and frees a fan-out
blob of up to a megabyte every few 1000-row messages, so the same memory is returned and
faulted back in over and over: each fresh page is a fault, several microseconds apiece on a
virtual machine. Fixed, high thresholds keep that memory in the heap for reuse; the price is
up to ``TRIM_BYTES`` of freed heap the process keeps instead of returning it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 << 20  # glibc's upper limit for the mmap threshold on 64-bit
TRIM_BYTES = 256 << 20


def keep_large_buffers() -> bool:
    """Set the thresholds; False where the C library is not glibc (nothing changes)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES) == 1
    done = mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES) == 1 and done
    if not done:
        log.debug("mallopt refused the thresholds; glibc defaults stay")
    return done
