"""Backend-specific tests of the thop adapter (thop 0.1.1 rules).

thop's rules used below: Linear = numel(y) * in_features (no bias);
ConvNd = numel(y) * (Cin / groups) * prod(kernel) (no bias); BatchNorm =
2 * numel(x), doubled when affine; ReLU, MaxPool = 0; no rule (zero) for
GELU, Embedding, MultiheadAttention and every functional op.
"""

from __future__ import annotations

import pytest
import torch
from conftest import SmallCNN
from conftest import TwoInputLinearBias as TwoInputs
from torch import nn

from flopaudit.adapters import get_adapter, get_backend
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import fingerprint
from flopaudit.records import Status, Unit

if not get_backend("thop").available():  # not installed, or ultralytics-thop's files in its place
    pytest.skip(get_backend("thop").missing_reason(), allow_module_level=True)


@pytest.fixture(scope="module")
def adapter():
    return get_adapter("thop")


def small_cnn_macs(n: int) -> int:
    conv = (n * 8 * 8 * 8) * 3 * 9  # numel(y) * Cin * K
    fc = (n * 10) * (8 * 4 * 4)  # numel(y) * in_features
    return conv + fc


class LinearPlusMatmul(nn.Module):
    """fc(16 -> 8) then ``torch.matmul`` with an 8 x 8 weight."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.fc(x), self.w)


class KeywordInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc_a = nn.Linear(16, 8)
        self.fc_b = nn.Linear(4, 8)

    def forward(self, a: torch.Tensor, *, b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return (self.fc_a(a) + self.fc_b(b)) * scale


TWO_INPUT_MACS = 3 * 8 * 16 + 3 * 8 * 4  # numel(y) * in for fc_a and fc_b, batch 3


@pytest.mark.parametrize(
    ("module", "shape", "expected"),
    [
        (nn.Linear(16, 32), (4, 16), 4 * 32 * 16),  # numel(y) * in_features, bias not counted
        (nn.Conv2d(3, 8, 3, padding=1), (2, 3, 8, 8), (2 * 8 * 8 * 8) * 3 * 3 * 3),  # numel(y) * Cin * K
    ],
    ids=["linear-16-32-batch4", "conv-3-8-k3-batch2"],
)
def test_unit_probe(adapter, module: nn.Module, shape: tuple[int, ...], expected: int) -> None:
    result = adapter.count(module, torch.randn(*shape))
    assert result.status is Status.OK, result.error
    assert result.unit is Unit.MAC
    assert result.macs == expected
    # thop reports whole-batch MACs as a float: raw and normalised agree.
    assert isinstance(result.raw_total, float)
    assert result.raw_total == expected
    assert result.per_module == (("", expected),)


def test_raw_total_is_what_thop_profile_returns(adapter) -> None:
    from thop import profile

    torch.manual_seed(0)
    model, x = SmallCNN(), torch.randn(2, 3, 8, 8)
    result = adapter.count(model, x)
    ops, params = profile(SmallCNN(), inputs=(x,), verbose=False)
    assert result.raw_total == ops
    assert result.params == params == (8 * 3 * 9 + 8) + (128 * 10 + 10)


def test_macs_proportional_to_batch(adapter) -> None:
    model = SmallCNN()
    one = adapter.count(model, torch.randn(1, 3, 8, 8))
    four = adapter.count(model, torch.randn(4, 3, 8, 8))
    assert one.macs == small_cnn_macs(1)
    assert four.macs == small_cnn_macs(4) == 4 * one.macs
    assert four.raw_total == 4 * one.raw_total


def test_per_module_tree(adapter) -> None:
    model = nn.Sequential(SmallCNN(), nn.Sequential(nn.BatchNorm1d(10), nn.ReLU()))
    result = adapter.count(model, torch.randn(2, 3, 8, 8))
    bn = 2 * (2 * 10) * 2  # 2 * numel(x), doubled for the affine BatchNorm
    assert result.module_macs() == {
        "": small_cnn_macs(2) + bn,
        "0": small_cnn_macs(2),
        "0.conv": (2 * 8 * 8 * 8) * 3 * 9,
        "0.act": 0,
        "0.pool": 0,
        "0.fc": (2 * 10) * 128,
        "1": bn,
        "1.0": bn,
        "1.1": 0,
    }


def test_functional_matmul_is_not_counted(adapter) -> None:
    result = adapter.count(LinearPlusMatmul(), torch.randn(4, 16))
    assert result.macs == 4 * 8 * 16  # the fc only; torch.matmul has no module to hook
    assert result.per_op == ()


def test_leftover_buffers_are_side_effects_of_the_copy_only(adapter) -> None:
    model = nn.Sequential(nn.Linear(16, 8), nn.GELU())
    before = fingerprint(model)
    result = adapter.count(model, torch.randn(4, 16))
    assert result.status is Status.OK, result.error
    # thop removes its buffers only from modules with a rule: GELU keeps them.
    assert any("1.total_ops" in s and "1.total_params" in s for s in result.side_effects), result.side_effects
    assert fingerprint(model) == before
    assert "1.total_ops" not in model.state_dict()


def test_two_positional_inputs(adapter) -> None:
    result = adapter.count(TwoInputs(), (torch.randn(3, 16), torch.randn(3, 4)))
    assert result.status is Status.OK, result.error
    assert result.macs == TWO_INPUT_MACS
    assert result.module_macs() == {"": TWO_INPUT_MACS, "fc_a": 3 * 8 * 16, "fc_b": 3 * 8 * 4}


def test_keyword_inputs_keep_the_user_module_paths(adapter) -> None:
    result = adapter.count(KeywordInput(), torch.randn(3, 16), {"b": torch.randn(3, 4), "scale": 2.0})
    assert result.status is Status.OK, result.error
    assert result.macs == TWO_INPUT_MACS
    assert result.module_macs() == {"": TWO_INPUT_MACS, "fc_a": 3 * 8 * 16, "fc_b": 3 * 8 * 4}
    assert result.params == (16 * 8 + 8) + (4 * 8 + 8)
    assert not any("_KwargsWrapper" in w for w in result.warnings)
    assert result.unsupported == ()


def test_keyword_only_inputs(adapter) -> None:
    class KeywordOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 8)

        def forward(self, *, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    result = adapter.count(KeywordOnly(), ModelInputs((), {"x": torch.randn(5, 16)}))
    assert result.macs == 5 * 8 * 16


@pytest.mark.parametrize(
    ("model", "inputs", "expected"),
    [
        (nn.Sequential(nn.Linear(16, 8), nn.GELU(), nn.GELU()), (torch.randn(2, 16),), {"GELU": 2}),
        (nn.Sequential(nn.Embedding(10, 16), nn.Flatten()), (torch.randint(0, 10, (2, 3)),), {"Embedding": 1, "Flatten": 1}),
        (
            nn.MultiheadAttention(16, 2, batch_first=True),
            (torch.randn(2, 5, 16),) * 3,
            # MHA holds in_proj_weight itself; its out_proj is a Linear subclass, so no rule either.
            {"MultiheadAttention": 1, "NonDynamicallyQuantizableLinear": 1},
        ),
    ],
    ids=["gelu-x2", "embedding-flatten", "multihead-attention"],
)
def test_unsupported_modules(adapter, model: nn.Module, inputs: tuple, expected: dict[str, int]) -> None:
    result = adapter.count(model, inputs)
    assert result.status is Status.OK, result.error
    assert dict(result.unsupported) == expected
    assert any(w.startswith("[WARN] Cannot find rule") for w in result.warnings)


def test_containers_without_rule_are_not_unsupported(adapter) -> None:
    result = adapter.count(SmallCNN(), torch.randn(1, 3, 8, 8))
    assert result.unsupported == ()  # SmallCNN has no rule, but thop counts its children


def test_nothing_reaches_the_terminal(adapter, capfd: pytest.CaptureFixture[str]) -> None:
    adapter.count(nn.Sequential(nn.Linear(16, 8), nn.GELU()), torch.randn(2, 16))
    out, err = capfd.readouterr()
    assert out == "" and err == ""



class _PassThrough(nn.Module):
    """A wrapper answering every name its wrapped module has, as PEFT's ``LoraModel`` does."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.model = inner

    def __getattr__(self, name: str) -> object:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def test_a_wrapper_passing_names_through_is_named_where_thop_registers_its_buffers(adapter) -> None:  # noqa: ANN001
    """thop registers ``total_ops`` on the wrapped module first (children before parents), and the
    wrapper then answers ``total_ops`` through its ``__getattr__``: register_buffer's KeyError
    ("attribute 'total_ops' already exists") becomes a sentence naming the wrapper."""
    model = nn.Sequential(_PassThrough(nn.Linear(4, 4)))
    r = adapter.count(model, torch.randn(2, 4))
    assert r.status is Status.ERROR
    assert ("module '0' (_PassThrough) already answers total_ops through its __getattr__ (it passes names "
            "through to another module): register_buffer refuses it") in (r.error or ""), r.error


def test_a_module_run_inside_a_torch_func_transform_is_explained() -> None:
    """thop's hook adds a module's count to its ``total_ops`` buffer in place, which torch.func
    refuses inside a transform when the module runs there (titans' neural memory takes the
    gradient of its memory network inside its forward)."""
    from user_models import fast_weights

    r = get_adapter("thop").count(fast_weights(), torch.randn(4, 8))
    assert r.status is Status.ERROR and "would mutate a captured Tensor" in (r.error or "")
    assert ("the counter's hook writes its count to a tensor of its own in place (aten::add_.Tensor) after module "
            "'memory' (Linear) ran inside a torch.func transform") in (r.error or ""), r.error
