"""Every count of a model starts from the same random draws (flopaudit/draws.py)."""

from __future__ import annotations

import random

import torch
from torch import nn

from flopaudit.draws import same_draws
from flopaudit.inputs import ModelInputs
from flopaudit.reports import build_report
from flopaudit.run import run_audit
from flopaudit.zoo.case import ModelCase


class LayerDrop(nn.Module):
    """Eight Linear(16, 16) layers; in train mode each is skipped when its draw is below 0.5,
    as Hugging Face encoders with ``layerdrop`` do."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(16, 16) for _ in range(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if self.training and torch.rand([]) < 0.5:
                continue
            x = layer(x)
        return x


def _case() -> ModelCase:
    return ModelCase("layerdrop", LayerDrop, lambda: ModelInputs((torch.randn(4, 16),)), train=True)


def test_same_draws_seeds_and_restores_every_generator() -> None:
    torch.manual_seed(123)
    random.seed(123)
    before = torch.rand(3), random.random()
    torch.manual_seed(123)
    random.seed(123)
    with same_draws():
        first = torch.rand(3), random.random()
    after = torch.rand(3), random.random()
    assert torch.equal(after[0], before[0]) and after[1] == before[1]  # the caller's streams go on untouched
    with same_draws():
        assert torch.equal(torch.rand(3), first[0]) and random.random() == first[1]


def test_a_model_with_random_control_flow_is_counted_on_the_same_path_by_every_counter() -> None:
    backends = ["reference", "thop", "torch-flop-counter", "fvcore", "torchinfo"]
    runs = [build_report(run_audit([_case()], backends, isolate=False)) for _ in range(2)]
    for report in runs:
        for cell in report.cells:
            assert cell.status == "ok", cell.error
            assert cell.residual == 0 and cell.classification != "unexplained", cell
    kept = {r.macs for report in runs for r in report.run.results if r.backend == "reference"}
    assert len(kept) == 1  # the same layers in both runs
    (macs,) = kept
    assert macs % (4 * 16 * 16) == 0 and 0 < macs < 8 * 4 * 16 * 16  # some layers ran, some were dropped


class ConvLayerDrop(nn.Module):
    """Eight Conv2d(3, 3, 3) layers, each skipped when its draw is below 0.5, in eval mode
    too (as vit-pytorch's CaiT does with ``layer_dropout``)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(3, 3, 3, padding=1) for _ in range(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if torch.rand([]) < 0.5:
                continue
            x = layer(x)
        return x


def test_backends_drawing_their_own_inputs_leave_the_model_the_same_draws() -> None:
    """torchsummary and torchstat draw their inputs (torch.rand) before they run the model: the
    model's own draws start from the seed again, so they count the layers every counter counts."""
    case = ModelCase("conv-layerdrop", ConvLayerDrop, lambda: ModelInputs((torch.randn(1, 3, 8, 8),)))
    report = build_report(run_audit([case], ["reference", "torchsummary", "torchstat", "thop"], isolate=False))
    for cell in report.cells:
        assert cell.status == "ok", cell.error
        assert cell.residual == 0 and cell.classification != "unexplained", cell
        assert cell.params is None or cell.params.classification != "unexplained", cell
    ran = {r.backend: {path for path, macs in r.per_module if path.startswith("layers.") and macs}
           for r in report.run.results if r.backend in ("reference", "torchstat", "thop")}
    assert ran["torchstat"] == ran["thop"] == ran["reference"]
    assert 0 < len(ran["reference"]) < 8  # some layers ran, some were dropped


class OwnGenerators(nn.Module):
    """LayerDrop drawn from generators the model holds: a ``torch.Generator`` for the first four
    layers, numpy's ``default_rng`` for the last four (as a model seeding its own noise does)."""

    def __init__(self) -> None:
        super().__init__()
        import numpy as np

        self.layers = nn.ModuleList(nn.Linear(16, 16) for _ in range(8))
        self.gen = torch.Generator().manual_seed(1)
        self.rng = np.random.default_rng(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            draw = float(torch.rand([], generator=self.gen)) if i < 4 else self.rng.random()
            if draw < 0.5:
                continue
            x = layer(x)
        return x


def test_generators_a_model_holds_are_seeded_and_given_back() -> None:
    model = OwnGenerators()
    state, bits = model.gen.get_state(), model.rng.bit_generator.state
    with same_draws(model=model):
        first = torch.rand(3, generator=model.gen), model.rng.random()
    assert torch.equal(model.gen.get_state(), state) and model.rng.bit_generator.state == bits  # given back
    with same_draws(model=model):
        assert torch.equal(torch.rand(3, generator=model.gen), first[0]) and model.rng.random() == first[1]


def test_a_model_drawing_from_its_own_generators_is_counted_on_the_same_path_by_every_counter() -> None:
    case = ModelCase("own-generators", OwnGenerators, lambda: ModelInputs((torch.randn(4, 16),)))
    backends = ["reference", "thop", "torch-flop-counter", "fvcore", "torchinfo", "torchprofile"]
    report = build_report(run_audit([case], backends, isolate=False))
    for cell in report.cells:
        assert cell.status == "ok", cell.error
        assert cell.residual == 0 and cell.classification != "unexplained", cell
