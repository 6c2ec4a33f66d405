"""Rule-by-rule predictions add up exactly to the ruleset's count."""

from __future__ import annotations

import torch
from torch import nn

from flopaudit.inputs import ModelInputs
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


class StatefulInEval(nn.Module):
    """Writes a running state in place when in eval mode (as Hugging Face's RWKV caches its
    state): under autograd the backward then fails, in eval mode only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        y = torch.sigmoid(h)  # saves its output for the backward
        if not self.training:
            y.mul_(1.0)  # an eval-mode state update, in place
        return self.out(y)


class GradientFree(nn.Module):
    """Refuses any pass with autograd on (a model wrapped for inference only)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            raise RuntimeError("inference only")
        return self.fc(x)


def test_a_pass_the_model_cannot_run_in_eval_mode_is_predicted_from_the_mode_it_was_given() -> None:
    """A training step in eval mode (as calflops runs its forward) fails for StatefulInEval; the
    reference count stands, and calflops is predicted from the step in train mode, with a note."""
    from flopaudit.adapters.reference import predict_backends

    model, inputs = StatefulInEval().train(), ModelInputs((torch.randn(2, 8),))
    eval_copy = StatefulInEval().eval()
    try:
        count(eval_copy, inputs, pass_="train")
        raise AssertionError("the eval-mode step should fail")
    except RuntimeError as exc:
        assert "inplace operation" in str(exc)
    result = count(model, inputs, pass_="train")
    notes: list[str] = []
    predictions = {p.ruleset: p for p in predict_backends(model, inputs, result, notes=notes)}
    assert predictions["calflops"].macs == 3 * 2 * 8 * 8 * 2  # its forward x 3
    (note,) = [n for n in notes if n.startswith("calflops: ")]
    assert note.startswith("calflops: predicted from the pass in train mode: in eval mode, as calflops runs the "
                           "model, it fails (RuntimeError: one of the variables needed for gradient computation")
    assert set(predictions) == {"torch-flop-counter", "calflops", "rule-3x-forward"} and len(notes) == 1
    assert model.training and all(p.grad is None for p in model.parameters())


def test_a_pass_that_cannot_be_recorded_leaves_its_rulesets_unpredicted_not_the_count() -> None:
    """GradientFree refuses autograd: the rulesets of backends that run with autograd on are not
    predicted (said in a note each); the others are, and the reference count stands."""
    from flopaudit.adapters.reference import ReferenceAdapter

    raw = ReferenceAdapter()._count(GradientFree().eval(), ModelInputs((torch.randn(2, 8),)))
    predicted = {p.ruleset for p in raw.predictions}
    unpredicted = {n.split(":")[0] for n in raw.warnings if ": not predicted: " in n}
    assert raw.macs == 2 * 8 * 8 and "thop" in predicted and {"calflops", "deepspeed"} <= unpredicted
    assert not predicted & unpredicted


def _stateful_inputs() -> ModelInputs:
    return ModelInputs((torch.randn(2, 8),))


def test_a_backend_predicted_from_the_given_mode_says_so_in_its_cell() -> None:
    """Through an audit: calflops (which runs StatefulInEval's forward in eval mode and triples
    it) is explained exactly, its cell naming the mode its prediction was recorded in."""
    from flopaudit.reports import build_report
    from flopaudit.run import run_audit
    from flopaudit.zoo.case import ModelCase

    case = ModelCase("stateful-in-eval", StatefulInEval, _stateful_inputs, train=True)
    report = build_report(run_audit([case], ["reference", "calflops"], isolate=False, pass_="train"))
    (cell,) = [c for c in report.cells if c.backend == "calflops"]
    assert cell.status == "ok" and cell.residual == 0 and cell.classification != "unexplained"
    assert any(n.startswith("predicted from the pass in train mode: in eval mode, as calflops runs the model, it "
                            "fails (RuntimeError") for n in cell.notes), cell.notes


class Linear(nn.Module):
    """A library's own ``Linear`` (PyG's ``torch_geometric.nn.dense.linear.Linear``): not torch's."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()


def test_a_layer_named_as_a_torch_class_it_is_not_is_named_by_its_path() -> None:
    rec = count(nn.Sequential(Linear(), nn.Linear(4, 2)), torch.randn(3, 8))
    causes = {c.rule: c.macs for c in predict(rec.events, rec.module_call_records, HOOKISH).contributions}
    assert causes == {f"no rule for Linear modules ({__name__}.Linear, not torch.nn.Linear)": -3 * 8 * 4,
                      "no rule for Linear modules": -3 * 4 * 2}
