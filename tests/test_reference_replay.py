"""Replayed leaf calls (``record(replay_leaves=True)``, the default): a call
of a plain ``torch.nn`` leaf alike to one recorded before runs outside the
dispatch mode and gets that call's operators. The recording must be the same
as one made op by op, for every zoo case, and replay must stay off wherever
something else could see the leaf's forward."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from flopaudit.reference import Category, Cost, count, engine, temporary_formula
from flopaudit.reference.backend_rulesets import backend_rulesets
from flopaudit.reference.engine import Recording, record
from flopaudit.zoo import ModelCase, select_cases


def _record(model: nn.Module, case_inputs: object, replay: bool, no_grad: bool = True,
            patch: tuple[str, ...] = (), module_hooks: bool = False) -> Recording:
    args, kwargs = case_inputs.args, case_inputs.kwargs  # type: ignore[attr-defined]
    with torch.no_grad() if no_grad else torch.enable_grad():
        return record(model, args, kwargs, replay_leaves=replay, patch=patch, module_hooks=module_hooks)


def _prediction_passes() -> dict[tuple[bool, bool], tuple[str, ...]]:
    """The passes the reference adapter records for the backends' rulesets:
    (autograd on, a no-op hook on every module) -> the callables patched."""
    passes: dict[tuple[bool, bool], tuple[str, ...]] = {}
    for r in backend_rulesets().values():
        k = (r.grad_enabled, r.module_hooks)
        passes[k] = tuple(dict.fromkeys((*passes.get(k, ()), *r.patched_functions)))
    return passes


PASSES = _prediction_passes()


def _assert_same(op_by_op: Recording, replayed: Recording) -> None:
    assert [e.op for e in replayed.events] == [e.op for e in op_by_op.events]
    assert replayed.events == op_by_op.events
    assert replayed.calls == op_by_op.calls
    assert replayed.notes == op_by_op.notes


def _replay_cases(full: bool) -> list[ModelCase]:
    """The default zoo and every hard case (default tier), or the full zoo."""
    cases = select_cases(full=True)
    if not full:
        default = {c.id for c in select_cases(full=False)}
        cases = [c for c in cases if c.id in default or "hard" in c.tags]
    return [c for c in cases if "timm" not in c.tags and "transformers" not in c.tags]


def _op_by_op(model: nn.Module, inputs: object) -> Recording:
    """The op-by-op recording of a second pass (a first call may differ:
    torchvision's detection models cache on their first call)."""
    _record(model, inputs, replay=False)
    return _record(model, inputs, replay=False)


@pytest.mark.parametrize("case", _replay_cases(full=False), ids=lambda c: c.id)
def test_replayed_recording_is_the_op_by_op_one(case: ModelCase) -> None:
    model, inputs = case.instantiate()
    op_by_op = _op_by_op(model, inputs)
    first = _record(model, inputs, replay=True)  # learns (and replays repeats within the pass)
    again = _record(model, inputs, replay=True)  # replays every call learnt before
    _assert_same(op_by_op, first)
    _assert_same(op_by_op, again)


def _check_prediction_pass(case: ModelCase, grad_hooks: tuple[bool, bool]) -> None:
    grad, hooks = grad_hooks
    model, inputs = case.instantiate()
    kw = {"no_grad": not grad, "patch": PASSES[grad_hooks], "module_hooks": hooks}
    _record(model, inputs, replay=False, **kw)  # type: ignore[arg-type]
    op_by_op = _record(model, inputs, replay=False, **kw)  # type: ignore[arg-type]
    _record(model, inputs, replay=True, **kw)  # type: ignore[arg-type]
    _assert_same(op_by_op, _record(model, inputs, replay=True, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize("case", _replay_cases(full=False), ids=lambda c: c.id)
@pytest.mark.parametrize("grad_hooks", sorted(PASSES), ids=lambda k: f"grad{int(k[0])}-hooks{int(k[1])}")
def test_replayed_prediction_pass_is_the_op_by_op_one(case: ModelCase, grad_hooks: tuple[bool, bool]) -> None:
    """The passes the reference adapter records for the backends' rulesets
    (autograd on or off, their callables patched, a no-op hook on every
    module or not): replayed leaves keep their ``py:`` events."""
    _check_prediction_pass(case, grad_hooks)


@pytest.mark.parametrize("case", [c for c in _replay_cases(full=False) if c.id in ("resnet18", "mobilenet_v2")],
                         ids=lambda c: c.id)
def test_replay_with_autograd_on_and_in_train_mode(case: ModelCase) -> None:
    model, inputs = case.instantiate()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    op_by_op = _record(model, inputs, replay=False, no_grad=False)
    _record(model, inputs, replay=True, no_grad=False)
    _assert_same(op_by_op, _record(model, inputs, replay=True, no_grad=False))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics put back


@pytest.mark.slow
@pytest.mark.parametrize("case", _replay_cases(full=True), ids=lambda c: c.id)
def test_replayed_recording_is_the_op_by_op_one_full_zoo(case: ModelCase) -> None:
    model, inputs = case.instantiate()
    op_by_op = _op_by_op(model, inputs)
    _record(model, inputs, replay=True)
    _assert_same(op_by_op, _record(model, inputs, replay=True))


@pytest.mark.slow
@pytest.mark.parametrize("case", _replay_cases(full=True), ids=lambda c: c.id)
@pytest.mark.parametrize("grad_hooks", sorted(PASSES), ids=lambda k: f"grad{int(k[0])}-hooks{int(k[1])}")
def test_replayed_prediction_pass_is_the_op_by_op_one_full_zoo(case: ModelCase, grad_hooks: tuple[bool, bool]) -> None:
    _check_prediction_pass(case, grad_hooks)


class Twins(nn.Module):
    """Two convolutions alike (the second is a replay of the first) and one
    with another stride (not alike)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x)))


def _conv_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the modules running when the mode saw a convolution."""
    seen: list[str] = []
    original = engine._Recorder.op_event_keyed

    def spy(self: engine._Recorder, func: object, *args: object) -> None:
        if str(func) == "aten.convolution.default":
            seen.append(self.frames[-1].path)
        original(self, func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine._Recorder, "op_event_keyed", spy)
    return seen


def test_a_leaf_alike_to_one_before_is_not_seen_by_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    engine._TEMPLATES.clear()
    seen = _conv_calls(monkeypatch)
    x = torch.randn(1, 4, 8, 8)
    result = count(Twins(), x)
    assert seen == ["a", "c"]  # b is replayed from a; c has another stride
    assert result.per_module["b"].macs == result.per_module["a"].macs == 4 * 4 * 9 * 64
    assert result.per_module["c"].macs == 4 * 4 * 9 * 16
    seen.clear()
    count(Twins(), x)
    assert seen == []  # all three learnt


def test_no_replay_for_a_module_with_a_hook_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    engine._TEMPLATES.clear()
    seen = _conv_calls(monkeypatch)
    model = Twins()
    handle = model.b.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    try:
        result = count(model, torch.randn(1, 4, 8, 8))
    finally:
        handle.remove()
    assert seen == ["a", "b", "c"]
    assert result.per_module["b"].calls == 2  # the hook's multiply, then the convolution


def test_no_replay_while_another_global_hook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    engine._TEMPLATES.clear()
    count(Twins(), torch.randn(1, 4, 8, 8))  # learns a, c
    seen = _conv_calls(monkeypatch)
    handle = nn.modules.module.register_module_forward_pre_hook(lambda m, args: None)
    try:
        count(Twins(), torch.randn(1, 4, 8, 8))
    finally:
        handle.remove()
    assert seen == ["a", "b", "c"]


def test_no_replay_under_autocast_or_for_meta_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    engine._TEMPLATES.clear()
    count(Twins(), torch.randn(1, 4, 8, 8))
    seen = _conv_calls(monkeypatch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        count(Twins(), torch.randn(1, 4, 8, 8))
    assert seen == ["a", "b", "c"]
    seen.clear()
    with torch.device("meta"):
        model = Twins()
    count(model, torch.randn(1, 4, 8, 8), device="meta")
    assert seen == ["a", "b", "c"]


def test_a_formula_registered_later_is_used_for_replayed_calls() -> None:
    engine._TEMPLATES.clear()
    x = torch.randn(1, 4, 8, 8)
    plain = count(Twins(), x)

    def flat(call: object) -> Cost:
        return Cost(7, 0, Category.CONV)

    with temporary_formula("aten.convolution.default", flat):
        changed = count(Twins(), x)
    assert changed.per_op["aten.convolution.default"].macs == 21
    assert count(Twins(), x).events == plain.events


def test_modules_alike_but_for_an_attribute_are_not_alike() -> None:
    engine._TEMPLATES.clear()
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, dilation=1),
                          nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.Conv2d(4, 4, 3, padding=1, bias=False))
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        op_by_op = record(model, (x,), replay_leaves=False)
        _assert_same(op_by_op, record(model, (x,)))
        _assert_same(op_by_op, record(model, (x,)))
    assert len(engine._TEMPLATES) == 3  # the first two alike; dilation, then the missing bias, tell the others apart


def _change_stride(m: nn.Conv2d) -> None:
    m.stride = (2, 2)


def _change_weight_data(m: nn.Conv2d) -> None:
    m.weight.data = torch.randn(4, 4, 5, 5)  # the same Parameter object and attributes, a 5x5 kernel now


def _swap_bias(m: nn.Conv2d) -> None:
    m.bias = None


def _to_double(m: nn.Conv2d) -> None:
    m.double()  # parameters keep their objects, their dtype changes


def _freeze(m: nn.Conv2d) -> None:
    m.weight.requires_grad_(False)


@pytest.mark.parametrize("change", [_change_stride, _change_weight_data, _swap_bias, _to_double, _freeze],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_module_changed_between_counts_is_recorded_as_it_is_now(change: Any) -> None:
    """The state key of a module counted before is reused only while it is unchanged (_STATE_MEMO)."""
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        record(model, (x,))
        record(model, (x,))  # counted before: its state key comes from the memo
        change(model[0])
        xs = (x.double(),) if change is _to_double else (x,)
        op_by_op = record(model, xs, replay_leaves=False)
        _assert_same(op_by_op, record(model, xs))
        assert engine._state_key(model[0]) == _fresh_state_key(model[0])


def test_a_list_attribute_changed_in_place_is_seen() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1))
    model[0].padding = [1, 1]  # type: ignore[assignment]
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        record(model, (x,))
        record(model, (x,))
        model[0].padding[0] = 0  # type: ignore[index]  # the same list object
        _assert_same(record(model, (x,), replay_leaves=False), record(model, (x,)))
    assert engine._state_key(model[0]) == _fresh_state_key(model[0])


def _fresh_state_key(module: nn.Module) -> Any:
    engine._STATE_MEMO.pop(id(module), None)
    return engine._state_key(module)


def test_no_replay_under_a_torch_function_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    engine._TEMPLATES.clear()
    count(Twins(), torch.randn(1, 4, 8, 8))
    seen = _conv_calls(monkeypatch)
    with torch.device("cpu"):  # a TorchFunctionMode: it could change what a leaf's forward creates
        count(Twins(), torch.randn(1, 4, 8, 8))
    assert seen == ["a", "b", "c"]


def test_clear_caches_makes_the_next_count_a_first_one(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(1, 4, 8, 8)
    count(Twins(), x)
    seen = _conv_calls(monkeypatch)
    engine.clear_caches()
    assert not engine._PRICED and not engine._TEMPLATES
    assert engine.PROCESS_CACHES and not any(engine.PROCESS_CACHES)  # the summaries of count() among them
    count(Twins(), x)
    assert seen == ["a", "c"]


def _summaries(r: Any) -> tuple[Any, ...]:
    return (r.totals, r.per_module, r.per_op, r.per_category, r.unsupported, r.module_calls, r.ruleset)


@pytest.mark.parametrize("ruleset", ["canonical", "torchvision", "thop"])
def test_a_model_counted_again_gets_the_same_records_and_fresh_summaries(ruleset: str) -> None:
    """A recount builds no record anew (_EVENTS_MADE, _CALLS_MADE) and its summaries are
    those of a first count, in dicts of its own (a caller changing one changes no other)."""
    model, x = Twins(), torch.randn(2, 4, 8, 8)
    count(model, x, ruleset=ruleset)  # learns the leaf calls (the next counts replay them)
    first = count(model, x, ruleset=ruleset)
    again = count(model, x, ruleset=ruleset)
    assert all(a is b for a, b in zip(first.events, again.events, strict=True))
    assert all(a is b for a, b in zip(first.module_call_records, again.module_call_records, strict=True))
    first.per_module.clear()
    first.ruleset.per_op.clear()
    engine.clear_caches()
    fresh = count(model, x, ruleset=ruleset)
    assert _summaries(again) == _summaries(fresh)
    assert again.per_module and again.ruleset.per_op


def test_summaries_are_those_of_the_count_at_hand() -> None:
    """Recent summaries are reused only for the very same records, ruleset and batch size."""
    model = Twins()
    small, large = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 16, 16)
    count(model, small)  # learnt: the counts below on ``small`` have the very same records
    results = [count(model, small), count(model, large), count(model, small, ruleset="canonical-macs"),
               count(model, torch.randn(3, 4, 8, 8), ruleset="thop")]  # thop: per sample
    engine.clear_caches()
    for r, (x, rs) in zip(results, [(small, "canonical"), (large, "canonical"), (small, "canonical-macs"),
                                    (torch.randn(3, 4, 8, 8), "thop")]):
        fresh = count(model, x, ruleset=rs)
        engine.clear_caches()
        assert _summaries(r) == _summaries(fresh)
    assert results[1].macs == 4 * results[0].macs
    assert results[2].ruleset.unit == "MAC" and results[2].ruleset.total == results[0].macs


@pytest.mark.parametrize("enabled", [True, False])
def test_a_count_leaves_the_garbage_collector_as_it_was(enabled: bool) -> None:
    import gc

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        count(Twins(), torch.randn(1, 4, 8, 8))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


class GradInside(nn.Module):
    """The same convolution twice: under the caller's grad mode, then with autograd switched on."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        with torch.enable_grad():
            return self.b(y)


def test_a_leaf_run_under_another_grad_mode_is_not_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    engine._TEMPLATES.clear()
    seen = _conv_calls(monkeypatch)
    count(GradInside(), torch.randn(1, 4, 8, 8))  # no_grad outside, enable_grad inside
    assert seen == ["a", "b"]


def test_a_leaf_inside_one_patched_call_is_replayed_with_its_py_event(monkeypatch: pytest.MonkeyPatch) -> None:
    engine._TEMPLATES.clear()
    x = torch.randn(1, 4, 8, 8)
    patch = ("torch.nn.functional.conv2d",)
    with torch.no_grad():  # (with autograd on, b's input requires grad and a's does not: not alike)
        op_by_op = record(Twins(), (x,), patch=patch, replay_leaves=False)
        seen = _conv_calls(monkeypatch)
        first = record(Twins(), (x,), patch=patch)
        again = record(Twins(), (x,), patch=patch)
    assert seen == ["a", "c"]  # b replayed from a, then all three
    assert [e.op for e in again.events] == ["py:torch.nn.functional.conv2d", "aten.convolution.default"] * 3
    _assert_same(op_by_op, first)
    _assert_same(op_by_op, again)


def test_a_leaf_making_two_patched_calls_is_not_learnt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reflect-padded convolution calls F.pad, then F.conv2d: its operators
    are not all inside one patched call made first, so it is recorded op by op."""
    engine._TEMPLATES.clear()
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
                          nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    x = torch.randn(1, 4, 8, 8)
    patch = ("torch.nn.functional.pad", "torch.nn.functional.conv2d")
    with torch.no_grad():
        op_by_op = record(model, (x,), patch=patch, replay_leaves=False)
        seen = _conv_calls(monkeypatch)
        _assert_same(op_by_op, record(model, (x,), patch=patch))
    assert seen == ["0", "1"]
    assert [e.op for e in op_by_op.events if e.op.startswith("py:")] == [
        "py:torch.nn.functional.pad", "py:torch.nn.functional.conv2d"] * 2


def test_summaries_of_a_big_recording_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from flopaudit.reference import api

    monkeypatch.setattr(api, "_SUMMARIES_MAX_RECORDS", 6)
    api._SUMMARIES.clear()
    count(nn.Sequential(nn.Conv2d(4, 4, 3)), torch.randn(1, 4, 8, 8))  # 1 event, 2 calls: kept
    assert len(api._SUMMARIES) == 1
    count(Twins(), torch.randn(1, 4, 8, 8))  # 3 events, 4 calls: too many, and the rest is dropped
    assert not api._SUMMARIES


class Flagged(nn.Module):
    def __init__(self, flag: object) -> None:
        super().__init__()
        self.flag = flag
        self.conv = nn.Conv2d(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_module_calls_equal_but_for_an_attribute_type_keep_their_own_records() -> None:
    """Records are shared by equal calls only (_CALLS_MADE): ``True``, ``1`` and ``1.0`` are equal, not alike."""
    x = torch.randn(1, 4, 8, 8)
    for flag in (True, 1, 1.0, True):
        root = count(Flagged(flag), x).module_call_records[0]
        value = dict(root.attrs)["flag"]
        assert value == flag and type(value) is type(flag)
