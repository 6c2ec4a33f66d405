"""Undo what a counter monkeypatches in shared namespaces, even when it fails.

calflops and DeepSpeed's profiler replace ``torch.nn.functional.*``,
``torch.*`` and ``torch.Tensor.*`` functions while they count and put them
back only when the count finishes: a model that raises in between leaves
them patched for every later count in the process (the next convolution then
fails inside their wrappers). torchstat replaces the ``__call__`` of module
classes and never puts it back. :func:`namespaces_restored` and
:func:`call_methods_restored` make each adapter leave the process as it
found it, whatever the counter does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

_ABSENT = object()


@contextlib.contextmanager
def namespaces_restored(namespaces: Iterable[Any]) -> Iterator[None]:
    """On exit, every attribute of each namespace (a module or a class) that was
    replaced is set back, and every function added is removed (an added
    submodule, imported lazily meanwhile, is kept)."""
    saved = [(ns, dict(vars(ns))) for ns in namespaces]
    try:
        yield
    finally:
        for ns, before in saved:
            now = vars(ns)
            for key, value in before.items():
                if now.get(key, _ABSENT) is not value:
                    setattr(ns, key, value)
            for key in [k for k in now if k not in before]:
                if not isinstance(now[key], ModuleType):
                    delattr(ns, key)


@contextlib.contextmanager
def call_methods_restored(classes: Iterable[type]) -> Iterator[None]:
    """On exit, each class's own ``__call__`` is what it was (removed if it had none)."""
    saved = {cls: cls.__dict__.get("__call__", _ABSENT) for cls in classes}
    try:
        yield
    finally:
        for cls, value in saved.items():
            if value is _ABSENT:
                if "__call__" in cls.__dict__:
                    delattr(cls, "__call__")
            else:
                cls.__call__ = value  # type: ignore[method-assign]


def torch_namespaces() -> tuple[Any, ...]:
    """The namespaces function-patching counters replace functions in."""
    import torch
    import torch.nn.functional as F

    return (F, torch, torch.Tensor)


__all__ = ["call_methods_restored", "namespaces_restored", "torch_namespaces"]
