"""What the rule-of-thumb backends share: their descriptor's fixed fields and an adapter
that counts training steps only (:mod:`flopaudit.rules_of_thumb`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flopaudit.adapters.base import Adapter, RawCount, has_lazy_tensors
from flopaudit.adapters.descriptor import Backend, MetaSupport
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.rules_of_thumb import ModelFacts

RULESET = "flopaudit.reference.backend_rulesets.rules_of_thumb"


def rule_backend(**fields: Any) -> Backend:
    """A rule of thumb's descriptor: granularity ``rule of thumb``, part of flopaudit, its
    ruleset in :data:`RULESET`, counts on meta (it reads shapes and configs), training steps only;
    an estimate in FLOPs says it is halved to MACs."""
    if fields.get("unit") is Unit.FLOP:
        fields.setdefault("unit_note", "an estimate in FLOPs (2 per multiply-add); normalised to MACs by halving")
    return Backend(granularity=Granularity.RULE_OF_THUMB, module="flopaudit.rules_of_thumb", ruleset=RULESET,
                   meta=MetaSupport(True), passes=("train",), **fields)


class RuleOfThumbAdapter(Adapter):
    """An estimate of a training step (:meth:`_count_train`); never asked for a forward pass
    (its descriptor counts training steps only)."""

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        raise NotImplementedError(f"{self.name} estimates training steps only")

    @staticmethod
    def facts(model: nn.Module, inputs: ModelInputs) -> ModelFacts:
        """:func:`~flopaudit.rules_of_thumb.model_facts` of the model as it trains: a lazy
        module's parameters exist only after a first forward, run here (on the adapter's copy)."""
        import torch

        from flopaudit.rules_of_thumb import model_facts

        if has_lazy_tensors(model):
            with torch.no_grad():
                model(*inputs.args, **inputs.kwargs)
        return model_facts(model, inputs)
