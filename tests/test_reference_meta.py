"""Reference counter on the meta device and under count_meta: no weights are
allocated, shapes alone give the count, and it equals the real-tensor count."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from flopaudit.reference import MetaBuildError, ReferenceCount, count, count_meta


def test_resnet18_meta_equals_real() -> None:
    torch.manual_seed(0)
    real = count(torchvision.models.resnet18().eval(), torch.randn(2, 3, 224, 224))
    with torch.device("meta"):
        model = torchvision.models.resnet18().eval()
    meta = count(model, torch.randn(2, 3, 224, 224), device="meta")
    assert meta.device == "meta"
    assert [(e.op, e.macs, e.extra_flops, e.module_path) for e in meta.events] == [
        (e.op, e.macs, e.extra_flops, e.module_path) for e in real.events
    ]
    assert (meta.macs, meta.extra_flops, meta.totals.calls, meta.totals.bytes_read) == (
        real.macs, real.extra_flops, real.totals.calls, real.totals.bytes_read)
    # Eval batch norm: the CPU kernel returns empty save_mean/save_invstd, the meta
    # kernel returns (C,) float32 tensors for both: 2 * 4 bytes per channel more on meta.
    channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert meta.totals.bytes_written - real.totals.bytes_written == 2 * 4 * channels
    assert meta.params == real.params
    assert meta.unsupported == real.unsupported == {}
    # published torchvision value for resnet18: 1.814 GMACs per image
    assert round(meta.macs / 2 / 1e9, 3) == 1.814


def test_device_meta_requires_a_meta_model() -> None:
    with pytest.raises(ValueError, match="meta device"):
        count(nn.Linear(4, 4), torch.randn(2, 4), device="meta")


class NeedsValuesToBuild(nn.Module):
    """Derives a width from tensor values in __init__ (like torchvision's RegNet)."""

    def __init__(self) -> None:
        super().__init__()
        width = int(torch.tensor([3.0, 5.0]).sum().item())  # 8
        self.fc = nn.Linear(4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class NeedsValuesToRun(nn.Module):
    """Data-dependent control flow in forward: impossible on meta."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum().item() > -1e9:
            return self.fc(x)
        return x


def test_count_meta_builds_on_meta() -> None:
    result = count_meta(lambda: nn.Linear(4, 8, bias=False), lambda: torch.randn(3, 4))
    assert result.device == "meta" and result.notes == ()
    assert result.macs == 3 * 4 * 8


def test_count_meta_falls_back_to_empty_weights_when_init_needs_values() -> None:
    result = count_meta(NeedsValuesToBuild, lambda: torch.randn(3, 4))
    assert result.device == "meta"
    assert result.macs == 3 * 4 * 8
    assert any("empty_weights" in n for n in result.notes)
    assert nn.Module.register_parameter.__qualname__ == "Module.register_parameter"  # patch undone


def test_count_meta_builds_again_with_empty_weights_when_the_forward_of_the_meta_build_fails() -> None:
    """A constructor that skips work on meta tensors its forward needs (torchtune's Llama 3 rotary
    embedding): built again with empty_weights(), it counts on meta as on the CPU."""
    from user_models import table_skipped_on_meta

    cpu = count(table_skipped_on_meta(), torch.randn(2, 8))
    result = count_meta(table_skipped_on_meta, lambda: torch.randn(2, 8), fallback="raise")
    assert result.device == "meta" and (result.macs, result.extra_flops) == (cpu.macs, cpu.extra_flops) != (0, 0)
    [note] = result.notes
    assert note.startswith("forward on meta failed: RuntimeError: table is not built") and note.endswith(
        "built under torch.device('meta'); built with empty_weights() instead"), note


def test_count_meta_builds_on_the_cpu_what_neither_way_builds_on_meta() -> None:
    """A constructor that runs the model on a CPU tensor it makes and reads what it measured (ultralytics'
    detection models): built on the CPU, its weights not initialised, then moved to meta, where it counts
    as on the CPU."""
    from user_models import measured_head

    from flopaudit.reference.api import ON_CPU_THEN_META

    cpu = count(measured_head(), torch.randn(1, 3, 8, 8))
    result = count_meta(measured_head, lambda: torch.randn(1, 3, 8, 8), fallback="raise")
    assert result.device == "meta" and (result.macs, result.params.total) == (cpu.macs, cpu.params.total) == (
        4 * 27 * 16, 4 * 27 + 4 + 8)
    [note] = result.notes
    assert note.startswith("build under torch.device('meta') failed") and note.endswith(ON_CPU_THEN_META), note


def test_count_meta_falls_back_to_cpu_when_forward_needs_values() -> None:
    result = count_meta(NeedsValuesToRun, lambda: torch.randn(3, 4))
    assert result.device == "cpu"
    assert result.macs == 3 * 4 * 4
    assert any("forward on meta failed" in n for n in result.notes)
    assert any("counted on CPU" in n for n in result.notes)


def test_count_meta_can_raise_instead() -> None:
    with pytest.raises(MetaBuildError, match="forward on meta failed"):
        count_meta(NeedsValuesToRun, lambda: torch.randn(3, 4), fallback="raise")


def test_a_model_reading_values_unless_traced_is_counted_on_meta_in_its_traced_branch() -> None:
    """transformers reads the attention mask it is given to see whether it can leave it out, unless
    ``torch.jit.is_tracing()``: on meta, ``count`` and ``count_meta`` count such a model in its traced
    branch and say so, instead of failing (``count_meta`` then building it on the CPU: a 7B model's
    weights). The counts equal the CPU's."""
    pytest.importorskip("transformers")
    from transformers import LlamaConfig, LlamaForCausalLM

    from flopaudit.inputs import ModelInputs

    config = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)

    def inputs() -> ModelInputs:
        return ModelInputs((), {"input_ids": torch.arange(8).view(1, 8) + 1,
                                "attention_mask": torch.ones(1, 8, dtype=torch.long)})

    torch.manual_seed(0)
    cpu = count(LlamaForCausalLM(config).eval(), inputs())
    meta = count_meta(lambda: LlamaForCausalLM(config).eval(), inputs, fallback="raise")
    with torch.device("meta"):
        model = LlamaForCausalLM(config).eval()
    direct = count(model, inputs(), device="meta")
    for result in (meta, direct):
        assert result.device == "meta"
        assert (result.macs, result.params) == (cpu.macs, cpu.params)
        assert [n for n in result.notes if n.startswith("on meta the model's code asks whether it is traced (transformers.")
                and "counted in the branch it takes under a trace" in n], result.notes
    assert not any("traced" in n for n in cpu.notes)
    # answering no, as asked: the value read stands
    with pytest.raises(RuntimeError, match=r"item\(\) cannot be called on meta tensors"):
        count(model, inputs(), device="meta", as_traced=False)


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm: torch 2.8 and later")
@pytest.mark.parametrize("pass_", ["inference", "train"])
def test_grouped_products_in_float32_count_on_meta_as_on_the_cpu(pass_: str) -> None:
    """transformers runs mixture-of-experts layers as ``torch._grouped_mm``, whose meta kernel takes
    bfloat16 only where the CPU's takes float32: on meta the products get bfloat16 stand-ins, every
    operator and count equals the CPU's, forward and backward, and the notes say so."""
    from flopaudit.reference.meta_workarounds import GROUPED_NOTE
    from flopaudit.zoo import get_case

    case = get_case("moe-grouped-experts")
    model, inputs = case.instantiate()
    cpu = count(model, inputs.fresh(), pass_=pass_)
    meta = count_meta(lambda: case.instantiate()[0], lambda: inputs.fresh(), fallback="raise", pass_=pass_)
    assert meta.device == "meta" and cpu.device == "cpu"
    assert [(e.op, e.macs, e.module_path, e.phase) for e in meta.events] == [
        (e.op, e.macs, e.module_path, e.phase) for e in cpu.events]
    assert (meta.macs, meta.params) == (cpu.macs, cpu.params)
    grouped = [e for e in meta.events if e.op == "aten._grouped_mm.default"]
    assert len(grouped) == (2 if pass_ == "inference" else 5)  # backward: down's input and weight gradients, up's weight's
    assert GROUPED_NOTE in meta.notes and GROUPED_NOTE not in cpu.notes
    # without the stand-ins the meta kernel refuses float32, as torch's does
    with torch.device("meta"):
        bare = case.instantiate()[0]
    with pytest.raises(RuntimeError, match="Expected mat_a to be BFloat16"), torch.no_grad():
        given = inputs.fresh().to("meta")
        bare(*given.args, **given.kwargs)


def _bench_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_reference_meta.py"
    spec = importlib.util.spec_from_file_location("bench_reference_meta", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_small_llama_like_on_meta_matches_closed_form() -> None:
    """The benchmark's Llama-like model, tiny config with grouped-query attention."""
    bench = _bench_module()
    cfg = bench.LlamaConfig(vocab_size=50, dim=16, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=32, max_seq=16)
    seq = 6
    result = count_meta(lambda: bench.LlamaLike(cfg), lambda: torch.zeros(1, seq, dtype=torch.long), fallback="raise")
    assert result.unsupported == {}
    kv = 2 * 4  # kv heads x head dim
    per_layer = (seq * 16 * (2 * 16 + 2 * kv)  # q, o projections and k, v projections
                 + seq * 3 * 16 * 32  # SwiGLU
                 + 2 * 4 * seq * seq * 4)  # causal attention counted in full, 4 query heads of dim 4
    assert result.macs == 2 * per_layer + seq * 16 * 50
    assert result.params.unique == 50 * 16 + 2 * (16 * 16 * 2 + 16 * kv * 2 + 3 * 16 * 32 + 2 * 16) + 16 + 16 * 50


def test_skip_init_leaves_values_alone_and_restores_torch_nn_init() -> None:
    from flopaudit.reference import skip_init

    before = nn.init.kaiming_uniform_
    with skip_init():
        assert nn.init.kaiming_uniform_ is not before
        layer = nn.Linear(4, 4)
        t = torch.full((3,), 5.0)
        assert nn.init.normal_(t) is t and torch.equal(t, torch.full((3,), 5.0))
    assert nn.init.kaiming_uniform_ is before
    x = torch.full((3,), 5.0)
    nn.init.normal_(x)
    assert not torch.equal(x, torch.full((3,), 5.0))  # initialisers work again after the block
    with torch.device("meta"), skip_init():
        meta = torchvision.models.resnet18()
    assert meta.fc.weight.device.type == "meta" and layer.weight.shape == (4, 4)
    real = count(torchvision.models.resnet18().eval(), torch.randn(1, 3, 64, 64))
    assert count(meta.eval(), torch.empty(1, 3, 64, 64, device="meta"), device="meta").macs == real.macs


class _Attention(nn.Module):
    """Linear(16, 16) to one query used as key and value too, 2 heads of 8 over 8 tokens, then SDPA."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q(x).view(1, 2, 8, 8)
        return F.scaled_dot_product_attention(q, q, q)


def test_a_training_step_on_meta_says_its_attention_backward_is_the_math_paths() -> None:
    """On meta SDPA takes torch's math path, whose backward is four products; CPU's flash kernel computes the
    scores again in its backward, a fifth: the meta count reads one (2 heads x 8 x 8 x 8) product less, and
    says why. Inference reads the same on both, without the note."""
    from flopaudit.reference.engine import META_ATTENTION_BACKWARD

    with torch.device("meta"):
        on_meta = _Attention()
    x = torch.randn(1, 8, 16)
    meta = count(on_meta, x.to("meta"), device="meta", pass_="train")
    cpu = count(_Attention(), x, pass_="train")
    assert cpu.macs - meta.macs == 2 * 8 * 8 * 8
    assert META_ATTENTION_BACKWARD in meta.notes and META_ATTENTION_BACKWARD not in cpu.notes
    inference = count(on_meta, x.to("meta"), device="meta")
    assert inference.macs == count(_Attention(), x).macs and META_ATTENTION_BACKWARD not in inference.notes


def test_an_operator_failing_on_meta_is_blamed_on_the_model_not_on_the_recorder() -> None:
    """A model on meta given a CPU tensor (the reference adapter called directly): the operator fails
    as it runs through the recorder, and the error names the model's line that called it."""
    from flopaudit.adapters import get_adapter
    from flopaudit.records import Status

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", torch.ones(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale

    with torch.device("meta"):
        model = Scaled()
    r = get_adapter("reference").count(model, torch.randn(3, 4))
    assert r.status is Status.ERROR
    assert "expected device" in (r.error or "") and f"(raised in {__name__}, line " in (r.error or ""), r.error


def test_a_cpu_scalar_given_with_meta_tensors_is_moved_to_meta() -> None:
    """``x.masked_fill(mask, torch.tensor(min))``: a device's kernel takes the zero-dimensional CPU tensor,
    the meta kernel refuses it. On meta it is moved there, the count equals the CPU's, and the notes
    say so; a CPU tensor of one dimension or more stays the model's mistake."""
    from user_models import _CPUPositions, scalar_filled_softmax

    from flopaudit.reference.meta_workarounds import CPU_SCALARS_NOTE

    torch.manual_seed(0)
    cpu = count(scalar_filled_softmax(), torch.randn(2, 8))
    with torch.device("meta"):
        model = scalar_filled_softmax()
    with pytest.raises(RuntimeError, match="to be on same device"), torch.no_grad():
        model(torch.empty(2, 8, device="meta"))
    meta = count(model, torch.randn(2, 8), device="meta")
    assert (meta.macs, meta.extra_flops, meta.params) == (cpu.macs, cpu.extra_flops, cpu.params)
    assert CPU_SCALARS_NOTE in meta.notes and CPU_SCALARS_NOTE not in cpu.notes
    with torch.device("meta"):
        positions = _CPUPositions()
    with pytest.raises(RuntimeError, match="expected device"):
        count(positions, torch.randn(2, 8), device="meta")


def test_a_buffer_made_by_the_legacy_constructor_is_built_on_meta() -> None:
    """``torch.Tensor([...])`` makes a CPU tensor even inside ``with torch.device("meta")``: a buffer
    registered from it is put on meta as it is registered (as ``model.to(device)`` moves it on a
    device), so the model counts on meta as on the CPU instead of mixing devices."""
    from user_models import legacy_buffer

    torch.manual_seed(0)
    cpu = count(legacy_buffer(), torch.randn(2, 8))
    meta = count_meta(legacy_buffer, lambda: torch.randn(2, 8), fallback="raise")
    assert (meta.macs, meta.extra_flops, meta.params, meta.device) == (cpu.macs, cpu.extra_flops, cpu.params, "meta")


def test_a_model_keeping_a_skeleton_on_meta_beside_its_weights_counts_where_they_are() -> None:
    """torch.func's ensembling recipe keeps a copy of one member on meta and runs it with the stacked
    weights: the model is counted on the CPU, where its weights and inputs are, by the reference and
    by the backends that refuse meta; a model with every parameter on meta is still counted there."""
    from flopaudit import audit
    from flopaudit.zoo.hard.structure import VmapEnsemble

    r = count(VmapEnsemble(), torch.randn(5, 8))
    assert (r.device, r.macs) == ("cpu,meta", 4 * 5 * (8 * 16 + 16 * 2))  # (where its tensors are)
    results = audit(VmapEnsemble(), torch.randn(5, 8), backends=["reference", "torch-profiler"], isolate=False)
    assert dict(zip(results["backend"], results["status"])) == {"reference": "ok", "torch-profiler": "ok"}
    with torch.device("meta"):
        assert count(nn.Linear(8, 4), torch.randn(2, 8)).device == "meta"


def test_a_constructor_that_moves_its_modules_to_a_device_builds_on_meta() -> None:
    """``module.to(device)``, ``.cpu()`` and ``.cuda()`` in a constructor would copy the meta
    tensors it made out to the device, and meta tensors have no values: while the model is built
    on meta they keep it there (a dtype given to ``to`` still casts), and the count equals the CPU's."""
    from user_models import moves_itself

    from flopaudit.reference.api import build_on_meta

    torch.manual_seed(0)
    cpu = count(moves_itself(), torch.randn(2, 8))
    moves = (torch.nn.Module.to, torch.nn.Module.cpu, torch.nn.Module.cuda)
    model, first_way_failed = build_on_meta(moves_itself)
    assert first_way_failed is None
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert model.head.weight.dtype == torch.float64 and model.body[0].weight.dtype == torch.float32
    meta = count_meta(moves_itself, lambda: torch.randn(2, 8), fallback="raise")
    assert (meta.macs, meta.extra_flops, meta.params, meta.device) == (cpu.macs, cpu.extra_flops, cpu.params, "meta")
    assert (torch.nn.Module.to, torch.nn.Module.cpu, torch.nn.Module.cuda) == moves  # put back


def _counted_on_meta_as_on_the_cpu(build: Callable[[], nn.Module], shape: tuple[int, ...], refused: str,
                                   note: str) -> tuple[ReferenceCount, ReferenceCount]:
    """``build()`` made on meta refuses a forward there (``refused``); counted on meta it gives the
    CPU's count and says ``note``; the way round is put back after the count. The two counts."""
    torch.manual_seed(0)
    cpu = count(build(), torch.randn(*shape))
    with torch.device("meta"):
        model = build()
    with pytest.raises((RuntimeError, ValueError), match=refused):
        model(torch.empty(*shape, device="meta"))
    meta = count(model, torch.randn(*shape), device="meta")
    assert (meta.macs, meta.extra_flops, meta.params) == (cpu.macs, cpu.extra_flops, cpu.params)
    assert note in meta.notes and note not in cpu.notes
    assert count_meta(build, lambda: torch.randn(*shape), fallback="raise").macs == cpu.macs
    with pytest.raises((RuntimeError, ValueError), match=refused):  # put back as it was
        model(torch.empty(*shape, device="meta"))
    return cpu, meta


def test_a_distributions_argument_checks_run_and_pass_on_meta() -> None:
    """``torch.distributions`` checks a distribution's arguments and asks whether every check passed,
    a value read. On meta the checks run (their operators are counted as on the CPU) and pass, and
    the count equals the CPU's and says so."""
    from user_models import gaussian_policy

    from flopaudit.reference.meta_workarounds import DISTRIBUTION_CHECKS_NOTE

    cpu, meta = _counted_on_meta_as_on_the_cpu(gaussian_policy, (4, 8), "meta", DISTRIBUTION_CHECKS_NOTE)
    read = "aten._local_scalar_dense.default"  # (the CPU's answers, which meta has none to read)
    assert [e.op for e in meta.events] == [e.op for e in cpu.events if e.op != read]


def test_a_cast_to_a_meta_tensors_type_name_casts_to_its_dtype_on_meta() -> None:
    """``x.type(y.type())`` raises on meta (``Tensor.type`` refuses the name ``torch.meta.FloatTensor``
    that ``Tensor.type()`` gives); there such a name casts to its dtype, as on the CPU, and the count,
    the cast to float64 included, equals the CPU's and says so."""
    from user_models import casts_by_type_name

    from flopaudit.reference.meta_workarounds import META_TYPE_NAMES_NOTE

    cpu, meta = _counted_on_meta_as_on_the_cpu(casts_by_type_name, (2, 8), "invalid type", META_TYPE_NAMES_NOTE)
    assert [e.op for e in meta.events] == [e.op for e in cpu.events]
    assert "aten._to_copy.default" in [e.op for e in cpu.events]


def test_an_assert_on_values_is_taken_to_hold_on_meta() -> None:
    """``assert cond`` on a tensor's values asks for a value meta tensors do not have (demucs checks
    its padding so). On meta such an assertion is taken to hold: its operators are counted as on the
    CPU, the count equals the CPU's and names the first assert; an ``if`` on values still fails."""
    import user_models
    from user_models import asserts_and_branches_on_values, asserts_values

    from flopaudit.reference.meta_workarounds import assertions_note

    source = Path(user_models.__file__).read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(source) if "assert torch.isfinite(x).all()" in text)
    note = assertions_note(f"user_models:forward (line {line})")
    cpu, meta = _counted_on_meta_as_on_the_cpu(asserts_values, (2, 2, 10), "meta", note)
    assert [e.op for e in meta.events] == [e.op for e in cpu.events]
    assert [e.op for e in cpu.events].count("aten._local_scalar_dense.default") == 2  # (the two asserts)
    with torch.device("meta"):
        branches = asserts_and_branches_on_values()
    with pytest.raises(RuntimeError, match="meta tensors"):
        count(branches, torch.randn(2, 2, 10), device="meta")


@pytest.mark.parametrize("enabled", [False, True])
def test_autocast_asked_for_on_meta_does_nothing_there(enabled: bool) -> None:
    """``torch.autocast("meta")`` raises ("unsupported scalarType"), where code that turns autocast
    off (or on) for its input's device runs on every device. On meta it does nothing, and the count
    equals the CPU's and says so."""
    from user_models import autocast_off, autocast_on

    from flopaudit.reference.meta_workarounds import AUTOCAST_NOTE

    _counted_on_meta_as_on_the_cpu(autocast_on if enabled else autocast_off, (2, 8), "unsupported scalarType",
                                   AUTOCAST_NOTE)


def test_flex_attention_runs_its_dense_kernel_on_meta() -> None:
    """``flex_attention`` refuses meta tensors in its device check (torchtitan's models): on meta the
    check lets them through, the operator runs its dense kernel there, and the count equals the CPU's
    and says so."""
    from user_models import flex_causal_attention

    from flopaudit.reference.meta_workarounds import FLEX_ATTENTION_NOTE

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (flex_attention called without torch.compile)
        cpu, meta = _counted_on_meta_as_on_the_cpu(flex_causal_attention, (2, 16, 8),
                                                   "FlexAttention is only supported on", FLEX_ATTENTION_NOTE)
    same = ("macs", "extra_flops", "bytes_read", "bytes_written")  # (calls: the CPU lifts one constant more)
    assert [getattr(meta.totals, k) for k in same] == [getattr(cpu.totals, k) for k in same]


def test_istfts_window_check_passes_on_meta() -> None:
    """``torch.istft`` checks its window's overlap-add with ``aten.equal``, which has no meta kernel
    (demucs' HDemucs, BS-RoFormer): on meta the check passes, every operator istft runs is counted as
    on the CPU, and the count equals the CPU's and says so."""
    from user_models import spectral_mask

    from flopaudit.reference.meta_workarounds import ISTFT_NOTE

    cpu, meta = _counted_on_meta_as_on_the_cpu(spectral_mask, (2, 512), "aten::equal", ISTFT_NOTE)
    kept = [e for e in cpu.events if e.op != "aten.equal.default"]  # (the check, answered on meta)
    assert [e.op for e in meta.events] == [e.op for e in kept]
    assert (meta.totals.macs, meta.totals.extra_flops) == (cpu.totals.macs, cpu.totals.extra_flops)
    assert meta.totals.bytes_read == sum(e.bytes_read for e in kept)


def test_autocast_given_a_dtype_on_meta_does_nothing_there() -> None:
    """``torch.autocast("meta", dtype=torch.float32)`` raises another error ("unsupported autocast
    device_type"), checking the device before the dtype (torchtitan's router): the same way round."""
    from user_models import float32_router

    from flopaudit.reference.meta_workarounds import AUTOCAST_NOTE

    _counted_on_meta_as_on_the_cpu(float32_router, (2, 8), "unsupported autocast device_type", AUTOCAST_NOTE)
