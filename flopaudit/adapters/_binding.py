"""Wrapper modules that bind a model's inputs for backends that cannot call ``model(*args, **kwargs)``.

This module imports torch (its classes are ``nn.Module`` subclasses), so
adapter modules import it inside their ``_count``, never at module level.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from flopaudit.inputs import ModelInputs, iter_tensors
from flopaudit.module_paths import relative_path

WRAPPED = "wrapped"
"""Attribute name of the user's model inside :class:`FixedKwargs`."""


class FixedKwargs(nn.Module):
    """Calls the wrapped model with fixed keyword arguments.

    Backends such as ``thop.profile`` call ``model(*inputs)`` only; this adds
    the keyword inputs. The user's modules become children of ``wrapped``, so
    adapters strip that prefix from module paths (:func:`strip_wrapper`).
    """

    def __init__(self, model: nn.Module, kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self.wrapped = model
        self._fixed_kwargs = dict(kwargs)

    def forward(self, *args: Any) -> Any:
        return self.wrapped(*args, **self._fixed_kwargs)


def strip_wrapper(tree: Mapping[str, float], prefix: str = WRAPPED) -> dict[str, float]:
    """Module paths seen from inside the wrapper: ``prefix`` becomes ``""``, ``prefix.a`` ``a``;
    paths outside it (the wrapper's own root) are dropped."""
    out: dict[str, float] = {}
    for path, ops in tree.items():
        inner = relative_path(path, prefix)
        if inner is not None:
            out[inner] = ops
    return out


_INNER = "model"
"""Attribute name of the user's model inside :class:`BoundCall`."""


class BoundCall(nn.Module):
    """Calls ``model(*args, **kwargs)`` with only the top-level tensors as inputs.

    ``torch.jit`` traces a module called with a tuple of tensors. This wrapper
    takes exactly the tensors among the positional and keyword inputs, in
    order, as its own positional inputs, and bakes everything else (ints,
    flags, None, nested containers) into the call as constants. The user's
    model is the child named ``"model"``, so its module paths appear under
    the ``"model."`` prefix.
    """

    def __init__(self, model: nn.Module, inputs: ModelInputs) -> None:
        super().__init__()
        self.model = model
        self._args = tuple(inputs.args)
        self._kwargs = dict(inputs.kwargs)
        self._arg_slots = tuple(i for i, a in enumerate(self._args) if isinstance(a, torch.Tensor))
        self._kwarg_slots = tuple(k for k, v in self._kwargs.items() if isinstance(v, torch.Tensor))
        self.output_count: int | None = None
        """How many tensors the last call returned (``None`` before a call)."""

    def traced_inputs(self) -> tuple[torch.Tensor, ...]:
        """The tensors to call this wrapper with: positional ones, then keyword ones."""
        return tuple(self._args[i] for i in self._arg_slots) + tuple(self._kwargs[k] for k in self._kwarg_slots)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Call the model; return the tensors of its output, flattened.

        A trace can only return tensors: dicts, ``None`` or ints in the
        output would make it fail, so only the output's tensors come back.
        """
        args = list(self._args)
        kwargs = dict(self._kwargs)
        n = len(self._arg_slots)
        for slot, t in zip(self._arg_slots, tensors[:n]):
            args[slot] = t
        for key, t in zip(self._kwarg_slots, tensors[n:]):
            kwargs[key] = t
        out = tuple(iter_tensors(self.model(*args, **kwargs)))
        self.output_count = len(out)
        return out


def user_path(wrapped_name: str) -> str | None:
    """Map a module path inside :class:`BoundCall` to the user's model path.

    ``"model"`` -> ``""``, ``"model.a.b"`` -> ``"a.b"``, the wrapper itself
    (``""``) -> ``None``.
    """
    return relative_path(wrapped_name, _INNER)
