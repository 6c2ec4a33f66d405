"""Helpers shared by the two ptflops adapters (``pytorch`` and ``aten`` engines)."""

from __future__ import annotations

import re
from typing import Any

ZERO_OP_MODULE = re.compile(r"Warning: module (\S+) is treated as a zero-op\.")
"""ptflops' ``pytorch`` engine, ``verbose=True``: a module type it has no hook for."""

ZERO_OP_ATEN = re.compile(r"Warning: (\S+) operation is treated as a zero-op")
"""ptflops' ``aten`` engine, ``verbose=True``: an aten op it has no rule for (one line per call)."""


def common_options(backend: str) -> dict[str, Any]:
    """The ``get_model_complexity_info`` arguments both adapters reproduce."""
    return {
        "backend": backend,
        "as_strings": False,
        "print_per_layer_stat": False,
        "verbose": True,
        "ignore_modules": [],
        "custom_modules_hooks": {},
    }


__all__ = ["ZERO_OP_ATEN", "ZERO_OP_MODULE", "common_options"]
