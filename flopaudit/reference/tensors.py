"""What the recorder reads of tensors: shapes, element counts, dtypes and
bytes, never values."""

from __future__ import annotations

import contextlib
import math
from collections import abc
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import torch

from flopaudit.reference.events import Shape
from flopaudit.reference.registry import concatenated, nested_components

_Tensor = torch.Tensor
_NOT_CONTAINERS = (type(None), bool, int, float, str, torch.dtype, torch.device)


def tensors_in(obj: Any, out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Every tensor in ``obj``, depth first through tuples, lists and mappings
    (as :func:`flopaudit.inputs.iter_tensors`), as a list: the recorder's hot
    path, with the common cases (a tensor, a flat tuple or list of tensors and
    scalars) tested first."""
    if out is None:
        out = []
    if isinstance(obj, _Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            if isinstance(x, _Tensor):
                out.append(x)
            elif isinstance(x, (tuple, list, dict)) or (
                not isinstance(x, _NOT_CONTAINERS) and isinstance(x, abc.Mapping)
            ):
                tensors_in(x, out)
    elif isinstance(obj, dict) or (not isinstance(obj, _NOT_CONTAINERS) and isinstance(obj, abc.Mapping)):
        for x in obj.values():
            tensors_in(x, out)
    return out


def op_tensors(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[torch.Tensor]:
    """The tensors among an operator's arguments. Schema-typed: a list whose
    first element is a number is an ``int[]``/``float[]`` (stride, padding,
    sizes) and holds no tensor."""
    out: list[torch.Tensor] = []
    for x in args:
        if isinstance(x, _Tensor):
            out.append(x)
        elif isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float)):
            tensors_in(x, out)
    if kwargs:
        tensors_in(kwargs, out)
    return out


NO_SIZE = (RuntimeError, TypeError, ValueError, AttributeError)
"""What reading a size as an int raises where it has none: a nested tensor's, an unbacked symbolic
size, and a jagged nested tensor's ragged dimension (a ``SymInt`` on a ``NestedIntNode``, which
``int()`` meets as an ``AttributeError``)."""


def shape_of(t: torch.Tensor) -> Shape:
    """``t``'s shape as ints (a nested tensor: see :func:`_nested_shape`)."""
    try:
        return tuple(map(int, t.shape))
    except NO_SIZE:  # nested / unbacked symbolic
        return _nested_shape(t)


def _nested_shape(t: torch.Tensor) -> Shape:
    """A nested tensor's components concatenated along their first dim
    (``(4, 16)`` and ``(6, 16)`` -> ``(10, 16)``): its element count and
    trailing dims are right, its batch dim is not there (components that
    differ past their first dim give ``(numel,)``); anything else ``()``.
    Formulas also get the components (``OpCall.nested``)."""
    if not getattr(t, "is_nested", False):
        return ()
    try:
        return tuple(concatenated(nested_components(t)))
    except NO_SIZE:
        return ()


def size_now(t: torch.Tensor) -> Any:
    """``t.shape``, or None where it has none (a nested tensor): :func:`summarise` reads that as nested."""
    try:
        return t.shape
    except NO_SIZE:
        return None


class TensorSummary(NamedTuple):
    """What an event records of a group of tensors (an operator's inputs or outputs)."""

    shapes: tuple[Shape, ...]
    nbytes: int
    """Bytes of the distinct tensors (numel x element size; a tensor passed twice counts once)."""
    dtypes: tuple[torch.dtype, ...] | None
    """None if one of them is nested."""


def summarise(tensors: Sequence[torch.Tensor], sizes: Sequence[Any] | None = None) -> TensorSummary:
    """Shapes, bytes and dtypes of ``tensors``, from the ``sizes`` they had
    when those were taken (an in-place op may resize its inputs), else as they are now."""
    if sizes is None:
        sizes = [size_now(t) for t in tensors]
    shapes = []
    nested = False
    read = 0
    seen: set[int] = set()
    for t, s in zip(tensors, sizes):
        try:
            shape = tuple(map(int, s))
            n = math.prod(shape)
        except NO_SIZE:  # nested / unbacked symbolic
            shape = shape_of(t)
            nested = nested or bool(getattr(t, "is_nested", False))
            n = -1
        shapes.append(shape)
        if id(t) not in seen:
            seen.add(id(t))
            try:
                read += (n if n >= 0 else int(t.numel())) * t.element_size()
            except NO_SIZE:
                pass
    return TensorSummary(tuple(shapes), read, None if nested else tuple([t.dtype for t in tensors]))


TENSOR_DATA = vars(torch._C.TensorBase)["data"]
"""``Tensor.data`` as torch defines it (its getter gives an alias of the data, its setter replaces them)."""


@contextlib.contextmanager
def watching_tensor_data(given: Callable[[torch.Tensor], None] | None = None,
                         replacing: Callable[[torch.Tensor], None] | None = None) -> Iterator[None]:
    """For the block, ``Tensor.data`` tells ``given`` each alias its getter gives and ``replacing``
    each tensor its setter is about to give other data; wrapped over whatever ``Tensor.data``
    is when the block starts (another block's wrapper), put back when it ends."""
    before = vars(torch.Tensor).get("data")
    inner = before if before is not None else TENSOR_DATA

    def get(tensor: torch.Tensor) -> torch.Tensor:
        alias = inner.__get__(tensor)
        if given is not None:
            given(alias)
        return alias

    def set_(tensor: torch.Tensor, value: torch.Tensor) -> None:
        if replacing is not None:
            replacing(tensor)
        inner.__set__(tensor, value)

    torch.Tensor.data = property(get, set_)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        if before is not None:
            torch.Tensor.data = before  # type: ignore[method-assign,assignment]
        else:
            del torch.Tensor.data


def python_number(v: Any) -> Any:
    """A numpy scalar (``np.int64(2)``) or a symbolic int as the Python number it holds;
    anything else as it is. Models build layers from numpy numbers (pytorchvideo's strides)."""
    if isinstance(v, torch.SymInt):
        return int(v)
    if type(v).__module__ == "numpy" and getattr(v, "shape", None) == () and hasattr(v, "item"):
        return v.item()
    return v


def int_shape(size: Sequence[Any]) -> Shape:
    """A ``torch.Size`` as a tuple of ints; ``()`` for a size with no int (unbacked symbolic)."""
    try:
        return tuple(map(int, size))
    except NO_SIZE:
        return ()


def shapes(obj: Any) -> tuple[Shape, ...]:
    """Shapes of every tensor in ``obj``, depth first."""
    return tuple([shape_of(t) for t in tensors_in(obj)])


def nbytes(obj: Any) -> int:
    """Bytes of the distinct tensors in ``obj`` (numel x element size)."""
    total = 0
    seen: set[int] = set()
    for t in tensors_in(obj):
        if id(t) in seen:
            continue
        seen.add(id(t))
        try:
            total += int(t.numel()) * t.element_size()
        except NO_SIZE:
            pass
    return total


__all__ = ["TENSOR_DATA", "TensorSummary", "int_shape", "nbytes", "op_tensors", "python_number", "shape_of", "shapes", "size_now",
           "summarise", "tensors_in", "watching_tensor_data"]
