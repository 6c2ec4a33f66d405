"""``pytorch-model-summary`` (0.1.2): no MACs; its parameter count as a ruleset.

It counts no operations; its "Total params" (``model_summary.py``) is the
sum, over the modules it shows that were called, of each one's
``parameters()`` (recursive, each tensor once within the module) at its first
call. It shows the modules at depth 1 (the root's children, looking through
``nn.Sequential`` and ``nn.ModuleList``, subclasses included, whose children
take their place: the own parameters of such a subclass, a fused QAT
``ConvBnReLU2d``'s weight, are in no shown module)
plus childless modules above that: the root itself only when it has no
children. So parameters held by the root or by a module never called are not
counted, a weight tied between two shown modules is counted in each, and a
module shared by two parents once.
"""

from __future__ import annotations

from typing import Sequence

from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.inventory import ModelInventory, ModuleInfo
from flopaudit.reference.params import CONTAINER_HELD, NEVER_CALLED, ParamTally, miss_the_rest, param_counter
from flopaudit.reference.rulesets import Ruleset, register_ruleset


def shown_modules(modules: ModelInventory, max_depth: int = 1) -> list[ModuleInfo]:
    """``build_module_tree``'s shown modules: depth counts non-container
    ancestors; shown at ``max_depth``, or above it without children."""
    depth: dict[str, int] = {modules.root.path: 0}
    children: dict[str, int] = {modules.root.path: 0}
    order: list[str] = []

    def walk(info: ModuleInfo, parent: str, level: int) -> None:
        for child_path in info.children:
            child = modules.module(child_path)
            if child is None:
                continue
            if child.container:
                walk(child, parent, level)
                continue
            depth[child.path] = level
            children.setdefault(child.path, 0)
            children[parent] += 1
            if child.path not in order:
                order.append(child.path)
            walk(child, child.path, level + 1)

    walk(modules.root, modules.root.path, 1)
    shown = [p for p in [modules.root.path, *order]
             if depth[p] == max_depth or (depth[p] < max_depth and children[p] == 0)]
    return [m for p in shown if (m := modules.module(p)) is not None]


@param_counter("pytorch-model-summary")
def pytorch_model_summary_params(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """The shown modules' recursive parameters, each module once if called."""
    tally = ParamTally()
    called = {call.path for call in calls}
    for info in shown_modules(modules):
        for _, t in modules.named_params(info.path):
            if info.path in called:
                tally.count(t, info.path)
            else:  # booked at the shown module that was not called, which holds it below
                tally.miss(t, *NEVER_CALLED, at=info.path)
    for info in modules.modules:
        if info.container and info.path:
            for t in info.params:
                tally.miss(t, *CONTAINER_HELD)
    miss_the_rest(tally, modules, ("rule", "parameters held by the root module are not counted (only its children are "
                                   "shown)"),
                  ("rule", "held by a module below the shown depth whose shown ancestor was not called"))
    return tally


PYTORCH_MODEL_SUMMARY = register_ruleset(Ruleset(
    name="pytorch-model-summary",
    unit="MAC",
    description="pytorch-model-summary: counts no MACs; parameters = recursive parameters of the root's children "
    "(through Sequential/ModuleList) at their first call.",
    default="zero",
    eval_mode=True,  # the backend calls model.eval() before its pass
    grad_enabled=True,
    module_hooks=True,
    params="pytorch-model-summary",
))
