"""Reference counter: convolutions (1-d/2-d/3-d, strided, dilated, grouped,
depthwise, transposed), closed-form expectations from shapes.

Direct conv MACs = numel(output) * (Cin/groups) * prod(kernel);
transposed conv MACs = numel(input) * (Cout/groups) * prod(kernel);
bias = one extra FLOP per output element.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.reference import Category, count


class FunctionalConv(nn.Module):
    """``F.conv2d`` with an explicit weight (a functional call, no Conv module)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 3, 5, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, stride=1, padding=2)


CASES = [
    # id, module, input shape, expected MACs, expected extra FLOPs
    ("conv2d_bias", lambda: nn.Conv2d(3, 8, 3, padding=1), (2, 3, 16, 16),
     2 * 8 * 16 * 16 * 3 * 3 * 3, 2 * 8 * 16 * 16),
    ("conv2d_stride2", lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), (1, 3, 16, 16),
     8 * 8 * 8 * 3 * 3 * 3, 0),
    # out = 12 - 2*(3-1) = 8
    ("conv2d_dilated", lambda: nn.Conv2d(4, 6, 3, dilation=2, bias=False), (1, 4, 12, 12),
     6 * 8 * 8 * 4 * 3 * 3, 0),
    ("conv2d_grouped", lambda: nn.Conv2d(8, 12, 3, groups=4, padding=1, bias=False), (1, 8, 10, 10),
     12 * 10 * 10 * (8 // 4) * 3 * 3, 0),
    ("conv2d_depthwise", lambda: nn.Conv2d(16, 16, 3, groups=16, padding=1), (1, 16, 10, 10),
     16 * 10 * 10 * 1 * 3 * 3, 16 * 10 * 10),
    # transposed: out = (5-1)*2 + 3 = 11; priced by input size
    ("convT2d_stride2", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2), (1, 4, 5, 5),
     4 * 5 * 5 * 6 * 3 * 3, 6 * 11 * 11),
    # out = (5-1)*2 - 2 + 3 + 1 = 10
    ("convT2d_grouped", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                                                  bias=False), (1, 4, 5, 5),
     4 * 5 * 5 * (6 // 2) * 3 * 3, 0),
    # out length = (20 - 4) // 2 + 1 = 9
    ("conv1d_stride2", lambda: nn.Conv1d(3, 5, 4, stride=2), (2, 3, 20),
     2 * 5 * 9 * 3 * 4, 2 * 5 * 9),
    ("conv3d", lambda: nn.Conv3d(2, 4, 3, padding=1), (1, 2, 4, 6, 6),
     4 * 4 * 6 * 6 * 2 * 3 * 3 * 3, 4 * 4 * 6 * 6),
    # out = (5-1)*2 + 3 = 11
    ("convT1d", lambda: nn.ConvTranspose1d(3, 4, 3, stride=2), (1, 3, 5),
     3 * 5 * 4 * 3, 4 * 11),
    # out = (2-1)*2 + 2 = 4 per dim
    ("convT3d", lambda: nn.ConvTranspose3d(2, 3, 2, stride=2), (1, 2, 2, 2, 2),
     2 * 2 * 2 * 2 * 3 * 2 * 2 * 2, 3 * 4 * 4 * 4),
    ("functional_conv2d", FunctionalConv, (1, 3, 7, 7),
     6 * 7 * 7 * 3 * 5 * 5, 0),
]


@pytest.mark.parametrize("build, shape, macs, extra", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_convolution(build, shape, macs, extra) -> None:
    result = count(build().eval(), torch.randn(*shape))
    assert result.unsupported == {}
    assert result.macs == macs
    assert result.extra_flops == extra
    assert result.flops == 2 * macs + extra
    conv_events = [e for e in result.events if e.category is Category.CONV]
    assert [e.op for e in conv_events] == ["aten.convolution.default"]
    assert result.per_category["conv"].macs == macs


def test_conv_formula_takes_shapes_of_cudnn_entry_point() -> None:
    """cudnn_convolution has no bias and no meta kernel: price it from meta shapes directly."""
    from flopaudit.reference.registry import cost_of

    x = torch.empty(2, 3, 8, 8, device="meta")
    w = torch.empty(4, 3, 3, 3, device="meta")
    out = torch.empty(2, 4, 6, 6, device="meta")
    cost = cost_of(torch.ops.aten.cudnn_convolution.default, (x, w, [0, 0], [1, 1], [1, 1], 1, False, False, False),
                   {}, out)
    assert cost is not None
    assert (cost.macs, cost.extra_flops, cost.category) == (2 * 4 * 6 * 6 * 3 * 3 * 3, 0, Category.CONV)


def test_a_deformable_convolution_is_the_convolution_it_computes_plus_its_samples() -> None:
    """torchvision's DeformConv2d: the MACs of the direct convolution; each input value it reads is a
    bilinear sample (7 FLOPs) and, with a mask, one multiply more; the bias add per output element."""
    from flopaudit.zoo.hard.realworld import ModulatedDeformable

    model = ModulatedDeformable()
    r = count(model, torch.randn(2, 4, 8, 8))
    e = next(e for e in r.events if e.op == "torchvision.deform_conv2d.default")
    samples = 2 * 4 * 3 * 3 * 8 * 8  # N x Cin x kh x kw x output positions
    assert e.macs == 2 * 8 * 8 * 8 * 4 * 3 * 3
    assert e.extra_flops == samples * 7 + samples + 2 * 8 * 8 * 8
