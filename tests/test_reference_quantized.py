"""Reference counter: torch.ao static quantization's int8 kernels (``quantized::*``) cost what
their float twins cost, read from shapes and the packed weights (closed forms by hand).

Conv MACs = numel(output) * (Cin/groups) * prod(kernel) (transposed: numel(input) * (Cout/groups)
* prod(kernel)); bias, fused ReLU and fused add one extra FLOP per output element each;
elementwise ops and activations one per operation and element; quantize and dequantize 2 per element.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
from torch import nn

from flopaudit.reference import Category, count
from flopaudit.reference.formulas.quantized import QUANTIZE_FLOPS
from tests.user_models import Fn


def q(*shape: int) -> torch.Tensor:
    """A quint8 tensor of ``shape``."""
    return torch.quantize_per_tensor(torch.rand(*shape), 0.05, 10, torch.quint8)


CONVS = [
    # (module, input shape, MACs, extra FLOPs): output shapes worked out by hand
    ("conv2d_grouped_strided_bias", lambda: nnq.Conv2d(4, 6, 3, stride=2, groups=2), (1, 4, 9, 9),
     6 * 4 * 4 * 2 * 9, 6 * 4 * 4),
    ("conv2d_no_bias", lambda: nnq.Conv2d(3, 5, 3, padding=1, bias=False), (2, 3, 6, 6), 2 * 5 * 36 * 27, 0),
    ("conv1d", lambda: nnq.Conv1d(3, 4, 3), (2, 3, 10), 2 * 4 * 8 * 9, 2 * 4 * 8),
    ("conv3d", lambda: nnq.Conv3d(2, 3, 2), (1, 2, 4, 4, 4), 3 * 27 * 16, 3 * 27),
    # transposed: every input element through Cout/groups x k x k; output (1, 4, 7, 7)
    ("conv_transpose2d", lambda: nnq.ConvTranspose2d(3, 4, 3, stride=2), (1, 3, 3, 3), 27 * 4 * 9, 4 * 49),
    ("conv_relu2d", lambda: nniq.ConvReLU2d(3, 4, 3), (1, 3, 5, 5), 4 * 9 * 27, 2 * 4 * 9),  # bias and ReLU
]


@pytest.mark.parametrize("build, shape, macs, extra", [c[1:] for c in CONVS], ids=[c[0] for c in CONVS])
def test_a_quantized_convolution_costs_its_float_twin(build: Callable[[], nn.Module], shape: tuple[int, ...],
                                                       macs: int, extra: int) -> None:
    r = count(Fn(build()), [q(*shape)])
    (e,) = [e for e in r.events if e.op.startswith("quantized.conv")]
    assert (e.macs, e.extra_flops, e.category, r.unsupported) == (macs, extra, Category.CONV, {})


@pytest.mark.parametrize("relu", [False, True], ids=["conv2d_add", "conv2d_add_relu"])
def test_a_quantized_convolution_with_a_fused_add(relu: bool) -> None:
    """``ConvAdd2d``/``ConvAddReLU2d`` (quantized::conv2d_add[_relu], oneDNN's engine only): the conv, its
    bias, the add (and the ReLU)."""
    if "onednn" not in torch.backends.quantized.supported_engines:
        pytest.skip("quantized::conv2d_add runs on the oneDNN engine, absent from this build")
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = "onednn"
    try:
        module = (nniq.ConvAddReLU2d if relu else nniq.ConvAdd2d)(3, 4, 3)
        r = count(Fn(module), [q(1, 3, 5, 5), q(1, 4, 3, 3)])
    finally:
        torch.backends.quantized.engine = engine
    (e,) = [e for e in r.events if e.op.startswith("quantized.conv2d_add")]
    assert (e.macs, e.extra_flops) == (4 * 9 * 27, (3 if relu else 2) * 4 * 9)


ELEMENTWISE = [
    ("add", lambda a, b: torch.ops.quantized.add(a, b, 0.1, 0), 1),
    ("add_relu", lambda a, b: torch.ops.quantized.add_relu(a, b, 0.1, 0), 2),
    ("mul", lambda a, b: torch.ops.quantized.mul(a, b, 0.1, 0), 1),
    ("hardswish", lambda a, b: torch.ops.quantized.hardswish(a, 0.1, 0), 1),
    ("sigmoid", lambda a, b: torch.ops.quantized.sigmoid(a, 1 / 256, 0), 1),
]


@pytest.mark.parametrize("fn, per_element", [c[1:] for c in ELEMENTWISE], ids=[c[0] for c in ELEMENTWISE])
def test_quantized_elementwise_ops_cost_one_flop_per_operation_and_element(fn: Callable[..., torch.Tensor],
                                                                           per_element: int) -> None:
    r = count(Fn(fn), [q(2, 3, 4), q(2, 3, 4)])
    (e,) = [e for e in r.events if e.op.startswith("quantized.")]
    assert (e.macs, e.extra_flops, r.unsupported) == (0, per_element * 24, {})


def test_a_quantized_batch_norm_costs_a_float_eval_batch_norm() -> None:
    """Running statistics: 2 FLOPs per element, plus 1 each for the affine weight and bias."""
    bn = nnq.BatchNorm2d(3)
    r = count(Fn(bn), [q(2, 3, 4, 4)])
    (e,) = [e for e in r.events if e.op.startswith("quantized.batch_norm")]
    assert (e.extra_flops, e.category) == ((2 + 2) * 96, Category.NORM)


def test_quantizing_and_dequantizing_cost_two_flops_per_element_and_cat_moves_data() -> None:
    def quantize_cat_dequantize(x: torch.Tensor) -> torch.Tensor:
        qx = torch.quantize_per_tensor(x, 0.05, 10, torch.quint8)
        return torch.ops.quantized.cat([qx, qx], 1, 0.05, 10).dequantize()

    r = count(Fn(quantize_cat_dequantize), [torch.rand(2, 3)])
    priced = {e.op: e.extra_flops for e in r.events}
    assert priced["aten.quantize_per_tensor.default"] == QUANTIZE_FLOPS * 6
    assert priced["aten.dequantize.self"] == QUANTIZE_FLOPS * 12
    assert priced["quantized.cat.default"] == 0 and r.unsupported == {}


def test_a_converted_torchvision_model_has_its_float_twins_macs() -> None:
    """torchvision's quantizable MobileNetV2 converted to int8 (quantize=True, random weights) counts the
    MACs of the same model left in float: every product is the same, done in int8."""
    import torchvision

    x = torch.rand(1, 3, 64, 64)
    build = torchvision.models.quantization.mobilenet_v2
    int8 = count(build(weights=None, quantize=True).eval(), [x])
    float_twin = count(build(weights=None, quantize=False).eval(), [x])
    assert int8.unsupported == {} and int8.macs == float_twin.macs > 0


@pytest.mark.parametrize("cache", [True, False], ids=["cache on", "cache off"])
def test_quantized_convolutions_alike_in_shapes_are_priced_by_their_own_packed_weights(cache: bool) -> None:
    """A 3x3 (padding 1) and a 1x1 quantized conv take and give the same shapes: only the packed weight, an
    argument the pricing memo cannot describe, tells them apart, so each call is priced afresh."""
    three, one = nnq.Conv2d(3, 4, 3, padding=1, bias=False), nnq.Conv2d(3, 4, 1, bias=False)
    x = q(1, 3, 8, 8)
    for _ in range(2):  # the second round could only come from a memo
        assert count(Fn(three), [x], cache=cache).macs == 4 * 64 * 27
        assert count(Fn(one), [x], cache=cache).macs == 4 * 64 * 3


# -- quantization-aware training: fake quantization ----------------------------------------

def test_fake_quantize_is_a_quantize_and_a_dequantize_per_element() -> None:
    from flopaudit.reference.formulas.quantized import FAKE_QUANTIZE_FLOPS, QUANTIZE_FLOPS

    assert FAKE_QUANTIZE_FLOPS == 2 * QUANTIZE_FLOPS == 4
    x = torch.randn(2, 3, 4, 4)
    scale, zero = torch.full((3,), 0.1), torch.zeros(3, dtype=torch.int32)

    class Fq(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.fake_quantize_per_tensor_affine(x, 0.1, 0, -128, 127)
            b = torch.fake_quantize_per_channel_affine(x, scale, zero, 1, -128, 127)
            return a + b

    r = count(Fq(), x)
    assert not r.unsupported
    assert r.extra_flops == 2 * FAKE_QUANTIZE_FLOPS * 96 + 96  # two fake quantizations and the add


@pytest.mark.parametrize("per_channel", [False, True])
def test_fused_observer_and_fake_quantize(per_channel: bool) -> None:
    """The default QAT qconfig's FusedMovingAvgObsFakeQuantize: one
    aten::_fused_moving_avg_obs_fq_helper per call: min and max of the input (2 per element),
    moving averages and qparams (10 per channel), fake quantization (4 per element)."""
    from torch.ao.quantization import FusedMovingAvgObsFakeQuantize, MovingAveragePerChannelMinMaxObserver

    fq = (FusedMovingAvgObsFakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, ch_axis=0,
                                        quant_min=-128, quant_max=127, qscheme=torch.per_channel_symmetric,
                                        dtype=torch.qint8)
          if per_channel else FusedMovingAvgObsFakeQuantize())
    x = torch.randn(8, 3, 4, 4)
    r = count(fq, x)
    assert not r.unsupported and [e.op for e in r.events if e.extra_flops] == ["aten._fused_moving_avg_obs_fq_helper.default"]
    channels = 8 if per_channel else 1
    assert r.extra_flops == (2 + 4) * x.numel() + 10 * channels and r.macs == 0
