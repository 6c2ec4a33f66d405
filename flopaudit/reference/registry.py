"""The formula registry: one cost formula per aten (or custom) operator.

A *formula* maps one operator call, seen only through shapes, to a
:class:`Cost`. Formulas are registered with :func:`register_formula` for one
or more operators; registering a second formula for an operator that already
has one is an error (use :func:`unregister_formula` or the
:func:`temporary_formula` context manager to replace one on purpose).

Keys are operator names as ``str(op)`` writes them: ``"aten.mm"`` for an
overload packet (all overloads), ``"aten.mm.default"`` for one overload.
``torch.library`` ops are named the same way (``"mylib.myop"``); the C++
spelling ``"mylib::myop"`` is accepted too. An overload key wins over its
packet's key.

Formulas receive an :class:`OpCall`: the call's arguments bound to the
operator schema's parameter names, with every tensor replaced by its shape (a
``torch.Size``), never its values, so that formulas work unchanged on real,
meta and fake tensors.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence, Union

import torch
from torch._ops import HigherOrderOperator, OpOverload, OpOverloadPacket


class Category(str, Enum):
    """What kind of work an operator does; every known operator has one."""

    MATMUL = "matmul"
    CONV = "conv"
    ATTENTION = "attention"
    RNN = "rnn"
    NORM = "norm"
    ACTIVATION = "activation"
    POOL = "pool"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    INTERPOLATION = "interpolation"
    EMBEDDING = "embedding"
    DATA_MOVEMENT = "data_movement"
    ZERO_COST = "zero_cost"


#: Categories whose MACs are contractions (the project's definition of MACs).
CONTRACTION_CATEGORIES: frozenset[Category] = frozenset(
    {Category.MATMUL, Category.CONV, Category.ATTENTION, Category.RNN}
)


@dataclass(frozen=True)
class Cost:
    """The cost of one operator call.

    ``macs`` are multiply-accumulates of contractions (whole batch, bias
    excluded); ``extra_flops`` is every other floating point operation the
    formula counts (bias adds, normalisation, activations, softmax, ...).
    """

    macs: int
    extra_flops: int
    category: Category

    def __post_init__(self) -> None:
        if self.macs < 0 or self.extra_flops < 0:
            raise ValueError(f"negative cost: {self}")

    @property
    def flops(self) -> int:
        """Canonical FLOPs: two per MAC plus the extra FLOPs."""
        return 2 * self.macs + self.extra_flops


Shape = torch.Size
"""How a tensor argument reaches a formula: its shape, never its values."""


#: Layouts of sparse tensors: what they store is ``_nnz()`` elements, not their dense shape.
SPARSE_LAYOUTS = frozenset({torch.sparse_coo, torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc})


@dataclass(frozen=True)
class OpCall:
    """One operator call as a formula sees it.

    ``params`` binds every schema argument by name (defaults filled in);
    tensors are :data:`Shape` objects, optional absent tensors are ``None``,
    lists of tensors are lists of shapes. ``outputs`` is the flat tuple of
    what the op returned, tensors again replaced by shapes.

    A nested tensor (``nn.TransformerEncoder`` packs a padded batch into one)
    is given by its components concatenated along their first dim
    (``(4, 16)`` and ``(6, 16)`` -> ``(10, 16)``), which prices token-wise
    ops (linear, norms, elementwise) on the real tokens; ``nested`` holds
    the components for formulas whose cost is not token-wise (attention).
    """

    op: str
    params: Mapping[str, Any]
    outputs: tuple[Any, ...]
    dtypes: Mapping[str, torch.dtype] = field(default_factory=dict)
    """Dtype of each tensor parameter (by name), for formulas that need it."""
    nested: Mapping[str, tuple[Shape, ...]] = field(default_factory=dict)
    """Component shapes of each nested-tensor parameter (by name)."""
    nonzeros: Mapping[str, int] = field(default_factory=dict)
    """Stored elements (``_nnz()``) of each sparse tensor parameter (by name); its shape is its
    dense shape."""
    sparse_products: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Multiply-adds of ``left @ right`` for each ordered pair of 2-D sparse (COO or CSR)
    parameters holding data, from where their nonzeros fall (:func:`sparse_product_macs`)."""

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def shape(self, *names: str) -> Shape:
        """The shape of the first of ``names`` that is a tensor parameter."""
        return self._first_shape((self.params.get(name) for name in names), f"none of {names} is a tensor argument")

    @property
    def out(self) -> Shape:
        """The shape of the first tensor output."""
        return self._first_shape(self.outputs, "no tensor output")

    @property
    def first_input(self) -> Shape:
        """The shape of the first tensor parameter (``self``/``input`` usually)."""
        return self._first_shape(self.params.values(), "no tensor argument")

    def _first_shape(self, values: Iterable[Any], missing: str) -> Shape:
        """The first of ``values`` that is a tensor's shape; ``KeyError(missing)`` if none is."""
        for value in values:
            if isinstance(value, torch.Size):
                return value
        raise KeyError(f"{self.op}: {missing}")


Formula = Callable[[OpCall], Cost]
Target = Union[str, OpOverload, OpOverloadPacket]

_FORMULAS: dict[str, Formula] = {}
_CHANGES = [0]
"""How many times :data:`_FORMULAS` changed (see :func:`generation`)."""


def generation() -> int:
    """A number that changes whenever a formula is registered, removed or replaced: what was
    looked up in the registry before is still right while it stays the same."""
    return _CHANGES[0]

def op_key(target: Target) -> str:
    """Normalise an operator (packet, overload, higher-order operator or name) to its
    registry key (``torch.ops.higher_order.flex_attention`` -> ``"higher_order.flex_attention"``)."""
    if isinstance(target, (OpOverload, OpOverloadPacket)):
        return str(target)
    if isinstance(target, HigherOrderOperator):
        return f"{target.namespace}.{target.name()}"
    if isinstance(target, str):
        return target.replace("::", ".")
    raise TypeError(f"not an operator: {target!r}")


def register_formula(*targets: Target) -> Callable[[Formula], Formula]:
    """Decorator: register one formula for every operator in ``targets``.

    Raises ``ValueError`` if any target already has a formula (nothing is
    registered in that case).
    """
    if not targets:
        raise ValueError("register_formula needs at least one operator")
    keys = [op_key(t) for t in targets]

    def decorator(fn: Formula) -> Formula:
        taken = [k for k in keys if k in _FORMULAS]
        dupes = {k for k in keys if keys.count(k) > 1}
        if taken or dupes:
            raise ValueError(f"formula already registered for: {sorted(set(taken) | dupes)}")
        for k in keys:
            _FORMULAS[k] = fn
        _CHANGES[0] += 1
        return fn

    return decorator


def unregister_formula(*targets: Target) -> None:
    """Remove the formulas of ``targets`` (missing ones are an error)."""
    keys = [op_key(t) for t in targets]
    missing = [k for k in keys if k not in _FORMULAS]
    if missing:
        raise KeyError(f"no formula registered for: {missing}")
    for k in keys:
        del _FORMULAS[k]
    _CHANGES[0] += 1


@contextlib.contextmanager
def temporary_formula(targets: Target | Sequence[Target], fn: Formula) -> Iterator[Formula]:
    """Register ``fn`` for ``targets`` inside the block only.

    Targets that already had a formula get it back afterwards; the old
    formula is replaced for the duration (this is the one sanctioned way to
    override a built-in formula).
    """
    if isinstance(targets, (str, OpOverload, OpOverloadPacket)):
        targets = [targets]
    keys = [op_key(t) for t in targets]
    saved = {k: _FORMULAS.pop(k) for k in keys if k in _FORMULAS}
    try:
        register_formula(*keys)(fn)
        yield fn
    finally:
        for k in keys:
            _FORMULAS.pop(k, None)
        _FORMULAS.update(saved)
        _CHANGES[0] += 1


def lookup(op: OpOverload | str) -> Formula | None:
    """The formula for ``op``: its overload's, else its packet's, else None."""
    if isinstance(op, OpOverload):
        return _FORMULAS.get(str(op)) or _FORMULAS.get(str(op._overloadpacket))
    key = op_key(op)
    found = _FORMULAS.get(key)
    if found is None and key.count(".") >= 2:
        found = _FORMULAS.get(key.rsplit(".", 1)[0])
    return found


def registered() -> dict[str, Formula]:
    """A copy of the registry: key -> formula."""
    return dict(_FORMULAS)


def formula_name(fn: Formula) -> str:
    """A stable name for a formula (``module.qualname``)."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# --------------------------------------------------------------------------
# Building OpCalls from real/meta/fake tensors.

class MetaValuesNeeded(NotImplementedError):
    """Pricing needs values that a tensor on the meta device does not hold: the count cannot be made
    there (raised through the recorder, never turned into an unsupported operator)."""


def nested_components(t: torch.Tensor) -> tuple[Shape, ...]:
    """The component shapes of a nested tensor: a strided one's sizes, a jagged one's (``layout=torch.jagged``,
    a Python tensor subclass with ``offsets``, whose ``_nested_tensor_size`` crashes the process) from the
    lengths of its ragged dimension (:class:`MetaValuesNeeded` on the meta device, where they are not held)."""
    with torch._C._DisableTorchDispatch():  # a query of ours, not an operator of the model
        if t.layout == torch.jagged:
            if t.offsets().is_meta:
                raise MetaValuesNeeded("a jagged nested tensor's lengths are the values of its offsets, which a "
                                       "tensor on the meta device does not hold: its operators cannot be priced "
                                       "on meta tensors")
            lengths = t.lengths()
            if lengths is None:
                offsets = t.offsets().tolist()
                lengths = [b - a for a, b in zip(offsets, offsets[1:])]
            else:
                lengths = lengths.tolist()
            ragged = t._ragged_idx
            return tuple(torch.Size(int(n) if i == ragged else int(d) for i, d in enumerate(t.shape) if i)
                         for n in lengths)
        sizes = t._nested_tensor_size().tolist()
    return tuple(torch.Size(s) for s in sizes)


def concatenated(components: Sequence[Shape]) -> Shape:
    """Components joined along their first dim; ``(numel,)`` if they differ past it."""
    if components and all(len(c) >= 1 and c[1:] == components[0][1:] for c in components):
        return torch.Size((sum(c[0] for c in components), *components[0][1:]))
    return torch.Size((sum(math.prod(c) for c in components),))


def _shape_of(t: torch.Tensor) -> Shape:
    if t.is_nested:
        return concatenated(nested_components(t))
    return torch.Size(map(int, t.shape))


_NOT_CONTAINERS = (type(None), bool, int, float, str)


def to_shapes(value: Any) -> Any:
    """Replace every tensor in ``value`` (nested lists/tuples) by its shape."""
    if isinstance(value, torch.Tensor):
        return _shape_of(value)
    if isinstance(value, list):
        if _flat(value):
            return list(value)
        return [to_shapes(v) for v in value]
    if isinstance(value, tuple) and not isinstance(value, torch.Size):
        if _flat(value):
            return value
        return tuple(to_shapes(v) for v in value)
    return value


_NOT_CONTAINER_TYPES = frozenset(_NOT_CONTAINERS)


def _flat(values: Sequence[Any]) -> bool:
    """No tensor or container among ``values`` (all ``_NOT_CONTAINERS``)."""
    if _NOT_CONTAINER_TYPES.issuperset(map(type, values)):  # the common case, without a Python loop
        return True
    return all(isinstance(v, _NOT_CONTAINERS) for v in values)


class Signature(NamedTuple):
    """An operator's schema arguments, as :func:`bind` reads them."""

    positional: tuple[str, ...]
    """Names of the arguments that can be passed by position."""
    parameters: tuple[tuple[str, Any], ...]
    """(name, default) of every argument (None where it has no default)."""


def signature(op: OpOverload) -> Signature:
    """The schema arguments of ``op``."""
    schema_args = op._schema.arguments
    return Signature(tuple(a.name for a in schema_args if not a.kwarg_only),
                     tuple((a.name, a.default_value if a.has_default_value() else None) for a in schema_args))


def bind(op: OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any],
         sig: Signature | None = None) -> dict[str, Any]:
    """Bind a call's args/kwargs to the op schema's names, defaults filled in
    (``sig``: :func:`signature` of ``op``, if the caller has it already)."""
    positional, every = sig if sig is not None else signature(op)
    params: dict[str, Any] = dict(zip(positional, args))
    if len(params) < len(every):
        for name, default in every:
            if name not in params:
                params[name] = kwargs.get(name, default)
    for k, v in kwargs.items():
        params.setdefault(k, v)
    return params


def make_call(op: OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any], out: Any,
              params: dict[str, Any] | None = None, name: str | None = None) -> OpCall:
    """Build the :class:`OpCall` a formula sees from a concrete call
    (``params``: the call already bound with :func:`bind`; ``name``: ``str(op)``)."""
    if params is None:
        params = bind(op, args, kwargs)
    dtypes = {}
    shaped = {}
    nested = {}
    nonzeros = {}
    for k, v in params.items():
        if isinstance(v, torch.Tensor):
            dtypes[k] = v.dtype
            if v.layout in SPARSE_LAYOUTS:
                nonzeros[k] = int(v._nnz())
            if v.is_nested:
                nested[k] = nested_components(v)
                shaped[k] = concatenated(nested[k])
            else:
                shaped[k] = torch.Size(map(int, v.shape))
        elif isinstance(v, (list, tuple)):
            shaped[k] = to_shapes(v)
        else:
            shaped[k] = v
    outs = out if isinstance(out, (tuple, list)) else (out,)
    products = {}
    if len(nonzeros) >= 2:  # (rare: a product of two sparse tensors)
        products = {(a, b): n for a in nonzeros for b in nonzeros if a != b
                    for n in (sparse_product_macs(params[a], params[b]),) if n is not None}
    return OpCall(
        op=name or str(op),
        params=shaped,
        outputs=tuple(to_shapes(o) for o in outs),
        dtypes=dtypes,
        nested=nested,
        nonzeros=nonzeros,
        sparse_products=products,
    )


def sparse_product_macs(left: torch.Tensor, right: torch.Tensor) -> int | None:
    """Multiply-adds of ``left @ right`` for two 2-D sparse tensors (COO or CSR) that hold data:
    one per stored element ``(i, k)`` of ``left`` and stored element of row ``k`` of ``right``
    (what a sparse-sparse kernel multiplies); None where they cannot be read (another layout,
    meta or fake tensors, shapes that do not chain)."""
    from torch._subclasses.fake_tensor import FakeTensor

    if (left.dim() != 2 or right.dim() != 2 or left.shape[1] != right.shape[0]
            or left.layout not in _ROWS_READABLE or right.layout not in _ROWS_READABLE
            or left.is_meta or right.is_meta or isinstance(left, FakeTensor) or isinstance(right, FakeTensor)):
        return None
    with torch._C._DisableTorchDispatch(), torch.no_grad():  # reading indices: not the model's operators
        if left.layout == torch.sparse_csr:
            columns = left.col_indices()
        else:
            columns = left.coalesce().indices()[1]
        if right.layout == torch.sparse_csr:
            per_row = right.crow_indices().diff()
        else:
            per_row = torch.bincount(right.coalesce().indices()[0], minlength=right.shape[0])
        return int(per_row[columns].sum())


_ROWS_READABLE = (torch.sparse_coo, torch.sparse_csr)


def cost_of(op: OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any] | None, out: Any) -> Cost | None:
    """Apply the registered formula to a call (None if the op has none).

    ``args``/``kwargs``/``out`` may hold real, meta or fake tensors; the op
    itself is not run.
    """
    fn = lookup(op)
    if fn is None:
        return None
    return fn(make_call(op, args, kwargs or {}, out))


# --------------------------------------------------------------------------
# Small helpers shared by formula modules.

def numel(shape: Iterable[int] | None) -> int:
    """Number of elements of a shape (0 for None)."""
    if shape is None:
        return 0
    return int(math.prod(int(s) for s in shape))


def zero_cost(category: Category, *targets: Target, name: str = "") -> Formula:
    """Register the operators ``targets`` as known and free (0 MACs, 0 FLOPs).

    ``name`` labels the group (for coverage reports and debugging).

    Used for aliasing views, allocation, metadata and pure data movement:
    these are *known* operators, never reported as unsupported.
    """

    def free(call: OpCall) -> Cost:
        return Cost(0, 0, category)

    free.__qualname__ = f"zero_cost[{name or category.value}]"
    free.__doc__ = f"Known operator with no arithmetic ({category.value}): 0 MACs, 0 FLOPs."
    register_formula(*targets)(free)
    return free


__all__ = [
    "Category",
    "CONTRACTION_CATEGORIES",
    "Cost",
    "Formula",
    "OpCall",
    "Shape",
    "Target",
    "bind",
    "cost_of",
    "formula_name",
    "generation",
    "lookup",
    "make_call",
    "MetaValuesNeeded",
    "nested_components",
    "numel",
    "op_key",
    "register_formula",
    "registered",
    "temporary_formula",
    "to_shapes",
    "unregister_formula",
    "zero_cost",
]
