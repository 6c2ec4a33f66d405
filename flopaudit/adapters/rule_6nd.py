"""Rule of thumb (Kaplan et al. 2020): a training step costs 6 x N x D FLOPs.

Not a counter: ``N`` the non-embedding parameters, ``D`` the tokens of the
batch (:func:`flopaudit.rules_of_thumb.kaplan_flops`); not applicable to a
model without token ids. Its ruleset explains how a real step differs:
attention products and an output layer tied to the embedding are not in
``6N``, biases and norm weights are priced as weights, and what autograd
really computes (frozen parameters, first layers, recomputation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flopaudit.adapters._rule_of_thumb import RuleOfThumbAdapter, rule_backend
from flopaudit.adapters.base import RawCount, count_params
from flopaudit.records import Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.passes import Pass

BACKEND = rule_backend(
    name="rule-6nd",
    adapter="KaplanAdapter",
    description="rule of thumb, not a counter (Kaplan et al. 2020): training step = 6 x non-embedding params "
    "x tokens FLOPs",
    unit=Unit.FLOP,
    order=310,
)


class KaplanAdapter(RuleOfThumbAdapter):
    """``raw_total`` = ``6 N D`` FLOPs, ``macs`` its half; ``extra``:
    ``params_non_embedding`` (N) and ``tokens`` (D)."""

    backend = BACKEND

    def options(self) -> dict[str, Any]:
        return {"N": "parameters not held by nn.Embedding", "D": "token ids of the input"}

    def _count_train(self, model: nn.Module, inputs: ModelInputs, step: Pass) -> RawCount:
        from flopaudit.rules_of_thumb import kaplan_flops

        facts = self.facts(model, inputs)
        flops = kaplan_flops(facts)
        return RawCount(raw_total=flops, macs=flops // 2, params=count_params(model),
                        extra={"params_non_embedding": facts.params_non_embedding, "tokens": facts.tokens or 0})
