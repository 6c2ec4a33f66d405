"""Keep glibc's allocator in one state for a whole benchmark run.

glibc serves a large block (a conv net's activations) with ``mmap`` until a
freed mapped block raises its threshold, then from the heap: the same forward
pass of mobilenet_v2 takes about 17 ms with its activations on the heap and
20-29 ms while they are mapped afresh (page faults on every call), depending
on what ran before. A count pays the same faults, so a ratio measured in the
mapped state reads low (1.26x where the heap state reads 1.77x on the same
code). :func:`pin` fixes the threshold (32 MiB, glibc's largest) and stops
trimming the heap, so blocks come from the heap in every repetition and every
ratio is taken against the faster forward pass: the strict reading.
Elsewhere (not glibc) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def pin() -> str:
    """Pin the allocator (see the module docstring); a line saying what was done."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None or not (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                               and mallopt(_M_TRIM_THRESHOLD, 1 << 30)):
        return "allocator: left as it is (no glibc mallopt here): ratios vary with what ran before"
    return "allocator: glibc, blocks up to 32 MiB from the heap, no trimming (benchmarks/steady_allocator.py)"
