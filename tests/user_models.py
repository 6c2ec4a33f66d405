"""Models addressed as ``module:function`` in the CLI tests."""

from __future__ import annotations

import torch
from torch import nn


def tiny_linear() -> nn.Module:
    return nn.Linear(4, 2, bias=False)


def tiny_inputs() -> tuple[torch.Tensor]:
    return (torch.randn(3, 4),)


def not_a_model() -> int:
    return 3


NOT_CALLABLE = 5


def raising_factory() -> nn.Module:
    raise RuntimeError("no weights for you")


def needs_width(width: int) -> nn.Module:
    return nn.Linear(4, width)
