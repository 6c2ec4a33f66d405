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
  function itself), its backward pass, and with ``optimizer`` one optimizer
  step over the parameters that received a gradient: a ``torch.optim``
  optimizer named in :data:`OPTIMIZERS` (``"adamw"``), or the user's own,
  named ``module:function`` (a function or class taking the list of
  parameters and returning an optimizer, or a list of them) or, in the
  Python API, given as that function itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flopaudit.callables import split_spec
from flopaudit.errors import UserError

INFERENCE, TRAIN = "inference", "train"
PASSES = (INFERENCE, TRAIN)
#: The optimizers ``--optimizer`` names: name -> the ``torch.optim`` class stepped. Those a
#: torch release lacks (``Adafactor`` before 2.5) are a user error where they are asked for.
OPTIMIZERS = {
    "sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "nadam": "NAdam", "radam": "RAdam", "adamax": "Adamax",
    "adagrad": "Adagrad", "adadelta": "Adadelta", "rmsprop": "RMSprop", "rprop": "Rprop", "asgd": "ASGD",
    "adafactor": "Adafactor",
}

#: The phases of a training step, in the order they run. A backward that
#: recomputes part of the forward (activation checkpointing) records that
#: work as ``recompute``.
PHASES = ("forward", "loss", "recompute", "backward", "optimizer")


@dataclass(frozen=True)
class Pass:
    """What one count covers: ``kind`` ``"inference"`` or ``"train"``, and for a
    training step its ``loss`` (``module:function``, the function itself, or None
    for the sum of the outputs) and ``optimizer`` (a name of :data:`OPTIMIZERS`,
    ``module:function``, the function itself, or None). A loss or optimizer named
    by a spec is checked where the pass is asked for (:func:`pass_of`, the command
    line), not here: a pass read back from a result's options holds the name of
    a function given to the API."""

    kind: str = INFERENCE
    loss: str | Callable[[Any], Any] | None = None
    optimizer: str | Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in PASSES:
            raise UserError(f"invalid pass {self.kind!r}: choose one of {', '.join(PASSES)}")
        if isinstance(self.optimizer, str) and self.optimizer not in OPTIMIZERS and not is_optimizer_spec(self.optimizer):
            raise UserError(f"invalid optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}, or name "
                            "your own as 'module:function'")
        if self.optimizer is not None and not isinstance(self.optimizer, str) and not callable(self.optimizer):
            raise UserError("the optimizer must be a name, 'module:function' or a function, "
                            f"not {type(self.optimizer).__name__}")
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
        return named(self.loss)

    @property
    def optimizer_name(self) -> str | None:
        """The optimizer as results record it: its name or spec, or a function's ``module:qualified.name``."""
        return named(self.optimizer)

    @property
    def in_process(self) -> bool:
        """Does the pass hold a function (a loss or optimizer given to the API), which no worker can be sent?"""
        return any(f is not None and not isinstance(f, str) for f in (self.loss, self.optimizer))

    def options(self) -> dict[str, Any]:
        """What a result records of the pass (nothing for inference, so that
        inference results read as they always have)."""
        if not self.train:
            return {}
        return {"pass": self.kind, "loss": self.loss_name or "sum of outputs",
                "optimizer": self.optimizer_name or "none"}

    def describe(self) -> str:
        """``"training step (loss: sum of outputs, optimizer: adam)"`` or ``"inference"``."""
        if not self.train:
            return "inference"
        return (f"training step (loss: {self.loss_name or 'sum of outputs'}, "
                f"optimizer: {self.optimizer_name or 'none'})")

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


def named(value: str | Callable[..., Any] | None) -> str | None:
    """A loss or optimizer as results and messages name it: its name or spec as given, or a
    function's ``module:qualified.name`` (None stays None)."""
    return value if value is None or isinstance(value, str) else callable_name(value)


def pass_of(kind: str | Pass | None = None, loss: str | Callable[[Any], Any] | None = None,
            optimizer: str | Callable[[Any], Any] | None = None) -> Pass:
    """A :class:`Pass` from the keyword arguments of the Python API (``pass_="train"``...);
    a loss or optimizer named by a spec is checked here (read only: its file is looked for where
    it is loaded)."""
    if isinstance(kind, Pass):
        if loss is not None or optimizer is not None:
            raise UserError("give loss and optimizer inside the Pass, not beside it")
        step = kind
    else:
        step = Pass(kind or INFERENCE, loss, optimizer)
    if isinstance(step.loss, str):
        split_spec(step.loss, "loss")
    if is_optimizer_spec(step.optimizer):
        split_spec(step.optimizer, "optimizer")
    return step


def is_optimizer_spec(optimizer: object) -> bool:
    """Does ``optimizer`` name the user's own optimizer (``module:function``) rather than one of :data:`OPTIMIZERS`?"""
    return isinstance(optimizer, str) and ":" in optimizer


def is_torch_optimizer(optimizer: object) -> bool:
    """Does ``optimizer`` (of a valid :class:`Pass`) name one of torch's, from :data:`OPTIMIZERS`?"""
    return isinstance(optimizer, str) and not is_optimizer_spec(optimizer)


__all__ = ["INFERENCE", "INFERENCE_PASS", "OPTIMIZERS", "PASSES", "PHASES", "Pass", "TRAIN",
           "callable_name", "is_optimizer_spec", "is_torch_optimizer", "named", "pass_of"]
