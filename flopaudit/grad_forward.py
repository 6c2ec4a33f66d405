"""Forward passes that differentiate, and need autograd to run.

An inference pass runs under ``torch.no_grad()``, as the counters that run
one do (thop, ptflops, torchinfo...). A model whose forward differentiates
fails there: a physics-informed network taking derivatives of its output by
its input, an interatomic potential computing forces as the gradient of its
energy, a critic computing its gradient penalty (``torch.autograd.grad``
inside ``forward``: "element 0 of tensors does not require grad"). flopaudit
runs and counts such a forward with autograd on, and says so: the backward
work it does inside the forward is work of the forward pass. Counters that
insist on ``no_grad`` fail on it, as they do outside flopaudit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

GRAD_FORWARD_NOTE = ("the forward pass differentiates (torch.autograd.grad inside it) and fails under "
                     "torch.no_grad(): run and counted with autograd on")

#: What autograd says when a forward that differentiates runs without it.
_NEEDS_GRAD = ("does not require grad", "does not have a grad_fn", "One of the differentiated Tensors")


def needs_grad(exc: BaseException) -> bool:
    """Whether ``exc`` is a forward pass that differentiates, failing under ``torch.no_grad()``."""
    return isinstance(exc, RuntimeError) and any(marker in str(exc) for marker in _NEEDS_GRAD)


def without_grad_if_it_runs(run: Callable[[bool], T]) -> tuple[T, bool]:
    """``run(no_grad=True)``; where that fails because the forward differentiates
    (:func:`needs_grad`), ``run(no_grad=False)``. Returns the result and whether
    autograd was needed; any other failure, or a second one, raises the first."""
    try:
        return run(True), False
    except Exception as exc:  # noqa: BLE001 - told apart below
        if not needs_grad(exc):
            raise
        first = exc
    try:
        return run(False), True
    except Exception:  # noqa: BLE001 - the first failure is the one to tell
        raise first from None


__all__ = ["GRAD_FORWARD_NOTE", "needs_grad", "without_grad_if_it_runs"]
