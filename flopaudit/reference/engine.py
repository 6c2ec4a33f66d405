"""The recording engine: a ``TorchDispatchMode`` plus module tracking.

:func:`record` runs ``model(*args, **kwargs)`` once and returns one
:class:`OpEvent` per aten (or custom) operator call, attributed to the
innermost module running it, and one :class:`ModuleCall` per module call.

Module tracking uses *global* module forward pre/post hooks
(``torch.nn.modules.module.register_module_forward_*_hook``) registered for
the duration of the call and removed in ``finally``; they ignore modules that
are not part of the counted model. Global hooks, unlike per-module hooks,
leave the model's own hook dictionaries empty, so fast paths that refuse to
run when a module has hooks (``nn.TransformerEncoderLayer``'s fused
``_transformer_encoder_layer_fwd``) run as they would without the counter.
The post hook is ``always_call`` so an exception cannot leave the module
stack wrong. Nothing on the model is changed; train/eval flags are left as
they are.

The dispatch mode sees every operator below autograd, so functional calls
(``F.interpolate``, ``torch.matmul``, ``@``, ``einsum``, ``x + y``, SDPA,
RNNs) are seen like module calls. Composite operators are seen as what they
decompose into; an operator that reaches the mode without a formula but with
a composite decomposition is decomposed (its parts are recorded); a
``torch.library.custom_op`` without a formula is run through its Python
kernel so that the operators it dispatches are recorded (listed in
``Recording.traced``); anything else without a formula is recorded with
``supported=False``.

Process-wide caches keep the counter's own cost down, none changing what
is recorded (``tests/test_reference_replay.py`` checks that over the zoo;
:func:`clear_caches` empties them all, :data:`PROCESS_CACHES`). The two
that decide what runs:

- an operator call is priced once per process for each key of what its
  formula reads (argument shapes, dtypes and scalars, output shapes and
  dtypes, the formula itself): :data:`_PRICED`;
- a call of a plain ``torch.nn`` leaf alike to one recorded before (same
  class, attributes, parameters, buffers, input and settings) runs outside
  the mode and gets that call's operators again (``record(replay_leaves=...)``).

The records themselves (:class:`OpEvent`, :class:`ModuleCall`) are built
after the forward pass, from what the pass kept (``torch.Size`` objects and
priced entries), each once per process: a record equal to one built before
is that same (immutable) object (:data:`_EVENTS_MADE`, :data:`_CALLS_MADE`),
so a model counted again gets the very records of its last count, and
``count`` reuses their summaries. The cyclic garbage collector is paused
meanwhile (:func:`gc_paused`).

``record(..., patch=...)`` also replaces the named Python callables
(``"torch.nn.functional.relu"``, ``"torch.Tensor.matmul"``) by wrappers for
the duration of the call, as a counter that monkeypatches them does (ptflops'
pytorch engine): each call through them is recorded as a zero-cost event
``py:<path>`` carrying the call's arguments (tensors as :class:`TensorArg`),
before the operators it dispatches. Calls made by the recorder itself
(decompositions, formulas) are not recorded; calls inside a traced custom
op's Python kernel are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import importlib
import itertools
import math
import operator
import threading
from collections import abc
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, NamedTuple, Sequence, TypeVar

import torch
from torch import nn
from torch.nn.modules import module as _module_mod
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from flopaudit.inputs import iter_tensors
from flopaudit.reference.module_rules import _RULES as _MODULE_RULES
from flopaudit.reference.module_rules import module_rule_for
from flopaudit.reference.registry import (
    Category,
    Cost,
    bind,
    concatenated,
    formula_name,
    generation,
    lookup,
    make_call,
    nested_components,
)

aten = torch.ops.aten

#: Metadata queries that are not operator calls worth recording.
def _meta_batch_norm(args: Any, kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What the batch-norm meta kernels return, built directly.

    # NB: torch's meta batch norm runs a Python decomposition that takes most
    # of a meta-device count of a conv net; the shapes are trivial: the output
    # is like the input, the saved statistics are (C,) in at least float32.
    """
    x = args[0]
    stat = torch.empty((x.shape[1] if x.dim() > 1 else x.shape[0],),
                       dtype=torch.promote_types(x.dtype, torch.float32), device="meta")
    return torch.empty_like(x), stat, torch.empty_like(stat)


#: Ops whose meta kernels are slow but whose outputs are simple to build;
#: used only when every tensor argument is on the meta device.
_META_SHORTCUTS: dict[Any, Any] = {
    aten._native_batch_norm_legit_no_training.default: _meta_batch_norm,
    aten._native_batch_norm_legit.default: _meta_batch_norm,
    aten.native_batch_norm.default: _meta_batch_norm,
}


def _all_meta(args: Any, kwargs: Any) -> bool:
    tensors = _tensors((args, kwargs))
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)


_SKIP = {
    aten.sym_is_contiguous.default,
    aten.is_contiguous.default,
    aten.is_contiguous.memory_format,
    aten.is_strides_like_format.default,
    aten.is_non_overlapping_and_dense.default,
    aten.size.default,
    aten.sym_size.default,
    aten.sym_size.int,
    aten.stride.default,
    aten.sym_stride.default,
    aten.storage_offset.default,
    aten.sym_storage_offset.default,
    aten.numel.default,
    aten.sym_numel.default,
    aten.dim.default,
    torch.ops.prim.layout.default,
    torch.ops.prim.device.default,
}

Shape = tuple[int, ...]

#: Prefix of the events recording calls of patched Python callables.
PATCHED_CALL_PREFIX = "py:"


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument of a patched Python call (``py:`` events), by shape."""

    shape: Shape


@dataclass(frozen=True, slots=True)
class OpEvent:
    """One operator call, its cost and where in the module tree it ran."""

    op: str
    """Operator overload, e.g. ``"aten.convolution.default"``."""
    module_path: str
    """Dotted path of the innermost module running the op (``""`` = root)."""
    module_type: str
    """Class name of that module."""
    module_stack: tuple[str, ...]
    """Paths of the running modules, root first, innermost last."""
    in_leaf: bool
    """True if the innermost module has no child modules."""
    category: Category | None
    """``None`` only for unsupported operators."""
    macs: int
    extra_flops: int
    bytes_read: int
    bytes_written: int
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    supported: bool = True
    formula: str = ""
    """Name of the formula (or module rule) that priced the call."""
    call_index: int = -1
    """Index of the innermost :class:`ModuleCall` in the call list (-1: none)."""
    op_args: tuple[tuple[str, Any], ...] = ()
    """The call's non-tensor arguments by schema name (``stride``, ``transposed``,
    ``groups``, ``dim``...): scalars, strings and lists of them."""
    traced_from: str = ""
    """The formula-less custom op whose Python kernel dispatched this op ('' if
    none): counters that see that custom op as one opaque call do not see this one."""
    autograd_function: str = ""
    """Class name of the custom ``torch.autograd.Function`` whose ``forward`` ran
    this op ('' if none): a JIT trace records that Function as one opaque node."""
    patched_in: str = ""
    """Path of the outermost patched Python callable (``record(patch=...)``)
    whose call was running when this op, or patched call, was recorded ('' if
    none): a ruleset pricing that call's ``py:`` event can leave its inner ops out."""
    patched_stack: tuple[str, ...] = ()
    """Paths of every patched call running then, outermost first (``patched_in``
    is the first): a recording patched for several rulesets at once serves
    each one through the calls of its own ``patched_functions``."""

    def arg(self, name: str, default: Any = None) -> Any:
        """A non-tensor argument of the call, by schema name."""
        return dict(self.op_args).get(name, default)

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.extra_flops


@dataclass(frozen=True, slots=True)
class ModuleCall:
    """One call of one module (a module called twice gives two records).

    ``events`` is the half-open range of event indices recorded during the
    call, children's included; ``attrs`` are the module's public scalar
    hyper-parameters (``in_channels``, ``kernel_size``, ``affine``...) and
    ``param_shapes`` its own (non-recursive) parameters, so that rulesets
    can reproduce module-hook counters from records alone.
    """

    path: str
    module_type: str
    module_class: str
    stack: tuple[str, ...]
    in_leaf: bool
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    attrs: tuple[tuple[str, Any], ...]
    param_shapes: tuple[tuple[str, Shape], ...]
    events: tuple[int, int]
    parent: int = -1
    """Index of the enclosing module call in the call list (-1 for the root call)."""
    rule: str = ""
    """Name of the custom module rule that priced this call ('' if none)."""
    aliases: tuple[str, ...] = ()
    """Every name of the module, when it has more than one: the paths a walk
    of ``named_children()`` from the root reaches it by (what
    ``nn.Module.apply`` and hook counters' tree walks visit), ``path`` first.
    Empty for a module with a single name. A module shared by two parents
    (``a.shared is b.shared``) has two; one assigned twice to the same parent
    has one (``named_children`` skips the repeat)."""

    @property
    def names(self) -> tuple[str, ...]:
        """All names of the module (``aliases``, or just ``path``)."""
        return self.aliases or (self.path,)


@dataclass
class Recording:
    """What one forward pass produced."""

    events: list[OpEvent] = field(default_factory=list)
    calls: list[ModuleCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    traced: dict[str, int] = field(default_factory=dict)
    """Formula-less custom ops counted through their Python kernel: op -> calls."""


# --------------------------------------------------------------------------
# Tensor helpers (shapes and sizes only, never values).

def _shape(t: torch.Tensor) -> Shape:
    try:
        return tuple(map(int, t.shape))
    except (RuntimeError, TypeError, ValueError):  # nested / unbacked symbolic
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
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return ()


_Tensor = torch.Tensor


def _tensors(obj: Any, out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Every tensor in ``obj`` (as :func:`iter_tensors`), as a list: the
    recorder's hot path, with the common cases (a tensor, a flat tuple or
    list of tensors and scalars) tested first."""
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
                _tensors(x, out)
    elif isinstance(obj, dict) or (not isinstance(obj, _NOT_CONTAINERS) and isinstance(obj, abc.Mapping)):
        for x in obj.values():
            _tensors(x, out)
    return out


_NOT_CONTAINERS = (type(None), bool, int, float, str, torch.dtype, torch.device)


def _summary(tensors: Sequence[torch.Tensor]) -> tuple[tuple[Shape, ...], int, tuple[Any, ...] | None]:
    """Shapes, bytes of the distinct tensors and dtypes (None if one is
    nested) of ``tensors`` as they are now."""
    return _summary_before(tensors, [_size_now(t) for t in tensors])


def _size_now(t: torch.Tensor) -> Any:
    """``t.shape``, or None where it has none (a nested tensor): :func:`_summary_before` reads that as nested."""
    try:
        return t.shape
    except (RuntimeError, TypeError, ValueError):
        return None


def _op_tensors(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[torch.Tensor]:
    """The tensors among an operator's arguments. Schema-typed: a list whose
    first element is a number is an ``int[]``/``float[]`` (stride, padding,
    sizes) and holds no tensor."""
    out: list[torch.Tensor] = []
    for x in args:
        if isinstance(x, _Tensor):
            out.append(x)
        elif isinstance(x, (list, tuple)) and x and not isinstance(x[0], (int, float)):
            _tensors(x, out)
    if kwargs:
        _tensors(kwargs, out)
    return out


def _summary_before(tensors: Sequence[torch.Tensor], sizes: Sequence[Any]) -> tuple[
        tuple[Shape, ...], int, tuple[Any, ...] | None]:
    """Shapes, bytes of the distinct tensors and dtypes (None if one is
    nested) of ``tensors``, from the ``sizes`` they had before the op ran."""
    shapes = []
    nested = False
    read = 0
    seen: set[int] = set()
    for t, s in zip(tensors, sizes):
        try:
            shape = tuple(map(int, s))
            n = math.prod(shape)
        except (RuntimeError, TypeError, ValueError):  # nested / unbacked symbolic
            shape = _shape(t)
            nested = nested or bool(getattr(t, "is_nested", False))
            n = -1
        shapes.append(shape)
        if id(t) not in seen:
            seen.add(id(t))
            try:
                read += (n if n >= 0 else int(t.numel())) * t.element_size()
            except (RuntimeError, TypeError, ValueError):
                pass
    return tuple(shapes), read, (None if nested else tuple([t.dtype for t in tensors]))


#: ``torch.nn`` leaf classes whose ``forward`` is a fixed use of ``torch.nn.functional``
#: on its one input and the module's own attributes, parameters and buffers:
#: the operators a call dispatches follow from those (see :func:`_state_key`).
_REPLAYABLE: frozenset[type] = frozenset({
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear, nn.Identity, nn.Flatten,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish,
    nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.LogSoftmax, nn.Softplus,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
})

#: ``nn.Module`` bookkeeping (hooks, children, parameters and buffers, read apart) left out of a state key.
_MODULE_INTERNALS = frozenset({
    "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "_backward_pre_hooks", "_backward_hooks",
    "_is_full_backward_hook", "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
})

_UNSEEN = object()

#: Operators of replayable leaf calls, by key (module state, input, context): (the patched
#: callable they ran inside, or ""; (op info, priced) each); see :meth:`_Recorder._learn`.
_TEMPLATES: dict[tuple[Any, ...], tuple[str, tuple[tuple[Any, Any], ...]]] = {}
_TEMPLATES_MAX = 10_000
#: A :class:`ModuleCall`'s attributes, parameter shapes and class path, by :func:`_state_key` (which decides them).
_INFO_BY_STATE: dict[int, tuple[Any, Any, str]] = {}


#: ``type(module)`` -> (the keys of its first instance's ``__dict__``, :func:`_state_names` of them).
_STATE_KEYS: dict[type, tuple[Any, Any]] = {}


def _keys_read(module: nn.Module, cache: dict[type, tuple[Any, Any]], select: Any) -> Any:
    """``select(module.__dict__)``, remembered per class in ``cache`` while an
    instance has the same attribute names as the one it was computed for."""
    d = module.__dict__
    known = cache.get(type(module))
    if known is None or known[0] != d.keys():  # another set of attributes than the class's first instance
        known = (frozenset(d), select(d))
        cache[type(module)] = known
    return known[1]


def _state_names(d: Mapping[str, Any]) -> tuple[tuple[str, ...], Any]:
    """The attribute names a state key reads, and what reads their values from a ``__dict__`` as a tuple."""
    names = tuple(k for k in d if k not in _MODULE_INTERNALS)
    return names, (operator.itemgetter(*names) if len(names) > 1
                   else (lambda d: (d[names[0]],)) if names else (lambda d: ()))


def _state_key(module: nn.Module) -> int | None:
    """Everything of a replayable module that its forward reads, as a
    number (equal states, equal numbers: :data:`_STATE_NUMBERS`): its class,
    every attribute (plain values, or lists and tuples of them, with their
    types), its parameters and buffers by shape, dtype, device and
    ``requires_grad``. None (not replayable) if an attribute holds anything
    else, or if it is in training mode with buffers (a train-mode batch norm
    writes them: the buffer guard must see that).

    The number of a module seen before is reused while its attributes are the
    same objects (and hold no list, which could change in place) and its
    parameters and buffers have the same metadata (:data:`_STATE_MEMO`)."""
    if module.training and any(b is not None for b in module._buffers.values()):
        return None
    d = module.__dict__
    names, read_values = _keys_read(module, _STATE_KEYS, _state_names)
    values = read_values(d)
    tensors = [(k, None) if p is None else (k, type(p), p.shape, p.dtype, p.device, p.requires_grad)
               for k, p in module._parameters.items()] if module._parameters else []
    if module._buffers:
        tensors += [(k, None) if b is None else (k, type(b), b.shape, b.dtype, b.device)
                    for k, b in module._buffers.items()]
    cls = type(module)
    memo = _STATE_MEMO.get(id(module))
    if (memo is not None and memo[0] is names and memo[1] is cls and all(map(_is, values, memo[2]))
            and memo[3] == tensors):
        return memo[4]
    types = tuple(map(type, values))
    plain = list(values)
    memoizable = True
    for i, t in enumerate(types):
        if t in _PLAIN_KEYS:
            continue
        if t is not tuple and t is not list:
            return None
        v = values[i]
        element_types = tuple(map(type, v))
        if not _PLAIN_KEYS.issuperset(element_types):
            return None
        memoizable = memoizable and t is tuple
        plain[i] = (v if t is tuple else tuple(v), element_types)
    key = (cls, names, types, tuple(plain), *tensors)
    state = _STATE_NUMBERS.get(key)
    if state is None:
        # Numbers are never given twice: keys made with forgotten ones just stop matching.
        state = _remember(_STATE_NUMBERS, key, next(_NEXT_STATE_NUMBER), _TEMPLATES_MAX)
    if memoizable:
        # The attribute values are held (so their ids stay theirs): the state is a
        # function of them, of the class (``names`` are the class's) and of ``tensors``.
        _remember(_STATE_MEMO, id(module), (names, cls, values, tensors, state), _TEMPLATES_MAX)
    return state


_is = operator.is_

#: A replayable module's state (class, attributes with their types, tensor
#: metadata: see :func:`_state_key`) -> its number, which stands for it in
#: the keys of :data:`_TEMPLATES` and :data:`_INFO_BY_STATE` (cheap to hash).
_STATE_NUMBERS: dict[tuple[Any, ...], int] = {}
_NEXT_STATE_NUMBER = itertools.count()

#: ``id(module)`` -> (attribute names read, class, their values, parameter and
#: buffer metadata, the state's number): see :func:`_state_key`.
_STATE_MEMO: dict[int, tuple[tuple[str, ...], type, tuple[Any, ...], list[Any], int]] = {}


class _Unkeyable(Exception):
    """An argument :func:`_key_into` cannot describe by value."""


#: Argument types a call key holds as they are (hashable values, no references to model objects).
_PLAIN_KEYS = frozenset({type(None), bool, int, float, complex, str, torch.dtype, torch.device, torch.layout,
                         torch.memory_format})
_NUMBERS = frozenset({bool, int, float})
_LIST, _END, _OUT = object(), object(), object()


def _key_into(items: Any, key: list[Any], tensors: list[torch.Tensor], sizes: list[Any]) -> None:
    """Describe an operator's arguments into ``key``: tensors by ``.shape``
    and dtype (and listed in ``tensors``, their shapes in ``sizes``), lists
    of numbers as tuples, lists of tensors element-wise, plain scalars as
    they are. Raises :class:`_Unkeyable` on anything else (a generator, a
    symbolic size); a nested tensor's shape raises RuntimeError. The
    recorder's hot path."""
    for a in items:
        if isinstance(a, _Tensor):
            s = a.shape
            key.append(s)
            key.append(a.dtype)
            tensors.append(a)
            sizes.append(s)
        elif type(a) in _PLAIN_KEYS:
            key.append(a)
            key.append(type(a))  # 1, 1.0 and True are equal keys, not equal arguments
        elif type(a) is list or type(a) is tuple:
            if a and type(a[0]) in _NUMBERS:  # int[] / float[] (schema lists are of one type)
                key.append(tuple(a))
            else:
                key.append(_LIST)
                _key_into(a, key, tensors, sizes)
                key.append(_END)
        else:
            raise _Unkeyable


class _Priced(NamedTuple):
    """The fields of an :class:`OpEvent` that do not depend on where the call
    ran (module, custom Function, patched call): what a key of the call
    (:func:`_key_into`) decides, so what :data:`_PRICED` and replayed leaf
    calls reuse."""

    category: Category | None
    macs: int
    extra_flops: int
    bytes_read: int
    bytes_written: int
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    supported: bool
    op_args: tuple[tuple[str, Any], ...]


#: Priced calls by key (:func:`_key_into` of the inputs, then of the
#: outputs, after the op and its formula): formulas read only shapes,
#: dtypes and scalar arguments, so a call alike in all of them is priced
#: once per process. The formula is part of the key, so registering another
#: one re-prices. Cleared when it reaches :data:`_PRICED_MAX` entries (an
#: entry and its key take about 1.8 kB: 40 torchvision models leave ~3600).
_PRICED: dict[tuple[Any, ...], _Priced] = {}
_PRICED_MAX = 20_000

_V = TypeVar("_V")


def _remember(cache: dict[Any, _V], key: Any, value: _V, limit: int = _PRICED_MAX) -> _V:
    """``cache[key] = value``, the cache emptied first once it holds ``limit``
    entries (a bounded process cache: what it forgets is built again when
    next needed). Returns ``value``."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def _int_shapes(sizes: Sequence[Any]) -> tuple[Shape, ...]:
    """``torch.Size`` objects (or shapes) as tuples of ints."""
    try:
        return tuple([_INT_SHAPES.get(s) or _new_int_shape(s) for s in sizes])
    except (RuntimeError, TypeError, ValueError):  # a symbolic size (unhashable; unbacked: no int)
        return tuple([_int_shape(s) for s in sizes])


#: Events built by :meth:`_Recorder._materialize`, by what decides them: (``id`` of the op
#: info, of the priced call, module path, type, stack, leaf, call index, custom Function,
#: patched calls) -> (the op info and the priced call, held so that their ``id`` stay theirs;
#: the event). A recording alike to one before (a model counted again) gets the same event
#: objects, which :func:`count`'s summaries recognise by identity.
_EVENTS_MADE: dict[tuple[Any, ...], tuple[Any, _Priced, OpEvent]] = {}

#: Module-call records built by :meth:`_Recorder._module_call`, by all of their fields (the
#: sizes as ``torch.Size``, the module's facts by the ``id`` of their :func:`_interned` tuple)
#: -> (those facts, held so that their ``id`` stays theirs; the record): see :data:`_EVENTS_MADE`.
_CALLS_MADE: dict[tuple[Any, ...], tuple[tuple[Any, Any, str], ModuleCall]] = {}

#: A module's facts in a :class:`ModuleCall` (attributes, parameter shapes, class path) with
#: the types of the attribute values -> the one tuple standing for them.
_INFOS: dict[tuple[Any, ...], tuple[Any, Any, str]] = {}


def _interned(info: tuple[Any, Any, str]) -> tuple[Any, Any, str]:
    """The one object for module facts equal to ``info``, attribute values of
    the same types (``1``, ``1.0`` and ``True`` are equal, not alike)."""
    key = (info, tuple([(type(v), tuple(map(type, v)) if isinstance(v, tuple) else ()) for _, v in info[0]]))
    try:
        known = _INFOS.get(key)
    except TypeError:  # an attribute value that cannot be hashed: not shared
        return info
    return known if known is not None else _remember(_INFOS, key, info)


#: Sizes seen (``torch.Size`` of ints, equal to and hashing as the tuple) -> the tuple of ints.
_INT_SHAPES: dict[Any, Shape] = {}


def _new_int_shape(size: Sequence[Any]) -> Shape:
    # TypeError for a symbolic size (unhashable): the caller takes the slow path.
    return _remember(_INT_SHAPES, size, tuple(map(int, size)))


def _int_shape(size: Sequence[Any]) -> Shape:
    try:
        return tuple(map(int, size))
    except (RuntimeError, TypeError, ValueError):
        return ()


def _shapes_of(tensors: Sequence[torch.Tensor]) -> tuple[Shape, ...]:
    return tuple([_shape(t) for t in tensors])


def _bytes_of(tensors: Sequence[torch.Tensor]) -> int:
    """Bytes of the distinct tensors (numel x element size)."""
    total = 0
    seen: set[int] = set()
    for t in tensors:
        key = id(t)
        if key in seen:
            continue
        seen.add(key)
        try:
            total += int(t.numel()) * t.element_size()
        except (RuntimeError, TypeError, ValueError):
            pass
    return total


def shapes(obj: Any) -> tuple[Shape, ...]:
    """Shapes of every tensor in ``obj``, depth first."""
    return _shapes_of(_tensors(obj))


def nbytes(obj: Any) -> int:
    """Bytes of the distinct tensors in ``obj`` (numel x element size)."""
    return _bytes_of(_tensors(obj))


def _is_view(func: torch._ops.OpOverload) -> bool:
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str, torch.dtype, torch.SymInt))


_PLAIN_SCALARS = (type(None), bool, int, float, str, torch.dtype)
_PLAIN_SCALAR_TYPES = frozenset(_PLAIN_SCALARS)


def _scalar_args(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
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


_ATTR_TYPES = (bool, int, float, str)
_ATTR_SET = frozenset(_ATTR_TYPES)

#: ``type(module)`` -> (the keys of its first instance's ``__dict__``, those of them that are public, sorted).
_PUBLIC_KEYS: dict[type, tuple[Any, Any]] = {}


def _public_names(d: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in d if k[:1] != "_"))


def _module_attrs(module: nn.Module) -> tuple[tuple[str, Any], ...]:
    """The module's public scalar attributes (and tuples of scalars), sorted by name."""
    d = module.__dict__
    out = []
    for k in _keys_read(module, _PUBLIC_KEYS, _public_names):
        v = d[k]
        t = type(v)
        if t in _ATTR_SET:
            out.append((k, v))
        elif t is tuple or isinstance(v, tuple):
            for x in v:
                if type(x) not in _ATTR_SET and not isinstance(x, _ATTR_TYPES):
                    break
            else:
                out.append((k, v))
        elif isinstance(v, _ATTR_TYPES):  # a subclass (an IntEnum)
            out.append((k, v))
    return tuple(out)


@functools.cache
def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    path: str
    module_type: str
    in_leaf: bool
    stack: tuple[str, ...]
    call_index: int
    first_event: int
    parent: int = -1
    suppressed_by: str = ""
    replay_key: Any = None
    """The key of a replayable leaf call (:func:`_state_key`, input, context), or None."""
    replaying: Any = None
    """The operators replayed for this call (its forward ran outside the mode), or None."""
    notes_before: int = 0


class _Recorder:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.rec = Recording()
        self.frames: list[_Frame] = []
        self.suppress_depth = 0
        tree = _walk(model)
        self.paths: dict[int, str] = tree.paths
        self.leaf: dict[int, bool] = tree.leaf
        self.aliases = tree.aliases
        self.root_type = type(model).__name__
        self.functions: list[str] = []
        """Class names of the custom ``autograd.Function`` calls running now, innermost last."""
        self.thread = threading.get_ident()
        self.ops: dict[Any, _OpInfo] = _op_infos()
        self.buffers = _BufferGuard(tree.buffers)
        self.module_info: dict[int, tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Shape], ...], str]] = {}
        self.patched_stack: list[str] = []
        """Paths of the patched calls running now, outermost first."""
        self.internal = 0
        """>0 while the recorder's own code runs (dispatch handling): patched
        calls made there are not the model's."""
        self.mode: _Mode | None = None
        """The dispatch mode, while leaf calls may be replayed (set by :func:`record`)."""
        self.context: tuple[Any, ...] = ()
        self.state_keys: dict[int, int | None] = {}

    # -- module hooks -----------------------------------------------------

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        key = id(module)
        path = self.paths.get(key)
        if path is None:  # a module outside the counted model
            return
        frames = self.frames
        parent = frames[-1] if frames else None
        rule = module_rule_for(module) if _MODULE_RULES and not self.suppress_depth else None
        calls = self.rec.calls
        frame = _Frame(path, type(module).__name__, self.leaf[key],
                       parent.stack + (path,) if parent is not None else (path,),
                       -1 if self.suppress_depth else len(calls), len(self.rec.events),
                       parent.call_index if parent is not None else -1,
                       formula_name(rule) if rule is not None else "")
        if not self.suppress_depth:
            calls.append(None)  # type: ignore[arg-type]  # placeholder, completed in post_hook (start order)
        if rule is not None:
            self.suppress_depth += 1
        elif self.mode is not None and frame.in_leaf and not self.suppress_depth and len(args) == 1:
            self._replay_or_learn(frame, module, args[0])
        frames.append(frame)

    def _replay_or_learn(self, frame: _Frame, module: nn.Module, x: Any) -> None:
        """For a call of a replayable leaf (:data:`_REPLAYABLE`): if a call
        alike was recorded before, leave the mode for its forward and replay
        that call's operators in :meth:`post_hook`; else mark the call so that
        :meth:`post_hook` keeps its operators for the next one."""
        if type(x) is not _Tensor or type(module) not in _REPLAYABLE or x.is_meta or x.is_nested:
            return
        if module._forward_pre_hooks or module._backward_hooks or module._backward_pre_hooks:
            return
        for hook in module._forward_hooks.values():
            if hook is not _no_op_hook:  # the recorder's own (module_hooks) do nothing
                return
        state = self.state_keys.get(id(module), _UNSEEN)
        if state is _UNSEEN:
            state = self.state_keys[id(module)] = _state_key(module)
        if state is None:
            return
        key = (state, x.shape, x.dtype, x.device, x.requires_grad, x.is_contiguous(), torch.is_grad_enabled(),
               torch.is_inference_mode_enabled(), self.context)  # grad modes as the leaf runs: a forward may switch them
        template = _TEMPLATES.get(key)
        frame.replay_key = key
        frame.notes_before = len(self.rec.notes)
        if template is not None and torch._C._len_torch_dispatch_stack() == 1:  # the one mode is the recorder's
            # NB: popped without TorchDispatchMode.__exit__: its Python-side flags (read by
            # nn.MultiheadAttention's fast path, never by a replayable leaf) stay as they are.
            torch._C._pop_torch_dispatch_stack(None)
            frame.replaying = template

    def post_hook(self, module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        # (kwargs, output) normally; torch calls always_call global hooks with
        # (output,) only when the forward raised.
        kwargs, output = rest if len(rest) == 2 else ({}, rest[0] if rest else None)
        if id(module) not in self.paths or not self.frames:
            return
        frame = self.frames.pop()
        if frame.replaying is not None:
            torch._C._push_on_torch_dispatch_stack(self.mode)
            if len(rest) == 2:
                self._replay(frame)
        elif frame.replay_key is not None and len(rest) == 2:
            self._learn(frame)
        if len(rest) != 2:  # the forward raised: unwind the stack, no module-rule event
            if frame.suppressed_by:
                self.suppress_depth -= 1
            self._close_call(frame, module, args, kwargs, None)
            self.rec.notes.append(f"module {frame.path or '<root>'} raised during its forward")
            return
        if frame.suppressed_by:
            self.suppress_depth -= 1
            rule = module_rule_for(module)
            self.internal += 1  # a reference module rule's own torch calls are not the model's
            try:
                cost = rule(module, args, output) if rule is not None else Cost(0, 0, Category.ZERO_COST)
            finally:
                self.internal -= 1
            if not isinstance(cost, Cost):
                raise TypeError(f"module rule {frame.suppressed_by} returned {type(cost).__name__}, not Cost")
            self.rec.events.append(OpEvent(
                op=f"module_rule:{type(module).__name__}", module_path=frame.path, module_type=frame.module_type,
                module_stack=frame.stack, in_leaf=frame.in_leaf, category=cost.category, macs=cost.macs,
                extra_flops=cost.extra_flops, bytes_read=nbytes((args, kwargs)), bytes_written=nbytes(output),
                input_shapes=shapes((args, kwargs)), output_shapes=shapes(output), supported=True,
                formula=frame.suppressed_by, call_index=frame.call_index,
            ))
        self._close_call(frame, module, args, kwargs, output)

    def _replay(self, frame: _Frame) -> None:
        """Add the operators of a replayed call (its forward ran outside the
        mode; a patched call it made, if its template has one, was recorded
        live)."""
        lead, entries = frame.replaying
        inside = (lead,) if lead else ()
        events = self.rec.events
        made = events[frame.first_event:] if lead or len(events) != frame.first_event else None  # None: none, as expected
        if made is not None and [e.op for e in made if isinstance(e, OpEvent)] != ([PATCHED_CALL_PREFIX + lead] if lead else []):
            # NB: cannot happen for calls alike (same code, same inputs); said, never silent.
            self.rec.notes.append(f"module {frame.path}: a replayed call made other patched calls than the one "
                                  "it was learnt from; its operators are those of the learnt call")
        events.extend([(info, p, frame, "", inside) for info, p in entries])

    def _learn(self, frame: _Frame) -> None:
        """Keep the operators of a replayable leaf call for the calls alike
        that follow: only if all of them ran in this call's frame, outside any
        custom Function, and no formula failed; either outside any patched
        callable, or all inside one patched call made first (``F.conv2d`` under
        ptflops' patches), whose ``py:`` event a replay records live."""
        if len(self.rec.notes) != frame.notes_before:
            return
        events = self.rec.events[frame.first_event:]
        lead = ""
        if events and isinstance(events[0], OpEvent):
            first = events[0]
            if not first.op.startswith(PATCHED_CALL_PREFIX) or first.patched_stack:
                return
            lead = first.op[len(PATCHED_CALL_PREFIX):]
            events = events[1:]
        inside = (lead,) if lead else ()
        for e in events:
            if type(e) is not tuple or e[2] is not frame or e[3] or e[4] != inside:
                return
        _remember(_TEMPLATES, frame.replay_key, (lead, tuple([(e[0], e[1]) for e in events])), _TEMPLATES_MAX)

    def _close_call(self, frame: _Frame, module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                    output: Any) -> None:
        """Fill the call's placeholder (start order is kept) with what its
        record needs from the call: :meth:`finish` builds the record."""
        if frame.call_index < 0:
            return
        if len(args) == 1 and not kwargs and isinstance(args[0], _Tensor) and not args[0].is_nested:
            in_sizes: Any = (args[0].shape,)  # the common call: one tensor (converted in finish)
        else:
            in_sizes = _shapes_of(_tensors((args, kwargs)) if kwargs else _tensors(args))
        if isinstance(output, _Tensor) and not output.is_nested:
            out_sizes: Any = (output.shape,)
        else:
            out_sizes = _shapes_of(_tensors(output))
        self.rec.calls[frame.call_index] = (frame, module, in_sizes, out_sizes,  # type: ignore[call-overload]
                                            len(self.rec.events))

    def _module_call(self, raw: tuple[Any, ...]) -> ModuleCall:
        """The record of a call :meth:`_close_call` kept."""
        frame, module, in_sizes, out_sizes, end = raw
        key = id(module)
        info = self.module_info.get(key)
        if info is None:  # attributes and parameter shapes, once per module
            state = self.state_keys.get(key)  # a replayable leaf's state decides them: shared by modules alike
            info = _INFO_BY_STATE.get(state) if state is not None else None
            if info is None:
                info = _interned((_module_attrs(module),
                                  tuple([(n, _shape(p)) for n, p in module._parameters.items() if p is not None]),
                                  _class_path(type(module))))
                if state is not None:
                    _remember(_INFO_BY_STATE, state, info, _TEMPLATES_MAX)
            self.module_info[key] = info
        fields = (frame.path, frame.module_type, id(info), frame.stack, frame.in_leaf, in_sizes, out_sizes,
                  frame.first_event, end, frame.parent, frame.suppressed_by, self.aliases.get(key, ()))
        try:
            made = _CALLS_MADE.get(fields)
        except TypeError:  # a symbolic size (unhashable): built every time
            return self._new_module_call(fields, info)
        if made is None:
            made = _remember(_CALLS_MADE, fields, (info, self._new_module_call(fields, info)))
        return made[1]

    @staticmethod
    def _new_module_call(fields: tuple[Any, ...], info: tuple[Any, Any, str]) -> ModuleCall:
        path, mtype, _, stack, in_leaf, in_sizes, out_sizes, first, end, parent, rule, aliases = fields
        return ModuleCall(path, mtype, info[2], stack, in_leaf, _int_shapes(in_sizes), _int_shapes(out_sizes),
                          info[0], info[1], (first, end), parent, rule, aliases)

    def finish(self) -> Recording:
        """Build the records the pass kept raw (events and module calls are
        built after the forward pass, in one loop, where they cost least).
        # NB: a module's attributes are read here, after the pass: one that
        # changes its own attributes while running is recorded as it ends.
        """
        self._materialize(0)
        calls = self.rec.calls
        for i, c in enumerate(calls):
            if type(c) is tuple:
                calls[i] = self._module_call(c)
        return self.rec

    def _materialize(self, start: int) -> None:
        """Build the events from ``start`` on that :meth:`_append` kept raw."""
        events = self.rec.events
        root = None
        memo = _EVENTS_MADE
        for i in range(start, len(events)):
            e = events[i]
            if type(e) is not tuple:
                continue
            info, p, f, function, patched = e  # type: ignore[misc]
            if f is None:  # outside every module of the model
                root = root or ("", self.root_type, ("",), self.leaf.get(id(self.model), False), -1)
                path, mtype, stack, leaf, call_index = root
            else:
                path, mtype, stack, leaf, call_index = f.path, f.module_type, f.stack, f.in_leaf, f.call_index
            key = (id(info), id(p), path, mtype, stack, leaf, call_index, function, patched)
            made = memo.get(key)
            if made is None:
                made = _remember(memo, key, (info, p, OpEvent(
                    info.name, path, mtype, stack, leaf, p.category, p.macs, p.extra_flops, p.bytes_read,
                    p.bytes_written, p.input_shapes, p.output_shapes, p.supported, info.formula_name, call_index,
                    p.op_args, "", function, patched[0] if patched else "", patched,
                )))
            events[i] = made[2]

    # -- operator events --------------------------------------------------

    def where(self) -> tuple[str, str, tuple[str, ...], bool, int]:
        if not self.frames:
            return "", self.root_type, ("",), self.leaf.get(id(self.model), False), -1
        f = self.frames[-1]
        return f.path, f.module_type, f.stack, f.in_leaf, f.call_index

    def op_info(self, func: Any) -> _OpInfo:
        """What does not change between calls of ``func`` (looked up once while the formula registry is as it is)."""
        info = self.ops.get(func)
        if info is None:
            fn = lookup(func)
            info = _OpInfo(str(func), fn, formula_name(fn) if fn is not None else "", _is_view(func),
                           func in _SKIP, _written_args(func), _stats_written(func), _META_SHORTCUTS.get(func))
            self.ops[func] = info
        return info

    def op_event(self, func: torch._ops.OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any],
                 out: Any, in_shapes: tuple[Shape, ...], read: int) -> None:
        """Record one operator call (priced afresh)."""
        info = self.op_info(func)
        self._append(info, self._price(func, info, args, kwargs, out, in_shapes, read)[0])

    def op_event_keyed(self, func: torch._ops.OpOverload, info: _OpInfo, args: Sequence[Any],
                       kwargs: Mapping[str, Any], out: Any, key: list[Any], tensors: list[torch.Tensor],
                       sizes: list[Any]) -> None:
        """Record one operator call whose inputs :func:`_key_into` described
        before it ran (``key``, ``tensors`` and their ``sizes`` then): calls
        alike in everything a formula reads are priced once (see :data:`_PRICED`)."""
        entry = None
        try:
            if len(tensors) > 1 and len(set(map(id, tensors))) != len(tensors):
                raise _Unkeyable  # a tensor passed twice: its bytes count once, the key cannot say so
            key.append(_OUT)
            if isinstance(out, _Tensor):
                key.append(out.shape)
                key.append(out.dtype)
            else:
                outs: list[torch.Tensor] = []
                _key_into((out,), key, outs, [])
                if len(outs) > 1 and len(set(map(id, outs))) != len(outs):
                    raise _Unkeyable
            frozen = tuple(key)
            entry = _PRICED.get(frozen)
        except (_Unkeyable, RuntimeError, TypeError, ValueError):  # nested/symbolic shapes, odd arguments
            frozen = None
        if entry is None:
            in_shapes, read, in_dtypes = _summary_before(tensors, sizes)
            entry, reusable = self._price(func, info, args, kwargs, out, in_shapes, read)
            if reusable and in_dtypes is not None and frozen is not None:
                _remember(_PRICED, frozen, entry)
        self._append(info, entry)

    def _price(self, func: torch._ops.OpOverload, info: _OpInfo, args: Sequence[Any], kwargs: Mapping[str, Any],
               out: Any, in_shapes: tuple[Shape, ...], read: int) -> tuple[_Priced, bool]:
        """What an event records of the call itself (not where it ran), and
        whether calls alike may reuse it as far as the outputs and the formula
        tell (no nested output, no failed formula; the caller knows the inputs)."""
        fn = info.formula
        supported = fn is not None
        cost: Cost | None = None
        op_args: tuple[tuple[str, Any], ...] = ()
        params: dict[str, Any] | None = None
        try:
            params = bind(func, args, kwargs)
            op_args = _scalar_args(params)
        except Exception:  # noqa: BLE001 - the schema did not bind; keep the event anyway
            pass
        out_shapes, written, out_dtypes = _summary(_tensors(out))
        reusable = out_dtypes is not None
        if fn is not None:
            try:
                cost = fn(make_call(func, args, kwargs, out, params, info.name))
            except Exception as exc:  # noqa: BLE001 - a failing formula is reported, not fatal
                supported = reusable = False
                self.rec.notes.append(f"formula {info.formula_name} failed on {func}: {type(exc).__name__}: {exc}")
        view = info.view
        return _Priced(
            cost.category if cost is not None else None,
            cost.macs if cost is not None else 0,
            cost.extra_flops if cost is not None else 0,
            0 if view else read, 0 if view else written,
            in_shapes, out_shapes, supported and cost is not None, op_args,
        ), reusable

    def _append(self, info: _OpInfo, p: _Priced) -> None:
        """Add the event of a priced call, where it ran (kept raw: :meth:`finish` builds it)."""
        frames = self.frames
        patched = self.patched_stack
        self.rec.events.append((  # type: ignore[arg-type]
            info, p, frames[-1] if frames else None, self.functions[-1] if self.functions else "",
            tuple(patched) if patched else (),
        ))

    def patched_call(self, path: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
        """Record a call of a patched callable; -1 if it is not the model's."""
        if self.internal or self.suppress_depth:
            return -1
        where, mtype, stack, leaf, call_index = self.where()
        op_args = tuple((f"#{i}", _call_arg(v)) for i, v in enumerate(args))
        op_args += tuple((k, _call_arg(v)) for k, v in kwargs.items())
        self.rec.events.append(OpEvent(
            op=PATCHED_CALL_PREFIX + path, module_path=where, module_type=mtype, module_stack=stack, in_leaf=leaf,
            category=Category.ZERO_COST, macs=0, extra_flops=0, bytes_read=0, bytes_written=0,
            input_shapes=shapes((args, kwargs)), output_shapes=(), formula="patched-call", call_index=call_index,
            op_args=op_args, autograd_function=self.functions[-1] if self.functions else "",
            patched_in=self.patched_stack[0] if self.patched_stack else "",
            patched_stack=tuple(self.patched_stack),
        ))
        return len(self.rec.events) - 1

    def patched_return(self, path: str, index: int, out: Any) -> None:
        """Complete the call's event with its output shapes."""
        event = self.rec.events[index] if 0 <= index < len(self.rec.events) else None
        if isinstance(event, OpEvent) and event.op == PATCHED_CALL_PREFIX + path:
            self.rec.events[index] = dataclasses.replace(self.rec.events[index], output_shapes=shapes(out))


#: [registry generation, operator -> :class:`_OpInfo`]: see :func:`_op_infos`.
_OP_INFOS: list[Any] = [-1, {}]


def _op_infos() -> dict[Any, _OpInfo]:
    """Operator facts (formula, view, written arguments) for the formula
    registry as it is now: a new table once a formula is registered or removed."""
    if _OP_INFOS[0] != generation():
        _OP_INFOS[:] = [generation(), {}]
    return _OP_INFOS[1]


@dataclass
class _Tree:
    paths: dict[int, str]
    """``id(module) -> name`` (the one ``named_modules()`` gives)."""
    leaf: dict[int, bool]
    aliases: dict[int, tuple[str, ...]]
    """``id(module) -> names`` for modules reachable by more than one path."""
    buffers: list[torch.Tensor]
    """Every buffer, once."""


def _walk(model: nn.Module) -> _Tree:
    """One walk of the module tree by ``named_children()`` (which, like
    ``children()``, skips a module repeated under one parent), visiting a
    shared module under each of its names; the first name of each module is
    the one ``named_modules()`` gives (both walk depth first, in order)."""
    names: dict[int, list[str]] = {}
    leaf: dict[int, bool] = {}
    buffers: dict[int, torch.Tensor] = {}
    todo: list[tuple[str, nn.Module, Any]] = [("", model, None)]  # (name, module, ancestors as (id, parent's))
    while todo:
        prefix, module, ancestors = todo.pop()
        key = id(module)
        seen = names.get(key)
        if seen is not None:
            seen.append(prefix)
            if _in_chain(key, ancestors):  # a module that contains itself: stop
                continue
        else:
            names[key] = [prefix]
            for b in module._buffers.values():
                if b is not None:
                    buffers.setdefault(id(b), b)
        children = _named_children(module)
        leaf[key] = not children
        inner = (key, ancestors)
        for name, child in reversed(children):
            todo.append((f"{prefix}.{name}" if prefix else name, child, inner))
    return _Tree(
        paths={k: v[0] for k, v in names.items()},
        leaf=leaf,
        aliases={k: tuple(v) for k, v in names.items() if len(v) > 1},
        buffers=list(buffers.values()),
    )


def _in_chain(key: int, chain: Any) -> bool:
    while chain is not None:
        if chain[0] == key:
            return True
        chain = chain[1]
    return False


_NAMED_CHILDREN = nn.Module.named_children


def _named_children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``list(module.named_children())``: each child once, the first name it has."""
    if type(module).named_children is not _NAMED_CHILDREN:
        return list(module.named_children())
    out = []
    ids: set[int] = set()
    for name, child in module._modules.items():
        if child is not None and id(child) not in ids:
            ids.add(id(child))
            out.append((name, child))
    return out


@dataclass(frozen=True)
class _OpInfo:
    name: str
    formula: Any
    formula_name: str
    view: bool
    skip: bool
    written: tuple[tuple[int, str], ...]
    """(position, name) of the arguments the op writes to (``Tensor(a!)``)."""
    stats_written: tuple[tuple[int, str], ...]
    """(position, name) of ``training`` then of the running statistics the op
    updates when it is true (batch-norm kernels whose schema does not say so)."""
    meta_shortcut: Any = None
    """What builds its outputs when every tensor argument is on meta (:data:`_META_SHORTCUTS`), if anything."""


#: Operators that update running statistics in place without saying so in
#: their schema (``Tensor? running_mean``, no ``(a!)``).
_UNANNOTATED_WRITERS = {"aten::native_batch_norm", "aten::cudnn_batch_norm", "aten::miopen_batch_norm"}


def _written_args(func: Any) -> tuple[tuple[int, str], ...]:
    """(position, name) of the arguments ``func``'s schema marks ``Tensor(a!)``
    (the batch-norm kernels of :data:`_UNANNOTATED_WRITERS` are handled by
    :func:`_stats_written`).
    # NB: an operator that writes to an argument its schema does not mark,
    # other than those listed, is not seen writing.
    """
    schema = getattr(func, "_schema", None)
    if schema is None:
        return ()
    return tuple((i, a.name) for i, a in enumerate(schema.arguments)
                 if a.alias_info is not None and a.alias_info.is_write)


def _stats_written(func: Any) -> tuple[tuple[int, str], ...]:
    """For the batch-norm kernels of :data:`_UNANNOTATED_WRITERS`: (position,
    name) of ``training`` then of the running statistics it updates."""
    schema = getattr(func, "_schema", None)
    if schema is None or schema.name not in _UNANNOTATED_WRITERS:
        return ()
    names = [a.name for a in schema.arguments]
    if "training" not in names:
        return ()
    return tuple((names.index(n), n) for n in ("training", "running_mean", "running_var") if n in names)


class _BufferGuard:
    """Puts back the values of the model's buffers that the pass writes to
    (a train-mode BatchNorm's running statistics, ``num_batches_tracked``, a
    cache). A buffer is copied only when an operator is about to write to its
    storage, so a pass that writes none (eval mode) copies nothing. Meta and
    fake buffers hold no values and are not guarded."""

    def __init__(self, buffers: Sequence[torch.Tensor]) -> None:
        self.by_storage: dict[int, list[torch.Tensor]] = {}
        fake = _fake_tensor_class()
        for b in buffers:
            if b.is_meta or isinstance(b, fake):
                continue
            ptr = _storage_ptr(b)
            if ptr:
                self.by_storage.setdefault(ptr, []).append(b)
        self.saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    def before_write(self, written: tuple[tuple[int, str], ...], args: Sequence[Any],
                     kwargs: Mapping[str, Any]) -> None:
        for position, name in written:
            for t in _tensors(_arg((position, name), args, kwargs)):
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


def _arg(where: tuple[int, str], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    position, name = where
    return args[position] if position < len(args) else kwargs.get(name)


def _storage_ptr(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().data_ptr())
    except (RuntimeError, NotImplementedError, TypeError):
        return 0


def _call_arg(v: Any) -> Any:
    """A patched call's argument as recorded: tensors by shape, scalars and
    lists of scalars as they are, anything else by type name."""
    if isinstance(v, torch.Tensor):
        return TensorArg(_shape(v))
    if isinstance(v, (list, tuple)) and all(_is_scalar(x) for x in v):
        return tuple(int(x) if isinstance(x, torch.SymInt) else x for x in v)
    if isinstance(v, torch.SymInt):
        return int(v)
    if _is_scalar(v):
        return v
    return f"<{type(v).__name__}>"


def _resolve(path: str) -> tuple[Any, str]:
    """``"torch.nn.functional.relu" -> (torch.nn.functional, "relu")``: the
    longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        if not hasattr(owner, parts[-1]):
            raise AttributeError(f"cannot patch {path!r}: no attribute {parts[-1]!r}")
        return owner, parts[-1]
    raise ImportError(f"cannot patch {path!r}: no importable module prefix")


@contextlib.contextmanager
def _patched(recorder: _Recorder, paths: Sequence[str]) -> Iterator[None]:
    """Replace each callable in ``paths`` by a wrapper recording its calls;
    put every one back (an inherited attribute is deleted again) on exit.
    A path that does not resolve in this torch version is skipped with a note
    (a backend cannot patch it either)."""
    saved: list[tuple[Any, str, bool, Any]] = []
    try:
        for path in dict.fromkeys(paths):
            try:
                owner, attr = _resolve(path)
            except (ImportError, AttributeError) as exc:
                recorder.rec.notes.append(str(exc))
                continue
            original = getattr(owner, attr)
            saved.append((owner, attr, attr in vars(owner), original))
            setattr(owner, attr, _wrapper(recorder, path, original))
        yield
    finally:
        for owner, attr, was_own, original in reversed(saved):
            if was_own:
                setattr(owner, attr, original)
            elif attr in vars(owner):
                delattr(owner, attr)


def _wrapper(recorder: _Recorder, path: str, original: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        index = recorder.patched_call(path, args, kwargs)
        if index < 0:
            return original(*args, **kwargs)
        recorder.patched_stack.append(path)
        try:
            out = original(*args, **kwargs)
        finally:
            recorder.patched_stack.pop()
        recorder.patched_return(path, index, out)
        return out

    wrapper.__name__ = getattr(original, "__name__", path.rsplit(".", 1)[-1])
    wrapper.__qualname__ = getattr(original, "__qualname__", wrapper.__name__)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    return wrapper


class _Mode(TorchDispatchMode):
    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        rec = self.recorder
        info = rec.ops.get(func) or rec.op_info(func)
        if kwargs is None:
            kwargs = {}
        rec.internal += 1  # patched calls made from here on are the recorder's, not the model's
        try:
            if rec.buffers.by_storage:
                if info.written:
                    rec.buffers.before_write(info.written, args, kwargs)
                if info.stats_written and _arg(info.stats_written[0], args, kwargs):
                    rec.buffers.before_write(info.stats_written[1:], args, kwargs)
            if info.skip or rec.suppress_depth:
                return func(*args, **kwargs)
            if info.formula is None:
                return self._without_formula(func, args, kwargs)
            # The common call: describe the inputs before the op runs (an in-place op may resize them).
            key: list[Any] = [func, info.formula]
            tensors: list[torch.Tensor] = []
            sizes: list[Any] = []
            try:
                _key_into(args, key, tensors, sizes)
                if kwargs:
                    key.append(tuple(kwargs))
                    _key_into(kwargs.values(), key, tensors, sizes)
            except (_Unkeyable, RuntimeError, TypeError, ValueError):  # nested tensors, odd arguments
                tensors = _op_tensors(args, kwargs)
                in_shapes, read, _ = _summary(tensors)
                out = self._run(func, info, args, kwargs, tensors)
                rec.op_event(func, args, kwargs, out, in_shapes, read)
                return out
            out = self._run(func, info, args, kwargs, tensors) if info.meta_shortcut else func(*args, **kwargs)
            rec.op_event_keyed(func, info, args, kwargs, out, key, tensors, sizes)
            return out
        finally:
            rec.internal -= 1

    def _without_formula(self, func: Any, args: Any, kwargs: Any) -> Any:
        """An operator without a formula: decomposed if it can be, else a
        custom op's Python kernel traced, else recorded as unsupported."""
        rec = self.recorder
        in_shapes, read, _ = _summary(_op_tensors(args, kwargs))
        with self:
            decomposed = func.decompose(*args, **kwargs)
        if decomposed is not NotImplemented:
            return decomposed
        traced = self._trace_python_body(func, args, kwargs, in_shapes, read)
        if traced is not _NOT_TRACED:
            return traced
        out = func(*args, **kwargs)
        if not in_shapes and not _tensors(out):
            return out  # no tensor in or out (e.g. torchvision._cuda_version): a query, not work
        rec.op_event(func, args, kwargs, out, in_shapes, read)
        return out

    @staticmethod
    def _run(func: Any, info: _OpInfo, args: Any, kwargs: Any, tensors: list[torch.Tensor]) -> Any:
        """``func(*args, **kwargs)``, by a shortcut for slow meta kernels."""
        shortcut = info.meta_shortcut
        if shortcut is not None and tensors and tensors[0].is_meta and _all_meta(args, kwargs):
            return shortcut(args, kwargs)
        return func(*args, **kwargs)

    def _trace_python_body(self, func: Any, args: Any, kwargs: Any, in_shapes: tuple[Shape, ...], read: int) -> Any:
        """Run a formula-less ``torch.library.custom_op`` through its Python kernel,
        recording the operators it calls (they are what the op computes).

        Used only when no formula is registered. If the body fails (e.g. on
        meta tensors) its partial events are dropped and the op is run and
        reported as unsupported as usual; if it dispatches no operator with a
        cost (only views, copies or conversions: its work is in numpy, Triton
        or C++ that the mode cannot see) the op is reported as unsupported
        too, never silently free.
        # NB: a kernel doing part of its work outside torch is undercounted;
        # register a formula for such ops. Traced ops are listed in
        # ``Recording.traced``.
        """
        body = _custom_op_body(func, args, kwargs)
        if body is None:
            return _NOT_TRACED
        rec = self.recorder.rec
        first = len(rec.events)
        internal, self.recorder.internal = self.recorder.internal, 0  # the kernel is the model's code
        try:
            with self:
                out = body(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - fall back to the opaque op
            del rec.events[first:]
            rec.notes.append(f"{func}: its Python kernel failed here ({type(exc).__name__}); counted as unsupported")
            return _NOT_TRACED
        finally:
            self.recorder.internal = internal
        name = str(func)
        self.recorder._materialize(first)
        inner = rec.events[first:]
        if not any(e.macs or e.extra_flops or not e.supported for e in inner):
            del rec.events[first:]
            self.recorder.op_event(func, args, kwargs, out, in_shapes, read)
            rec.notes.append(f"{name}: its Python kernel dispatched no costed torch operator (its work may be "
                             "in numpy, Triton or C++); counted as unsupported")
        else:
            rec.traced[name] = rec.traced.get(name, 0) + 1
            # The outermost traced op wins: it is what a counter outside sees as opaque.
            rec.events[first:] = [dataclasses.replace(e, traced_from=name) for e in inner]
        return out


_NOT_TRACED = object()


@contextlib.contextmanager
def _tracking_autograd_functions(recorder: _Recorder) -> Iterator[None]:
    """Wrap ``torch.autograd.Function.apply`` for the pass so that the recorder
    knows which custom Function's ``forward`` is running (a JIT trace records
    such a call as one opaque node). Calls from other threads are not the
    model's and are not tracked. The original is put back on exit."""
    base = torch.autograd.Function
    original = base.__dict__["apply"]  # a classmethod (C or Python, by torch version)

    def tracked(cls: Any, *args: Any, **kwargs: Any) -> Any:
        apply = original.__get__(None, cls)
        if threading.get_ident() != recorder.thread:
            return apply(*args, **kwargs)
        recorder.functions.append(cls.__name__)
        try:
            return apply(*args, **kwargs)
        finally:
            recorder.functions.pop()

    tracked.__doc__ = original.__doc__
    base.apply = classmethod(tracked)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        base.apply = original  # type: ignore[method-assign]


def _custom_op_body(func: Any, args: Any, kwargs: Any) -> Any:
    """The Python kernel of a ``torch.library.custom_op`` for the inputs' device, if any."""
    if not isinstance(func, torch._ops.OpOverload) or func.namespace in ("aten", "prims", "prim", "_c10d_functional"):
        return None
    try:
        from torch._library.custom_ops import OPDEFS
    except ImportError:  # pragma: no cover - older torch
        return None
    opdef = OPDEFS.get(f"{func.namespace}::{func._opname}")
    if opdef is None:
        return None
    device = next((t.device.type for t in iter_tensors((args, kwargs))), None)
    backends = getattr(opdef, "_backend_fns", {})
    return backends.get(device) or backends.get(None) or getattr(opdef, "_init_fn", None)


#: Fused operators that a module runs only when none of its submodules has a
#: hook: a recording with ``module_hooks`` can differ from one without only
#: where one of them ran (in torch: ``nn.TransformerEncoderLayer``).
HOOK_SENSITIVE_OPS = frozenset({"aten._transformer_encoder_layer_fwd.default"})


def record(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None,
           patch: Sequence[str] = (), module_hooks: bool = False, replay_leaves: bool = True) -> Recording:
    """Run ``model(*args, **kwargs)`` once under the recording mode.

    Global module hooks are registered for the call and removed before
    returning, even on error. ``patch``: dotted paths of Python callables to
    wrap for the call, each call through them recorded as a ``py:<path>``
    event (see the module docstring); they are restored on return.
    ``module_hooks``: also attach a no-op forward hook to every module for
    the call, as hook-based counters do (fast paths that refuse to run when
    a module has hooks are then not taken); removed before returning.

    ``replay_leaves``: a call of a plain ``torch.nn`` leaf (:data:`_REPLAYABLE`:
    convolutions, linear, norms, activations, pooling, dropout) alike in
    class, attributes, parameters, buffers and input (shape, dtype, device,
    ``requires_grad``, contiguity) to one recorded before in this process,
    under the same grad, inference, determinism and cuDNN/oneDNN settings,
    formula registry, ``module_hooks`` and ``patch``, runs outside the mode
    and gets that call's operators (its events are the same, this call's
    module path; a patched callable it calls first records its ``py:``
    event live). A call that went through a custom Function, or through
    patched calls other than one made first, is not learnt. Off when other
    global module hooks, torch function modes or autocast are active; never
    for meta or nested inputs, modules with hooks of their own (the no-op
    ones of ``module_hooks`` aside), or train-mode modules with buffers.
    """
    with gc_paused():
        return _record(model, args, kwargs, patch, module_hooks, replay_leaves)


def _record(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None, patch: Sequence[str],
            module_hooks: bool, replay_leaves: bool) -> Recording:
    recorder = _Recorder(model)
    handles = []
    try:
        if module_hooks:
            handles.extend(m.register_forward_hook(_no_op_hook) for m in dict.fromkeys(model.modules())
                           if not isinstance(m, torch.jit.ScriptModule))  # which refuse hooks (and their counters')
        replay = replay_leaves and _replay_safe()
        handles.append(register_module_forward_pre_hook(recorder.pre_hook))
        handles.append(register_module_forward_hook(recorder.post_hook, with_kwargs=True, always_call=True))
        mode = _Mode(recorder)
        if replay:
            recorder.mode = mode
            # What else decides which operators a leaf dispatches (cuDNN/oneDNN batch norm and the like).
            recorder.context = (torch.are_deterministic_algorithms_enabled(), torch._C._get_cudnn_enabled(),
                                torch._C._get_mkldnn_enabled(), generation(), module_hooks,
                                tuple(dict.fromkeys(patch)))
        with _patched(recorder, patch), _tracking_autograd_functions(recorder), mode:
            model(*args, **dict(kwargs or {}))
        recorder.finish()
    finally:
        recorder.buffers.restore()
        recorder.mode = None  # no cycle left (recorder <-> mode): the pass's bookkeeping is freed on return
        for h in handles:
            h.remove()
            # torch's handle forgets this table (torch 2.14): do not leave a stale entry behind.
            _module_mod._global_forward_hooks_with_kwargs.pop(h.id, None)
    return recorder.rec


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (as it was after).

    # NB: a recording allocates tens of thousands of small objects that live
    # until it ends or die by reference counting; with the collector on, each
    # 700 of them start a collection that walks them all again (about 0.1x a
    # forward pass of mobilenet_v2, measured over 20 counts in a row). Garbage
    # in cycles that the model makes meanwhile waits for the next collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def clear_caches() -> None:
    """Forget the operator calls priced and the leaf calls learnt in this
    process: the next recording prices every call and records every leaf
    op by op (as a first one in a fresh process does)."""
    for cache in PROCESS_CACHES:
        cache.clear()
    _OP_INFOS[:] = [-1, {}]


#: Every process-wide cache of the reference counter (the summaries of :func:`count` join them):
#: what :func:`clear_caches` empties.
PROCESS_CACHES: list[dict[Any, Any]] = [_PRICED, _TEMPLATES, _STATE_MEMO, _STATE_NUMBERS, _INFO_BY_STATE, _INT_SHAPES,
                                        _EVENTS_MADE, _CALLS_MADE, _INFOS]


def _replay_safe() -> bool:
    """Whether nothing but the recorder can see a leaf's forward: no other
    global module hooks, no torch function mode, no autocast."""
    m = _module_mod
    return not (m._global_forward_pre_hooks or m._global_forward_hooks or m._global_backward_hooks
                or m._global_backward_pre_hooks or torch._C._len_torch_function_stack()
                or torch._C._is_any_autocast_enabled())


def _no_op_hook(module: nn.Module, args: Any, output: Any) -> None:
    """Stands for a hook-based counter's hook (see ``record(module_hooks=True)``)."""


def _fake_tensor_class() -> type:
    from torch._subclasses.fake_tensor import FakeTensor

    return FakeTensor



__all__ = ["HOOK_SENSITIVE_OPS", "ModuleCall", "OpEvent", "PATCHED_CALL_PREFIX", "Recording", "TensorArg", "clear_caches",
           "iter_tensors", "nbytes", "record", "shapes"]
