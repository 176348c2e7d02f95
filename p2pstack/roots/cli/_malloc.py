"""glibc allocator tuning for the ``p2pstack`` process (a composition-root choice, never made by the
library): keep freed large buffers in the heap instead of returning them to the kernel.

Without it, glibc serves every buffer of 128 KiB or more (socket reads, Noise batches) with a fresh
mmap, and the kernel faults it in page by page: about one page fault per 4 KiB received. Raising
M_MMAP_THRESHOLD and M_TRIM_THRESHOLD cut faults about tenfold and raised perf throughput by
15-40% in our measurements (benchmarks/profile_datapath.py --malloc-tuned). The cost is that up to
M_TRIM_THRESHOLD of freed memory stays in the process. Set ``P2PSTACK_MALLOC_TUNING=0`` to skip it.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["tune_allocator"]

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 128 << 20


def tune_allocator() -> bool:
    """Apply the tuning on glibc Linux. Returns whether it was applied."""
    if os.environ.get("P2PSTACK_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        # The process's own symbol table: libc is loaded already. (find_library would run
        # ldconfig in a subprocess, tens of milliseconds at every start.)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    results: list[int] = [
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ]
    return results == [1, 1]
