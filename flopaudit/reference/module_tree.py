"""The counted model's module tree as the recorder sees it: each module's
names, whether it is a leaf, its buffers, and the facts a
:class:`~flopaudit.reference.events.ModuleCall` records of it."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from flopaudit.reference.events import Shape
from flopaudit.reference.tensors import python_number, shape_of


@dataclass
class ModuleTree:
    paths: dict[int, str]
    """``id(module) -> name`` (the one ``named_modules()`` gives)."""
    leaf: dict[int, bool]
    aliases: dict[int, tuple[str, ...]]
    """``id(module) -> names`` for modules reachable by more than one path."""
    buffers: list[torch.Tensor]
    """Every buffer, once."""
    params: list[torch.Tensor] = field(default_factory=list)
    """Every parameter, once."""
    wrappers: dict[int, tuple[str, ...]] = field(default_factory=dict)
    """``id(module) -> paths`` of the ``torch.compile`` wrappers around it, for the
    modules a wrapper wraps (see :func:`compile_wrapped`)."""
    modules: list[nn.Module] = field(default_factory=list)
    """Every module, once, in the order of :attr:`paths`."""


def walk(model: nn.Module) -> ModuleTree:
    """One walk of the module tree by ``named_children()`` (which, like
    ``children()``, skips a module repeated under one parent), visiting a
    shared module under each of its names; the first name of each module is
    the one ``named_modules()`` gives (both walk depth first, in order)."""
    names: dict[int, list[str]] = {}
    leaf: dict[int, bool] = {}
    buffers: dict[int, torch.Tensor] = {}
    params: dict[int, torch.Tensor] = {}
    wrappers: list[tuple[str, nn.Module]] = []
    modules: list[nn.Module] = []
    todo: list[tuple[str, nn.Module, Any]] = [("", model, None)]  # (name, module, ancestors as (id, parent's))
    while todo:
        prefix, module, ancestors = todo.pop()
        key = id(module)
        seen = names.get(key)
        if seen is not None:
            seen.append(prefix)
            if _in_chain(key, ancestors):  # a module that contains itself: stop
                continue
        else:
            names[key] = [prefix]
            modules.append(module)
            if type(module).__name__ == "OptimizedModule" and _is_compile_wrapper(module):
                wrappers.append((prefix, module))
            for b in module._buffers.values():
                if b is not None:
                    buffers.setdefault(id(b), b)
            for p in module._parameters.values():
                if p is not None:
                    params.setdefault(id(p), p)
        children = _named_children(module)
        leaf[key] = not children
        inner = (key, ancestors)
        for name, child in reversed(children):
            todo.append((f"{prefix}.{name}" if prefix else name, child, inner))
    return ModuleTree(
        paths={k: v[0] for k, v in names.items()},
        leaf=leaf,
        aliases={k: tuple(v) for k, v in names.items() if len(v) > 1},
        buffers=list(buffers.values()),
        params=list(params.values()),
        wrappers=compile_wrapped(wrappers),
        modules=modules,
    )


def compile_wrapped(wrappers: list[tuple[str, nn.Module]]) -> dict[int, tuple[str, ...]]:
    """``id(module) -> paths of its wrappers`` for each module that ``torch.compile``
    wrapped, from the ``(path, wrapper)`` pairs of the tree.

    An ``OptimizedModule`` forwards every attribute it does not define itself,
    read or written, to the module it wraps (``_orig_mod``), so a counter that
    keeps a count in a module attribute reads the wrapped module's count under
    the wrapper's name too. (``torch.compile`` of a wrapper compiles its
    ``forward`` instead of wrapping it again: one wrapper per module, unless
    the same module was compiled twice and both wrappers are in the tree.)
    # NB: a wrapper shared under two names is listed once, by its first name.
    """
    out: dict[int, list[str]] = {}
    for path, wrapper in wrappers:
        inner = wrapper._modules.get("_orig_mod")
        if inner is not None:
            out.setdefault(id(inner), []).append(path)
    return {k: tuple(v) for k, v in out.items()}


def _is_compile_wrapper(module: nn.Module) -> bool:
    """Is ``module`` a ``torch.compile`` wrapper (``torch._dynamo``'s ``OptimizedModule``)?"""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # not imported: nothing was compiled
    wrapper_type = getattr(eval_frame, "OptimizedModule", None)
    return wrapper_type is not None and isinstance(module, wrapper_type)


def _in_chain(key: int, chain: Any) -> bool:
    while chain is not None:
        if chain[0] == key:
            return True
        chain = chain[1]
    return False


_NAMED_CHILDREN = nn.Module.named_children


def _named_children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``list(module.named_children())``: each child once, the first name it has."""
    if type(module).named_children is not _NAMED_CHILDREN:
        return list(module.named_children())
    out = []
    ids: set[int] = set()
    for name, child in module._modules.items():
        if child is not None and id(child) not in ids:
            ids.add(id(child))
            out.append((name, child))
    return out


class ModuleFacts(NamedTuple):
    """What a :class:`~flopaudit.reference.events.ModuleCall` records of the module itself."""

    attrs: tuple[tuple[str, Any], ...]
    param_shapes: tuple[tuple[str, Shape], ...]
    class_path: str


class FactsReader:
    """Reads :class:`ModuleFacts` (one reader per recording: it remembers, for
    the attribute names of the modules it has read, which are public, sorted,
    and each class's path)."""

    def __init__(self) -> None:
        self.public: dict[tuple[str, ...], list[str]] = {}
        self.class_paths: dict[type, str] = {}

    def __call__(self, module: nn.Module) -> ModuleFacts:
        """The module's public scalar attributes, its own parameters' shapes and its class path."""
        cls = type(module)
        class_path = self.class_paths.get(cls)
        if class_path is None:
            class_path = self.class_paths[cls] = f"{cls.__module__}.{cls.__qualname__}"
        return ModuleFacts(self._public_attrs(module),
                           tuple([(n, shape_of(p)) for n, p in module._parameters.items() if p is not None]),
                           class_path)

    def _public_attrs(self, module: nn.Module) -> tuple[tuple[str, Any], ...]:
        """The module's public scalar attributes (and tuples of scalars), sorted by name."""
        d = module.__dict__
        names = tuple(d)
        public = self.public.get(names)
        if public is None:
            public = self.public[names] = sorted(k for k in names if k[:1] != "_")
        return _scalar_values(d, public)


_ATTR_TYPES = (bool, int, float, str)
_ATTR_SET = frozenset(_ATTR_TYPES)


def _scalar_values(d: dict[str, Any], names: list[str]) -> tuple[tuple[str, Any], ...]:
    """``(name, d[name])`` for each of ``names`` whose value is a scalar or a tuple of scalars."""
    out = []
    for k in names:
        v = d[k]
        t = type(v)
        if t in _ATTR_SET:
            out.append((k, v))
        elif t is tuple or isinstance(v, tuple):
            for x in v:
                if type(x) not in _ATTR_SET and not isinstance(x, _ATTR_TYPES):
                    break
            else:
                out.append((k, v))
                continue
            plain = tuple([python_number(x) for x in v])  # numpy numbers (pytorchvideo's strides)
            if all(isinstance(x, _ATTR_TYPES) for x in plain):
                out.append((k, plain))
        elif isinstance(v, _ATTR_TYPES):  # a subclass (an IntEnum)
            out.append((k, v))
        else:
            v = python_number(v)  # (a numpy number)
            if isinstance(v, _ATTR_TYPES):
                out.append((k, v))
    return tuple(out)


__all__ = ["FactsReader", "ModuleFacts", "ModuleTree", "walk"]
