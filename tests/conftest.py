"""Shared fixtures: small seeded models and fake backends."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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


class ConvBNNet(nn.Module):
    """Conv (no bias) + BN + ReLU, spatial mean, Linear head: for train/eval checks."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class TwoInputLinearBias(nn.Module):
    """Two positional inputs, two Linears with bias: a(16) -> 8, b(4) -> 8."""

    def __init__(self) -> None:
        super().__init__()
        self.fc_a = nn.Linear(16, 8)
        self.fc_b = nn.Linear(4, 8)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fc_a(a) + self.fc_b(b)


class MatmulNet(nn.Module):
    """Linear, then ``torch.matmul`` and ``@`` against a weight in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32, bias=False)
        self.w = nn.Parameter(torch.randn(32, 8))
        self.v = nn.Parameter(torch.randn(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.fc(x), self.w) @ self.v


class SmallCNN(nn.Module):
    """conv(3->8, 3x3, pad 1) -> ReLU -> maxpool 2 -> flatten -> linear(8*4*4 -> 10), input N x 3 x 8 x 8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The result cache is on by default: keep tests out of ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
