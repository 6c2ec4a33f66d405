"""One pricing pass: summary, view and prediction together; counters from factories; checked kinds."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from flopaudit.records import CauseKind, RuleContribution, RulesetPrediction
from flopaudit.reference import count, get_ruleset
from flopaudit.reference.pricing import apply, predict, price
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import (
    EVENT_COUNTERS,
    MODULE_COUNTERS,
    EventRule,
    ModuleRule,
    Ruleset,
    affine_norm,
    attr,
    canonical_cost,
    elementwise,
    exact_type_rules,
    first_out,
    numel,
    patched_call_rules,
)

BATCH = 2


class Net(nn.Module):
    """Linear(6->4, bias) -> ReLU -> LayerNorm(4) under a block, then a functional matmul with a (4, 3) weight."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.LayerNorm(4))
        self.w = nn.Parameter(torch.randn(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) @ self.w


LINEAR = BATCH * 6 * 4
MATMUL = BATCH * 4 * 3
ELEMENTS = BATCH * 4  # Linear's output, ReLU's and LayerNorm's input and output

MODULE_COUNTERS.setdefault("test-pricing.linear",
                           lambda call: 2 * int(attr(call, "in_features")) * numel(first_out(call)))
MODULE_COUNTERS.setdefault("test-pricing.norm", affine_norm(4, 5, lambda call: bool(attr(call, "elementwise_affine"))))

HOOKS = Ruleset(
    name="test-pricing-hooks",
    unit="FLOP",
    description="Linear = 2 x in_features per output, LayerNorm 5/element (affine) else 4, the rest 0",
    module_rules=(
        ModuleRule("Linear", "test-pricing.linear", reason="Linear"),
        ModuleRule("LayerNorm", "test-pricing.norm", reason="LayerNorm", kind="rule"),
    ),
    default="zero",
)


@pytest.fixture(scope="module")
def recording():
    torch.manual_seed(0)
    return count(Net(), torch.randn(BATCH, 6))


def test_one_pass_gives_what_the_separate_ones_give(recording) -> None:
    ev, calls = recording.events, recording.module_call_records
    for rs in (HOOKS, get_ruleset("canonical"), get_ruleset("torchvision")):
        both = price(ev, calls, rs, BATCH, summary=True, view=True, prediction=True)
        assert both.view == apply(ev, calls, rs, BATCH)
        assert both.prediction == predict(ev, calls, rs)
        assert both.summary == price(ev, calls, rs, summary=True).summary
        assert price(ev, calls, rs, view=True).prediction is None


def test_summary_is_the_canonical_cost(recording) -> None:
    summary = price(recording.events, recording.module_call_records, get_ruleset("canonical"), summary=True).summary
    assert summary.total.macs == LINEAR + MATMUL
    assert summary.per_module["block.0"].macs == LINEAR and summary.per_module["block"].macs == LINEAR
    assert summary.per_module[""].macs == LINEAR + MATMUL
    assert summary.total.calls == len(recording.events)
    assert summary.total == recording.totals


def test_view_and_prediction_of_a_hook_ruleset(recording) -> None:
    ev, calls = recording.events, recording.module_call_records
    made = price(ev, calls, HOOKS, BATCH, view=True, prediction=True)
    linear_flops = 2 * 6 * BATCH * 4
    norm_flops = 5 * ELEMENTS  # elementwise_affine by default
    assert made.view.total == linear_flops + norm_flops
    assert made.view.per_op == {"module:Linear": linear_flops, "module:LayerNorm": norm_flops}
    assert made.view.per_module == {"": linear_flops + norm_flops, "block": linear_flops + norm_flops,
                                    "block.0": linear_flops, "block.2": norm_flops}
    # In MACs: FLOPs halved; the functional matmul is outside any leaf module (missed by hooks).
    assert made.prediction.macs == (linear_flops + norm_flops) // 2
    causes = {(c.kind, c.rule): c.macs for c in made.prediction.contributions}
    assert causes[(CauseKind.RULE, "LayerNorm")] == norm_flops // 2
    assert causes[(CauseKind.MISSED_FUNCTIONAL, "functional aten.mm outside leaf modules")] == -MATMUL
    assert recording.macs + sum(causes.values()) == made.prediction.macs


def test_per_sample_view_is_divided_by_the_batch(recording) -> None:
    per_sample = Ruleset("test-pricing-per-sample", "MAC", "canonical MACs per sample", default="macs",
                         per_sample=True)
    view = apply(recording.events, recording.module_call_records, per_sample, BATCH)
    assert view.total == (LINEAR + MATMUL) // BATCH
    assert view.per_module["block"] == LINEAR // BATCH


def test_counter_factories() -> None:
    class Shapes:
        input_shapes = ((2, 3, 4),)
        output_shapes = ((2, 5),)

    assert elementwise(input_scale=1)(Shapes()) == 24
    assert elementwise(output_scale=4)(Shapes()) == 40
    assert elementwise(1, 1)(Shapes()) == 34
    assert affine_norm(4, 5, lambda x: True)(Shapes()) == 120
    assert affine_norm(4, 5, lambda x: False)(Shapes()) == 96

    class NoTensors:
        input_shapes = ()
        output_shapes = ()

    assert elementwise(1, 1)(NoTensors()) == 0 and affine_norm(2, 4, lambda x: True)(NoTensors()) == 0

    class Event:
        macs, extra_flops = 10, 3

    assert [canonical_cost(m, x)(Event()) for m, x in ((1, 0), (0, 1), (2, 1), (2, 0), (1, 1))] == [10, 3, 23, 20, 13]
    # The registered names are those factories' counters: one formula each, for events and module calls.
    assert EVENT_COUNTERS["flops"](Event()) == 23 and EVENT_COUNTERS["macs+extra"](Event()) == 13
    assert EVENT_COUNTERS["in_numel"] is MODULE_COUNTERS["in_numel"]


def test_rule_kinds_are_checked_when_the_rule_is_made() -> None:
    assert EventRule("zero", kind="missed-functional").kind is CauseKind.MISSED_FUNCTIONAL
    assert ModuleRule("ReLU", "zero").kind is CauseKind.RULE
    with pytest.raises(ValueError, match="not a valid CauseKind"):
        EventRule("zero", kind="unsuported")
    with pytest.raises(ValueError, match="not a valid CauseKind"):
        ModuleRule("ReLU", "zero", kind="typo")
    with pytest.raises(ValueError, match="not a valid CauseKind"):
        RuleContribution("x", "nonsense", 1)


def test_cause_kinds_serialise_as_their_names() -> None:
    contribution = RuleContribution("bias", CauseKind.REUSED_MODULE, 5, (("a", 5),))
    prediction = RulesetPrediction("thop", 10, (contribution,))
    text = json.dumps(prediction.to_dict())
    assert '"kind": "reused-module"' in text
    back = RulesetPrediction.from_dict(json.loads(text))
    assert back == prediction and back.contributions[0].kind is CauseKind.REUSED_MODULE
    assert f"{contribution.kind}" == str(contribution.kind) == "reused-module"
    assert {"reused-module": 1}[contribution.kind] == 1


def test_rule_factories() -> None:
    rules = exact_type_rules([nn.Conv1d, nn.Conv2d], "zero", "convs", suppress_inner=False)
    assert [r.module_type for r in rules] == ["torch.nn.modules.conv.Conv1d", "torch.nn.modules.conv.Conv2d"]
    assert all(not r.suppress_inner and r.reason == "convs" for r in rules)
    calls, inner = patched_call_rules(("torch.matmul", "torch.mm"), "macs", "matmul", "unsupported")
    assert [r.op for r in calls] == ["py:torch.matmul", "py:torch.mm"] and {r.count for r in calls} == {"macs"}
    assert [r.patched for r in inner] == ["torch.matmul", "torch.mm"] and {r.count for r in inner} == {"zero"}
    assert {r.kind for r in calls + inner} == {CauseKind.UNSUPPORTED}


def test_category_rules_still_match(recording) -> None:
    only_matmul = Ruleset("test-pricing-matmul", "MAC", "matmul family only",
                          event_rules=(EventRule("macs", category=Category.MATMUL),), default="zero")
    assert apply(recording.events, recording.module_call_records, only_matmul).total == LINEAR + MATMUL


@pytest.mark.parametrize("case_id", ["batchnorm-train", "lstm-bidir-2layer", "transformer-encoder-eval", "module-shared-two-parents",
                                     "moe-grouped-experts"])
@pytest.mark.parametrize("train", [False, True])
def test_a_canonical_cost_view_taken_from_the_summary_is_the_one_priced_event_by_event(case_id: str,
                                                                                     train: bool) -> None:
    """With a summary asked for, a view that sums a canonical cost over every event is taken from
    the summary's sums; it must be what pricing each event gives, zero sums left out alike."""
    from flopaudit.zoo import get_case

    model, inputs = get_case(case_id).instantiate()
    rec = count(model, inputs, pass_="train" if train else "inference", optimizer="adamw" if train else None)
    ev, calls = rec.events, rec.module_call_records
    for rs in (get_ruleset("canonical"), get_ruleset("canonical-macs"),
               Ruleset(name="test-pricing-2macs", unit="FLOP", description="2 x MACs", default="2*macs"),
               Ruleset(name="test-pricing-per-sample", unit="MAC", description="MACs per sample", default="macs",
                       per_sample=True)):
        from_summary = price(ev, calls, rs, 2, summary=True, view=True, phases=train).view
        assert from_summary == apply(ev, calls, rs, 2)  # apply prices event by event (no summary asked for)


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm: torch 2.8 and later")
def test_the_expert_products_a_backend_misses_are_named() -> None:
    """A mixture of experts run as grouped products (transformers' Mixtral and Qwen-MoE): the counters
    that price them 0 say that product among the ones they miss, not only mv, dot or addbmm."""
    from flopaudit.adapters import get_adapter
    from flopaudit.zoo import get_case

    model, inputs = get_case("moe-grouped-experts").instantiate()
    predictions = {p.ruleset: p for p in get_adapter("reference").count(model, inputs).predictions}
    for backend in ("torch-flop-counter", "fvcore", "calflops", "deepspeed"):
        missed = min(predictions[backend].contributions, key=lambda c: c.macs)
        assert "torch._grouped_mm" in missed.rule and missed.macs < 0, (backend, missed)
