"""One ruleset per audited backend, named like the backend.

Each module defines its backend's :class:`~flopaudit.reference.rulesets.Ruleset`
(plus any event/module counters it needs) and registers it; a ruleset named
``fvcore`` predicts what the ``fvcore`` adapter reports, in whole-batch MACs.
The reference adapter attaches every one of them to its result as a
:class:`~flopaudit.records.RulesetPrediction`, which the diff report uses to
explain each backend's difference from the canonical count.
"""

from __future__ import annotations

import importlib

#: backend id -> module defining its ruleset (imported lazily, once).
BACKEND_RULESET_MODULES: dict[str, str] = {
    "thop": "flopaudit.reference.backend_rulesets.thop",
    "ptflops-pytorch": "flopaudit.reference.backend_rulesets.ptflops_pytorch",
    "ptflops-aten": "flopaudit.reference.backend_rulesets.ptflops_aten",
    "fvcore": "flopaudit.reference.backend_rulesets.fvcore",
    "torchinfo": "flopaudit.reference.backend_rulesets.torchinfo",
    "torch-flop-counter": "flopaudit.reference.backend_rulesets.torch_flop_counter",
    "torch-profiler": "flopaudit.reference.backend_rulesets.torch_profiler",
    "calflops": "flopaudit.reference.backend_rulesets.calflops",
    "deepspeed": "flopaudit.reference.backend_rulesets.deepspeed",
    "torchprofile": "flopaudit.reference.backend_rulesets.torchprofile",
    "torchstat": "flopaudit.reference.backend_rulesets.torchstat",
    "torchsummary": "flopaudit.reference.backend_rulesets.torchsummary",
    "torch-summary": "flopaudit.reference.backend_rulesets.torch_summary",
    "pytorch-model-summary": "flopaudit.reference.backend_rulesets.pytorch_model_summary",
}


def backend_rulesets() -> dict[str, "object"]:
    """``{backend id: Ruleset}`` for every backend whose ruleset module exists."""
    from flopaudit.reference.rulesets import get_ruleset

    out = {}
    for backend, module in BACKEND_RULESET_MODULES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        out[backend] = get_ruleset(backend)
    return out
