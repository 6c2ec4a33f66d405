"""Model inputs: positional args plus keyword args, and helpers on them.

Importing this module imports no torch (the command line parses shapes
with it); its functions import torch when they run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flopaudit.errors import UserError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelInputs:
    """What ``model(*args, **kwargs)`` is called with."""

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, inputs: Any, kwargs: Mapping[str, Any] | None = None) -> ModelInputs:
        """Accept a tensor, a tuple/list of args, or a ModelInputs."""
        if isinstance(inputs, ModelInputs):
            if kwargs:
                return cls(inputs.args, {**inputs.kwargs, **kwargs})
            return inputs
        if inputs is None:
            args: tuple[Any, ...] = ()
        elif isinstance(inputs, (tuple, list)):
            args = tuple(inputs)
        else:
            args = (inputs,)
        return cls(args, dict(kwargs or {}))

    def tensors(self) -> Iterator[torch.Tensor]:
        """All tensors in args and kwargs, nested containers included."""
        yield from iter_tensors(self.args)
        yield from iter_tensors(tuple(self.kwargs.values()))

    @property
    def batch_size(self) -> int | None:
        """Size of dim 0 of the first tensor with at least one dim, if any."""
        for t in self.tensors():
            if t.dim() > 0:
                return int(t.shape[0])
        return None

    @property
    def single_tensor(self) -> torch.Tensor | None:
        """The only input if the model takes exactly one positional tensor."""
        import torch

        if len(self.args) == 1 and not self.kwargs and isinstance(self.args[0], torch.Tensor):
            return self.args[0]
        return None

    def to(self, device: torch.device | str) -> ModelInputs:
        return self.map(lambda t: t.to(device))

    def map(self, fn: Any) -> ModelInputs:
        """The same inputs with every tensor replaced by ``fn(tensor)``."""
        return ModelInputs(_map_tensors(self.args, fn), _map_tensors(dict(self.kwargs), fn))

    def describe(self) -> str:
        """Short human-readable shapes, e.g. ``(1x3x224x224)``."""
        import torch

        def one(v: Any) -> str:
            if isinstance(v, torch.Tensor):
                return "x".join(str(s) for s in v.shape) or "scalar"
            if isinstance(v, (tuple, list)):
                return "(" + ", ".join(one(x) for x in v) + ")"
            if isinstance(v, Mapping):
                return "{" + ", ".join(f"{k}: {one(x)}" for k, x in v.items()) + "}"
            return type(v).__name__
        parts = [one(a) for a in self.args] + [f"{k}={one(v)}" for k, v in self.kwargs.items()]
        return "(" + ", ".join(parts) + ")"


def iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``obj``, depth first through tuples, lists and mappings."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            yield from iter_tensors(x)
    elif isinstance(obj, Mapping):
        for x in obj.values():
            yield from iter_tensors(x)


def _map_tensors(obj: Any, fn: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        return tuple(_map_tensors(x, fn) for x in obj)
    if isinstance(obj, list):
        return [_map_tensors(x, fn) for x in obj]
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    return obj


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"1,3,224,224"`` (or ``1x3x224x224``) into a shape tuple."""
    cleaned = text.strip().strip("()[]").replace("x", ",")
    try:
        shape = tuple(int(p) for p in cleaned.split(",") if p.strip())
    except ValueError:
        raise UserError(f"invalid --input-shape {text!r}: expected integers like 1,3,224,224") from None
    if not shape or any(s <= 0 for s in shape):
        raise UserError(f"invalid --input-shape {text!r}: expected positive integers like 1,3,224,224")
    return shape
