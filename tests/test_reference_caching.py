"""The reference counter's process cache never changes an answer.

Every comparison here is between a count with caching on, after an earlier
count has filled the process cache (``clear_caches()`` first, so each side
starts fresh), and the same count with every cache off
(``count(..., cache=False)``, which neither reads nor fills it): on the zoo,
on every hard case, and after adversarial changes made between two counts
that change which operators a module runs. Nothing here reads the engine's
private state.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

from flopaudit.adapters.base import copy_model
from flopaudit.reference import (
    Category,
    Cost,
    ReferenceCount,
    clear_caches,
    count,
    get_ruleset,
    temporary_formula,
)
from flopaudit.reference.backend_rulesets import backend_rulesets
from flopaudit.reference.caching import ENV_VAR, PROCESS_CACHES
from flopaudit.reference.registry import lookup, register_formula, registered, unregister_formula
from flopaudit.zoo import ModelCase, select_cases


def _everything(r: ReferenceCount) -> dict[str, Any]:
    """All a count says: operator list, records, totals, per module/op/category, parameters, notes."""
    return {
        "ops": [e.op for e in r.events],
        "events": r.events,
        "module_calls": r.module_call_records,
        "totals": (r.macs, r.extra_flops, r.flops, r.totals.bytes_read, r.totals.bytes_written, r.totals.calls),
        "per_module": r.per_module,
        "per_op": r.per_op,
        "per_category": r.per_category,
        "unsupported": r.unsupported,
        "module_call_counts": r.module_calls,
        "params": r.params,
        "ruleset": r.ruleset,
        "notes": r.notes,
        "traced": r.traced_custom_ops,
        "pass": r.pass_,
        "phases": r.phases,
    }


def _assert_same(cached: ReferenceCount, uncached: ReferenceCount) -> None:
    a, b = _everything(cached), _everything(uncached)
    assert a["ops"] == b["ops"]  # the readable failure first
    assert a == b


# -- the example, by hand ------------------------------------------

def test_a_monkeypatched_functional_is_seen_by_a_count_after_a_cached_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear(8, 8) then LayerNorm(8) on a 4x8 input, counted twice; then
    ``F.layer_norm`` multiplies its input first (as libraries that swap in
    their own kernels do): the third count has that multiply, a 4x8
    elementwise op of 32 FLOPs, and nothing else changes."""
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8))
    x = torch.randn(4, 8)
    clear_caches()
    count(model, x)
    plain = count(model, x)
    assert [e.op for e in plain.events] == ["aten.t.default", "aten.addmm.default", "aten.native_layer_norm.default"]
    assert plain.macs == 4 * 8 * 8
    original = F.layer_norm
    monkeypatch.setattr(F, "layer_norm", lambda x, *args, **kwargs: original(x * 1.0, *args, **kwargs))
    patched = count(model, x)
    assert [e.op for e in patched.events] == [
        "aten.t.default", "aten.addmm.default", "aten.mul.Tensor", "aten.native_layer_norm.default"]
    mul = patched.events[2]
    assert (mul.macs, mul.extra_flops, mul.module_path) == (0, 4 * 8, "1")
    assert patched.flops == plain.flops + 4 * 8
    _assert_same(patched, count(model, x, cache=False))


# -- adversarial changes between two counts ---------------------------------

class Net(nn.Module):
    """Modules whose operators a change between counts can alter: a
    convolution, batch norm, ReLU, pooling, flatten, linear, layer norm, a
    functional GELU, and a branch on a buffer's value."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(32, 8)
        self.norm = nn.LayerNorm(8)
        self.register_buffer("gate", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        x = self.norm(self.fc(self.flat(self.pool(x))))
        if bool(self.gate):  # the buffer's value decides the path
            x = x.exp()
        return F.gelu(x)


@dataclass(frozen=True)
class Change:
    """A change made to a counted model (or around its count) between two counts."""

    name: str
    apply: Callable[[Net], contextlib.AbstractContextManager[Any]]
    """A context manager that makes the change and undoes it on exit; it may
    yield keyword arguments for the count (``inputs``, ``no_grad``)."""
    changes_count: bool = True
    """Whether it changes what this model's count says (else it only must not break the cache)."""


@contextlib.contextmanager
def _attribute(owner: Any, name: str, value: Any) -> Iterator[None]:
    had = name in vars(owner)
    old = vars(owner).get(name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)


@contextlib.contextmanager
def _patch_functional(model: Net) -> Iterator[None]:
    original = F.layer_norm
    with _attribute(F, "layer_norm", lambda x, *args, **kwargs: original(x * 1.0, *args, **kwargs)):
        yield


@contextlib.contextmanager
def _patch_torch(model: Net) -> Iterator[None]:
    original = torch.relu  # what F.relu (so nn.ReLU) calls
    with _attribute(torch, "relu", lambda x: original(x).clone()):
        yield


@contextlib.contextmanager
def _forward_of_instance(model: Net) -> Iterator[None]:
    with _attribute(model.act, "forward", torch.sigmoid):
        yield


@contextlib.contextmanager
def _forward_of_class(model: Net) -> Iterator[None]:
    with _attribute(nn.ReLU, "forward", lambda self, x: torch.tanh(x)):
        yield


def _forward_hook(model: Net) -> contextlib.AbstractContextManager[Any]:
    return model.fc.register_forward_hook(lambda module, args, out: out * 2)  # a handle removes it on exit


def _global_pre_hook(model: Net) -> contextlib.AbstractContextManager[Any]:
    return register_module_forward_pre_hook(
        lambda module, args: (args[0] + 1,) if isinstance(module, nn.Linear) else None)


@contextlib.contextmanager
def _buffer_in_place(model: Net) -> Iterator[None]:
    model.gate.fill_(1.0)
    try:
        yield
    finally:
        model.gate.fill_(0.0)


class _LinearTwice(TorchFunctionMode):
    """Doubles what ``F.linear`` returns."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        return out * 2 if func is F.linear else out


@contextlib.contextmanager
def _function_mode(model: Net) -> Iterator[None]:
    with _LinearTwice():
        yield


@contextlib.contextmanager
def _autocast(model: Net) -> Iterator[None]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield


@contextlib.contextmanager
def _stride(model: Net) -> Iterator[None]:
    with _attribute(model.conv, "stride", (2, 2)):
        yield


@contextlib.contextmanager
def _weight_shape(model: Net) -> Iterator[None]:
    """The same Parameter object and attributes, a 5x5 kernel now (padding 1: a smaller output)."""
    weight = model.conv.weight
    old = weight.data
    weight.data = torch.randn(8, 3, 5, 5)
    try:
        yield {"inputs": torch.randn(2, 3, 10, 10)}  # pooled to 2x2 all the same
    finally:
        weight.data = old


class _Logged(torch.Tensor):
    """A tensor subclass whose ``__torch_function__`` adds a clone to every ``F.gelu``."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = super().__torch_function__(func, types, args, kwargs)
        return out.clone() if func is F.gelu else out


@contextlib.contextmanager
def _subclass_input(model: Net) -> Iterator[dict[str, Any]]:
    yield {"inputs": torch.randn(2, 3, 8, 8).as_subclass(_Logged)}


@contextlib.contextmanager
def _channels_last(model: Net) -> Iterator[dict[str, Any]]:
    yield {"inputs": torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)}


@contextlib.contextmanager
def _non_contiguous(model: Net) -> Iterator[dict[str, Any]]:
    yield {"inputs": torch.randn(2, 3, 8, 16)[..., ::2]}


@contextlib.contextmanager
def _grad_on(model: Net) -> Iterator[dict[str, Any]]:
    yield {"no_grad": False}


@contextlib.contextmanager
def _train_mode(model: Net) -> Iterator[None]:
    model.train()
    try:
        yield
    finally:
        model.eval()


@contextlib.contextmanager
def _double(model: Net) -> Iterator[dict[str, Any]]:
    model.double()
    try:
        yield {"inputs": torch.randn(2, 3, 8, 8, dtype=torch.float64)}
    finally:
        model.float()


def _doubled_convolution(call: Any) -> Cost:
    """A convolution formula: twice the MACs of the built-in one."""
    built_in = lookup(torch.ops.aten.convolution.default)
    assert built_in is not None
    cost = built_in(call)
    return Cost(2 * cost.macs, cost.extra_flops, cost.category)


@contextlib.contextmanager
def _formula_replaced(model: Net) -> Iterator[None]:
    with temporary_formula("aten.convolution.default", _doubled_convolution):
        yield


@contextlib.contextmanager
def _formula_removed(model: Net) -> Iterator[None]:
    """GELU left without a formula (an unsupported operator), its own formula put back on exit."""
    gelu = torch.ops.aten.gelu.default
    fn = lookup(gelu)
    keys = [k for k, f in registered().items() if f is fn and k in (str(gelu), str(gelu._overloadpacket))]
    assert fn is not None and keys
    unregister_formula(*keys)
    try:
        yield
    finally:
        register_formula(*keys)(fn)


CHANGES = [
    Change("formula replaced", _formula_replaced),
    Change("formula removed", _formula_removed),
    Change("F.layer_norm monkeypatched", _patch_functional),
    Change("torch.relu monkeypatched", _patch_torch),
    Change("forward swapped on an instance", _forward_of_instance),
    Change("forward swapped on the class", _forward_of_class),
    Change("forward hook added", _forward_hook),
    Change("global forward pre-hook added", _global_pre_hook),
    Change("buffer changed in place", _buffer_in_place),
    Change("TorchFunctionMode entered", _function_mode),
    Change("autocast cpu bfloat16", _autocast),
    Change("module attribute changed", _stride),
    Change("parameter data of another shape", _weight_shape),
    Change("tensor subclass input with __torch_function__", _subclass_input),
    Change("channels-last input", _channels_last),
    Change("non-contiguous input", _non_contiguous, changes_count=False),
    Change("autograd on", _grad_on),
    Change("train mode", _train_mode),
    Change("float64", _double),
]


def _count_around(model: Net, change: Change, cache: bool) -> tuple[ReferenceCount, ReferenceCount]:
    """(the count before the change, the count with the change made), both with ``cache``."""
    x = torch.randn(2, 3, 8, 8)
    before = count(model, x, cache=cache)
    with change.apply(model) as overrides:
        overrides = dict(overrides) if isinstance(overrides, dict) else {}  # a hook handle enters as itself
        inputs = overrides.pop("inputs", x)
        after = count(model, inputs, cache=cache, **overrides)
    return before, after


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.name)
def test_a_change_between_counts_is_counted_the_same_with_caching_on_and_off(change: Change) -> None:
    torch.manual_seed(0)
    cached_model, uncached_model = Net().eval(), Net().eval()
    clear_caches()
    count(cached_model, torch.randn(2, 3, 8, 8))  # the process cache is filled by a count before
    cached_before, cached = _count_around(cached_model, change, cache=True)
    uncached_before, uncached = _count_around(uncached_model, change, cache=False)
    _assert_same(cached_before, uncached_before)
    _assert_same(cached, uncached)
    if change.changes_count:
        assert _everything(cached) != _everything(cached_before)  # the change does change the count


# -- the zoo and the hard cases ---------------------------------------------

def _prediction_passes() -> list[dict[str, Any]]:
    """The passes the reference adapter records for the backends' rulesets
    (autograd on or off, their callables patched, a no-op hook on every module or the root's children)."""
    passes: dict[tuple[bool, bool | str], tuple[str, ...]] = {}
    for r in backend_rulesets().values():
        k = (r.grad_enabled, r.module_hooks)
        passes[k] = tuple(dict.fromkeys((*passes.get(k, ()), *r.patched_functions)))
    return [{"no_grad": not grad, "module_hooks": hooks, "patch": patch} for (grad, hooks), patch in
            sorted(passes.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))]


PASSES = _prediction_passes()


def _cases(full: bool) -> list[ModelCase]:
    """The light models of the default zoo and every hard case (default tier:
    the zoo's bigger models are counted by other default-tier tests already), or the full zoo."""
    cases = select_cases(full=True)
    if not full:
        default = {c.id for c in select_cases(full=False)}
        cases = [c for c in cases if (c.id in default and "light" in c.tags) or "hard" in c.tags]
    return [c for c in cases if "timm" not in c.tags and "transformers" not in c.tags]


def _check_case(case: ModelCase, passes: list[dict[str, Any]]) -> None:
    model, inputs = case.instantiate()
    for how in passes:
        clear_caches()
        # Each side counts its own copy of the model as built, twice: a model's first call may run more
        # than its later ones (torchvision's MultiScaleRoIAlign sets its scales up on its first call; a
        # lazy module is materialised by it), so first calls are compared with first calls; each count
        # from its own copy of the inputs (a decode step appends to the cache it is given).
        counted = copy_model(model)
        cached = [count(counted, inputs.fresh(), cache=True, **how) for _ in range(2)]
        counted = copy_model(model)
        uncached = [count(counted, inputs.fresh(), cache=False, **how) for _ in range(2)]
        _assert_same(cached[0], uncached[0])
        _assert_same(cached[1], uncached[1])


@pytest.mark.parametrize("case", _cases(full=False), ids=lambda c: c.id)
def test_zoo_counts_the_same_with_caching_on_and_off(case: ModelCase) -> None:
    """The canonical pass of the default zoo and of every hard case; every
    prediction pass of the hard cases (patched callables, hooks, autograd)."""
    _check_case(case, [{}] + (PASSES if "hard" in case.tags else []))


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases(full=True), ids=lambda c: c.id)
def test_full_zoo_counts_the_same_with_caching_on_and_off(case: ModelCase) -> None:
    _check_case(case, [{}] + PASSES)


# -- training steps ----------------------------------------------------------

TRAIN = {"pass_": "train", "optimizer": "adam"}


class CheckpointedNet(nn.Module):
    """Net's layers with the convolution block under activation checkpointing:
    a backward that recomputes part of the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = torch.utils.checkpoint.checkpoint(lambda t: net.act(net.bn(net.conv(t))), x, use_reentrant=False)
        return F.gelu(net.norm(net.fc(net.flat(net.pool(x)))))


@pytest.mark.parametrize("make", [lambda: Net().train(), lambda: Net().eval(), lambda: CheckpointedNet().train()],
                         ids=["train-mode", "eval-mode", "checkpointed"])
def test_a_training_step_counts_the_same_with_caching_on_and_off(make: Callable[[], nn.Module]) -> None:
    torch.manual_seed(0)
    model, x = make(), torch.randn(2, 3, 8, 8)
    clear_caches()
    count(model, x, **TRAIN)  # the process cache is filled by a count before
    cached = count(model, x, **TRAIN)
    uncached = count(model, x, cache=False, **TRAIN)
    assert cached.phases["backward"].total.macs > 0
    _assert_same(cached, uncached)


@pytest.mark.parametrize("case", [c for c in _cases(full=False) if "hard" in c.tags], ids=lambda c: c.id)
def test_hard_cases_train_the_same_with_caching_on_and_off(case: ModelCase) -> None:
    """A training step (with an Adam step) of every hard case, after an inference count of it."""
    model, inputs = case.instantiate()
    clear_caches()
    count(model, inputs.fresh())
    outcomes = []
    for cache in (True, True, False, False):
        try:
            outcomes.append(_everything(count(model, inputs.fresh(), cache=cache, **TRAIN)))
        except Exception as exc:  # noqa: BLE001 - a model that cannot train fails the same way each time
            outcomes.append({"error": f"{type(exc).__name__}: {exc}"})
    assert outcomes[0] == outcomes[2] and outcomes[1] == outcomes[3]


# -- the switch ---------------------------------------------------------------

@contextlib.contextmanager
def _counted_convolution_formula() -> Iterator[list[int]]:
    """A convolution formula that counts its calls (9 MACs per output element)."""
    calls: list[int] = []

    def formula(call: Any) -> Cost:
        calls.append(1)
        return Cost(9 * int(torch.Size(call.outputs[0]).numel()), 0, Category.CONV)

    with temporary_formula("aten.convolution.default", formula):
        yield calls


def _conv() -> tuple[nn.Module, torch.Tensor]:
    return nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False)), torch.randn(1, 1, 4, 4)


def test_a_call_priced_before_is_not_priced_again_unless_caching_is_off() -> None:
    model, x = _conv()
    with _counted_convolution_formula() as calls:
        first = count(model, x)
        count(model, x)
        assert len(calls) == 1  # priced once in the process
        off = count(model, x, cache=False)
        assert len(calls) == 2
        clear_caches()
        count(model, x)
        assert len(calls) == 3
    assert first.macs == off.macs == 9 * 16


class _SameTensorTwice(nn.Module):
    """Three ``addcmul`` calls of one signature but for which arguments are one tensor
    (as ``exp_avg_sq.addcmul_(grad, grad)`` in every Adam step)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.addcmul(x, y, y), torch.addcmul(x, x, y), torch.addcmul(x, y, x + 1)


def test_a_tensor_passed_twice_is_priced_once_per_process_and_its_bytes_once() -> None:
    model, x, y = _SameTensorTwice(), torch.randn(4, 8), torch.randn(4, 8)
    priced: list[int] = []

    def formula(call: Any) -> Cost:
        priced.append(1)
        return Cost(0, int(torch.Size(call.outputs[0]).numel()), Category.ELEMENTWISE)

    clear_caches()
    with temporary_formula("aten.addcmul.default", formula):
        first = count(model, (x, y))
        again = count(model, (x, y))
        assert len(priced) == 3  # one pricing per aliasing of the arguments, none the second time
        off = count(model, (x, y), cache=False)
    _assert_same(first, off)
    _assert_same(again, off)
    read = [e.bytes_read for e in again.events if e.op == "aten.addcmul.default"]
    assert read == [2 * 32 * 4, 2 * 32 * 4, 3 * 32 * 4]


def test_the_environment_variable_turns_caching_off_and_the_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = _conv()
    with _counted_convolution_formula() as calls:
        monkeypatch.setenv(ENV_VAR, "0")
        count(model, x)
        count(model, x)
        assert len(calls) == 2
        count(model, x, cache=True)
        count(model, x, cache=True)
        assert len(calls) == 3
        monkeypatch.setenv(ENV_VAR, "1")
        count(model, x)
        assert len(calls) == 3


def test_a_count_with_caching_off_leaves_every_process_cache_empty() -> None:
    clear_caches()
    count(Net().eval(), torch.randn(2, 3, 8, 8), cache=False)
    count(*_conv(), ruleset=get_ruleset("thop"), cache=False)
    assert PROCESS_CACHES and not any(PROCESS_CACHES)
    count(Net().eval(), torch.randn(2, 3, 8, 8))
    assert any(PROCESS_CACHES)
    clear_caches()
    assert not any(PROCESS_CACHES)
