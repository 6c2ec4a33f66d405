"""What a model holds, module by module: its parameters, buffers and names.

:func:`inventory` reads a model once (after its forward pass, so lazy
parameters are materialised) into immutable records of integers and names:
one :class:`ModuleInfo` per module object, with every name it is reachable
by, its own parameters, buffers and plain tensor attributes (``weight`` of a
pruned module), and its children. A tensor held twice (tied weights) has one
``key``. Parameter rulesets (:mod:`flopaudit.reference.params`) reproduce
each backend's parameter count from these records and the module calls of a
recording, the way event and module rulesets reproduce its MACs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor a module holds under ``name``."""

    name: str
    numel: int
    trainable: bool
    """``requires_grad`` (False for buffers)."""
    key: int
    """The same for every reference to the same tensor object (tied weights)."""
    nonzero: int = -1
    """Non-zero elements of a pruning mask buffer (``*_mask``); -1 for other tensors."""


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    """One module object of the model."""

    path: str
    """Its first name (``named_modules()``), ``""`` for the root."""
    names: tuple[str, ...]
    """Every name it is reachable by: the paths a walk of ``named_children()``
    from the root reaches it by (what ``nn.Module.apply`` and hook counters'
    tree walks visit), ``path`` first."""
    module_type: str
    module_class: str
    params: tuple[TensorInfo, ...]
    """Its own parameters (``_parameters``), in order."""
    buffers: tuple[TensorInfo, ...]
    tensor_attrs: tuple[TensorInfo, ...]
    """What its ``weight`` and ``bias`` attributes read as, where that is a tensor
    but not its own parameter: a plain tensor (a pruned module's ``weight``,
    computed from ``weight_orig`` and ``weight_mask``), a tensor a property
    computes (a parametrization's weight), its own buffer, or another module's
    parameter (a wrapper that forwards it: ``torch.compile``'s
    ``OptimizedModule``, a PEFT LoRA layer). Each has the key of the tensor it
    is (a computed tensor a key of its own)."""
    children: tuple[str, ...]
    """First names of its direct children, in ``named_children()`` order."""
    child_attrs: tuple[str, ...]
    """The attribute name of each child (``named_children()``)."""
    container: bool = False
    """An ``nn.Sequential`` or ``nn.ModuleList``, or a subclass of one (torch.ao's fused
    modules, the QAT ``ConvBnReLU2d`` included, are ones): what summary
    counters test with ``isinstance`` and look through."""

    @property
    def depth(self) -> int:
        return 0 if not self.path else self.path.count(".") + 1


@dataclass(frozen=True)
class ModelInventory:
    """Every module of a model, by first name, in ``named_modules()`` order."""

    modules: tuple[ModuleInfo, ...]
    uninitialized: int = 0
    """Parameters still uninitialised (lazy modules never run): counted as 0 elements."""

    @cached_property
    def by_path(self) -> dict[str, ModuleInfo]:
        return {m.path: m for m in self.modules}

    def module(self, path: str) -> ModuleInfo | None:
        return self.by_path.get(path)

    @property
    def root(self) -> ModuleInfo:
        return self.modules[0]

    def subtree(self, path: str) -> list[ModuleInfo]:
        """The module and its descendants, each once, in ``modules()`` order."""
        seen: dict[str, ModuleInfo] = {}
        todo = [path]
        while todo:
            current = self.by_path.get(todo.pop(0))
            if current is None or current.path in seen:
                continue
            seen[current.path] = current
            todo[0:0] = list(current.children)
        return list(seen.values())

    def named_params(self, path: str) -> list[tuple[str, TensorInfo]]:
        """``module.named_parameters()`` of the module at ``path``: dotted names
        relative to it, each tensor once (its first name)."""
        out: list[tuple[str, TensorInfo]] = []
        seen: set[int] = set()
        visited: set[str] = set()

        def visit(module: ModuleInfo, prefix: str) -> None:
            if module.path in visited:
                return
            visited.add(module.path)
            for t in module.params:
                if t.key not in seen:
                    seen.add(t.key)
                    out.append((prefix + t.name, t))
            for attr, child in zip(module.child_attrs, module.children):
                info = self.by_path.get(child)
                if info is not None:
                    visit(info, f"{prefix}{attr}.")

        start = self.by_path.get(path)
        if start is not None:
            visit(start, "")
        return out

    def unique_params(self) -> dict[int, tuple[TensorInfo, str]]:
        """Every parameter tensor once: key -> (its info, the path of the first module holding it)."""
        out: dict[int, tuple[TensorInfo, str]] = {}
        for module in self.modules:
            for t in module.params:
                out.setdefault(t.key, (t, module.path))
        return out


def _read_attribute(module: nn.Module, name: str) -> object:
    """``getattr(module, name)`` as a counter reading it gets it (None if reading it raises)."""
    value = module.__dict__.get(name)
    if value is not None:
        return value
    try:
        return getattr(module, name, None)
    except Exception:  # noqa: BLE001 - a property that fails to compute: nothing a counter could read
        return None


def _numel(t: object) -> int | None:
    try:
        return int(t.numel())  # type: ignore[attr-defined]
    except (ValueError, RuntimeError):  # an UninitializedParameter has no shape yet
        return None


def inventory(model: nn.Module, classes: dict[str, tuple[str, str]] | None = None) -> ModelInventory:
    """Read ``model``'s modules, parameters, buffers and names (see the module docstring).

    ``classes``: module path -> (class name, dotted class path) to record
    instead of the module's class now (a lazy module's class before its
    first forward, which hook counters chose their hooks by).
    """
    import torch

    names: dict[int, list[str]] = {}
    objects: dict[int, nn.Module] = {}
    for name, module in model.named_modules():
        names[id(module)] = [name]
        objects[id(module)] = module
    todo: list[tuple[str, nn.Module]] = [("", model)]
    while todo:  # every name: a walk of named_children() without a global memo
        prefix, module = todo.pop()
        for attr, child in module.named_children():
            path = f"{prefix}.{attr}" if prefix else attr
            if path not in names[id(child)]:
                names[id(child)].append(path)
            todo.append((path, child))
    first = {key: paths[0] for key, paths in names.items()}
    keys: dict[int, int] = {}
    held: list[torch.Tensor] = []  # every tensor keyed, held to the end: an id is a tensor's only while it lives
    uninitialized = 0

    def info(name: str, tensor: torch.Tensor, trainable: bool) -> TensorInfo:
        nonlocal uninitialized
        held.append(tensor)
        n = _numel(tensor)
        if n is None:
            uninitialized += 1
            n = 0
        nonzero = int(torch.count_nonzero(tensor)) if name.endswith("_mask") and n and tensor.device.type != "meta" else -1
        return TensorInfo(name, n, trainable, keys.setdefault(id(tensor), len(keys)), nonzero)

    modules: list[ModuleInfo] = []
    for key, module in objects.items():
        params = tuple(info(n, p, bool(p.requires_grad)) for n, p in module._parameters.items() if p is not None)
        buffers = tuple(info(n, b, False) for n, b in module._buffers.items() if b is not None)
        attrs = tuple(
            info(n, v, bool(v.requires_grad))
            for n in ("weight", "bias")
            if (n not in module._parameters or module._parameters[n] is None)  # (a ScriptModule's has no .get)
            and isinstance(v := _read_attribute(module, n), torch.Tensor)
        )
        children = [(attr, child) for attr, child in module._modules.items() if child is not None]
        unique_children: dict[int, str] = {}
        for attr, child in children:
            unique_children.setdefault(id(child), attr)
        cls = type(module)
        module_type, module_class = (classes or {}).get(
            first[key], (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"))
        modules.append(ModuleInfo(
            path=first[key],
            names=tuple(dict.fromkeys(names[key])),
            module_type=module_type,
            module_class=module_class,
            params=params,
            buffers=buffers,
            tensor_attrs=attrs,
            children=tuple(first[c] for c in unique_children),
            child_attrs=tuple(unique_children.values()),
            container=isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList)),
        ))
    return ModelInventory(tuple(modules), uninitialized)


__all__ = ["ModelInventory", "ModuleInfo", "TensorInfo", "inventory"]
