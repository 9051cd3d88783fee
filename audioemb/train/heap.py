"""Keep the memory a training step frees in the process heap (glibc ``mallopt``), for the next step to reuse.

A training step allocates and frees the same large activations every step (the first conv block of the
AudioNTT CNN alone writes 200 MB per batch of 128 views). glibc serves each allocation above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, so every step faults all of
its activations in again, page by page: on the 2-core CPU a third of a training process's time went to
the kernel. With mmap off and heap trimming at its largest, freed blocks stay mapped and are reused
(docs/benchmarks.md: the conv stack's forward and backward went from 24 to 38 GFLOP/s). PyTorch's CPU
performance guide gets the same from jemalloc or tcmalloc through ``LD_PRELOAD``; this needs no package.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
_INT_MAX = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make glibc serve every allocation from the heap and never trim it; False (nothing changed) where
    the C library is not glibc. Memory freed is not given back to the system, and the heap fragments, so
    peak memory can rise (the conv-stack benchmark of docs/benchmarks.md: 1.7 to 2.4 GB)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, _INT_MAX) == 1
