"""Backend-specific tests of the two ptflops adapters (ptflops 0.7.x rules).

pytorch engine rules used below (per module, whole batch, before ptflops
divides by ``__batch_counter__``): Linear = prod(x.shape[:-1]) * (in*out + out);
ConvNd = N * prod(out spatial) * K * Cin * Cout/g + N * Cout * prod(out spatial)
for the bias; ReLU = numel(y); MaxPool = numel(x). Patched functions count
for the whole batch and are not divided: F.relu = numel(x),
F.max_pool2d = numel(x), torch.matmul = prod(a.shape) * b.shape[-1].

aten engine rules: addmm = N*in*out + N*out; mm = prod(a.shape) * b.shape[-1];
convolution = N * prod(w.shape) * prod(out spatial) + N * Cout * prod(out spatial);
everything else zero.
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from conftest import SmallCNN
from conftest import TwoInputLinearBias as TwoInputs
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.adapters.ptflops_aten import _is_view_op
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import fingerprint
from flopaudit.records import Status, Unit

pytest.importorskip("ptflops")

PYTORCH = "ptflops-pytorch"
ATEN = "ptflops-aten"


@pytest.fixture(scope="module")
def pytorch_adapter():
    return get_adapter(PYTORCH)


@pytest.fixture(scope="module")
def aten_adapter():
    return get_adapter(ATEN)


CONV_PER_SAMPLE = 8 * 8 * (9 * 3 * 8) + 8 * 8 * 8  # prod(out spatial) * K * Cin * Cout + bias Cout * prod(out spatial)
FC_PER_SAMPLE = 128 * 10 + 10  # in * out + out
ACT_PER_SAMPLE = 8 * 8 * 8  # numel of the ReLU output = numel of the max-pool input
# ptflops-pytorch: nn.ReLU and nn.MaxPool2d call F.relu and F.max_pool2d, which
# are patched: each is counted once by its module hook and once more as a function.
SMALL_CNN_MODULES = CONV_PER_SAMPLE + ACT_PER_SAMPLE + ACT_PER_SAMPLE + FC_PER_SAMPLE
SMALL_CNN_FUNCTIONAL = ACT_PER_SAMPLE + ACT_PER_SAMPLE


class LinearPlusMatmul(nn.Module):
    """fc(16 -> 8), then the output times an 8 x 8 weight by ``how``."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.fc = nn.Linear(16, 8)
        self.w = nn.Parameter(torch.randn(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if self.how == "torch.matmul":
            return torch.matmul(h, self.w)
        if self.how == "Tensor.matmul":
            return h.matmul(self.w)
        if self.how == "@":
            return h @ self.w
        return torch.einsum("ij,jk->ik", h, self.w)


FC_16_8_BATCH4 = 4 * (16 * 8 + 8)
MATMUL_4x8_8x8 = (4 * 8) * 8  # prod(a.shape) * b.shape[-1]


class KeywordInput(TwoInputs):
    def forward(self, a: torch.Tensor, *, b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:  # type: ignore[override]
        return (self.fc_a(a) + self.fc_b(b)) * scale


class KeywordOnly(TwoInputs):
    def forward(self, *, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.fc_a(a) + self.fc_b(b)


TWO_INPUT_MACS = 3 * (16 * 8 + 8) + 3 * (4 * 8 + 8)  # both engines count the linear bias


# ---------------------------------------------------------------- unit probes


@pytest.mark.parametrize(
    ("module", "shape", "expected", "batch"),
    [
        (nn.Linear(16, 32), (4, 16), 4 * (16 * 32 + 32), 4),  # prod(x.shape[:-1]) * (in*out + out)
        (nn.Conv2d(3, 8, 3, padding=1), (2, 3, 8, 8), 2 * 8 * 8 * (9 * 3 * 8) + 2 * 8 * 8 * 8, 2),
    ],
    ids=["linear-16-32-batch4", "conv-3-8-k3-batch2"],
)
def test_unit_probe_pytorch(pytorch_adapter, module: nn.Module, shape: tuple[int, ...], expected: int, batch: int) -> None:
    result = pytorch_adapter.count(module, torch.randn(*shape))
    assert result.status is Status.OK, result.error
    assert result.unit is Unit.MAC
    assert result.macs == expected
    # Module-only model: ptflops reports the module count divided by the batch.
    assert result.raw_total == expected // batch
    assert result.per_module == (("", expected),)
    assert result.per_op == ()


@pytest.mark.parametrize(
    ("module", "shape", "expected", "op"),
    [
        (nn.Linear(16, 32), (4, 16), 4 * 16 * 32 + 4 * 32, "aten.addmm"),  # N*in*out + N*out
        (nn.Conv2d(3, 8, 3, padding=1), (2, 3, 8, 8), 2 * (8 * 3 * 3 * 3) * (8 * 8) + 2 * 8 * 8 * 8, "aten.convolution"),
    ],
    ids=["linear-16-32-batch4", "conv-3-8-k3-batch2"],
)
def test_unit_probe_aten(aten_adapter, module: nn.Module, shape: tuple[int, ...], expected: int, op: str) -> None:
    result = aten_adapter.count(module, torch.randn(*shape))
    assert result.status is Status.OK, result.error
    assert result.unit is Unit.MAC
    assert result.macs == expected
    assert result.raw_total == expected  # the aten engine counts whole batches, undivided
    assert result.op_macs() == {op: expected}


# ------------------------------------------------------- fidelity to the API


def _public(backend: str, model: nn.Module, make_inputs) -> int:
    from ptflops import get_model_complexity_info

    macs, _params = get_model_complexity_info(
        model, (1,), as_strings=False, print_per_layer_stat=False, input_constructor=make_inputs,
        ost=io.StringIO(), backend=backend,
    )
    return macs


@pytest.mark.parametrize("backend", ["pytorch", "aten"])
def test_raw_total_is_what_get_model_complexity_info_returns(backend: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    result = get_adapter(f"ptflops-{backend}").count(SmallCNN(), x)
    assert result.raw_total == _public(backend, SmallCNN(), lambda _res: x)


@pytest.mark.parametrize("backend", ["pytorch", "aten"])
def test_raw_total_with_keyword_inputs_matches_input_constructor(backend: str) -> None:
    inputs = {"a": torch.randn(3, 16), "b": torch.randn(3, 4)}
    result = get_adapter(f"ptflops-{backend}").count(KeywordOnly(), ModelInputs((), inputs))
    assert result.raw_total == _public(backend, KeywordOnly(), lambda _res: inputs)


# ------------------------------------------------------------------- batches


def test_pytorch_normalisation_undoes_only_the_module_division(pytorch_adapter) -> None:
    model = SmallCNN()
    one = pytorch_adapter.count(model, torch.randn(1, 3, 8, 8))
    four = pytorch_adapter.count(model, torch.randn(4, 3, 8, 8))
    assert one.macs == SMALL_CNN_MODULES + SMALL_CNN_FUNCTIONAL
    assert four.macs == 4 * (SMALL_CNN_MODULES + SMALL_CNN_FUNCTIONAL) == 4 * one.macs
    # raw: module counts per sample, functional counts for the whole batch.
    assert one.raw_total == SMALL_CNN_MODULES + SMALL_CNN_FUNCTIONAL
    assert four.raw_total == SMALL_CNN_MODULES + 4 * SMALL_CNN_FUNCTIONAL
    assert four.op_macs() == {"F.relu": 4 * ACT_PER_SAMPLE, "F.max_pool2d": 4 * ACT_PER_SAMPLE}


def test_pytorch_module_only_raw_is_per_sample(pytorch_adapter) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    per_sample = CONV_PER_SAMPLE + (512 * 10 + 10)
    one = pytorch_adapter.count(model, torch.randn(1, 3, 8, 8))
    four = pytorch_adapter.count(model, torch.randn(4, 3, 8, 8))
    assert one.raw_total == four.raw_total == per_sample
    assert (one.macs, four.macs) == (per_sample, 4 * per_sample)


def test_aten_macs_proportional_to_batch(aten_adapter) -> None:
    model = SmallCNN()
    one = aten_adapter.count(model, torch.randn(1, 3, 8, 8))
    four = aten_adapter.count(model, torch.randn(4, 3, 8, 8))
    assert one.macs == CONV_PER_SAMPLE + FC_PER_SAMPLE  # ReLU and max-pool count zero
    assert four.macs == four.raw_total == 4 * one.macs


def test_pytorch_sequence_first_batch_counter(pytorch_adapter) -> None:
    # __batch_counter__ is dim 0 of the first input: the sequence length (5) for
    # a sequence-first LSTM, not the batch (2); normalisation still restores it.
    lstm = nn.LSTM(8, 16)
    per_step_and_sample = (64 * 8) + (64 * 16) + 4 * 16 + 3 * 16 + 3 * 16 + (64 + 64)
    result = pytorch_adapter.count(lstm, torch.randn(5, 2, 8))
    assert result.macs == 5 * 2 * per_step_and_sample
    assert result.raw_total == 2 * per_step_and_sample


# -------------------------------------------------------- functional matmul


@pytest.mark.parametrize(
    ("how", "counted"),
    [("torch.matmul", True), ("Tensor.matmul", True), ("@", False), ("einsum", False)],
    ids=["torch.matmul", "Tensor.matmul", "operator-@", "einsum"],
)
def test_pytorch_functional_matmul(pytorch_adapter, how: str, counted: bool) -> None:
    result = pytorch_adapter.count(LinearPlusMatmul(how), torch.randn(4, 16))
    assert result.status is Status.OK, result.error
    functional = MATMUL_4x8_8x8 if counted else 0
    assert result.macs == FC_16_8_BATCH4 + functional
    assert result.raw_total == FC_16_8_BATCH4 // 4 + functional
    assert result.module_macs() == {"": FC_16_8_BATCH4, "fc": FC_16_8_BATCH4}
    assert result.op_macs() == ({how: MATMUL_4x8_8x8} if counted else {})


@pytest.mark.parametrize("how", ["torch.matmul", "Tensor.matmul", "@", "einsum"])
def test_aten_counts_every_matmul_spelling(aten_adapter, how: str) -> None:
    result = aten_adapter.count(LinearPlusMatmul(how), torch.randn(4, 16))
    assert result.macs == FC_16_8_BATCH4 + MATMUL_4x8_8x8


# -------------------------------------------------------------- side effects


def _patched_targets() -> tuple:
    return (F.relu, F.softmax, F.interpolate, torch.matmul, torch.bmm, torch.add, torch.Tensor.matmul, torch.Tensor.add)


def test_pytorch_side_effects_stay_on_the_copy(pytorch_adapter) -> None:
    model = SmallCNN().train()
    before, functions, tensor_attrs = fingerprint(model), _patched_targets(), set(vars(torch.Tensor))
    result = pytorch_adapter.count(model, torch.randn(2, 3, 8, 8))
    assert result.status is Status.OK, result.error
    assert any("added attributes" in s and "__batch_counter__" in s for s in result.side_effects), result.side_effects
    assert any("train/eval" in s for s in result.side_effects)
    assert fingerprint(model) == before
    assert model.training
    assert _patched_targets() == functions
    # ptflops' own unpatch_tensor_ops would leave e.g. "matmul" as an own attribute of torch.Tensor.
    assert set(vars(torch.Tensor)) == tensor_attrs


def test_pytorch_restores_torch_when_the_forward_raises(pytorch_adapter) -> None:
    class Raises(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            F.relu(torch.matmul(x, x.T))
            raise RuntimeError("forward failed")

    functions = _patched_targets()
    result = pytorch_adapter.count(Raises(), torch.randn(2, 3))
    assert result.status is Status.ERROR
    assert "forward failed" in (result.error or "")
    assert _patched_targets() == functions


def test_aten_side_effects_stay_on_the_copy(aten_adapter) -> None:
    model = SmallCNN()
    before = fingerprint(model)
    result = aten_adapter.count(model, torch.randn(2, 3, 8, 8))
    assert result.status is Status.OK, result.error
    # The engine's enter/exit hooks on the root's direct children are never removed.
    assert any(s.startswith("left hooks on") and "conv.forward_hooks" in s for s in result.side_effects), (
        result.side_effects
    )
    assert fingerprint(model) == before


# -------------------------------------------------- several and keyword inputs


@pytest.mark.parametrize("name", [PYTORCH, ATEN])
def test_two_positional_inputs(name: str) -> None:
    result = get_adapter(name).count(TwoInputs(), (torch.randn(3, 16), torch.randn(3, 4)))
    assert result.status is Status.OK, result.error
    assert result.macs == TWO_INPUT_MACS
    assert result.module_macs() == {"": TWO_INPUT_MACS, "fc_a": 3 * (16 * 8 + 8), "fc_b": 3 * (4 * 8 + 8)}


@pytest.mark.parametrize("name", [PYTORCH, ATEN])
def test_keyword_inputs(name: str) -> None:
    result = get_adapter(name).count(KeywordInput(), torch.randn(3, 16), {"b": torch.randn(3, 4), "scale": 2.0})
    assert result.status is Status.OK, result.error
    assert result.macs == TWO_INPUT_MACS  # `* scale` is an operator: neither engine counts it
    assert result.module_macs() == {"": TWO_INPUT_MACS, "fc_a": 3 * (16 * 8 + 8), "fc_b": 3 * (4 * 8 + 8)}


def test_pytorch_keyword_only_inputs_are_not_divided(pytorch_adapter) -> None:
    result = pytorch_adapter.count(KeywordOnly(), ModelInputs((), {"a": torch.randn(3, 16), "b": torch.randn(3, 4)}))
    # No positional input: ptflops assumes batch size 1 and says so.
    assert result.raw_total == result.macs == TWO_INPUT_MACS
    assert any("No positional inputs" in w for w in result.warnings)


# ---------------------------------------------------------------- unsupported


@pytest.mark.parametrize(
    ("model", "inputs", "unsupported", "per_op"),
    [
        (
            nn.Sequential(nn.Embedding(10, 16), nn.Flatten()),
            (torch.randint(0, 10, (2, 3)),),
            {"Embedding": 1, "Flatten": 1},
            {},
        ),
        (
            # No module hook for nn.Softmax, so ptflops warns; F.softmax still counts numel(x).
            nn.Sequential(nn.Linear(16, 8), nn.Softmax(dim=-1)),
            (torch.randn(2, 16),),
            {"Softmax": 1},
            {"F.softmax": 2 * 8},
        ),
    ],
    ids=["embedding-flatten", "softmax-module"],
)
def test_pytorch_unsupported(pytorch_adapter, model: nn.Module, inputs: tuple, unsupported: dict, per_op: dict) -> None:
    result = pytorch_adapter.count(model, inputs)
    assert result.status is Status.OK, result.error
    assert dict(result.unsupported) == unsupported
    assert result.op_macs() == per_op
    assert any("is treated as a zero-op" in w for w in result.warnings)


def test_pytorch_containers_and_hooked_children_are_not_unsupported(pytorch_adapter) -> None:
    mha = nn.MultiheadAttention(16, 2, batch_first=True)
    x = torch.randn(2, 5, 16)
    # ptflops warns about out_proj's class, but the MHA hook covers it.
    assert pytorch_adapter.count(mha, (x, x, x)).unsupported == ()
    assert pytorch_adapter.count(SmallCNN(), torch.randn(1, 3, 8, 8)).unsupported == ()


def test_aten_unsupported_counts_calls_and_skips_views(aten_adapter) -> None:
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.GELU())
    result = aten_adapter.count(model, torch.randn(2, 16))
    assert dict(result.unsupported) == {"aten.relu": 2, "aten.gelu": 1}
    assert result.macs == 2 * (16 * 8 + 8) + 2 * (8 * 8 + 8)


@pytest.mark.parametrize(
    ("op", "is_view"),
    [("aten.view", True), ("aten.t", True), ("aten.expand", True), ("aten.relu", False), ("aten.add_", False),
     ("aten.clone", False), ("not an op", False)],
)
def test_is_view_op(op: str, is_view: bool) -> None:
    assert _is_view_op(op) is is_view


def test_aten_per_module_is_root_and_direct_children(aten_adapter) -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(16, 8), nn.ReLU()), nn.Linear(8, 4))
    result = aten_adapter.count(model, torch.randn(4, 16))
    first, second = 4 * (16 * 8 + 8), 4 * (8 * 4 + 4)
    assert result.module_macs() == {"": first + second, "0": first, "1": second}


def test_pytorch_per_module_tree(pytorch_adapter) -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(16, 8), nn.ReLU()), nn.Linear(8, 4))
    result = pytorch_adapter.count(model, torch.randn(4, 16))
    first, relu, second = 4 * (16 * 8 + 8), 4 * 8, 4 * (8 * 4 + 4)
    assert result.module_macs() == {"": first + relu + second, "0": first + relu, "0.0": first, "0.1": relu,
                                    "1": second}
    assert result.op_macs() == {"F.relu": relu}


@pytest.mark.parametrize("name", [PYTORCH, ATEN])
def test_nothing_reaches_the_terminal(name: str, capfd: pytest.CaptureFixture[str]) -> None:
    get_adapter(name).count(nn.Sequential(nn.Linear(16, 8), nn.Softmax(-1), nn.Flatten()), torch.randn(2, 16))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_library_class_named_like_a_torch_layer_does_not_flag_the_torch_layers() -> None:
    """peft's ``lora.Linear`` wraps an ``nn.Linear`` and is named "Linear": ptflops warns that module
    "Linear is treated as a zero-op", by name. The torch layers it counts are not listed as
    unsupported, and the wrapper (a container whose children are counted) is not either."""

    class Linear(nn.Module):  # as peft.tuners.lora.layer.Linear
        def __init__(self) -> None:
            super().__init__()
            self.base_layer = nn.Linear(8, 8)
            self.lora_A = nn.Linear(8, 2, bias=False)
            self.lora_B = nn.Linear(2, 8, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base_layer(x) + self.lora_B(self.lora_A(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = Linear()
            self.head = nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.proj(x))

    r = get_adapter("ptflops-pytorch").count(Net(), torch.randn(2, 8))
    assert "Warning: module Linear is treated as a zero-op." in r.warnings
    assert r.unsupported == (), r.unsupported
    assert r.macs == 2 * (8 * 8 + 8 + 8 * 2 + 2 * 8 + 8 * 4 + 4)  # every Linear counted, bias included


def test_pytorch_says_why_the_batch_it_divides_by_is_zero(pytorch_adapter) -> None:
    """ptflops divides the module counts by the batch size its hook on the root adds up: 0 for an
    empty batch, and for a root whose ``__call__`` runs its forward itself (gpytorch's modules),
    whose hooks never run. Either way it raises ZeroDivisionError; the error says which."""
    from flopaudit.zoo.hard.structure import RootCallsForwardItself

    r = pytorch_adapter.count(RootCallsForwardItself(), torch.randn(5, 8))
    assert r.status is Status.ERROR and r.error.startswith("BackendFailure: ZeroDivisionError")
    assert "that hook never ran: the root's __call__ does not go through nn.Module.__call__" in r.error
    r = pytorch_adapter.count(nn.Linear(8, 4), torch.randn(0, 8))
    assert r.status is Status.ERROR and "the length of the model's first positional input, which is 0 here" in r.error
