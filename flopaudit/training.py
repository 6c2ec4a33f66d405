"""Running one training step the same way for every counter that counts one.

:func:`train_step` runs the step a :class:`~flopaudit.passes.Pass` describes:

1. ``forward``: ``model(*args, **kwargs)`` with autograd on, in the mode the
   model is in;
2. ``loss``: the scalar loss: the user's ``module:function`` applied to the
   output, or :func:`sum_of_outputs`;
3. ``backward``: ``loss.backward()``: autograd computes exactly the gradients
   it needs (none for a frozen parameter, none for an input that does not
   require one, recomputation where activation checkpointing asks for it);
4. ``optimizer`` (with ``Pass.optimizer``): one step of ``torch.optim.SGD``,
   ``Adam`` or ``AdamW`` with torch's defaults (``lr=1e-3``) over every
   parameter that received a gradient, parameter by parameter
   (``foreach=False``, torch's own choice on CPU and meta). A recorder
   learns afterwards which module's parameter each tensor the step used
   belongs to (:meth:`StepHooks.optimizer_tensors`).

The model is left as it was: each parameter's ``.grad`` is put back
afterwards, and the optimizer steps *stand-ins* of the parameters
(:func:`stand_in`): the same operators on the same shapes as a step of the
real parameters, which stay untouched. A parameter of at least
:data:`META_STAND_IN_NUMEL` elements is stood in for on the meta device (its
shape, strides and dtype, holding a meta tensor like its gradient): its step
and its optimizer state (for Adam two more tensors its size) then take no
memory and no arithmetic. A smaller one is stood in for by an uninitialised
tensor like it on its own device, holding its real gradient: torch's meta
kernels of ``lerp_``, ``addcmul_``, ``sqrt``, ``div`` and ``addcdiv_`` are
Python (about 0.1 ms a call), more than those operators cost on a small CPU
tensor (``benchmarks/bench_train_step.py``: hf-gpt2 with AdamW, and the small
models, side by side).
# NB: the per-parameter loop reads no parameter or gradient value to decide
# what to run (only the ``step`` count, which the optimizer makes itself on
# the CPU), so values it cannot see change no operator. A gradient that is
# not a dense tensor (``nn.Embedding(sparse=True)``), or a parameter or
# gradient of a tensor subclass, is stood in for on its own device.
Buffers a train-mode forward writes (BatchNorm running statistics) are the
caller's to guard (the reference engine does; adapters count a copy).
# NB: on CUDA torch's optimizers default to the ``foreach`` kernels, which do
# the same arithmetic in fewer, batched calls; the per-parameter loop is what
# is run and counted here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from flopaudit.errors import UserError
from flopaudit.inputs import ModelInputs, iter_tensors
from flopaudit.passes import Pass, callable_name

#: The learning rate of every optimizer step (torch's default for Adam and AdamW; SGD needs one).
LEARNING_RATE = 1e-3


class StepHooks(Protocol):
    """What a counter that records the step wants to hear about it."""

    def phase(self, name: str) -> None:
        """A phase of :data:`~flopaudit.passes.PHASES` starts ('' once the step is over)."""

    def optimizer_tensors(self, owners: Mapping[int, str]) -> None:
        """After the optimizer step: ``id(tensor) -> path of the module holding the
        parameter`` for every stand-in, its gradient and its optimizer state."""


@dataclass
class StepOutcome:
    """What a step did besides its operators: ``notes`` for the result's warnings."""

    notes: list[str] = field(default_factory=list)


def sum_of_outputs(output: Any) -> torch.Tensor | None:
    """The default loss: ``t.sum()`` added over every floating tensor of the
    output that requires a gradient, in output order (None if there is none)."""
    loss = None
    for t in iter_tensors(output):
        if t.is_floating_point() and t.requires_grad:
            part = t.sum()
            loss = part if loss is None else loss + part
    return loss


def load_loss(spec: str | Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """The loss function a pass names (``module:function``) or holds, or :func:`sum_of_outputs`."""
    if spec is None:
        return sum_of_outputs
    if not isinstance(spec, str):
        return spec
    from flopaudit.callables import load_callable

    return load_callable(spec, what="loss")


def checked_loss(fn: Callable[[Any], Any], output: Any, spec: str | Callable[[Any], Any] | None) -> torch.Tensor | None:
    """``fn(output)``; a user loss that raises or returns anything but a scalar tensor is a user error."""
    if spec is None:
        return fn(output)
    if not isinstance(spec, str):
        spec = callable_name(spec)
    try:
        value = fn(output)
    except Exception as exc:  # noqa: BLE001 - the user's function failed
        raise UserError(f"loss {spec!r} raised: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        what = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise UserError(f"loss {spec!r} returned {what}, not a scalar tensor")
    return value


def check_loss(spec: str | Callable[[Any], Any] | None, output: Any) -> None:
    """Load the pass's loss and apply it to ``output`` (a trial: raises :class:`UserError` when it cannot)."""
    if spec is not None:
        checked_loss(load_loss(spec), output, spec)


def parameter_owners(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(path of the module holding it, parameter)`` for each parameter once, in
    ``named_parameters()`` order (a tied parameter under its first holder)."""
    out: list[tuple[str, nn.Parameter]] = []
    seen: set[int] = set()
    for path, module in model.named_modules():
        for p in module._parameters.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                out.append((path, p))
    return out


@contextlib.contextmanager
def grads_put_back(params: list[nn.Parameter]) -> Iterator[None]:
    """Start every parameter without a gradient; give each its own ``.grad`` back afterwards."""
    saved = [(p, p.grad) for p in params]
    for p in params:
        p.grad = None
    try:
        yield
    finally:
        for p, grad in saved:
            p.grad = grad


def _on_meta(t: torch.Tensor) -> torch.Tensor:
    """An uninitialised meta tensor with ``t``'s shape, strides and dtype."""
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")


#: Parameters with at least this many elements are stood in for on the meta device (see the module docstring).
META_STAND_IN_NUMEL = 1 << 20


def stand_in(param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """What an optimizer step steps in place of ``param`` (whose gradient is ``grad``):
    for a dense parameter of at least :data:`META_STAND_IN_NUMEL` elements, a meta
    tensor like it requiring a gradient, with a meta tensor like ``grad`` as its
    ``.grad``; otherwise (and for a gradient that is not a dense tensor, or a
    parameter or gradient of a tensor subclass) an uninitialised tensor like
    ``param`` on its own device holding ``grad`` itself."""
    if (param.numel() >= META_STAND_IN_NUMEL and type(param) in _PLAIN and type(grad) is torch.Tensor
            and grad.layout is torch.strided and param.layout is torch.strided):
        t = _on_meta(param).requires_grad_(True)
        t.grad = _on_meta(grad)
        return t
    t = torch.empty_like(param).requires_grad_(True)
    t.grad = grad
    return t


_PLAIN = (torch.Tensor, nn.Parameter)


def optimizer_step(name: str, owners: list[tuple[str, nn.Parameter]], hooks: StepHooks | None) -> int:
    """One step of optimizer ``name`` over the parameters that have a gradient, on
    stand-ins (made before the step, outside it); returns how many were stepped."""
    make = {
        "sgd": lambda ps: torch.optim.SGD(ps, lr=LEARNING_RATE, foreach=False),
        "adam": lambda ps: torch.optim.Adam(ps, lr=LEARNING_RATE, foreach=False),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=LEARNING_RATE, foreach=False),
    }[name]
    stand_ins: list[tuple[str, torch.Tensor]] = []
    with torch.utils._python_dispatch._disable_current_modes(), torch.no_grad():
        for path, p in owners:
            if p.grad is not None:
                stand_ins.append((path, stand_in(p, p.grad)))
    if not stand_ins:
        return 0
    optimizer = make([t for _, t in stand_ins])
    if hooks is not None:
        hooks.phase("optimizer")
    optimizer.step()
    if hooks is not None:
        of: dict[int, str] = {}
        for path, t in stand_ins:
            for tensor in (t, t.grad, *(v for v in optimizer.state[t].values() if isinstance(v, torch.Tensor))):
                of[id(tensor)] = path
        hooks.optimizer_tensors(of)
    return len(stand_ins)


def train_step(model: nn.Module, inputs: ModelInputs, spec: Pass, hooks: StepHooks | None = None,
               loss_fn: Callable[[Any], Any] | None = None) -> StepOutcome:
    """Run one training step (see the module docstring); the model's parameters
    and their gradients are left as they were."""
    outcome = StepOutcome()
    fn = loss_fn if loss_fn is not None else load_loss(spec.loss)
    owners = parameter_owners(model)

    def phase(name: str) -> None:
        if hooks is not None:
            hooks.phase(name)

    with grads_put_back([p for _, p in owners]), torch.enable_grad():
        phase("forward")
        output = model(*inputs.args, **inputs.kwargs)
        phase("loss")
        loss = checked_loss(fn, output, spec.loss)
        if loss is None or not loss.requires_grad:
            outcome.notes.append("the loss does not require a gradient (no trainable parameter reaches it): "
                                 "no backward pass")
        else:
            phase("backward")
            try:
                loss.backward()
            except RuntimeError as exc:
                if _FREED_GRAPH not in str(exc):
                    raise
                raise RuntimeError(f"{exc} {FREED_BY_THE_FORWARD}") from exc
        if spec.optimizer is not None:
            if not optimizer_step(spec.optimizer, owners, hooks):
                outcome.notes.append("no parameter received a gradient: the optimizer stepped nothing")
        phase("")
    return outcome


_FREED_GRAPH = "Trying to backward through the graph a second time"
"""What autograd says of a backward through a graph whose saved tensors were freed."""

FREED_BY_THE_FORWARD = (
    "The model's forward already took gradients through part of this graph (torch.autograd.grad or a backward "
    "without retain_graph=True or create_graph=True, as an interatomic potential computes its forces in eval mode), "
    "which freed what the training step's backward needs: run the model the way it trains (MACE takes "
    "training=True, which keeps the graph), or count the forward pass alone.")
"""Said where a training step's backward fails because the model's forward freed the graph."""


__all__ = ["FREED_BY_THE_FORWARD", "LEARNING_RATE", "META_STAND_IN_NUMEL", "StepHooks", "StepOutcome", "check_loss", "checked_loss", "grads_put_back",
           "load_loss", "optimizer_step", "parameter_owners", "stand_in", "sum_of_outputs", "train_step"]
