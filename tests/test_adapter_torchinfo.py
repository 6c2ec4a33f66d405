"""torchinfo adapter: unit, normalisation, inputs, mode/device isolation and its probed per-layer rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import ConvBNNet, MatmulNet
from conftest import TwoInputLinear as TwoInputs
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.adapters.torchinfo import TorchinfoAdapter, model_device
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import fingerprint
from flopaudit.records import Granularity, Status, Unit

pytest.importorskip("torchinfo")


@pytest.fixture(scope="module")
def adapter() -> TorchinfoAdapter:
    a = get_adapter("torchinfo")
    assert isinstance(a, TorchinfoAdapter)
    return a


class KeywordInputs(nn.Module):
    """forward(x, *, scale, repeat, mode): ``mode`` clashes with summary()'s own argument."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32, bias=False)

    def forward(self, x: torch.Tensor, *, scale: torch.Tensor, repeat: int = 1, mode: str = "sum") -> torch.Tensor:
        outs = [self.fc(x * scale) for _ in range(repeat)]
        return sum(outs) if mode == "sum" else outs[0]


class ModeDependent(nn.Module):
    """Runs a different layer in train and eval mode, so the count reveals the mode it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.train_fc = nn.Linear(8, 16, bias=False)
        self.eval_fc = nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.train_fc(x) if self.training else self.eval_fc(x)


class MixedModes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = ModeDependent()
        self.b = ModeDependent()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x).sum() + self.b(x).sum()


def test_class_attributes(adapter: TorchinfoAdapter) -> None:
    assert adapter.unit is Unit.MAC
    assert adapter.granularity is Granularity.MODULE_HOOKS
    assert adapter.available() and adapter.version()
    assert adapter.options()["verbose"] == 0


@pytest.mark.parametrize(
    ("model", "shape", "expected_macs"),
    [
        # N * (in * out + out): bias included
        pytest.param(lambda: nn.Linear(16, 32), (4, 16), 4 * (16 * 32 + 32), id="linear-bias-included"),
        # (Cout * Cin * K + Cout) * N * H_out * W_out: bias included
        pytest.param(
            lambda: nn.Conv2d(3, 8, 3, padding=1),
            (2, 3, 8, 8),
            (8 * 3 * 3 * 3 + 8) * 2 * 8 * 8,
            id="conv-bias-included",
        ),
    ],
)
def test_unit_probe(
    adapter: TorchinfoAdapter, model: Callable[[], nn.Module], shape: tuple[int, ...], expected_macs: int
) -> None:
    r = adapter.count(model(), torch.randn(*shape))
    assert r.status is Status.OK, r.error
    assert r.unit is Unit.MAC
    assert r.macs == expected_macs
    assert r.raw_total == r.macs  # MAC unit, whole batch
    assert r.per_module == (("", expected_macs),)


def test_nothing_printed(adapter: TorchinfoAdapter, capfd: pytest.CaptureFixture[str]) -> None:
    r = adapter.count(ConvBNNet(), torch.randn(2, 3, 8, 8))
    assert r.ok and r.warnings == ()
    assert capfd.readouterr() == ("", "")


def test_batch_proportional(adapter: TorchinfoAdapter) -> None:
    one = adapter.count(ConvBNNet().eval(), torch.randn(1, 3, 8, 8))
    four = adapter.count(ConvBNNet().eval(), torch.randn(4, 3, 8, 8))
    # conv params * H*W + BN params (2C) + head params, per sample
    per_sample = 8 * 3 * 9 * 8 * 8 + 2 * 8 + 8 * 10
    assert one.macs == per_sample
    assert four.macs == 4 * per_sample


def test_functional_matmul_is_not_seen(adapter: TorchinfoAdapter) -> None:
    r = adapter.count(MatmulNet(), torch.randn(4, 16))
    assert r.macs == 4 * 16 * 32  # only the Linear module; both matmuls count 0
    assert r.module_macs() == {"": 4 * 16 * 32, "fc": 4 * 16 * 32}
    assert r.per_op == () and r.unsupported == ()


def test_user_model_left_alone_and_train_mode_kept(adapter: TorchinfoAdapter) -> None:
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


@pytest.mark.parametrize(
    ("train", "expected"),
    [pytest.param(True, 3 * 8 * 16, id="train"), pytest.param(False, 3 * 8 * 4, id="eval")],
)
def test_counts_in_the_models_own_mode(adapter: TorchinfoAdapter, train: bool, expected: int) -> None:
    r = adapter.count(ModeDependent().train(train), torch.randn(3, 8))
    assert r.macs == expected
    assert r.side_effects == ()


def test_mixed_modes_are_not_flattened(adapter: TorchinfoAdapter) -> None:
    model = MixedModes().train()
    model.b.eval()
    r = adapter.count(model, torch.randn(3, 8))
    assert r.macs == 3 * 8 * 16 + 3 * 8 * 4
    assert r.module_macs() == {
        "": r.macs,
        "a": 3 * 8 * 16,
        "a.train_fc": 3 * 8 * 16,
        "b": 3 * 8 * 4,
        "b.eval_fc": 3 * 8 * 4,
    }
    assert r.side_effects == ()  # torchinfo's train()/eval() calls did not reach the copy
    assert model.training and not model.b.training


def test_two_positional_inputs(adapter: TorchinfoAdapter) -> None:
    r = adapter.count(TwoInputs(), (torch.randn(4, 16), torch.randn(4, 8)))
    assert r.macs == 4 * 16 * 32 + 4 * 8 * 32
    assert r.module_macs() == {"": r.macs, "fa": 4 * 16 * 32, "fb": 4 * 8 * 32}


@pytest.mark.parametrize(
    "kwargs",
    [pytest.param({}, id="pass-through"), pytest.param({"mode": "sum"}, id="name-clashes-with-summary")],
)
def test_keyword_inputs(adapter: TorchinfoAdapter, kwargs: dict[str, str]) -> None:
    inputs = ModelInputs((torch.randn(4, 16),), {"scale": torch.randn(4, 16), "repeat": 3, **kwargs})
    r = adapter.count(KeywordInputs(), inputs)
    assert r.status is Status.OK, r.error
    assert r.macs == 3 * 4 * 16 * 32
    assert r.module_macs() == {"": 3 * 4 * 16 * 32, "fc": 3 * 4 * 16 * 32}


def test_per_module_paths_and_shared_module(adapter: TorchinfoAdapter) -> None:
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(nn.Linear(8, 8, bias=False), nn.ReLU())
            self.shared = nn.Linear(8, 8, bias=False)
            self.alias = self.shared

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.alias(self.shared(self.blocks(x)))

    model = Shared()
    r = adapter.count(model, torch.randn(3, 8))
    # each call of the shared layer counts; both under its first name
    assert r.module_macs() == {
        "": 3 * 3 * 64,
        "blocks": 3 * 64,
        "blocks.0": 3 * 64,
        "blocks.1": 0,
        "shared": 2 * 3 * 64,
    }
    assert set(r.module_macs()) <= {n for n, _ in model.named_modules()}
    assert r.params == 2 * 64


def test_counts_where_the_model_is(adapter: TorchinfoAdapter) -> None:
    # a model on the meta device: torchinfo would fail or move it if it chose a device itself
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU()).to("meta")
    r = adapter.count(model, torch.randn(4, 16, device="meta"))
    assert r.ok, r.error
    assert r.macs == 4 * (16 * 32 + 32)
    assert r.side_effects == ()
    assert dict(r.options)["device"] == repr("the model's device")


def test_model_device() -> None:
    cpu_model = nn.Linear(2, 2)
    x = ModelInputs((torch.randn(1, 2),))
    assert model_device(cpu_model, x) == torch.device("cpu")
    assert model_device(nn.ReLU(), ModelInputs((torch.randn(1, 2, device="meta"),))) == torch.device("meta")
    split = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).to("meta"))
    assert model_device(split, x) is None  # several devices: torchinfo is told none and moves nothing


def test_summary_cache_is_released(adapter: TorchinfoAdapter) -> None:
    import torchinfo.torchinfo as impl

    adapter.count(MatmulNet(), torch.randn(2, 16))
    assert "MatmulNet" not in impl._cached_forward_pass


class Functional(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(*args)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mha(x, x, x)[0]


# (id, model factory, input shapes, expected torchinfo MACs, written from shapes)
RULES: list[tuple[str, Callable[[], nn.Module], list[tuple[int, ...]], int]] = [
    # y.shape[0] * params: the middle dim 5 is ignored
    ("linear-3d-ignores-middle-dims", lambda: nn.Linear(16, 32), [(2, 5, 16)], 2 * (16 * 32 + 32)),
    # unbatched input: y.shape[0] is out_features
    ("linear-1d-input", lambda: nn.Linear(16, 32), [(16,)], 32 * (16 * 32 + 32)),
    (
        "conv-groups-stride",
        lambda: nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2),
        [(2, 4, 8, 8)],
        (8 * 2 * 9 + 8) * 2 * 4 * 4,
    ),
    # params * N * H_out * W_out with H_out = (5 - 1) * 2 + 3 = 11
    ("convtranspose-s2", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2), [(2, 4, 5, 5)], (4 * 6 * 9 + 6) * 2 * 11 * 11),
    ("bn-eval", lambda: nn.BatchNorm2d(4).eval(), [(2, 4, 5, 5)], 2 * (2 * 4)),
    ("bn-train", lambda: nn.BatchNorm2d(4).train(), [(2, 4, 5, 5)], 2 * (2 * 4)),
    ("bn-no-affine", lambda: nn.BatchNorm2d(4, affine=False), [(2, 4, 5, 5)], 0),
    ("layernorm-3d", lambda: nn.LayerNorm(16), [(2, 5, 16)], 2 * (2 * 16)),
    ("groupnorm", lambda: nn.GroupNorm(2, 4), [(2, 4, 5, 5)], 2 * (2 * 4)),
    ("relu", nn.ReLU, [(2, 4, 5, 5)], 0),
    ("gelu", nn.GELU, [(2, 4, 5, 5)], 0),
    ("softmax", lambda: nn.Softmax(-1), [(2, 5, 16)], 0),
    ("maxpool", lambda: nn.MaxPool2d(2), [(2, 4, 6, 6)], 0),
    ("adaptive-avgpool", lambda: nn.AdaptiveAvgPool2d(1), [(2, 4, 6, 6)], 0),
    ("upsample-bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), [(2, 4, 3, 3)], 0),
    ("matmul", lambda: Functional(torch.matmul), [(2, 3, 4), (2, 4, 5)], 0),
    ("sdpa", lambda: Functional(F.scaled_dot_product_attention), [(1, 2, 5, 8)] * 3, 0),
    ("add", lambda: Functional(torch.add), [(2, 4), (2, 4)], 0),
    # non-leaf module (out_proj child never called): excluded from the total
    ("multiheadattention", Attention, [(2, 5, 16)], 0),
    # T * N * (4H*I + 4H*H + 2*4H)
    ("lstm", lambda: nn.LSTM(8, 16, batch_first=True), [(2, 5, 8)], 5 * 2 * (4 * 16 * 8 + 4 * 16 * 16 + 2 * 4 * 16)),
    ("lstm-seq-first", lambda: nn.LSTM(8, 16), [(5, 2, 8)], 5 * 2 * (4 * 16 * 8 + 4 * 16 * 16 + 2 * 4 * 16)),
]


@pytest.mark.parametrize(("factory", "shapes", "expected"), [pytest.param(f, s, e, id=i) for i, f, s, e in RULES])
def test_probed_rules(
    adapter: TorchinfoAdapter, factory: Callable[[], nn.Module], shapes: list[tuple[int, ...]], expected: int
) -> None:
    r = adapter.count(factory(), tuple(torch.randn(*s) for s in shapes))
    assert r.ok, r.error
    assert r.macs == expected


def test_embedding_rule(adapter: TorchinfoAdapter) -> None:
    r = adapter.count(nn.Embedding(10, 6), torch.randint(0, 10, (2, 5)))
    assert r.macs == 2 * 10 * 6  # N * V * E: parameter count times batch


class _Opaque:
    """An object torchinfo cannot size (zuko's lazy transforms return such objects from their forward)."""


class _MakesOpaque(nn.Module):
    def forward(self, x: torch.Tensor) -> _Opaque:
        return _Opaque()


class ReturnsOpaque(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.make = _MakesOpaque()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.make(x)
        return self.fc(x)


def test_a_failure_torchinfo_prints_and_replaces_is_named(adapter: TorchinfoAdapter) -> None:
    result = adapter.count(ReturnsOpaque(), torch.randn(2, 4))
    assert result.status is Status.ERROR
    # torchinfo prints the traceback and raises "Failed to run torchinfo. See above stack traces": the cause is said
    assert result.error.startswith("BackendFailure: torchinfo failed to run the model, on TypeError: Model contains "
                                   "a layer with an unsupported input or output type"), result.error
    assert "(raised in torchinfo." in result.error


class PaddedConv1d(nn.Module):
    """EnCodec's EncodecConv1d in miniature: Conv1d(2, 3, 5) that keeps its kernel size as a 0-d tensor
    buffer and pads the input on the left by kernel_size - 1 (a causal convolution)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 5)
        self.kernel_size = nn.Buffer(torch.tensor(5), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (int(self.kernel_size) - 1, 0)))


def test_a_kernel_size_kept_as_a_tensor_is_named(adapter: TorchinfoAdapter) -> None:
    model = nn.Sequential(nn.Identity(), PaddedConv1d())
    result = adapter.count(model, torch.randn(2, 2, 16))
    assert result.status is Status.ERROR
    assert result.error.startswith("BackendFailure: TypeError: iteration over a 0-d tensor; module '1' "
                                   "(PaddedConv1d) has a kernel_size attribute holding a 0-d tensor"), result.error
    assert "(raised in torchinfo.layer_info, line" in result.error


class MaskedEncoder(nn.Module):
    """Two post-norm encoder layers given a key padding mask: in eval mode without autograd,
    nn.TransformerEncoder packs the padded batch into a nested tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2,
                                         enable_nested_tensor=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.enc(x, src_key_padding_mask=mask)


def test_a_nested_tensor_between_modules_is_named(adapter: TorchinfoAdapter) -> None:
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1, 3:] = True
    result = adapter.count(MaskedEncoder().eval(), ModelInputs((torch.randn(2, 5, 16), mask), {}))
    assert result.status is Status.ERROR
    # torch's own message asks to file an issue; the cause follows it: the first attention's output
    assert result.error.startswith("BackendFailure: torchinfo failed to run the model, on RuntimeError: Internal "
                                   "error: NestedTensorImpl doesn't support sizes."), result.error
    assert ("; module 'enc.layers.0.self_attn' (MultiheadAttention) returned a nested tensor (torch.nested: one "
            "tensor of several shapes), whose size torchinfo reads for its shape columns (nn.TransformerEncoder "
            "packs a padded batch into one") in result.error, result.error


class Graph:
    """An input object that iterates as ``(key, value)`` pairs, as torch_geometric's ``Data`` does."""

    def __init__(self, x: torch.Tensor | None = None, edge_index: torch.Tensor | None = None) -> None:
        self.x, self.edge_index = x, edge_index

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield "x", self.x
        yield "edge_index", self.edge_index


def test_an_iterable_input_object_is_said_to_be_rebuilt_by_torchinfo() -> None:
    """torchinfo moves its inputs by rebuilding every iterable as ``type(x)([items])``: a graph object
    iterating as (key, value) pairs reaches the model as ``Graph([...])``, whose ``x`` is a list. The
    error says so instead of looking like the model's bug."""
    from flopaudit.inputs import ModelInputs

    class NodeLinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, data: Graph) -> torch.Tensor:
            return self.lin(data.x)

    graph = Graph(torch.randn(5, 4), torch.randint(0, 5, (2, 8)))
    assert NodeLinear()(graph).shape == (5, 2)
    r = get_adapter("torchinfo").count(NodeLinear(), ModelInputs((graph,), {}))
    assert r.status is Status.ERROR
    assert r.error is not None and r.error.startswith("BackendFailure: torchinfo failed to run the model, on TypeError")
    assert (f"; torchinfo moves inputs by rebuilding each iterable as its class called on the list of its items, "
            f"and input 0 is a {__name__}.Graph, which it rebuilt as Graph([...]) for the model") in r.error, r.error


class Record:
    """An input object that has a size and a ``.data`` holding itself, as tensordict's ``TensorDict``
    (a dictionary of tensors with a batch size) has."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    @property
    def data(self) -> Record:
        return self

    def size(self) -> torch.Size:
        return self.x.shape[:1]


def test_an_input_object_with_a_data_attribute_is_said_to_be_read_as_a_packed_sequence() -> None:
    """torchinfo sizes its inputs as a PackedSequence's wherever the first one has a ``.data`` with a
    ``.size()``, and reads ``.data.element_size()``: a TensorDict is one such object. The error says so."""
    from flopaudit.inputs import ModelInputs

    class RecordLinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, record: Record) -> torch.Tensor:
            return self.lin(record.x)

    record = Record(torch.randn(3, 4))
    assert RecordLinear()(record).shape == (3, 2)
    r = get_adapter("torchinfo").count(RecordLinear(), ModelInputs((record,), {}))
    assert r.status is Status.ERROR
    assert r.error is not None and "'Record' object has no attribute 'element_size'" in r.error, r.error
    assert (f"; torchinfo takes a first input with a .data that has a .size() for a PackedSequence and reads "
            f"its .data.element_size(): input 0 is a {__name__}.Record, whose .data is a {__name__}.Record, not a "
            "tensor") in r.error, r.error
