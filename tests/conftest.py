"""Shared fixtures: small seeded models and fake backends."""

from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class TwoInputLinear(nn.Module):
    """y = W1 a + W2 b, no bias: every backend agrees on this count."""

    def __init__(self) -> None:
        super().__init__()
        self.fa = nn.Linear(16, 32, bias=False)
        self.fb = nn.Linear(8, 32, bias=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fa(a) + self.fb(b)


class KwargsLinear(nn.Module):
    """forward(x, *, scale): keyword-only input, no bias."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32, bias=False)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor) -> torch.Tensor:
        return self.fc(x * scale)


class SmallConvNet(nn.Module):
    """Conv + BN + ReLU + pool + Linear: enough to exercise every backend."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.bn(self.conv(x)))).flatten(1))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The result cache is on by default: keep tests out of ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
