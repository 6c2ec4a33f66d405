"""Helpers shared by the two ptflops adapters (``pytorch`` and ``aten`` engines)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from torch import nn

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


def has_own_work(module: nn.Module) -> bool:
    """A leaf, or a module holding parameters directly (its own forward does work)."""
    has_children = next(module.children(), None) is not None
    has_own_params = next(module.parameters(recurse=False), None) is not None
    return not has_children or has_own_params


def count_instances(modules: Iterable[nn.Module], type_names: set[str]) -> dict[str, int]:
    """How many of ``modules`` do own work and have a class name in ``type_names``."""
    counts: dict[str, int] = {}
    for module in modules:
        key = type(module).__name__
        if key in type_names and has_own_work(module):
            counts[key] = counts.get(key, 0) + 1
    return counts


__all__ = ["ZERO_OP_ATEN", "ZERO_OP_MODULE", "common_options", "count_instances", "has_own_work"]
