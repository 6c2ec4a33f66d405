"""Model inputs: positional args plus keyword args, and helpers on them.

Importing this module imports no torch (the command line parses shapes
with it); its functions import torch when they run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flopaudit.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ModelInputs:
    """What ``model(*args, **kwargs)`` is called with."""

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, inputs: Any, kwargs: Mapping[str, Any] | None = None) -> ModelInputs:
        """Accept a tensor, a tuple/list of args, a mapping of keyword arguments (a
        dict, or a tokenizer's ``BatchEncoding``: ``model(**batch)``), or a ModelInputs;
        ``kwargs`` adds keyword arguments. A mapping whose keys are not all strings
        cannot be keyword arguments and is one positional argument, as is any mapping
        inside a tuple (``(batch,)``: ``model(batch)``)."""
        if isinstance(inputs, ModelInputs):
            if kwargs:
                return cls(inputs.args, {**inputs.kwargs, **kwargs})
            return inputs
        if isinstance(inputs, Mapping) and all(isinstance(k, str) for k in inputs):
            return cls((), {**inputs, **(kwargs or {})})
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

    def fresh(self) -> ModelInputs:
        """A deep copy for one run of the model, so that every pass starts from
        the inputs as they were built: a model that changes its inputs (appends
        to a key/value cache it is given, writes an input tensor in place, or
        accumulates an input's gradient) changes only its own copy. Tensors that
        autograd produced (which refuse ``copy.deepcopy``) are copied detached,
        keeping ``requires_grad``; tensors passed twice stay one tensor.
        # NB: inputs ``copy.deepcopy`` cannot copy even so are shared, as given.
        """
        import copy

        memo: dict[int, Any] = {}
        note_uncopyable((self.args, dict(self.kwargs)), memo, keep_grad=True, objects=True)
        try:
            args, kwargs = copy.deepcopy((self.args, dict(self.kwargs)), memo)
        except Exception:  # noqa: BLE001 - an input that cannot be copied: shared
            return self
        return ModelInputs(args, kwargs)

    def describe(self) -> str:
        """Short human-readable shapes, e.g. ``(1x3x224x224)``."""
        import torch

        def one(v: Any) -> str:
            if isinstance(v, torch.Tensor):
                return shape_text(v.shape)
            if isinstance(v, (tuple, list)):
                return "(" + ", ".join(one(x) for x in v) + ")"
            if isinstance(v, Mapping):
                return "{" + ", ".join(f"{k}: {one(x)}" for k, x in v.items()) + "}"
            return type(v).__name__
        parts = [one(a) for a in self.args] + [f"{k}={one(v)}" for k, v in self.kwargs.items()]
        return "(" + ", ".join(parts) + ")"


def holds_meta(model: nn.Module, inputs: ModelInputs, held: Sequence[torch.Tensor] | None = None) -> bool:
    """Whether the model as given or its inputs live on the meta device: an input on meta, or every
    parameter on meta (every buffer, for a model without parameters). A model built under ``with
    torch.device("meta")`` by its own code is counted as ``--meta`` counts one, and the reference
    records it as it records one on meta; a model that keeps a skeleton on meta beside its weights
    (torch.func's ensembling recipe: ``copy.deepcopy(models[0]).to("meta")``, called with stacked
    weights through ``functional_call``) runs where its inputs and weights are. ``held``: the
    model's parameters and buffers, where the caller has walked its module tree already (the
    recorder has)."""
    import torch

    if any(t.is_meta for t in inputs.tensors()):
        return True
    if held is None:
        held = (*model.parameters(), *model.buffers())
    weights = [t for t in held if isinstance(t, torch.nn.Parameter)] or list(held)
    return bool(weights) and all(t.is_meta for t in weights)


def shape_text(shape: Sequence[int]) -> str:
    """A shape as it reads in messages: ``1x3x224x224``, ``scalar`` for ``()``."""
    return "x".join(str(s) for s in shape) or "scalar"


_SCALARS = frozenset({int, float, bool, complex, str, bytes, type(None)})
"""Types that hold no tensor (looked past without a recursive call: operators take many of them)."""


def iter_tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``obj``, depth first through tuples, lists and mappings."""
    import torch

    tensor = torch.Tensor
    if isinstance(obj, tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            if isinstance(x, tensor):
                yield x
            elif type(x) not in _SCALARS:
                yield from iter_tensors(x)
    elif type(obj) not in _SCALARS and isinstance(obj, Mapping):
        for x in obj.values():
            yield from iter_tensors(x)


def note_uncopyable(value: Any, memo: dict[int, Any], *, keep_grad: bool, objects: bool, depth: int = 0) -> None:
    """Prepare ``memo`` for ``copy.deepcopy`` of ``value``: each tensor in it that
    autograd produced (not a leaf, not a parameter; ``deepcopy`` refuses those) is
    copied detached (``keep_grad``: still requiring a gradient if it did), and a
    ``torch.jit.script`` function (compiled, immutable, unpicklable) is shared.
    Looks through tuples, lists and dicts, and with ``objects`` through other
    objects' attributes (a key/value cache's layers), four levels deep."""
    import torch

    if isinstance(value, torch.Tensor):
        if not value.is_leaf and not isinstance(value, torch.nn.Parameter) and id(value) not in memo:
            memo[id(value)] = value.detach().clone().requires_grad_(keep_grad and value.requires_grad)
    elif isinstance(value, torch.jit.ScriptFunction):
        memo[id(value)] = value
    elif depth >= 4:
        return
    elif isinstance(value, (list, tuple)):
        for item in value:
            note_uncopyable(item, memo, keep_grad=keep_grad, objects=objects, depth=depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            note_uncopyable(item, memo, keep_grad=keep_grad, objects=objects, depth=depth + 1)
    elif objects and not isinstance(value, (str, bytes, int, float, bool, type, torch.nn.Module)) \
            and isinstance(getattr(value, "__dict__", None), dict):
        for item in vars(value).values():
            note_uncopyable(item, memo, keep_grad=keep_grad, objects=objects, depth=depth + 1)


def _map_tensors(obj: Any, fn: Any) -> Any:
    """``obj`` with every tensor in it replaced by ``fn(tensor)``, its containers of the same
    types: tuples, lists and dicts rebuilt, a named tuple made again by its class (a
    ``PackedSequence`` with its batch sizes left on the CPU, as its own ``to`` leaves them),
    any other object holding tensors (a ``BatchEncoding``, a ``TensorDict``, a dataclass)
    copied with its tensors mapped (``copy.deepcopy`` given the mapped tensors; an object
    whose copy keeps its own tensors, as a ``TensorDict``'s does, through its ``apply(fn)``).
    An object it cannot copy is left as it is."""
    import copy

    import torch

    if isinstance(obj, torch.Tensor):
        return fn(obj)
    kind = type(obj)
    if kind is tuple:
        return tuple(_map_tensors(x, fn) for x in obj)
    if kind is list:
        return [_map_tensors(x, fn) for x in obj]
    if kind is dict:
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, torch.nn.utils.rnn.PackedSequence):  # its batch sizes stay on the CPU (as its own .to)
        return kind(fn(obj.data), obj.batch_sizes, *(None if t is None else fn(t)
                                                     for t in (obj.sorted_indices, obj.unsorted_indices)))
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return kind(*(_map_tensors(x, fn) for x in obj))
    inner = _held_tensors(obj)
    if not inner:
        return obj
    mapped = {id(t): fn(t) for t in inner}
    try:
        out = copy.deepcopy(obj, dict(mapped))
    except Exception:  # noqa: BLE001 - an object that refuses to be copied: as given
        return obj
    wanted = {id(t) for t in mapped.values()}
    if all(id(t) in wanted for t in _held_tensors(out)):
        return out
    apply = getattr(obj, "apply", None)
    if callable(apply):
        try:
            return apply(fn)
        except Exception:  # noqa: BLE001
            pass
    return out


def _held_tensors(obj: Any) -> list[Any]:
    """The tensors in a container (:func:`iter_tensors`), or held directly in the attributes of
    another object (a dataclass)."""
    import torch

    if isinstance(obj, (tuple, list, Mapping)):
        return list(iter_tensors(obj))
    values = getattr(obj, "__dict__", None)
    return [v for v in values.values() if isinstance(v, torch.Tensor)] if isinstance(values, dict) else []


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
