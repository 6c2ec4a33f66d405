"""PyTorch's built-in ``torch.profiler.profile(with_flops=True)``.

What it counts (torch 2.14, ``torch/csrc/profiler/util.cpp``
``saveExtraArgs``/``computeFlops``; verified by probes on CPU): every
operator the profiler records gets an estimate from its name and input
shapes, in FLOPs, for exactly seven names:

* ``aten::conv2d``: ``2 * N * H_out * W_out * kh * kw * Cin * Cout / groups``
  with the output size from the input size, padding, stride and dilation
  (bias not counted); a 3-D (unbatched) input, a string ``padding``
  (``"same"``), ``conv1d``/``conv3d`` and transposed convolutions count 0.
* ``aten::mm`` and ``aten::addmm``: ``2 * M * K * N`` (the bias of addmm not
  counted); ``aten::bmm`` and ``aten::baddbmm``: ``2 * B * M * K * N``.
* ``aten::mul`` and ``aten::add`` (not their in-place ``mul_``/``add_``):
  ``numel`` of the *first* input (1 per element, not 2).

The profiler sees operators at the dispatcher's entry, so ``nn.Linear``
reaches ``aten::addmm``/``aten::mm`` and ``torch.matmul``/``@`` reach
``mm``/``bmm`` as in the reference; everything else (attention kernels,
RNN kernels, norms, activations, pools) counts 0.

It also sees the operators a CPU kernel calls through the dispatcher. The
batch-norm kernel in eval mode, on an input that is neither contiguous nor
channels-last (``BatchNorm1d`` on a transposed sequence, as PatchTST runs
it), computes ``running_var + eps`` as an ``aten::add`` of one FLOP per
channel; the dispatch mode the reference records with sees the kernel only,
and its events do not say how an input is laid out. The adapter books those
adds, found by their parent event, as a declared cause
(:data:`BATCH_NORM_EPSILON`).

Under ``torch.autocast`` an operator autocast wraps (``conv2d``, and ``mm``,
``addmm``, ``bmm``, ``baddbmm`` called directly) is recorded twice, one event
inside another of the same name and shapes: autocast casts the inputs and
calls the operator again. Both get an estimate; the dispatch mode sees the
operator once. The CPU kernel of a product with a sparse CSR operand
(``csr @ x``, ``torch.sparse.mm``) does the same: its ``aten::addmm`` calls
``aten::addmm`` again, and both get the same estimate. The adapter books the
inner events' estimates as a declared cause (:data:`RECORDED_TWICE`).
``nn.Linear`` is not doubled (autocast wraps ``aten::linear``, which has no
estimate, and its ``aten::addmm`` runs once).

Inside a ``torch.jit.script`` function the model calls, the profiler prices
the operators TorchScript runs from the input shapes its graph executor
records, and those depend on how the function ran before in the process:
geoopt's Poincare-ball maths reads 510 MACs in a fresh process and 1,302
once a call without autograd came first. The adapter books its estimates of
the events inside such a function's event as a declared cause
(:data:`SCRIPT_FUNCTION_OPS`).

Under ``torch.func.vmap`` (an ensemble run with stacked weights, the
per-sample Jacobians of ``jacrev``) the profiler records each operator
twice over: at the per-sample shapes it is called with (``aten::addmm``
of one member, with an estimate) and as the batched operators the batching
rule runs beneath it (``aten::mm``, ``aten::matmul`` of every member);
the dispatch mode the reference records with sees the batched ones only.
The adapter marks each call of a function vmap made with a profiler range
and books the estimates inside as a declared cause (:data:`VMAP_OPS`).

torch's older vmap, which ``torch.autograd.grad(..., is_grads_batched=True)``
and ``torch.autograd.functional.jacobian(..., vectorize=True)`` run (zuko's
continuous normalizing flows take their exact Jacobian trace so), records
the same way: the backward's ``aten::mm`` at the per-sample shapes, and
inside it the batched ``aten::mm`` its batching rule runs, which is what
the dispatch mode sees. The adapter marks each call of a function that vmap
made too, and books the estimate of each marked event that holds an event
of its own name with another estimate, the per-sample record
(:data:`BATCHED_GRAD_OPS`); the batched events inside are priced as usual.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import Backend, MetaSupport
from flopaudit.records import DECLARED_CAUSE, Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

_KINETO_LOG = re.compile(r"^[A-Z]+:\d{4}-\d\d-\d\d [\d:]+ \d+:\d+ \w+\.cpp:\d+\]")
"""A line of the profiler library's (Kineto's) own log: stage markers, and on a
machine without a GPU "gpuGetDeviceCount failed"; not about the count."""

UNIT_NOTE = (
    "reports FLOPs (2 per multiply-accumulate in conv/mm/bmm, 1 per element in mul/add): normalised to MACs by "
    "halving each operator's FLOPs (an odd elementwise count rounded down)"
)


BACKEND = Backend(
    name="torch-profiler",
    adapter="TorchProfilerAdapter",
    description=(
        "torch.profiler.profile(with_flops=True): FLOP estimates of conv2d/mm/addmm/bmm/baddbmm/mul/add events"
    ),
    unit=Unit.FLOP,
    granularity=Granularity.ATEN_OPS,
    module="torch.profiler",
    distribution="torch",
    install="pip install 'torch>=2.1'",
    ruleset="flopaudit.reference.backend_rulesets.torch_profiler",
    meta=MetaSupport(False, "the profiler records the kernels meta tensors run, which are not the CPU ones "
                     "(probed: linear-2d reads 16672 MACs on meta, 8192 on CPU)"),
    unit_note=UNIT_NOTE,
    known_divergences={},
    order=140,
)

BATCH_NORM_EPSILON = DECLARED_CAUSE + (
    "aten::add inside the CPU batch-norm kernel: in eval mode, on an input neither contiguous nor channels-last, "
    "the kernel adds eps to the running variance as an operator (1 FLOP per channel)"
)
"""``extra`` key (a declared cause, :data:`~flopaudit.records.DECLARED_CAUSE`): MACs
(``flops // 2`` per event) of the ``aten::add`` events whose parent is a batch-norm kernel."""

RECORDED_TWICE = DECLARED_CAUSE + (
    "an operator recorded twice, inside itself, both events with an estimate: under torch.autocast, conv2d and "
    "directly called mm/addmm/bmm/baddbmm are cast and called again; a product with a sparse CSR operand calls "
    "its aten::addmm again, an add with a sparse operand its aten::add (out=)"
)
"""``extra`` key (a declared cause): MACs (``flops // 2``) of the events nested in an event of the
same name with the same estimate."""

SCRIPT_FUNCTION_OPS = DECLARED_CAUSE + (
    "estimates of operators run inside a TorchScript function called from Python (torch.jit.script): the profiler "
    "prices them from the input shapes the graph executor records, which depend on how the function ran before in "
    "the process (the same forward reads 510 or 1,302 MACs in geoopt's Poincare ball as a call without autograd "
    "came first or not)"
)
"""``extra`` key (a declared cause): MACs (``flops // 2``) of the events inside the event of a
``torch.jit.script`` function the model called (its ``RecordScope.TORCHSCRIPT_FUNCTION`` event, named
as the function); the ruleset prices the operators dispatched inside such calls 0."""

SCRIPTED_ELEMENTWISE = DECLARED_CAUSE + (
    "estimates of aten::mul and aten::add run by a scripted or traced module's TorchScript code (e3nn's compiled "
    "layers): the profiler counts one FLOP per element of the first input, and TorchScript's graph executor "
    "optimises a method after its first calls, which may reorder or rewrite those operators, so the estimate "
    "depends on how often the module ran before in the process (MACE's first forward reads 303 MACs of adds and "
    "3,024 of products inside them, every later one 207 and 3,648)"
)
"""``extra`` key (a declared cause): MACs (``flops // 2``) of the ``aten::mul``/``aten::add`` events
nested in a TorchScript method's event (``RecordScope.TORCHSCRIPT_FUNCTION``) that is not a
function the model called from Python (:data:`SCRIPT_FUNCTION_OPS`); the ruleset prices those
operators in a scripted or traced module 0."""

VMAP_OPS = DECLARED_CAUSE + (
    "estimates of operators run under torch.func.vmap (also inside jacrev and jacfwd): the profiler records each "
    "at the per-sample shapes it was called with, and again as the batched operators its batching rule runs"
)
"""``extra`` key (a declared cause): MACs (``flops // 2``) of the events inside a call of a function
``torch.func.vmap`` made (marked by the adapter with a :data:`_VMAP_MARK` event, around each call of
the ruleset's ``VMAP_CALL``); the ruleset prices the operators dispatched inside such calls 0."""

BATCHED_GRAD_OPS = DECLARED_CAUSE + (
    "estimates of operators recorded at their per-sample shapes under torch's older vmap, which "
    "torch.autograd.grad(is_grads_batched=True) and torch.autograd.functional.jacobian(vectorize=True) run: each "
    "holds the batched operator its batching rule runs, recorded again (and counted as the reference counts it)"
)
"""``extra`` key (a declared cause): MACs (``flops // 2``) of the events inside a call of a function
torch's older vmap (``torch._vmap_internals._vmap``) made (marked by the adapter with a
:data:`_LEGACY_VMAP_MARK` event) that hold an event of the same name with another estimate."""

_VMAP_MARK = "flopaudit: torch.func.vmap"
_LEGACY_VMAP_MARK = "flopaudit: torch._vmap_internals._vmap"
_LEGACY_VMAP_NAMES = ("torch._vmap_internals", "torch.autograd.functional")
"""The modules that hold torch's older ``_vmap`` as a global (``functional`` imports it by name)."""

_ELEMENTWISE = frozenset({"aten::mul", "aten::add"})
"""The profiler's elementwise estimates (one FLOP per element of the first input)."""

_TORCHSCRIPT_FUNCTION = 2
"""``torch._C._profiler.RecordScope.TORCHSCRIPT_FUNCTION``: the scope of a TorchScript function's (or
method's) own event."""

#: The batch-norm kernels whose CPU implementation can call ``aten::add`` (see the module docstring).
_BATCH_NORM_KERNELS = frozenset({"aten::native_batch_norm", "aten::_native_batch_norm_legit",
                                 "aten::_native_batch_norm_legit_no_training"})


class TorchProfilerAdapter(Adapter):
    """``with torch.profiler.profile(activities=[CPU], with_flops=True): model(...)``.

    * ``raw_total``: the sum of ``FunctionEvent.flops`` over every recorded
      event (FLOPs, whole batch).
    * ``macs``: the sum over events of ``flops // 2``. Contractions report
      exactly ``2 x MACs``; ``aten::mul``/``aten::add`` report one FLOP per
      element, which becomes half a MAC (rounded down per operator).
    * ``per_op``: MACs by operator name; ``params``: ``sum(p.numel() for p in
      model.parameters())`` (the profiler counts none).
    * ``extra``: :data:`BATCH_NORM_EPSILON`, where the batch-norm kernel ran an ``aten::add``;
      :data:`RECORDED_TWICE`, where an operator was recorded twice, inside itself;
      :data:`SCRIPT_FUNCTION_OPS`, where the model called a ``torch.jit.script`` function;
      :data:`SCRIPTED_ELEMENTWISE`, where a scripted or traced module's code ran ``aten::mul``/``aten::add``;
      :data:`VMAP_OPS`, where it ran a function under ``torch.func.vmap``;
      :data:`BATCHED_GRAD_OPS`, where it took batched gradients (torch's older vmap).

    The model runs as ``model(*args, **kwargs)`` in its own mode with
    autograd on (as in torch's profiler recipes).
    """

    backend = BACKEND


    def options(self) -> dict[str, Any]:
        return {"activities": ("CPU",), "with_flops": True, "record_shapes": False, "grad_enabled": True}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        from torch.profiler import ProfilerActivity, profile

        from flopaudit.adapters.base import count_params
        from flopaudit.isolation import quiet

        with quiet() as printed, _noting_script_functions() as scripted, _marking_vmap(), _marking_legacy_vmap():
            with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=False) as prof:
                model(*inputs.args, **inputs.kwargs)
        messages = [line.strip() for line in printed.getvalue().splitlines()
                    if line.strip() and not _KINETO_LOG.match(line.strip())]
        raw = 0
        macs = 0
        per_op: dict[str, int] = {}
        declared = {BATCH_NORM_EPSILON: 0, RECORDED_TWICE: 0, SCRIPT_FUNCTION_OPS: 0, SCRIPTED_ELEMENTWISE: 0,
                    VMAP_OPS: 0, BATCHED_GRAD_OPS: 0}
        events = prof.events()
        per_sample = _per_sample_records(events)
        for event in events:
            flops = int(event.flops or 0)
            if not flops:
                continue
            raw += flops
            macs += flops // 2
            per_op[event.name] = per_op.get(event.name, 0) + flops // 2
            parent = event.cpu_parent
            if parent is None:
                continue
            if scripted and _inside(event, lambda e: e.scope == _TORCHSCRIPT_FUNCTION and e.name in scripted):
                declared[SCRIPT_FUNCTION_OPS] += flops // 2
            elif event.name in _ELEMENTWISE and _inside(event, lambda e: e.scope == _TORCHSCRIPT_FUNCTION):
                declared[SCRIPTED_ELEMENTWISE] += flops // 2
            elif _inside(event, _is_vmap_mark):
                declared[VMAP_OPS] += flops // 2
            elif id(event) in per_sample:
                declared[BATCHED_GRAD_OPS] += flops // 2
            elif event.name == "aten::add" and parent.name in _BATCH_NORM_KERNELS:
                declared[BATCH_NORM_EPSILON] += flops // 2
            elif parent.name == event.name and int(parent.flops or 0) == flops:
                declared[RECORDED_TWICE] += flops // 2
        return RawCount(raw_total=raw, macs=macs, params=count_params(model), per_op=per_op, warnings=messages,
                        extra={k: v for k, v in declared.items() if v})


@contextlib.contextmanager
def _noting_script_functions() -> Iterator[set[str]]:
    r"""For the block, the names of the ``torch.jit.script`` functions called from Python (each call goes
    through ``ScriptFunction.__call__``; a scripted module's methods are ``ScriptMethod``\s, not these)."""
    import torch

    names: set[str] = set()
    call = torch._C.ScriptFunction.__call__

    def noting(self: Any, *args: Any, **kwargs: Any) -> Any:
        names.add(self.name)
        return call(self, *args, **kwargs)

    torch._C.ScriptFunction.__call__ = noting  # type: ignore[method-assign]
    try:
        yield names
    finally:
        torch._C.ScriptFunction.__call__ = call  # type: ignore[method-assign]


@contextlib.contextmanager
def _marking_vmap() -> Iterator[None]:
    """For the block, each call of a function ``torch.func.vmap`` made runs inside a profiler range
    named :data:`_VMAP_MARK` (where this torch has no ``VMAP_CALL``, nothing is marked)."""
    import importlib

    from torch.autograd.profiler import record_function

    from flopaudit.reference.backend_rulesets.torch_profiler import VMAP_CALL

    owner_path, _, name = VMAP_CALL.rpartition(".")
    try:
        owner = importlib.import_module(owner_path)
        call = getattr(owner, name)
    except (ImportError, AttributeError):
        yield
        return

    def marked(*args: Any, **kwargs: Any) -> Any:
        with record_function(_VMAP_MARK):
            return call(*args, **kwargs)

    setattr(owner, name, marked)
    try:
        yield
    finally:
        setattr(owner, name, call)


@contextlib.contextmanager
def _marking_legacy_vmap() -> Iterator[None]:
    """For the block, each function torch's older vmap (``torch._vmap_internals._vmap``) makes runs
    inside a profiler range named :data:`_LEGACY_VMAP_MARK` when called."""
    import functools
    import importlib

    from torch.autograd.profiler import record_function

    def marking(make: Callable[..., Any]) -> Callable[..., Any]:
        def making(*args: Any, **kwargs: Any) -> Any:
            batched = make(*args, **kwargs)

            @functools.wraps(batched)
            def marked(*call_args: Any) -> Any:
                with record_function(_LEGACY_VMAP_MARK):
                    return batched(*call_args)

            return marked

        return making

    owners = []
    for name in _LEGACY_VMAP_NAMES:
        try:
            owner = importlib.import_module(name)
            owners.append((owner, owner._vmap))
        except (ImportError, AttributeError):
            continue
    for owner, make in owners:
        owner._vmap = marking(make)
    try:
        yield
    finally:
        for owner, make in owners:
            owner._vmap = make


def _per_sample_records(events: Any) -> set[int]:
    """``id`` of each event with an estimate, inside a :data:`_LEGACY_VMAP_MARK` range, that holds an
    event of its own name with another estimate (the batched operator its batching rule ran)."""
    found: set[int] = set()
    for event in events:
        flops = int(event.flops or 0)
        if not flops:
            continue
        parent = event.cpu_parent
        while parent is not None and parent.name != event.name and parent.name != _LEGACY_VMAP_MARK:
            parent = parent.cpu_parent
        if parent is None or parent.name == _LEGACY_VMAP_MARK or int(parent.flops or 0) in (0, flops):
            continue
        if _inside(parent, _is_legacy_vmap_mark):
            found.add(id(parent))
    return found


def _inside(event: Any, marks: Callable[[Any], bool]) -> bool:
    """Is ``event`` nested in an event ``marks`` picks?"""
    parent = event.cpu_parent
    while parent is not None:
        if marks(parent):
            return True
        parent = parent.cpu_parent
    return False


def _is_vmap_mark(event: Any) -> bool:
    return event.name == _VMAP_MARK


def _is_legacy_vmap_mark(event: Any) -> bool:
    return event.name == _LEGACY_VMAP_MARK


__all__ = ["BATCHED_GRAD_OPS", "RECORDED_TWICE", "BATCH_NORM_EPSILON", "SCRIPTED_ELEMENTWISE", "SCRIPT_FUNCTION_OPS", "TorchProfilerAdapter", "UNIT_NOTE", "VMAP_OPS"]
