"""A model's train/eval mode, set where the model lets it be set.

A module exported with ``torch.export`` (``ExportedProgram.module()``) refuses
``train()`` and ``eval()`` (``NotImplementedError``): its mode was fixed when
it was exported. flopaudit counts such a model in the mode it has, and says
so; a counter that calls ``model.eval()`` itself fails on it, as it does
outside flopaudit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

FIXED_MODE_NOTE = ("the model refuses train()/eval() (a torch.export module: its mode was fixed when it was "
                   "exported): counted in the mode it has")


def set_mode(model: nn.Module, train: bool) -> bool:
    """``model.train(train)``; False (the model left as it is) where the model refuses it."""
    try:
        model.train(train)
    except NotImplementedError:
        return False
    return True


__all__ = ["FIXED_MODE_NOTE", "set_mode"]
