"""Small helpers shared by the hard-case families.

Every hard case is tiny (random weights, CPU, milliseconds), carries the tag
``hard`` plus its family tags and ``light``, and states its canonical MACs and
parameter count as arithmetic written out from the shapes.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase

InputsFactory = Callable[[], ModelInputs]


def randn_inputs(*shapes: tuple[int, ...], **kw_shapes: tuple[int, ...]) -> InputsFactory:
    """An input factory: one ``torch.randn`` tensor per positional/keyword shape."""

    def make() -> ModelInputs:
        args = tuple(torch.randn(*s) for s in shapes)
        kwargs = {k: torch.randn(*s) for k, s in kw_shapes.items()}
        return ModelInputs(args, kwargs)

    return make


def ids_inputs(vocab: int, *shape: int) -> InputsFactory:
    """An input factory: one integer tensor of token ids in ``[0, vocab)``."""

    def make() -> ModelInputs:
        return ModelInputs((torch.randint(0, vocab, shape),))

    return make


def hard_case(
    id: str,
    build: Callable[[], nn.Module],
    make_inputs: InputsFactory,
    tags: Iterable[str],
    *,
    expected_macs: int | None,
    expected_params: int | None,
    description: str,
    default: bool = False,
    train: bool = False,
    requires: tuple[str, ...] = (),
) -> ModelCase:
    """A :class:`ModelCase` tagged ``hard`` and ``light`` (all hard cases are cheap)."""
    return ModelCase(
        id=id,
        build=build,
        make_inputs=make_inputs,
        tags=frozenset({"hard", "light", *tags}),
        expected_macs=expected_macs,
        expected_params=expected_params,
        description=description,
        train=train,
        default=default,
        requires=requires,
    )
