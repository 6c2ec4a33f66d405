"""Which pass is counted: one inference forward pass, or one training step.

A :class:`Pass` is a plain, picklable record (no torch): the command line
builds it from ``--pass``, ``--loss`` and ``--optimizer``, it travels to the
workers inside :class:`~flopaudit.execution.protocol.CaseSettings`, it is part
of the result cache's case key, and every result records it in its options.
How a training step is run is :mod:`flopaudit.training`.

* ``inference``: one forward pass (the default; what every counter counts).
* ``train``: one training step: the forward pass with autograd on, a scalar
  loss (by default the sum of every floating tensor of the output that
  requires a gradient; ``loss="module:function"`` names a function taking
  the model's output and returning a scalar tensor), its backward pass, and
  with ``optimizer`` one step of ``torch.optim.SGD``, ``Adam`` or ``AdamW``
  (their defaults, ``lr=1e-3``) over the parameters that received a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flopaudit.callables import split_spec
from flopaudit.errors import UserError

INFERENCE, TRAIN = "inference", "train"
PASSES = (INFERENCE, TRAIN)
OPTIMIZERS = ("sgd", "adam", "adamw")

#: The phases of a training step, in the order they run. A backward that
#: recomputes part of the forward (activation checkpointing) records that
#: work as ``recompute``.
PHASES = ("forward", "loss", "recompute", "backward", "optimizer")


@dataclass(frozen=True)
class Pass:
    """What one count covers: ``kind`` ``"inference"`` or ``"train"``, and for a
    training step its ``loss`` (``module:function`` or None for the sum of the
    outputs) and ``optimizer`` (``"sgd"``, ``"adam"``, ``"adamw"`` or None)."""

    kind: str = INFERENCE
    loss: str | None = None
    optimizer: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PASSES:
            raise UserError(f"invalid pass {self.kind!r}: choose one of {', '.join(PASSES)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise UserError(f"invalid optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.kind == INFERENCE and (self.loss or self.optimizer):
            raise UserError("--loss and --optimizer need --pass train")
        if self.loss is not None:
            split_spec(self.loss, "loss")  # (read only: the file is looked for where it is loaded)

    @property
    def train(self) -> bool:
        return self.kind == TRAIN

    def options(self) -> dict[str, Any]:
        """What a result records of the pass (nothing for inference, so that
        inference results read as they always have)."""
        if not self.train:
            return {}
        return {"pass": self.kind, "loss": self.loss or "sum of outputs", "optimizer": self.optimizer or "none"}

    def describe(self) -> str:
        """``"training step (loss: sum of outputs, optimizer: adam)"`` or ``"inference"``."""
        if not self.train:
            return "inference"
        return f"training step (loss: {self.loss or 'sum of outputs'}, optimizer: {self.optimizer or 'none'})"

    @classmethod
    def from_options(cls, options: Any) -> Pass:
        """The pass a result's options record (inverse of :meth:`options`; inference when absent)."""
        opts = {k: (v.strip("'\"") if isinstance(v, str) else v) for k, v in dict(options or ()).items()}
        if opts.get("pass") != TRAIN:
            return cls()
        loss = opts.get("loss")
        optimizer = opts.get("optimizer")
        return cls(TRAIN, None if loss in (None, "sum of outputs") else loss,
                   None if optimizer in (None, "none") else optimizer)


INFERENCE_PASS = Pass()


def pass_of(kind: str | Pass | None = None, loss: str | None = None, optimizer: str | None = None) -> Pass:
    """A :class:`Pass` from the keyword arguments of the Python API (``pass_="train"``...)."""
    if isinstance(kind, Pass):
        if loss is not None or optimizer is not None:
            raise UserError("give loss and optimizer inside the Pass, not beside it")
        return kind
    return Pass(kind or INFERENCE, loss, optimizer)


__all__ = ["INFERENCE", "INFERENCE_PASS", "OPTIMIZERS", "PASSES", "PHASES", "Pass", "TRAIN",
           "pass_of"]
