"""Hard cases for the ops that are *not* MACs: norms, activations, pools,
upsampling, embedding lookups.

Each follows (or precedes) one contraction layer so a case has something to
count; the canonical MACs are that layer's alone. The norm/activation/pool/
interpolation work is extra FLOPs, which some counters add to their MACs.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, ids_inputs, randn_inputs

# conv 3 -> 8, 3x3, padding 1, on (2, 3, 16, 16): N x Cout x H x W x Cin x kH x kW
_CONV_MACS = 2 * 8 * 16 * 16 * 3 * 3 * 3
_CONV_PARAMS = 8 * 3 * 3 * 3  # no bias


class ForeachUpdate(nn.Module):
    """``Linear(8, 8)`` on (2, 8), then a fast-weight update of two (2, 8, 16) states as titans'
    neural memory writes it, with the list kernels: ``torch._foreach_mul`` by a decay, then
    ``torch._foreach_add`` of the products with the input, then a sum of each state."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        states = [h.unsqueeze(-1).expand(2, 8, 16), x.unsqueeze(-1).expand(2, 8, 16)]
        decayed = torch._foreach_mul(states, 0.9)
        updated = torch._foreach_add(decayed, [h.unsqueeze(-1), x.unsqueeze(-1)])
        return updated[0].sum(-1) + updated[1].sum(-1)


def _conv_bn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))


class SequenceBatchNorm(nn.Module):
    """``Linear(16, 16)`` on (batch, time, 16), then ``BatchNorm1d(16)`` over the channels of the
    transposed sequence and back, as PatchTST and other time-series transformers normalise: the
    batch norm's input is neither contiguous nor channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.norm = nn.BatchNorm1d(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).transpose(1, 2)).transpose(1, 2)


def _conv_gn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.GroupNorm(2, 8))


def _linear_rms() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.RMSNorm(32))


def _linear_ln() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32))


def _linear_then(act: Callable[[], nn.Module]) -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), act())


def _conv_pool_head(pool: Callable[[], nn.Module], head_in: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), pool(), nn.Flatten(), nn.Linear(head_in, 10))


def _upsample_conv(mode: str) -> nn.Module:
    align = False if mode == "bilinear" else None
    return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode, align_corners=align), nn.Conv2d(4, 8, 3, padding=1))


class ConvInterpolate(nn.Module):
    """1x1 conv, then ``F.interpolate`` to twice the size (functional, no module to hook)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(4, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        align = False if self.mode == "bilinear" else None
        return F.interpolate(y, scale_factor=2, mode=self.mode, align_corners=align)


def _embedding_head() -> nn.Module:
    return nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 8))


def _activation_cases() -> list[ModelCase]:
    acts: dict[str, tuple[str, Callable[[], nn.Module]]] = {
        "relu": ("ReLU()", nn.ReLU),
        "gelu": ("GELU()", nn.GELU),
        "sigmoid": ("Sigmoid()", nn.Sigmoid),
        "softmax": ("Softmax(dim=-1)", functools.partial(nn.Softmax, dim=-1)),
    }
    return [
        hard_case(
            f"act-{name}",
            functools.partial(_linear_then, factory),
            randn_inputs((4, 32)),
            {"activation", "linear"},
            expected_macs=4 * 32 * 64,  # the Linear only: batch 4 x in 32 x out 64
            expected_params=32 * 64 + 64,
            description=f"nn.Linear(32, 64) then nn.{shown} on (4, 32); the activation adds 0 MACs",
        )
        for name, (shown, factory) in acts.items()
    ]


def cases() -> list[ModelCase]:
    return [
        hard_case(
            "batchnorm-eval",
            _conv_bn,
            randn_inputs((2, 3, 16, 16)),
            {"norm", "conv", "batchnorm"},
            expected_macs=_CONV_MACS,  # BN adds 0 MACs
            expected_params=_CONV_PARAMS + 2 * 8,  # BN weight + bias (running stats are buffers)
            description="Conv2d(3, 8, 3, bias=False) + BatchNorm2d(8) in eval mode on (2, 3, 16, 16)",
        ),
        hard_case(
            "batchnorm-train",
            _conv_bn,
            randn_inputs((2, 3, 16, 16)),
            {"norm", "conv", "batchnorm", "train"},
            expected_macs=_CONV_MACS,  # BN adds 0 MACs in train mode too (batch statistics are extra FLOPs)
            expected_params=_CONV_PARAMS + 2 * 8,
            description="Conv2d(3, 8, 3, bias=False) + BatchNorm2d(8) in train mode (batch statistics, "
            "running stats updated by every forward) on (2, 3, 16, 16)",
            train=True,
        ),
        hard_case(
            "batchnorm-transposed-sequence",
            SequenceBatchNorm,
            randn_inputs((2, 8, 16)),
            {"norm", "linear", "batchnorm", "layout"},
            expected_macs=2 * 8 * 16 * 16,  # the Linear only
            expected_params=16 * 16 + 16 + 2 * 16,
            description="Linear(16, 16) on (2, 8, 16), then BatchNorm1d(16) in eval mode on the transposed "
            "sequence (as PatchTST normalises): on an input neither contiguous nor channels-last the CPU "
            "batch-norm kernel adds eps to the running variance through an aten::add, which torch.profiler "
            "records and prices",
        ),
        hard_case(
            "layernorm",
            _linear_ln,
            randn_inputs((2, 10, 16)),
            {"norm", "linear", "layernorm"},
            expected_macs=2 * 10 * 16 * 32,  # the Linear only: batch 2 x seq 10 x in 16 x out 32
            expected_params=16 * 32 + 32 + 2 * 32,  # Linear + LayerNorm weight and bias
            description="nn.Linear(16, 32) + nn.LayerNorm(32) on (2, 10, 16)",
        ),
        hard_case(
            "rmsnorm",
            _linear_rms,
            randn_inputs((2, 10, 16)),
            {"norm", "linear", "rmsnorm"},
            expected_macs=2 * 10 * 16 * 32,  # the Linear only: batch 2 x seq 10 x in 16 x out 32
            expected_params=16 * 32 + 32 + 32,  # Linear + RMSNorm weight
            description="nn.Linear(16, 32) + nn.RMSNorm(32) on (2, 10, 16): torch.rms_norm, which autograd "
            "decomposes on the CPU (pow, mean, rsqrt, two multiplies), while a JIT trace holds one aten::rms_norm "
            "node (LLaMA-style and timm models with torch's RMSNorm)",
        ),
        hard_case(
            "groupnorm",
            _conv_gn,
            randn_inputs((2, 3, 16, 16)),
            {"norm", "conv", "groupnorm"},
            expected_macs=_CONV_MACS,
            expected_params=_CONV_PARAMS + 2 * 8,
            description="Conv2d(3, 8, 3, bias=False) + GroupNorm(2, 8) on (2, 3, 16, 16)",
        ),
        *_activation_cases(),
        hard_case(
            "pool-max",
            functools.partial(_conv_pool_head, functools.partial(nn.MaxPool2d, 2), 8 * 8 * 8),
            randn_inputs((2, 3, 16, 16)),
            {"pool", "conv", "linear"},
            expected_macs=_CONV_MACS + 2 * (8 * 8 * 8) * 10,  # conv + head: batch 2 x in 8*8*8 x out 10
            expected_params=_CONV_PARAMS + 8 * 8 * 8 * 10 + 10,
            description="Conv2d(3, 8, 3) -> MaxPool2d(2) -> Linear(512, 10) on (2, 3, 16, 16)",
        ),
        hard_case(
            "pool-avg",
            functools.partial(_conv_pool_head, functools.partial(nn.AvgPool2d, 2), 8 * 8 * 8),
            randn_inputs((2, 3, 16, 16)),
            {"pool", "conv", "linear"},
            expected_macs=_CONV_MACS + 2 * (8 * 8 * 8) * 10,
            expected_params=_CONV_PARAMS + 8 * 8 * 8 * 10 + 10,
            description="Conv2d(3, 8, 3) -> AvgPool2d(2) -> Linear(512, 10) on (2, 3, 16, 16)",
        ),
        hard_case(
            "pool-adaptive-avg",
            functools.partial(_conv_pool_head, functools.partial(nn.AdaptiveAvgPool2d, 3), 8 * 3 * 3),
            randn_inputs((2, 3, 16, 16)),
            {"pool", "conv", "linear"},
            # 16 -> 3 uses overlapping windows of 6 or 7: no integer kernel size exists
            expected_macs=_CONV_MACS + 2 * (8 * 3 * 3) * 10,
            expected_params=_CONV_PARAMS + 8 * 3 * 3 * 10 + 10,
            description="Conv2d(3, 8, 3) -> AdaptiveAvgPool2d(3) (16 -> 3, uneven windows) -> Linear(72, 10)",
        ),
        hard_case(
            "pool-adaptive-max",
            functools.partial(_conv_pool_head, functools.partial(nn.AdaptiveMaxPool2d, 1), 8),
            randn_inputs((2, 3, 16, 16)),
            {"pool", "conv", "linear"},
            expected_macs=_CONV_MACS + 2 * 8 * 10,
            expected_params=_CONV_PARAMS + 8 * 10 + 10,
            description="Conv2d(3, 8, 3) -> AdaptiveMaxPool2d(1) -> Linear(8, 10) on (2, 3, 16, 16)",
        ),
        *[
            hard_case(
                f"upsample-{mode}",
                functools.partial(_upsample_conv, mode),
                randn_inputs((2, 4, 8, 8)),
                {"upsample", "conv"},
                # the conv runs on the upsampled 16x16 map: N x Cout x 16 x 16 x Cin x kH x kW
                expected_macs=2 * 8 * 16 * 16 * 4 * 3 * 3,
                expected_params=8 * 4 * 3 * 3 + 8,
                description=f"nn.Upsample(scale_factor=2, mode={mode!r}) -> Conv2d(4, 8, 3) on (2, 4, 8, 8)",
            )
            for mode in ("nearest", "bilinear")
        ],
        *[
            hard_case(
                f"interpolate-{mode}",
                functools.partial(ConvInterpolate, mode),
                randn_inputs((2, 4, 8, 8)),
                {"upsample", "conv", "functional"},
                expected_macs=2 * 8 * 8 * 8 * 4,  # 1x1 conv before the resize: N x Cout x H x W x Cin
                expected_params=8 * 4 + 8,
                description=f"Conv2d(4, 8, 1) -> F.interpolate(scale_factor=2, mode={mode!r}) on (2, 4, 8, 8)",
            )
            for mode in ("nearest", "bilinear")
        ],
        hard_case(
            "foreach-update",
            ForeachUpdate,
            randn_inputs((2, 8)),
            {"elementwise", "linear"},
            expected_macs=2 * 8 * 8,  # the Linear; the list kernels are elementwise (extra FLOPs)
            expected_params=8 * 8 + 8,
            description="Linear(8, 8) on (2, 8), then torch._foreach_mul of two (2, 8, 16) states by 0.9 and "
            "torch._foreach_add of two (2, 8, 1) updates, as titans' neural memory updates its fast weights: "
            "torch.profiler records one aten::mul/aten::add per tensor of the list",
        ),
        hard_case(
            "embedding",
            _embedding_head,
            ids_inputs(100, 2, 12),
            {"embedding", "linear"},
            expected_macs=2 * 12 * 16 * 8,  # lookup is 0 MACs; head: batch 2 x seq 12 x in 16 x out 8
            expected_params=100 * 16 + 16 * 8 + 8,
            description="nn.Embedding(100, 16) -> Linear(16, 8) on token ids (2, 12)",
        ),
    ]
