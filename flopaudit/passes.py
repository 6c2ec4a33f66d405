"""Which pass is counted: one inference forward pass, or one training step.

A :class:`Pass` is a plain, picklable record (no torch): the command line
builds it from ``--pass``, ``--loss`` and ``--optimizer``, it travels to the
workers inside :class:`~flopaudit.execution.protocol.CaseSettings`, it is part
of the result cache's case key, and every result records it in its options.
The Python API (``audit``, ``reference.count``, the pytest fixture) also takes
the loss as a function: such a pass counts a model in this process or in a
child forked from it, and results record the function by its name
(``module:qualified.name``).
How a training step is run is :mod:`flopaudit.training`.

* ``inference``: one forward pass (the default; what every counter counts).
* ``train``: one training step: the forward pass with autograd on, a scalar
  loss (by default the sum of every floating tensor of the output that
  requires a gradient; ``loss="module:function"`` names a function taking
  the model's output and returning a scalar tensor, or the API is given the
  function itself), its backward pass, and
  with ``optimizer`` one step of ``torch.optim.SGD``, ``Adam`` or ``AdamW``
  (their defaults, ``lr=1e-3``) over the parameters that received a gradient.
"""

from __future__ import annotations

from collections.abc import Callable
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
    training step its ``loss`` (``module:function``, the function itself, or None
    for the sum of the outputs) and ``optimizer`` (``"sgd"``, ``"adam"``,
    ``"adamw"`` or None). A loss named by a string is checked where the pass is
    asked for (:func:`pass_of`, the command line), not here: a pass read back
    from a result's options holds the name of a function given to the API."""

    kind: str = INFERENCE
    loss: str | Callable[[Any], Any] | None = None
    optimizer: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PASSES:
            raise UserError(f"invalid pass {self.kind!r}: choose one of {', '.join(PASSES)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise UserError(f"invalid optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.kind == INFERENCE and (self.loss or self.optimizer):
            raise UserError("--loss and --optimizer need --pass train")
        if self.loss is not None and not isinstance(self.loss, str) and not callable(self.loss):
            raise UserError(f"the loss must be 'module:function' or a function, not {type(self.loss).__name__}")

    @property
    def train(self) -> bool:
        return self.kind == TRAIN

    @property
    def loss_name(self) -> str | None:
        """The loss as results record it: its spec, or a function's ``module:qualified.name``."""
        return self.loss if self.loss is None or isinstance(self.loss, str) else callable_name(self.loss)

    def options(self) -> dict[str, Any]:
        """What a result records of the pass (nothing for inference, so that
        inference results read as they always have)."""
        if not self.train:
            return {}
        return {"pass": self.kind, "loss": self.loss_name or "sum of outputs", "optimizer": self.optimizer or "none"}

    def describe(self) -> str:
        """``"training step (loss: sum of outputs, optimizer: adam)"`` or ``"inference"``."""
        if not self.train:
            return "inference"
        return f"training step (loss: {self.loss_name or 'sum of outputs'}, optimizer: {self.optimizer or 'none'})"

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


def callable_name(fn: Callable[..., Any]) -> str:
    """``module:qualified.name`` of a function (``__main__:<lambda>`` for a lambda typed in a notebook)."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__qualname__
    return f"{module}:{name}"


def pass_of(kind: str | Pass | None = None, loss: str | Callable[[Any], Any] | None = None,
            optimizer: str | None = None) -> Pass:
    """A :class:`Pass` from the keyword arguments of the Python API (``pass_="train"``...);
    a loss named by a string is checked here (read only: its file is looked for where it is loaded)."""
    if isinstance(kind, Pass):
        if loss is not None or optimizer is not None:
            raise UserError("give loss and optimizer inside the Pass, not beside it")
        step = kind
    else:
        step = Pass(kind or INFERENCE, loss, optimizer)
    if isinstance(step.loss, str):
        split_spec(step.loss, "loss")
    return step


__all__ = ["INFERENCE", "INFERENCE_PASS", "OPTIMIZERS", "PASSES", "PHASES", "Pass", "TRAIN",
           "callable_name", "pass_of"]
