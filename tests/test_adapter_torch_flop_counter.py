"""FlopCounterMode adapter: FLOP unit halved to MACs, module-name mapping, inputs, isolation, probed rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import ConvBNNet
from conftest import MatmulNet as SharedMatmulNet
from conftest import TwoInputLinear as TwoInputs
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.adapters.torch_flop_counter import TorchFlopCounterAdapter
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import fingerprint
from flopaudit.records import Granularity, Status, Unit


@pytest.fixture(scope="module")
def adapter() -> TorchFlopCounterAdapter:
    a = get_adapter("torch-flop-counter")
    assert isinstance(a, TorchFlopCounterAdapter)
    return a


class MatmulNet(SharedMatmulNet):
    """conftest's Linear, ``torch.matmul`` and ``@``, then ``einsum`` against one more weight."""

    def __init__(self) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.randn(4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nk,kj->nj", super().forward(x), self.u)


class KeywordInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32, bias=False)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor, repeat: int = 1) -> torch.Tensor:
        return sum(self.fc(x * scale) for _ in range(repeat))


class Attention(nn.Module):
    def __init__(self, need_weights: bool) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
        self.need_weights = need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x, need_weights=self.need_weights)[0]


def test_class_attributes(adapter: TorchFlopCounterAdapter) -> None:
    assert adapter.unit is Unit.FLOP
    assert adapter.granularity is Granularity.ATEN_OPS
    assert adapter.distribution == "torch" and adapter.version()
    assert adapter.options() == {"depth": None, "display": False, "grad_enabled": True}


@pytest.mark.parametrize(
    ("model", "shape", "expected_macs"),
    [
        # N * in * out, bias not counted
        pytest.param(lambda: nn.Linear(16, 32), (4, 16), 4 * 16 * 32, id="linear-bias-excluded"),
        # N * Cout * H * W * Cin * K, bias not counted
        pytest.param(
            lambda: nn.Conv2d(3, 8, 3, padding=1), (2, 3, 8, 8), 2 * 8 * 8 * 8 * 3 * 3 * 3, id="conv-bias-excluded"
        ),
    ],
)
def test_unit_probe(
    adapter: TorchFlopCounterAdapter, model: Callable[[], nn.Module], shape: tuple[int, ...], expected_macs: int
) -> None:
    r = adapter.count(model(), torch.randn(*shape))
    assert r.status is Status.OK, r.error
    assert r.unit is Unit.FLOP
    assert r.raw_total == 2 * expected_macs  # FLOP unit: 2 per multiply-accumulate
    assert r.macs == expected_macs
    assert r.per_module == (("", expected_macs),)
    assert sum(r.op_macs().values()) == expected_macs


def test_nothing_printed(adapter: TorchFlopCounterAdapter, capfd: pytest.CaptureFixture[str]) -> None:
    r = adapter.count(ConvBNNet(), torch.randn(2, 3, 8, 8))
    assert r.ok and r.warnings == ()
    assert capfd.readouterr() == ("", "")


def test_batch_proportional(adapter: TorchFlopCounterAdapter) -> None:
    one = adapter.count(ConvBNNet().eval(), torch.randn(1, 3, 8, 8))
    four = adapter.count(ConvBNNet().eval(), torch.randn(4, 3, 8, 8))
    per_sample = 8 * 8 * 8 * 3 * 9 + 8 * 10  # conv + head; BN, ReLU and mean count 0
    assert one.macs == per_sample
    assert four.macs == 4 * per_sample


def test_functional_matmul_is_counted(adapter: TorchFlopCounterAdapter) -> None:
    r = adapter.count(MatmulNet(), torch.randn(4, 16))
    expected = 4 * 16 * 32 + 4 * 32 * 8 + 4 * 8 * 4 + 4 * 4 * 2  # linear, matmul, @, einsum
    assert r.macs == expected
    assert r.module_macs() == {"": expected, "fc": 4 * 16 * 32}
    # 2-D einsum reaches aten.bmm with batch 1; the rest are aten.mm
    assert r.op_macs() == {"aten.mm": 4 * 16 * 32 + 4 * 32 * 8 + 4 * 8 * 4, "aten.bmm": 4 * 4 * 2}


def test_user_model_left_alone_and_train_mode_kept(adapter: TorchFlopCounterAdapter) -> None:
    model = ConvBNNet().train()
    before = fingerprint(model)
    stats = model.features[1].running_mean.clone()
    r = adapter.count(model, torch.randn(2, 3, 8, 8))
    assert r.ok, r.error
    assert fingerprint(model) == before
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model.features[1].running_mean, stats)
    # the copy ran in train mode: its BN statistics moved (reported, not hidden)
    assert r.side_effects == ("changed parameter or buffer values",)


def test_two_positional_inputs(adapter: TorchFlopCounterAdapter) -> None:
    r = adapter.count(TwoInputs(), (torch.randn(4, 16), torch.randn(4, 8)))
    assert r.macs == 4 * 16 * 32 + 4 * 8 * 32
    assert r.module_macs() == {"": r.macs, "fa": 4 * 16 * 32, "fb": 4 * 8 * 32}


def test_keyword_inputs(adapter: TorchFlopCounterAdapter) -> None:
    inputs = ModelInputs((torch.randn(4, 16),), {"scale": torch.randn(4, 16), "repeat": 3})
    r = adapter.count(KeywordInputs(), inputs)
    assert r.status is Status.OK, r.error
    assert r.macs == 3 * 4 * 16 * 32
    assert r.module_macs() == {"": r.macs, "fc": r.macs}


def test_module_names_map_to_dotted_paths(adapter: TorchFlopCounterAdapter) -> None:
    shared = nn.Linear(8, 8, bias=False)

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(8, 8, bias=False))
            self.sh = shared

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.sh(self.inner(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = Holder()
            self.b = Holder()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    model = Net()
    r = adapter.count(model, torch.randn(3, 8))
    one = 3 * 8 * 8
    # the tracker names the shared layer after its last parent ("Net.b.sh");
    # the adapter maps it back by identity to its first name, "a.sh"
    assert r.module_macs() == {
        "": 4 * one,
        "a": 2 * one,
        "a.inner": one,
        "a.inner.0": one,
        "a.sh": 2 * one,
        "b": 2 * one,
        "b.inner": one,
        "b.inner.0": one,
    }
    assert set(r.module_macs()) <= {n for n, _ in model.named_modules()}


def test_params_counts_tied_weights_once(adapter: TorchFlopCounterAdapter) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 6)
            self.out = nn.Linear(6, 10, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.out(self.emb(idx))

    r = adapter.count(Tied(), torch.randint(0, 10, (2, 5)))
    assert r.params == 10 * 6
    assert r.macs == 2 * 5 * 6 * 10  # the output projection only; embedding counts 0


@pytest.mark.parametrize(
    ("grad_enabled", "expected"),
    [
        # autograd on: in_proj (mm) + out_proj (addmm), plus the two attention bmm's
        pytest.param(True, 2 * 5 * (3 * 16 * 16 + 16 * 16) + 2 * (2 * 2 * 5 * 5 * 8), id="grad-enabled"),
        # autograd off in eval: the fused _native_multi_head_attention kernel has no formula
        pytest.param(False, 0, id="grad-disabled-fast-path"),
    ],
)
def test_grad_option_and_mha_fast_path(grad_enabled: bool, expected: int) -> None:
    r = TorchFlopCounterAdapter(grad_enabled=grad_enabled).count(
        Attention(need_weights=True).eval(), torch.randn(2, 5, 16)
    )
    assert r.ok, r.error
    assert r.macs == expected
    assert dict(r.options)["grad_enabled"] == repr(grad_enabled)


class Functional(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(*args)


# (id, model factory, input shapes, expected FlopCounterMode MACs = FLOPs / 2, written from shapes)
RULES: list[tuple[str, Callable[[], nn.Module], list[tuple[int, ...]], int]] = [
    ("linear-3d-all-leading-dims", lambda: nn.Linear(16, 32), [(2, 5, 16)], 2 * 5 * 16 * 32),
    (
        "conv-groups-stride",
        lambda: nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2),
        [(2, 4, 8, 8)],
        2 * 8 * 4 * 4 * 2 * 9,
    ),
    # transposed: input spatial size, N * Cin * H_in * W_in * Cout * K
    ("convtranspose-s2", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2), [(2, 4, 5, 5)], 2 * 4 * 5 * 5 * 6 * 9),
    ("bn-eval", lambda: nn.BatchNorm2d(4).eval(), [(2, 4, 5, 5)], 0),
    ("bn-train", lambda: nn.BatchNorm2d(4).train(), [(2, 4, 5, 5)], 0),
    ("layernorm", lambda: nn.LayerNorm(16), [(2, 5, 16)], 0),
    ("groupnorm", lambda: nn.GroupNorm(2, 4), [(2, 4, 5, 5)], 0),
    ("relu", nn.ReLU, [(2, 4, 5, 5)], 0),
    ("gelu", nn.GELU, [(2, 4, 5, 5)], 0),
    ("softmax", lambda: nn.Softmax(-1), [(2, 5, 16)], 0),
    ("maxpool", lambda: nn.MaxPool2d(2), [(2, 4, 6, 6)], 0),
    ("adaptive-avgpool", lambda: nn.AdaptiveAvgPool2d(1), [(2, 4, 6, 6)], 0),
    ("upsample-nearest", lambda: nn.Upsample(scale_factor=2, mode="nearest"), [(2, 4, 3, 3)], 0),
    ("upsample-bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), [(2, 4, 3, 3)], 0),
    ("add", lambda: Functional(torch.add), [(2, 4), (2, 4)], 0),
    ("bmm", lambda: Functional(torch.bmm), [(2, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),
    ("matmul-broadcast", lambda: Functional(torch.matmul), [(2, 3, 4), (4, 5)], 2 * 3 * 4 * 5),
    ("matmul-batch-on-second-operand", lambda: Functional(torch.matmul), [(4, 5), (2, 5, 6)], 2 * 4 * 5 * 6),
    # matrix @ vector reaches aten.mv, which has no formula
    ("matrix-vector", lambda: Functional(torch.matmul), [(3, 4), (4,)], 0),
    (
        "einsum-batched",
        lambda: Functional(lambda a, b: torch.einsum("bij,bjk->bik", a, b)),
        [(2, 3, 4), (2, 4, 5)],
        2 * 3 * 4 * 5,
    ),
    # CPU fused kernel _scaled_dot_product_flash_attention_for_cpu has no formula
    ("sdpa-cpu", lambda: Functional(F.scaled_dot_product_attention), [(1, 2, 5, 8)] * 3, 0),
    # projections only: the SDPA part runs the CPU fused kernel
    ("mha-need-weights-false", lambda: Attention(need_weights=False), [(2, 5, 16)], 2 * 5 * (3 * 16 * 16 + 16 * 16)),
    # CPU kernel mkldnn_rnn_layer has no formula
    ("lstm-cpu", lambda: nn.LSTM(8, 16, batch_first=True), [(2, 5, 8)], 0),
    # GRU decomposes into mm/addmm: T * N * (3H*I + 3H*H)
    ("gru", lambda: nn.GRU(8, 16, batch_first=True), [(2, 5, 8)], 5 * 2 * (3 * 16 * 8 + 3 * 16 * 16)),
]


@pytest.mark.parametrize(("factory", "shapes", "expected"), [pytest.param(f, s, e, id=i) for i, f, s, e in RULES])
def test_probed_rules(
    adapter: TorchFlopCounterAdapter, factory: Callable[[], nn.Module], shapes: list[tuple[int, ...]], expected: int
) -> None:
    r = adapter.count(factory(), tuple(torch.randn(*s) for s in shapes))
    assert r.ok, r.error
    assert r.macs == expected
    assert r.raw_total == 2 * expected


def test_embedding_counts_zero(adapter: TorchFlopCounterAdapter) -> None:
    r = adapter.count(nn.Embedding(10, 6), torch.randint(0, 10, (2, 5)))
    assert r.macs == 0 and r.params == 10 * 6


def test_a_module_given_a_tensor_inside_a_custom_function_names_the_module_and_the_function() -> None:
    """Reformer runs its layers inside a custom autograd Function's forward, where autograd records
    nothing: a slice of an input that requires grad is a view without a gradient node there, and torch's
    module tracker (FlopCounterMode's, with autograd on) fails registering its backward hook on it. The
    error names the module and the Function."""

    class Reversible(torch.autograd.Function):
        @staticmethod
        def forward(ctx: object, x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
            half = x[:, :4]
            return torch.cat([half, norm(half)], dim=1)

        @staticmethod
        def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
            return grad, None

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8)
            self.norm = nn.LayerNorm(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return Reversible.apply(self.proj(x), self.norm)

    r = get_adapter("torch-flop-counter").count(Block(), torch.randn(2, 8))
    assert r.status is Status.ERROR
    assert (r.error or "").startswith("AssertionError: Expected gradient function to be set"), r.error
    assert (r.error or "").endswith(
        "; torch's module tracker registers a backward hook on each module input that requires grad, and module "
        "'norm' (LayerNorm) is given one inside the forward of the custom autograd Function Reversible, where "
        "autograd records nothing, so no gradient node is found for it"), r.error


class _Adjoint(torch.autograd.Function):
    """torchdiffeq's adjoint method in small: the forward runs ``func`` without autograd; the
    backward runs it again and takes ``torch.autograd.grad`` of it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, func: nn.Module, *params: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.func = func
        ctx.save_for_backward(x)
        with torch.no_grad():
            return func(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            grads = torch.autograd.grad(ctx.func(x), (x, *ctx.func.parameters()), g, allow_unused=True)
        return (grads[0], None, *grads[1:])


class _AdjointModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.func = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Adjoint.apply(x, self.func, *self.func.parameters())


def test_a_backward_taking_autograd_grad_of_modules_is_explained() -> None:
    """torch's module tracker hooks the gradient of each module input; inside a custom Function's
    backward that calls a module and ``torch.autograd.grad`` (an adjoint method), the hook meets a
    leaf and torch raises. The error names the Function (and the module running, where one is:
    torchdiffeq takes the gradient inside its ODE function's forward; here the call has returned)."""
    from flopaudit.passes import Pass

    r = get_adapter("torch-flop-counter").count(_AdjointModel(), torch.randn(2, 4), pass_=Pass("train"))
    assert r.status is Status.ERROR and "_will_engine_execute_node" in (r.error or "")
    assert ("the custom autograd Function _Adjoint's backward calls the model's modules and takes "
            "torch.autograd.grad of them: torch's module tracker hooks") in (r.error or ""), r.error


class _InputJacobian(nn.Module):
    """A forward returning the network's output and its Jacobian in the input (``torch.func.jacrev``)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.func import jacrev

        return self.net(x), jacrev(self.net)(x)


def test_a_forward_taking_gradients_itself_is_explained() -> None:
    """``torch.func.jacrev`` in a forward takes gradients of the model's modules as it runs: torch's
    module tracker fails as in an adapted backward, and the error says the forward differentiates
    (no custom Function is running)."""
    r = get_adapter("torch-flop-counter").count(_InputJacobian(), torch.randn(4))
    assert r.status is Status.ERROR and "_will_engine_execute_node" in (r.error or "")
    assert "the model takes gradients inside its forward (torch.autograd.grad, or torch.func's grad, jacrev or vjp)" in (
        r.error or ""), r.error
    assert "custom autograd Function" not in (r.error or "")
