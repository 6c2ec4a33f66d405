"""Parameter cases: frozen, lazy, pruned parameters, and parameters held by the root.

Counters disagree on parameters as on MACs: some count only trainable
parameters, some only the leaves, some only attributes named ``weight`` and
``bias``, whatever those read as: a pruned module's or a parametrization's
computed ``weight``, a LoRA layer's property returning its base layer's. The reference
counts every parameter tensor once (buffers and computed tensors not).
"""

from __future__ import annotations

import torch
from torch import nn

from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, randn_inputs


def frozen_backbone() -> nn.Module:
    """Conv(3->8, 3x3) + BN frozen, ReLU, global pool, trainable Linear(8 -> 10) head."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 10),
    )
    for module in (model[0], model[1]):
        module.requires_grad_(False)
    return model.eval()


def lazy_mlp() -> nn.Module:
    """LazyLinear(32), ReLU, LazyLinear(8): shapes known only after the first forward."""
    return nn.Sequential(nn.LazyLinear(32), nn.ReLU(), nn.LazyLinear(8))


def pruned_mlp() -> nn.Module:
    """Linear(16 -> 32) with half its weights pruned (L1), ReLU, Linear(32 -> 8).

    Pruning replaces the first Linear's ``weight`` parameter by ``weight_orig``
    (a parameter of the same size) and a ``weight_mask`` buffer, and makes
    ``weight`` a plain tensor recomputed by a forward pre-hook
    (``weight_orig * weight_mask``).
    """
    from torch.nn.utils import prune

    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    prune.l1_unstructured(model[0], name="weight", amount=0.5)
    return model


def spectral_normed_convnet() -> nn.Module:
    """Conv2d(3 -> 8, 3, padding=1) and Linear(8 * 8 * 8 -> 4) under the old hook-based
    ``torch.nn.utils.spectral_norm`` (as GAN discriminators use it): each keeps ``weight_orig``
    (a parameter) and ``weight_u``/``weight_v`` (buffers), and a forward pre-hook sets ``weight``
    to ``weight_orig / sigma``, sigma estimated as ``u . (W v)``, each call (in train mode after a
    step of power iteration)."""
    from torch.nn.utils import spectral_norm

    return nn.Sequential(spectral_norm(nn.Conv2d(3, 8, 3, padding=1)), nn.ReLU(), nn.Flatten(),
                         spectral_norm(nn.Linear(8 * 8 * 8, 4)))


def weight_normed_mlp() -> nn.Module:
    """Linear(16 -> 32) under ``parametrizations.weight_norm``, ReLU, Linear(32 -> 8).

    The parametrization replaces the first Linear's ``weight`` parameter by
    ``parametrizations.weight.original0`` (the norms g, 32 x 1) and
    ``original1`` (the directions v, 32 x 16); ``weight`` becomes a property
    computing ``g * v / ||v||`` each time it is read.
    """
    from torch.nn.utils import parametrizations

    return nn.Sequential(parametrizations.weight_norm(nn.Linear(16, 32)), nn.ReLU(), nn.Linear(32, 8))


class LowRankAdapted(nn.Module):
    """A frozen ``base_layer`` plus a trainable rank-r update, ``base(x) + B(A(x)) * scale``, as a PEFT
    LoRA layer: its ``weight`` and ``bias`` properties return the base layer's parameters."""

    def __init__(self, base: nn.Linear, rank: int) -> None:
        super().__init__()
        self.base_layer = base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        self.scaling = 2.0

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling


def low_rank_adapted_mlp() -> nn.Module:
    """Linear(16 -> 32) adapted at rank 4 (frozen base), ReLU, Linear(32 -> 8)."""
    return nn.Sequential(LowRankAdapted(nn.Linear(16, 32), rank=4), nn.ReLU(), nn.Linear(32, 8))


class RootParameter(nn.Module):
    """``fc(x * scale + shift)``: a parameter (``scale``) and a buffer (``shift``) on the root itself."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(16))
        self.register_buffer("shift", torch.zeros(16))
        self.fc = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x * self.scale + self.shift)


def cases() -> list[ModelCase]:
    return [
        hard_case(
            "params-frozen-backbone",
            frozen_backbone,
            randn_inputs((2, 3, 16, 16)),
            {"params", "frozen", "conv", "linear"},
            # conv: batch 2 x 8 out x 16 x 16 positions x 3 in x 3 x 3; head: 2 x 8 x 10
            expected_macs=2 * 8 * 16 * 16 * 3 * 3 * 3 + 2 * 8 * 10,
            # conv 8x3x3x3 + 8, BN 8 + 8 (frozen: 240 elements), head 8 x 10 + 10 (trainable)
            expected_params=(8 * 3 * 3 * 3 + 8) + (8 + 8) + (8 * 10 + 10),
            description="Conv2d(3, 8, 3) and BatchNorm2d(8) frozen (requires_grad=False), ReLU, global average "
            "pool and a trainable Linear(8, 10) head, on (2, 3, 16, 16)",
        ),
        hard_case(
            "params-lazy",
            lazy_mlp,
            randn_inputs((4, 16)),
            {"params", "lazy", "linear"},
            expected_macs=4 * 16 * 32 + 4 * 32 * 8,
            expected_params=(16 * 32 + 32) + (32 * 8 + 8),
            description="LazyLinear(32), ReLU, LazyLinear(8) on (4, 16): parameters exist only after a forward",
        ),
        hard_case(
            "params-pruned",
            pruned_mlp,
            randn_inputs((4, 16)),
            {"params", "pruned", "linear"},
            # the matmuls are dense: pruning zeroes weights, it does not remove them
            expected_macs=4 * 16 * 32 + 4 * 32 * 8,
            # weight_orig 32 x 16 + bias 32, then 8 x 32 + 8; the mask is a buffer
            expected_params=(32 * 16 + 32) + (8 * 32 + 8),
            description="Linear(16, 32) with 50% of its weights L1-pruned (weight_orig + weight_mask, weight "
            "recomputed by a pre-hook), ReLU, Linear(32, 8), on (4, 16)",
        ),
        hard_case(
            "params-weight-norm",
            weight_normed_mlp,
            randn_inputs((4, 16)),
            {"params", "parametrized", "linear"},
            expected_macs=4 * 16 * 32 + 4 * 32 * 8,  # the weight's recomputation is elementwise (extra FLOPs)
            # g 32 x 1 + v 32 x 16 + bias 32, then 8 x 32 + 8
            expected_params=(32 + 32 * 16 + 32) + (8 * 32 + 8),
            description="Linear(16, 32) under parametrizations.weight_norm (weight computed from original0 (g) "
            "and original1 (v) when read), ReLU, Linear(32, 8), on (4, 16)",
        ),
        hard_case(
            "params-spectral-norm-hooks",
            spectral_normed_convnet,
            randn_inputs((2, 3, 8, 8)),
            {"params", "parametrized", "conv", "linear"},
            # the layers, then sigma = u . (W v) for each weight (W as a 8 x 27 and a 4 x 512 matrix)
            expected_macs=2 * 8 * 8 * 8 * 27 + 2 * 512 * 4 + (8 * 27 + 8) + (4 * 512 + 4),
            expected_params=(8 * 27 + 8) + (512 * 4 + 4),  # weight_orig and bias; u and v are buffers
            description="Conv2d(3, 8, 3, padding=1), ReLU, Flatten, Linear(512, 4), both under the old hook-based "
            "torch.nn.utils.spectral_norm (weight_orig a parameter, u and v buffers, weight = weight_orig / sigma "
            "set by a pre-hook each call), on (2, 3, 8, 8): torchinfo prices a weight_orig without a mask as an "
            "RNN's inner weight",
        ),
        hard_case(
            "params-low-rank-adapter",
            low_rank_adapted_mlp,
            randn_inputs((4, 16)),
            {"params", "frozen", "wrapper", "linear"},
            # base 4 x 16 x 32 + A 4 x 16 x 4 + B 4 x 4 x 32, then 4 x 32 x 8
            expected_macs=4 * 16 * 32 + 4 * 16 * 4 + 4 * 4 * 32 + 4 * 32 * 8,
            # base 32 x 16 + 32 (frozen), A 4 x 16, B 32 x 4, then 8 x 32 + 8
            expected_params=(32 * 16 + 32) + 4 * 16 + 32 * 4 + (8 * 32 + 8),
            description="a PEFT-style LoRA layer (frozen Linear(16, 32) base_layer plus lora_B(lora_A(x)) * 2 "
            "at rank 4, its weight and bias properties returning the base layer's), ReLU, Linear(32, 8), on (4, 16)",
        ),
        hard_case(
            "params-on-root",
            RootParameter,
            randn_inputs((4, 16)),
            {"params", "linear"},
            expected_macs=4 * 16 * 8,
            expected_params=16 + (16 * 8 + 8),  # scale on the root + fc; the shift buffer is not a parameter
            description="a parameter (scale, 16) and a buffer (shift, 16) held by the root module, then "
            "Linear(16, 8), on (4, 16)",
        ),
    ]
