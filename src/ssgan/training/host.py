"""Host-memory settings for training on the CPU.

A training step frees and reallocates the same activation and gradient buffers every step. glibc's
malloc hands blocks above its mmap threshold back to the OS when they are freed and trims the heap
above its trim threshold, so every step maps those pages again and the kernel zero-fills them:
about 1,500 page faults per step of the MNIST mlp (`benchmarks/step_levers.py` measures them and
the time they cost). `keep_freed_memory` raises both thresholds so freed blocks stay in the
process for the next step. Peak memory stays about the same (the same buffers live at the same
time: the fm / mlp training run's peak RSS was 886 MB in session 17's throughput run, 875 MB in
session 16's without this); what changes is that the process keeps its peak until it exits.

Only glibc has `mallopt`; elsewhere (macOS, musl) `keep_freed_memory` does nothing and returns False.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_MAX = 32 << 20      # glibc's largest mmap threshold on 64-bit systems
INT_MAX = (1 << 31) - 1  # mallopt takes a C int: the trim threshold's largest value


def _mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Keep freed blocks up to 32 MB in the process (no mmap/munmap per step, no heap trim).
    True where glibc accepted the settings."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, INT_MAX))
