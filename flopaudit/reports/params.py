"""Explain a cell's parameter count the way MAC differences are explained.

The reference counts every parameter tensor once (tied weights once, frozen
ones included, buffers not). Each backend's ruleset predicts the backend's
parameter count from the model's inventory and its module calls, with every
difference booked to a cause (:mod:`flopaudit.reference.params`): frozen
parameters left out, a tied weight counted in each module holding it, a
module counted per call or per name, parameters held by the root or by a
module never called, a pruned module's computed weight. A cell's parameter
difference is those causes plus a residual; the residual is non-zero only
when the ruleset does not know what the backend did (``unexplained``).

Memory figures some backends print (torchsummary's and torch-summary's
estimate, torchstat's bytes read and written) are kept in the result's
``extra`` and shown as they are; they have no reference counterpart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flopaudit.records import CountResult, RulesetPrediction
from flopaudit.reports.model import Cause

MEMORY_KEYS = ("input_bytes", "forward_backward_bytes", "params_bytes", "total_bytes", "memory_read_bytes",
               "memory_write_bytes", "inference_memory_kib")
"""``extra`` keys holding a backend's own memory estimate (see each adapter)."""


@dataclass(frozen=True)
class ParamsExplanation:
    """Why ``backend_params`` differs from the reference's unique parameters.

    ``difference == sum(c.macs for c in causes) + residual`` (the ``macs``
    field of a cause holds parameters here).
    """

    backend_params: int
    reference_params: int
    predicted_params: int | None
    causes: tuple[Cause, ...] = ()
    residual: int = 0
    classification: str = "agrees"
    memory: tuple[tuple[str, int], ...] = ()

    @property
    def difference(self) -> int:
        return self.backend_params - self.reference_params

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend_params": self.backend_params,
            "reference_params": self.reference_params,
            "predicted_params": self.predicted_params,
            "difference": self.difference,
            "causes": [c.to_dict() for c in self.causes],
            "residual": self.residual,
            "classification": self.classification,
            "memory": dict(self.memory),
        }


def explain_params(result: CountResult, reference: CountResult | None,
                   prediction: RulesetPrediction | None) -> ParamsExplanation | None:
    """The parameter explanation of one ok cell (None without both counts)."""
    if result.params is None or reference is None or not reference.ok or reference.params is None:
        return None
    memory = tuple((k, v) for k, v in result.extra if k in MEMORY_KEYS)
    predicted = prediction.params if prediction is not None else None
    if predicted is None:
        diff = result.params - reference.params
        return ParamsExplanation(result.params, reference.params, None, residual=diff,
                                 classification="agrees" if not diff else "unexplained", memory=memory)
    causes = tuple(Cause(c.kind, c.rule, c.macs, c.layers) for c in prediction.param_contributions if c.macs)
    residual = result.params - predicted
    if residual:
        classification = "unexplained"
    elif not causes:
        classification = "agrees"
    else:
        classification = str(max(causes, key=lambda c: (abs(c.macs), c.kind)).kind)
    return ParamsExplanation(result.params, reference.params, predicted, causes, residual, classification, memory)


__all__ = ["MEMORY_KEYS", "ParamsExplanation", "explain_params"]
