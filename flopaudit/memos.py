"""What a model's code memoises for the whole process, emptied before every count.

transformers' DETR family, MaskFormer, SAM and BEiT build their position
tables in functions wrapped by ``functools.lru_cache`` (through
``compile_compatible_method_lru_cache``; one entry for MaskFormer's sine
embedding, keyed on the feature shape). Such a memo outlives the model and
every copy of it: an eager pass skips the table's operators when an earlier
pass with the same key left it there, and a pass with another key replaces
it (a JIT trace, whose sizes are tensors, or a backend's own inputs of
another batch size). A count would then depend on what ran before it in its
process: torch.profiler counted after fvcore's trace saw the table built,
counted after thop it did not. So every count starts with these memos
emptied (:func:`empty_memos`: each backend's count, :class:`flopaudit.adapters.base.Adapter`,
and each pass the reference records, :func:`flopaudit.reference.engine.record`):
each counts the model as its first forward pass in a fresh process runs it,
which is also what a counter run alone in a new script sees.

Found (:func:`model_memos`): ``functools.lru_cache`` wrappers held by the
classes of the model's modules and their bases (torch's own classes left
out) as attributes, static or class methods or property accessors, or in the
closure or ``__wrapped__`` chain of a function held there (a decorator's
wrapper, two levels deep); and those bound to names in the Python modules
that define these classes, where they were defined there too.
Also found: the memos defined in the user's own modules (not installed ones)
that those modules import a function or a memo from (a project's helper module
holding a memoised position table).
# NB: not found: a memo held elsewhere (in an installed library's helper, in a
# dict the code fills itself, on an object), or other process state a forward
# leaves behind.
"""

from __future__ import annotations

import functools
import sys
from types import FunctionType, ModuleType
from typing import Any

from torch import nn

from flopaudit.code_roots import is_users
from flopaudit.model_code import model_classes, model_namespaces

_LRU_WRAPPER = type(functools.lru_cache(maxsize=None)(lambda: None))
"""The type ``functools.lru_cache`` makes (``functools._lru_cache_wrapper``)."""

_DEPTH = 2
"""How many closures or ``__wrapped__`` links deep a memo is looked for from a class attribute."""


def model_memos(model: nn.Module) -> list[Any]:
    """The process-wide memos of ``model``'s code (see the module docstring), each once."""
    found: dict[int, Any] = {}
    for cls in model_classes(model):
        for value in vars(cls).values():
            _collect(value, found, _DEPTH)
    namespaces = model_namespaces(model)
    for namespace in namespaces:
        _collect_defined_in(namespace, found)
    for helper in _helper_modules(namespaces):
        _collect_defined_in(helper, found)
    return list(found.values())


def _collect_defined_in(namespace: ModuleType, found: dict[int, Any]) -> None:
    """The memos bound to names in ``namespace`` that are defined there too (as wrappers, or in the
    closures of the functions defined there)."""
    name = namespace.__name__
    for value in list(vars(namespace).values()):
        if isinstance(value, (_LRU_WRAPPER, FunctionType)) and getattr(value, "__module__", None) == name:
            _collect(value, found, _DEPTH)


def _helper_modules(namespaces: list[ModuleType]) -> list[ModuleType]:
    """The user's own modules (not installed: :func:`~flopaudit.code_roots.is_users`) that ``namespaces``
    import functions or memos from: a project's helper module holding a memoised table."""
    own = {n.__name__ for n in namespaces}
    found: dict[str, ModuleType] = {}
    seen: set[str] = set()
    for namespace in namespaces:
        for value in list(vars(namespace).values()):
            if not isinstance(value, (_LRU_WRAPPER, FunctionType)):
                continue
            source = getattr(value, "__module__", None)
            if not isinstance(source, str) or source in own or source in seen:
                continue
            seen.add(source)
            module = sys.modules.get(source)
            if module is not None and is_users(module):
                found[source] = module
    return list(found.values())


def empty_memos(model: nn.Module) -> None:
    """Empty every memo :func:`model_memos` finds."""
    for memo in model_memos(model):
        memo.cache_clear()


def _collect(value: Any, found: dict[int, Any], depth: int) -> None:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, property):
        for accessor in (value.fget, value.fset):
            _collect(accessor, found, depth)
        return
    if isinstance(value, _LRU_WRAPPER):
        found.setdefault(id(value), value)
        return
    if depth <= 0 or not isinstance(value, FunctionType):
        return
    for cell in value.__closure__ or ():
        try:
            held = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        _collect(held, found, depth - 1)
    wrapped = value.__dict__.get("__wrapped__")
    if wrapped is not None:
        _collect(wrapped, found, depth - 1)


__all__ = ["empty_memos", "model_memos"]
