"""A run's defaults and choices, read by the API (:mod:`flopaudit.run`) and the command line alike:
time limits, the threads of a measuring worker, how many workers count at once, the devices and
dtypes a case may be put on.

The command line reads them to build its ``--help`` without importing what runs an audit.
"""

from __future__ import annotations

import os

DEFAULT_TIMEOUT_S = 120.0
"""Seconds each phase of a case may take (building and running the model, each backend's count)."""

DEFAULT_COST_TIMEOUT_S = 600.0
"""Seconds measuring one model's cost may take."""

DEFAULT_COST_THREADS = 1
"""Torch threads of a measuring worker unless asked otherwise. # NB: several threads time well only on
an otherwise idle machine: on this project's shared 2-core machine mobilenet_v2 read 24 ms on one
thread and 453 ms on two (OpenMP threads waiting for a core another process holds)."""


DEVICES = ("cpu", "cuda")
"""Where a case's model may be put once built (``cuda:N`` names another GPU)."""

DTYPES = ("float32", "bfloat16", "float16")
"""The floating dtypes a case's parameters, buffers and floating inputs may be cast to."""


def usable_cores() -> int:
    """The number of cores this process may run on: how many workers count at once unless asked otherwise."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


__all__ = ["DEFAULT_COST_THREADS", "DEFAULT_COST_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "DEVICES", "DTYPES", "usable_cores"]
