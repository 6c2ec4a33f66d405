"""The model-case record: what to build, what to feed it, what to expect."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from flopaudit.inputs import ModelInputs
from flopaudit.modes import set_mode


@dataclass(frozen=True)
class ModelCase:
    """One model the audit can run.

    ``expected_macs``/``expected_params`` are set where the count can be
    derived in closed form (the builder's comments carry the arithmetic);
    ``expected_macs`` is the canonical count: every multiply-accumulate of the
    forward pass for the whole batch, bias and elementwise work excluded.
    """

    id: str
    build: Callable[[], nn.Module]
    make_inputs: Callable[[], ModelInputs]
    tags: frozenset[str] = field(default_factory=frozenset)
    expected_macs: int | None = None
    expected_params: int | None = None
    description: str = ""
    train: bool = False
    seed: int = 0
    default: bool = False
    """Part of the default zoo (the README's main command)."""
    requires: tuple[str, ...] = ()
    """Optional libraries the builder imports (``timm``, ``transformers``); see :mod:`flopaudit.zoo.catalog`."""

    def instantiate(self) -> tuple[nn.Module, ModelInputs]:
        """Build the model (seeded, random weights) and its inputs. torch's, Python's and numpy's
        global generators are seeded before each, so a factory drawing from any of them builds the
        same model in every process (workers are forked: Python's ``random`` would differ)."""
        seed_everything(self.seed)
        model = self.build()
        set_mode(model, self.train)  # (a torch.export module keeps the mode it was exported in)
        seed_everything(self.seed + 1)
        inputs = self.make_inputs()
        return model, inputs


def seed_everything(seed: int) -> None:
    """Seed torch's, Python's and (if imported) numpy's global random generators with ``seed``."""
    import random
    import sys

    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)


def tensor_inputs(*shape: int) -> Callable[[], ModelInputs]:
    """An input factory for one random float tensor of ``shape``."""

    def make() -> ModelInputs:
        return ModelInputs((torch.randn(*shape),))

    return make


def cost_tag(gmacs: float) -> str:
    """``light`` under 1 GMAC, ``heavy`` over 10, ``medium`` between (``nan``: medium)."""
    return "heavy" if gmacs > 10 else "light" if gmacs < 1 else "medium"
