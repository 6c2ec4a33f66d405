"""Running one training step the same way for every counter that counts one.

:func:`train_step` runs the step a :class:`~flopaudit.passes.Pass` describes:

1. ``forward``: ``model(*args, **kwargs)`` with autograd on, in the mode the
   model is in;
2. ``loss``: the scalar loss: the user's ``module:function`` applied to the
   output, or :func:`sum_of_outputs`;
3. ``backward``: ``loss.backward()``: autograd computes exactly the gradients
   it needs (none for a frozen parameter, none for an input that does not
   require one, recomputation where activation checkpointing asks for it);
4. ``optimizer`` (with ``Pass.optimizer``): one optimizer step over every
   parameter that received a gradient (:func:`optimizer_step`). A name of
   :data:`~flopaudit.passes.OPTIMIZERS` steps that ``torch.optim`` optimizer
   with torch's defaults (``lr=1e-3`` for SGD, Adam and AdamW), parameter by
   parameter (``foreach=False``, torch's own choice on CPU and meta). A
   ``module:function`` (or, in the Python API, the function itself) is the
   user's own: it is called with the list of parameters and returns an
   optimizer (``torch.optim.Optimizer`` or anything with ``step()``), or a
   list of them, each stepped once (Muon for the matrices and AdamW for the
   rest, as Muon is trained). A recorder learns afterwards which module's
   parameter each tensor the step used belongs to
   (:meth:`StepHooks.optimizer_tensors`).

The model is left as it was: each parameter's ``.grad`` is put back
afterwards, and the optimizer steps *stand-ins* of the parameters
(:func:`stand_in`): the same operators on the same shapes as a step of the
real parameters, which stay untouched. The user's own optimizer steps
copies of the parameters (their values, each holding its real gradient): its
code may read values, and it then reads the ones a real step would. For
torch's, a parameter of at least
:data:`META_STAND_IN_NUMEL` elements is stood in for on the meta device (its
shape, strides and dtype, holding a meta tensor like its gradient): its step
and its optimizer state (for Adam two more tensors its size) then take no
memory and no arithmetic. A smaller one is stood in for by an uninitialised
tensor like it on its own device, holding its real gradient: torch's meta
kernels of ``lerp_``, ``addcmul_``, ``sqrt``, ``div`` and ``addcdiv_`` are
Python (about 0.1 ms a call), more than those operators cost on a small CPU
tensor (``benchmarks/bench_train_step.py``: hf-gpt2 with AdamW, and the small
models, side by side).
# NB: torch's per-parameter loops read no parameter or gradient value to
# decide what to run (only the ``step`` count, which the optimizer makes
# itself on the CPU), so values they cannot see change no operator. ASGD and
# Adafactor read values for a number (ASGD its averaging coefficient, which
# it makes from the step count; Adafactor the norms that scale its step) and
# so cannot step on meta, and Rprop's step on meta makes its constants with
# another operator: theirs are stood in for on the parameter's own device
# whatever its size (:data:`STEPS_ON_ITS_OWN_DEVICE`). A gradient that is
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
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from flopaudit.callables import load_callable
from flopaudit.errors import UserError
from flopaudit.inputs import ModelInputs, iter_tensors
from flopaudit.passes import OPTIMIZERS, Pass, callable_name, is_optimizer_spec, is_torch_optimizer, named

#: The learning rate of every optimizer step (torch's default for Adam and AdamW; SGD needs one).
LEARNING_RATE = 1e-3


class StepHooks(Protocol):
    """What a counter that records the step wants to hear about it."""

    def phase(self, name: str) -> None:
        """A phase of :data:`~flopaudit.passes.PHASES` starts ('' once the step is over)."""

    def optimizer_tensors(self, owners: Mapping[int, str]) -> None:
        """Before the optimizer step: ``id(tensor) -> path of the module holding the
        parameter`` for every stand-in, its gradient and the state the optimizer made for it
        when it was made (torch's optimizers make theirs in the step)."""


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


def stand_in(param: torch.Tensor, grad: torch.Tensor, on_meta: bool = True) -> torch.Tensor:
    """What a ``torch.optim`` step steps in place of ``param`` (whose gradient is ``grad``):
    for a dense parameter of at least :data:`META_STAND_IN_NUMEL` elements, a meta
    tensor like it requiring a gradient, with a meta tensor like ``grad`` as its
    ``.grad``; otherwise (and for a gradient that is not a dense tensor, a
    parameter or gradient of a tensor subclass, or with ``on_meta=False``) an
    uninitialised tensor like ``param`` on its own device holding ``grad`` itself."""
    if (on_meta and param.numel() >= META_STAND_IN_NUMEL and type(param) in _PLAIN and type(grad) is torch.Tensor
            and grad.layout is torch.strided and param.layout is torch.strided):
        t = _on_meta(param).requires_grad_(True)
        t.grad = _on_meta(grad)
        return t
    t = torch.empty_like(param).requires_grad_(True)
    t.grad = grad
    return t


_PLAIN = (torch.Tensor, nn.Parameter)


#: Optimizers of :data:`~flopaudit.passes.OPTIMIZERS` whose step on a meta stand-in is not their
#: step on the parameter's device, and why: every stand-in of theirs is on the parameter's own device.
STEPS_ON_ITS_OWN_DEVICE = {
    "asgd": "reads its averaging coefficient with .item(), which the meta device cannot give",
    "adafactor": "reads the norms that scale its step with .item(), which the meta device cannot give",
    "rprop": "writes Python numbers through boolean masks, whose constants are made by another (zero-cost) "
             "operator on meta",
}


def copy_of(param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """What the user's own optimizer steps in place of ``param``: a copy of it (its values, on its
    device) requiring a gradient and holding ``grad`` itself."""
    t = param.detach().clone().requires_grad_(param.requires_grad)
    t.grad = grad
    return t


def make_optimizer(optimizer: str | Callable[[Any], Any], params: list[torch.Tensor]) -> list[Any]:
    """The optimizers to step over ``params``: the ``torch.optim`` optimizer a name of
    :data:`~flopaudit.passes.OPTIMIZERS` names, or what the user's function (or
    ``module:function``) returns for them (an optimizer or a list of them); a user error
    where it cannot be made."""
    if is_torch_optimizer(optimizer):
        cls = getattr(torch.optim, OPTIMIZERS[optimizer], None)
        if cls is None:
            raise UserError(f"optimizer {optimizer!r}: torch {torch.__version__} has no "
                            f"torch.optim.{OPTIMIZERS[optimizer]}")
        kwargs: dict[str, Any] = {"foreach": False} if "foreach" in inspect.signature(cls).parameters else {}
        if optimizer in ("sgd", "adam", "adamw"):
            kwargs["lr"] = LEARNING_RATE
        return [cls(params, **kwargs)]
    name = named(optimizer)
    make = load_callable(optimizer, what="optimizer") if isinstance(optimizer, str) else optimizer
    try:
        made = make(params)
    except Exception as exc:  # noqa: BLE001 - the user's function failed
        raise UserError(f"optimizer {name!r} raised: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    made = list(made) if isinstance(made, (list, tuple)) else [made]
    for opt in made:
        if not callable(getattr(opt, "step", None)):
            raise UserError(f"optimizer {name!r} returned {type(opt).__name__}, not an optimizer "
                            "(an object with a step() method, such as a torch.optim.Optimizer) or a list of them")
    return made


def check_optimizer(optimizer: str | Callable[[Any], Any] | None) -> None:
    """Load the user's optimizer named ``module:function`` (a trial: raises :class:`UserError` when it cannot)."""
    if is_optimizer_spec(optimizer):
        load_callable(optimizer, what="optimizer")


def optimizer_step(optimizer: str | Callable[[Any], Any], owners: list[tuple[str, nn.Parameter]],
                   hooks: StepHooks | None) -> int:
    """One step of ``optimizer`` (see :func:`make_optimizer`) over the parameters that have a
    gradient, on stand-ins (made before the step, outside it); returns how many were stepped."""
    torchs = is_torch_optimizer(optimizer)
    stand_ins: list[tuple[str, torch.Tensor]] = []
    with torch.utils._python_dispatch._disable_current_modes(), torch.no_grad():
        for path, p in owners:
            if p.grad is not None:
                t = (copy_of(p, p.grad) if not torchs else
                     stand_in(p, p.grad, on_meta=optimizer not in STEPS_ON_ITS_OWN_DEVICE))
                stand_ins.append((path, t))
    if not stand_ins:
        return 0
    with torch.utils._python_dispatch._disable_current_modes():
        made = make_optimizer(optimizer, [t for _, t in stand_ins])
    if hooks is not None:
        hooks.optimizer_tensors(_owners(stand_ins, made))
        hooks.phase("optimizer")
    on_meta = any(t.is_meta for _, t in stand_ins)
    for opt in made:
        try:
            opt.step()
        except Exception as exc:  # noqa: BLE001 - said in the optimizer's terms where it can be
            _say_step_failure(named(optimizer), opt, exc, on_meta=on_meta, torchs=torchs)
            raise
    return len(stand_ins)


def _say_step_failure(name: str | None, opt: Any, exc: Exception, *, on_meta: bool, torchs: bool) -> None:
    """Raise what a failed step of optimizer ``name`` says: a value read on meta, a closure or
    a second-order graph it needs, or the user's optimizer's own error, each a user error
    raised from ``exc`` where the failing line is the user's (it is said to come from there).
    Returns for torch's own optimizers' other failures, which are raised as they are."""
    from flopaudit.reference.meta_workarounds import reads_values

    first = str(exc).splitlines()[0] if str(exc) else ""
    if on_meta and reads_values(exc):
        raise UserError(f"optimizer {name!r} reads a tensor's value in its step ({type(opt).__name__}: {first}), "
                        "which parameters on the meta device do not hold: count the step on the CPU, or with an "
                        "optimizer that reads no value") from (None if torchs else exc)
    if torchs:
        return
    if "closure" in first.lower():  # (a TypeError for LBFGS, a library's own error for others)
        raise UserError(f"optimizer {name!r}: {type(opt).__name__}.step() needs a closure: it evaluates the model "
                        "again within its step, as LBFGS does, which a count of one step on stand-ins of the "
                        "parameters cannot do") from None
    hint = _SECOND_ORDER_HINT if _NO_GRAPH in first else ""
    raise UserError(f"optimizer {name!r}: {type(opt).__name__}.step() raised: {type(exc).__name__}: "
                    f"{first}{hint}") from exc


_NO_GRAPH = "does not require grad and does not have a grad_fn"
"""What autograd says where a step differentiates a gradient that has no graph."""

_SECOND_ORDER_HINT = (
    " (its step differentiates the gradients again, as Hessian-based optimizers such as AdaHessian and "
    "Sophia do: that needs a backward that keeps its graph, create_graph=True, through the parameters "
    "themselves, which a count of one step on stand-ins of the parameters cannot give)")
"""Said of an optimizer step that fails for want of a second-order graph."""


def _owners(stand_ins: list[tuple[str, torch.Tensor]], made: list[Any]) -> dict[int, str]:
    """``id(tensor) -> module path`` for each stand-in, its gradient and the state tensors
    the optimizers hold for it now."""
    of: dict[int, str] = {}
    for path, t in stand_ins:
        of[id(t)] = path
        if t.grad is not None:
            of[id(t.grad)] = path
        for opt in made:
            state = getattr(opt, "state", None)
            held = state.get(t, {}) if isinstance(state, Mapping) else {}
            for v in (held.values() if isinstance(held, Mapping) else ()):
                if isinstance(v, torch.Tensor):
                    of[id(v)] = path
    return of


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


__all__ = ["FREED_BY_THE_FORWARD", "LEARNING_RATE", "META_STAND_IN_NUMEL", "STEPS_ON_ITS_OWN_DEVICE", "StepHooks",
           "StepOutcome", "check_loss", "check_optimizer", "checked_loss", "copy_of", "grads_put_back",
           "load_loss", "make_optimizer", "optimizer_step", "parameter_owners", "stand_in", "sum_of_outputs", "train_step"]
