"""Hard cases for the contraction layers: Linear and every kind of convolution.

MACs (canonical): Linear = prod(batch dims) * in * out; convolution =
N * Cout * prod(output spatial) * (Cin / groups) * prod(kernel); transposed
convolution = N * Cin * prod(input spatial) * (Cout / groups) * prod(kernel)
(each input element is scattered over Cout/g x kernel outputs). Bias adds are
never MACs.
"""

from __future__ import annotations

import functools

from torch import nn

from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, randn_inputs


def _same_then_valid() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding="same"), nn.Conv2d(8, 8, 3, padding="valid"))


def cases() -> list[ModelCase]:
    return [
        hard_case(
            "linear-2d",
            functools.partial(nn.Linear, 32, 64),
            randn_inputs((4, 32)),
            {"linear"},
            expected_macs=4 * 32 * 64,  # batch 4 x in 32 x out 64
            expected_params=32 * 64 + 64,
            description="nn.Linear(32, 64) on a (4, 32) batch",
        ),
        hard_case(
            "linear-3d",
            functools.partial(nn.Linear, 16, 32),
            randn_inputs((2, 10, 16)),
            {"linear"},
            expected_macs=2 * 10 * 16 * 32,  # batch 2 x seq 10 x in 16 x out 32
            expected_params=16 * 32 + 32,
            description="nn.Linear(16, 32) on (2, 10, 16): the sequence dim multiplies the count too",
            default=True,
        ),
        hard_case(
            "bilinear",
            functools.partial(nn.Bilinear, 8, 6, 4),
            randn_inputs((3, 8), (3, 6)),
            {"linear", "bilinear", "two-inputs"},
            # y_k = (x1^T W_k) x2 as ATen computes it: per row and output, in1 8 x in2 6, then in2 6
            expected_macs=3 * 4 * 6 * (8 + 1),
            expected_params=4 * 8 * 6 + 4,
            description="nn.Bilinear(8, 6, 4) on (3, 8) and (3, 6): one aten::_trilinear, whose CPU kernel makes "
            "two bmm per output feature (x1 W_k, then with x2), which torch.profiler sees and prices",
        ),
        hard_case(
            "conv2d-bias",
            functools.partial(nn.Conv2d, 3, 8, 3, padding=1),
            randn_inputs((2, 3, 16, 16)),
            {"conv"},
            expected_macs=2 * 8 * 16 * 16 * 3 * 3 * 3,  # N x Cout x Hout x Wout x Cin x kH x kW
            expected_params=8 * 3 * 3 * 3 + 8,
            description="nn.Conv2d(3, 8, 3, padding=1) with bias on (2, 3, 16, 16)",
        ),
        hard_case(
            "conv2d-nobias",
            functools.partial(nn.Conv2d, 3, 8, 3, padding=1, bias=False),
            randn_inputs((2, 3, 16, 16)),
            {"conv"},
            expected_macs=2 * 8 * 16 * 16 * 3 * 3 * 3,  # same as with bias: bias adds are not MACs
            expected_params=8 * 3 * 3 * 3,
            description="nn.Conv2d(3, 8, 3, padding=1, bias=False) on (2, 3, 16, 16)",
        ),
        hard_case(
            "conv-grouped",
            functools.partial(nn.Conv2d, 8, 16, 3, padding=1, groups=4),
            randn_inputs((2, 8, 12, 12)),
            {"conv", "grouped"},
            expected_macs=2 * 16 * 12 * 12 * (8 // 4) * 3 * 3,  # N x Cout x H x W x Cin/g x kH x kW
            expected_params=16 * (8 // 4) * 3 * 3 + 16,
            description="nn.Conv2d(8, 16, 3, padding=1, groups=4) on (2, 8, 12, 12)",
        ),
        hard_case(
            "conv-depthwise",
            functools.partial(nn.Conv2d, 8, 8, 3, padding=1, groups=8),
            randn_inputs((2, 8, 12, 12)),
            {"conv", "grouped", "depthwise"},
            expected_macs=2 * 8 * 12 * 12 * 1 * 3 * 3,  # N x Cout x H x W x Cin/g (=1) x kH x kW
            expected_params=8 * 1 * 3 * 3 + 8,
            description="depthwise nn.Conv2d(8, 8, 3, padding=1, groups=8) on (2, 8, 12, 12)",
        ),
        hard_case(
            "conv-dilated",
            functools.partial(nn.Conv2d, 4, 8, 3, dilation=2),
            randn_inputs((2, 4, 16, 16)),
            {"conv", "dilated"},
            # output 16 - 2 * (3 - 1) = 12 per side
            expected_macs=2 * 8 * 12 * 12 * 4 * 3 * 3,
            expected_params=8 * 4 * 3 * 3 + 8,
            description="nn.Conv2d(4, 8, 3, dilation=2) on (2, 4, 16, 16): output 12x12",
        ),
        hard_case(
            "conv-padding-same-valid",
            _same_then_valid,
            randn_inputs((2, 3, 8, 8)),
            {"conv", "string-padding"},
            # same: output 8x8 from 3 channels; valid: output 8 - 2 = 6 per side from 8 channels
            expected_macs=2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 6 * 6 * 8 * 3 * 3,
            expected_params=8 * 3 * 3 * 3 + 8 + 8 * 8 * 3 * 3 + 8,
            description="nn.Conv2d(3, 8, 3, padding='same') then nn.Conv2d(8, 8, 3, padding='valid') on "
            "(2, 3, 8, 8), as Keras ports and SigLIP's patch embedding write them: a string padding is "
            "traced as aten::_convolution_mode, which fvcore and torchprofile do not price",
        ),
        hard_case(
            "conv-strided",
            functools.partial(nn.Conv2d, 4, 8, 3, stride=2, padding=1),
            randn_inputs((2, 4, 16, 16)),
            {"conv", "strided"},
            # output (16 + 2 - 3) // 2 + 1 = 8 per side
            expected_macs=2 * 8 * 8 * 8 * 4 * 3 * 3,
            expected_params=8 * 4 * 3 * 3 + 8,
            description="nn.Conv2d(4, 8, 3, stride=2, padding=1) on (2, 4, 16, 16): output 8x8",
        ),
        hard_case(
            "conv1d",
            functools.partial(nn.Conv1d, 4, 8, 5),
            randn_inputs((2, 4, 32)),
            {"conv"},
            expected_macs=2 * 8 * 28 * 4 * 5,  # N x Cout x Lout (32 - 5 + 1) x Cin x k
            expected_params=8 * 4 * 5 + 8,
            description="nn.Conv1d(4, 8, 5) on (2, 4, 32): output length 28",
        ),
        hard_case(
            "conv3d",
            functools.partial(nn.Conv3d, 3, 4, 3, padding=1),
            randn_inputs((1, 3, 4, 8, 8)),
            {"conv", "conv3d"},
            expected_macs=1 * 4 * 4 * 8 * 8 * 3 * 3 * 3 * 3,  # N x Cout x D x H x W x Cin x kD x kH x kW
            expected_params=4 * 3 * 3 * 3 * 3 + 4,
            description="nn.Conv3d(3, 4, 3, padding=1) on (1, 3, 4, 8, 8)",
        ),
        hard_case(
            "convtranspose-s2",
            functools.partial(nn.ConvTranspose2d, 8, 4, 4, stride=2, padding=1),
            randn_inputs((2, 8, 8, 8)),
            {"conv", "convtranspose"},
            # N x Cin x Hin x Win x Cout/g x kH x kW; output is 16x16, and the
            # conv formula applied to the output (N*Cout*16*16*Cin*kH*kW) is 4x too high.
            expected_macs=2 * 8 * 8 * 8 * 4 * 4 * 4,
            expected_params=8 * 4 * 4 * 4 + 4,  # weight (Cin, Cout/g, kH, kW) + bias
            description="nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1) on (2, 8, 8, 8): output 16x16",
            default=True,
        ),
        hard_case(
            "convtranspose-grouped-s2",
            functools.partial(nn.ConvTranspose2d, 8, 8, 3, stride=2, groups=2, bias=False),
            randn_inputs((2, 8, 6, 6)),
            {"conv", "convtranspose", "grouped"},
            # N x Cin x Hin x Win x Cout/g x kH x kW; output (6 - 1) * 2 + 3 = 13 per side
            expected_macs=2 * 8 * 6 * 6 * (8 // 2) * 3 * 3,
            expected_params=8 * (8 // 2) * 3 * 3,
            description="nn.ConvTranspose2d(8, 8, 3, stride=2, groups=2, bias=False) on (2, 8, 6, 6): output 13x13",
        ),
    ]
