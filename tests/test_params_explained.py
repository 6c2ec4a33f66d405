"""Parameters compared like MACs: the inventory, the per-backend counters, the booking and the report."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.records import DECLARED_CAUSE, CountResult, Status, Unit
from flopaudit.reference import count
from flopaudit.reference.inventory import inventory
from flopaudit.reference.params import predict_params
from flopaudit.reports.explain import explain_cell
from flopaudit.zoo import get_case


class TiedShared(nn.Module):
    """a.fc and b.fc share one Linear; head's weight is tied to emb's; a root parameter and a buffer."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(4, 4)
        self.a = nn.Sequential(shared)
        self.b = nn.Sequential(shared)
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight
        self.scale = nn.Parameter(torch.ones(4))
        self.register_buffer("shift", torch.zeros(4))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.b(self.a(self.emb(ids))) * self.scale + self.shift)


def _record(model: nn.Module, x: torch.Tensor):  # noqa: ANN202
    return count(model, x, no_grad=True).module_call_records


def test_inventory_names_keys_and_tensors() -> None:
    model = TiedShared()
    modules = inventory(model)
    shared = modules.module("a.0")
    assert shared is not None and shared.names == ("a.0", "b.0")
    emb, head = modules.module("emb"), modules.module("head")
    assert emb.params[0].key == head.params[0].key  # tied: one tensor
    assert [t.name for t in modules.root.params] == ["scale"] and [t.name for t in modules.root.buffers] == ["shift"]
    unique = modules.unique_params()
    assert sum(t.numel for t, _ in unique.values()) == (16 + 4) + 40 + 4


@pytest.mark.parametrize(
    ("counter", "expected", "causes"),
    [
        pytest.param("unique", 64, {}, id="unique"),
        # thop: rules for Linear (a.0 under two names) and none for Embedding; the root's scale never
        pytest.param("thop", 2 * 20 + 40, {"module shared by several parents: its parameters are added once per name": 20,
                                           "parameters held by the root module itself are never counted": -4},
                     id="thop"),
        # torchstat: called leaves, own parameters: shared Linear once, emb and head each hold the tied weight
        pytest.param("torchstat", 20 + 40 + 40, {
            "a weight tied between modules is counted in each module holding it": 40,
            "held by a non-leaf module (torchstat reads leaf modules only)": -4}, id="torchstat"),
    ],
)
def test_counters_book_every_difference(counter: str, expected: int, causes: dict[str, int]) -> None:
    import flopaudit.reference.backend_rulesets.thop  # noqa: F401 - registers its counter
    import flopaudit.reference.backend_rulesets.torchstat  # noqa: F401

    model = TiedShared()
    calls = _record(model, torch.randint(0, 10, (2, 3)))
    total, contributions = predict_params(inventory(model), calls, counter)
    assert total == expected
    assert {c.rule: c.macs for c in contributions} == causes
    assert total == 64 + sum(c.macs for c in contributions)


def test_frozen_parameters_by_trainable_counter() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    total, contributions = predict_params(inventory(model), _record(model, torch.randn(1, 4)), "trainable")
    assert total == 10
    assert [(c.rule, c.macs, c.layers) for c in contributions] == [
        ("frozen parameters (requires_grad=False) are not counted", -20, (("0", -20),))]


def _result(backend: str, macs: int | None, params: int, extra: tuple = ()) -> CountResult:
    return CountResult(model="m", backend=backend, backend_version="1", torch_version="2", unit=Unit.MAC,
                       status=Status.OK, raw_total=macs, macs=macs, params=params, extra=extra)


def test_parameter_only_backend_is_a_no_macs_cell_with_its_parameters_explained() -> None:
    model, inputs = get_case("params-on-root").instantiate()
    reference = get_adapter("reference").count(model, inputs, model_name="m")
    cell = explain_cell(_result("pytorch-model-summary", None, 136), reference)
    assert cell.classification == "no MACs" and cell.backend_macs is None
    assert cell.params is not None
    assert (cell.params.reference_params, cell.params.predicted_params, cell.params.residual) == (152, 136, 0)
    assert [(c.rule, c.macs) for c in cell.params.causes] == [
        ("parameters held by the root module are not counted (only its children are shown)", -16)]
    assert cell.to_dict()["params"]["difference"] == -16


def test_declared_causes_are_booked_not_residual() -> None:
    model, inputs = get_case("linear-2d").instantiate()
    reference = get_adapter("reference").count(model, inputs, model_name="m")
    prediction = reference.prediction("torchprofile")
    declared = ((DECLARED_CAUSE + "size arithmetic", 3),)
    cell = explain_cell(_result("torchprofile", prediction.macs + 3, reference.params, declared), reference)
    assert cell.residual == 0 and cell.classification != "unexplained"
    assert ("size arithmetic", 3) in [(c.rule, c.macs) for c in cell.causes]
    unexplained = explain_cell(dataclasses.replace(_result("torchprofile", prediction.macs + 3, reference.params)),
                               reference)
    assert unexplained.classification == "unexplained" and unexplained.residual == 3


class QatBlock(nn.Module):
    """A Conv2d+BatchNorm2d+ReLU fused for quantization-aware training, then a Linear head:
    the fused ``ConvBnReLU2d`` holds the conv's weight and is an ``nn.Sequential`` (torch.ao's
    fused modules are), which summary counters skip by ``isinstance``."""

    def __init__(self) -> None:
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.bn(self.conv(self.quant(x))))
        return self.head(self.dequant(h).mean((2, 3)))


def _qat_block() -> nn.Module:
    from torch.ao.quantization import fuse_modules_qat, get_default_qat_qconfig, prepare_qat

    model = fuse_modules_qat(QatBlock().train(), [["conv", "bn", "relu"]])
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model).eval()


@pytest.mark.parametrize("backend", ["torchsummary", "pytorch-model-summary"])
def test_a_fused_qat_module_is_a_sequential_to_summary_counters(backend: str) -> None:
    from flopaudit.reference.params import CONTAINER_HELD

    model, x = _qat_block(), torch.randn(2, 3, 8, 8)
    fused = model.conv
    assert isinstance(fused, nn.Sequential) and type(fused).__name__ == "ConvBnReLU2d"
    reference = get_adapter("reference").count(model, x, model_name="m")
    counted = get_adapter(backend).count(model, x, model_name="m")
    cell = explain_cell(counted, reference)
    assert cell.params is not None and cell.params.residual == 0, cell.params
    assert cell.params.predicted_params == counted.params
    causes = {c.rule: c.macs for c in cell.params.causes}
    assert causes[CONTAINER_HELD[1]] == -fused.weight.numel()  # 4 x 3 x 3 x 3: the fused conv's own weight


def test_parameters_of_a_module_run_through_a_method_are_booked_at_that_module() -> None:
    """A wrapper calls ``self.m.encode(x)``: pytorch-model-summary shows its child ``m``, never called as
    a module, and counts none of its parameters. The cause names ``m``, the module that was not called,
    not the layers it holds (which were called); and a cause's layer count is the layers it names."""

    class Inner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.unused = nn.Linear(8, 16), nn.Linear(16, 4), nn.Linear(4, 4)

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = Inner()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m.encode(x)

    model = Wrapper()
    total, causes = predict_params(inventory(model), _record(model, torch.randn(2, 8)), "pytorch-model-summary")
    assert total == 0
    (cause,) = causes
    assert cause.rule.startswith("held by a module never called as a module")
    assert cause.layers == (("m", -(8 * 16 + 16 + 16 * 4 + 4 + 4 * 4 + 4)),) and cause.layer_count == 1
