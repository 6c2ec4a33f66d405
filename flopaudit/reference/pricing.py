"""One pricing pass over a recording: its summary, a ruleset's view and the ruleset's prediction.

A recording is the :class:`~flopaudit.reference.engine.OpEvent` and
:class:`~flopaudit.reference.engine.ModuleCall` records of one forward pass.
:func:`price` walks it once and produces, as asked:

* the **summary** (:class:`Summary`): the canonical cost of every event (MACs,
  extra FLOPs, bytes, calls) per module, operator and category, and the
  operators without a formula with their calls; it does not depend on the
  ruleset;
* the **view** (:class:`~flopaudit.reference.rulesets.RulesetTotals`): the
  ruleset's count in its own unit and batch convention, per module, operator
  (``module:<Class>`` for module-rule counts) and category;
* the **prediction** (:class:`~flopaudit.records.RulesetPrediction`): the
  same count normalised to whole-batch MACs (FLOP rulesets halved, per-sample
  conventions not applied: adapters normalise their backends the same way),
  with every difference from the canonical MACs booked to its cause:

  - an event priced by an :class:`~flopaudit.reference.rulesets.EventRule`
    books ``count - canonical MACs`` to that rule's ``reason``;
  - a module call priced by a :class:`~flopaudit.reference.rulesets.ModuleRule`
    books ``count - canonical MACs of the events inside it`` (when it
    suppresses them) to its reason;
  - a module with several names (shared by two parents) priced by a ruleset
    that counts per name (``hooks_per_name`` / ``sums_per_name``) books the
    extra copies to ``reused-module``, with the module's names as layers; so
    does an event inside such a module for a ruleset that keeps event counts
    per module and totals them by name (``event_counts_per_name``); an event
    inside a module wrapped by ``torch.compile``, for a ruleset that keeps
    counts in module attributes (``counts_in_module_attributes``), books the
    wrapper's copy to ``reused-module``, with the wrapper as the layer;
  - a copy of a module made during the pass keeps the count a ruleset keeps
    on modules (module-rule counts with ``copies_lost``, event counts with
    ``counts_in_module_attributes``) on itself, outside the model: such a
    call (``ModuleCall.copied``) or event (``OpEvent.in_hooked_copy``) counts
    0 and books its canonical MACs to ``reused-module``;
  - an event priced by the ruleset's ``default`` books its difference to a
    reason derived from the event: an operator the backend has no formula for
    (``unsupported``), an op inside a leaf module whose type has no module
    rule (``unsupported``), or a functional op outside any leaf module, which
    module-hook counters cannot see (``missed-functional``);

  so ``prediction.macs == canonical MACs + sum(contributions)`` holds exactly.

A ruleset with a ``closed_form`` (a rule of thumb) is priced by its
closed-form counter instead of rule by rule; its view is the counter's total
and its prediction the counter's MACs and causes (which add up the same way).
``phase`` prices only the events and module calls of one phase of a training
step (its ``forward``: what a backend that counts a forward pass and scales
it would price).

Which rule prices what is decided once, here: module calls priced by module
rules first (:func:`~flopaudit.reference.rulesets.priced_calls`, whose
suppressed events are not priced again), then every other event by its first
matching event rule or the ruleset's ``default``; events of functions patched
for another ruleset count nothing. :func:`apply` and :func:`predict` are this
pass asked for one product.

The summary's sums are kept per (module stack, operator, category, phase) as
the events are walked, and folded into its maps afterwards. A view whose every
event is priced by one :data:`~flopaudit.reference.rulesets.CANONICAL_COSTS`
counter (the canonical ruleset's, what :func:`flopaudit.reference.count`
asks for beside the summary) is taken from those sums instead of pricing each
event again: costs are linear in an event's MACs and extra FLOPs and never
negative, so the sums, zero ones left out, are the same.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from flopaudit.module_paths import ancestors
from flopaudit.records import CauseKind, RuleContribution, RulesetPrediction, breakdown
from flopaudit.reference.engine import PATCHED_CALL_PREFIX, ModuleCall, OpEvent
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import (
    CANONICAL_COSTS,
    CLOSED_FORMS,
    EVENT_COUNTERS,
    Ruleset,
    RulesetTotals,
    count_module,
    name_shares,
    priced_calls,
)

_LAYERS_KEPT = 8
"""Layers named per cause in a prediction, largest first."""
_REUSED_EVENTS = ("module shared by several parents: its per-module count is added once per name in the "
                  "module-tree total")
_WRAPPER_READ = ("module wrapped by torch.compile: the wrapper (OptimizedModule) forwards attribute reads to it, "
                 "so the module's own count is read again under the wrapper's name in the module-tree total")
_COPY_KEPT = ("module copied during the forward (copy.deepcopy in a forward, as torch.func ensembles do): "
              "the copy carries the counter's hooks and keeps the count of what it runs, outside the model, "
              "so the module-tree total never reads it")

#: A category's report name ("unsupported" for None); ``Enum.value`` is slow.
CATEGORY_NAME: dict[Category | None, str] = {**{c: c.value for c in Category}, None: "unsupported"}


@dataclass(frozen=True)
class Totals:
    """Summed canonical cost of a set of events."""

    macs: int = 0
    extra_flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    calls: int = 0

    @property
    def flops(self) -> int:
        """Canonical FLOPs: 2 x MACs + extra FLOPs."""
        return 2 * self.macs + self.extra_flops

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.macs + other.macs, self.extra_flops + other.extra_flops,
                      self.bytes_read + other.bytes_read, self.bytes_written + other.bytes_written,
                      self.calls + other.calls)

    @classmethod
    def of(cls, e: OpEvent) -> Totals:
        return cls(e.macs, e.extra_flops, e.bytes_read, e.bytes_written, 1)


@dataclass(frozen=True)
class PhaseSummary:
    """The canonical cost of one phase of a training step (:attr:`OpEvent.phase`):
    in all, per module path (inclusive of children) and per operator."""

    total: Totals
    per_module: dict[str, Totals]
    per_op: dict[str, Totals]


@dataclass(frozen=True)
class Summary:
    """The canonical cost of a recording: in all, per module path (inclusive of
    children, ``""`` the root), per operator and per category; ``unsupported``
    maps each operator without a formula to its number of calls; ``phases``
    the same split by phase (asked for with ``phases=True``: a training step)."""

    total: Totals
    per_module: dict[str, Totals]
    per_op: dict[str, Totals]
    per_category: dict[str, Totals]
    unsupported: dict[str, int]
    phases: dict[str, PhaseSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class Pricing:
    """What :func:`price` produced (``None`` for what was not asked)."""

    summary: Summary | None
    view: RulesetTotals | None
    prediction: RulesetPrediction | None


Stack = tuple[str, ...]
_Key = tuple[CauseKind, str]


def price(events: Sequence[OpEvent], calls: Sequence[ModuleCall], ruleset: Ruleset, batch_size: int | None = None,
          *, summary: bool = False, view: bool = False, prediction: bool = False,
          name: str | None = None, modules: Any = None, phases: bool = False, phase: str | None = None,
          facts: object = None, layers_kept: int | None = _LAYERS_KEPT) -> Pricing:
    """Walk the recording once; produce its ``summary`` (split by phase too with
    ``phases``), ``ruleset``'s ``view`` (per-sample rulesets divided by
    ``batch_size``) and its ``prediction`` (named ``name``, default the ruleset's, each cause naming
    its ``layers_kept`` largest layers, or every one with ``None``;
    a ``batch_scaled`` ruleset's one-sample counts multiplied by ``batch_size``),
    as asked. ``modules`` is the model's inventory, read by some module counters;
    ``phase``: only that phase's events and calls; ``facts``: what a closed-form
    ruleset reads of the model (:class:`flopaudit.rules_of_thumb.ModelFacts`)."""
    if ruleset.closed_form and (view or prediction):
        closed = _closed_form(events, calls, ruleset, name, facts)
        rest = price(events, calls, ruleset, batch_size, summary=summary, phases=phases) if summary else None
        return Pricing(rest.summary if rest else None, closed.view if view else None,
                       closed.prediction if prediction else None)
    halve = ruleset.unit == "FLOP"
    scale = (batch_size or 1) if ruleset.batch_scaled else 1
    hook_based = bool(ruleset.module_rules)
    priced = view or prediction
    # Sums are kept per module *stack* (few) and spread over the modules of each at the end.
    view_by_stack: dict[Stack, int] = {}
    view_per_op: dict[str, int] = {}
    view_per_category: dict[str, int] = {}
    view_total = 0
    predicted_by_stack: dict[Stack, int] = {}
    predicted_total = 0
    deltas: dict[_Key, int] = {}
    layers: dict[_Key, dict[str, int]] = {}

    def count(n: int, stack: Stack, op: str, category: str) -> None:
        """``n`` in the ruleset's unit for the view."""
        nonlocal view_total
        if not n:
            return
        view_total += n
        view_by_stack[stack] = view_by_stack.get(stack, 0) + n
        view_per_op[op] = view_per_op.get(op, 0) + n
        view_per_category[category] = view_per_category.get(category, 0) + n

    def attribute(macs: int, stack: Stack) -> None:
        nonlocal predicted_total
        predicted_total += macs
        predicted_by_stack[stack] = predicted_by_stack.get(stack, 0) + macs

    def book(key: _Key, delta: int, path: str) -> None:
        if delta:
            deltas[key] = deltas.get(key, 0) + delta
            where = layers.setdefault(key, {})
            where[path] = where.get(path, 0) + delta

    covered = [False] * len(events)
    if priced:
        wrapped_everywhere = ruleset.patched_calls_in_priced_modules
        for call, rule, inner in priced_calls(calls, ruleset, phase):
            for j in inner:
                covered[j] = not (wrapped_everywhere and events[j].op.startswith(PATCHED_CALL_PREFIX))
            if call.copied and ruleset.copies_lost:  # counted on the copy, which the total never reads
                if prediction:
                    book((CauseKind.REUSED_MODULE, _COPY_KEPT), -sum(events[j].macs for j in inner), call.path)
                continue
            n = count_module(rule.count, call, modules)
            shares = name_shares(call, n, ruleset)
            if view:
                module_op = f"module:{call.module_type}"
                for _alias, stack, amount in shares:
                    count(amount, stack, module_op, "module")
            if not prediction:
                continue
            canonical = sum(events[j].macs for j in inner)
            key = (rule.kind, rule.reason or f"{call.module_type} priced by module rule {rule.count!r}")
            if rule.module_type == "*" and not n and canonical:
                key = no_rule(call.module_type, call.module_class)  # a catch-all rule finding nothing to price here
            once = (n // 2 if halve else n) * scale
            if len(shares) == 1 and shares[0][2] == n:
                attribute(once, call.stack)
                book(key, once - canonical, call.path)
                continue
            book(key, once - canonical, call.path)
            reused = (CauseKind.REUSED_MODULE, _reused_reason(ruleset))
            for alias, stack, amount in shares:
                macs = (amount // 2 if halve else amount) * scale
                attribute(macs, stack)
                book(reused, macs - (once if alias == call.path else 0), alias)

    summary_by_stack: dict[Stack, list[int]] = {}
    summary_per_op: dict[str, list[int]] = {}
    summary_per_category: dict[str, list[int]] = {}
    unsupported: dict[str, int] = {}
    phase_sums: dict[str, tuple[dict[Stack, list[int]], dict[str, list[int]]]] = {}
    # Without event rules every event is priced by ``default`` (no rule to look up).
    default = EVENT_COUNTERS[ruleset.default]
    by_default = not ruleset.event_rules
    per_name, in_attributes = ruleset.event_counts_per_name, ruleset.counts_in_module_attributes
    # A view that is a sum of canonical costs (the canonical ruleset's) is read from the summary's sums.
    scales = CANONICAL_COSTS.get(ruleset.default) if (
        summary and view and not prediction and by_default and not ruleset.module_rules and not per_name
        and not in_attributes) else None
    if scales is not None:
        priced = False
    grouped: dict[tuple[Stack, str, str, str], list[int]] = {}
    event_rule = ruleset.rule_finder()
    for j, e in enumerate(events):
        if phase is not None and e.phase != phase:
            continue
        category = CATEGORY_NAME[e.category]
        if summary:  # summed per (stack, op, category, phase) here, folded into the summary's maps below
            key = (e.module_stack, e.op, category, e.phase)
            acc = grouped.get(key)
            if acc is None:
                grouped[key] = [e.macs, e.extra_flops, e.bytes_read, e.bytes_written, 1]
            else:
                acc[0] += e.macs
                acc[1] += e.extra_flops
                acc[2] += e.bytes_read
                acc[3] += e.bytes_written
                acc[4] += 1
            if not e.supported:
                unsupported[e.op] = unsupported.get(e.op, 0) + 1
        if not priced or covered[j] or ruleset.foreign(e):
            continue
        if e.in_hooked_copy and in_attributes:  # counted on the copy, which the total never reads
            if prediction:
                book((CauseKind.REUSED_MODULE, _COPY_KEPT), -e.macs, e.module_path)
            continue
        rule = None if by_default else event_rule(e)
        n = EVENT_COUNTERS[rule.count](e) if rule is not None else default(e)
        names: tuple[str, ...] = ()
        wrappers: tuple[str, ...] = ()
        if (per_name or in_attributes) and n and 0 <= e.call_index < len(calls):
            call = calls[e.call_index]
            names = call.names if per_name else ()
            wrappers = call.wrapped_by if in_attributes else ()
        if view:
            count(n, e.module_stack, e.op, category)
            for alias in names[1:]:
                count(n, ancestors(alias), e.op, category)
            for wrapper in wrappers:
                count(n, ancestors(wrapper), e.op, category)
        if prediction:
            if rule is not None:
                key = (rule.kind, rule.reason or f"{_packet(e.op)} priced by {rule.count!r}")
            else:
                key = _default_reason(ruleset, e, hook_based, calls)
            macs = (n // 2 if halve else n) * scale
            attribute(macs, e.module_stack)
            book(key, macs - e.macs, e.module_path)
            for alias in names[1:] if macs else ():
                attribute(macs, ancestors(alias))
                book((CauseKind.REUSED_MODULE, _REUSED_EVENTS), macs, alias)
            for wrapper in wrappers if macs else ():
                attribute(macs, ancestors(wrapper))
                book((CauseKind.REUSED_MODULE, _WRAPPER_READ), macs, wrapper)

    for (stack, op, category, event_phase), sums in grouped.items():
        targets: tuple[tuple[dict, Any], ...] = ((summary_by_stack, stack), (summary_per_op, op),
                                                (summary_per_category, category))
        if phases:
            in_phase = phase_sums.get(event_phase)
            if in_phase is None:
                in_phase = phase_sums[event_phase] = ({}, {})
            targets += ((in_phase[0], stack), (in_phase[1], op))
        macs, extra, read, written, calls_ = sums
        for into, key in targets:
            acc = into.get(key)
            if acc is None:
                into[key] = sums.copy()
            else:  # (unrolled: this fold runs once per target of every group)
                acc[0] += macs
                acc[1] += extra
                acc[2] += read
                acc[3] += written
                acc[4] += calls_
    made_summary = made_view = made_prediction = None
    if summary:
        per_op = {k: Totals(*v) for k, v in summary_per_op.items()}
        made_summary = Summary(
            total=Totals(*(sum(v[i] for v in summary_per_op.values()) for i in range(5))),
            per_module={k: Totals(*v) for k, v in _spread_costs(summary_by_stack).items()},
            per_op=per_op,
            per_category={k: Totals(*v) for k, v in summary_per_category.items()},
            unsupported=unsupported,
            phases={phase: PhaseSummary(Totals(*(sum(v[i] for v in ops.values()) for i in range(5))),
                                        {k: Totals(*v) for k, v in _spread_costs(stacks).items()},
                                        {k: Totals(*v) for k, v in ops.items()})
                    for phase, (stacks, ops) in phase_sums.items()},
        )
    if scales is not None:
        view_total, view_by_stack, view_per_op, view_per_category = _view_of_sums(
            scales, summary_per_op, summary_by_stack, summary_per_category)
    if view:
        per_module = _spread(view_by_stack, operator.add)
        if ruleset.per_sample and batch_size:
            def scale(n: int) -> int:
                return round(n / batch_size)
            view_total = scale(view_total)
            per_module = {k: scale(v) for k, v in per_module.items()}
            view_per_op = {k: scale(v) for k, v in view_per_op.items()}
            view_per_category = {k: scale(v) for k, v in view_per_category.items()}
        made_view = RulesetTotals(ruleset.name, ruleset.unit, view_total, per_module, view_per_op, view_per_category)
    if prediction:
        contributions = tuple(
            RuleContribution(
                rule=reason,
                kind=kind,
                macs=delta,
                layers=tuple(sorted(((p, v) for p, v in layers[(kind, reason)].items() if v),
                                    key=lambda x: (-abs(x[1]), x[0]))[:layers_kept]),
                layer_count=sum(1 for v in layers[(kind, reason)].values() if v),
            )
            for (kind, reason), delta in sorted(deltas.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
            if delta
        )
        per_module_macs = _spread(predicted_by_stack, operator.add)
        made_prediction = RulesetPrediction(name or ruleset.name, predicted_total, contributions,
                                            breakdown(per_module_macs))
    return Pricing(made_summary, made_view, made_prediction)


def _view_of_sums(scales: tuple[int, int], per_op: dict[str, list[int]], by_stack: dict[Stack, list[int]],
                  per_category: dict[str, list[int]]) -> tuple[int, dict[Stack, int], dict[str, int], dict[str, int]]:
    """A canonical-cost view (``scales``: per MAC, per extra FLOP) from the summary's sums: its total,
    sums per stack, per op and per category. The view keeps no zero sum, as pricing each event does
    (costs are never negative, so a sum is zero only where every event in it is)."""
    a, b = scales

    def nonzero(sums: dict[Any, list[int]]) -> dict[Any, int]:
        made = {k: a * v[0] + b * v[1] for k, v in sums.items()}
        return {k: n for k, n in made.items() if n}

    ops = nonzero(per_op)
    return sum(ops.values()), nonzero(by_stack), ops, nonzero(per_category)


def apply(events: Sequence[OpEvent], calls: Sequence[ModuleCall], ruleset: Ruleset,
          batch_size: int | None = None, modules: Any = None) -> RulesetTotals:
    """``ruleset``'s view of the recording (:func:`price`)."""
    view = price(events, calls, ruleset, batch_size, view=True, modules=modules).view
    assert view is not None
    return view


def predict(events: Sequence[OpEvent], calls: Sequence[ModuleCall], ruleset: Ruleset,
            name: str | None = None, batch_size: int | None = None, modules: Any = None, *,
            phase: str | None = None, facts: object = None, layers_kept: int | None = _LAYERS_KEPT) -> RulesetPrediction:
    """``ruleset``'s count of the recording in whole-batch MACs, with its causes (:func:`price`), each
    naming its ``layers_kept`` largest layers (every layer: ``None``)."""
    made = price(events, calls, ruleset, batch_size, prediction=True, name=name, modules=modules, phase=phase,
                 facts=facts, layers_kept=layers_kept).prediction
    assert made is not None
    return made


@dataclass(frozen=True)
class _Closed:
    view: RulesetTotals
    prediction: RulesetPrediction


def _closed_form(events: Sequence[OpEvent], calls: Sequence[ModuleCall], ruleset: Ruleset, name: str | None,
                 facts: object) -> _Closed:
    """A closed-form ruleset's view and prediction; what its parts leave unexplained is
    booked as a residual cause, so the prediction adds up whatever the counter does."""
    made = CLOSED_FORMS[ruleset.closed_form](events, calls, facts)
    parts = [c for c in made.parts if c.macs]
    canonical = sum(e.macs for e in events)
    residual = made.macs - canonical - sum(c.macs for c in parts)
    if residual:
        parts.append(RuleContribution(f"{ruleset.name}: not explained by its causes", CauseKind.RULE, residual))
    parts.sort(key=lambda c: (-abs(c.macs), c.rule))
    view = RulesetTotals(ruleset.name, ruleset.unit, made.total, dict(made.per_module), {}, {})
    return _Closed(view, RulesetPrediction(name or ruleset.name, made.macs, tuple(parts), breakdown(made.per_module)))


Amount = TypeVar("Amount")


def _spread(by_stack: dict[Stack, Amount], add: Callable[[Amount, Amount], Amount]) -> dict[str, Amount]:
    """Sums per module path from sums per stack: each stack's sum goes to every
    module on it, once per module (``()`` is the root, ``""``); ``add`` sums two."""
    per_module: dict[str, Amount] = {}
    for stack, amount in by_stack.items():
        for path in _modules_on(stack):
            acc = per_module.get(path)
            per_module[path] = amount if acc is None else add(acc, amount)
    return per_module


def _modules_on(stack: Stack) -> Sequence[str]:
    """The module paths on a stack, each once (a module that calls itself is on it twice;
    ``()`` is the root, ``""``)."""
    stack = stack or ("",)
    return tuple(dict.fromkeys(stack)) if len(set(stack)) != len(stack) else stack


def _spread_costs(by_stack: dict[Stack, list[int]]) -> dict[str, list[int]]:
    """:func:`_spread` of ``[macs, extra FLOPs, bytes read, bytes written, calls]`` sums, each
    module's summed into a list of its own (the stacks' lists are left as they are)."""
    per_module: dict[str, list[int]] = {}
    for stack, (macs, extra, read, written, calls) in by_stack.items():
        for path in _modules_on(stack):
            acc = per_module.get(path)
            if acc is None:
                per_module[path] = [macs, extra, read, written, calls]
            else:
                acc[0] += macs
                acc[1] += extra
                acc[2] += read
                acc[3] += written
                acc[4] += calls
    return per_module


def _default_reason(ruleset: Ruleset, e: OpEvent, hook_based: bool, calls: Sequence[ModuleCall]) -> _Key:
    if not hook_based:
        if not e.supported:
            return CauseKind.UNSUPPORTED, f"{e.op}: no formula in the reference either"
        return CauseKind.UNSUPPORTED, ruleset.default_reason or f"{_packet(e.op)} not counted"
    if ruleset.default_reason:
        return CauseKind.RULE, ruleset.default_reason
    if e.in_leaf:
        return no_rule(e.module_type, calls[e.call_index].module_class if 0 <= e.call_index < len(calls) else "")
    return CauseKind.MISSED_FUNCTIONAL, f"functional {_packet(e.op)} outside leaf modules"


def no_rule(module_type: str, module_class: str = "") -> _Key:
    """The cause of a leaf module's work that a hook-based backend prices 0: one name for every
    backend, so the report can say that several miss the same layer (a model that is itself a
    leaf, ``path == ""``, included). A class named as one of ``torch.nn``'s but not it (PyG's
    ``Linear``, fairseq's ``MultiheadAttention``) is named by its path too."""
    name = f"no rule for {module_type} modules"
    namesake = getattr(nn, module_type, None)
    if module_class and isinstance(namesake, type) and f"{namesake.__module__}.{namesake.__qualname__}" != module_class:
        name += f" ({module_class}, not torch.nn.{module_type})"
    return CauseKind.UNSUPPORTED, name


def _reused_reason(ruleset: Ruleset) -> str:
    how = []
    if ruleset.hooks_per_name:
        how.append("hooked once per name, so each call is counted once per name")
    if ruleset.sums_per_name:
        how.append("its count is added once per name in the module-tree total")
    return "module shared by several parents: " + "; ".join(how)


def _packet(op: str) -> str:
    """``aten.mm.default -> aten.mm``."""
    parts = op.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else op


def with_cause(prediction: RulesetPrediction, rule: str, kind: CauseKind | str,
               amounts: Sequence[tuple[str, Sequence[str], int]]) -> RulesetPrediction:
    """``prediction`` plus one more cause: ``amounts`` are ``(layer, module
    stack, MACs)`` entries that the recording alone could not price (work a
    JIT trace drops, a pruning mask's zeros); the cause books their sum with
    its layers, and the total and per-module counts move by as much."""
    total = 0
    layers: dict[str, int] = {}
    per_module = dict(prediction.per_module)
    for path, stack, macs in amounts:
        if not macs:
            continue
        total += macs
        layers[path] = layers.get(path, 0) + macs
        for p in dict.fromkeys(stack or ("",)):
            per_module[p] = per_module.get(p, 0) + macs
    moved = sorted(((p, v) for p, v in layers.items() if v), key=lambda x: (-abs(x[1]), x[0]))
    if not total and not moved:
        return prediction
    cause = RuleContribution(rule=rule, kind=kind, macs=total, layers=tuple(moved[:_LAYERS_KEPT]),
                             layer_count=len(moved))
    return dataclasses.replace(prediction, macs=prediction.macs + total,
                               contributions=(*prediction.contributions, cause), per_module=breakdown(per_module))


__all__ = ["CATEGORY_NAME", "PhaseSummary", "Pricing", "Summary", "Totals", "apply", "predict", "price",
           "with_cause"]
