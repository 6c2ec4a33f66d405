"""The model zoo: every case builds and runs, and the hard cases' closed-form
numbers hold (parameters against the built model, MACs against the reference
counter and against an independent witness)."""

from __future__ import annotations

import contextlib
import math
import re
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from flopaudit.zoo import all_cases, hard_cases, hf_models, select_cases, timm_models, torchvision_extra
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard import custom, realworld

HARD = hard_cases.cases()
HARD_IDS = [c.id for c in HARD]

#: The hard cases that join the default zoo (chosen to show where counters disagree).
DEFAULT_HARD = {
    "linear-3d",
    "convtranspose-s2",
    "attention-matmul",
    "attention-sdpa",
    "mha-batch-first",
    "transformer-encoder-eval",
    "transformer-encoder-padding-mask",
    "lstm-bidir-2layer",
    "gru-2layer-batch-first",
    "module-reused",
    "module-shared-two-parents",
    "tied-weights",
    "conv2d-unbatched",
    "custom-functional-math",
}

FAMILY_TAGS = {
    "conv", "linear", "attention", "rnn", "norm", "activation", "pool", "upsample", "embedding",
    "functional", "custom", "reuse", "multi-input", "kwargs", "tied", "control-flow", "buffers", "unbatched",
    "train-mode", "pruned", "lazy", "packed", "torchscript", "dead-code",
}  # fmt: skip


def _run(case: ModelCase) -> tuple[nn.Module, Any]:
    model, inputs = case.instantiate()
    with torch.no_grad():
        out = model(*inputs.args, **inputs.kwargs)
    return model, out


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in _tensors(x)]
    if isinstance(obj, dict):
        return [t for x in obj.values() for t in _tensors(x)]
    return []


def _unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() skips shared tensors


# ---------------------------------------------------------------- registry


def test_case_ids_are_unique_and_kebab_or_snake() -> None:
    ids = [c.id for c in all_cases()]
    assert len(ids) == len(set(ids))
    bad = [i for i in ids if not re.fullmatch(r"[a-z0-9]+(?:[-_][a-z0-9]+)*", i)]
    assert bad == []


def test_a_case_id_given_twice_is_refused_by_the_registry_and_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cases with one id, in one family or in two, are an error: the catalog would name one
    family, and the other case would be built under the id."""
    import sys
    import types

    import flopaudit.zoo as zoo
    from flopaudit.zoo.catalog import entries_from_registry
    from flopaudit.zoo.hard._common import hard_case, randn_inputs

    def case() -> ModelCase:
        return hard_case("dup", nn.Identity, randn_inputs((1,)), (), expected_macs=0, expected_params=0,
                         description="")

    family = types.ModuleType("_zoo_family_with_duplicates")
    family.one, family.two, family.both = (lambda: [case()]), (lambda: [case()]), (lambda: [case(), case()])
    monkeypatch.setitem(sys.modules, family.__name__, family)
    monkeypatch.setattr(zoo, "FAMILIES", (f"{family.__name__}:one", f"{family.__name__}:two"))
    with pytest.raises(ValueError, match="duplicate zoo case id 'dup' in _zoo_family_with_duplicates:one and "):
        entries_from_registry()
    with pytest.raises(ValueError, match="duplicate zoo case id 'dup' in _zoo_family_with_duplicates:both"):
        zoo.family_cases(f"{family.__name__}:both")


def test_registry_holds_hard_and_torchvision_extra_cases() -> None:
    ids = {c.id for c in all_cases()}
    assert set(HARD_IDS) <= ids
    assert {c.id for c in torchvision_extra.cases()} <= ids


def test_default_zoo_contains_the_default_hard_cases() -> None:
    chosen = {c.id for c in select_cases()}
    assert DEFAULT_HARD <= chosen
    assert {c.id for c in HARD if c.default} == DEFAULT_HARD
    assert {"resnet18", "resnet50", "mobilenet_v2", "vit_b_16", "convnext_tiny"} <= chosen
    extras = {c.id for c in (*torchvision_extra.cases(), *timm_models.cases(), *hf_models.cases())}
    assert not chosen & extras


def test_custom_tag_selects_only_custom_cases() -> None:
    chosen = select_cases(tags=["custom"])
    assert {c.id for c in chosen} == {"custom-functional-math", "custom-autograd-function",
                                      "custom-autograd-function-bound", "custom-torch-library-op",
                                      "int8-weight-subclass", "quant-dequant-linear"}
    assert all("custom" in c.tags for c in chosen)


# ---------------------------------------------------------------- hard cases


@pytest.mark.parametrize("case", HARD, ids=HARD_IDS)
def test_hard_case_is_tagged_and_has_closed_form_numbers(case: ModelCase) -> None:
    assert {"hard", "light"} <= case.tags
    assert case.tags & FAMILY_TAGS, f"{case.id} has no family tag"
    assert case.expected_macs is not None and case.expected_macs > 0
    assert case.expected_params is not None
    assert case.description


@pytest.mark.parametrize("case", HARD, ids=HARD_IDS)
def test_hard_case_runs(case: ModelCase) -> None:
    _, out = _run(case)
    tensors = _tensors(out)
    assert bool(tensors) != ("no-tensor-output" in case.tags), f"{case.id}: tensors in its output: {len(tensors)}"
    assert all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


@pytest.mark.parametrize("case", HARD, ids=HARD_IDS)
def test_hard_case_expected_params_match_the_model(case: ModelCase) -> None:
    model, _ = _run(case)  # a lazy module has its parameters after its first call
    assert _unique_params(model) == case.expected_params


def test_tied_weights_share_one_tensor() -> None:
    model, _ = next(c for c in HARD if c.id == "tied-weights").instantiate()
    assert model.head.weight is model.embed.weight
    assert _unique_params(model) == 100 * 16
    assert sum(p.numel() for p in dict(model.named_parameters(remove_duplicate=False)).values()) == 2 * 100 * 16


def test_data_dependent_branch_takes_the_documented_branch() -> None:
    case = next(c for c in HARD if c.id == "data-dependent-branch")
    model, inputs = case.instantiate()
    calls: list[str] = []
    model.fc2.register_forward_hook(lambda *_: calls.append("fc2"))
    with torch.no_grad():
        model(*inputs.args)
    assert inputs.args[0].sum() > 0
    assert calls == ["fc2"]


def test_custom_op_runs_on_meta_tensors() -> None:
    x = torch.empty(4, 16, device="meta")
    w = torch.empty(16, 32, device="meta")
    y = custom.scaled_matmul(x, w, 0.5)
    assert y.device.type == "meta" and tuple(y.shape) == (4, 32)


def test_reused_module_is_called_twice() -> None:
    case = next(c for c in HARD if c.id == "module-reused")
    model, inputs = case.instantiate()
    calls: list[int] = []
    model.fc.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        model(*inputs.args)
    assert len(calls) == 2


def test_shared_module_has_two_names_and_runs_twice() -> None:
    case = next(c for c in HARD if c.id == "module-shared-two-parents")
    model, inputs = case.instantiate()
    assert model.a.shared is model.b.shared and model.a.own is not model.b.own
    names = [n for n, m in model.named_modules(remove_duplicate=False) if m is model.a.shared]
    assert names == ["a.shared", "b.shared"]
    calls: list[int] = []
    model.a.shared.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        model(*inputs.args)
    assert len(calls) == 2


def _witness_macs(case: ModelCase) -> int:
    """MACs of ``case`` counted independently of the zoo's arithmetic.

    Recurrent cases: each weight element of the recurrent module is used once
    per time step and sample, so MACs = T * N * (weight elements). Others:
    ``FlopCounterMode`` / 2 with gradients on and every parameter needing one
    (which turns off the fused attention fast paths), plus formulas for the ops it does not know: the
    CPU flash-attention kernel behind SDPA, ``nn.Bilinear``'s ``_trilinear``,
    the grouped products of mixture-of-experts layers, ``torch.cdist``'s
    ``_euclidean_dist``, ``F.affine_grid`` and this zoo's custom op. A dynamically quantized LSTM:
    its packed weights as the module unpacks them, the same way; a statically quantized model: each
    int8 conv and linear module's output elements times its unpacked weight's taps per output.
    """
    model, inputs = case.instantiate()
    for value in vars(type(model)).values():  # a memo its class holds (process-memoised-table): a first forward
        memo = getattr(value, "__func__", value)
        if hasattr(memo, "cache_clear"):
            memo.cache_clear()
    if "frozen" in case.tags:  # a frozen block takes its fused fast path even with gradients on
        model.requires_grad_(True)
    if "quantized" in case.tags and "rnn" in case.tags:
        # the packed weights, unpacked (dequantized) by the module itself; then the quantized head's
        x = inputs.args[0]
        weights = sum(w.numel() for w in model.rnn._weight_bias()["weight"].values())
        return x.shape[0] * x.shape[1] * (weights + model.head.weight().numel())
    if "quantized" in case.tags:  # static: every int8 conv and linear module, its unpacked weight's taps per output
        outputs: dict[nn.Module, torch.Size] = {}
        quantized = [m for m in model.modules() if callable(getattr(m, "weight", None)) and hasattr(m, "scale")]
        hooks = [m.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o.shape)) for m in quantized]
        with torch.no_grad():
            model(*inputs.args)
        for h in hooks:
            h.remove()
        return sum(math.prod(outputs[m]) * math.prod(m.weight().shape[1:]) for m in quantized)
    csr = [t for t in inputs.tensors() if t.layout is torch.sparse_csr]
    if csr:  # csr-adjacency: x W, then products counted on the dense pattern of the stored elements
        pattern = (csr[0].to_dense() != 0).float()
        square = pattern @ pattern  # entry (i, j): how many stored (i, k), (k, j) pairs meet
        x, width = inputs.args[0], model.w.out_features
        return (x.shape[0] * x.shape[1] * width + int(square.sum()) + int(pattern.sum()) * width
                + int((square != 0).sum()) * width)
    if "rnn" in case.tags:
        rnn = next(m for m in model.modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase)))
        x = inputs.args[0]
        steps, batch = (x.shape[1], x.shape[0]) if getattr(rnn, "batch_first", False) else (x.shape[0], x.shape[1])
        weights = sum(p.numel() for name, p in rnn.named_parameters() if name.startswith("weight"))
        if "packed" in case.tags:  # only the real steps of each sequence: the lengths are the second input
            return int(inputs.args[1].sum()) * weights
        return steps * batch * weights

    def sdpa_cpu(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        b, h, sq, d = q
        return 2 * (2 * b * h * sq * k[2] * d)  # scores + weighted sum, 2 FLOPs per MAC

    def custom_mm(x: Any, w: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * x[0] * x[1] * w[1]

    def bilinear(i1: Any, w: Any, i3: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # nn.Bilinear's _trilinear: per row and output feature, x1 @ W_k (in1 x in2), then . x2 (in2)
        return 2 * w[0] * i1[0] * w[2] * (w[1] + 1)

    def grouped_mm(a: Any, b: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # every row of a (M, K) goes through its group's (K, N) matrix: the case routes all its rows
        return 2 * a[0] * a[1] * b[-1]

    def deform_conv2d(x: Any, w: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # every output element of the convolution sums Cin/groups x kh x kw sampled products
        return 2 * math.prod(out_shape) * w[1] * w[2] * w[3]

    def euclidean_dist(x1: Any, x2: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # torch.cdist past 25 rows: each distance a dot product of M features plus the two squared norms
        return 2 * math.prod(out_shape) * (x1[-1] + 2)

    def sparse_mm(a: Any, b: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # FlopCounterMode hands formulas shapes only: the stored elements come from the case's inputs
        return 2 * sparse_nnz * b[-1] if tuple(a) == sparse_shape else 2 * a[0] * a[1] * b[1]

    def mv(m: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * m[0] * m[1]  # (spectral norm's W v)

    def dot(a: Any, b: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * a[0]  # (spectral norm's sigma = u . (W v))

    def affine_grid(theta: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        # every sampling position (out_shape's all but last dim): homogeneous coordinates (k + 1) @ theta.T (k)
        return 2 * math.prod(out_shape[:-1]) * theta[-1] * theta[-2]

    sparse = [t for t in inputs.tensors() if t.layout is torch.sparse_coo]
    sparse_nnz, sparse_shape = (sparse[0]._nnz(), tuple(sparse[0].shape)) if sparse else (0, None)
    mapping = {
        **({torch.ops.aten.mm: sparse_mm} if sparse else {}),
        torch.ops.aten.affine_grid_generator: affine_grid,
        torch.ops.aten.mv: mv,
        torch.ops.aten.dot: dot,
        torch.ops.aten._trilinear: bilinear,
        torch.ops.aten._euclidean_dist: euclidean_dist,
        torch.ops.torchvision.deform_conv2d: deform_conv2d,
        **({torch.ops.aten._grouped_mm: grouped_mm} if hasattr(torch.ops.aten, "_grouped_mm") else {}),
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: sdpa_cpu,
        torch.ops.flopaudit_zoo.scaled_matmul: custom_mm,
    }
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    if "autograd" in case.tags:  # torch.autograd.grad in the forward: torch's module tracker fails there; totals only
        counter.mod_tracker = _NoModules()
    if "nested" in case.tags:
        # Padding is skipped: count each sequence alone, cut to its real length, without a mask.
        x, mask = inputs.args[0], inputs.kwargs["src_key_padding_mask"]
        with counter:
            for i in range(x.shape[0]):
                model(x[i:i + 1, : int((~mask[i]).sum())])
        return counter.get_total_flops() // 2
    if "jagged" in case.tags:  # a jagged nested tensor: each sequence counted alone, as the dense tensor it is
        with counter:
            for sequence in inputs.args[0].unbind():
                model(sequence)
        return counter.get_total_flops() // 2
    # torch.cond under a dispatch mode: with autograd on its branches are traced with fake tensors that fail on
    # the parameters they close over, without FlopCounterMode counts both branches; witnessed as the program reads
    with counter, (_cond_as_an_if() if "cond" in case.tags else contextlib.nullcontext()):
        model(*inputs.args, **inputs.kwargs)
    return counter.get_total_flops() // 2


class _NoModules:
    """Stands for ``FlopCounterMode``'s module tracker: every operator counts in the total only."""

    parents = frozenset({"Global"})

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        pass


@contextlib.contextmanager
def _cond_as_an_if() -> Any:
    original = torch.cond
    torch.cond = lambda pred, true_fn, false_fn, operands: (true_fn if pred else false_fn)(*operands)
    try:
        yield
    finally:
        torch.cond = original


@pytest.mark.parametrize("case", HARD, ids=HARD_IDS)
def test_hard_case_expected_macs_match_an_independent_witness(case: ModelCase) -> None:
    assert _witness_macs(case) == case.expected_macs


@pytest.mark.parametrize("case", HARD, ids=HARD_IDS)
def test_hard_case_expected_macs_match_the_reference_counter(case: ModelCase) -> None:
    try:
        from flopaudit.reference import count as reference_count
    except ImportError as exc:
        pytest.skip(f"reference counter not importable yet: {exc}")
    model, inputs = case.instantiate()
    assert reference_count(model, inputs.args, inputs.kwargs).macs == case.expected_macs


# ---------------------------------------------------------------- torchvision detection / segmentation / video

TV_EXTRA = torchvision_extra.cases()
TASKS = {"detection", "segmentation", "video", "optical-flow", "quantization"}


def test_torchvision_extra_covers_every_builder_with_published_ops() -> None:
    import torchvision.models as tvm
    from torchvision.models import get_model_weights, list_models

    builders = {n for m in (tvm.detection, tvm.segmentation, tvm.video, tvm.optical_flow, tvm.quantization)
                for n in list_models(module=m)}
    with_ops = {n for n in builders if any("_ops" in w.meta for w in get_model_weights(n))}
    assert with_ops <= {s.name for s in torchvision_extra.SPECS}
    ids = [c.id for c in TV_EXTRA]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "case",
    [c if "light" in c.tags else pytest.param(c, marks=pytest.mark.slow) for c in TV_EXTRA],
    ids=[c.id for c in TV_EXTRA],
)
def test_torchvision_extra_case_runs(case: ModelCase) -> None:
    assert {"torchvision", "vision"} <= case.tags and not case.default
    assert len(case.tags & TASKS) == 1
    assert case.tags & {"light", "medium", "heavy"}
    assert "reproduces" in case.description
    model, out = _run(case)
    assert not model.training
    if "detection" in case.tags:
        assert isinstance(out, list) and len(out) == 1 and {"boxes", "labels", "scores"} <= set(out[0])
    elif "segmentation" in case.tags:
        assert tuple(out["out"].shape) == (1, 21, 520, 520)
    elif "video" in case.tags:
        assert tuple(out.shape) == (1, 400)
    elif "optical-flow" in case.tags:
        assert len(out) == 12 and tuple(out[-1].shape) == (1, 2, 512, 512)  # one flow per update
    else:
        assert tuple(out.shape) == (1, 1000)


def test_torchvision_extra_builds_need_no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.hub

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a zoo builder tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    for case in TV_EXTRA:
        if "light" in case.tags:
            case.build()


# ---------------------------------------------------------------- optional families


def test_optional_families_name_the_library_they_need() -> None:
    optional = [*timm_models.cases(), *hf_models.cases()]
    ids = [c.id for c in optional]
    assert "timm-vit_tiny_patch16_224" in ids and "hf-llama-gqa" in ids
    assert not any(c.default for c in optional)
    for c in optional:
        assert c.requires == (("timm",) if "timm" in c.tags else ("transformers",))
    assert realworld_case("timm-attention-block").requires == ("timm",)


def realworld_case(case_id: str) -> ModelCase:
    return next(c for c in realworld.cases() if c.id == case_id)


def test_timm_family_spans_many_architectures() -> None:
    specs = timm_models.SPECS
    assert len(specs) >= 40 and len({s.family for s in specs}) >= 25
    named = {"vit", "deit", "pit", "crossvit", "mobilevit", "levit", "efficientvit", "pvt", "xcit", "swin", "convnext",
             "repvgg", "fastvit", "mambaout", "hrnet", "dla", "ghostnet", "mobilenetv4", "efficientnet", "regnet"}
    assert named <= {s.family for s in specs}
    reparam = [c for c in timm_models.cases() if "reparameterisable" in c.tags]
    assert len(reparam) >= 3 and all("counted as built" in c.description for c in reparam)


#: timm's model modules without a timm case, each with the zoo case that has its architecture.
TIMM_MODULES_ELSEWHERE = {"vgg": "vgg11 (torchvision)", "inception_v3": "inception_v3 (torchvision)"}


def test_every_timm_model_module_has_a_case() -> None:
    """One model of each of timm's architecture modules is in the zoo: a timm release that adds a family
    fails here until the zoo has it (or says where its architecture is counted)."""
    timm = pytest.importorskip("timm")
    from timm.models import _registry

    module_of = _registry._model_to_module
    modules = {module_of[name] for name in timm.list_models()}
    covered = {module_of[s.name] for s in timm_models.SPECS}
    assert modules - covered == set(TIMM_MODULES_ELSEWHERE)
    ids = {c.id for c in all_cases()}
    assert {"vgg11", "inception_v3"} <= ids


def test_timm_case_builds_offline_and_runs() -> None:
    pytest.importorskip("timm")
    case = next(c for c in timm_models.cases() if c.id == "timm-levit_128s")
    _, out = _run(case)
    assert tuple(out.shape) == (1, 1000)


HF_FAMILIES = {"bert", "gpt2", "llama", "t5", "bart", "vit", "whisper", "clip"}
HF_EXPECTED = [c.id for c in hf_models.cases() if c.expected_macs is not None]


def test_transformers_family_covers_the_named_architectures() -> None:
    cases = hf_models.cases()
    assert HF_FAMILIES <= {t for c in cases for t in c.tags}
    gqa = next(c for c in cases if c.id == "hf-llama-gqa")
    assert "grouped-query" in gqa.description


@pytest.mark.parametrize(
    "case_id", [c if c not in ("hf-bert-base", "hf-gpt2") else pytest.param(c, marks=pytest.mark.slow)
                for c in HF_EXPECTED]
)  # fmt: skip
def test_transformers_case_params_match(case_id: str) -> None:
    pytest.importorskip("transformers")
    case = next(c for c in hf_models.cases() if c.id == case_id)
    model, _ = _run(case)
    assert _unique_params(model) == case.expected_params


@pytest.mark.parametrize("case_id", ["hf-llama-tiny-eager", "hf-llama-gqa", "hf-bert-tiny", "hf-gpt2-tiny"])
def test_transformers_macs_match_an_independent_witness(case_id: str) -> None:
    """FlopCounterMode with autograd on, plus a formula for the CPU attention
    kernel it does not know, against the closed form written in the zoo."""
    pytest.importorskip("transformers")
    case = next(c for c in hf_models.cases() if c.id == case_id)
    model, inputs = case.instantiate()

    def sdpa_cpu(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        b, h, sq, d = q
        return 2 * (2 * b * h * sq * k[2] * d)  # scores + weighted sum, 2 FLOPs per MAC

    counter = FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: sdpa_cpu})
    with counter:
        model(*inputs.args, **inputs.kwargs)
    assert counter.get_total_flops() // 2 == case.expected_macs


def test_the_catalog_is_generated_from_the_zoo() -> None:
    """``flopaudit/zoo/catalog.json`` is what the zoo's code registers (regenerate: python -m flopaudit.zoo.catalog --write)."""
    from flopaudit.zoo.catalog import CATALOG_PATH, catalog_text, entries_from_registry

    assert catalog_text(entries_from_registry()) == CATALOG_PATH.read_text(encoding="utf-8"), (
        "the zoo catalog is stale: run 'python -m flopaudit.zoo.catalog --write'")


def test_catalog_selection_equals_registry_selection() -> None:
    from flopaudit.zoo.catalog import select

    for patterns, tags, full in [((), (), False), ((), (), True), (("resnet*",), (), False), ((), ("hard",), False)]:
        assert select(patterns, tags, full=full).ids == [c.id for c in select_cases(patterns, tags, full=full)]
    assert not [i for i in select(full=True).ids if i.startswith("faulty-")]  # run only when named
