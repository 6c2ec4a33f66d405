"""Predict a backend's count from the reference's events, rule by rule.

:func:`predict` prices one recording under a backend's
:class:`~flopaudit.reference.rulesets.Ruleset` exactly as
:func:`~flopaudit.reference.rulesets.apply` does, but also books every
difference from the canonical MAC count to the rule that caused it:

* an event priced by an :class:`EventRule` books ``count - canonical MACs``
  to that rule's ``reason``;
* a module call priced by a :class:`ModuleRule` books ``count - canonical
  MACs of the events inside it`` (when it suppresses them) to its reason;
* a module with several names (shared by two parents) priced by a ruleset
  that counts per name (``hooks_per_name`` / ``sums_per_name``) books the
  extra copies to ``reused-module``, with the module's names as layers;
* an event priced by the ruleset's ``default`` books its difference to a
  reason derived from the event: an operator the backend has no formula for
  (``unsupported``), an op inside a leaf module whose type has no module rule
  (``unsupported``), or a functional op outside any leaf module, which
  module-hook counters cannot see (``missed-functional``).

Counts are normalised to MACs for the whole batch before booking (FLOP
rulesets halved, per-sample conventions not applied: adapters normalise their
backends to whole-batch MACs too), so ``prediction.macs == canonical MACs +
sum(contributions)`` holds exactly.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Sequence

from flopaudit.records import RuleContribution, RulesetPrediction, breakdown
from flopaudit.reference.engine import ModuleCall, OpEvent
from flopaudit.reference.rulesets import EVENT_COUNTERS, MODULE_COUNTERS, Ruleset, name_shares, priced_calls

_LAYERS_KEPT = 8


def _default_reason(ruleset: Ruleset, e: OpEvent, hook_based: bool) -> tuple[str, str]:
    if not hook_based:
        if not e.supported:
            return "unsupported", f"{e.op}: no formula in the reference either"
        return "unsupported", ruleset.default_reason or f"{_packet(e.op)} not counted"
    if ruleset.default_reason:
        return "rule", ruleset.default_reason
    if e.in_leaf and e.module_path:
        return "unsupported", f"no rule for {e.module_type} modules"
    return "missed-functional", f"functional {_packet(e.op)} outside leaf modules"


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


def predict(
    events: Sequence[OpEvent], calls: Sequence[ModuleCall], ruleset: Ruleset, name: str | None = None
) -> RulesetPrediction:
    """``ruleset``'s count of the recording in whole-batch MACs, with its causes."""
    halve = ruleset.unit == "FLOP"
    hook_based = bool(ruleset.module_rules)
    deltas: dict[tuple[str, str], int] = defaultdict(int)
    layers: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_module: dict[str, int] = defaultdict(int)
    total = 0

    def attribute(macs: int, stack: Sequence[str]) -> None:
        nonlocal total
        total += macs
        for p in dict.fromkeys(stack or ("",)):
            per_module[p] += macs

    def book_delta(key: tuple[str, str], delta: int, path: str) -> None:
        if delta:
            deltas[key] += delta
            layers[key][path] += delta

    def book(key: tuple[str, str], priced: int, canonical: int, path: str, stack: Sequence[str]) -> None:
        macs = priced // 2 if halve else priced
        attribute(macs, stack)
        book_delta(key, macs - canonical, path)

    covered = [False] * len(events)
    for call, rule, inner in priced_calls(calls, ruleset):
        canonical = 0
        for j in inner:
            covered[j] = True
            canonical += events[j].macs
        reason = rule.reason or f"{call.module_type} priced by module rule {rule.count!r}"
        priced = MODULE_COUNTERS[rule.count](call)
        shares = name_shares(call, priced, ruleset)
        if len(shares) == 1 and shares[0][2] == priced:
            book((rule.kind, reason), priced, canonical, call.path, call.stack)
            continue
        once = priced // 2 if halve else priced
        book_delta((rule.kind, reason), once - canonical, call.path)
        reused = ("reused-module", _reused_reason(ruleset))
        for alias, stack, amount in shares:
            macs = amount // 2 if halve else amount
            attribute(macs, stack)
            book_delta(reused, macs - (once if alias == call.path else 0), alias)
    for j, e in enumerate(events):
        if covered[j]:
            continue
        if ruleset.foreign(e):
            continue
        rule = ruleset.event_rule(e)
        if rule is not None:
            key = (rule.kind, rule.reason or f"{_packet(e.op)} priced by {rule.count!r}")
            priced = EVENT_COUNTERS[rule.count](e)
        else:
            key = _default_reason(ruleset, e, hook_based)
            priced = EVENT_COUNTERS[ruleset.default](e)
        book(key, priced, e.macs, e.module_path, e.module_stack)
    contributions = tuple(
        RuleContribution(
            rule=reason,
            kind=kind,
            macs=delta,
            layers=tuple(sorted(((p, v) for p, v in layers[(kind, reason)].items() if v),
                                key=lambda x: (-abs(x[1]), x[0]))[:_LAYERS_KEPT]),
        )
        for (kind, reason), delta in sorted(deltas.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        if delta
    )
    return RulesetPrediction(name or ruleset.name, total, contributions, breakdown(per_module))


def with_cause(prediction: RulesetPrediction, rule: str, kind: str,
               amounts: Sequence[tuple[str, Sequence[str], int]]) -> RulesetPrediction:
    """``prediction`` plus one more cause: ``amounts`` are ``(layer, module
    stack, MACs)`` entries that the recording alone could not price (work a
    JIT trace drops, a pruning mask's zeros); the cause books their sum with
    its layers, and the total and per-module counts move by as much."""
    total = 0
    layers: dict[str, int] = defaultdict(int)
    per_module = dict(prediction.per_module)
    for path, stack, macs in amounts:
        if not macs:
            continue
        total += macs
        layers[path] += macs
        for p in dict.fromkeys(stack or ("",)):
            per_module[p] = per_module.get(p, 0) + macs
    if not total and not any(layers.values()):
        return prediction
    cause = RuleContribution(
        rule=rule, kind=kind, macs=total,
        layers=tuple(sorted(((p, v) for p, v in layers.items() if v), key=lambda x: (-abs(x[1]), x[0]))[:_LAYERS_KEPT]),
    )
    return dataclasses.replace(prediction, macs=prediction.macs + total,
                               contributions=(*prediction.contributions, cause), per_module=breakdown(per_module))
