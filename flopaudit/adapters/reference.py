"""The in-house reference counter behind the :class:`Adapter` interface."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.inputs import ModelInputs
from flopaudit.records import Granularity, RulesetPrediction, Unit


class ReferenceAdapter(Adapter):
    """Canonical reference count: every aten op priced by a documented formula.

    ``raw_total`` is the canonical MAC count (whole batch, bias excluded);
    ``extra`` carries the canonical FLOPs (2 x MACs + extra FLOPs), the extra
    FLOPs alone, bytes read/written and trainable parameters. Per-module
    MACs are inclusive of children; unsupported operators are listed with
    their call counts.
    """

    name: ClassVar[str] = "reference"
    distribution: ClassVar[str] = "flopaudit"
    module: ClassVar[str] = "flopaudit.reference"
    unit: ClassVar[Unit] = Unit.MAC
    granularity: ClassVar[Granularity] = Granularity.ATEN_OPS
    description: ClassVar[str] = (
        "flopaudit's reference counter: TorchDispatchMode over aten ops with per-op shape formulas"
    )
    copies_model: ClassVar[bool] = False
    """The counter leaves the model as it was (global hooks removed, written
    buffers put back, train/eval mode untouched), so no copy is needed."""

    def options(self) -> dict[str, object]:
        return {"ruleset": "canonical", "no_grad": True}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        from flopaudit.reference import count

        result = count(model, inputs, ruleset="canonical", no_grad=True)
        predictions = predict_backends(model, inputs, result)
        warnings = list(result.notes)
        if result.traced_custom_ops:
            traced = ", ".join(f"{op} x{n}" for op, n in sorted(result.traced_custom_ops.items()))
            warnings.append(f"custom op(s) without a formula counted through their Python kernel: {traced}")
        if result.unsupported:
            calls = sum(result.unsupported.values())
            warnings.append(f"{len(result.unsupported)} operator(s) without a formula ({calls} calls) counted as 0")
        return RawCount(
            raw_total=result.macs,
            macs=result.macs,
            params=result.params.unique,
            per_module=result.module_macs(),
            per_op=result.op_macs(),
            unsupported=dict(result.unsupported),
            warnings=warnings,
            extra={
                "flops": result.flops,
                "extra_flops": result.extra_flops,
                "bytes_read": result.totals.bytes_read,
                "bytes_written": result.totals.bytes_written,
                "params_trainable": result.params.trainable,
            },
            predictions=predictions,
        )


def predict_backends(model: nn.Module, inputs: ModelInputs, result: Any) -> tuple[RulesetPrediction, ...]:
    """Every backend's ruleset applied to this pass (see :mod:`flopaudit.reference.predict`).

    Rulesets of backends that run with autograd on are applied to a second
    recording made with autograd on, since eval-mode fused kernels differ.
    That recording is made once with every Python function any of them
    monkeypatches (``Ruleset.patched_functions``) wrapped; each ruleset sees
    only the calls of its own (:meth:`~flopaudit.reference.rulesets.Ruleset.patched_in`).
    """
    from flopaudit.reference import count
    from flopaudit.reference.backend_rulesets import backend_rulesets
    from flopaudit.reference.predict import predict

    rulesets = backend_rulesets()
    patches: dict[bool, tuple[str, ...]] = {}
    for ruleset in rulesets.values():
        patches[ruleset.grad_enabled] = tuple(dict.fromkeys((*patches.get(ruleset.grad_enabled, ()),
                                                             *ruleset.patched_functions)))
    recordings: dict[bool, Any] = {}
    if not patches.get(False):
        recordings[False] = result  # the canonical pass already is the autograd-off one
    out = []
    for backend, ruleset in rulesets.items():
        grad = ruleset.grad_enabled
        source = recordings.get(grad)
        if source is None:
            source = recordings[grad] = count(model, inputs, no_grad=not grad, patch=patches[grad])
        out.append(predict(source.events, source.module_call_records, ruleset, backend))
    return tuple(out)
