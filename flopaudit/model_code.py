"""A model's own code: the classes of its modules and their bases, and the Python modules
defining them, torch's own and built-in ones left out (what a model brings that torch does not)."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


def _own(name: Any) -> bool:
    return isinstance(name, str) and name not in ("builtins", "torch") and not name.startswith("torch.")


def model_classes(model: Any) -> list[type]:
    """The classes of ``model``'s modules and their bases, but torch's and built-in ones, each once."""
    found: dict[type, None] = {}
    for kind in dict.fromkeys(type(m) for m in model.modules()):
        for cls in kind.__mro__:
            if _own(getattr(cls, "__module__", None)):
                found.setdefault(cls)
    return list(found)


def model_namespaces(model: Any) -> list[ModuleType]:
    """The Python modules that define :func:`model_classes`, each once."""
    names = dict.fromkeys(cls.__module__ for cls in model_classes(model))
    return [m for m in map(sys.modules.get, names) if m is not None]


__all__ = ["model_classes", "model_namespaces"]
