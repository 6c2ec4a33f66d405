"""torchstat adapter: its Flops (MACs) and MAdd conventions, memory, inputs and the class patches it leaves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.records import Status, Unit

pytest.importorskip("torchstat")


@pytest.fixture(scope="module")
def adapter():  # noqa: ANN201
    return get_adapter("torchstat")


def test_unit_probe_conv_and_linear(adapter) -> None:  # noqa: ANN001
    """Conv2d(3, 8, 3, padding=1) + Flatten + Linear(512, 10) on (2, 3, 8, 8), derived by hand."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    r = adapter.count(model, torch.randn(2, 3, 8, 8))
    assert r.status is Status.OK, r.error
    assert r.unit is Unit.MAC
    # torchstat runs one sample: conv 8 out x 64 positions x 27 + bias 8 x 64; linear 512 x 10 (no bias)
    per_sample = 8 * 64 * 27 + 8 * 64 + 512 * 10
    assert r.raw_total == per_sample
    assert r.macs == 2 * per_sample  # normalised to the batch of 2
    assert r.module_macs() == {"": 2 * per_sample, "0": 2 * (8 * 64 * 27 + 8 * 64), "1": 0, "2": 2 * 512 * 10}
    extra = dict(r.extra)
    # MAdd: conv (27 mul + 26 add + 1 bias) per output x 512 outputs; linear 10 x (512 + 511)
    assert extra["madd"] == (27 + 26 + 1) * 512 + 10 * (512 + 511)
    # bytes (float32): conv reads input 192 + trainable params 224, writes 512; linear reads 512 + 5130, writes 10
    assert extra["memory_read_bytes"] == 4 * ((192 + 224) + (512 + 5130))
    assert extra["memory_write_bytes"] == 4 * (512 + 10)
    assert r.params == 224 + 5130
    assert r.unsupported == (("Flatten", 1),)


def test_module_reused_counts_its_last_call_once(adapter) -> None:  # noqa: ANN001
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU()
            self.conv = nn.Conv2d(2, 2, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(self.act(x)))

    r = adapter.count(Twice(), torch.randn(1, 2, 4, 4))
    # ReLU called twice, its buffers keep the last call: 32 once; conv 2 x 2 x 16
    assert r.macs == 2 * 16 + 2 * 2 * 16


def test_not_applicable_without_one_image_input(adapter) -> None:  # noqa: ANN001
    r = adapter.count(nn.Linear(4, 4), torch.randn(2, 4))
    assert r.status is Status.NOT_APPLICABLE
    assert "(C, H, W)" in (r.error or "")


def test_failed_assertion_is_located(adapter) -> None:  # noqa: ANN001
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(2), nn.Linear(16, 4))  # a 3-D input to Linear
    r = adapter.count(model, torch.randn(1, 3, 4, 4))
    assert r.status is Status.ERROR
    assert "compute_Linear_madd" in (r.error or "") and "assert len(inp.size()) == 2" in (r.error or "")
    # and which layer it was counting, on what
    assert "; counting module '2' (Linear) on an input of shape 1x4x16" in (r.error or ""), r.error


def test_class_call_patches_are_undone(adapter) -> None:  # noqa: ANN001
    before = {cls: cls.__dict__.get("__call__") for cls in (nn.Conv2d, nn.ReLU, nn.Linear)}
    adapter.count(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), torch.randn(1, 3, 4, 4))
    adapter.count(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(2), nn.Linear(16, 4)), torch.randn(1, 3, 4, 4))
    assert {cls: cls.__dict__.get("__call__") for cls in before} == before


def test_global_rng_untouched(adapter) -> None:  # noqa: ANN001
    model, x = nn.Sequential(nn.Conv2d(3, 4, 1)), torch.randn(1, 3, 4, 4)
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    adapter.count(model, x)  # torchstat draws its own torch.rand input
    assert torch.equal(torch.rand(3), expected)


def test_result_records_version_and_options(adapter) -> None:  # noqa: ANN001
    import importlib.metadata

    r = adapter.count(nn.Sequential(nn.Conv2d(3, 4, 1)), torch.randn(1, 3, 4, 4), model_name="c")
    assert r.backend == "torchstat" and r.model == "c"
    assert r.backend_version == importlib.metadata.version("torchstat")
    assert dict(r.options) == {k: repr(v) for k, v in adapter.options().items()}


class _NormAct(nn.BatchNorm2d):
    """A batch norm with an activation child (timm's BatchNormAct2d): a subclass of a leaf's class, not a leaf."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


def test_inherited_wrapper_names_the_module_and_the_wrapped_class(adapter) -> None:  # noqa: ANN001
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), _NormAct(4)).eval()
    r = adapter.count(model, torch.randn(1, 3, 4, 4))
    assert r.status is Status.ERROR
    assert "wrap_call" in (r.error or "") and "assert module.__class__ in self._origin_call" in (r.error or "")
    assert "calling module '2' (_NormAct)" in (r.error or "") and "BatchNorm2d here" in (r.error or ""), r.error


def test_a_leaf_given_a_list_is_named(adapter) -> None:  # noqa: ANN001
    class Concat(nn.Module):
        def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(xs, 1)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.cat = Concat()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.cat([y, y])

    r = adapter.count(Net(), torch.randn(1, 3, 4, 4))
    assert r.status is Status.ERROR
    assert "calling module 'cat' (Concat), whose first input is a list" in (r.error or ""), r.error
