"""Which adds of a recorded pass are autograd's engine summing two gradients of one tensor, and
whether it sums them in place where no dispatch mode runs.

Where a tensor feeds two operators of a pass that is differentiated (a forward that takes its
forces or a gradient penalty with ``torch.autograd.grad``), its gradient arrives twice, and the
engine adds the second to the first once the backward node that made it has returned (its
``InputBuffer``). Without a dispatch mode it adds in place (``aten::add_``) where it may reuse the
first gradient's memory: that gradient is dense, no other tensor views it or is it, and the
backward makes no graph of its own (``create_graph=False``); else out of place (``aten::add``).
Under a dispatch mode the tensors it is handed hold Python objects, so it always adds out of
place: the reference records an ``aten.add`` either way, and this module says which one a counter
without a mode (torch.profiler, which prices ``aten::add`` and not ``aten::add_``) records.

An add is the engine's where it runs while a backward node is current and that node's post-hooks
have run: the watch hooks every node of a graph before the engine runs it (wrapping
``torch.autograd.grad`` and ``torch.autograd.backward``, which ``Tensor.backward`` calls), and takes
its hooks off when the pass ends.
# NB: "no other tensor is it" is read from the two operands being one object (``h + h`` passes
# one gradient to both); a gradient held elsewhere as well (a hook that keeps it) is not seen,
# and is taken to be summed in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

IN_PLACE = "in place"
OUT_OF_PLACE = "out of place"


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill its memory without gaps or overlaps, in some order of its dims."""
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


class GradientSums:
    """The backward nodes of the graphs differentiated during a pass, and which have returned."""

    def __init__(self) -> None:
        self.nodes: dict[int, Any] = {}
        """Every node hooked, by id (held: their ids stay theirs while the pass runs)."""
        self.returned: set[int] = set()
        self.handles: list[Any] = []

    def kind(self, args: Sequence[Any]) -> str:
        """For a call of ``aten.add.Tensor`` with ``args``: :data:`IN_PLACE` or :data:`OUT_OF_PLACE` where
        it is the engine summing gradients (as it would sum them without a dispatch mode), else ``""``."""
        node = torch._C._current_autograd_node()
        if node is None or id(node) not in self.returned or len(args) < 2:
            return ""
        first, second = args[0], args[1]
        if not isinstance(first, torch.Tensor) or first.layout != torch.strided:
            return OUT_OF_PLACE
        alone = first is not second and first._base is None and _dense(first)
        return IN_PLACE if alone and not torch.is_grad_enabled() else OUT_OF_PLACE

    def hook(self, roots: Any) -> None:
        """Hook every node of the graphs behind ``roots`` (tensors) not hooked yet."""
        todo = [t.grad_fn for t in _tensors(roots) if t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node is None or id(node) in self.nodes:
                continue
            self.nodes[id(node)] = node
            key = id(node)
            try:
                self.handles.append(node.register_hook(
                    lambda grad_inputs, grad_outputs, key=key: self.returned.add(key)))
            except (RuntimeError, TypeError, AttributeError):  # a node that takes no hook: its sums are not told apart
                pass
            todo.extend(next_node for next_node, _ in getattr(node, "next_functions", ()))

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """For the block, ``torch.autograd.grad`` and ``torch.autograd.backward`` hook the graphs they
        run first; the hooks are taken off on exit."""
        grad, backward = torch.autograd.grad, torch.autograd.backward

        def hooked_grad(outputs: Any, *args: Any, **kwargs: Any) -> Any:
            self.hook(outputs)
            return grad(outputs, *args, **kwargs)

        def hooked_backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            self.hook(tensors)
            return backward(tensors, *args, **kwargs)

        torch.autograd.grad, torch.autograd.backward = hooked_grad, hooked_backward
        try:
            yield
        finally:
            torch.autograd.grad, torch.autograd.backward = grad, backward
            for handle in self.handles:
                handle.remove()
            self.handles.clear()
            self.nodes.clear()


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for t in value if isinstance(t, torch.Tensor)]
    return []


__all__ = ["IN_PLACE", "OUT_OF_PLACE", "GradientSums"]
