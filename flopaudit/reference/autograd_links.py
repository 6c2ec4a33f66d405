"""Which forward operator each backward operator differentiates.

During a recorded training step the engine sees the backward pass's
operators through the same dispatch mode as the forward's. To put each on
the module whose forward produced it, it links autograd's graph to its own
events:

* forward: an operator's output gets its autograd node (``grad_fn``) from
  autograd *after* the dispatch mode returned it, so the output is kept
  (:meth:`GradientLinks.expect`) and read at the next operator
  (:meth:`GradientLinks.settle`): the node's sequence number then maps to the
  event that made it;
* backward: the engine asks which node autograd is running now
  (``torch._C._current_autograd_node()``): every operator dispatched while a
  node runs is that node's work, and so the work of the forward event that
  made the node. A parameter's ``AccumulateGrad`` node maps to the module
  holding the parameter. A node that no event made (its tensor was an
  intermediate of a decomposed operator) maps to the last event linked
  before it was made (sequence numbers grow as nodes are made).

This is the same question ``torch.utils.module_tracker.ModuleTracker``
answers with gradient hooks on each module's inputs and outputs; asking
autograd for the running node answers it per operator, exactly.
# NB: sequence numbers are per thread: a backward run by autograd's device
# threads (CUDA) of a graph built on another thread is still linked by node,
# but an unlinked node there falls back to the root.
"""

from __future__ import annotations

import bisect
from typing import Any

import torch

_ACCUMULATE = "torch::autograd::AccumulateGrad"


class GradientLinks:
    """Autograd nodes -> indices of the events that made them."""

    def __init__(self) -> None:
        self.pending: tuple[torch.Tensor, int] | None = None
        """An event's first output that needs a gradient, and the event's index, until its node is read."""
        self.by_node: dict[int, int] = {}
        """Node sequence number -> index of the event whose output it differentiates."""
        self.sequence: list[int] = []
        """Linked sequence numbers, ascending (nodes are made in order)."""

    def expect(self, out: Any, index: int) -> None:
        """Remember ``out``'s first tensor as event ``index``'s (autograd has not
        given it a node yet: whether it requires a gradient is known at :meth:`settle`)."""
        t = out
        if not isinstance(t, torch.Tensor):
            t = next((x for x in (out if isinstance(out, (tuple, list)) else ()) if isinstance(x, torch.Tensor)),
                     None)
        self.pending = (t, index) if t is not None else None

    def settle(self) -> None:
        """Link the pending output's autograd node (set by now) to its event.

        An output whose node cannot be read is linked to nothing: torch refuses
        ``.grad_fn`` of a view made under ``no_grad`` once its base was changed in
        place with autograd on (a custom Function's ``forward`` that fills a solution
        buffer under ``no_grad`` and returns it, as torchdiffeq's ``odeint_adjoint``
        does: the buffer becomes the Function's output), though the model never asks.
        """
        pending, self.pending = self.pending, None
        if pending is None:
            return
        try:
            node = pending[0].grad_fn
        except RuntimeError:  # a view made under no_grad whose base autograd took over since (see below)
            return
        if node is None:
            return
        seq = node._sequence_nr()
        if seq not in self.by_node:
            self.by_node[seq] = pending[1]
            if not self.sequence or seq > self.sequence[-1]:
                self.sequence.append(seq)
            else:
                bisect.insort(self.sequence, seq)

    def running(self) -> tuple[int, int, Any]:
        """``(event index, nearest event index, parameter)`` for the node autograd runs now:
        the event that made it (-1 if none), else the last event linked before it
        (-1 if none), and for an ``AccumulateGrad`` node its parameter (else None)."""
        node = torch._C._current_autograd_node()
        if node is None:
            return -1, -1, None
        seq = node._sequence_nr()
        index = self.by_node.get(seq)
        if index is not None:
            return index, index, None
        if node.name() == _ACCUMULATE:
            return -1, -1, getattr(node, "variable", None)
        i = bisect.bisect_right(self.sequence, seq)
        return -1, (self.by_node[self.sequence[i - 1]] if i else -1), None


__all__ = ["GradientLinks"]
