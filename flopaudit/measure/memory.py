"""Peak memory of one forward pass.

* On CUDA: the caching allocator's peak (``torch.cuda.max_memory_allocated``
  after ``reset_peak_memory_stats``): parameters, buffers, inputs,
  activations and every workspace the kernels asked the allocator for.
* Elsewhere: the bytes of tensor storages alive at once. Parameters,
  buffers and inputs are alive throughout; every storage an operator
  returns is added when it appears (a ``TorchDispatchMode`` sees each
  operator's outputs) and taken off when torch frees it (a finalizer on
  the storage object, which torch keeps alive exactly as long as the
  storage). Views and in-place results add nothing.
  # NB: scratch memory a kernel allocates and frees inside one operator
  # (a convolution's im2col buffer, oneDNN workspaces) and the allocator's
  # own overhead are not seen.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from flopaudit.inputs import ModelInputs
from flopaudit.measure.timing import synchronize

CUDA_METHOD = "CUDA caching allocator peak: parameters, buffers, inputs, activations and kernel workspaces"
STORAGE_METHOD = ("tensor storages alive at once: parameters, buffers, inputs and activations "
                  "(scratch memory inside one operator not seen)")


class _LiveStorages(TorchDispatchMode):
    """Bytes of the storages alive, and the most at once (see the module docstring)."""

    def __init__(self, resident: list[torch.Tensor]) -> None:
        super().__init__()
        self.alive: dict[int, int] = {}
        self.live = 0
        for t in resident:
            st = t.untyped_storage()
            if st._cdata not in self.alive:  # noqa: SLF001 - the storage's identity
                self.alive[st._cdata] = st.nbytes()  # noqa: SLF001
                self.live += st.nbytes()
        self.peak = self.live

    def _freed(self, key: int) -> None:
        self.live -= self.alive.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key = st._cdata  # noqa: SLF001
            if key in self.alive:
                continue
            self.alive[key] = st.nbytes()
            self.live += st.nbytes()
            weakref.finalize(st, self._freed, key)
        self.peak = max(self.peak, self.live)
        return out


def peak_memory(model: nn.Module, inputs: ModelInputs, device: torch.device, no_grad: bool = True) -> tuple[int, str]:
    """(peak bytes, how they were read) of one forward pass under ``no_grad`` (with autograd
    on for a forward that differentiates: :mod:`flopaudit.grad_forward`)."""
    gc.collect()
    grad_mode = torch.no_grad() if no_grad else torch.enable_grad()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        with grad_mode:
            model(*inputs.args, **inputs.kwargs)
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device)), CUDA_METHOD
    resident = [*model.parameters(), *model.buffers(), *inputs.tensors()]
    mode = _LiveStorages(resident)
    with grad_mode, mode:
        out = model(*inputs.args, **inputs.kwargs)
    del out
    return int(mode.peak), STORAGE_METHOD


__all__ = ["peak_memory", "CUDA_METHOD", "STORAGE_METHOD"]
