"""fvcore adapter: unit, normalisation, inputs, isolation and the per-op rules it was probed for."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import ConvBNNet, MatmulNet
from conftest import TwoInputLinear as TwoInputs
from torch import nn

from flopaudit.adapters import get_adapter, get_backend
from flopaudit.adapters.fvcore import FvcoreAdapter
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import fingerprint
from flopaudit.records import Granularity, Status, Unit

pytest.importorskip("fvcore")


@pytest.fixture(scope="module")
def adapter() -> FvcoreAdapter:
    a = get_adapter("fvcore")
    assert isinstance(a, FvcoreAdapter)
    return a


class KeywordInputs(nn.Module):
    """forward(x, *, scale, repeat): a keyword tensor and a keyword int."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32, bias=False)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor, repeat: int = 1) -> torch.Tensor:
        return sum(self.fc(x * scale) for _ in range(repeat))


class GeluLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(8, 8, bias=False), nn.GELU())
        self.rnn = nn.LSTM(8, 16, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(self.proj(x))[0]


def test_class_attributes(adapter: FvcoreAdapter) -> None:
    assert adapter.unit is Unit.MAC
    assert adapter.granularity is Granularity.JIT_TRACE
    assert adapter.available() and adapter.version()
    opts = adapter.options()
    assert opts["unsupported_ops_warnings"] is False and opts["tracer_warnings"] == "none"


@pytest.mark.parametrize(
    ("model", "shape", "expected_macs"),
    [
        # bias not counted: N * in * out
        pytest.param(lambda: nn.Linear(16, 32), (4, 16), 4 * 16 * 32, id="linear-bias-excluded"),
        # N * Cout * H * W * Cin * K
        pytest.param(
            lambda: nn.Conv2d(3, 8, 3, padding=1), (2, 3, 8, 8), 2 * 8 * 8 * 8 * 3 * 3 * 3, id="conv-bias-excluded"
        ),
    ],
)
def test_unit_probe(
    adapter: FvcoreAdapter, model: Callable[[], nn.Module], shape: tuple[int, ...], expected_macs: int
) -> None:
    r = adapter.count(model(), torch.randn(*shape))
    assert r.status is Status.OK, r.error
    assert r.unit is Unit.MAC
    assert r.macs == expected_macs
    assert r.raw_total == r.macs  # MAC unit: the raw number is already MACs
    assert r.per_module == (("", expected_macs),)
    assert r.warnings == ()


def test_nothing_printed(adapter: FvcoreAdapter, capfd: pytest.CaptureFixture[str]) -> None:
    r = adapter.count(GeluLSTM(), torch.randn(2, 5, 8))  # unsupported ops would be logged by default
    assert r.ok and r.warnings == ()
    assert capfd.readouterr() == ("", "")


def test_batch_proportional(adapter: FvcoreAdapter) -> None:
    one = adapter.count(ConvBNNet().eval(), torch.randn(1, 3, 8, 8))
    four = adapter.count(ConvBNNet().eval(), torch.randn(4, 3, 8, 8))
    # conv 8*8*8*3*9 + BN eval affine 2 * 8*8*8 + head 8*10, per sample
    per_sample = 8 * 8 * 8 * 3 * 9 + 2 * 8 * 8 * 8 + 8 * 10
    assert one.macs == per_sample
    assert four.macs == 4 * per_sample
    assert one.batch_size == 1 and four.batch_size == 4


def test_functional_matmul_is_counted(adapter: FvcoreAdapter) -> None:
    r = adapter.count(MatmulNet(), torch.randn(4, 16))
    assert r.macs == 4 * 16 * 32 + 4 * 32 * 8 + 4 * 8 * 4
    assert r.op_macs() == {"linear": 4 * 16 * 32, "matmul": 4 * 32 * 8 + 4 * 8 * 4}
    # the matmuls run in the root's own forward
    assert r.module_macs() == {"": r.macs, "fc": 4 * 16 * 32}


def test_einsum_float_is_normalised_to_int(adapter: FvcoreAdapter) -> None:
    class Einsum(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bij,bjk->bik", a, b)

    r = adapter.count(Einsum(), (torch.randn(2, 3, 4), torch.randn(2, 4, 5)))
    assert r.raw_total == 2 * 3 * 4 * 5 and isinstance(r.raw_total, float)
    assert r.macs == 2 * 3 * 4 * 5 and isinstance(r.macs, int)


def test_user_model_left_alone_and_train_mode_kept(adapter: FvcoreAdapter) -> None:
    model = ConvBNNet().train()
    before = fingerprint(model)
    stats = model.features[1].running_mean.clone()
    r = adapter.count(model, torch.randn(2, 3, 8, 8))
    assert r.ok, r.error
    assert fingerprint(model) == before
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model.features[1].running_mean, stats)
    # it counted in train mode: BN train formula is 5 per element with affine
    assert r.op_macs()["batch_norm"] == 5 * 2 * 8 * 8 * 8
    # the copy's BN statistics moved: reported, not hidden
    assert r.side_effects == ("changed parameter or buffer values",)


def test_eval_mode_kept(adapter: FvcoreAdapter) -> None:
    r = adapter.count(ConvBNNet().eval(), torch.randn(2, 3, 8, 8))
    assert r.op_macs()["batch_norm"] == 2 * 2 * 8 * 8 * 8
    assert r.side_effects == ()


def test_two_positional_inputs(adapter: FvcoreAdapter) -> None:
    r = adapter.count(TwoInputs(), (torch.randn(4, 16), torch.randn(4, 8)))
    assert r.macs == 4 * 16 * 32 + 4 * 8 * 32
    assert r.module_macs() == {"": r.macs, "fa": 4 * 16 * 32, "fb": 4 * 8 * 32}
    assert r.unsupported == (("aten::add", 1),)


def test_keyword_inputs(adapter: FvcoreAdapter) -> None:
    inputs = ModelInputs((torch.randn(4, 16),), {"scale": torch.randn(4, 16), "repeat": 3})
    r = adapter.count(KeywordInputs(), inputs)
    assert r.status is Status.OK, r.error
    assert r.macs == 3 * 4 * 16 * 32
    # paths are the user's, not the wrapper's
    assert r.module_macs() == {"": 3 * 4 * 16 * 32, "fc": 3 * 4 * 16 * 32}


def test_non_tensor_outputs(adapter: FvcoreAdapter) -> None:
    class DictOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 8, bias=False)

        def forward(self, x: torch.Tensor) -> dict[str, object]:
            return {"a": self.a(x), "rest": [self.b(x), None], "n": 3}

    r = adapter.count(DictOut(), torch.randn(2, 4))
    assert r.status is Status.OK, r.error
    assert r.macs == 2 * 4 * 4 + 2 * 4 * 8


def test_result_not_returned_is_not_counted_and_said(adapter: FvcoreAdapter) -> None:
    class Discards(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> None:
            self.fc(x)

    r = adapter.count(Discards(), torch.randn(2, 4))
    assert r.ok and r.macs == 0  # the trace dropped the unused linear
    assert any("returned no tensor" in w for w in r.warnings)


def test_unsupported_ops_are_listed(adapter: FvcoreAdapter) -> None:
    model = GeluLSTM()
    r = adapter.count(model, torch.randn(2, 5, 8))
    assert r.ok, r.error
    assert r.macs == 2 * 5 * 8 * 8  # only the linear; GELU and LSTM count 0
    assert dict(r.unsupported) == {"aten::gelu": 1, "aten::lstm": 1}


def test_per_module_paths_match_named_modules(adapter: FvcoreAdapter) -> None:
    model = GeluLSTM()
    r = adapter.count(model, torch.randn(2, 5, 8))
    names = {n for n, _ in model.named_modules()}
    assert set(r.module_macs()) == names
    assert r.module_macs()["proj"] == r.module_macs()["proj.0"] == 2 * 5 * 8 * 8


def test_params_is_fvcore_parameter_count(adapter: FvcoreAdapter) -> None:
    model = GeluLSTM()
    r = adapter.count(model, torch.randn(2, 5, 8))
    lstm = 4 * 16 * 8 + 4 * 16 * 16 + 2 * 4 * 16
    assert r.params == 8 * 8 + lstm


def test_uncalled_submodule_is_reported(adapter: FvcoreAdapter) -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
            self.skip = nn.Identity()  # called, but leaves no op in the trace
            self.stages = nn.ModuleList([nn.Dropout(0.1)])  # a container cannot be called

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.stages[0](self.skip(self.mha(x, x, x, need_weights=False)[0]))

    r = adapter.count(Attn().eval(), torch.randn(2, 5, 16))
    # in_proj (3 * 16 * 16) and out_proj (16 * 16) per token, via aten::linear;
    # the SDPA attention products are unsupported
    assert r.macs == 2 * 5 * (3 * 16 * 16 + 16 * 16)
    assert dict(r.unsupported)["aten::scaled_dot_product_attention"] == 1
    assert r.warnings == ("fvcore: submodules never called as modules during the trace (counted 0): mha.out_proj",)


class Functional(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(*args)


# (id, model factory, input shapes, expected fvcore MACs, written from shapes)
RULES: list[tuple[str, Callable[[], nn.Module], list[tuple[int, ...]], int]] = [
    ("linear-3d-all-leading-dims", lambda: nn.Linear(16, 32), [(2, 5, 16)], 2 * 5 * 16 * 32),
    # prod(a.shape) * b.shape[-1]: the batch of 2 carried by b alone is missed (true: 2 * 4 * 5 * 6)
    ("matmul-batch-on-second-operand", lambda: Functional(torch.matmul), [(4, 5), (2, 5, 6)], 4 * 5 * 6),
    (
        "conv-groups-stride",
        lambda: nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2),
        [(2, 4, 8, 8)],
        2 * 8 * 4 * 4 * 2 * 9,
    ),
    # transposed: input spatial size, N * Cin * H_in * W_in * Cout * K
    ("convtranspose-s2", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2), [(2, 4, 5, 5)], 2 * 4 * 5 * 5 * 6 * 9),
    ("bn-eval-affine", lambda: nn.BatchNorm2d(4).eval(), [(2, 4, 5, 5)], 2 * (2 * 4 * 5 * 5)),
    ("bn-eval-no-affine", lambda: nn.BatchNorm2d(4, affine=False).eval(), [(2, 4, 5, 5)], 1 * (2 * 4 * 5 * 5)),
    ("bn-train-affine", lambda: nn.BatchNorm2d(4).train(), [(2, 4, 5, 5)], 5 * (2 * 4 * 5 * 5)),
    ("layernorm-affine", lambda: nn.LayerNorm(16), [(2, 5, 16)], 5 * (2 * 5 * 16)),
    ("layernorm-no-affine", lambda: nn.LayerNorm(16, elementwise_affine=False), [(2, 5, 16)], 4 * (2 * 5 * 16)),
    ("groupnorm", lambda: nn.GroupNorm(2, 4), [(2, 4, 5, 5)], 5 * (2 * 4 * 5 * 5)),
    ("relu", nn.ReLU, [(2, 4, 5, 5)], 0),
    ("adaptive-avgpool", lambda: nn.AdaptiveAvgPool2d(3), [(2, 4, 6, 6)], 2 * 4 * 6 * 6),
    ("upsample-nearest", lambda: nn.Upsample(scale_factor=2, mode="nearest"), [(2, 4, 3, 3)], 2 * 4 * 6 * 6),
    ("upsample-bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), [(2, 4, 3, 3)], 4 * (2 * 4 * 6 * 6)),
]


@pytest.mark.parametrize(("factory", "shapes", "expected"), [pytest.param(f, s, e, id=i) for i, f, s, e in RULES])
def test_probed_rules(
    adapter: FvcoreAdapter, factory: Callable[[], nn.Module], shapes: list[tuple[int, ...]], expected: int
) -> None:
    r = adapter.count(factory(), tuple(torch.randn(*s) for s in shapes))
    assert r.ok, r.error
    assert r.macs == expected


UNSUPPORTED: list[tuple[str, Callable[[], nn.Module], list[tuple[int, ...]], str]] = [
    ("gelu", nn.GELU, [(2, 4)], "aten::gelu"),
    ("softmax", lambda: nn.Softmax(-1), [(2, 4)], "aten::softmax"),
    ("maxpool", lambda: nn.MaxPool2d(2), [(1, 2, 4, 4)], "aten::max_pool2d"),
    ("add", lambda: Functional(torch.add), [(2, 4), (2, 4)], "aten::add"),
    (
        "sdpa",
        lambda: Functional(F.scaled_dot_product_attention),
        [(1, 2, 5, 8)] * 3,
        "aten::scaled_dot_product_attention",
    ),
]


@pytest.mark.parametrize(("factory", "shapes", "op"), [pytest.param(f, s, o, id=i) for i, f, s, o in UNSUPPORTED])
def test_unsupported_rules(
    adapter: FvcoreAdapter, factory: Callable[[], nn.Module], shapes: list[tuple[int, ...]], op: str
) -> None:
    r = adapter.count(factory(), tuple(torch.randn(*s) for s in shapes))
    assert r.macs == 0
    assert dict(r.unsupported) == {op: 1}


def test_embedding_is_unsupported(adapter: FvcoreAdapter) -> None:
    r = adapter.count(nn.Embedding(10, 6), torch.randint(0, 10, (2, 5)))
    assert r.macs == 0 and dict(r.unsupported) == {"aten::embedding": 1}


def test_a_failing_handle_names_its_node() -> None:
    """fvcore's mm handle reads both operands' shapes from the traced graph, which keeps none for a
    sparse tensor: the error says which node, on what shapes, in which module."""

    class Propagate(nn.Module):
        def forward(self, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return torch.spmm(adjacency, x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.prop = Propagate()

        def forward(self, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.prop(adjacency, self.lin(x))

    adjacency = torch.eye(4).to_sparse()
    r = get_adapter("fvcore").count(Net(), (adjacency, torch.randn(4, 8)))
    assert r.status is Status.ERROR
    assert "pricing aten::mm on inputs of shape no shape, 4x8 in module 'prop'" in (r.error or ""), r.error


def test_a_failing_handle_assertion_says_the_check() -> None:
    """fvcore's norm handle asserts 2 to 5 input dimensions with the shape as the message (vit-pytorch's
    MaxViT normalises a 6-dim window tensor): the error says the check, then the node."""

    class WindowNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(x)

    r = get_adapter("fvcore").count(WindowNorm(), torch.randn(1, 2, 2, 3, 3, 16))
    assert r.status is Status.ERROR
    assert r.error.startswith("BackendFailure: AssertionError: norm_flop_jit (jit_handles.py:"), r.error
    assert "assert 2 <= len(input_shape) <= 5, input_shape ([1, 2, 2, 3, 3, 16]); pricing aten::layer_norm on " \
           "inputs of shape 1x2x2x3x3x16, 16, 16 in module 'norm'" in r.error, r.error


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_state_entry_the_trace_refuses_is_named(backend: str) -> None:
    """torch.jit.trace takes every state_dict entry as a graph input; a dynamically quantized Linear keeps
    its weights' dtype there (``_packed_params.dtype``), which the trace refuses ("Got int")."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), {nn.Linear}, dtype=torch.qint8)
    r = get_adapter(backend).count(model, torch.randn(3, 4))
    assert r.status is Status.ERROR
    assert "can be inputs to traced functions. Got int" in (r.error or ""), r.error
    assert (r.error or "").endswith("; the trace takes every state_dict entry as a graph input, and "
                                    "'0._packed_params.dtype' of module '0._packed_params' (LinearPackedParams) "
                                    "is a torch.dtype"), r.error


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_trace_through_reentrant_checkpointing_says_so(backend: str) -> None:
    """torch.utils.checkpoint without use_reentrant= takes the reentrant form, whose autograd Function a
    JIT trace cannot record: it raises a bare "unordered_map::at"; the error says what raised it."""
    import warnings

    from torch.utils.checkpoint import checkpoint

    class Checkpointed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Sequential(nn.Linear(8, 8), nn.GELU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return checkpoint(self.block, x, use_reentrant=True)

    r = get_adapter(backend).count(Checkpointed().train(), torch.randn(2, 8))
    assert r.status is Status.ERROR
    assert (r.error or "").startswith("RuntimeError: unordered_map::at"), r.error
    assert (r.error or "").endswith("; raised by torch.utils.checkpoint in its reentrant form (use_reentrant=True, "
                                    "taken where it is not given), an autograd Function that a JIT trace cannot "
                                    "record (use_reentrant=False can be traced)"), r.error


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_trace_through_a_function_running_modules_names_the_function(backend: str) -> None:
    """Reformer's reversible layers run inside a custom autograd Function given the layers
    (``_ReversibleFunction.apply(hidden_states, self.layers, ...)``): a JIT trace records the Function
    as one node, has no graph value for the layers' parameters and raises a bare "unordered_map::at";
    the error names the Function and the module that called it."""

    class Reversible(torch.autograd.Function):
        @staticmethod
        def forward(ctx: object, x: torch.Tensor, layers: nn.ModuleList) -> torch.Tensor:
            for layer in layers:
                x = x + layer(x)
            return x

        @staticmethod
        def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
            return grad, None

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return Reversible.apply(x, self.layers)

    model = nn.Sequential()
    model.add_module("encoder", Encoder())
    r = get_adapter(backend).count(model, torch.randn(2, 8))
    assert r.status is Status.ERROR
    assert (r.error or "").startswith("RuntimeError: unordered_map::at"), r.error
    assert (r.error or "").endswith(
        "; raised by the custom autograd Function Reversible in module 'encoder' (Encoder), whose forward runs "
        "tensors it is not given as inputs (the parameters of the modules it runs): a JIT trace records the "
        "Function as one node and has no graph value for them"), r.error


class _FailsWhenTraced(nn.Module):
    """Landmark scores (B, 2, T) plus a (B, T, T) mask made only under a trace, as transformers makes an
    all-ones attention mask only when ``is_tracing()`` (an eager pass skips it) and Nystromformer adds it
    to its landmark scores: the traced branch fails, the eager one runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = x[:, :2] @ x.transpose(1, 2)
        if torch.jit.is_tracing():
            scores = scores + torch.zeros(x.shape[0], x.shape[1], x.shape[1])
        return scores


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_model_failing_in_its_traced_branch_is_said_to(backend: str) -> None:
    """The error says the model's code asked whether it is traced and that its traced branch raises the
    same error run eagerly; the reference, which runs the eager branch, counts it."""
    x = torch.randn(1, 6, 4)
    r = get_adapter(backend).count(_FailsWhenTraced(), x)
    assert r.status is Status.ERROR
    assert "The size of tensor a (2) must match the size of tensor b (6)" in (r.error or ""), r.error
    assert (f"; the model's code asks torch.jit.is_tracing() ({__name__}:forward) and takes another branch when "
            "traced; run eagerly, that branch raises the same error: the model fails under a JIT trace (an eager "
            "pass, as every other counter's, takes the other branch)") in (r.error or ""), r.error
    assert get_adapter("reference").count(_FailsWhenTraced(), x).macs == 2 * 4 * 6


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_traced_constant_that_requires_grad_is_explained(backend: str) -> None:
    """A JIT trace holds a tensor that is neither an input nor a parameter or buffer as a constant,
    and refuses one that requires grad (gpytorch's exact GP keeps such tensors from its first
    call); the error says so and names the module where the trace met it."""
    if not get_backend(backend).available():
        pytest.skip(get_backend(backend).missing_reason())

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.scale = torch.ones(4, requires_grad=True)  # a plain attribute, not a Parameter

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * self.scale

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = Scaled()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x)

    r = get_adapter(backend).count(Model(), torch.randn(2, 4))
    assert r.status is Status.ERROR and "Cannot insert a Tensor that requires grad as a constant" in (r.error or "")
    assert "the trace in module 'head' (Scaled) met a tensor that requires grad and is neither an input nor" in (
        r.error or ""), r.error


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_traced_autograd_grad_given_grad_outputs_is_explained(backend: str) -> None:
    """``torch.autograd.grad(y, x, grad_outputs)`` compares sizes that a JIT trace holds as tensors, and
    torch's ``sym_eq`` refuses them (zuko's flows take their Jacobians so); the error says so and where."""
    from flopaudit.zoo.hard.structure import BatchedGradJacobianTrace

    if not get_backend(backend).available():
        pytest.skip(get_backend(backend).missing_reason())
    r = get_adapter(backend).count(BatchedGradJacobianTrace(), torch.randn(3, 4))
    assert r.status is Status.ERROR and "unexpected sym_eq between" in (r.error or "")
    assert ("the model calls torch.autograd.grad with grad_outputs in the model (BatchedGradJacobianTrace), which "
            "torch cannot trace") in (r.error or ""), r.error


class _PadsToAMultiple(nn.Module):
    """Pads its sequence to a multiple of 4 where ``(n / 4).is_integer()`` says it must, as
    lucidrains' local-attention does; a trace records ``n`` as a 0-dim tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2]
        if not (n / 4).is_integer():
            x = nn.functional.pad(x, (0, 0, 0, 4 - n % 4))
        return self.fc(x)


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_number_method_called_on_a_traced_size_is_explained(backend: str) -> None:
    if not get_backend(backend).available():
        pytest.skip(get_backend(backend).missing_reason())
    r = get_adapter(backend).count(nn.Sequential(_PadsToAMultiple()), torch.randn(2, 6, 4))
    assert r.status is Status.ERROR and "'Tensor' object has no attribute 'is_integer'" in (r.error or "")
    assert ("the model's code in module '0' (_PadsToAMultiple) calls .is_integer(), a method of Python numbers, on "
            "a value computed from a size: a JIT trace records the sizes it reads as 0-dim tensors") in (r.error or ""), \
        r.error
    assert get_adapter("reference").count(nn.Sequential(_PadsToAMultiple()), torch.randn(2, 6, 4)).macs == 2 * 8 * 16


class _CausalWhereLong(nn.Module):
    """Self-attention, causal where the sequence is longer than one token, decided as openai-whisper
    decides it: ``is_causal=mask is not None and n_ctx > 1`` with ``n_ctx`` read from the shape."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n_ctx = x.shape[1]
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=mask is not None and n_ctx > 1)


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_flag_computed_from_a_traced_size_is_explained(backend: str) -> None:
    if not get_backend(backend).available():
        pytest.skip(get_backend(backend).missing_reason())
    inputs = ModelInputs((torch.randn(2, 5, 8), torch.ones(5, 5)), {})
    r = get_adapter(backend).count(_CausalWhereLong(), inputs)
    assert r.status is Status.ERROR and "argument 'is_causal' must be bool, not Tensor" in (r.error or "")
    assert ("the model's code in the model (_CausalWhereLong) gives scaled_dot_product_attention() a tensor as its "
            "'is_causal' (it takes a bool) where an eager pass gives a Python value: a JIT trace records the sizes "
            "the code reads as 0-dim tensors") in (r.error or ""), r.error


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_functional_call_under_a_trace_is_explained(backend: str) -> None:
    """``torch.func.functional_call`` refuses a module a JIT trace runs (titans' neural memory)."""
    from user_models import fast_weights

    if not get_backend(backend).available():
        pytest.skip(get_backend(backend).missing_reason())
    r = get_adapter(backend).count(fast_weights(), torch.randn(4, 8))
    assert r.status is Status.ERROR and "The stateless API can't be used with Jitted modules" in (r.error or "")
    assert ("the model calls torch.func.functional_call on one of its modules in the model (_FastWeights), which "
            "refuses a module while a JIT trace runs it") in (r.error or ""), r.error


class _FillsWithABool(nn.Module):
    """Sets the masked places of a boolean mask with ``masked_fill(skip, True)``, as torchtune's fusion
    layers do; torch's JIT tracer finds no operator schema for a Python bool as the value."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (x > 0).masked_fill(x.sum(-1, keepdim=True) < -1e9, True)
        return self.fc(x * keep)


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_traced_call_with_a_bool_for_a_number_is_explained(backend: str) -> None:
    if not get_backend(backend).available():
        pytest.skip(get_backend(backend).missing_reason())
    r = get_adapter(backend).count(nn.Sequential(_FillsWithABool()), torch.randn(2, 4))
    assert r.status is Status.ERROR and "We don't have an op for aten::masked_fill" in (r.error or "")
    assert ("the traced graph holds a call of aten::masked_fill with arguments (Tensor, Tensor, bool): a Python bool "
            "given where the operator takes a number (x.masked_fill(mask, True)) matches none of its schemas, and "
            "torch's JIT fails on that graph once the forward has run") in (r.error or ""), r.error
    assert get_adapter("reference").count(nn.Sequential(_FillsWithABool()), torch.randn(2, 4)).macs == 2 * 4 * 4
