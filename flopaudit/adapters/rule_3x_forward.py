"""Rule of thumb: a training step costs 3 x its forward pass (backward = 2 x forward).

Not a counter: the estimate papers and budgets use when they do not count
the backward. Counted here as 3 x the reference's canonical MACs of the
forward pass (with autograd on, in the model's mode: the forward of the
training step). Its ruleset (:mod:`flopaudit.reference.backend_rulesets.rules_of_thumb`)
explains how a real step differs: frozen parameters and inputs that need
no gradient have no gradient products, attention kernels recompute their
scores, activation checkpointing recomputes forward work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from flopaudit.adapters._rule_of_thumb import RuleOfThumbAdapter, rule_backend
from flopaudit.adapters.base import RawCount, count_params
from flopaudit.records import Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.passes import Pass

BACKEND = rule_backend(
    name="rule-3x-forward",
    adapter="ThreeTimesForwardAdapter",
    description="rule of thumb, not a counter: training step = 3 x the forward pass's canonical MACs",
    unit=Unit.MAC,
    order=300,
)


class ThreeTimesForwardAdapter(RuleOfThumbAdapter):
    """``raw_total`` = ``macs`` = 3 x the reference's canonical forward MACs;
    ``extra``: ``forward_macs``."""

    backend = BACKEND
    copies_model: ClassVar[bool] = False
    """The reference's forward count leaves the model as it was."""

    def options(self) -> dict[str, Any]:
        return {"factor": 3, "forward": "reference canonical MACs, autograd on"}

    def _count_train(self, model: nn.Module, inputs: ModelInputs, step: Pass) -> RawCount:
        from flopaudit.reference import count

        forward = count(model, inputs, no_grad=False).macs
        return RawCount(raw_total=3 * forward, macs=3 * forward, params=count_params(model),
                        extra={"forward_macs": forward})
