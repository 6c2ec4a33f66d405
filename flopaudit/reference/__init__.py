"""The in-house reference counter.

Records every aten operator of one forward pass with a ``TorchDispatchMode``
and module hooks, prices each with a documented shape-only formula
(:mod:`flopaudit.reference.formulas`), and reports MACs, extra FLOPs,
canonical FLOPs (2 x MACs + extra), bytes moved, per module / operator /
category, with unsupported operators listed with their call counts (never
silently 0). Rulesets (:mod:`flopaudit.reference.rulesets`) re-price the
same events under other counters' conventions.

Entry points::

    from flopaudit.reference import count, count_meta, apply_ruleset
    result = count(model, x)                      # canonical
    result.macs, result.flops, result.per_module[""], result.unsupported
    apply_ruleset(result, "torchvision").total    # conv + matmul MACs
    count_meta(lambda: build(cfg), lambda: torch.randint(0, V, (1, 2048)))
"""

from flopaudit.reference.api import (
    MetaBuildError,
    ParamCount,
    ReferenceCount,
    Totals,
    apply_ruleset,
    count,
    count_meta,
    empty_weights,
    param_counts,
    skip_init,
)
from flopaudit.reference.caching import clear_caches
from flopaudit.reference.engine import ModuleCall, OpEvent
from flopaudit.reference.module_rules import ModuleRuleHandle, register_module_rule
from flopaudit.reference.registry import (
    Category,
    Cost,
    OpCall,
    register_formula,
    temporary_formula,
    unregister_formula,
)
from flopaudit.reference.rulesets import RULESETS, EventRule, ModuleRule, Ruleset, RulesetTotals, get_ruleset

__all__ = [
    "Category",
    "Cost",
    "EventRule",
    "MetaBuildError",
    "ModuleCall",
    "ModuleRule",
    "ModuleRuleHandle",
    "OpCall",
    "OpEvent",
    "ParamCount",
    "RULESETS",
    "ReferenceCount",
    "Ruleset",
    "RulesetTotals",
    "Totals",
    "apply_ruleset",
    "clear_caches",
    "count",
    "count_meta",
    "empty_weights",
    "skip_init",
    "get_ruleset",
    "param_counts",
    "register_formula",
    "register_module_rule",
    "temporary_formula",
    "unregister_formula",
]
