"""Host-memory settings for training on the CPU.

A training step frees and reallocates the same activation and gradient buffers every step. glibc's
malloc hands blocks above its mmap threshold back to the OS when they are freed and trims the heap
above its trim threshold, so every step maps those pages again and the kernel zero-fills them:
about 1,500 page faults per step of the MNIST mlp (`benchmarks/step_levers.py` measures them and
the time they cost). `keep_freed_memory` raises both thresholds so freed blocks stay in the
process for the next step. Peak memory is unchanged (the same buffers at the same time); what
changes is that the process keeps its peak until it exits.

Only glibc has `mallopt`; elsewhere (macOS, musl) both functions do nothing and return False.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_MAX = 32 << 20      # glibc's largest mmap threshold on 64-bit systems
DEFAULT = 128 << 10      # glibc's starting value of both thresholds
INT_MAX = (1 << 31) - 1  # mallopt takes a C int: the trim threshold's largest value


def _mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def _set(mmap_threshold: int, trim_threshold: int) -> bool:
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def keep_freed_memory() -> bool:
    """Keep freed blocks up to 32 MB in the process (no mmap/munmap per step, no heap trim).
    True where glibc accepted the settings."""
    return _set(MMAP_MAX, INT_MAX)


def release_freed_memory() -> bool:
    """glibc's starting thresholds again (for A/B measurements)."""
    return _set(DEFAULT, DEFAULT)
