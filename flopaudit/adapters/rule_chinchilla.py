"""Rule of thumb (Hoffmann et al. 2022, appendix F): a transformer's training step in closed form.

Not a counter: 3 x the forward FLOPs of appendix F (embeddings, key/query/
value projections, attention logits, softmax, weighted values, output
projection, a two-matrix dense block, final logits) from the dimensions of
the model's Hugging Face config and the input's sequence length, for every
sequence of the batch (:func:`flopaudit.rules_of_thumb.chinchilla_flops`);
not applicable without a config or token ids. Its ruleset explains how a
real step differs: the embedding lookup and the softmax priced as
products, shapes the closed form does not have, and what autograd really
computes.
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
    name="rule-chinchilla",
    adapter="ChinchillaAdapter",
    description="rule of thumb, not a counter (Hoffmann et al. 2022, appendix F): 3 x a transformer's "
    "closed-form forward FLOPs from its config",
    unit=Unit.FLOP,
    order=320,
)


class ChinchillaAdapter(RuleOfThumbAdapter):
    """``raw_total`` = appendix F's step FLOPs, ``macs`` its half; ``extra``: each
    forward term's FLOPs for the batch (``chinchilla.<term>``)."""

    backend = BACKEND

    def options(self) -> dict[str, Any]:
        return {"backward": "2 x forward", "dims": "Hugging Face config"}

    def _count_train(self, model: nn.Module, inputs: ModelInputs, step: Pass) -> RawCount:
        from flopaudit.rules_of_thumb import chinchilla_flops, chinchilla_forward_terms

        facts = self.facts(model, inputs)
        flops = chinchilla_flops(facts)
        assert facts.dims is not None and facts.seq_len is not None
        terms = chinchilla_forward_terms(facts.dims, facts.seq_len)
        return RawCount(raw_total=flops, macs=flops // 2, params=count_params(model),
                        extra={f"chinchilla.{k}": v * facts.sequences for k, v in terms.items()})
