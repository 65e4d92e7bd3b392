"""Host-memory settings for training on the CPU.

A training step frees and reallocates the same activation and gradient buffers every step. glibc's
malloc hands blocks above its mmap threshold back to the OS when they are freed and trims the heap
above its trim threshold, so every step maps those pages again and the kernel zero-fills them:
about 1,500 page faults per step of the MNIST mlp (`benchmarks/step_levers.py` measures them and
the time they cost). `keep_freed_memory` raises both thresholds so freed blocks stay in the
process for the next step.

What is kept is then resident for good, and what runs between the steps (the test-set
evaluation, matplotlib's plots and the report) allocates on top of it: a dcgan32 run's peak rose
by 100-200 MB there. So the loop calls `release_freed_memory` (glibc's malloc_trim) before each
evaluation and before the report. The next step takes its pages again once: one step's faults
per epoch.

Only glibc has `mallopt` and `malloc_trim`; elsewhere (macOS, musl) both functions do nothing and
return False.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_MAX = 32 << 20      # glibc's largest mmap threshold on 64-bit systems
INT_MAX = (1 << 31) - 1  # mallopt takes a C int: the trim threshold's largest value


def _libc(name: str):
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or None), name)
    except (OSError, AttributeError):
        return None


def _mallopt():
    return _libc("mallopt")


def keep_freed_memory() -> bool:
    """Keep freed blocks up to 32 MB in the process (no mmap/munmap per step, no heap trim).
    True where glibc accepted the settings."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, INT_MAX))


def release_freed_memory() -> bool:
    """Hand the free blocks malloc holds back to the OS (glibc's malloc_trim(0)). True where it did."""
    trim = _libc("malloc_trim")
    return trim is not None and bool(trim(0))


def peak_rss_mb() -> float:
    """This process's own peak resident memory, MiB: Linux's VmHWM, the high-water mark of its
    memory map. `getrusage(RUSAGE_SELF).ru_maxrss` is not that: Linux carries it across exec, so a
    child started by a 2.6 GB parent reports at least 2.6 GB (throughput.py's RSS column did, for
    rows timed after the 64x64 steps). Elsewhere ru_maxrss is all there is (kB on Linux, bytes on
    macOS)."""
    import resource
    import sys
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
