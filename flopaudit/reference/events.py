"""The records a recording is made of: one :class:`OpEvent` per operator call,
one :class:`ModuleCall` per module call, gathered in a :class:`Recording`.

Events and module calls are immutable and hold only integers, strings,
shapes and the calls' non-tensor arguments: never a tensor or a module, so a
recording outlives the model it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable

from flopaudit.reference.registry import Category

Shape = tuple[int, ...]

#: Prefix of the events recording calls of patched Python callables.
PATCHED_CALL_PREFIX = "py:"


@dataclass(frozen=True)
class TensorArg:
    """A tensor argument of a patched Python call (``py:`` events), by shape (and dtype,
    which two arguments of one shape may differ by and still compare equal)."""

    shape: Shape
    dtype: str = field(default="", compare=False)
    """``str(tensor.dtype)`` (``"torch.float32"``)."""


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
    taken_over: tuple[int, ...] = ()
    """Positions in ``patched_stack`` of the patched calls that a tensor subclass's
    ``__torch_function__`` took over (an argument whose class overrides it, as
    torchao's quantized weights do: their ``F.linear`` runs ``torch.mm`` on the int8
    values), and on a ``py:`` event ``len(patched_stack)`` if the call itself was:
    such a call never reaches the operator it names, so a trace or a profiler
    sees the operators the override runs instead (``Ruleset.calls_are_operators``)."""
    phase: str = "forward"
    """Which part of the pass ran it: ``forward`` (every event of an inference
    pass), and in a training step ``loss``, ``backward``, ``recompute`` (the
    forward work a backward repeats: activation checkpointing) or ``optimizer``
    (:data:`flopaudit.passes.PHASES`)."""
    forward_event: int = -1
    """For a ``backward`` event, the index of the forward (or recompute) event
    whose autograd node ran it: the operator it differentiates (-1: none, e.g.
    a parameter's gradient accumulation)."""
    operands: str = ""
    """In a training step, one letter per tensor input (``input_shapes`` order)
    saying what it is: ``W`` a parameter, ``E`` a parameter of an embedding
    module, ``B`` a buffer (a fixed filter bank, a queue of keys), ``X`` one of
    the model's inputs, ``A`` another tensor; upper case
    if it requires a gradient, lower case if not (``w``: a frozen parameter,
    ``x``: an input that needs no gradient). In an inference pass only for
    batched products (:data:`~flopaudit.reference.operators.BATCHED_PRODUCTS`),
    empty for every other operator."""
    integer: bool = False
    """Its results are integer or boolean tensors, every one (index arithmetic, masks):
    counters that price every elementwise product (torchprofile) price these too."""
    sparse: tuple[str, ...] = ()
    """The layouts of its sparse tensor inputs, in order (``("torch.sparse_csr",)``; empty: none):
    the reference prices their stored elements (``_nnz()``); counters that read shapes only
    price them as if they were dense."""
    decomposed_from: str = ""
    """The operator this one is part of, where the recorder received that operator whole
    and decomposed it ('' if none): a composite operator (``aten.conv2d``,
    ``aten.layer_norm``) reaches a dispatch mode whole only where autograd did not
    decompose it (inside ``torch.inference_mode``), and a dispatch-mode counter that does
    not decompose it sees that operator, not this one."""
    in_hooked_copy: bool = False
    """It ran inside a copy of one of the model's modules made during a pass recorded with
    ``record(module_hooks=...)`` (``copy.deepcopy`` in a ``forward``, as ``torch.func`` ensembles
    do), which carries the hooks: it is attributed to the copy's call (:attr:`ModuleCall.copied`,
    under the copied module's path). A counter that keeps each module's count on the module (thop,
    ptflops, calflops, DeepSpeed) keeps this one on the copy, which its total over the model never
    reads. Without hooks a copy cannot be told from any module outside the model, and its operators
    are attributed to the model's module running."""

    summed: str = ""
    """For an ``aten.add`` the autograd engine ran to sum two gradients of one tensor (a forward that
    differentiates: forces, a gradient penalty), how it sums them where no dispatch mode runs:
    ``"in place"`` (``aten::add_``) or ``"out of place"``; ``""`` for every other operator
    (:mod:`flopaudit.reference.gradient_sums`)."""

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
    phase: str = "forward"
    """``forward``, or ``recompute`` for a call a training step's backward made
    again (activation checkpointing); see :attr:`OpEvent.phase`."""
    wrapped_by: tuple[str, ...] = ()
    """Paths of the ``torch.compile`` wrappers (``OptimizedModule``) of the
    module: each reads and writes attributes through to the module it wraps.
    Empty for a module nobody compiled."""
    copied: bool = False
    """A call of a copy of the module at ``path`` made during the pass, which carries the
    hooks of the recording (see :attr:`OpEvent.in_hooked_copy`): its attributes and parameters
    are the copy's."""

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
    tracing_asked: dict[str, int] = field(default_factory=dict)
    """Where code outside torch asked ``torch.jit.is_tracing()`` (``module:function`` -> calls),
    in a pass recorded with ``record(as_traced=...)``; empty otherwise."""
    outside_calls: int = 0
    """Calls of modules outside the model (made or copied during the pass, kept in a plain list,
    a ``torch.func`` stateless copy): their operators are attributed to the model's module running,
    but a copy's in a recording with ``module_hooks``, which are its own call's (:attr:`ModuleCall.copied`)."""


def positional_maker(cls: type) -> Callable[..., Any]:
    """A function making a ``cls`` (a frozen dataclass with slots and no
    ``__post_init__``) from all its fields, positionally in declaration order:
    the object equals ``cls(*values)``. It writes each slot through the slot's
    own descriptor, where a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` field by field; the recorder makes one event per
    operator call (thousands in a training step) and one record per module call."""
    names = [f.name for f in fields(cls)]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    namespace.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})
    body = "".join(f"    _set_{n}(obj, {n})\n" for n in names)
    exec(f"def make({', '.join(names)}):\n    obj = _new(_cls)\n{body}    return obj\n", namespace)  # noqa: S102
    return namespace["make"]


make_event: Callable[..., OpEvent] = positional_maker(OpEvent)
"""An :class:`OpEvent` from all its fields, positionally (the recorder's hot path)."""
make_module_call: Callable[..., ModuleCall] = positional_maker(ModuleCall)
"""A :class:`ModuleCall` from all its fields, positionally (the recorder's hot path)."""


__all__ = ["PATCHED_CALL_PREFIX", "ModuleCall", "OpEvent", "Recording", "Shape", "TensorArg", "make_event",
           "make_module_call", "positional_maker"]
