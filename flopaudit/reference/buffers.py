"""Putting back the buffer and parameter values a recorded pass writes to."""

from __future__ import annotations

import contextlib
from itertools import chain
from operator import is_not
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin
from torch.utils._python_dispatch import _disable_current_modes

from flopaudit.isolation import is_uninitialized
from flopaudit.reference.operators import ArgumentPlace, OperatorFacts, argument
from flopaudit.reference.tensors import TENSOR_DATA, tensors_in, watching_tensor_data


class BufferGuard:
    """Puts back the values of the model's buffers that the pass writes to
    (a train-mode BatchNorm's running statistics, ``num_batches_tracked``, a
    cache), and of its parameters (``nn.Embedding(max_norm=...)`` renormalises
    the rows it looks up in place, in every forward pass, through
    ``weight.detach()``). A tensor is copied only when an operator is about to
    write to its storage, so a pass that writes none copies nothing; the
    parameters' storages are looked up once an operator writes to a tensor
    that is not a buffer's. Meta and fake tensors hold no values and are not
    guarded.

    What a forward puts in their place is undone too: a parameter or buffer
    given other data (``param.data = param.data * m + ...``, MoCo's momentum
    update of its key encoder) gets its own back (noted as it happens,
    :meth:`watching`: an alias of its data is held from the moment it is
    replaced), and a module whose attributes, parameter, buffer or submodule
    tables the forward rebinds (``self.ema = self.ema * 0.9 + x``,
    ``self.initialized = True``, ``self.calls += 1``, ``register_buffer``,
    a write into its ``__dict__``) gets its own entries back: every module's
    tables are copied, shallow, when the pass starts (a dict copy each, in C)
    and compared entry by entry, by identity, when it ends; so are the
    attributes of a parameter or buffer that has any, and of the objects
    among them (bitsandbytes' ``quant_state``, which a 4-bit layer's first CPU
    forward rewrites with the weight it repacks). (Wrapping
    ``nn.Module.__setattr__`` and the table setters for the pass instead would
    cost more: setting an attribute of ``nn.Module`` invalidates the attribute
    caches of every one of its subclasses in the process, about 0.1 ms a
    setting with torchvision imported, and the forward then runs with them cold.)
    A list a module holds as an attribute and its forward appends to (attention maps kept for
    a plot) gets its items back too. # NB: other objects a forward changes in place (a dict
    filled as a cache, an attribute of an object a module holds) are left as they are; so is a
    lazy module, which its first forward materialises."""

    def __init__(self, buffers: Sequence[torch.Tensor], params: Sequence[torch.Tensor] = (),
                 modules: Sequence[nn.Module] = ()) -> None:
        self.by_storage: dict[int, list[torch.Tensor]] = _by_storage(buffers)
        """Buffers (and, once looked up, parameters) not copied yet, by the address of their storage."""
        self.params: Sequence[torch.Tensor] | None = params or None
        """The parameters, until their storages are looked up."""
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.tensors = (*params, *buffers)
        self.replaced: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        """``id(tensor) -> (tensor, alias of its data)`` for each parameter or buffer given
        other data during the pass, the alias taken just before."""
        self.modules = modules
        self.tables: list[dict[str, Any]] = []
        """The tables of the modules (each one's ``__dict__``, ``_parameters``, ``_buffers``
        and ``_modules``) as the pass found them, and :attr:`entries` their entries then."""
        self.entries: list[dict[str, Any]] = []
        self.lists: list[tuple[list[Any], list[Any]]] = []
        """The lists held as attributes in :attr:`tables`, each with its items when the pass started."""
        self._tensor_ids: set[int] | None = None

    @property
    def guarding(self) -> bool:
        """Whether a write may still need a copy (a tensor not copied yet)."""
        return bool(self.by_storage) or self.params is not None

    def before(self, facts: OperatorFacts, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Copy the buffers an operator call is about to write to (its ``Tensor(a!)``
        arguments, and the running statistics of a training batch norm)."""
        if facts.written:
            self._save(facts.written, args, kwargs)
        if facts.stats_written and argument(facts.stats_written[0], args, kwargs):
            self._save(facts.stats_written[1:], args, kwargs)

    def _save(self, written: tuple[ArgumentPlace, ...], args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        for place in written:
            for t in tensors_in(argument(place, args, kwargs)):
                if t.device.type == "meta":
                    continue
                ptr = _storage_ptr(t)
                if self.params is not None and ptr not in self.by_storage:
                    for key, params in _by_storage(self.params).items():
                        self.by_storage.setdefault(key, []).extend(params)
                    self.params = None
                for b in self.by_storage.pop(ptr, None) or ():
                    if _storage_ptr(b) == ptr:
                        self.saved.append((b, b.detach().clone()))
                        continue
                    # Given another storage since (``param.data = new``): this write is to the storage
                    # it had, which the restore gives it back (held, so no fresh tensor takes its address).
                    replaced = self.replaced.get(id(b))
                    if replaced is not None and _storage_ptr(replaced[1]) == ptr:
                        self.saved.append((replaced[1], replaced[1].clone()))

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Copy the modules' tables, then note, while the block runs, the data given to
        the model's parameters and buffers."""
        self.tables = _tables(self.modules, _lazy_modules(self.modules, self.tensors)) + _held_objects(self.tensors)
        self.entries = list(map(dict.copy, self.tables))
        self.lists = _attribute_lists(self.tables)
        with watching_tensor_data(replacing=self._data_replaced):
            yield

    def _data_replaced(self, tensor: torch.Tensor) -> None:
        if id(tensor) in self.replaced or is_uninitialized(tensor):
            return
        if self._tensor_ids is None:
            self._tensor_ids = {id(t) for t in self.tensors}
        if id(tensor) in self._tensor_ids:
            with _disable_current_modes():  # (the recorder's own alias, not the model's operator)
                self.replaced[id(tensor)] = (tensor, TENSOR_DATA.__get__(tensor))

    def restore(self) -> None:
        for items, kept in self.lists:
            if len(items) != len(kept) or any(map(is_not, items, kept)):
                items[:] = kept
        if _changed(self.tables, self.entries):
            for table, entries in zip(self.tables, self.entries):
                if _changed((table,), (entries,)):  # (a key made again: deleted, then put back)
                    for key in [k for k in table if k not in entries]:
                        del table[key]
                    table.update(entries)
        with torch.no_grad():
            for t, data in self.replaced.values():
                TENSOR_DATA.__set__(t, data)
            for b, value in self.saved:
                if b.shape == value.shape:
                    b.copy_(value)
                if b.grad_fn is not None:  # written with autograd on (``buf.copy_(y)``): a leaf again, as it was
                    b.detach_()


def _by_storage(tensors: Sequence[torch.Tensor]) -> dict[int, list[torch.Tensor]]:
    """``tensors`` by the address of their storage (meta and fake ones left out)."""
    from torch._subclasses.fake_tensor import FakeTensor

    out: dict[int, list[torch.Tensor]] = {}
    for t in tensors:
        if t.is_meta or isinstance(t, FakeTensor):
            continue
        ptr = _storage_ptr(t)
        if ptr:
            out.setdefault(ptr, []).append(t)
    return out


def _tables(modules: Sequence[nn.Module], left_out: set[int]) -> list[dict[str, Any]]:
    """Each module's ``__dict__`` and its parameter, buffer and submodule tables (those that
    are dicts: a ScriptModule's are views of its C++ module), but those of ``left_out``."""
    dicts = [m.__dict__ for m in modules if id(m) not in left_out] if left_out else [m.__dict__ for m in modules]
    return [t for d in dicts for t in (d, d.get("_parameters"), d.get("_buffers"), d.get("_modules"))
            if type(t) is dict]


def _attribute_lists(tables: Sequence[dict[str, Any]]) -> list[tuple[list[Any], list[Any]]]:
    """Each plain list held in ``tables`` (a module's ``self.attention_maps = []`` that its forward
    appends to), once, with a copy of its items; nothing is walked where no table holds one."""
    if list not in set(map(type, chain.from_iterable(map(dict.values, tables)))):
        return []
    lists = {id(v): v for v in chain.from_iterable(map(dict.values, tables)) if type(v) is list}
    return [(items, items.copy()) for items in lists.values()]


def _held_objects(tensors: Sequence[torch.Tensor]) -> list[dict[str, Any]]:
    """The attributes of the parameters and buffers that have any (bitsandbytes' ``quant_state``,
    muP's ``infshape``), and of the plain objects among them: a forward that converts a weight
    for its kernel (bitsandbytes' 4-bit ``Linear4bit`` repacks it on its first CPU call in eval
    mode, ``weight.data`` and its ``quant_state`` together) is given back whole, its data with
    the flags that describe it."""
    out = []
    for attrs in [d for d in (t.__dict__ for t in tensors) if d]:
        out.append(attrs)
        for value in attrs.values():
            held = getattr(value, "__dict__", None)
            if type(held) is dict and not isinstance(value, (torch.Tensor, nn.Module, type)):
                out.append(held)
    return out


def _changed(tables: Sequence[dict[str, Any]], entries: Sequence[dict[str, Any]]) -> bool:
    """May any of ``tables`` hold other keys or other objects than ``entries``, its copies?
    (Compared by identity, streamed in C: a key made again equal counts as changed.)"""
    flat = chain.from_iterable
    return (sum(map(len, tables)) != sum(map(len, entries))
            or any(map(is_not, flat(map(dict.values, tables)), flat(map(dict.values, entries))))
            or any(map(is_not, flat(tables), flat(entries))))


def _lazy_modules(modules: Sequence[nn.Module], tensors: Sequence[torch.Tensor]) -> set[int]:
    """``id`` of each module holding a parameter or buffer a lazy module has not materialised yet."""
    if not any(issubclass(c, UninitializedTensorMixin) for c in set(map(type, tensors))):
        return set()
    return {id(m) for m in modules
            if any(is_uninitialized(t) for t in (*m._parameters.values(), *m._buffers.values()))}


def _storage_ptr(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError, TypeError, ValueError):  # (ValueError: a lazy module's, unset)
        return 0


__all__ = ["BufferGuard"]
