"""What the recorder knows of an operator before any call of it: its formula,
whether it is a view, a metadata query or writes to its arguments, and the
Python kernel of a ``torch.library.custom_op``."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch

from flopaudit.eager import cond_as_written
from flopaudit.inputs import iter_tensors
from flopaudit.reference.registry import Formula, Signature, formula_name, lookup, op_key, signature
from flopaudit.reference.tensors import tensors_in

aten = torch.ops.aten

#: Metadata queries: not operator calls worth recording.
QUERIES = frozenset({
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
    # profiler bookkeeping (``record_function``, which every optimizer step opens)
    torch.ops.profiler._record_function_enter.default,
    torch.ops.profiler._record_function_enter_new.default,
    torch.ops.profiler._record_function_exit.default,
    torch.ops.profiler._record_function_exit._RecordFunction,
})

class ArgumentPlace(NamedTuple):
    """Where an argument of an operator call is."""

    position: int
    name: str
    """Its schema name (where it is found when passed by keyword)."""


@dataclass(frozen=True)
class OperatorFacts:
    """What does not change between calls of one operator (for the formula registry as it is)."""

    name: str
    """``str(op)``, e.g. ``"aten.convolution.default"``."""
    formula: Formula | None
    formula_name: str
    view: bool
    """Every output aliases an input without writing it: no bytes moved."""
    query: bool
    """A metadata query (:data:`QUERIES`): run, not recorded."""
    written: tuple[ArgumentPlace, ...]
    """The arguments the op writes to (``Tensor(a!)``)."""
    stats_written: tuple[ArgumentPlace, ...]
    """``training`` then the running statistics the op updates when it is true
    (batch-norm kernels whose schema does not say so)."""
    meta_shortcut: Callable[[Any, Any], Any] | None = None
    """What builds its outputs when every tensor argument is on meta (:data:`META_SHORTCUTS`), if anything."""
    writes: bool = False
    """``written`` or ``stats_written``: a call may write to one of its arguments."""
    op: Any = None
    """The operator itself."""
    batched_product: bool = False
    """One of :data:`BATCHED_PRODUCTS`: an inference pass records its operands too (see
    :attr:`~flopaudit.reference.events.OpEvent.operands`)."""

    @functools.cached_property
    def signature(self) -> Signature | None:
        """Its schema's arguments (what binding a call to names reads); read when a call is
        first priced in the recording, not before (a count whose calls were all priced
        before in the process never reads it)."""
        return signature(self.op) if getattr(self.op, "_schema", None) is not None else None


def operator_facts(func: Any) -> OperatorFacts:
    """The facts of ``func`` for the formula registry as it is now (its schema read once)."""
    fn = lookup(func)
    schema = getattr(func, "_schema", None)
    arguments = list(schema.arguments) if schema is not None else []
    written, stats_written = written_args(arguments), _stats_written(schema, arguments)
    name = op_key(func) if isinstance(func, torch._ops.HigherOrderOperator) else str(func)
    return OperatorFacts(name, fn, formula_name(fn) if fn is not None else "", _is_view(schema),
                         func in QUERIES, written, stats_written, META_SHORTCUTS.get(func),
                         bool(written or stats_written), func, name in BATCHED_PRODUCTS)


#: Products of batches of matrices: eager attention's scores and weighted values
#: (``q @ k.transpose(-2, -1)``, ``torch.einsum`` over heads) run as these, and so do
#: products with batched weights (a mixture of experts' stacked expert matrices).
BATCHED_PRODUCTS = frozenset({"aten.bmm.default", "aten.baddbmm.default", "aten.matmul.default"})


def _is_view(schema: Any) -> bool:
    returns = schema.returns if schema is not None else ()
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


#: Operators that update running statistics in place without saying so in
#: their schema (``Tensor? running_mean``, no ``(a!)``).
_UNANNOTATED_WRITERS = {"aten::native_batch_norm", "aten::cudnn_batch_norm", "aten::miopen_batch_norm"}


def written_args(arguments: Sequence[Any]) -> tuple[ArgumentPlace, ...]:
    """The arguments a schema marks ``Tensor(a!)`` (the batch-norm kernels of
    :data:`_UNANNOTATED_WRITERS` are handled by :func:`_stats_written`).
    # NB: an operator that writes to an argument its schema does not mark,
    # other than those listed, is not seen writing.
    """
    return tuple(ArgumentPlace(i, a.name) for i, a in enumerate(arguments)
                 if a.alias_info is not None and a.alias_info.is_write)


def _stats_written(schema: Any, arguments: Sequence[Any]) -> tuple[ArgumentPlace, ...]:
    """For the batch-norm kernels of :data:`_UNANNOTATED_WRITERS`: ``training``
    then the running statistics it updates."""
    if schema is None or schema.name not in _UNANNOTATED_WRITERS:
        return ()
    names = [a.name for a in arguments]
    if "training" not in names:
        return ()
    return tuple(ArgumentPlace(names.index(n), n) for n in ("training", "running_mean", "running_var") if n in names)


def argument(place: ArgumentPlace, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """The argument at ``place`` of a call (None if it was not passed)."""
    return args[place.position] if place.position < len(args) else kwargs.get(place.name)


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
META_SHORTCUTS: dict[Any, Callable[[Any, Any], Any]] = {
    aten._native_batch_norm_legit_no_training.default: _meta_batch_norm,
    aten._native_batch_norm_legit.default: _meta_batch_norm,
    aten.native_batch_norm.default: _meta_batch_norm,
}


def run(func: Any, facts: OperatorFacts, args: Any, kwargs: Any) -> Any:
    """``func(*args, **kwargs)``, by its meta shortcut when every tensor argument is on meta
    (a first argument that is a tensor off meta settles it without a look at the others)."""
    shortcut = facts.meta_shortcut
    first = args[0] if args else None
    if shortcut is not None and not (isinstance(first, torch.Tensor) and not first.is_meta):
        tensors = tensors_in((args, kwargs))
        if tensors and all(t.device.type == "meta" for t in tensors):
            return shortcut(args, kwargs)
    return func(*args, **kwargs)


def custom_op_kernel(func: Any, args: Any, kwargs: Any) -> Callable[..., Any] | None:
    """The Python kernel of a ``torch.library.custom_op`` for the inputs' device (or of an
    operator ``torch.library.impl`` gave a Python kernel for that device), or a
    higher-order operator's dense implementation (``flex_attention``'s math attention:
    what eager mode runs on the CPU), or the kernel another library's operator has for
    every backend (``CompositeExplicitAutograd``: PyTorch's ``quantized_decomposed``
    quantize/dequantize operators of a PT2E-quantized graph are Python functions
    registered so), if any."""
    if isinstance(func, torch._ops.HigherOrderOperator):
        return _DENSE_KERNELS.get(func.name()) or func.py_kernels.get(torch._C.DispatchKey.CompositeExplicitAutograd)
    if not isinstance(func, torch._ops.OpOverload) or func.namespace in ("aten", "prims", "prim", "_c10d_functional"):
        return None
    try:
        from torch._library.custom_ops import OPDEFS
    except ImportError:  # pragma: no cover - older torch
        OPDEFS = {}  # noqa: N806
    opdef = OPDEFS.get(f"{func.namespace}::{func._opname}")
    device = next((t.device.type for t in iter_tensors((args, kwargs))), None)
    if opdef is None:
        return _python_backend_kernel(func, device) or _composite_kernel(func)
    backends = getattr(opdef, "_backend_fns", {})
    return backends.get(device) or backends.get(None) or getattr(opdef, "_init_fn", None)


_BACKEND_KEYS = {"cpu": "CPU", "cuda": "CUDA", "meta": "Meta", "mps": "MPS", "xpu": "XPU"}
"""Device type -> the dispatch key of its dense kernels."""


def _python_backend_kernel(func: Any, device: str | None) -> Callable[..., Any] | None:
    """The kernel ``torch.library.impl`` registered in Python for ``func`` and the inputs' device
    (optimum-quanto's ``quanto::qbytes_mm`` has a CPU kernel running ``torch._int_mm`` beside a
    ``default`` one running a float ``matmul``): what the dispatcher runs for those inputs, ahead
    of a ``CompositeExplicitAutograd`` one. None if no Python kernel is registered for that key
    (a C++ kernel is run as the opaque operator it is)."""
    key = _BACKEND_KEYS.get(device or "")
    impls = getattr(torch.library, "_impls", ())
    if key is None or not impls:
        return None
    names = (func._opname, f"{func._opname}.{func._overloadname}")
    if not any(f"{func.namespace}/{name}/{key}" in impls for name in names):
        return None
    return functools.partial(func._op_dk, getattr(torch._C.DispatchKey, key))


_DENSE_KERNELS: dict[str, Callable[..., Any]] = {"cond": cond_as_written}
"""Higher-order operators whose dense kernel refuses a dispatch mode, by name: what it runs
(torch's ``cond`` kernel raises while a dispatch mode is active)."""

CONTROL_FLOW: frozenset[str] = frozenset({"cond", "while_loop"})
"""Higher-order operators that are control flow (``torch.cond``, ``torch._higher_order_ops.while_loop``):
their kernels run the model's own functions, whose operators are the model's work as any
counter that looks inside sees it, not an opaque operator's."""


def _composite_kernel(func: Any) -> Callable[..., Any] | None:
    """``func``'s ``CompositeExplicitAutograd`` kernel, called directly, if it has one:
    made of other operators, which the mode then sees."""
    key = torch._C.DispatchKey.CompositeExplicitAutograd
    try:
        if not torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), key):
            return None
    except RuntimeError:
        return None
    return functools.partial(func._op_dk, key)


__all__ = ["BATCHED_PRODUCTS", "CONTROL_FLOW", "META_SHORTCUTS", "QUERIES", "OperatorFacts", "argument", "custom_op_kernel", "operator_facts", "run", "written_args"]
