"""Hard cases whose work hides from module hooks: functional math in a custom
module, a custom ``torch.autograd.Function`` and a ``torch.library`` custom op.

Canonical MACs are the contractions the code performs (``F.linear``,
``torch.matmul``, ``einsum``, ``mm``), whatever wraps them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, randn_inputs

#: Name of the custom op this module registers (once per process, at import).
CUSTOM_OP = "flopaudit_zoo::scaled_matmul"


@torch.library.custom_op(CUSTOM_OP, mutates_args=())
def scaled_matmul(x: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """``(x @ weight) * scale`` as an opaque op: x (n, k) @ weight (k, m) is n*k*m MACs."""
    return torch.mm(x, weight) * scale


@scaled_matmul.register_fake
def _scaled_matmul_fake(x: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[1])


class FunctionalMath(nn.Module):
    """Raw parameters combined with ``F.linear``, ``torch.matmul`` and ``torch.einsum``."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(32, 16) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(32))
        self.w2 = nn.Parameter(torch.randn(32, 24) * 0.1)
        self.w3 = nn.Parameter(torch.randn(24, 8) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(F.linear(x, self.w1, self.b1))  # (4, 16) -> (4, 32)
        h = torch.matmul(h, self.w2)  # (4, 32) -> (4, 24)
        return torch.einsum("bi,ij->bj", h, self.w3)  # (4, 24) -> (4, 8)


class _MatmulFunction(torch.autograd.Function):
    """``x @ w`` with a hand-written backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return x.mm(weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        return grad.mm(weight.t()), x.t().mm(grad)


class AutogradFunctionModel(nn.Module):
    """A parameter multiplied in through a custom ``autograd.Function``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 32) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MatmulFunction.apply(x, self.weight)


class CustomOpModel(nn.Module):
    """The ``flopaudit_zoo::scaled_matmul`` custom op, then an ordinary ``Linear(32, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 32) * 0.1)
        self.head = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(scaled_matmul(x, self.weight, 0.5))


def cases() -> list[ModelCase]:
    return [
        hard_case(
            "custom-functional-math",
            FunctionalMath,
            randn_inputs((4, 16)),
            {"custom", "functional", "linear"},
            # F.linear 4 x 16 x 32 + matmul 4 x 32 x 24 + einsum 4 x 24 x 8
            expected_macs=4 * 16 * 32 + 4 * 32 * 24 + 4 * 24 * 8,
            expected_params=32 * 16 + 32 + 32 * 24 + 24 * 8,
            description="a custom module with only nn.Parameters: F.linear, torch.matmul and torch.einsum on (4, 16)",
            default=True,
        ),
        hard_case(
            "custom-autograd-function",
            AutogradFunctionModel,
            randn_inputs((4, 16)),
            {"custom", "autograd-function"},
            expected_macs=4 * 16 * 32,  # x (4, 16) mm W (16, 32) inside Function.forward
            expected_params=16 * 32,
            description="x @ W through a custom torch.autograd.Function on (4, 16)",
        ),
        hard_case(
            "custom-torch-library-op",
            CustomOpModel,
            randn_inputs((4, 16)),
            {"custom", "torch-library", "linear"},
            # custom op x (4, 16) @ W (16, 32) + head 4 x 32 x 8
            expected_macs=4 * 16 * 32 + 4 * 32 * 8,
            expected_params=16 * 32 + 32 * 8 + 8,
            description=f"torch.library custom op {CUSTOM_OP} (x @ W * 0.5, fake kernel registered) "
            "then Linear(32, 8), on (4, 16)",
        ),
    ]
