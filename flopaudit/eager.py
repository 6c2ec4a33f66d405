"""Compiled code runs eagerly while flopaudit counts.

``torch.compile`` changes what a counter can see, in ways that depend on what
ran before in the process:

- hooks registered on a module after the code around it was compiled are not
  run by that code (``torch._dynamo.config.skip_nnmodule_hook_guards``, on by
  default), so hook-based counters count 0 for the compiled modules;
- a recompile under one counter's patches bakes that counter's hooks into
  code that a later counter then runs, or fails inside torch (ptflops'
  function wrapper has no ``__name__``; DeepSpeed's patched ``addmm`` breaks
  inductor's kernel table);
- a JIT trace refuses compiled code (fvcore, torchprofile).

So every count (each backend's, and each pass the reference records) and the
trial forward pass of a run go through :func:`compiled_code_eager`:
``torch.compiler.set_stance("force_eager")`` for the block, where compiled
modules and functions run their Python code as written, as without
``torch.compile``. The model object is not changed: a compile wrapper
(``OptimizedModule``) stays in the module tree, and a counter that keeps
counts in module attributes reads the wrapped module's count through it
(:attr:`flopaudit.reference.events.ModuleCall.wrapped_by`).

``torch.cond`` with a tensor predicate compiles its call even in eager mode (with
Dynamo's eager backend); under the stance that call runs uncompiled, and with
autograd on its branches are then traced with fake tensors that fail on the
parameters they close over. In the block it runs as the program reads: the
branch the predicate picks, called on the operands.

# NB: what is counted is the program as written. A model compiled with
# inductor runs fused kernels; they do the same arithmetic, so the FLOPs do
# not change, but memory traffic does (``flopaudit cost`` measures the model
# as compiled). Torch before 2.6 has no ``set_stance``: there dynamo is
# turned off for the block (``torch._dynamo.config.disable``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def import_dynamo() -> None:
    """Import Dynamo now (about 1 s, once per process), as :func:`compiled_code_eager`
    needs it: call it in a process before forking counts from it, so that each child
    does not import it again."""
    import torch._dynamo  # noqa: F401


@contextlib.contextmanager
def compiled_code_eager() -> Iterator[None]:
    """Run the block with every ``torch.compile``d module and function running eagerly.

    # NB: Dynamo is imported even where nothing was compiled before the block:
    # code may compile as it runs (``flex_attention`` compiles its operator call
    # even in eager mode), and compiling under a counter's dispatch mode traces
    # into the mode's own Python (the reference's mode is written for the
    # ``force_eager`` stance, where Dynamo compiles nothing).
    """
    import_dynamo()
    import torch

    set_stance = getattr(torch.compiler, "set_stance", None)
    if set_stance is not None:
        with set_stance("force_eager"), _cond_as_written(torch):
            yield
        return
    import torch._dynamo

    with torch._dynamo.config.patch(disable=True):  # pragma: no cover - torch < 2.6
        yield


def cond_as_written(pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any], operands: Any = ()) -> Any:
    """``torch.cond`` as the program reads: the branch ``pred`` picks, called on ``operands``
    (also what the ``cond`` operator's dense kernel runs)."""
    return (true_fn if pred else false_fn)(*operands)


@contextlib.contextmanager
def _cond_as_written(torch: Any) -> Iterator[None]:
    """``torch.cond`` is :func:`cond_as_written` for the block (where torch has it)."""
    original = getattr(torch, "cond", None)
    if original is None:
        yield
        return
    torch.cond = cond_as_written
    try:
        yield
    finally:
        torch.cond = original


__all__ = ["compiled_code_eager", "cond_as_written", "import_dynamo"]
