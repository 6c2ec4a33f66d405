"""Rule-by-rule predictions add up exactly to the ruleset's count."""

from __future__ import annotations

import torch
from torch import nn

from flopaudit.reference import count
from flopaudit.reference.pricing import apply, predict
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import EventRule, ModuleRule, Ruleset


class Toy(nn.Module):
    """conv(3->8, k3, bias) on 1x3x8x8 -> ReLU -> Linear(288, 10) -> functional @ (10x4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8 * 6 * 6, 10, bias=False)
        self.w = nn.Parameter(torch.randn(10, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1)) @ self.w


CONV = 1 * 8 * 6 * 6 * 3 * 3 * 3  # out elements x Cin x k x k
FC = 1 * 288 * 10
MM = 1 * 10 * 4
OUT = 8 * 6 * 6  # conv output elements: bias adds, ReLU elements

HOOKISH = Ruleset(
    name="toy-hooks",
    unit="MAC",
    description="ReLU counted per element, conv with bias, nothing else",
    module_rules=(ModuleRule("ReLU", "out_numel", reason="ReLU = 1 per element"),),
    event_rules=(EventRule("macs+extra", category=Category.CONV, reason="counts conv bias"),),
    default="zero",
)


def test_prediction_books_each_rule() -> None:
    rec = count(Toy(), torch.randn(1, 3, 8, 8))
    assert rec.macs == CONV + FC + MM
    pred = predict(rec.events, rec.module_call_records, HOOKISH)
    got = {(c.kind, c.rule): c.macs for c in pred.contributions}
    assert got == {
        ("rule", "ReLU = 1 per element"): OUT,
        ("rule", "counts conv bias"): OUT,
        ("unsupported", "no rule for Linear modules"): -FC,
        ("missed-functional", "functional aten.mm outside leaf modules"): -MM,
    }
    assert pred.macs == rec.macs + sum(got.values()) == CONV + 2 * OUT
    assert pred.macs == apply(rec.events, rec.module_call_records, HOOKISH).total
    layers = {c.rule: dict(c.layers) for c in pred.contributions}
    assert layers["no rule for Linear modules"] == {"fc": -FC}
    assert layers["functional aten.mm outside leaf modules"] == {"": -MM}
    assert dict(pred.per_module)["conv"] == CONV + OUT


def test_flop_rulesets_are_halved_to_macs() -> None:
    rec = count(Toy(), torch.randn(1, 3, 8, 8))
    flops = Ruleset(name="toy-flops", unit="FLOP", description="2 per MAC", default="2*macs")
    pred = predict(rec.events, rec.module_call_records, flops)
    assert pred.macs == CONV + FC + MM and pred.contributions == ()


class Patched(nn.Module):
    """F.relu inside torch.matmul's operand and a bare torch.matmul: calls of
    functions two backends patch, one nested in the other's argument."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.matmul(torch.nn.functional.relu(x), self.w)
        return torch.softmax(h, -1) @ self.w.t()


def test_one_recording_patched_for_every_ruleset_predicts_as_dedicated_ones() -> None:
    """predict_backends records once with every ruleset's patches; each ruleset
    must see exactly what a recording with only its own patches shows."""
    from flopaudit.reference.backend_rulesets import backend_rulesets

    model, x = Patched(), torch.randn(4, 16)
    rulesets = backend_rulesets()
    union = tuple(dict.fromkeys(p for rs in rulesets.values() for p in rs.patched_functions))
    assert {"torch.nn.functional.relu", "torch.matmul"} <= set(union)
    shared = count(model, x, no_grad=False, patch=union)
    for name, rs in rulesets.items():
        alone = count(model, x, ruleset=rs, no_grad=False)
        mine = predict(alone.events, alone.module_call_records, rs, name)
        theirs = predict(shared.events, shared.module_call_records, rs, name)
        assert theirs == mine, name
        assert apply(shared.events, shared.module_call_records, rs).total == \
            apply(alone.events, alone.module_call_records, rs).total, name
    ptflops = rulesets["ptflops-pytorch"]
    relu = next(e for e in shared.events if e.op == "py:torch.nn.functional.relu")
    inside = next(e for e in shared.events if e.op.startswith("aten.relu"))
    assert not ptflops.foreign(relu) and ptflops.patched_in(inside) == "torch.nn.functional.relu"
    assert rulesets["fvcore"].patched_in(inside) == "" and rulesets["fvcore"].foreign(relu)
    foreign = [e for e in shared.events if e.op.startswith("py:") and ptflops.foreign(e)]
    assert all(e.op[3:] not in ptflops.patched_functions for e in foreign)
