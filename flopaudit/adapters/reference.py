"""The in-house reference counter behind the :class:`Adapter` interface."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from flopaudit.adapters.base import Adapter, RawCount, error_text
from flopaudit.adapters.descriptor import Backend, MetaSupport
from flopaudit.module_paths import layer_differences
from flopaudit.records import (
    NOT_PREDICTED,
    PREDICTED_IN_ANOTHER_MODE,
    TRACED_BRANCH,
    TRACED_BRANCH_FAILED,
    CauseKind,
    Granularity,
    PhaseCount,
    RuleContribution,
    RulesetPrediction,
    Unit,
    breakdown,
)

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.passes import Pass

BACKEND = Backend(
    name="reference",
    adapter="ReferenceAdapter",
    description="flopaudit's reference counter: TorchDispatchMode over aten ops with per-op shape formulas",
    unit=Unit.MAC,
    granularity=Granularity.ATEN_OPS,
    module="flopaudit.reference",
    # Same MACs and params on meta as on CPU for 63 of 64 probed cases; the
    # 64th (data-dependent-branch) cannot run on meta at all.
    meta=MetaSupport(True),
    order=0,
    passes=("inference", "train"),
)


class ReferenceAdapter(Adapter):
    """Canonical reference count: every aten op priced by a documented formula.

    ``raw_total`` is the canonical MAC count (whole batch, bias excluded);
    ``extra`` carries the canonical FLOPs (2 x MACs + extra FLOPs), the extra
    FLOPs alone, bytes read/written and trainable parameters. Per-module
    MACs are inclusive of children; unsupported operators are listed with
    their call counts.

    A training step (:meth:`_count_train`) is counted the same way over all
    its phases, with ``phases`` splitting it (MACs and extra FLOPs in all,
    MACs per module and per operator) and the predictions of the backends
    that count training steps.
    """

    backend = BACKEND
    copies_model: ClassVar[bool] = False
    """The counter leaves the model as it was (global hooks removed, written
    buffers put back, train/eval mode untouched), so no copy is needed."""

    def options(self) -> dict[str, object]:
        return {"ruleset": "canonical", "no_grad": True}

    def train_options(self) -> dict[str, object]:
        return {"ruleset": "canonical"}  # a training step runs with autograd on

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        from flopaudit.grad_forward import GRAD_FORWARD_NOTE, without_grad_if_it_runs
        from flopaudit.reference import count

        lazy = lazy_classes(model)
        # on a copy: predict_backends records its passes from the inputs as given
        result, grad = without_grad_if_it_runs(
            lambda no_grad: count(model, inputs.fresh(), ruleset="canonical", no_grad=no_grad))
        notes: list[str] = [GRAD_FORWARD_NOTE] if grad else []
        return raw_count(result, predict_backends(model, inputs, result, lazy, notes), notes)

    def _count_train(self, model: nn.Module, inputs: ModelInputs, step: Pass) -> RawCount:
        from flopaudit.reference import count

        lazy = lazy_classes(model)
        result = count(model, inputs.fresh(), ruleset="canonical", pass_=step)
        notes: list[str] = []
        raw = raw_count(result, predict_backends(model, inputs, result, lazy, notes), notes)
        raw.phases = tuple(
            PhaseCount(name, s.total.macs, s.total.extra_flops, breakdown({k: v.macs for k, v in s.per_module.items()}),
                       breakdown({k: v.macs for k, v in s.per_op.items()}))
            for name, s in result.phases.items()
        )
        return raw


def raw_count(result: Any, predictions: tuple[RulesetPrediction, ...], notes: Sequence[str] = ()) -> RawCount:
    """What the adapter reports of a reference count (a forward pass or a training step);
    ``notes``: what predicting the backends found (:func:`predict_backends`)."""
    own = list(result.notes)
    if result.traced_custom_ops:
        traced = ", ".join(f"{op} x{n}" for op, n in sorted(result.traced_custom_ops.items()))
        own.append(f"custom op(s) without a formula counted through their Python kernel: {traced}")
    warnings = list(notes)
    if result.unsupported:
        calls = sum(result.unsupported.values())
        warnings.append(f"{len(result.unsupported)} operator(s) without a formula ({calls} calls) counted as 0")
    return RawCount(
        raw_total=result.macs,
        macs=result.macs,
        params=result.params.unique,
        per_module=result.module_macs(),
        per_op=result.op_macs(),
        unsupported=dict(result.unsupported),
        warnings=warnings,
        notes=own,
        extra={
            "flops": result.flops,
            "extra_flops": result.extra_flops,
            "bytes_read": result.totals.bytes_read,
            "bytes_written": result.totals.bytes_written,
            "params_trainable": result.params.trainable,
            **category_facts(result),
        },
        predictions=predictions,
    )


_EVAL_BATCH_NORM_FORMULAS = ("batch_norm", "batch_norm_eval")


def category_facts(result: Any) -> dict[str, int]:
    """Canonical MACs and extra FLOPs per operator category, nonzero ones only
    (``macs.conv``, ``extra_flops.norm``, ...; bias adds are the ``extra_flops``
    of ``conv`` and ``matmul``), plus ``extra_flops.batch_statistics``: what
    the eval-mode batch norms would add if they computed batch statistics
    (training), ``STATS - EVAL`` FLOPs per element by the reference's norm
    formulas. These are what ``flopaudit match`` combines into conventions.
    Also ``activation_product_macs``: the MACs (a part of ``macs.matmul``) of
    forward batched products (:data:`~flopaudit.reference.operators.BATCHED_PRODUCTS`)
    of two activations (no parameter, buffer or model input) making a matrix per batch
    element (a batched dot product, ``einsum("nc,nc->n")``, makes a number): what
    attention written out as products (``q @ k.transpose(-2, -1)``, then the
    weighted values) computes, which the verdict takes for attention.
    # NB: products against a copy of a buffer are products of activations (MoCo's
    # logits against its queue of keys, ``queue.clone().detach()``).
    """
    from flopaudit.reference.formulas.norm import EVAL_FLOPS_PER_ELEMENT, STATS_FLOPS_PER_ELEMENT
    from flopaudit.reference.operators import BATCHED_PRODUCTS
    from flopaudit.reference.rulesets import numel

    out = {}
    for name, totals in sorted(result.per_category.items()):
        if totals.macs:
            out[f"macs.{name}"] = totals.macs
        if totals.extra_flops:
            out[f"extra_flops.{name}"] = totals.extra_flops
    eval_elements = sum(
        numel(e.input_shapes[0]) for e in result.events
        if e.formula.rsplit(".", 1)[-1] in _EVAL_BATCH_NORM_FORMULAS and e.input_shapes
        and (e.formula.endswith("_eval") or e.arg("training", True) is False)
    )
    if eval_elements:
        out["extra_flops.batch_statistics"] = (STATS_FLOPS_PER_ELEMENT - EVAL_FLOPS_PER_ELEMENT) * eval_elements
    between = sum(e.macs for e in result.events
                  if e.op in BATCHED_PRODUCTS and e.phase == "forward" and e.operands and set(e.operands) <= {"A", "a"}
                  and e.output_shapes and len(e.output_shapes[0]) >= 3 and e.output_shapes[0][-1] > 1)
    if between:
        out["activation_product_macs"] = between
    return out


def lazy_classes(model: nn.Module) -> dict[str, tuple[str, str]]:
    """Module path -> (class name, dotted class path) of every module holding an
    uninitialised (lazy) parameter or buffer: its first forward swaps its class
    (``LazyLinear`` -> ``Linear``), while hook counters chose their hooks by
    the class it had before."""
    from flopaudit.isolation import is_uninitialized

    out: dict[str, tuple[str, str]] = {}
    for path, module in model.named_modules():
        held = (*module.parameters(recurse=False), *module.buffers(recurse=False))
        if any(is_uninitialized(t) for t in held):
            cls = type(module)
            out[path] = (cls.__name__, f"{cls.__module__}.{cls.__qualname__}")
    return out


def _as_registered(calls: Any, lazy: dict[str, tuple[str, str]]) -> Any:
    """Module calls with a lazy module's class as it was before its first forward."""
    if not lazy:
        return calls
    return tuple(dataclasses.replace(c, module_type=lazy[c.path][0], module_class=lazy[c.path][1])
                 if c.path in lazy else c for c in calls)


Pass = tuple[bool, bool, bool]
"""How a backend runs the model: autograd on, a hook on every module, switched to eval mode."""


def predict_backends(model: nn.Module, inputs: ModelInputs, result: Any,
                     lazy: dict[str, tuple[str, str]] | None = None,
                     notes: list[str] | None = None) -> tuple[RulesetPrediction, ...]:
    """Every backend's ruleset applied to this pass (see :mod:`flopaudit.reference.pricing`):
    for a training step, the rulesets of the backends that count training steps,
    on a training step recorded the way the backend runs it (closed-form rules
    of thumb also read :func:`flopaudit.rules_of_thumb.model_facts`).

    Each ruleset reads a recording made the way its backend runs the model:
    autograd on or off (``Ruleset.grad_enabled``; eval-mode fused kernels
    differ), with or without a hook on every module (``Ruleset.module_hooks``),
    switched to eval mode or as given (``Ruleset.eval_mode``, for a model in
    train mode). Rulesets asking for the same pass share one recording, made
    with every Python function any of them monkeypatches wrapped; each sees
    only the calls of its own (:meth:`~flopaudit.reference.rulesets.Ruleset.patched_in`).
    Where a tensor subclass's ``__torch_function__`` took a patched call over (an override
    may compare ``func`` with the patched attribute: optimum-quanto's quantized weights run
    their own kernel only when ``func is torch.nn.functional.linear``), the pass is recorded
    again for each backend whose functions differ from the shared set: with only its own
    functions patched (ptflops' pytorch engine, calflops, DeepSpeed), or with the calls taken
    over unpatched while they run (the backends that patch nothing).
    What a recording cannot tell is added as causes of their own: the work a
    JIT trace drops (``Ruleset.drops_dead_code``, the pass recorded with
    :class:`~flopaudit.reference.liveness.LivenessMode`) and what a backend
    reads from the model's values (``Ruleset.value_corrections``).

    ``lazy`` (:func:`lazy_classes` of the model before its first forward):
    the module calls of those modules are priced under their class before
    the forward, the class hook counters registered their hooks by.

    Shortcut, exact for torch's modules: a pass with module hooks differs
    from one without only if the canonical pass (autograd off, no hooks) ran
    a hook-sensitive fused op (``HOOK_SENSITIVE_OPS``; with autograd on, such
    an op runs only where nothing in it needs a gradient, a frozen encoder)
    or called a module outside the model (which may be a copy of one made
    during the pass, carrying the hooks: ``OpEvent.in_hooked_copy``), so
    otherwise rulesets with and without hooks share a recording. # NB: a
    model of your own that inspects its hooks in other ways is outside this
    shortcut.

    A pass the model cannot run (a training step in eval mode, where a model
    writes its state in place under autograd: Hugging Face's RWKV) is recorded
    again as given, not switched to eval mode; the rulesets reading it are
    predicted from that recording. A pass that cannot be recorded either way
    leaves its rulesets unpredicted. Both are said in ``notes`` (one line per
    backend, ``"<backend>: ..."``), never raised: the reference count stands.
    """
    from flopaudit.adapters import get_backend
    from flopaudit.errors import NotApplicable
    from flopaudit.reference.backend_rulesets import backend_rulesets
    from flopaudit.reference.engine import HOOK_SENSITIVE_OPS
    from flopaudit.reference.inventory import inventory
    from flopaudit.reference.liveness import without_dead_work
    from flopaudit.reference.params import predict_params
    from flopaudit.reference.pricing import predict, with_cause
    from flopaudit.reference.rulesets import VALUE_CORRECTIONS

    step = result.pass_
    rulesets = backend_rulesets(step.kind)
    hook_sensitive = result.outside_module_calls > 0 or any(e.op in HOOK_SENSITIVE_OPS for e in result.events)
    training = any(m.training for m in model.modules())

    def key(ruleset: Any) -> Pass:
        grad = ruleset.grad_enabled or step.train
        if ruleset.eval_mode and training:  # another path: its hook-sensitive ops are not known yet
            return grad, ruleset.module_hooks, True
        return grad, ruleset.module_hooks if hook_sensitive else False, False

    patches: dict[Pass, tuple[str, ...]] = {}
    traced: set[Pass] = set()  # passes a JIT-trace ruleset reads: recorded with liveness
    for ruleset in rulesets.values():
        k = key(ruleset)
        patches[k] = tuple(dict.fromkeys((*patches.get(k, ()), *ruleset.patched_functions)))
        if ruleset.drops_dead_code:
            traced.add(k)
    recordings: dict[Pass, Any] = {}
    dead: dict[Pass, frozenset[int] | None] = {}
    own = (step.train, False, False)  # the pass the reference recorded: a training step records with autograd on
    if not patches.get(own) and own not in traced:
        recordings[own] = result
    facts = None
    if any(r.closed_form for r in rulesets.values()):
        from flopaudit.rules_of_thumb import model_facts

        facts = model_facts(model, inputs)
    out = []
    modules = None
    failed: dict[Pass, str] = {}
    as_traced: dict[tuple[Pass, bool], tuple[Any, frozenset[int] | None] | None] = {}
    overridden: dict[tuple[Pass, Any], tuple[Any, frozenset[int] | None] | None] = {}
    taken_over_in: dict[int, bool] = {}  # id(recording) -> did a tensor subclass take a patched call over?
    for backend, ruleset in rulesets.items():
        check = get_backend(backend).inputs_check
        if check is not None:
            try:
                check(inputs)
            except NotApplicable:
                continue  # a backend that cannot be given these inputs counts nothing to predict
        k = key(ruleset)
        source = recordings.get(k)
        if source is None and k not in failed:
            try:
                source, dead[k] = _record_pass(model, inputs, k, patches[k], k in traced, step)
            except Exception as exc:  # noqa: BLE001 - the model's own failure in this pass, reported below
                failed[k] = error_text(exc).splitlines()[0]
                if k[2]:  # switched to eval mode: record the pass as the model was given
                    try:
                        source, dead[k] = _record_pass(model, inputs, (k[0], k[1], False), patches[k],
                                                       k in traced, step)
                    except Exception:  # noqa: BLE001
                        pass
            if source is not None:
                recordings[k] = source
        dead_here, traced_branch = dead.get(k), False
        if source is not None and id(source) not in taken_over_in:
            taken_over_in[id(source)] = bool(patches.get(k)) and any(e.taken_over for e in source.events)
        taken_over = source is not None and taken_over_in[id(source)]
        unpatched = taken_over and not _patches_itself(ruleset)
        if taken_over and tuple(ruleset.patched_functions) != patches[k]:
            # A tensor subclass's __torch_function__ took a patched call over: it may compare ``func`` with
            # the function's attribute (optimum-quanto), and so take another path under another set of
            # patched functions. Record the path this backend sees: with its own functions patched (a
            # backend that patches them), or with the calls taken over unpatched (one that patches nothing).
            own_patches = patches[k] if unpatched else tuple(ruleset.patched_functions)
            again = (own_patches, unpatched)
            if (k, again) not in overridden:
                try:
                    overridden[(k, again)] = _record_pass(model, inputs, k, own_patches, k in traced, step,
                                                          unpatched_for_overrides=unpatched)
                except Exception:  # noqa: BLE001 - the model's own failure: keep the recording shared
                    overridden[(k, again)] = None
            if overridden[(k, again)] is not None:
                source, dead_here = overridden[(k, again)]
        if ruleset.drops_dead_code and source is not None and source.tracing_asked:
            # The model's code takes another branch under a JIT trace: record that branch for this backend.
            branch_key = (k, bool(unpatched))
            if branch_key not in as_traced:
                try:
                    as_traced[branch_key] = _record_pass(model, inputs, k, patches[k], True, step, as_traced=True,
                                                         unpatched_for_overrides=bool(unpatched))
                except Exception as exc:  # noqa: BLE001 - the branch fails outside a trace: keep the eager one
                    as_traced[branch_key] = None
                    if notes is not None:
                        notes.append(f"{backend}: {TRACED_BRANCH_FAILED} ({error_text(exc).splitlines()[0]})")
            branch = as_traced[branch_key]
            if branch is not None:
                (source, dead_here), traced_branch = branch, True
                if notes is not None:
                    notes.append(f"{backend}: {TRACED_BRANCH}: " + ", ".join(sorted(source.tracing_asked)))
        if k in failed:
            if notes is not None:
                notes.append(f"{backend}: " + (
                    f"{PREDICTED_IN_ANOTHER_MODE} {_mode_of(model)} mode: in eval mode, as {backend} runs the "
                    f"model, it fails ({failed[k]})" if source is not None
                    else f"{NOT_PREDICTED}: the pass {backend} runs cannot be recorded ({failed[k]})"))
            if source is None:
                continue
        if modules is None:
            modules = inventory(model, lazy)
        calls = _as_registered(source.module_call_records, lazy or {})
        try:
            prediction = predict(source.events, calls, ruleset, backend, batch_size=inputs.batch_size,
                                 modules=modules, facts=facts)
            if ruleset.drops_dead_code and dead_here:
                prediction = without_dead_work(prediction, source.events, dead_here, ruleset)
            for name in ruleset.value_corrections:
                correct, reason = VALUE_CORRECTIONS[name]
                amounts = [(c.path, c.stack, macs) for c, macs in correct(model, source.module_call_records)]
                prediction = with_cause(prediction, reason, CauseKind.RULE, amounts)
        except NotApplicable:
            continue  # a rule of thumb that does not apply to this model (its backend says so too)
        except Exception as exc:  # noqa: BLE001 - one ruleset failing leaves the reference count standing
            if notes is not None:
                notes.append(f"{backend}: {NOT_PREDICTED}: its ruleset failed on this recording "
                             f"({error_text(exc).splitlines()[0]})")
            continue
        params, param_causes = predict_params(modules, calls, ruleset.params)
        prediction = dataclasses.replace(prediction, params=params, param_contributions=param_causes)
        out.append(_with_pass_difference(prediction, source, result, k, traced_branch))
    return tuple(out)


def _patches_itself(ruleset: Any) -> bool:
    """Does the ruleset's backend run the model with Python functions monkeypatched (ptflops'
    pytorch engine, calflops, DeepSpeed), rather than see operators (a trace, a profiler)?"""
    return bool(ruleset.patched_functions) and not ruleset.calls_are_operators


def _record_pass(model: nn.Module, inputs: ModelInputs, key: Pass, patch: tuple[str, ...],
                 liveness: bool, step: Any, as_traced: bool = False,
                 unpatched_for_overrides: bool = False) -> tuple[Any, frozenset[int] | None]:
    """One recording for the rulesets sharing ``key`` (autograd on, module
    hooks, eval mode); with ``liveness``, also the indices of its events whose
    work a JIT trace drops (None: unknown, see :mod:`flopaudit.reference.liveness`),
    and where the model asks ``torch.jit.is_tracing()``, answered ``as_traced``
    (``ReferenceCount.tracing_asked``); ``unpatched_for_overrides``: patched calls a tensor
    subclass takes over run unpatched (``flopaudit.reference.count``).
    In eval mode every module's own train/eval flag is put back afterwards.
    Recorded from the same random draws as every count (:mod:`flopaudit.draws`)."""
    from flopaudit.draws import same_draws
    from flopaudit.modes import set_mode
    from flopaudit.reference import count
    from flopaudit.reference.liveness import LivenessMode, dead_events

    grad, hooks, eval_mode = key
    inputs = inputs.fresh()  # each pass from the inputs as given (a model may append to a cache it is passed)
    modes = [(m, m.training) for m in model.modules()] if eval_mode else []
    if eval_mode:
        set_mode(model, False)  # (a model that refuses it is recorded as it is: its backend fails on eval())
    try:
        with same_draws(model=model):  # the draws its backend's own run starts from (Adapter.count)
            if not liveness:
                return count(model, inputs, no_grad=not grad, patch=patch, module_hooks=hooks, pass_=step,
                             unpatched_for_overrides=unpatched_for_overrides), None
            with LivenessMode(model, inputs.tensors()) as mode:
                source = count(model, inputs, no_grad=not grad, patch=patch, module_hooks=hooks, pass_=step,
                               as_traced=as_traced, unpatched_for_overrides=unpatched_for_overrides)
        return source, dead_events(source.events, mode)
    finally:
        for m, training in modes:
            m.training = training


def _mode_of(model: nn.Module) -> str:
    return "train" if model.training else "eval"


def _with_pass_difference(prediction: RulesetPrediction, source: Any, result: Any,
                          key: Pass, traced_branch: bool = False) -> RulesetPrediction:
    """Book the canonical MACs by which the backend's own pass differs from the
    reference's inference pass (a padding-masked ``nn.TransformerEncoder``
    skips its padding only under ``no_grad``; a train-mode model runs its
    auxiliary heads, which a backend that calls ``model.eval()`` does not;
    ``traced_branch``: the pass was recorded in the branch the model's code
    takes under a JIT trace), so that the prediction's contributions still
    add up to its difference from the reference."""
    delta = source.macs - result.macs
    if source is result or not delta:
        return prediction
    how = "with autograd on" if key[0] else "with a hook on every module"
    mine, ref = source.module_macs(), result.module_macs()
    nested = any(p for p in (*mine, *ref))  # a model with submodules; else the root takes it all
    layers = layer_differences(mine, ref, len(mine) + len(ref)) if nested else (("", delta),)
    if key[2]:
        rule = ("calls model.eval() itself: the model, given in train mode, takes its eval path (train-only "
                "branches such as auxiliary heads do not run)")
    elif traced_branch:
        rule = (f"traces the model {how}: where the model's code asks torch.jit.is_tracing() it takes its "
                "traced branch, another path than the reference's inference pass")
    else:
        rule = (f"runs the model {how}, where it takes another path than the reference's inference pass "
                "(e.g. no nested tensor for padded sequences, no fused kernels)")
    cause = RuleContribution(
        rule=rule,
        kind=CauseKind.RULE,
        macs=delta,
        layers=layers[:8],
        layer_count=len(layers),
    )
    return dataclasses.replace(prediction, contributions=(cause, *prediction.contributions))
