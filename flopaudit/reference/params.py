"""Parameter counts the way each backend counts them, explained cause by cause.

The reference's parameter count is every parameter tensor once (tied
weights once, frozen ones included, buffers not). Backends differ: some
count trainable parameters only, some each module's parameters at each call,
some only the leaves, some only attributes named ``weight`` and ``bias``.
A backend's ruleset names a *parameter counter* (``Ruleset.params``); the
counter reads the model's :class:`~flopaudit.reference.inventory.ModelInventory`
and the module calls of the backend's recording and returns a
:class:`ParamTally`: every tensor the backend counts (each time it counts
it, with why it counts it again) and, for reference parameters it leaves
out, why. :func:`predict_params` books the tally against the reference:

* a reference parameter the backend counts once: no difference;
* counted k > 1 times: ``(k - 1) * numel`` to the reasons of the extra counts
  (a tied weight in each module holding it, a module per call, per name...);
* not counted: ``-numel`` to the reason given (frozen, held by the root, by
  a module that was never called, by a non-leaf module...);
* a tensor that is not a parameter (a buffer, a pruned module's computed
  ``weight``): ``+numel`` to its reason.

So ``predicted == reference + sum(contributions)`` exactly, like the MAC
predictions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flopaudit.records import RuleContribution
from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.inventory import ModelInventory, TensorInfo

_LAYERS_KEPT = 8


@dataclass
class ParamTally:
    """What a backend counts as parameters (see the module docstring)."""

    counted: list[tuple[TensorInfo, str, tuple[str, str]]] = field(default_factory=list)
    """``(tensor, module path it is counted at, (kind, reason))`` per count; the
    reason is used when the count is not the first of a reference parameter."""
    missed: dict[int, tuple[str, str]] = field(default_factory=dict)
    """Reference parameter key -> ``(kind, reason)`` it is not counted (first reason given wins)."""
    missed_at: dict[int, str] = field(default_factory=dict)
    """Reference parameter key -> the module a miss is booked at, where not the one holding it."""

    adjustments: list[tuple[int, str, tuple[str, str]]] = field(default_factory=list)
    """``(amount, module path, (kind, reason))``: parts of the count not tied to
    one tensor (a backend whose accounting is numeric)."""
    first_at: dict[int, str] = field(default_factory=dict)
    """Key -> the module path where a tensor was first counted."""

    def count(self, tensor: TensorInfo, path: str, kind: str = "rule", reason: str = "") -> None:
        """Count ``tensor`` at module ``path``. When it was counted before, at
        another module, the extra count is a tied weight's; at the same module,
        ``(kind, reason)`` says why it is counted again there."""
        first = self.first_at.setdefault(tensor.key, path)
        if first != path:
            kind, reason = _TIED
        self.counted.append((tensor, path, (kind, reason)))

    def count_again(self, tensor: TensorInfo, path: str, kind: str, reason: str) -> None:
        """Count ``tensor`` once more at ``path``, for ``(kind, reason)`` (after its own count)."""
        self.counted.append((tensor, path, (kind, reason)))

    def adjust(self, amount: int, path: str, kind: str, reason: str) -> None:
        self.adjustments.append((amount, path, (kind, reason)))

    def miss(self, tensor: TensorInfo, kind: str, reason: str, at: str | None = None) -> None:
        """Leave ``tensor`` uncounted for ``(kind, reason)`` (a reason given before wins), booked at
        module ``at`` (the module whose treatment the reason is about: one never called), else at the
        module holding it."""
        if tensor.key not in self.missed:
            self.missed[tensor.key] = (kind, reason)
            if at is not None:
                self.missed_at[tensor.key] = at


ParamCounter = Callable[[ModelInventory, Sequence[ModuleCall]], ParamTally]
PARAM_COUNTERS: dict[str, ParamCounter] = {}


def param_counter(name: str) -> Callable[[ParamCounter], ParamCounter]:
    """Decorator: register a parameter counter under ``name`` (duplicates rejected)."""

    def decorator(fn: ParamCounter) -> ParamCounter:
        if name in PARAM_COUNTERS:
            raise ValueError(f"parameter counter {name!r} already registered")
        PARAM_COUNTERS[name] = fn
        return fn

    return decorator


@param_counter("unique")
def unique(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """Every parameter tensor once (``sum(p.numel() for p in model.parameters())``)."""
    tally = ParamTally()
    for tensor, path in modules.unique_params().values():
        tally.count(tensor, path)
    return tally


_FROZEN = ("rule", "frozen parameters (requires_grad=False) are not counted")
_TIED = ("rule", "a weight tied between modules is counted in each module holding it")
PER_NAME = ("reused-module", "module shared by several parents: its parameters are added once per name")
PER_CALL = ("reused-module", "module called several times: its parameters are counted at every call")
FORWARDED = ("reused-module", "a wrapper's weight or bias attribute is the wrapped module's parameter "
             "(torch.compile's OptimizedModule, a PEFT LoRA layer): counted again at the wrapper")
COPIED = ("reused-module", "module copied during the forward (copy.deepcopy in a forward): the copy carries the "
          "hooks, and its parameters are counted in a row of its own")
COPY_KEPT = ("reused-module", "run only as a copy made during the forward (copy.deepcopy in a forward, as torch.func "
             "ensembles do): the copy carries the counter's hooks and keeps its parameter count, outside the model")
NEVER_CALLED = ("unsupported", "held by a module never called as a module (not run, or run as .forward(), which "
                                "no hook sees): only called modules are counted")


@param_counter("trainable")
def trainable(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """Trainable parameters once (``sum(p.numel() for p in model.parameters() if p.requires_grad)``)."""
    tally = ParamTally()
    for tensor, path in modules.unique_params().values():
        if tensor.trainable:
            tally.count(tensor, path)
        else:
            tally.miss(tensor, *_FROZEN)
    return tally


CONTAINER_HELD = ("rule", "held by an nn.Sequential or nn.ModuleList subclass, which it looks through (torch.ao's "
                  "fused modules, a QAT ConvBnReLU2d included, are Sequentials): no module it counts holds them")
"""Why a summary counter that skips containers by ``isinstance`` does not count a container's own parameters."""


def miss_the_rest(tally: ParamTally, modules: ModelInventory, root: tuple[str, str],
                  other: tuple[str, str]) -> None:
    """Give every parameter not counted so far a reason: ``root`` for those the
    root module holds itself, ``other`` for the rest (a reason given before wins)."""
    for info in modules.modules:
        for t in info.params:
            tally.miss(t, *(other if info.path else root))


def called_paths(calls: Sequence[ModuleCall]) -> dict[str, int]:
    """How many times each module (by first name) was called."""
    out: dict[str, int] = defaultdict(int)
    for call in calls:
        out[call.path] += 1
    return out


def predict_params(modules: ModelInventory, calls: Sequence[ModuleCall],
                   counter: str) -> tuple[int, tuple[RuleContribution, ...]]:
    """The backend's parameter count and its differences from the reference's, by cause."""
    tally = PARAM_COUNTERS[counter](modules, calls)
    reference = modules.unique_params()
    deltas: dict[tuple[str, str], int] = defaultdict(int)
    layers: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seen: set[int] = set()
    total = 0
    for tensor, path, why in tally.counted:
        total += tensor.numel
        if tensor.key in reference and tensor.key not in seen:
            seen.add(tensor.key)
            continue
        if not tensor.numel:
            continue
        reason = why if why[1] else ("rule", "counted again")
        deltas[reason] += tensor.numel
        layers[reason][path] += tensor.numel
    for amount, path, reason in tally.adjustments:
        total += amount
        deltas[reason] += amount
        layers[reason][path] += amount
    for key, (tensor, path) in reference.items():
        if key in seen or not tensor.numel:
            continue
        reason = tally.missed.get(key, ("rule", "not counted"))
        deltas[reason] -= tensor.numel
        layers[reason][tally.missed_at.get(key, path)] -= tensor.numel
    contributions = tuple(
        RuleContribution(
            rule=reason, kind=kind, macs=delta,
            layers=tuple(sorted(((p, v) for p, v in layers[(kind, reason)].items() if v),
                                key=lambda x: (-abs(x[1]), x[0]))[:_LAYERS_KEPT]),
            layer_count=sum(1 for v in layers[(kind, reason)].values() if v),
        )
        for (kind, reason), delta in sorted(deltas.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        if delta
    )
    return total, contributions


__all__ = ["COPIED", "COPY_KEPT", "FORWARDED", "NEVER_CALLED", "PARAM_COUNTERS", "PER_CALL", "PER_NAME", "ParamTally", "called_paths",
           "miss_the_rest",
           "param_counter", "predict_params"]
