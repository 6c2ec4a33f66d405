"""``pytorch_model_summary.summary(model, *inputs, show_input=...)``: parameters per layer, no MACs.

What pytorch-model-summary 0.1.2 counts (``pytorch_model_summary/model_summary.py``,
verified by probes on torch 2.14):

* It walks the module tree from the root, looking through ``nn.Sequential``
  and ``nn.ModuleList`` (their children take their place), and shows the
  modules at ``max_depth`` (1 by default: the root's children) plus
  childless modules above it; a bare module without children is shown
  itself.
* Each shown module gets a forward hook (a pre-hook with ``show_input=True``)
  that records, on its *first* call only, ``module.parameters()`` (recursive,
  a parameter shared inside the module once) and how many require grad.
* The model runs once in eval mode (its mode restored after), with autograd
  on; "Total params" is the sum over the shown modules that were called.

So parameters held directly by the root (a class token) or by a module below
``max_depth`` that is never called do not count, a weight tied between two
shown modules counts in each, and a module shared by two parents counts once.
It counts no MACs: its cells read "does not count MACs" and take part in the
parameter comparison.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flopaudit.adapters._failures import frame_locals, module_named, type_named
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, Backend, MetaSupport
from flopaudit.errors import BackendFailure, NotApplicable
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

_TOTALS = re.compile(r"^(Total|Trainable|Non-trainable) params: ([\d,]+)\s*$", re.M)
_ROW = re.compile(r"^\s*(\S+-\d+)\s+.*?\s([\d,]+)\s+([\d,]+)\s*$")


BACKEND = Backend(
    name="pytorch-model-summary",
    adapter="PytorchModelSummaryAdapter",
    description=(
        "pytorch-model-summary: hooks on the root's children, recursive parameters on first call; counts no MACs"
    ),
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="pytorch_model_summary",
    distribution="pytorch-model-summary",
    install="pip install pytorch-model-summary",
    ruleset="flopaudit.reference.backend_rulesets.pytorch_model_summary",
    meta=MetaSupport(True),  # the same parameters on meta as on CPU (probed as calflops)
    counts_macs=False,
    known_divergences={
        case: "pytorch-model-summary fails: a shown module gets or returns None (nn.MultiheadAttention's "
        "attention weights) and its hook's shapes() raises 'Object not supported'; a crash is not predicted"
        for case in ("mha-cross-kdim", "transformer-encoder-eval", "attention-frozen-fast-path")
    } | {**dict.fromkeys(SCRIPT_MODULE_CASES, "pytorch-model-summary fails: its forward hooks cannot be "
                         "registered on a ScriptModule"),
         "exported-program": "pytorch-model-summary fails: the only module an exported graph calls is its guard "
         "module (_guards_fn), which returns None: its row gets no output shape (KeyError: 'output_shape')",
         "roi-align-head": "pytorch-model-summary fails: MultiScaleRoIAlign is called with a dict of feature maps "
         "and its hook's shapes() takes tensors, tuples and lists only ('Object not supported')",
         "calls-sibling-modules": "pytorch-model-summary fails: the magnitude layer is called with the lora_A and "
         "lora_B modules as arguments and its hook's shapes() takes tensors, tuples and lists only ('Object not "
         "supported')",
         "module-copied-in-forward": "pytorch-model-summary fails: a module copied in the forward carries its hook, "
         "which looks the module up by id() in a table made before the pass: the copy is not there (AttributeError: "
         "'NoneType' object has no attribute 'get')"},
    order=100,
)

class PytorchModelSummaryAdapter(Adapter):
    """``summary(model, *args, show_input=..., max_depth=1)``, its text parsed.

    ``macs`` and ``raw_total`` are None (no operation count). ``params`` is
    "Total params"; ``extra`` holds ``params_trainable`` ("Trainable params")
    and ``rows`` (the layers in its table).

    Inputs: positional only (``summary(model, *inputs)``); a model with
    keyword inputs is ``not applicable``.
    """

    backend = BACKEND


    def __init__(self, show_input: bool = False) -> None:
        self.show_input = show_input

    def options(self) -> dict[str, Any]:
        return {"show_input": self.show_input, "max_depth": 1, "show_hierarchical": False, "batch_size": -1}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        if inputs.kwargs:
            raise NotApplicable(
                "pytorch_model_summary.summary(model, *inputs) passes positional inputs only; this model takes "
                + inputs.describe()
            )
        from pytorch_model_summary import summary

        opts = self.options()
        try:
            text = summary(model, *inputs.args, show_input=opts["show_input"], max_depth=opts["max_depth"],
                           show_hierarchical=opts["show_hierarchical"], batch_size=opts["batch_size"],
                           print_summary=False)
        except Exception as exc:
            refused = _refused_object(exc, model) if str(exc) == _REFUSED else None
            if refused is None:
                raise
            raise BackendFailure("pytorch-model-summary's hook reads the shapes of each shown module's inputs and "
                                 f"outputs and takes tensors, tuples and lists only ({_REFUSED!r}): {refused}") from exc
        totals = {kind: int(n.replace(",", "")) for kind, n in _TOTALS.findall(text)}
        if "Total" not in totals:
            raise BackendFailure("pytorch_model_summary printed no 'Total params' line")
        rows = sum(1 for line in text.splitlines() if _ROW.match(line))
        return RawCount(
            raw_total=None,
            macs=None,
            params=totals["Total"],
            extra={"params_trainable": totals.get("Trainable", 0), "rows": rows},
        )


_REFUSED = "Object not supported"
"""What pytorch-model-summary's hook raises on an input or output that is not a tensor, a tuple or a list."""


def _refused_object(exc: BaseException, model: nn.Module) -> str | None:
    """Which shown module's input or output the hook refused, and what it was, read from the
    frames of ``exc``'s traceback (``hook(module, input, output)`` -> ``shapes(x)`` ->
    ``_shapes(_)``); None where they are not there."""
    here = "pytorch_model_summary.model_summary"
    hook, shapes, refused = (frame_locals(exc, here, f) for f in ("hook", "shapes", "_shapes"))
    if hook is None or "module" not in hook:
        return None
    shaped = shapes.get("x") if shapes is not None else None
    which = "output" if shaped is not None and shaped is hook.get("output") else "input"
    what = type_named(refused.get("_") if refused is not None else None)
    return f"the {which} of {module_named(model, hook['module'])} is or holds {what}"


__all__ = ["PytorchModelSummaryAdapter"]
