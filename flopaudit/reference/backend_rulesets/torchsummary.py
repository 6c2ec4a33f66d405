"""sksq96's ``torchsummary`` (1.5.1): no MACs; its parameter count as a ruleset.

torchsummary counts no operations (the ruleset prices every event 0 and the
adapter reports no MACs), so the ruleset is there for its parameters
(``torchsummary/torchsummary.py``): ``model.apply`` registers a forward hook
on every module but ``nn.Sequential``, ``nn.ModuleList`` (by ``isinstance``:
their subclasses too, such as torch.ao's fused QAT ``ConvBnReLU2d``, whose
own weight is then not counted) and the root, once
per visit (a module shared by two parents twice); each hook call adds a row
with the element counts of the module's ``weight`` and ``bias`` attributes,
whatever they are. So parameters are counted per call and per name, a tied
weight in each module holding it, a pruned module's computed ``weight`` in
place of its ``weight_orig`` parameter, and only under the names ``weight``
and ``bias``, whatever those attributes read as: a parametrization's
computed weight, a buffer, or the wrapped module's parameters for a wrapper
that forwards them (``torch.compile``'s ``OptimizedModule``, a PEFT LoRA
layer), which are then counted twice.
"""

from __future__ import annotations

from typing import Sequence

from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.inventory import ModelInventory, TensorInfo
from flopaudit.reference.params import (
    CONTAINER_HELD,
    COPIED,
    FORWARDED,
    NEVER_CALLED,
    PER_CALL,
    PER_NAME,
    ParamTally,
    param_counter,
)
from flopaudit.reference.rulesets import Ruleset, register_ruleset

_ATTRS = ("weight", "bias")


_COMPUTED = ("rule", "a weight or bias the module computes (a pruned weight, a parametrization's) is counted, "
             "not the parameters it is computed from")
_BUFFER = ("rule", "a buffer named weight or bias is counted as a parameter")


@param_counter("torchsummary")
def torchsummary_params(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """A row per call per hook (see the module docstring), each adding the
    elements of what the module's ``weight`` and ``bias`` attributes read as."""
    tally = ParamTally()
    calls_so_far: dict[str, int] = {}
    parameters = modules.unique_params()
    forwarded: list[tuple[TensorInfo, str]] = []  # another module's parameter, read through a wrapper
    # A copy made in the forward carries the hooks (a row per hook, as the module's own); its rows come
    # after the model's own, so that they are the extra counts where the module ran too.
    for call in sorted(calls, key=lambda c: c.copied):
        info = modules.module(call.path)
        if info is None or not call.path or info.container:
            continue
        held = {t.name: t for t in (*info.params, *info.tensor_attrs) if t.name in _ATTRS}
        buffers = {b.key for b in info.buffers}
        nth = calls_so_far[call.path] = calls_so_far.get(call.path, 0) + 1
        for hook in range(len(info.names)):
            why = ("rule", "") if nth == 1 and hook == 0 else (
                COPIED if call.copied else PER_NAME if nth == 1 else PER_CALL)
            for name in _ATTRS:
                t = held.get(name)
                if t is None:
                    continue
                if t not in info.tensor_attrs:
                    tally.count(t, call.path, *why)
                elif t.key in parameters:
                    forwarded.append((t, call.path))
                else:
                    tally.count(t, call.path, *(_BUFFER if t.key in buffers else _COMPUTED))
    for t, path in forwarded:  # after the holder's own count
        tally.count_again(t, path, *FORWARDED)
    called = {call.path for call in calls}
    for info in modules.modules:
        for t in info.params:
            if not info.path:
                tally.miss(t, "rule", "parameters held by the root module are not counted (it is not hooked)")
            elif info.container:
                tally.miss(t, *CONTAINER_HELD)
            elif t.name.endswith("_orig"):
                tally.miss(t, "rule", "a pruned weight's parameter (weight_orig) is not an attribute named weight")
            elif t.name not in _ATTRS:
                tally.miss(t, "unsupported", "only attributes named weight and bias are counted "
                           "(e.g. weight_ih_l0, in_proj_weight, a class token)")
            elif info.path not in called:
                tally.miss(t, *NEVER_CALLED)
    return tally


TORCHSUMMARY = register_ruleset(Ruleset(
    name="torchsummary",
    unit="MAC",
    description="torchsummary (sksq96): counts no MACs; parameters = weight + bias attributes of every hooked "
    "module call (all modules but the root, Sequential and ModuleList; once per name).",
    default="zero",
    grad_enabled=True,
    module_hooks=True,
    params="torchsummary",
))
