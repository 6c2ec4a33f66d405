"""What real models do to counters, case by case: each behaviour of the
``realworld`` hard cases is predicted by the backend's ruleset or booked to a
named cause with the MACs it accounts for (numbers worked out by hand from
the cases' shapes), and a backend that cannot run the model fails with an
error raised in its own code, never in flopaudit's.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
import torch
from torch import nn

import flopaudit
from flopaudit.adapters import backend_names, get_adapter, get_backend
from flopaudit.adapters.base import copy_model, has_lazy_tensors
from flopaudit.commands.explain import format_explanation
from flopaudit.isolation import fingerprint, fingerprint_diff
from flopaudit.reference.liveness import REASON as TRACE_DROPS
from flopaudit.reports import build_report
from flopaudit.reports.model import CellExplanation, Report
from flopaudit.run import audit_model, run_audit
from flopaudit.zoo import get_case, select_cases
from flopaudit.zoo.hard import realworld

REALWORLD = [c.id for c in realworld.cases()]
PACKAGES = {name: get_backend(name).module.split(".")[0] for name in backend_names()}
"""Backend -> the top-level package its own code lives in (torch's for torch's counters)."""
BASE = ("thop", "ptflops-pytorch", "ptflops-aten", "fvcore", "torchinfo", "torch-flop-counter")


@cache
def _report(*case_ids: str) -> Report:
    return build_report(run_audit([get_case(c) for c in case_ids], isolate=False))


def _cell(report: Report, model: str, backend: str) -> CellExplanation:
    cell = report.cell(model, backend)
    assert cell is not None and cell.status == "ok", cell
    return cell


def _cause(cell: CellExplanation, text: str) -> int:
    found = [c for c in cell.causes if text in c.rule]
    assert len(found) == 1, format_explanation(cell)
    return found[0].macs


def test_every_realworld_cell_is_explained_or_a_backend_failure() -> None:
    report = _report(*REALWORLD)
    assert {c.model for c in report.cells} == set(REALWORLD)
    for cell in report.cells:
        if cell.status == "not applicable":  # the backend's adapter declines this model's inputs
            continue
        if cell.status != "ok":
            # a backend's own failure: the error names where in its package it was raised
            assert f"(raised in {PACKAGES[cell.backend]}." in (cell.error or ""), cell
            continue
        assert cell.classification != "unexplained", format_explanation(cell)
        if cell.difference is None:  # a backend that counts no MACs: compared on parameters
            assert cell.params is not None and cell.params.residual == 0, format_explanation(cell)
            continue
        assert cell.residual == 0 and cell.difference == sum(c.macs for c in cell.causes), format_explanation(cell)


def test_backends_that_switch_to_eval_skip_the_train_only_head() -> None:
    report = _report("train-aux-head")
    aux = 4 * 32 * 10  # Linear(32, 10) on (4, 32): runs in train mode only
    for backend in ("thop", "ptflops-pytorch", "ptflops-aten"):
        cell = _cell(report, "train-aux-head", backend)
        assert _cause(cell, "calls model.eval() itself") == -aux
    for backend in ("fvcore", "torchinfo", "torch-flop-counter"):  # they run the model in the mode it is in
        assert not any("model.eval()" in c.rule for c in _cell(report, "train-aux-head", backend).causes)


def test_pruned_weights_counted_by_the_mask_in_torchinfo_only() -> None:
    case = get_case("pruned-conv-linear")
    model, inputs = case.instantiate()
    before = fingerprint(model)
    frame = flopaudit.audit(model, inputs, isolate=False)
    assert fingerprint(model) == before
    assert set(frame[frame["backend"].isin(BASE)]["status"]) == {"ok"}
    conv_zeros = int((model[0].weight_mask == 0).sum())
    linear_zeros = int((model[3].weight_mask == 0).sum())
    assert conv_zeros == 8 * 3 * 3 * 3 // 2 and linear_zeros == 288 * 10 // 2  # amount=0.5
    report = _report("pruned-conv-linear")
    # torchinfo: a conv weight element counts N x output positions, a linear one N (batch 2, 6x6 outputs)
    masked = -(conv_zeros * 2 * 6 * 6 + linear_zeros * 2)
    assert _cause(_cell(report, "pruned-conv-linear", "torchinfo"), "mask's ones") == masked
    for backend in ("thop", "fvcore", "torch-flop-counter"):  # they count the dense weights as they run
        assert _cell(report, "pruned-conv-linear", backend).difference == 0


def test_an_uninitialised_lazy_model_is_left_uninitialised() -> None:
    model = realworld._lazy()
    x = torch.randn(2, 8)
    run = audit_model(model, x, isolate=False)
    assert has_lazy_tensors(model)  # no backend materialised the user's model
    report = build_report(run)
    thop = _cell(report, "model", "thop")
    assert _cause(thop, "lazy module") == -2 * 8 * 16  # hooks registered while it was LazyLinear: counted 0
    assert _cell(report, "model", "fvcore").difference == 0
    for backend in ("ptflops-pytorch", "ptflops-aten"):  # ptflops itself fails on a lazy model
        cell = report.cell("model", backend)
        assert cell is not None and cell.status == "error" and "(raised in ptflops." in (cell.error or "")


def test_keywords_named_like_a_counters_parameters_reach_the_model() -> None:
    report = _report("kwargs-clashing-names")
    cell = _cell(report, "kwargs-clashing-names", "torchinfo")
    # torchinfo: each Linear(16, 16) call counts batch 4 x (weights + bias)
    assert cell.backend_macs == 6 * 4 * (16 * 16 + 16)


def test_thop_prices_a_packed_sequence_as_its_padded_batch() -> None:
    report = _report("lstm-packed-sequence")
    cell = _cell(report, "lstm-packed-sequence", "thop")
    # thop's LSTM cell: 4 gates x ((I + H) x H + H + 2H bias) + 3H + H, for 10 steps x 3 sequences
    per_step = 4 * ((8 + 16) * 16 + 16 + 2 * 16) + 3 * 16 + 16
    assert cell.backend_macs == cell.predicted_macs == 10 * 3 * per_step


def test_fvcore_drops_work_its_trace_does_not_keep() -> None:
    report = _report("discarded-output", "returns-none", "returns-numbers")
    assert _cause(_cell(report, "discarded-output", "fvcore"), TRACE_DROPS) == -(4 * 16 * 16)
    for model in ("returns-none", "returns-numbers"):
        cell = _cell(report, model, "fvcore")
        assert cell.backend_macs == 0 and _cause(cell, TRACE_DROPS) == -(4 * 16 * 16)
    for backend in ("thop", "torch-flop-counter"):  # eager counters see the discarded work
        assert not any(TRACE_DROPS in c.rule for c in _cell(report, "discarded-output", backend).causes)


def test_a_trace_drops_weights_fused_in_the_forward_through_data() -> None:
    # fused-in-forward writes its fused weight into a parameter through .data: a trace reads the
    # parameter as the pass began (a graph input), so the fusion's convolution feeds nothing it keeps
    report = _report("fused-in-forward")
    fusion = 4 * 4 * 9 * 8
    for backend in ("fvcore", "torchprofile"):
        cell = _cell(report, "fused-in-forward", backend)
        assert _cause(cell, TRACE_DROPS) == -fusion and cell.residual == 0, format_explanation(cell)
    assert _cell(report, "fused-in-forward", "torch-flop-counter").difference == 0


def test_fvcore_sees_a_scripted_function_as_one_opaque_call() -> None:
    cell = _cell(_report("scripted-function"), "scripted-function", "fvcore")
    assert _cause(cell, "TorchScript function") == -(2 * 8 * 16 + 2 * 16 * 4)


def test_scripted_module_fails_only_in_the_counters_that_hook_it() -> None:
    report = _report("scripted-module")
    for backend in ("thop", "ptflops-pytorch", "ptflops-aten", "fvcore"):
        cell = report.cell("scripted-module", backend)
        assert cell is not None and cell.status == "error", cell
    assert _cell(report, "scripted-module", "torch-flop-counter").difference == 0
    assert _cell(report, "scripted-module", "torchinfo").residual == 0


def test_fvcore_prices_sdpa_zero_whatever_kernel_runs() -> None:
    cell = _cell(_report("sdpa-learned-float-mask"), "sdpa-learned-float-mask", "fvcore")
    # scores and weighted sum: 2 x (batch 2 x heads 4 x 6 x 6 x head width 4), decomposed with autograd on
    assert _cause(cell, "scaled_dot_product_attention") == -2 * (2 * 4 * 6 * 6 * 4)


def test_ptflops_timm_attention_hook_drops_the_projections() -> None:
    pytest.importorskip("timm")
    cell = _cell(_report("timm-attention-block"), "timm-attention-block", "ptflops-pytorch")
    # ptflops' hook: q scaling N*d*h + h*(2*N^2*d + N^2), times batch 2; qkv and proj are not summed
    hook = 2 * (10 * 8 * 4 + 4 * (2 * 10 * 10 * 8 + 10 * 10))
    assert cell.backend_macs == cell.predicted_macs == hook
    assert _cause(cell, "timm Attention") == hook - cell.reference_macs


def test_copy_model_copies_what_deepcopy_refuses() -> None:
    pruned = realworld._pruned()
    normed = nn.utils.weight_norm(nn.Linear(4, 4))
    scripted = realworld.CallsScriptedFunction()
    for model, x in ((pruned, torch.randn(2, 3, 8, 8)), (normed, torch.randn(2, 4)), (scripted, torch.randn(2, 8))):
        with pytest.raises(Exception, match="deepcopy|pickle"):
            copy.deepcopy(model)
        twin = copy_model(model)
        assert torch.equal(twin(x), model(x))
    assert copy_model(scripted).mlp is scripted.mlp
    keeps = realworld.KeepsActivations()
    x = torch.randn(4, 16)
    keeps(x)  # autograd on: the list attribute now holds non-leaf tensors
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(keeps)
    twin = copy_model(keeps)
    assert not any(t.requires_grad and not t.is_leaf for t in twin.pyramid)
    assert torch.equal(twin(x), keeps(x))
    policy = realworld.KeepsDistribution()
    x = torch.randn(4, 8)
    policy(x)  # autograd on: the distribution held in a plain object's attribute holds non-leaf tensors
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(policy)
    twin = copy_model(policy)
    assert twin.action_dist.distribution.logits.is_leaf
    assert torch.equal(twin(x), policy(x))
    cached = realworld.CopyDroppedCache()
    assert copy.deepcopy(cached).cache is None  # its cache refuses to be copied
    assert copy_model(cached).cache is cached.cache  # the copy runs with it, as the model does
    mup = realworld.ParameterAttributes()
    assert not hasattr(copy.deepcopy(mup).readout.weight, "infshape")  # torch's Parameter.__deepcopy__ drops it
    twin = copy_model(mup)
    assert twin.readout.weight.infshape.width_mult() == 4 and twin.readout.weight.infshape is not \
        mup.readout.weight.infshape
    x = torch.randn(4, 16)
    assert torch.equal(twin(x), mup(x))
    hooked = realworld.HookAdapter()
    twin = copy_model(hooked)
    hooked.up.weight.data.zero_()  # the model's adapter off: the copy's hook must run the copy's own
    assert not torch.equal(twin(x), hooked(x))
    twin.up.weight.data.zero_()
    assert torch.equal(twin(x), hooked(x))


class _Packed(torch.Tensor):
    """A quantized weight as a wrapper subclass (int8 data and a scale, as optimum-quanto's): its
    ``clone`` gives a plain tensor, so ``copy.deepcopy`` refuses it."""

    @staticmethod
    def __new__(cls, data: torch.Tensor, scale: float) -> "_Packed":
        return torch.Tensor._make_wrapper_subclass(cls, data.shape, dtype=torch.float32)  # type: ignore[return-value]

    def __init__(self, data: torch.Tensor, scale: float) -> None:
        self.packed, self.scale = data, scale

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        from torch.utils._pytree import tree_map

        if func is torch.ops.aten.detach.default:
            return _Packed(args[0].packed, args[0].scale)
        unpacked = tree_map(lambda t: t.packed.float() * t.scale if isinstance(t, _Packed) else t, (args, kwargs or {}))
        return func(*unpacked[0], **unpacked[1])


def test_copy_model_shares_what_cannot_be_copied() -> None:
    quantized = nn.Linear(4, 3)
    quantized.weight = nn.Parameter(_Packed(torch.randint(-8, 8, (3, 4), dtype=torch.int8), 0.1), requires_grad=False)
    locked = realworld.HoldsUncopyables()
    for model, x in ((quantized, torch.randn(2, 4)), (locked, torch.randn(2, 8))):
        with pytest.raises((TypeError, RuntimeError), match="deepcopy|pickle"):
            copy.deepcopy(model)
        twin = copy_model(model)
        assert torch.equal(twin(x), model(x))
    assert copy_model(quantized).weight is quantized.weight and copy_model(quantized).bias is not quantized.bias
    twin = copy_model(locked)
    assert twin.lock is locked.lock and twin.maths is locked.maths and twin.fc is not locked.fc


class _RefusesCopies(nn.Linear):
    """A layer whose class refuses ``deepcopy``, as ``fully_shard`` (FSDP2) makes every module it wraps."""

    def __deepcopy__(self, memo: dict[int, object]) -> None:
        raise AssertionError("FSDP does not support deepcopy. Please use state dict for serialization.")


def test_a_model_that_refuses_copies_is_not_applicable_to_copying_counters_and_counted_by_the_reference() -> None:
    from flopaudit.adapters import get_adapter
    from flopaudit.records import Status

    model = nn.Sequential(nn.Linear(4, 8), _RefusesCopies(8, 2))
    x = torch.randn(3, 4)
    thop = get_adapter("thop").count(model, x)
    assert thop.status is Status.NOT_APPLICABLE, thop.error
    assert "refuses to be copied: _RefusesCopies (1) has a __deepcopy__ that raises (AssertionError: FSDP" in thop.error
    reference = get_adapter("reference").count(model, x)
    assert reference.status is Status.OK and reference.macs == 3 * 4 * 8 + 3 * 8 * 2


class _Handle:
    """An object deepcopy refuses (it holds a lock) that holds a layer's own weight, as
    FullyShardedDataParallel's flat-parameter handle holds its flat parameter."""

    def __init__(self, weight: torch.Tensor) -> None:
        import threading

        self.lock, self.weight = threading.Lock(), weight


def test_a_model_whose_uncopyable_attribute_holds_its_own_weights_is_not_shared_with_a_copy() -> None:
    from flopaudit.adapters import get_adapter
    from flopaudit.records import Status

    model = nn.Linear(4, 2)
    model.handle = _Handle(model.weight)
    thop = get_adapter("thop").count(model, torch.randn(3, 4))
    assert thop.status is Status.NOT_APPLICABLE, thop.error
    assert "_Handle (<root>.handle) refuses copy.deepcopy and holds the model's own parameters" in thop.error
    model.handle = _Handle(torch.ones(1))  # holds nothing of the model's: shared, and the copy is counted
    assert get_adapter("thop").count(model, torch.randn(3, 4)).macs == 3 * 4 * 2


def test_copy_model_keeps_every_module_in_its_mode() -> None:
    from flopaudit.zoo.hard.structure import exported_program, feature_extractor

    extractor = feature_extractor()  # eval, and copy.deepcopy returns it in train mode with its train graph
    assert copy.deepcopy(extractor).training
    x = torch.randn(2, 3, 8, 8)
    twin = copy_model(extractor)
    assert not any(m.training for m in twin.modules()) and twin.graph is twin.eval_graph
    assert all(torch.equal(a, b) for a, b in zip(twin(x).values(), extractor(x).values()))
    mixed = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(4))).train()
    mixed[1].eval()
    mixed[1][0].train()
    twin = copy_model(mixed)
    assert [m.training for m in twin.modules()] == [m.training for m in mixed.modules()]
    exported = exported_program()  # refuses train()/eval(): its flag is set
    exported.training = False
    assert not copy_model(exported).training


def test_fingerprint_of_a_lazy_model_names_what_was_materialised() -> None:
    model = realworld._lazy()
    before = fingerprint(model, exact=False)
    assert before.uninitialized == ("0.weight", "0.bias")
    model(torch.randn(2, 8))
    changes = fingerprint_diff(before, fingerprint(model, exact=False))
    # materialising also removes the lazy module's own initialisation hooks
    assert changes == ["materialised lazy parameters: 0.weight, 0.bias",
                       "removed hooks from: 0.forward_pre_hooks, 0.load_state_dict_pre_hooks"]


class _Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("model bug")


def test_an_error_says_whose_code_raised_it(monkeypatch: pytest.MonkeyPatch) -> None:
    r = get_adapter("fvcore").count(_Broken(), torch.randn(2))
    assert r.status.value == "error" and r.error.endswith(f"(raised in {__name__}, line {_Broken.forward.__code__.co_firstlineno + 1})")

    def broken_count(model: nn.Module, inputs: object) -> None:
        raise KeyError("adapter bug")

    adapter = get_adapter("torchinfo")
    monkeypatch.setattr(adapter, "_count", broken_count)
    assert f"(raised in {__name__}, line" in (adapter.count(nn.Linear(2, 2), torch.randn(2)).error or "")
    r = get_adapter("reference").count(nn.Linear(3, 2), torch.randn(2))  # a shape the model rejects
    assert r.status.value == "error" and "(raised in torch.nn.modules.linear, line" in (r.error or "")


def test_an_array_numpy_refuses_is_its_callers_failure() -> None:
    import numpy as np

    from flopaudit.adapters.base import raised_in

    def caller() -> None:
        np.prod([(8, 8, 8), (4,)])  # ragged: numpy raises deep in its own code

    with pytest.raises(ValueError) as caught:
        caller()
    assert raised_in(caught.value) == f" (raised in {__name__}, line {caller.__code__.co_firstlineno + 1})"


class _PrintsATensor(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f"cannot use this tensor:\n{torch.ones(30, 30)}")  # 900 elements: printed whole


def test_an_error_that_prints_a_tensor_is_cut_short() -> None:
    from flopaudit.adapters.base import ERROR_CHARS

    r = get_adapter("thop").count(_PrintsATensor(), torch.randn(2))
    assert r.status.value == "error" and r.error.startswith("RuntimeError: cannot use this tensor: (raised in ")
    assert ")\ntensor([" in r.error and r.error.endswith(" more characters)") and len(r.error) < ERROR_CHARS + 200


def test_every_count_starts_from_the_inputs_as_given() -> None:
    """The decode step appends to the cache it is given: every backend's count, and every
    pass the reference records to predict one, attends over the 31 tokens the cache was
    built with, whatever ran before; the caller's cache is left as it was."""
    model, inputs = get_case("kv-cache-decode").instantiate()
    cache = inputs.args[1]
    keys = cache.keys
    macs = [get_adapter(b).count(model, inputs).macs for b in ("reference", "ptflops-aten", "reference", "fvcore")]
    assert macs == [4 * 16 * 16 + 2 * 32 * 16] * 4
    assert cache.keys is keys and tuple(keys.shape) == (1, 31, 16)
    report = _report("kv-cache-decode")
    for backend in ("deepspeed", "torch-flop-counter", "torchprofile", "thop"):
        cell = _cell(report, "kv-cache-decode", backend)
        assert cell.residual == 0 and cell.classification != "unexplained", format_explanation(cell)


def test_fresh_inputs_are_a_copy_the_model_may_change() -> None:
    from flopaudit.inputs import ModelInputs

    leaf = torch.randn(2, 3, requires_grad=True)
    made = leaf * 2  # made by autograd: copy.deepcopy refuses it
    cache = realworld.KVCache(made, torch.randn(2, 3))
    inputs = ModelInputs((leaf, leaf, cache), {"mask": torch.ones(2)})
    a, b, c = (fresh := inputs.fresh()).args
    assert a is b and a is not leaf and torch.equal(a, leaf) and a.requires_grad  # passed twice: still one tensor
    assert c is not cache and c.keys is not made and torch.equal(c.keys, made)
    assert c.keys.is_leaf and c.keys.requires_grad and c.values is not cache.values
    assert fresh.kwargs["mask"] is not inputs.kwargs["mask"] and torch.equal(fresh.kwargs["mask"], inputs.kwargs["mask"])

    class Refuses:
        def __deepcopy__(self, memo: object) -> None:
            raise TypeError("not copyable")

    odd = ModelInputs((torch.ones(1), Refuses()))
    assert odd.fresh() is odd  # shared, as given


def test_inputs_moved_to_meta_keep_their_containers() -> None:
    import collections
    import dataclasses

    from flopaudit.inputs import ModelInputs

    @dataclasses.dataclass
    class Batch:
        image: torch.Tensor
        size: int = 8

    class Records(collections.UserDict):  # a Mapping that is no dict (transformers' BatchEncoding)
        pass

    Pair = collections.namedtuple("Pair", "left right")
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(3, 4, 2), [4, 3, 2], batch_first=True)
    given = ModelInputs((Batch(torch.ones(2, 3)), Records(ids=torch.ones(2, dtype=torch.long)),
                         Pair(torch.ones(1), 2), packed, collections.OrderedDict(a=torch.ones(1))),
                        {"extra": [torch.ones(1), (torch.ones(2),)]})
    batch, records, pair, moved, ordered = (meta := given.to("meta")).args
    assert type(batch) is Batch and batch.image.is_meta and batch.size == 8
    assert type(records) is Records and records["ids"].is_meta
    assert type(pair) is Pair and pair.left.is_meta and pair.right == 2
    assert type(moved) is nn.utils.rnn.PackedSequence and moved.data.is_meta and not moved.batch_sizes.is_meta
    assert type(ordered) is collections.OrderedDict and ordered["a"].is_meta
    assert meta.kwargs["extra"][0].is_meta and meta.kwargs["extra"][1][0].is_meta
    assert not any(t.is_meta for t in given.tensors())  # the inputs as given are left alone


def test_realworld_cases_are_hard_and_selectable() -> None:
    assert {c.id for c in select_cases(tags=["torchscript"])} == {"scripted-module", "scripted-function",
                                                                   "scripted-when-traced", "scripted-convnet"}
    assert all("hard" in get_case(c).tags for c in REALWORLD)


class _WritesState(nn.Module):
    """Returns None, but writes a Linear's output into a buffer and updates BatchNorm statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)
        self.unused = nn.Linear(8, 8)
        self.register_buffer("cache", torch.zeros(4, 8))

    def forward(self, x: torch.Tensor) -> None:
        self.cache.copy_(self.fc(x))
        self.bn(x)
        self.unused(x)
        return None


def test_a_trace_keeps_what_writes_model_state() -> None:
    """A write into a buffer and BatchNorm's running statistics are side effects
    a JIT trace keeps, though the output holds no tensor; the unused Linear is dropped."""
    model = _WritesState().train()
    x = torch.randn(4, 8)
    before = fingerprint(model)
    run = audit_model(model, x, backends=["reference", "fvcore"], isolate=False)
    assert fingerprint(model) == before  # the buffer written with autograd on is put back, a leaf again
    cell = _cell(build_report(run), "model", "fvcore")
    # fvcore: fc 4 x 8 x 8 MACs + train-mode BatchNorm 5 per element of (4, 8); the unused Linear is dropped
    assert cell.backend_macs == cell.predicted_macs == 4 * 8 * 8 + 5 * 4 * 8
    assert _cause(cell, TRACE_DROPS) == -(4 * 8 * 8)


def test_a_failure_reads_the_same_in_every_run_and_names_the_backends_code() -> None:
    from flopaudit.adapters.base import error_text
    from flopaudit.errors import BackendFailure

    assert error_text(RuntimeError("cannot trace <__torch__.Mlp object at 0x55ab01c2>")) == (
        "RuntimeError: cannot trace <__torch__.Mlp object>")
    try:
        nn.Linear(3, 4)(torch.randn(2, 5))  # fails inside a torch layer: model code
    except RuntimeError as exc:
        cause = exc
    assert "(raised in torch.nn.modules.linear, line" in error_text(cause)
    try:  # an adapter telling a backend's failure in words: located where the backend raised it
        raise BackendFailure("the backend's hook could not read the layer") from cause
    except BackendFailure as exc:
        told = exc
    assert error_text(told).startswith("BackendFailure: the backend's hook could not read the layer (raised in "
                                       "torch.nn.modules.linear, line")
    assert error_text(BackendFailure("foreseen: the backend would fail on this model")) == (
        "BackendFailure: foreseen: the backend would fail on this model")
    # Keras (on torch) wraps a layer's error and writes it in bold
    assert error_text(TypeError("Exception encountered when calling Conv2D.call().\n\n\x1b[1munsupported operand "
                                "type(s) for +: 'int' and 'list'\x1b[0m")) == (
        "TypeError: Exception encountered when calling Conv2D.call().\n\nunsupported operand type(s) for +: 'int' and "
        "'list'")
    # a message of several lines: where it was raised, and any hint, follow its first line (the one a table shows)
    try:
        torch.nn.functional.linear(torch.randn(2, 5), torch.randn(4, 3))
    except RuntimeError as exc:
        exc.args = ("shapes do not match\nmat1 is 2x5, mat2 is 3x4",)
        several = exc
    text = error_text(several, "; counting module 'fc'")
    assert text.startswith("RuntimeError: shapes do not match (raised in "), text
    assert text.endswith("; counting module 'fc'\nmat1 is 2x5, mat2 is 3x4"), text


def test_timm_style_layers_subclass_inplace_and_repeat() -> None:
    """StdConv2d(3, 8, 3) on (2, 3, 8, 8): 2 x 8 x 6 x 6 x 27 = 15552 MACs; LeakyReLU on
    its 576 outputs; mean to (2, 8); repeat(1, 2) to (2, 16); Linear(16, 10): 320 MACs."""
    report = _report("timm-style-layers")
    torchstat = _cell(report, "timm-style-layers", "torchstat")  # isinstance: the subclass is a Conv2d
    assert torchstat.difference == 576 and _cause(torchstat, "ReLU family") == 576
    assert not any("no rule" in c.rule for c in torchstat.causes)
    # torchprofile has no handler for the in-place leaky_relu_ (it would add 576): only the mean's 16 outputs
    assert _cell(report, "timm-style-layers", "torchprofile").difference == 16
    # torch.profiler: aten::repeat's own aten::add over its 2 repeats, 2 FLOPs = 1 MAC
    assert _cause(_cell(report, "timm-style-layers", "torch-profiler"), "aten::repeat") == 1


def test_train_mode_dropout_is_one_node_in_a_trace() -> None:
    """Linear(16, 16) then Dropout(0.5) on (4, 16) in train mode: a dispatch mode sees the
    dropout's mask and its multiply of the 64 outputs; torchprofile's trace holds one
    aten::dropout node it has no handler for, so it reads the Linear's 1024 MACs alone."""
    report = _report("dropout-train")
    cell = _cell(report, "dropout-train", "torchprofile")
    assert cell.backend_macs == 4 * 16 * 16 and cell.difference == 0


def test_a_forward_runs_with_autograd_only_where_it_differentiates() -> None:
    from flopaudit.grad_forward import without_grad_if_it_runs

    tried: list[bool] = []

    def differentiates(no_grad: bool) -> str:
        tried.append(no_grad)
        x = torch.ones(2, requires_grad=True)
        with torch.no_grad() if no_grad else torch.enable_grad():
            torch.autograd.grad((x * x).sum(), x)
        return "ran"

    assert without_grad_if_it_runs(differentiates) == ("ran", True) and tried == [True, False]
    assert without_grad_if_it_runs(lambda no_grad: "ran") == ("ran", False)

    def broken(no_grad: bool) -> None:
        raise ValueError("model bug")

    with pytest.raises(ValueError, match="model bug"):  # not autograd's: not tried again
        without_grad_if_it_runs(broken)

    def fails_both_ways(no_grad: bool) -> None:
        raise RuntimeError("element 0 of tensors does not require grad" if no_grad else "another failure")

    with pytest.raises(RuntimeError, match="does not require grad"):  # the first failure is told
        without_grad_if_it_runs(fails_both_ways)


@pytest.mark.parametrize("backend", ["calflops", "deepspeed", "ptflops-pytorch"])
def test_an_rnn_rule_given_a_packed_sequence_names_the_module(backend: str) -> None:
    """Their RNN hooks read ``input[0].shape``; a PackedSequence has none. The failure says which
    module was given one (the zoo case's LSTM is ``rnn``)."""
    adapter = get_adapter(backend)
    if not adapter.available():
        pytest.skip(f"{backend} is not installed")
    model, inputs = get_case("lstm-packed-sequence").instantiate()
    r = adapter.count(model, inputs)
    assert r.status.value == "error"
    assert "module 'rnn' (LSTM) was given a PackedSequence" in (r.error or ""), r.error


class _FuncEnsemble(nn.Module):
    """PyTorch's model-ensembling recipe: the members' parameters stacked, a stateless copy of a member
    (made in the forward) called under ``torch.vmap``."""

    def __init__(self, members: int = 4) -> None:
        super().__init__()
        self.members = nn.ModuleList(nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))
                                     for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params, buffers = torch.func.stack_module_state(list(self.members))
        base = copy.deepcopy(self.members[0]).to("meta")

        def call(p: Any, b: Any, x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(base, (p, b), (x,))

        return torch.vmap(call, in_dims=(0, 0, None))(params, buffers, x)


def test_a_copy_made_in_the_forward_counts_where_the_counters_hooks_keep_it() -> None:
    """A copy carries the hooks of the module it copies: thop, ptflops, calflops and DeepSpeed keep its count
    on the copy, which their total over the model never reads; torchinfo gives it a row (priced as a Linear),
    and torchsummary a row whose parameters it counts."""
    report = _report("module-copied-in-forward")
    lost = 2 * 32 * 16 + 2 * 16 * 16  # fc's twin and block's Linear copy
    for backend in ("thop", "ptflops-pytorch", "calflops", "deepspeed"):
        cell = _cell(report, "module-copied-in-forward", backend)
        assert cell.residual == 0 and _cause(cell, "module copied during the forward") == -lost, \
            format_explanation(cell)
    # thop counts the parameters of the modules it calls: block's Linear runs only as its copy
    cell = _cell(report, "module-copied-in-forward", "thop")
    assert cell.params.residual == 0, format_explanation(cell)
    assert [(c.kind, c.macs) for c in cell.params.causes if c.rule.startswith("run only as a copy")] == \
        [("reused-module", -(16 * 16 + 16))], format_explanation(cell)
    cell = _cell(report, "module-copied-in-forward", "torchinfo")
    assert cell.residual == 0 and not [c for c in cell.causes if "copied" in c.rule], format_explanation(cell)
    cell = _cell(report, "module-copied-in-forward", "torchsummary")
    assert cell.params.residual == 0, format_explanation(cell)
    # fc's twin is a row of its own; block runs only as its copy, whose rows are then block's
    assert [c.macs for c in cell.params.causes if "copied" in c.rule] == [32 * 16 + 16]


@pytest.mark.parametrize("backend", ["thop", "ptflops-pytorch", "calflops", "deepspeed", "torchsummary"])
def test_the_ensembling_recipes_copy_keeps_the_members_work_outside_the_model(backend: str) -> None:
    """PyTorch's model-ensembling recipe runs every member's work in one copy made in the forward."""
    if not get_adapter(backend).available():
        pytest.skip(f"{backend} is not installed")
    report = build_report(audit_model(_FuncEnsemble().eval(), torch.randn(2, 32), backends=["reference", backend],
                                      isolate=False))
    cell = _cell(report, "model", backend)
    if backend == "torchsummary":  # the copy's rows: one member's parameters; the others' never called
        assert cell.params.residual == 0 and cell.params.backend_params == 32 * 16 + 16 + 16 * 8 + 8, format_explanation(cell)
        return
    # (ptflops' patched F.relu counts into one list of its own, outside any module: it stays, on the 2 x 16
    # elements of one member, the shape vmap hands it)
    assert cell.backend_macs == (2 * 16 if backend == "ptflops-pytorch" else 0), format_explanation(cell)
    assert cell.residual == 0 and _cause(cell, "module copied during the forward") == -4 * (2 * 32 * 16 + 2 * 16 * 8)
