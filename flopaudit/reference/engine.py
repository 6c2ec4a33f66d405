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
they are; buffer and parameter values the pass writes, data it gives a
parameter and the table entries it replaces are put back
(:class:`~flopaudit.reference.buffers.BufferGuard`).

The dispatch mode sees every operator below autograd, so functional calls
(``F.interpolate``, ``torch.matmul``, ``@``, ``einsum``, ``x + y``, SDPA,
RNNs) are seen like module calls, and every call is recorded as it runs:
nothing about a module's operators is assumed from an earlier call. Composite
operators are seen as what they decompose into; an operator that reaches the
mode without a formula but with a composite decomposition is decomposed (its
parts are recorded); a ``torch.library.custom_op`` without a formula is run
through its Python kernel so that the operators it dispatches are recorded
(listed in ``Recording.traced``); anything else without a formula is
recorded with ``supported=False``.

Each operator call with a formula is priced through one seam, a
:class:`~flopaudit.reference.caching.Pricer`: afresh, or from the process's
pricing memo; each operator's facts are read once per process, or once per
recording with the cache off (:mod:`flopaudit.reference.caching`, which says
why neither can change an answer and how to turn them off).

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
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch._ops import HigherOrderOperator
from torch.nn.modules import module as _module_mod
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from flopaudit.eager import compiled_code_eager
from flopaudit.inputs import ModelInputs, holds_meta, iter_tensors
from flopaudit.memos import empty_memos
from flopaudit.model_code import model_namespaces
from flopaudit.module_paths import ancestors
from flopaudit.passes import Pass
from flopaudit.reference.autograd_links import GradientLinks
from flopaudit.reference.buffers import BufferGuard
from flopaudit.reference.caching import Pricer, clear_caches, facts_table, pricer
from flopaudit.reference.call_pricing import CallInputs, OperatorCall, PricedCall, call_arg, describe_inputs, price
from flopaudit.reference.events import (
    PATCHED_CALL_PREFIX,
    ModuleCall,
    OpEvent,
    Recording,
    Shape,
    TensorArg,
    make_event,
    make_module_call,
)
from flopaudit.reference.gradient_sums import GradientSums
from flopaudit.reference.module_rules import _RULES as _MODULE_RULES
from flopaudit.reference.module_rules import module_rule_for
from flopaudit.reference.module_tree import FactsReader, ModuleFacts, walk
from flopaudit.reference.operators import CONTROL_FLOW, OperatorFacts, custom_op_kernel, operator_facts, run
from flopaudit.reference.patching import (
    IMPORTED_SUFFIX,
    answering_tracing,
    holds_graph_code,
    patched,
    takes_over,
    tracking_autograd_functions,
)
from flopaudit.reference.registry import Category, Cost, formula_name
from flopaudit.reference.tensors import int_shape, nbytes, op_tensors, shapes, size_now
from flopaudit.training import train_step

#: Fused operators that a module runs only when none of its submodules has a
#: hook: a recording with ``module_hooks`` can differ from one without only
#: where one of them ran (in torch: ``nn.TransformerEncoderLayer``).
HOOK_SENSITIVE_OPS = frozenset({"aten._transformer_encoder_layer_fwd.default"})

_Tensor = torch.Tensor

IN_ANOTHER_THREAD = "in_another_thread:"
"""Prefix of the unpriced event standing for a module call made in another thread (its class follows)."""

#: Categories of operators whose operands no ruleset reads (views, copies, allocation).
_NO_OPERANDS = frozenset({Category.ZERO_COST, Category.DATA_MOVEMENT})


@dataclass(slots=True)
class ModuleFrame:
    """One module call: where the operators it runs are recorded, and, once it
    has returned, what its :class:`ModuleCall` needs (:attr:`_Recorder.outside`
    stands for no module: operators run outside every module of the model)."""

    path: str
    module_type: str
    in_leaf: bool
    stack: tuple[str, ...]
    """Paths of the running modules, root first, this one last."""
    call_index: int
    """Index of this call's :class:`ModuleCall` (-1: not recorded, inside a module rule's module)."""
    first_event: int
    parent: int = -1
    """Index of the enclosing module call."""
    rule_name: str = ""
    """Name of the module rule pricing this call in place of its operators ('' if none)."""
    module: nn.Module | None = None
    """Set when the call returns (with what follows): :meth:`_Recorder.finish` makes its :class:`ModuleCall`."""
    phase: str = "forward"
    input_shapes: tuple[Shape, ...] = ()
    output_shapes: tuple[Shape, ...] = ()
    end_event: int = 0
    copied: bool = False
    """A call of a copy of the module at ``path`` made during the pass (see :func:`_copied_from`)."""


class _Recorder:
    """What one recorded pass keeps: the events and module calls so far, the
    module calls running now, the patched calls and custom Functions running now."""

    def __init__(self, model: nn.Module, cache: bool | None) -> None:
        self.model = model
        self.rec = Recording()
        self.pricer: Pricer = pricer(cache, self.rec.notes)
        self.tree = walk(model)
        self.paths, self.leaf = self.tree.paths, self.tree.leaf
        self.frames: list[ModuleFrame] = []
        self.outside = ModuleFrame("", type(model).__name__, self.tree.leaf.get(id(model), False), ("",), -1, 0)
        """Where an operator run outside every module of the model is recorded (the root)."""
        self.rule_depth = 0
        """>0 inside a module priced by a module rule: its operators are not recorded."""
        self.functions: list[str] = []
        """Class names of the custom ``autograd.Function`` calls running now, innermost last."""
        self.thread = threading.get_ident()
        self.other_threads: dict[int, int] = {}
        """Thread id -> how many calls of the model's modules are running in it, for threads
        other than the recording one (see :meth:`_elsewhere`)."""
        self.facts: dict[Any, OperatorFacts] = facts_table(cache)
        """Operator facts, each looked up once per process, or once per recording with the cache off."""
        self.buffers = BufferGuard(self.tree.buffers, self.tree.params, self.tree.modules)
        self.module_facts: dict[int, ModuleFacts] = {}
        """Each module's facts, read once per recording (see :meth:`finish`)."""
        self.read_facts = FactsReader()
        self.patched_stack: list[str] = []
        """Paths of the patched calls running now, outermost first."""
        self.taken_over: list[bool] = []
        """For each position of ``patched_stack`` (and stale ones past it): whether a
        ``__torch_function__`` override took that call over (see :attr:`OpEvent.taken_over`)."""
        self.recorder_depth = 0
        """>0 while the recorder's own code runs (dispatch handling): patched
        calls made there are not the model's."""
        self.on_meta = False
        """Whether the model or its inputs are on the meta device (set by :func:`record`; see
        :meth:`_Mode._run_on_meta`)."""
        self.links: GradientLinks | None = None
        """Set when a training step is recorded (:meth:`start_step`), else None."""
        self.stepping_optimizer = False
        """True while a training step's optimizer step runs."""
        self.inputs = ModelInputs((), {})
        """The pass's inputs (:func:`record`)."""
        self.input_ids: set[int] | None = None
        """Ids of the inputs' tensors, once :meth:`_learn_operands` has run."""
        self.gradient_sums: GradientSums | None = None
        """Set for a pass that is not a training step (:func:`record`): which adds are autograd's
        engine summing gradients, where the forward differentiates."""
        self.copies: dict[int, nn.Module] = {}
        """The copies of the model's modules made during the pass and called so far (see
        :func:`_copied_from`; their copied hooks are taken off when the pass ends)."""

    # -- a training step (flopaudit.training runs it; these are its StepHooks) ----

    def start_step(self, model: nn.Module, inputs: ModelInputs) -> None:
        """Record a training step from here on: phases, backward attribution, operand kinds."""
        self.links = GradientLinks()
        self.step_phase = "forward"
        self._learn_operands(model, inputs)
        self.frames_at: dict[str, ModuleFrame] = {}
        self.frames_of_events: dict[int, ModuleFrame] = {}
        self.optimizer_events: list[tuple[Any, ...]] = []
        """The optimizer's events until it is over: (index, operator facts, priced call, custom
        Function, the module path of its parameter or None); placed by :meth:`_place_optimizer_events`."""
        self.optimizer_owners: dict[int, str] = {}
        """While an optimizer step runs: ``id(tensor) -> module path`` of the parameter the
        tensor belongs to: each stand-in, its gradient and its state (given before the step,
        :meth:`optimizer_tensors`), and what operators make from them as they run. An id is
        read only while its tensor is alive: a temporary freed during the step may give its
        id to a later parameter's state."""

    def _learn_operands(self, model: nn.Module, inputs: ModelInputs) -> None:
        """What :meth:`_operands` reads: the model's parameters and the inputs' tensors."""
        self.operand_kinds: dict[int, str] = {}
        """``id(parameter)`` -> ``"E"`` (held by an embedding module) or ``"W"``; ``id(buffer)`` -> ``"B"``."""
        self.param_paths: dict[int, str] = {}
        """``id(parameter)`` -> path of the module holding it (its first holder)."""
        self.modules_by_path: dict[str, nn.Module] = {}
        buffers: list[torch.Tensor] = []
        for path, module in model.named_modules():
            self.modules_by_path[path] = module
            kind = "E" if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) else "W"
            for p in module._parameters.values():
                if p is not None and id(p) not in self.param_paths:
                    self.param_paths[id(p)] = path
                    self.operand_kinds[id(p)] = kind
            buffers.extend(b for b in module._buffers.values() if b is not None)
        for b in buffers:
            self.operand_kinds.setdefault(id(b), "B")
        self.input_ids = {id(t) for t in inputs.tensors()}

    def _inference_operands(self, tensors: Sequence[torch.Tensor]) -> str:
        """:meth:`_operands` in an inference pass (asked for batched products only: the
        parameters and inputs are looked at on the first)."""
        if self.input_ids is None:
            self._learn_operands(self.model, self.inputs)
        return self._operands(tensors)

    def phase(self, name: str) -> None:
        assert self.links is not None
        self.links.settle()
        if self.stepping_optimizer and name != "optimizer":
            self._place_optimizer_events()
        if name:
            self.step_phase = name
        self.stepping_optimizer = name == "optimizer"

    def optimizer_tensors(self, owners: Mapping[int, str]) -> None:
        """Before the optimizer step: the module holding the parameter that each stand-in,
        its gradient and the state the optimizer made for it belongs to (see
        :attr:`optimizer_owners`)."""
        self.optimizer_owners = dict(owners)

    def _optimizer_owner(self, tensors: Sequence[torch.Tensor], out: Any) -> str | None:
        """The module whose parameter an optimizer's operator call works on: the owner of its
        first tensor argument that has one; its outputs take that owner (or lose a stale one:
        ids are looked up only while their tensors are alive)."""
        owners = self.optimizer_owners
        owner = None
        for t in tensors:
            owner = owners.get(id(t))
            if owner is not None:
                break
        for o in iter_tensors(out):
            if owner is None:
                owners.pop(id(o), None)
            else:
                owners[id(o)] = owner
        return owner

    def _place_optimizer_events(self) -> None:
        """Record the optimizer's events in the module holding the parameter each updates
        (:meth:`_optimizer_owner`); an event on no tensor of a parameter (a constant, a
        ``step`` counter made afresh) belongs to the parameter updated just before (the
        optimizer steps one parameter at a time), events before the first to the first.
        # NB: a zero-cost operator that makes a parameter's state before that parameter's
        # first state tensor (the ``step`` counter) lands on the parameter before.
        """
        owner, leading, frame = None, [], self.outside
        for pending in self.optimizer_events:
            found = pending[4]
            if found is not None and found != owner:
                owner, frame = found, self._frame_at(found)
            if owner is None:
                leading.append(pending)
                continue
            if leading:
                for earlier in leading:
                    self._place_optimizer_event(earlier, frame)
                leading = []
            self._place_optimizer_event(pending, frame)
        for earlier in leading:
            self._place_optimizer_event(earlier, self.outside)
        self.optimizer_events = []
        self.optimizer_owners = {}

    def _place_optimizer_event(self, pending: tuple[Any, ...], where: ModuleFrame) -> None:
        index, facts, p, autograd_function, _ = pending
        self.rec.events[index] = _event(facts, p, where, -1, autograd_function, [], "optimizer", -1, "")

    def phase_now(self) -> str:
        """The phase the operator dispatched now belongs to (a backward running with
        autograd on is recomputing forward work: activation checkpointing)."""
        if self.links is None:
            return "forward"
        phase = self.step_phase
        if phase == "backward" and torch.is_grad_enabled() and torch._C._current_autograd_node() is not None:
            return "recompute"
        return phase

    def _frame_at(self, path: str) -> ModuleFrame:
        """A frame for the module at ``path`` outside any call of it (optimizer steps, gradient accumulation)."""
        frame = self.frames_at.get(path)
        if frame is None:
            module = self.modules_by_path.get(path, self.model)
            frame = self.frames_at[path] = ModuleFrame(path, type(module).__name__, self.leaf.get(id(module), False),
                                                       ancestors(path), -1, 0)
        return frame

    def _frame_of_event(self, index: int) -> ModuleFrame:
        """A frame where event ``index`` ran (a backward operator of it runs there too)."""
        frame = self.frames_of_events.get(index)
        if frame is None:
            e = self.rec.events[index]
            frame = self.frames_of_events[index] = ModuleFrame(e.module_path, e.module_type, e.in_leaf,
                                                               e.module_stack, e.call_index, 0)
        return frame

    def _backward_where(self) -> tuple[ModuleFrame, int]:
        """Where the backward operator dispatched now ran, and the event it differentiates."""
        assert self.links is not None
        index, nearest, param = self.links.running()
        if index >= 0:
            return self._frame_of_event(index), index
        if param is not None:
            return self._frame_at(self.param_paths.get(id(param), "")), -1
        if nearest >= 0:
            return self._frame_of_event(nearest), -1
        return self.outside, -1

    def _operands(self, tensors: Sequence[torch.Tensor]) -> str:
        """One letter per tensor input (see :attr:`OpEvent.operands`)."""
        kinds, inputs = self.operand_kinds, self.input_ids
        letters = []
        for t in tensors:
            kind = kinds.get(id(t))
            if kind is None:
                base = t._base
                if base is not None:
                    kind = kinds.get(id(base))
                if kind is None:
                    kind = "X" if id(t) in inputs or (base is not None and id(base) in inputs) else "A"
            letters.append(kind if t.requires_grad else kind.lower())
        return "".join(letters)

    def _step_where(self, phase: str) -> tuple[ModuleFrame, int]:
        """Where a training step's operator dispatched now runs, and for a backward one the
        forward event it differentiates (-1 otherwise)."""
        if self.frames:
            return self.frames[-1], -1
        if phase == "backward":
            return self._backward_where()
        if phase == "recompute":
            return self._backward_where()[0], -1
        return self.outside, -1

    # -- module calls -------------------------------------------------------

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        key = id(module)
        path = self.paths.get(key)
        copied = path is None
        if copied:  # a module outside the counted model: followed only as a copy of one of its modules
            self.rec.outside_calls += 1
            path = _copied_from(module)
            if path is None or threading.get_ident() != self.thread:
                return
            self.copies[key] = module
        elif threading.get_ident() != self.thread and not self._recording_here():
            self._elsewhere(module, path, 1)
            return
        frames = self.frames
        recorded = not self.rule_depth
        rule = module_rule_for(module) if recorded and _MODULE_RULES else None
        calls = self.rec.calls
        if frames:
            parent = frames[-1]
            stack, parent_index = parent.stack + (path,), parent.call_index
        else:  # the root's forward, or a module a backward recomputes (activation checkpointing)
            stack, parent_index = ancestors(path), -1
        leaf = not any(m is not None for m in module._modules.values()) if copied else self.leaf[key]
        frames.append(ModuleFrame(path, type(module).__name__, leaf, stack,
                                  len(calls) if recorded else -1, len(self.rec.events), parent_index,
                                  formula_name(rule) if rule is not None else "",
                                  phase=self.phase_now() if self.links is not None else "forward", copied=copied))
        if recorded:
            calls.append(None)  # type: ignore[arg-type]  # a placeholder, filled when the call returns (start order)
        if rule is not None:
            self.rule_depth += 1

    def post_hook(self, module: nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        # (kwargs, output) normally; torch calls always_call global hooks with
        # (output,) only when the forward raised.
        returned = len(rest) == 2
        kwargs, output = rest if returned else ({}, rest[0] if rest else None)
        if id(module) not in self.paths:
            if id(module) not in self.copies or threading.get_ident() != self.thread:
                return
        elif threading.get_ident() != self.thread and not self._recording_here():
            self._elsewhere(module, self.paths[id(module)], -1)
            return
        if not self.frames:
            return
        frame = self.frames.pop()
        if frame.rule_name:
            self.rule_depth -= 1
        if not returned:  # the forward raised: unwind the stack, no module-rule event
            self._close(frame, module, args, kwargs, None)
            if self.phase_now() != "recompute":  # checkpointing stops a recomputation by raising
                self.note(f"module {frame.path or '<root>'} raised during its forward")
            return
        if frame.rule_name:
            self._module_rule_event(frame, module, args, kwargs, output)
        self._close(frame, module, args, kwargs, output)

    def _recording_here(self) -> bool:
        """Is this recorder's dispatch mode active in the calling thread? (Autograd carries it to
        the threads that run a backward on an accelerator, where checkpointed modules run again.)"""
        from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

        return any(isinstance(m, _Mode) and m.recorder is self for m in _get_current_dispatch_mode_stack())

    def _elsewhere(self, module: nn.Module, path: str, step: int) -> None:
        """A module of the model called in another thread (``step``: 1 its call starts, -1 it
        ends): the dispatch mode is the recording thread's only, so nothing it runs is seen. The
        outermost such call is recorded as an operator without a formula, ``in_another_thread:<its
        class>``, and said in a note: the count is known to miss its work, never silently."""
        tid = threading.get_ident()
        depth = self.other_threads.get(tid, 0)
        self.other_threads[tid] = depth + step
        if step < 0 or depth:
            return
        kind = type(module).__name__
        self.rec.events.append(OpEvent(
            op=f"{IN_ANOTHER_THREAD}{kind}", module_path=path, module_type=kind, module_stack=ancestors(path),
            in_leaf=self.leaf.get(id(module), False), category=None, macs=0, extra_flops=0, bytes_read=0,
            bytes_written=0, input_shapes=(), output_shapes=(), supported=False, formula="", call_index=-1,
        ))
        self.note(f"module {path or '<root>'} ran in another thread: a dispatch mode records the thread it was "
                  "entered in only, so its operators are not counted")

    def _module_rule_event(self, frame: ModuleFrame, module: nn.Module, args: tuple[Any, ...],
                           kwargs: Mapping[str, Any], output: Any) -> None:
        rule = module_rule_for(module)
        self.recorder_depth += 1  # a reference module rule's own torch calls are not the model's
        try:
            cost = rule(module, args, output) if rule is not None else Cost(0, 0, Category.ZERO_COST)
        finally:
            self.recorder_depth -= 1
        if not isinstance(cost, Cost):
            raise TypeError(f"module rule {frame.rule_name} returned {type(cost).__name__}, not Cost")
        self.rec.events.append(OpEvent(
            op=f"module_rule:{type(module).__name__}", module_path=frame.path, module_type=frame.module_type,
            module_stack=frame.stack, in_leaf=frame.in_leaf, category=cost.category, macs=cost.macs,
            extra_flops=cost.extra_flops, bytes_read=nbytes((args, kwargs)), bytes_written=nbytes(output),
            input_shapes=shapes((args, kwargs)), output_shapes=shapes(output), supported=True,
            formula=frame.rule_name, call_index=frame.call_index, phase=self.phase_now(),
        ))

    def _close(self, frame: ModuleFrame, module: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any],
               output: Any) -> None:
        """Fill the call's placeholder with what its record needs from the call."""
        if frame.call_index < 0:
            return
        if len(args) == 1 and not kwargs and isinstance(args[0], _Tensor) and not args[0].is_nested:
            in_shapes = (int_shape(args[0].shape),)  # the common call: one tensor
        else:
            in_shapes = shapes((args, kwargs))
        if isinstance(output, _Tensor) and not output.is_nested:
            out_shapes = (int_shape(output.shape),)
        else:
            out_shapes = shapes(output)
        frame.module, frame.input_shapes, frame.output_shapes = module, in_shapes, out_shapes
        frame.end_event = len(self.rec.events)
        self.rec.calls[frame.call_index] = frame  # type: ignore[call-overload]

    def finish(self) -> Recording:
        """Make the module-call records (and the events of an optimizer step that
        did not finish, at the root).
        # NB: a module's attributes are read here, after the pass: one that
        # changes its own attributes while running is recorded as it ends.
        """
        if self.links is not None:
            for pending in self.optimizer_events:
                self._place_optimizer_event(pending, self.outside)
            if self.on_meta and any(e.op == _MATH_ATTENTION_SOFTMAX for e in self.rec.events if e is not None):
                self.note(META_ATTENTION_BACKWARD)
        calls = self.rec.calls
        for i, c in enumerate(calls):
            if isinstance(c, ModuleFrame):
                calls[i] = self._module_call(c)
        return self.rec

    def _module_call(self, frame: ModuleFrame) -> ModuleCall:
        module = frame.module
        facts = self.module_facts.get(id(module))
        if facts is None:
            facts = self.module_facts[id(module)] = self.read_facts(module)
        return make_module_call(
            frame.path, frame.module_type, facts.class_path, frame.stack, frame.in_leaf, frame.input_shapes,
            frame.output_shapes, facts.attrs, facts.param_shapes, (frame.first_event, frame.end_event), frame.parent,
            frame.rule_name, self.tree.aliases.get(id(module), ()), frame.phase,
            self.tree.wrappers.get(id(module), ()) if self.tree.wrappers else (), frame.copied,
        )

    # -- operator calls -----------------------------------------------------

    def operator(self, func: Any) -> OperatorFacts:
        """The facts of ``func``, looked up once per process (once per recording with the cache off)."""
        facts = self.facts.get(func)
        if facts is None:
            facts = self.facts[func] = operator_facts(func)
        return facts

    def add_event(self, facts: OperatorFacts, p: PricedCall, tensors: Sequence[torch.Tensor] = (),
                  out: Any = None, summed: str = "") -> None:
        """Record a priced call where it runs now. In a training step (``tensors``: its
        tensor inputs, ``out``: its output) also its phase, what it differentiates and
        its operands; an optimizer's calls are recorded once the step is over
        (:meth:`optimizer_tensors`)."""
        links, events = self.links, self.rec.events
        phase, forward_event, operands = "forward", -1, ""
        if links is None:
            where = self.frames[-1] if self.frames else self.outside
            if facts.batched_product:
                operands = self._inference_operands(tensors)
        else:
            phase = self.phase_now()
            if phase == "optimizer":
                self.optimizer_events.append((len(events), facts, p, self.functions[-1] if self.functions else "",
                                              self._optimizer_owner(tensors, out)))
                events.append(None)  # type: ignore[arg-type]
                return
            where, forward_event = self._step_where(phase)
            if phase != "backward" and p.category not in _NO_OPERANDS:
                operands = self._operands(tensors)
        patched_now = self.patched_stack
        events.append(_event(facts, p, where, where.call_index, self.functions[-1] if self.functions else "",
                             patched_now, phase, forward_event, operands,
                             self._taken_over(len(patched_now)) if True in self.taken_over else (), summed))
        if links is not None and phase != "backward":
            links.expect(out, len(events) - 1)

    def add_unpriced_event(self, func: Any, args: Sequence[Any], kwargs: Mapping[str, Any], out: Any,
                           inputs: CallInputs) -> None:
        """Record a call of an operator without a formula (or a custom op whose kernel did no costed work)."""
        facts = self.operator(func)
        self.add_event(facts, price(OperatorCall(func, facts, args, kwargs, out, inputs), self.rec.notes).priced,
                       inputs.tensors, out)

    # -- patched Python calls (see flopaudit.reference.patching) -------------

    def patched_call(self, path: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
        """Record a call of a patched callable; -1 if it is not the model's."""
        if self.recorder_depth or self.rule_depth:
            return -1
        where = self.frames[-1] if self.frames else self.outside
        depth = len(self.patched_stack)
        del self.taken_over[depth:]
        self.taken_over.append(takes_over(args, kwargs))
        op_args = tuple((f"#{i}", call_arg(v)) for i, v in enumerate(args))
        op_args += tuple((k, call_arg(v)) for k, v in kwargs.items())
        self.rec.events.append(OpEvent(
            op=PATCHED_CALL_PREFIX + path, module_path=where.path, module_type=where.module_type,
            module_stack=where.stack, in_leaf=where.in_leaf, category=Category.ZERO_COST, macs=0, extra_flops=0,
            bytes_read=0, bytes_written=0, input_shapes=shapes((args, kwargs)), output_shapes=(),
            formula="patched-call", call_index=where.call_index, op_args=op_args,
            autograd_function=self.functions[-1] if self.functions else "",
            patched_in=self.patched_stack[0] if self.patched_stack else "",
            patched_stack=tuple(self.patched_stack), phase=self.phase_now(), taken_over=self._taken_over(depth + 1),
            in_hooked_copy=where.copied,
        ))
        return len(self.rec.events) - 1

    def _taken_over(self, depth: int) -> tuple[int, ...]:
        """The positions below ``depth`` of the patched calls running now that an override took over."""
        return tuple(i for i, taken in enumerate(self.taken_over[:depth]) if taken)

    def patched_return(self, path: str, index: int, out: Any) -> None:
        """Complete the call's event with its output shapes."""
        events = self.rec.events
        event = events[index] if 0 <= index < len(events) else None
        if isinstance(event, OpEvent) and event.op == PATCHED_CALL_PREFIX + path:
            events[index] = dataclasses.replace(event, output_shapes=shapes(out))

    def note(self, text: str) -> None:
        self.rec.notes.append(text)


def _event(facts: OperatorFacts, p: PricedCall, where: ModuleFrame, call_index: int, autograd_function: str,
           patched_now: list[str], phase: str, forward_event: int, operands: str,
           taken_over: tuple[int, ...] = (), summed: str = "") -> OpEvent:
    """The event of a priced call run at ``where``."""
    return make_event(
        facts.name, where.path, where.module_type, where.stack, where.in_leaf, p.category, p.macs, p.extra_flops,
        p.bytes_read, p.bytes_written, p.input_shapes, p.output_shapes, p.supported, facts.formula_name, call_index,
        p.op_args, "", autograd_function, patched_now[0] if patched_now else "",
        tuple(patched_now) if patched_now else (), taken_over, phase, forward_event, operands, p.integer, p.sparse,
        "", where.copied, summed,
    )


class _Mode(TorchDispatchMode):
    # Higher-order operators (``flex_attention`` in eager mode) reach __torch_dispatch__ as
    # operators without a formula: their dense kernel is traced (_trace_kernel), else they
    # run and are recorded as unsupported.
    supports_higher_order_operators = True

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._disable_dynamo (about 2 us an
        # operator) so that Dynamo does not compile inside it. This mode is entered only
        # inside compiled_code_eager() (stance force_eager, see record()): Dynamo compiles
        # no frame while it is active, so the wrapper would buy nothing.
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        rec = self.recorder
        facts = rec.facts.get(func) or rec.operator(func)
        if kwargs is None:
            kwargs = {}
        rec.recorder_depth += 1  # patched calls made from here on are the recorder's, not the model's
        if rec.links is not None and rec.links.pending is not None:
            rec.links.settle()  # the previous operator's output has its autograd node by now
        try:
            if facts.writes and rec.buffers.guarding and not rec.stepping_optimizer:
                rec.buffers.before(facts, args, kwargs)  # (an optimizer step writes to its stand-ins only)
            if facts.query or rec.rule_depth:
                return func(*args, **kwargs)
            if facts.formula is None:
                return self._without_formula(func, args, kwargs)
            inputs = describe_inputs(args, kwargs)  # before the op runs: an in-place op may resize them
            summed = rec.gradient_sums.kind(args) if func is _ADD and rec.gradient_sums is not None else ""
            out = self._run_on_meta(func, facts, args, kwargs) if rec.on_meta else func(*args, **kwargs)
            rec.add_event(facts, rec.pricer.price(OperatorCall(func, facts, args, kwargs, out, inputs)), inputs.tensors,
                          out, summed)
            return out
        finally:
            rec.recorder_depth -= 1

    def _run_on_meta(self, func: Any, facts: OperatorFacts, args: Any, kwargs: Any) -> Any:
        """Run an operator of a model on the meta device (by its meta shortcut, if it has one: see
        :func:`~flopaudit.reference.operators.run`). Many of torch's meta kernels are Python
        (``torch._meta_registrations``, ``torch._refs``, decompositions) and call ``torch`` and
        ``torch.nn.functional`` functions: a counter that patches those sees these calls on meta
        (calflops sees ``torch.cdist``'s product through ``torch.matmul`` there, not on CPU), so
        patched calls made inside the kernel are recorded as the model's."""
        rec = self.recorder
        depth = rec.recorder_depth
        rec.recorder_depth = depth - 1  # (the depth outside this operator's dispatch)
        # A shortcut builds the outputs without dispatching the operator: not taken where a mode
        # entered outside this one would miss it (the liveness mode of a trace's dead work).
        shortcut = facts.meta_shortcut is not None and not torch._C._len_torch_dispatch_stack()
        try:
            return run(func, facts, args, kwargs) if shortcut else func(*args, **kwargs)
        finally:
            rec.recorder_depth = depth

    def _without_formula(self, func: Any, args: Any, kwargs: Any) -> Any:
        """An operator without a formula: decomposed if it can be, else a
        custom op's Python kernel traced, else recorded as unsupported."""
        tensors = op_tensors(args, kwargs)
        inputs = CallInputs(tensors, [size_now(t) for t in tensors], None)
        if not isinstance(func, HigherOrderOperator):  # (those have no decomposition, only kernels)
            events = self.recorder.rec.events
            first = len(events)
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                # A composite operator reaches the mode only where autograd did not decompose it
                # (inside torch.inference_mode): a dispatch-mode counter sees it whole. The
                # outermost one is named (a pending optimizer event is None until placed).
                name = self.recorder.operator(func).name
                events[first:] = [e if e is None else dataclasses.replace(e, decomposed_from=name)
                                  for e in events[first:]]
                return decomposed
        traced = self._trace_kernel(func, args, kwargs, inputs)
        if traced is not _NOT_TRACED:
            return traced
        out = func(*args, **kwargs)
        if not tensors and not any(True for _ in iter_tensors(out)):
            return out  # no tensor in or out (e.g. torchvision._cuda_version): a query, not work
        self.recorder.add_unpriced_event(func, args, kwargs, out, inputs)
        return out

    def _trace_kernel(self, func: Any, args: Any, kwargs: Any, inputs: CallInputs) -> Any:
        """Run a formula-less ``torch.library.custom_op`` through its Python kernel, or a
        higher-order operator through its dense kernel (``flex_attention``'s math
        attention, what eager mode runs on the CPU), recording the operators it calls
        (they are what the op computes).

        Used only when no formula is registered. If the kernel fails (e.g. on
        meta tensors) its partial events are dropped and the op is run and
        reported as unsupported as usual; if it dispatches no operator with a
        cost (only views, copies or conversions: its work is in numpy, Triton
        or C++ that the mode cannot see) the op is reported as unsupported
        too, never silently free; so is one whose costed operators do less than one FLOP per
        element of its outputs (its work is done elsewhere too).
        # NB: a kernel doing part of its work outside torch is undercounted;
        # register a formula for such ops. Traced ops are listed in
        # ``Recording.traced``. Control flow (``torch.cond``, ``while_loop``; see
        # :data:`~flopaudit.reference.operators.CONTROL_FLOW`) is not an opaque op: the
        # operators of the branch it runs are recorded as the model's own.
        """
        kernel = custom_op_kernel(func, args, kwargs)
        if kernel is None:
            return _NOT_TRACED
        recorder = self.recorder
        rec = recorder.rec
        name = recorder.operator(func).name  # (a higher-order operator: "higher_order.<name>")
        first = len(rec.events)
        depth, recorder.recorder_depth = recorder.recorder_depth, 0  # the kernel is the model's code
        try:
            with self:
                out = kernel(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - fall back to the opaque op
            del rec.events[first:]
            rec.notes.append(f"{name}: its Python kernel failed here ({type(exc).__name__}); counted as unsupported")
            return _NOT_TRACED
        finally:
            recorder.recorder_depth = depth
        if isinstance(func, HigherOrderOperator) and func.name() in CONTROL_FLOW:
            return out  # (torch.cond: the branch it took is the model's own work, free or not)
        inner = rec.events[first:]
        work = sum(2 * e.macs + e.extra_flops for e in inner if e is not None)
        try:
            made = int(sum(t.numel() for t in iter_tensors(out) if t.layout is torch.strided and not t.is_nested))
        except Exception:  # noqa: BLE001 - a size it cannot read (unbacked symbolic): nothing to compare
            made = 0
        if not any(e is not None and not e.supported for e in inner) and work < made:
            # A kernel whose torch operators do less than one FLOP per element it returns did its
            # work elsewhere: bitsandbytes' gemv_4bit allocates its output, asks a tensor a
            # question (``absmax.numel() > 0``: one comparison) and fills the output in C.
            del rec.events[first:]
            recorder.add_unpriced_event(func, args, kwargs, out, inputs)
            rec.notes.append(f"{name}: its Python kernel dispatched " + (
                "no costed torch operator" if not work else f"torch operators of {work} FLOPs for {made} output "
                "elements") + " (its work may be in numpy, Triton, C or C++); counted as unsupported")
        else:
            rec.traced[name] = rec.traced.get(name, 0) + 1
            # The outermost traced op wins: it is what a counter outside sees as opaque.
            rec.events[first:] = [dataclasses.replace(e, traced_from=name) for e in inner]
        return out


_NOT_TRACED = object()


def record(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None,
           patch: Sequence[str] = (), module_hooks: bool | str = False, cache: bool | None = None,
           step: Pass | None = None, as_traced: bool | None = None,
           unpatched_for_overrides: bool = False) -> Recording:
    """Run ``model(*args, **kwargs)`` once under the recording mode.

    With a training ``step`` (:class:`~flopaudit.passes.Pass` of kind
    ``train``), run one training step instead (:func:`flopaudit.training.train_step`:
    forward, loss, backward, optional optimizer step; parameters and their
    gradients are left as they were). Each event then records its ``phase``,
    a backward event the forward event it differentiates (``forward_event``,
    found through autograd's running node: :mod:`flopaudit.reference.autograd_links`)
    and runs where that forward event ran; an optimizer event runs in the
    module holding its parameter; forward and loss events record what their
    tensor inputs are (``operands``).

    What the model's code memoises for the process (``functools.lru_cache``: transformers'
    position tables) is emptied first, so the pass runs as a fresh process's first one does
    (:mod:`flopaudit.memos`). Global module hooks are registered for the call and removed before
    returning, even on error. ``patch``: dotted paths of Python callables to
    wrap for the call, each call through them recorded as a ``py:<path>``
    event (see the module docstring); they are restored on return.
    ``module_hooks``: also attach a no-op forward hook to every module
    (``"children"``: to the root's direct children) for the call, as
    hook-based counters do (fast paths that refuse to run when
    a module has hooks are then not taken); removed before returning.
    ``cache``: whether operator calls are priced through the process's
    pricing memo and operator facts read from its table (None: unless ``FLOPAUDIT_REFERENCE_CACHE=0``; see
    :mod:`flopaudit.reference.caching`); the recording is the same either way.
    ``as_traced``: also note where code outside torch asks ``torch.jit.is_tracing()``
    (``Recording.tracing_asked``), answering it ``as_traced``: True records the branch such
    code takes under a JIT trace (see :func:`~flopaudit.reference.patching.answering_tracing`);
    None (the default) leaves the question alone.
    ``unpatched_for_overrides``: a patched call taken over by an argument's ``__torch_function__``
    runs with the callable put back meanwhile, as under a counter that patches nothing (see
    :func:`~flopaudit.reference.patching.patched`).
    """
    empty_memos(model)  # every pass runs as a fresh process's first (flopaudit.memos)
    recorder = _Recorder(model, cache)
    recorder.inputs = ModelInputs(tuple(args), dict(kwargs or {}))
    recorder.on_meta = holds_meta(model, recorder.inputs, (*recorder.tree.params, *recorder.tree.buffers))
    handles = []
    try:
        if module_hooks:
            hooked = model.children() if module_hooks == "children" else model.modules()
            handles.extend(m.register_forward_hook(_NoOpHook(recorder.paths[id(m)])) for m in dict.fromkeys(hooked)
                           if not isinstance(m, torch.jit.ScriptModule))  # which refuse hooks (and their counters')
        handles.append(register_module_forward_pre_hook(recorder.pre_hook))
        handles.append(register_module_forward_hook(recorder.post_hook, with_kwargs=True, always_call=True))
        graph_code = bool(patch) and holds_graph_code(model)
        # The model's own modules, where names bound at import are wrapped too (imported-names paths,
        # is_tracing, a Function's apply): looked up for the rulesets' recordings only.
        per_name = as_traced is not None or any(p.endswith(IMPORTED_SUFFIX) for p in patch)
        namespaces = model_namespaces(model) if per_name else ()
        tracing = (answering_tracing(as_traced, recorder.rec.tracing_asked, namespaces) if as_traced is not None
                   else contextlib.nullcontext())
        if step is None or not step.train:
            recorder.gradient_sums = GradientSums()
        summing = recorder.gradient_sums.watching() if recorder.gradient_sums is not None else contextlib.nullcontext()
        with warnings.catch_warnings(), compiled_code_eager(), recorder.buffers.watching(), summing, \
                patched(recorder, patch, graph_code, namespaces, unpatched_for_overrides), \
                tracing, tracking_autograd_functions(recorder, namespaces), _Mode(recorder):
            # The recorder's global hooks see a compile wrapper's call as the module call it is.
            warnings.filterwarnings("ignore", _GLOBAL_HOOKS_WARNING, UserWarning)
            inputs = recorder.inputs
            if step is not None and step.train:
                recorder.start_step(model, inputs)
                recorder.rec.notes.extend(train_step(model, inputs, step, hooks=recorder).notes)
            else:
                model(*inputs.args, **inputs.kwargs)
        return recorder.finish()
    finally:
        recorder.buffers.restore()
        for copied in recorder.copies.values():  # a copy the model keeps keeps no hook of the recording
            for key, hook in list(copied._forward_hooks.items()):
                if type(hook) is _NoOpHook:
                    del copied._forward_hooks[key]
        for h in handles:
            h.remove()
            # torch's handle forgets this table (torch 2.14): do not leave a stale entry behind.
            _module_mod._global_forward_hooks_with_kwargs.pop(h.id, None)


_ADD = torch.ops.aten.add.Tensor
"""The operator autograd's engine sums two gradients of one tensor with (see :mod:`flopaudit.reference.gradient_sums`)."""

_MATH_ATTENTION_SOFTMAX = "aten._safe_softmax.default"
"""The softmax of ``scaled_dot_product_attention``'s math path, which SDPA takes on meta tensors."""

META_ATTENTION_BACKWARD = (
    "scaled_dot_product_attention ran as torch's math path on meta (products, softmax), as no fused kernel "
    "runs there: its backward is priced as that path's products per attention (the gradients of the values "
    "and of the scores, and of the queries and keys where they need one: up to four), where a fused kernel on "
    "a device (CPU flash attention, CUDA flash or memory-efficient) computes the scores again and every "
    "gradient, needed or not; this training step's attention backward reads less than on a device")
"""Said of a training step on meta whose attention took SDPA's math path."""

_GLOBAL_HOOKS_WARNING = r"Using `torch.compile\(module\)` when there are global hooks"
"""What torch warns when a ``torch.compile`` wrapper runs while global module hooks are registered."""


class _NoOpHook:
    """Stands for a hook-based counter's hook on the module at ``path`` (see ``record(module_hooks=True)``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        pass


def _copied_from(module: nn.Module) -> str | None:
    """The path of the model's module that ``module``, a module outside the model, is a copy of, if
    it was copied during a pass recorded with ``module_hooks``: ``copy.deepcopy`` copies a module's
    hooks with it (as a counter's hooks are copied: the copy counts as the counter's hooks say).
    None for any other module (one built or copied before the pass carries no recording hook)."""
    for hook in module._forward_hooks.values():
        if type(hook) is _NoOpHook:
            return hook.path
    return None


__all__ = ["HOOK_SENSITIVE_OPS", "PATCHED_CALL_PREFIX", "ModuleCall", "ModuleFrame", "OpEvent", "Recording",
           "TensorArg", "clear_caches", "iter_tensors", "nbytes", "record", "shapes"]
