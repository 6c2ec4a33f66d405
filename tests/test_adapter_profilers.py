"""calflops, DeepSpeed's flops profiler, torch.profiler and torchprofile: units, options, what they leave behind."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.adapters import get_adapter, get_backend
from flopaudit.records import DECLARED_CAUSE, Status, Unit
from flopaudit.reports import build_report
from flopaudit.run import run_audit
from flopaudit.zoo.case import ModelCase, tensor_inputs


def _adapter(name: str):  # noqa: ANN202
    backend = get_backend(name)
    if not backend.available():
        pytest.skip(backend.missing_reason())
    return get_adapter(name)


def _predicted(backend: str, model: nn.Module, inputs: object) -> int:
    """The backend's ruleset on ``model(*inputs)``, recorded as the reference adapter records it for that backend."""
    from flopaudit.reference import count
    from flopaudit.reference.backend_rulesets import backend_rulesets
    from flopaudit.reference.pricing import predict

    rs = backend_rulesets()[backend]
    rc = count(model, inputs, ruleset=rs, no_grad=not rs.grad_enabled)
    return predict(rc.events, rc.module_call_records, rs, backend).macs


class ConvLinear(nn.Module):
    """Conv2d(3, 8, 3, padding=1) with bias, ReLU, Linear(8 * 4 * 4, 10) with bias."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


# MACs of ConvLinear on (2, 3, 4, 4): conv 2 x 8 x 16 positions x 27, linear 2 x 128 x 10
CONV = 2 * 8 * 16 * 27
LINEAR = 2 * 128 * 10


@pytest.mark.parametrize("backend", ["calflops", "deepspeed"])
def test_patched_profiler_unit_probe(backend: str) -> None:
    r = _adapter(backend).count(ConvLinear(), torch.randn(2, 3, 4, 4))
    assert r.status is Status.OK, r.error
    assert r.unit is Unit.MAC
    assert r.macs == r.raw_total == CONV + LINEAR
    # FLOPs: 2 x MACs, conv bias 2 x 8 x 16, relu 2 x 128 elements; the linear bias is not in F.linear's FLOPs
    assert dict(r.extra)["flops"] == 2 * (CONV + LINEAR) + 2 * 8 * 16 + 2 * 128
    assert r.module_macs() == {"": CONV + LINEAR, "conv": CONV, "fc": LINEAR}


def test_calflops_back_propagation_option() -> None:
    _adapter("calflops")
    from flopaudit.adapters.calflops import CalflopsAdapter

    forward = CalflopsAdapter().count(ConvLinear(), torch.randn(2, 3, 4, 4))
    training = CalflopsAdapter(include_backPropagation=True).count(ConvLinear(), torch.randn(2, 3, 4, 4))
    assert dict(forward.options)["include_backPropagation"] == "False"
    assert dict(training.options)["include_backPropagation"] == "True"
    assert training.macs == 3 * forward.macs  # forward + backward at compute_bp_factor 2.0


def test_calflops_training_step_is_its_forward_times_three() -> None:
    """--pass train: calflops with include_backPropagation, (CONV + LINEAR) x 3, though autograd computes no
    input gradient for the first layer (the reference's step: conv + its weight gradient, linear x 3)."""
    from flopaudit.passes import Pass

    step = Pass("train", optimizer="sgd")
    r = _adapter("calflops").count(ConvLinear(), torch.randn(2, 3, 4, 4), pass_=step)
    assert r.status is Status.OK, r.error
    assert r.macs == 3 * (CONV + LINEAR)
    assert dict(r.options)["include_backPropagation"] == "True" and dict(r.options)["pass"] == "'train'"
    ref = get_adapter("reference").count(ConvLinear(), torch.randn(2, 3, 4, 4), pass_=step)
    assert ref.macs == 2 * CONV + 3 * LINEAR
    prediction = ref.prediction("calflops")
    assert prediction is not None and prediction.macs == r.macs
    assert [(c.rule.split(":")[0], c.macs) for c in prediction.contributions] == [("the input needs no gradient (a "
                                                                                   "first layer, or only frozen "
                                                                                   "layers before it)", CONV)]


def test_calflops_params_are_the_trainable_ones() -> None:
    model = ConvLinear()
    model.conv.requires_grad_(False)
    r = _adapter("calflops").count(model, torch.randn(2, 3, 4, 4))
    assert r.params == 128 * 10 + 10  # the frozen conv's 224 are left out


@pytest.mark.parametrize("backend", ["calflops", "deepspeed"])
def test_patched_functions_restored_after_a_failure(backend: str) -> None:
    before = (F.conv2d, F.linear, torch.matmul, torch.Tensor.matmul, "matmul" in vars(torch.Tensor))
    r = _adapter(backend).count(nn.Conv2d(3, 8, 3), torch.randn(3, 8, 8))  # unbatched: their conv formula asserts
    assert r.status is Status.ERROR
    assert "_conv_flops_compute" in (r.error or "")
    assert (F.conv2d, F.linear, torch.matmul, torch.Tensor.matmul, "matmul" in vars(torch.Tensor)) == before
    assert _adapter(backend).count(ConvLinear(), torch.randn(2, 3, 4, 4)).macs == CONV + LINEAR


def test_deepspeed_counts_at_and_shared_modules_once() -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Linear(4, 4, bias=False))
            self.b = nn.Sequential(self.a[0])
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) @ self.w

    r = _adapter("deepspeed").count(Shared(), torch.randn(3, 4))
    assert r.macs == 2 * 3 * 16 + 3 * 16  # two calls of the shared Linear, then @ (patched Tensor.__matmul__)
    assert dict(r.options)["warm_up"] == "0"


def test_torch_profiler_halves_each_operator() -> None:
    class MulAdd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 6, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * 2 + 1

    r = _adapter("torch-profiler").count(MulAdd(), torch.randn(3, 4))
    assert r.unit is Unit.FLOP
    # mm 2 x 3 x 4 x 6 = 144 FLOPs; mul and add 18 elements each (1 FLOP per element)
    assert r.raw_total == 144 + 18 + 18
    assert r.macs == 72 + 9 + 9
    assert dict(r.per_op) == {"aten::mm": 72, "aten::mul": 9, "aten::add": 9}
    assert r.warnings == ()  # the profiler library's own log lines are dropped


def test_torch_profiler_prices_conv2d_only() -> None:
    r = _adapter("torch-profiler").count(nn.Conv1d(3, 4, 3), torch.randn(2, 3, 8))
    assert r.macs == 0  # aten::conv1d has no estimate
    r = _adapter("torch-profiler").count(nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8))
    assert r.macs == 2 * 4 * 36 * 27


@pytest.mark.parametrize(("layout", "train", "declared"), [
    ("transposed", False, 2 * (16 // 2)),  # one aten::add of 16 FLOPs per batch norm, 8 MACs each
    ("contiguous", False, 0),
    ("channels-last", False, 0),
    ("transposed", True, 0),  # batch statistics: no running variance read
])
def test_torch_profiler_declares_the_add_inside_the_batch_norm_kernel(layout: str, train: bool, declared: int) -> None:
    from flopaudit.adapters.torch_profiler import BATCH_NORM_EPSILON

    class TwoNorms(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.BatchNorm2d(16), nn.BatchNorm2d(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for norm in (self.a, self.b):
                if layout == "transposed":
                    x = x.transpose(2, 3)
                elif layout == "channels-last":
                    x = x.contiguous(memory_format=torch.channels_last)
                x = norm(x)
            return x

    model = TwoNorms().train(train)
    r = _adapter("torch-profiler").count(model, torch.randn(2, 16, 3, 5))
    assert r.status is Status.OK, r.error
    assert dict(r.extra).get(BATCH_NORM_EPSILON, 0) == declared
    assert r.macs == declared  # nothing else of a batch norm is priced


class Autocast(nn.Module):
    """A conv, a Linear and a direct torch.mm under CPU autocast (bf16)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 4)
        self.proj = nn.Parameter(torch.randn(4, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = self.fc(self.conv(x).mean((2, 3)))
            return torch.mm(h, self.proj).float()


def test_torch_profiler_declares_what_autocast_records_twice() -> None:
    """Autocast casts and calls conv2d and a direct mm again (two nested events, two
    estimates); nn.Linear's addmm runs once (autocast wraps aten::linear)."""
    from flopaudit.adapters.torch_profiler import RECORDED_TWICE

    conv, fc, mm = 2 * 8 * 6 * 6 * 27, 2 * 8 * 4, 2 * 4 * 6
    r = _adapter("torch-profiler").count(Autocast(), torch.randn(2, 3, 8, 8))
    assert r.status is Status.OK, r.error
    assert dict(r.extra) == {RECORDED_TWICE: conv + mm}
    assert r.macs == 2 * (conv + mm) + fc
    report = build_report(run_audit([ModelCase("autocast", Autocast, tensor_inputs(2, 3, 8, 8))],
                                    ["reference", "torch-profiler"], isolate=False))
    cell = report.cell("autocast", "torch-profiler")
    assert cell is not None and cell.residual == 0 and cell.classification != "unexplained", cell


def test_torch_profiler_prices_a_sparse_weight_update_as_its_kernels_adds() -> None:
    """peft's ShiRA adds a sparse COO delta to a dense weight. The profiler prices no in-place add and no
    sub, but the dense-sparse kernel runs aten::add (out=) over the dense weight: 1 FLOP per element;
    an out-of-place add with a sparse operand is priced, and so is the add its kernel runs inside it
    (declared as recorded twice). Every cell of the hard case is explained, for += and for - too."""
    from flopaudit.adapters.torch_profiler import RECORDED_TWICE
    from flopaudit.zoo import get_case

    case = get_case("sparse-delta-weight")
    model, inputs = case.instantiate()
    r = _adapter("torch-profiler").count(model, inputs)
    assert r.status is Status.OK, r.error
    weight, linear_sum = 32 * 32, 2 * 12 * 32
    # the products (2 x MACs), += (1 add), + (2 adds, one inside the other), the sum of the two products
    assert r.raw_total == 2 * 2 * 24 * 32 * 32 + weight + 2 * weight + linear_sum
    assert dict(r.extra) == {RECORDED_TWICE: weight // 2}

    class Subtracted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = case.build()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = self.inner
            delta = torch.sparse_coo_tensor(m.positions, m.values, m.weight.shape)
            w = m.weight.clone()
            w -= delta
            return F.linear(x, w - delta)

    cases = [case, ModelCase("subtracted", Subtracted, tensor_inputs(2, 12, 32))]
    report = build_report(run_audit(cases, ["reference", "torch-profiler"], isolate=False))
    for model_id in ("sparse-delta-weight", "subtracted"):
        cell = report.cell(model_id, "torch-profiler")
        assert cell is not None and cell.residual == 0 and cell.classification != "unexplained", cell
    # explain says what the rules give and what the profiler's own events declared, which make up its count
    from flopaudit.commands.explain import format_explanation

    text = format_explanation(report.cell("sparse-delta-weight", "torch-profiler"))
    assert "  reference under torch-profiler's rules: 50.560K MACs\n  and what torch-profiler declared of its own " \
           "count: +512 (51.072K MACs in all)\n" in text, text


def test_torchprofile_prices_elementwise_mul_and_declares_size_arithmetic() -> None:
    class Reshape(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, t, c = x.shape
            return self.fc(x.reshape(n * t, c) * 0.5)

    r = _adapter("torchprofile").count(Reshape(), torch.randn(2, 3, 8))
    assert r.status is Status.OK, r.error
    # linear 6 x 8 x 4 = 192; x * 0.5: 48 elements; n * t traced as a 0-dim aten::mul: 1
    assert r.macs == 192 + 48 + 1
    assert dict(r.extra) == {k: 1 for k, _ in r.extra if k.startswith(DECLARED_CAUSE)}
    assert len(r.extra) == 1


def test_torchprofile_declares_integer_products() -> None:
    from flopaudit.adapters.torchprofile import INTEGER_PRODUCTS, SIZE_ARITHMETIC

    class IndexedBias(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.randn(20))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = torch.arange(x.shape[0])[:, None].expand(-1, 4)  # (3, 4) integers
            return x * 2 + self.table[rows * 4 + torch.arange(4)]  # a float and an integer product

    r = _adapter("torchprofile").count(IndexedBias(), torch.randn(3, 4))
    assert r.status is Status.OK, r.error
    assert dict(r.extra).get(INTEGER_PRODUCTS) == 12  # the index product; x * 2 is priced as usual
    assert r.macs == 12 + 12 + dict(r.extra).get(SIZE_ARITHMETIC, 0)


class FreshGrid(nn.Module):
    """GridDecodeHead's forward making its grid on every call (no cache): the eager pass runs it too."""

    def __init__(self) -> None:
        super().__init__()
        self.pred = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(x.shape[-2], dtype=torch.float32),
                                torch.arange(x.shape[-1], dtype=torch.float32), indexing="ij")
        return self.pred(x) * 4 + torch.stack((xs, ys)) * 4


@pytest.mark.parametrize(("model", "booked"), [("cached", True), ("fresh", False)])
def test_torchprofile_names_the_work_a_trace_does_on_sizes_alone(model: str, booked: bool) -> None:
    """The grid made from sizes alone (2 x 8 x 8 products by the stride) is named as a conditional
    cause; it explains the cell where the eager pass took the grid from the model's cache, and is
    no cause where the eager pass made it too (the reference counted it)."""
    from flopaudit.adapters.torchprofile import SIZE_DERIVED_WORK
    from flopaudit.records import CONDITIONAL_CAUSE
    from flopaudit.zoo import get_case

    case = get_case("size-keyed-grid-cache") if model == "cached" else ModelCase("fresh-grid", FreshGrid,
                                                                                 tensor_inputs(1, 8, 8, 8))
    built, inputs = case.instantiate()
    r = _adapter("torchprofile").count(built, inputs)
    assert r.status is Status.OK, r.error
    assert dict(r.extra)[SIZE_DERIVED_WORK] == 2 * 8 * 8
    assert r.macs == 8 * 8 * 8 * 2 + 2 * 8 * 8 + 2 * 8 * 8  # the convolution, its scaling, the grid's
    report = build_report(run_audit([case], ["reference", "torchprofile"], isolate=False))
    cell = report.cell(case.id, "torchprofile")
    assert cell is not None and cell.residual == 0 and cell.classification != "unexplained", cell
    named = [c for c in cell.causes if c.rule == SIZE_DERIVED_WORK[len(CONDITIONAL_CAUSE):]]
    assert [c.macs for c in named] == ([2 * 8 * 8] if booked else [])


def test_torchprofile_declares_a_size_divided_by_a_tensor() -> None:
    """``size / x`` is the reciprocal times the size in an eager pass (one multiply per element),
    one aten::div under the trace, whose sizes are tensors; ``2.0 / x`` is the reciprocal times
    a constant in both."""
    from flopaudit.adapters.torchprofile import NUMBER_DIVISIONS

    class Divides(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x.shape[-1] * 2) / x + 2.0 / x

    r = _adapter("torchprofile").count(Divides(), torch.rand(3, 4) + 1)
    assert r.status is Status.OK, r.error
    assert dict(r.extra).get(NUMBER_DIVISIONS) == -12
    declared = sum(v for k, v in r.extra if k.startswith(DECLARED_CAUSE))  # (and the 0-dim size * 2)
    assert r.macs - declared == _predicted("torchprofile", Divides(), (torch.rand(3, 4) + 1,))


def test_torchprofile_fails_on_grouped_query_attention_and_says_which_check() -> None:
    class GroupedQuery(nn.Module):
        def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            return F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)

    r = _adapter("torchprofile").count(GroupedQuery(), (torch.randn(1, 4, 5, 8), torch.randn(1, 2, 5, 8)))
    assert r.status is Status.ERROR
    assert "_scaled_dot_product_attention (handlers.py:" in (r.error or "")
    assert "heads == prod(k[1:-2])" in (r.error or ""), r.error
    # and what it was pricing
    assert ("; pricing aten::scaled_dot_product_attention on inputs of shape 1x4x5x8, 1x2x5x8, 1x2x5x8 "
            "(grouped-query attention: fewer key/value heads than query heads)") in (r.error or ""), r.error


def test_torchprofile_fails_on_a_broadcast_added_term_of_baddbmm_and_says_so() -> None:
    class AlibiScores(nn.Module):
        """Attention scores with an ALiBi bias, as BLOOM computes them: one bias row per head,
        broadcast over the query positions (heads x 1 x keys)."""

        def forward(self, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            return torch.baddbmm(bias, q, k.transpose(1, 2))

    heads, length, dim = 4, 6, 8
    inputs = (torch.randn(heads, length, dim), torch.randn(heads, length, dim), torch.randn(heads, 1, length))
    r = _adapter("torchprofile").count(AlibiScores(), inputs)
    assert r.status is Status.ERROR
    assert "_baddbmm (handlers.py:" in (r.error or "") and "assert n == n1" in (r.error or ""), r.error
    assert (f"; pricing aten::baddbmm on inputs of shape {heads}x1x{length}, {heads}x{length}x{dim}, "
            f"{heads}x{dim}x{length}") in (r.error or ""), r.error
    assert (f"(the added term, {heads}x1x{length}, broadcasts to the product's {heads}x{length}x{length}, "
            "as an ALiBi bias does") in (r.error or ""), r.error


def test_torchprofile_lists_operators_without_handlers() -> None:
    r = _adapter("torchprofile").count(nn.GRU(4, 8), torch.randn(5, 2, 4))
    assert r.macs == 0
    assert dict(r.unsupported) == {"aten::gru": 1}


class KeepByNms(nn.Module):
    """``torchvision.ops.batched_nms`` on the given boxes, the kept boxes doubled."""

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import batched_nms

        return boxes[batched_nms(boxes, scores, labels, 0.5)] * 2


@pytest.mark.parametrize("n", [10, 1001])  # up to 4,000 coordinates the CPU path is the coordinate trick
def test_torchprofile_sees_batched_nms_as_one_scripted_call(n: int) -> None:
    from torchvision.ops import batched_nms

    from flopaudit.reference import count
    from flopaudit.reference.backend_rulesets import backend_rulesets

    torch.manual_seed(0)
    corner = torch.rand(n, 2) * 50
    boxes = torch.cat([corner, corner + 1 + torch.rand(n, 2) * 20], dim=1)
    scores, labels = torch.rand(n), torch.randint(0, 3, (n,))
    kept = len(batched_nms(boxes, scores, labels, 0.5))
    # only the doubling of the kept boxes: the trick's multiply (one per box) is inside the scripted call
    expected = 4 * kept
    r = _adapter("torchprofile").count(KeepByNms(), (boxes, scores, labels))
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert dict(r.unsupported).get("prim::callfunction") == 1
    rs = backend_rulesets()["torchprofile"]
    rc = count(KeepByNms(), (boxes, scores, labels), ruleset=rs, no_grad=not rs.grad_enabled)
    trick = [e for e in rc.events if e.op.startswith("aten.mul") and e.output_shapes == ((n,),)]
    assert len(trick) == (1 if 4 * n <= 4000 else 0)
    assert all(e.patched_in.endswith("_batched_nms_coordinate_trick") for e in trick)
    assert _predicted("torchprofile", KeepByNms(), (boxes, scores, labels)) == expected


class LinearThen(nn.Module):
    """Linear(8, 8) without bias on x, then ``fn(h, y)``."""

    def __init__(self, fn) -> None:  # noqa: ANN001
        super().__init__()
        self.fc = nn.Linear(8, 8, bias=False)
        self.fn = fn

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(self.fc(x), y)


#: Calls a JIT trace holds as one operator node without a handler (in fvcore and torchprofile), where a
#: dispatch mode sees the multiplies, means and products they decompose into.
COMPOSITE = {
    "F.rms_norm": lambda h, y: F.rms_norm(h, (8,), torch.ones(8)),
    "nn.RMSNorm": lambda h, y: nn.RMSNorm(8)(h),
    "torch.cosine_similarity": lambda h, y: torch.cosine_similarity(h, y),
    "F.kl_div": lambda h, y: F.kl_div(h.log_softmax(-1), y.softmax(-1), reduction="batchmean"),
    "F.l1_loss": lambda h, y: F.l1_loss(h, y),  # (DETR's cardinality error)
    "nn.L1Loss": lambda h, y: nn.L1Loss()(h, y),
    "F.triplet_margin_loss": lambda h, y: F.triplet_margin_loss(h, y, y.flip(0)),
    "F.cosine_embedding_loss": lambda h, y: F.cosine_embedding_loss(h, y, torch.ones(4)),
    "F.poisson_nll_loss": lambda h, y: F.poisson_nll_loss(h, y.abs()),
    "torch.trapezoid": lambda h, y: torch.trapezoid(h),
    "torch.tensordot": lambda h, y: torch.tensordot(h, y.T, 1),
    "Tensor.inner": lambda h, y: h.inner(y),
    "torch.outer": lambda h, y: torch.outer(h[0], y[0]),
    "torch.kron": lambda h, y: torch.kron(h[:2, :2], y[:2, :2]),
    "torch.linalg.multi_dot": lambda h, y: torch.linalg.multi_dot([h, y.T, h]),
    "torch.linalg.matrix_power": lambda h, y: torch.linalg.matrix_power(h.reshape(2, 4, 4), 3),
    # an audio front end's spectrogram: the window multiply and the overlap-add around the FFT
    "torch.stft": lambda h, y: torch.stft(h, 4, 2, window=torch.hann_window(4), return_complex=True).abs(),
    "Tensor.istft": lambda h, y: torch.stft(h, 4, 2, window=torch.hann_window(4), return_complex=True)
    .istft(4, 2, window=torch.hann_window(4), length=8),
    # statistics a model computes on its features: mm inside, or multiplies and means
    "torch.cov": lambda h, y: torch.cov(h),
    "Tensor.corrcoef": lambda h, y: h.corrcoef(),
    "torch.linalg.vecdot": lambda h, y: torch.linalg.vecdot(h, y),
    "torch.quantile": lambda h, y: torch.quantile(h, torch.tensor([0.25, 0.75]), dim=-1),
    "Tensor.nanquantile": lambda h, y: h.nanquantile(0.3, dim=-1),
    "torch.special.ndtr": lambda h, y: torch.special.ndtr(h),
    "F.ctc_loss": lambda h, y: F.ctc_loss(torch.cat([h, y], 1).reshape(4, 1, 16).log_softmax(-1),
                                          torch.tensor([[1, 2]]), torch.tensor([4]), torch.tensor([2])),
}


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
@pytest.mark.parametrize("call", sorted(COMPOSITE))
def test_a_traced_composite_operator_without_a_handler_counts_nothing_of_what_it_decomposes_into(
        backend: str, call: str) -> None:
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    expected = 4 * 8 * 8  # the Linear alone: the call is one node without a handler
    torch.manual_seed(0)
    r = _adapter(backend).count(LinearThen(COMPOSITE[call]), (x, y))
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert _predicted(backend, LinearThen(COMPOSITE[call]), (x, y)) == expected


@pytest.mark.parametrize("padding, x, macs", [
    (1, (2, 3, 8, 8), 2 * 8 * 8 * 8 * 3 * 9),
    ("same", (2, 3, 8, 8), 0),  # one aten::_convolution_mode node, without a handler
    ("valid", (2, 3, 8, 8), 0),
    (0, (3, 8, 8), 8 * 6 * 6 * 3 * 9),  # unbatched: one sample
    ("valid", (3, 8, 8), 0),
])
def test_torchprofile_counts_nothing_for_a_convolution_with_string_padding(
        padding: int | str, x: tuple[int, ...], macs: int) -> None:
    inputs = torch.randn(*x)
    r = _adapter("torchprofile").count(nn.Conv2d(3, 8, 3, padding=padding), inputs)
    assert r.status is Status.OK, r.error
    assert r.macs == macs
    assert _predicted("torchprofile", nn.Conv2d(3, 8, 3, padding=padding), inputs) == macs


@pytest.mark.parametrize("n, i1, i2, o, bias", [(4, 8, 8, 4, True), (3, 5, 6, 2, False), (1, 3, 7, 5, True)])
def test_torch_profiler_prices_the_bmm_calls_inside_bilinear(n: int, i1: int, i2: int, o: int, bias: bool) -> None:
    x, y = torch.randn(n, i1), torch.randn(n, i2)
    # per output feature two bmm: (N x I1) @ (I1 x I2), then N dot products of length I2; the bias add
    # is 1 FLOP per output element, halved (rounded down) as every operator
    expected = o * n * i2 * (i1 + 1) + (n * o // 2 if bias else 0)
    r = _adapter("torch-profiler").count(nn.Bilinear(i1, i2, o, bias=bias), (x, y))
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert _predicted("torch-profiler", nn.Bilinear(i1, i2, o, bias=bias), (x, y)) == expected


def test_torch_profiler_prices_the_mul_inside_renorm() -> None:
    class Renorm(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.renorm(x, 2, 1, 1.0)

    x = torch.randn(6, 5)
    expected = 6 * 5 // 2  # the kernel's aten::mul of the input by each slice's factor, halved
    r = _adapter("torch-profiler").count(Renorm(), x)
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert _predicted("torch-profiler", Renorm(), x) == expected


class AttentionWithWeights(nn.Module):
    """``nn.MultiheadAttention(16, 4)`` returning its head-averaged attention weights too."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attn(x, x, x, need_weights=True)


def test_torchprofile_prices_the_mean_of_attention_weights_the_model_returns() -> None:
    """The trace keeps the mean over heads (2 x 5 x 5 weights) because the model returns it; the zoo's
    attention cases, which discard the weights, pin the other side."""
    x = torch.randn(2, 5, 16)
    returned = _adapter("torchprofile").count(AttentionWithWeights(), x)
    assert returned.status is Status.OK, returned.error
    declared = sum(v for k, v in returned.extra if k.startswith(DECLARED_CAUSE))
    assert _predicted("torchprofile", AttentionWithWeights(), x) == returned.macs - declared


@pytest.mark.parametrize("pass_", ["inference", "train"])
def test_calflops_does_not_apply_to_inputs_it_cannot_move(pass_: str) -> None:
    """calflops calls ``.to(device)`` on every keyword argument's value (where there are any, else
    on every positional argument): a flag or a list of tensors stops it before the model runs
    ("'bool' object has no attribute 'to'"); a positional flag beside keyword arguments is never moved."""
    from flopaudit.inputs import ModelInputs
    from flopaudit.passes import pass_of

    class Flagged(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, scale: bool = False) -> torch.Tensor:
            return self.fc(x) * (2 if scale else 1)

    adapter = _adapter("calflops")
    step = pass_of(pass_)
    x = torch.randn(2, 4)
    for inputs, named in ((ModelInputs((x, True)), "a bool as argument 1"),
                          (ModelInputs((), {"x": x, "scale": True}), "a bool as scale")):
        r = adapter.count(Flagged(), inputs, pass_=step)
        assert r.status is Status.NOT_APPLICABLE, r.error
        assert "calflops moves every input with .to(device)" in (r.error or "") and named in (r.error or "")
    r = adapter.count(Flagged(), ModelInputs((x,), {"scale": x.new_ones(())}), pass_=step)
    assert r.status is Status.OK and r.macs == 2 * 4 * 4 * (3 if pass_ == "train" else 1)


@pytest.mark.parametrize("backend", ["calflops", "deepspeed"])
def test_einsum_given_its_operands_as_one_tuple_is_named(backend: str) -> None:
    """Longformer calls ``torch.einsum("bcxd,bcyd->bcxy", (query, key))``; calflops' and DeepSpeed's einsum
    rule reads every operand's ``.shape`` and fails on the tuple: the error names the call and the module."""

    class Scores(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bxd,byd->bxy", (q, k))

    model = nn.Sequential()
    model.add_module("scores", Scores())

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(4, 4)
            self.attention = model

        def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return self.attention.scores(self.query(q), k)

    r = _adapter(backend).count(Wrapped(), (torch.randn(2, 3, 4), torch.randn(2, 5, 4)))
    assert r.status is Status.ERROR
    assert ("AttributeError: 'tuple' object has no attribute 'shape'; torch.einsum('bxd,byd->bxy', ...) in module "
            "'attention.scores' (Scores) is given its operands as one tuple") in (r.error or ""), r.error


def test_calflops_on_a_model_without_parameters_fails_where_calflops_reads_them() -> None:
    """calflops reads ``next(model.parameters()).device``: the error says so, located in calflops."""
    _adapter("calflops")

    class Doubler(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    r = get_adapter("calflops").count(Doubler(), torch.randn(2, 3))
    assert r.status is Status.ERROR
    assert "next(model.parameters())" in (r.error or "") and "(raised in calflops.flops_counter, line" in (r.error or "")


class _FrozenAttention(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(64, 4, batch_first=True).requires_grad_(False).eval()
        self.need_weights = need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


@pytest.mark.parametrize("need_weights", [False, True])
def test_torch_profiler_prices_the_products_inside_a_frozen_attention_fast_path(need_weights: bool) -> None:
    """A frozen nn.MultiheadAttention runs aten::_native_multi_head_attention even with autograd on;
    the profiler prices the mm/bmm/addmm inside it: 2 x its MACs, halved back to the MACs."""
    x = torch.randn(2, 10, 64)
    n, length, e = x.shape
    expected = 4 * n * length * e * e + 2 * n * length * length * e  # projections + scores + weighted sum
    r = _adapter("torch-profiler").count(_FrozenAttention(need_weights), x)
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert _predicted("torch-profiler", _FrozenAttention(need_weights), x) == expected


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_torch_profiler_misses_the_first_feed_forward_product_of_a_frozen_encoder_layer(activation: str) -> None:
    """A frozen nn.TransformerEncoderLayer runs aten::_transformer_encoder_layer_fwd with autograd on;
    the profiler prices its attention and second feed-forward products, not the first (a fused
    _addmm_activation)."""
    def layer() -> nn.Module:
        block = nn.TransformerEncoderLayer(64, 4, 128, activation=activation, batch_first=True)
        return block.requires_grad_(False).eval()

    x = torch.randn(2, 10, 64)
    n, length, e = x.shape
    expected = 4 * n * length * e * e + 2 * n * length * length * e + n * length * 128 * e  # attention + linear2
    r = _adapter("torch-profiler").count(layer(), x)
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert _predicted("torch-profiler", layer(), x) == expected


def test_a_counts_warnings_carry_no_log_time_stamps() -> None:
    """torch's C++ warnings print a time stamp (``[W1205 12:00:25.764389823 util.cpp:845] ...``):
    kept, two counts of one model would differ (a cached count from a fresh one)."""
    from flopaudit.adapters.base import _dedupe

    stamped = ["[W1205 12:00:25.764389823 util.cpp:845] Warning: Failed to compute flops for op aten::conv2d "
               "(function computeFlops)",
               "[W1205 12:01:02.000000001 util.cpp:845] Warning: Failed to compute flops for op aten::conv2d "
               "(function computeFlops)",
               "UserWarning: [W] stays as it is"]
    assert _dedupe(stamped) == ("Warning: Failed to compute flops for op aten::conv2d (function computeFlops)",
                                "UserWarning: [W] stays as it is")


@pytest.mark.filterwarnings("ignore:(?s).*torch.ao.quantization is deprecated", "ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("hidden, layers, bidirectional, packed", [
    (5, 1, False, False),  # 3 x 5 elements per operator: odd, each rounded down
    (6, 2, True, False),
    (6, 2, True, True),  # packed: the steps' batch sizes are 3, 3, 2, 1
])
def test_torch_profiler_prices_the_cells_of_a_dynamically_quantized_rnn(
        kind: type[nn.RNNBase], hidden: int, layers: int, bidirectional: bool, packed: bool) -> None:
    torch.manual_seed(0)
    model = torch.ao.quantization.quantize_dynamic(
        nn.Sequential(kind(4, hidden, num_layers=layers, bidirectional=bidirectional, batch_first=True)), {kind},
        dtype=torch.qint8)
    x = torch.randn(3, 4, 4)
    inputs = (nn.utils.rnn.pack_padded_sequence(x, [4, 3, 2], batch_first=True),) if packed else (x,)
    r = _adapter("torch-profiler").count(model, inputs)
    assert r.status is Status.OK, r.error
    assert r.macs > 0  # the cells' own operators; the int8 products have no estimate
    assert _predicted("torch-profiler", model, inputs) == r.macs


@pytest.mark.parametrize("rows", [26, 31])
def test_torch_profiler_prices_the_product_inside_cdist_past_25_rows(rows: int) -> None:
    class Cdist(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.cdist(a, b)

    a, b = torch.randn(3, rows, 5), torch.randn(3, 7, 5)
    # the bmm of (rows x 7) distances over 5 + 2 features, and x1 * -2 (1 FLOP per element, halved, rounded down)
    expected = 3 * rows * 7 * (5 + 2) + 3 * rows * 5 // 2
    r = _adapter("torch-profiler").count(Cdist(), (a, b))
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert _predicted("torch-profiler", Cdist(), (a, b)) == expected


@pytest.mark.parametrize("align_corners", [False, True])
def test_torch_profiler_prices_the_product_inside_affine_grid(align_corners: bool) -> None:
    class Grid(nn.Module):
        def forward(self, theta: torch.Tensor) -> torch.Tensor:
            return F.affine_grid(theta, [2, 3, 7, 5], align_corners=align_corners)

    theta = torch.randn(2, 2, 3)
    # the bmm of 2 x 35 positions by 3 x 2; without align_corners a mul scaling each linspace (7 and 5 steps),
    # each halved and rounded down on its own
    expected = 2 * 35 * 3 * 2 + (0 if align_corners else (7 // 2 + 5 // 2))
    r = _adapter("torch-profiler").count(Grid(), theta)
    assert r.status is Status.OK, r.error
    assert r.macs == expected
    assert _predicted("torch-profiler", Grid(), theta) == expected


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("form", ["spmm", "matmul", "sparse.mm"])
def test_torch_profiler_prices_a_sparse_product_as_dense(form: str, layout: str) -> None:
    """torch.spmm and @ are an aten::mm priced from shapes plus the aten::addmm the sparse kernel
    dispatches (2 x dense each); torch.sparse.mm only that aten::addmm. A CSR kernel's aten::addmm
    calls aten::addmm again (one more 2 x dense: the adapter's declared cause)."""
    from flopaudit.adapters.torch_profiler import RECORDED_TWICE

    fn = {"spmm": torch.spmm, "matmul": lambda a, x: a @ x, "sparse.mm": torch.sparse.mm}[form]

    class Product(nn.Module):
        def forward(self, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return fn(a, x)

    a = torch.eye(9)[:, torch.randperm(9)].to_sparse()  # 9 stored elements of 81
    if layout == "csr":
        a = a.to_sparse_csr()
    x = torch.randn(9, 5)
    dense = 9 * 9 * 5
    predicted = dense * (1 if form == "sparse.mm" else 2)
    declared = dense if layout == "csr" else 0
    r = _adapter("torch-profiler").count(Product(), (a, x))
    assert r.status is Status.OK, r.error
    assert r.macs == predicted + declared
    assert dict(r.extra) == ({RECORDED_TWICE: declared} if declared else {})
    assert _predicted("torch-profiler", Product(), (a, x)) == predicted
    flop_counter = _adapter("torch-flop-counter").count(Product(), (a, x))
    assert flop_counter.macs == (0 if form == "sparse.mm" else dense)  # mm from shapes; no formula for _sparse_addmm
    assert _predicted("torch-flop-counter", Product(), (a, x)) == flop_counter.macs


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("shape", [(6, 5, 7), (2, 9, 11)])
def test_torch_profiler_prices_a_product_of_two_sparse_tensors(layout: str, shape: tuple[int, int, int]) -> None:
    """Two COO operands: one aten::mm priced as if dense. Two CSR operands: that aten::mm, the
    kernel's aten::addmm (twice, one inside the other: declared) and its aten::add into the
    (M, N) result (PyG's GraphUNet squares its CSR adjacency so). The reference prices one
    multiply-add per pair of stored elements that meet."""
    from flopaudit.adapters.torch_profiler import RECORDED_TWICE

    class Square(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a @ b

    m, k, n = shape
    g = torch.Generator().manual_seed(0)
    a = ((torch.rand(m, k, generator=g) < 0.4) * torch.randn(m, k, generator=g)).to_sparse()
    b = ((torch.rand(k, n, generator=g) < 0.4) * torch.randn(k, n, generator=g)).to_sparse()
    if layout == "csr":
        a, b = a.to_sparse_csr(), b.to_sparse_csr()
    dense = m * k * n
    predicted = 2 * dense + m * n // 2 if layout == "csr" else dense
    r = _adapter("torch-profiler").count(Square(), (a, b))
    assert r.status is Status.OK, r.error
    assert r.macs == predicted + (dense if layout == "csr" else 0)
    assert _predicted("torch-profiler", Square(), (a, b)) == predicted
    assert dict(r.extra) == ({RECORDED_TWICE: dense} if layout == "csr" else {})
    pairs = int(((a.to_dense() != 0).float() @ (b.to_dense() != 0).float()).sum())
    from flopaudit.reference import count

    assert count(Square(), (a, b)).macs == pairs


def test_deepspeed_on_attention_given_by_keyword_names_the_call() -> None:
    """diffusers' attention dispatch calls ``F.scaled_dot_product_attention(query=q, key=k, value=v)``;
    DeepSpeed's wrapper passes them to its rule ``_attn_flops_compute(q, k, v, ...)``, which takes them
    by position: the error names the keywords and the module; a positional call is counted as before."""

    class Attend(nn.Module):
        def __init__(self, by_keyword: bool) -> None:
            super().__init__()
            self.by_keyword = by_keyword

        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            if self.by_keyword:
                return F.scaled_dot_product_attention(q, key=k, value=v)
            return F.scaled_dot_product_attention(q, k, v)

    class Block(nn.Module):
        def __init__(self, by_keyword: bool) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8)
            self.attn = Attend(by_keyword)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = self.proj(x)
            return self.attn(q, x, x)

    x = torch.randn(2, 5, 8)
    adapter = _adapter("deepspeed")
    r = adapter.count(Block(by_keyword=True), (x,))
    assert r.status is Status.ERROR
    assert ("F.scaled_dot_product_attention in module 'attn' (Attend) is given key, value by keyword, which torch "
            "accepts and the counter's attention rule, _attn_flops_compute(q, k, v, ...), does not") in (r.error or ""), \
        r.error
    ok = adapter.count(Block(by_keyword=False), (x,))
    # Linear 2 x 5 x 8 x 8; attention prod(q) x Lk + prod(q[:-1]) x Lk x Dv = 80 x 5 + 10 x 5 x 8
    assert ok.status is Status.OK and ok.macs == 2 * 5 * 8 * 8 + 80 * 5 + 10 * 5 * 8


@pytest.mark.parametrize("backend", ["calflops", "deepspeed"])
def test_a_convolution_given_its_stride_as_a_list_names_the_module(backend: str) -> None:
    """efficientnet-pytorch's ``Conv2dStaticSamePadding`` (segmentation_models_pytorch's efficientnet
    encoders) keeps ``self.stride`` as a list and passes it to ``F.conv2d``: calflops' and DeepSpeed's
    convolution rule repeats the list and fails on ``int // list``. The error names the module and the
    argument."""

    class StaticSamePadding(nn.Conv2d):
        def __init__(self) -> None:
            super().__init__(3, 8, 3)
            self.stride = [2, 2]  # as efficientnet-pytorch sets it: a list

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(F.pad(x, [1, 1, 1, 1]), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    class Stem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_stem = StaticSamePadding()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv_stem(x)

    r = _adapter(backend).count(Stem(), torch.randn(1, 3, 16, 16))
    assert r.status is Status.ERROR
    assert "unsupported operand type(s) for //: 'int' and 'list'" in (r.error or ""), r.error
    assert ("a convolution in module 'conv_stem' (StaticSamePadding) is given stride=[2, 2] as a list, which the "
            "counter's convolution rule takes only as a tuple or an int: it repeats the list once per spatial "
            "dimension") in (r.error or ""), r.error


@pytest.mark.parametrize("batch", [1, 2])
def test_calflops_on_a_scale_factor_per_dimension_names_the_call_unless_it_matches_the_batch(batch: int) -> None:
    """Wan's VAE upsamples with ``nn.Upsample(scale_factor=(2.0, 2.0))``; calflops' interpolate rule reads
    the tuple as such only when its length is ``len(input)``, the batch size, and raises it to a power
    otherwise (a TypeError): the error names the factors, the batch and the module. Where the length is
    the batch size, calflops counts (its rule's product is discarded: interpolate adds no MACs)."""

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.Upsample(scale_factor=(2.0, 2.0), mode="nearest")
            self.conv = nn.Conv2d(2, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.up(x))

    r = _adapter("calflops").count(Decoder(), torch.randn(batch, 2, 4, 4))
    if batch == 1:
        assert r.status is Status.ERROR
        assert ("F.interpolate in module 'up' (Upsample) is given scale_factor=(2.0, 2.0), one factor per spatial "
                "dimension, which the counter's interpolate rule reads as a tuple only when its length is len(input), "
                "the batch size (1), and otherwise raises to a power") in (r.error or ""), r.error
    else:  # the 1x1 convolution on the upsampled 8x8 map: 2 x 64 positions x 2 x 3
        assert r.status is Status.OK and r.macs == batch * 64 * 2 * 3


def test_ptflops_on_attention_called_by_keyword_names_the_module() -> None:
    """Mask2Former calls ``nn.MultiheadAttention`` as ``self_attn(query=q, key=k, value=v)``; ptflops' hook
    for it unpacks ``q, k, v = input``, and a hook registered without ``with_kwargs`` is given the
    positional inputs alone: none. The error names the module."""

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self_attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.self_attn(query=x, key=x, value=x)[0]

    r = _adapter("ptflops-pytorch").count(Decoder(), torch.randn(2, 5, 8))
    assert r.status is Status.ERROR
    assert (r.error or "").startswith("ValueError: not enough values to unpack (expected 3, got 0)"), r.error
    assert ("; module 'self_attn' (MultiheadAttention) was called with keyword arguments only, and the counter's "
            "forward hook, which is given a module's positional inputs alone, found none") in (r.error or ""), r.error


def test_ptflops_on_attention_given_its_value_by_keyword_names_the_module() -> None:
    """ultralytics' RT-DETR encoder calls ``self.ma(q, k, value=src, attn_mask=...)``: ptflops' hook is
    given ``(q, k)`` and fails to unpack three. The error names the module and what it was given."""

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ma = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.ma(x + 1, x + 1, value=x)[0]

    r = _adapter("ptflops-pytorch").count(Encoder(), torch.randn(2, 5, 8))
    assert r.status is Status.ERROR
    assert (r.error or "").startswith("ValueError: not enough values to unpack (expected 3, got 2)"), r.error
    assert ("; module 'ma' (MultiheadAttention) was called with 2 positional arguments and the rest as keyword "
            "arguments, and the counter's forward hook, which is given a module's positional inputs alone, "
            "unpacks 3") in (r.error or ""), r.error


@pytest.mark.parametrize("backend", ["calflops", "deepspeed"])
def test_a_patched_call_made_while_no_module_runs_counts_zero(backend: str) -> None:
    """The wrappers add a call to the list of the innermost module whose hooks are running, and the
    total adds up those lists: a root whose ``__call__`` runs its forward itself (gpytorch's
    modules) runs ``x @ w`` while no module does, and only the head called as usual counts."""
    from flopaudit.zoo import get_case
    from flopaudit.zoo.hard.structure import RootCallsForwardItself

    r = _adapter(backend).count(RootCallsForwardItself(), torch.randn(5, 8))
    assert r.status is Status.OK, r.error
    assert r.macs == 5 * 8 * 4 == _predicted(backend, RootCallsForwardItself(), (torch.randn(5, 8),))
    case = get_case("root-calls-forward-itself")
    cell = build_report(run_audit([case], ["reference", backend], isolate=False)).cell(case.id, backend)
    assert cell is not None and cell.residual == 0
    assert [(c.kind, c.macs) for c in cell.causes] == [("missed-functional", -5 * 8 * 8)]
    assert "no module of the model is running" in cell.causes[0].rule


def test_torch_profiler_declares_its_estimates_inside_a_scripted_function() -> None:
    """The profiler prices the operators a ``torch.jit.script`` function runs from the input shapes
    the graph executor records, which depend on the function's earlier calls in the process
    (geoopt's Poincare ball reads 510 or 1,302 MACs). The adapter declares what it estimated inside
    such calls, and the ruleset prices the operators dispatched there 0: the two add up."""
    from user_models import calls_scripted_products

    from flopaudit.adapters.torch_profiler import SCRIPT_FUNCTION_OPS

    r = _adapter("torch-profiler").count(calls_scripted_products(), torch.randn(4, 8))
    assert r.status is Status.OK, r.error
    assert dict(r.extra) == {SCRIPT_FUNCTION_OPS: 6 * (4 * 8) // 2}  # six products and sums, 1 FLOP per element
    assert r.macs - dict(r.extra)[SCRIPT_FUNCTION_OPS] == 4 * 8 * 8 == _predicted(
        "torch-profiler", calls_scripted_products(), (torch.randn(4, 8),))


def test_torch_profiler_declares_its_elementwise_estimates_inside_a_scripted_module() -> None:
    """TorchScript's graph executor optimises a scripted module's method after its first calls and may
    reorder or rewrite its products and sums (MACE's e3nn layers read 3,327 MACs of them in the first
    forward, 3,855 in every later one), and the profiler prices those one FLOP per element of the
    first input. The adapter declares its aten::mul/aten::add estimates inside TorchScript code, the
    ruleset prices those operators 0 in a scripted module: the two add up, the Linear's product aside."""
    from user_models import holds_scripted_products

    from flopaudit.adapters.torch_profiler import SCRIPTED_ELEMENTWISE

    r = _adapter("torch-profiler").count(holds_scripted_products(), torch.randn(4, 8))
    assert r.status is Status.OK, r.error
    assert dict(r.extra) == {SCRIPTED_ELEMENTWISE: 6 * (4 * 8) // 2}  # six products and sums, 1 FLOP per element
    assert r.macs - dict(r.extra)[SCRIPTED_ELEMENTWISE] == 4 * 8 * 8 == _predicted(
        "torch-profiler", holds_scripted_products(), (torch.randn(4, 8),))


def test_torchprofile_holds_a_scripted_function_as_one_node() -> None:
    """A JIT trace records a ``torch.jit.script`` function's call as one ``prim::CallFunction`` node,
    which torchprofile has no handler for: the products inside count 0, as the ruleset predicts."""
    from user_models import calls_scripted_products

    r = _adapter("torchprofile").count(calls_scripted_products(), torch.randn(4, 8))
    assert r.status is Status.OK, r.error
    assert r.macs == 4 * 8 * 8 == _predicted("torchprofile", calls_scripted_products(), (torch.randn(4, 8),))
    assert dict(r.unsupported).get("prim::callfunction") == 1


@pytest.mark.parametrize("how", ["grad", "jacobian"])
def test_torch_profiler_declares_its_per_sample_records_under_batched_gradients(how: str) -> None:
    """Under torch's older vmap (``autograd.grad(is_grads_batched=True)``, ``jacobian(vectorize=True)``)
    the profiler records the backward's product at the per-sample shapes, and inside it the batched
    product the dispatch mode sees. The adapter declares the per-sample records only: with the
    ruleset's prediction they add up to the profiler's count."""
    from flopaudit.adapters.torch_profiler import BATCHED_GRAD_OPS
    from flopaudit.zoo.hard.structure import BatchedGradJacobianTrace

    class Jacobian(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.autograd.functional.jacobian(self.f, x, vectorize=True)

    model = BatchedGradJacobianTrace() if how == "grad" else Jacobian()
    x = torch.randn(3, 4)
    r = _adapter("torch-profiler").count(model, x)
    assert r.status is Status.OK, r.error
    declared = dict(r.extra)[BATCHED_GRAD_OPS]
    assert declared == 3 * 4 * 4  # the backward's product of one row of the identity: (3, 4) x (4, 4)
    assert r.macs - declared == _predicted("torch-profiler", model, (x,))
    plain = _adapter("torch-profiler").count(nn.Linear(4, 4), x)
    assert BATCHED_GRAD_OPS not in dict(plain.extra)


def test_torch_profiler_declares_its_estimates_under_vmap() -> None:
    """Under ``torch.func.vmap`` the profiler records each operator at the per-sample shapes it is
    called with and again as the batched operators beneath: an ensemble of four MLPs run with stacked
    weights reads more than its work. The adapter declares its estimates inside vmap, the ruleset
    prices the operators dispatched there 0, and the two add up; the count outside vmap is untouched."""
    from flopaudit.adapters.torch_profiler import VMAP_OPS
    from flopaudit.zoo.hard.structure import VmapEnsemble

    r = _adapter("torch-profiler").count(VmapEnsemble(), torch.randn(5, 8))
    assert r.status is Status.OK, r.error
    declared = dict(r.extra)[VMAP_OPS]
    assert declared > 4 * 5 * (8 * 16 + 16 * 2)  # (more than the ensemble's products)
    assert r.macs == declared == r.macs - _predicted("torch-profiler", VmapEnsemble(), (torch.randn(5, 8),))
    outside = _adapter("torch-profiler").count(nn.Linear(8, 4), torch.randn(2, 8))
    assert VMAP_OPS not in dict(outside.extra) and outside.macs == 2 * 8 * 4


class _GradientsMeet(nn.Module):
    """An energy of positions whose terms' gradients of the positions meet, and its forces by
    ``torch.autograd.grad`` (``create_graph`` as given). ``kind``: where the gradients meet: two
    products (``two``), an expanded sum (its gradient is a view), a view and an unsqueeze, two slices
    and the whole, ``h + h`` (one gradient passed to both operands), three elementwise terms."""

    def __init__(self, kind: str, create_graph: bool) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 3))
        self.kind, self.create_graph = kind, create_graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.clone().requires_grad_()
            h = x @ self.w
            energy = {
                "two": lambda: h.sin().sum() + (x * 2).sum(),
                "expand": lambda: (x.sum(0, keepdim=True).expand(4, 3) * x).sum() + x.sum(),
                "view": lambda: x.view(12).sin().sum() + x.unsqueeze(0).cos().sum(),
                "slices": lambda: x[:2].sin().sum() + x[2:].cos().sum() + x.sum(),
                "self": lambda: (h + h).sin().sum() + h.sum(),
                "three": lambda: (x.sin() + x.cos() + x.exp()).sum(),
            }[self.kind]()
            (gradient,) = torch.autograd.grad(energy, x, create_graph=self.create_graph)
        return -gradient.detach()


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("kind", ["two", "expand", "view", "slices", "self", "three"])
def test_torch_profiler_on_gradients_autograd_sums_is_predicted(kind: str, create_graph: bool) -> None:
    """Where two gradients of one tensor meet in a backward the forward runs, autograd sums them in
    place without a dispatch mode (aten::add_, which the profiler does not price) when the first is
    dense, no other tensor views or is it and no graph of the backward is made; else out of place
    (aten::add, priced). Under the reference's mode it always adds out of place: the ruleset prices
    each sum as the profiler records it."""
    x = torch.randn(4, 3)
    r = _adapter("torch-profiler").count(_GradientsMeet(kind, create_graph), x)
    assert r.status is Status.OK, r.error
    assert r.macs == _predicted("torch-profiler", _GradientsMeet(kind, create_graph), (x,))
