"""Binding keyword inputs for backends that can only call ``model(*args)``."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

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
    """Drop the wrapper's root and ``prefix.`` from every module path."""
    out: dict[str, float] = {}
    for path, ops in tree.items():
        if path == prefix:
            out[""] = ops
        elif path.startswith(prefix + "."):
            out[path[len(prefix) + 1 :]] = ops
    return out
