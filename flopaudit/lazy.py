"""Package attributes imported when first used, so that importing the package stays cheap.

A package whose names live in heavy modules (torch, report renderers) sets
``__getattr__ = lazy_attributes(__name__, {"name": "module.path", ...})``:
``package.name`` imports ``module.path`` the first time it is asked for
(PEP 562). The command line relies on this to answer ``--help`` without
importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` serving each name in ``where`` from its module."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
