"""Putting back the buffer and parameter values a recorded pass writes to."""

from __future__ import annotations

from operator import is_not
from typing import Any, Mapping, Sequence

import torch

from flopaudit.reference.operators import ArgumentPlace, OperatorFacts, argument
from flopaudit.reference.tensors import tensors_in


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
    update of its key encoder) gets its own back (an alias of each one's data
    is held from the start, no copy), and a module whose attributes, parameter,
    buffer or submodule tables the forward rebinds (``self.ema = self.ema * 0.9
    + x``, ``self.initialized = True``, ``self.calls += 1``) gets its own entries
    back (a shallow copy of each is taken at the start). # NB: an object a forward
    changes in place (appending to a list attribute) is left as it is; so is a lazy
    module, which its first forward materialises."""

    def __init__(self, buffers: Sequence[torch.Tensor], params: Sequence[torch.Tensor] = (),
                 modules: Sequence[Any] = ()) -> None:
        self.by_storage: dict[int, list[torch.Tensor]] = _by_storage(buffers)
        """Buffers (and, once looked up, parameters) not copied yet, by the address of their storage."""
        self.params: Sequence[torch.Tensor] | None = params or None
        """The parameters, until their storages are looked up."""
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] = []
        tensors = (*params, *buffers)
        lazy = any(isinstance(t, _UNINITIALIZED) for t in tensors)
        self.guarded = [t for t in tensors if not isinstance(t, _UNINITIALIZED)] if lazy else tensors
        """The parameters and buffers (lazy ones not materialised yet left out: materialising
        gives them their data)."""
        self.held = {id(t): t.detach() for t in self.guarded}
        """An alias of each one's data as the pass starts, by ``id`` of the tensor (held in
        :attr:`guarded`, so that their ids stay theirs)."""
        self.tables = [(table, dict(table)) for m in modules if not (lazy and _lazy(m))
                       for table in (m.__dict__, m._parameters, m._buffers, m._modules)
                       if table and type(table) is dict]  # (a ScriptModule's tables are views of its C++ module)
        """Each module's attributes and tables with their entries as the pass starts."""

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
                    data = self.held.get(id(b))
                    if data is not None and _storage_ptr(data) == ptr:
                        self.saved.append((data, data.clone()))

    def restore(self) -> None:
        with torch.no_grad():
            for table, entries in self.tables:
                if len(table) != len(entries) or any(map(is_not, table.values(), entries.values())):
                    for key in [k for k in table if k not in entries]:
                        del table[key]
                    table.update(entries)
            for t in self.guarded:
                data = self.held[id(t)]
                if not _same_data(t, data):
                    t.data = data
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


_UNINITIALIZED = torch.nn.parameter.UninitializedTensorMixin


def _lazy(module: Any) -> bool:
    """Does ``module`` hold a parameter or buffer a lazy module has not materialised yet?"""
    return any(isinstance(t, _UNINITIALIZED) for t in (*module._parameters.values(), *module._buffers.values()))


def _same_data(t: torch.Tensor, data: torch.Tensor) -> bool:
    """Does ``t`` still hold ``data`` (the same memory, shape and strides)?"""
    try:
        return t.data_ptr() == data.data_ptr() and t.shape == data.shape and t.stride() == data.stride()
    except (RuntimeError, NotImplementedError):  # no storage (sparse, nested): not guarded
        return True


def _storage_ptr(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError, TypeError, ValueError):  # (ValueError: a lazy module's, unset)
        return 0


__all__ = ["BufferGuard"]
