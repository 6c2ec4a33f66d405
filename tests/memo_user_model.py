"""A model module importing a memoised table from the project's helper module (tests/test_memos.py), and a
memo of the standard library, which is not the model's to empty."""

from __future__ import annotations

from fnmatch import _compile_pattern  # noqa: F401 - imported as a model's module imports such helpers

import torch
from memo_helpers import position_table, table_for
from torch import nn


class HelperTable(nn.Module):
    """Adds the helper's position table, called directly or through the helper's function."""

    def __init__(self, through_helper: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.through_helper = through_helper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + (table_for(x) if self.through_helper else position_table(x.shape[1]))
