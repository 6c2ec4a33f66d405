"""Pricing one operator call: its formula's cost and what an event records of
the call itself (shapes, bytes, non-tensor arguments), whatever module ran it.

A formula sees a call only through an :class:`~flopaudit.reference.registry.OpCall`:
shapes and dtypes of the tensors, the non-tensor arguments, the output shapes.
:func:`describe_inputs` writes all of that down for the inputs as they are
before the call runs (an in-place op may resize them): its ``signature`` is
what :mod:`flopaudit.reference.caching` keys priced calls by.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import torch

from flopaudit.reference.events import Shape, TensorArg
from flopaudit.reference.operators import OperatorFacts
from flopaudit.reference.registry import Category, Cost, MetaValuesNeeded, bind, make_call
from flopaudit.reference.tensors import op_tensors, python_number, shape_of, size_now, summarise, tensors_in

_Tensor = torch.Tensor
_STRIDED = torch.strided

#: Argument types a signature holds as they are (hashable values, no references to model objects).
PLAIN_TYPES = frozenset({type(None), bool, int, float, complex, str, torch.dtype, torch.device, torch.layout,
                         torch.memory_format})
_NUMBERS = frozenset({bool, int, float})


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Markers in a signature: a list of arguments starts / ends; the outputs start; which
#: tensors are one and the same object follows (see :func:`alias_pattern`).
LIST_START, LIST_END, OUTPUTS, ALIASES = _Marker("<list>"), _Marker("</list>"), _Marker("<outputs>"), _Marker("<aliases>")


def alias_pattern(tensors: Sequence[torch.Tensor]) -> tuple[int, ...] | None:
    """For tensors where one object comes more than once (``addcmul_(v, g, g)``), the index
    of each one's first occurrence (``(0, 1, 1)``); None where each is there once. Bytes are
    summed over distinct tensors, so this is what a signature needs to say of them."""
    n = len(tensors)
    if n < 3:  # the common calls: none, one or two tensors
        return (0, 0) if n == 2 and tensors[0] is tensors[1] else None
    ids = [id(t) for t in tensors]
    if len(set(ids)) == len(ids):
        return None
    return tuple([ids.index(i) for i in ids])


class Undescribable(Exception):
    """An argument a signature cannot hold by value (a generator, a symbolic size, an object, a
    sparse tensor: its stored elements are not in its shape)."""


class CallInputs(NamedTuple):
    """An operator call's inputs as they were before it ran."""

    tensors: list[torch.Tensor]
    sizes: list[Any]
    """Each tensor's ``.shape`` then (``torch.Size``), or None for a nested one."""
    signature: list[Any] | None
    """Everything a formula can read of the inputs, flat: each tensor as its
    ``torch.Size`` and dtype, plain scalars with their type, lists of numbers
    as a tuple of them and a tuple of their types, other lists element by
    element between :data:`LIST_START` and :data:`LIST_END`, the keyword
    names; None where an argument cannot be held by value (see :class:`Undescribable`)."""


def describe_inputs(args: Sequence[Any], kwargs: Mapping[str, Any]) -> CallInputs:
    """The inputs of a call, before it runs."""
    tensors: list[torch.Tensor] = []
    sizes: list[Any] = []
    signature: list[Any] = []
    try:
        _describe(args, signature, tensors, sizes)
        if kwargs:
            signature.append(tuple(kwargs))
            _describe(kwargs.values(), signature, tensors, sizes)
    except (Undescribable, RuntimeError, TypeError, ValueError):  # nested tensors, odd arguments
        tensors = op_tensors(args, kwargs)
        return CallInputs(tensors, [size_now(t) for t in tensors], None)
    return CallInputs(tensors, sizes, signature)


def describe_outputs(out: Any, signature: list[Any]) -> list[torch.Tensor]:
    """Add :data:`OUTPUTS` and ``out`` to ``signature`` as :func:`describe_inputs`
    does; the tensors in it. Raises as :func:`describe_inputs` would."""
    signature.append(OUTPUTS)
    if isinstance(out, _Tensor):
        signature.append(out.shape)
        signature.append(out.dtype)
        return [out]
    tensors: list[torch.Tensor] = []
    _describe((out,), signature, tensors, [])
    return tensors


def _describe(items: Any, signature: list[Any], tensors: list[torch.Tensor], sizes: list[Any]) -> None:
    """Describe arguments into ``signature`` (see :attr:`CallInputs.signature`),
    listing the tensors and their sizes. Raises :class:`Undescribable`; a
    nested tensor's shape raises RuntimeError. The recorder's hot path."""
    for a in items:
        kind = type(a)
        if kind in PLAIN_TYPES:
            signature.append(a)
            signature.append(kind)  # 1, 1.0 and True are equal values, not equal arguments
        elif kind is list or kind is tuple:
            if a and type(a[0]) in _NUMBERS:  # int[] / float[] / bool[]
                signature.append(tuple(a))
                signature.append(tuple(map(type, a)))
            else:
                signature.append(LIST_START)
                _describe(a, signature, tensors, sizes)
                signature.append(LIST_END)
        elif isinstance(a, _Tensor):
            if a.layout is not _STRIDED:  # a sparse tensor's nonzeros are not in its shape
                raise Undescribable
            s = a.shape
            signature.append(s)
            signature.append(a.dtype)
            tensors.append(a)
            sizes.append(s)
        else:
            raise Undescribable


class PricedCall(NamedTuple):
    """The fields of an :class:`~flopaudit.reference.events.OpEvent` that do
    not depend on where the call ran (module, custom Function, patched call)."""

    supported: bool
    """False for an operator without a formula, or whose formula failed."""
    category: Category | None
    macs: int
    extra_flops: int
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    bytes_read: int
    """0 for a view (as ``bytes_written``)."""
    bytes_written: int
    op_args: tuple[tuple[str, Any], ...]
    integer: bool = False
    """Its results are integer or boolean tensors (index arithmetic, masks), every one."""
    sparse: tuple[str, ...] = ()
    """The layouts of its sparse tensor inputs (its formula prices the stored elements, not the dense shape)."""


class OperatorCall(NamedTuple):
    """One call of an operator that has a formula, after it ran."""

    func: Any
    facts: OperatorFacts
    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    out: Any
    inputs: CallInputs


class Pricing(NamedTuple):
    priced: PricedCall
    reusable: bool
    """Whether a call with the same signature (inputs and outputs) would be
    priced the same: no nested tensor, no failed formula."""


def price(call: OperatorCall, notes: list[str]) -> Pricing:
    """Price ``call`` afresh; a failing formula leaves a note (and an unsupported call)."""
    func, facts = call.func, call.facts
    fn = facts.formula
    supported = fn is not None
    cost: Cost | None = None
    op_args: tuple[tuple[str, Any], ...] = ()
    params: dict[str, Any] | None = None
    try:
        params = bind(func, call.args, call.kwargs, facts.signature)
        op_args = scalar_args(params)
    except Exception:  # noqa: BLE001 - the schema did not bind; keep the event anyway
        pass
    inputs = summarise(call.inputs.tensors, call.inputs.sizes)
    outputs = summarise(tensors_in(call.out))
    reusable = inputs.dtypes is not None and outputs.dtypes is not None
    if fn is not None:
        try:
            cost = fn(make_call(func, call.args, call.kwargs, call.out, params, facts.name))
        except MetaValuesNeeded:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing formula is reported, not fatal
            supported = reusable = False
            notes.append(f"formula {facts.formula_name} failed on {func}: {type(exc).__name__}: {exc}")
    view = facts.view
    return Pricing(PricedCall(
        supported=supported and cost is not None,
        category=cost.category if cost is not None else None,
        macs=cost.macs if cost is not None else 0,
        extra_flops=cost.extra_flops if cost is not None else 0,
        input_shapes=inputs.shapes,
        output_shapes=outputs.shapes,
        bytes_read=0 if view else inputs.nbytes,
        bytes_written=0 if view else outputs.nbytes,
        op_args=op_args,
        integer=_integer(outputs.dtypes),
        sparse=tuple([str(t.layout) for t in call.inputs.tensors if t.layout is not _STRIDED]),
    ), reusable)


def _integer(dtypes: Sequence[torch.dtype] | None) -> bool:
    """Whether ``dtypes`` is not empty and holds integer and boolean types only."""
    return bool(dtypes) and not any(d.is_floating_point or d.is_complex for d in dtypes)  # type: ignore[union-attr]


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, torch.dtype, torch.SymInt))


_PLAIN_SCALARS = (type(None), bool, int, float, str, torch.dtype)
_PLAIN_SCALAR_TYPES = frozenset(_PLAIN_SCALARS)


def scalar_args(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The non-tensor arguments of a bound call: scalars, strings and lists of them."""
    out = []
    for k, v in params.items():
        if isinstance(v, _PLAIN_SCALARS):
            out.append((k, v))
        elif isinstance(v, _Tensor):
            continue
        elif isinstance(v, (list, tuple)):
            if _PLAIN_SCALAR_TYPES.issuperset(map(type, v)) or all(isinstance(x, _PLAIN_SCALARS) for x in v):
                out.append((k, tuple(v)))
            elif all(_is_scalar(x) for x in v):
                out.append((k, tuple(int(x) if isinstance(x, torch.SymInt) else x for x in v)))
        elif isinstance(v, torch.SymInt):
            out.append((k, int(v)))
        elif _is_scalar(v):
            out.append((k, v))
    return tuple(out)


def call_arg(v: Any) -> Any:
    """A patched call's argument as recorded: tensors by shape, scalars and
    lists of scalars as they are (numpy scalars as the Python numbers they hold:
    pytorchvideo builds its convolutions' strides from numpy integers), anything
    else by type name."""
    if isinstance(v, torch.Tensor):
        return TensorArg(shape_of(v), str(v.dtype))
    if isinstance(v, (list, tuple)):
        items = tuple(python_number(x) for x in v)
        if all(_is_scalar(x) for x in items):
            return items
    v = python_number(v)
    if _is_scalar(v):
        return v
    return f"<{type(v).__name__}>"


__all__ = ["ALIASES", "CallInputs", "OperatorCall", "PricedCall", "Pricing", "Undescribable", "call_arg", "describe_inputs",
           "alias_pattern", "describe_outputs", "price", "scalar_args"]
