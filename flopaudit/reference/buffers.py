"""Putting back the buffer values a recorded pass writes to."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from flopaudit.reference.operators import ArgumentPlace, OperatorFacts, argument
from flopaudit.reference.tensors import tensors_in


class BufferGuard:
    """Puts back the values of the model's buffers that the pass writes to
    (a train-mode BatchNorm's running statistics, ``num_batches_tracked``, a
    cache). A buffer is copied only when an operator is about to write to its
    storage, so a pass that writes none (eval mode) copies nothing. Meta and
    fake buffers hold no values and are not guarded."""

    def __init__(self, buffers: Sequence[torch.Tensor]) -> None:
        from torch._subclasses.fake_tensor import FakeTensor

        self.by_storage: dict[int, list[torch.Tensor]] = {}
        """Buffers not copied yet, by the address of their storage."""
        for b in buffers:
            if b.is_meta or isinstance(b, FakeTensor):
                continue
            ptr = _storage_ptr(b)
            if ptr:
                self.by_storage.setdefault(ptr, []).append(b)
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] = []

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
                buffers = self.by_storage.pop(_storage_ptr(t), None)
                for b in buffers or ():
                    self.saved.append((b, b.detach().clone()))

    def restore(self) -> None:
        with torch.no_grad():
            for b, value in self.saved:
                if b.shape == value.shape:
                    b.copy_(value)
                if b.grad_fn is not None:  # written with autograd on (``buf.copy_(y)``): a leaf again, as it was
                    b.detach_()


def _storage_ptr(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError, TypeError):
        return 0


__all__ = ["BufferGuard"]
