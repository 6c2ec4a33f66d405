"""Rules of the fvcore, torchinfo and torch-flop-counter rulesets, one quirk at a time.

Each test builds a tiny model, records it with the reference as the reference
adapter does for that backend (grad mode, patched calls) and prices it with
the backend's ruleset; the expected number is the backend's formula written
out from the shapes. The same number is asserted for the real backend, so
every rule here is also a probe of the installed backend (the conformance
test, tests/test_ruleset_predictions.py, covers the zoo).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.inputs import ModelInputs
from flopaudit.records import Status
from flopaudit.reference import count
from flopaudit.reference.engine import OpEvent, record
from flopaudit.reference.pricing import predict
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import EventRule, ModuleRule, get_ruleset

for _module in ("fvcore", "torchinfo", "torch_flop_counter"):
    importlib.import_module(f"flopaudit.reference.backend_rulesets.{_module}")

import flopaudit.reference.backend_rulesets.torch_profiler  # noqa: E402, F401 - registers its ruleset
from flopaudit.reference.backend_rulesets.fvcore import einsum_macs  # noqa: E402
from flopaudit.reference.backend_rulesets.torch_flop_counter import FORMULA_OPS  # noqa: E402
from flopaudit.reference.backend_rulesets.torchinfo import leaf_macs  # noqa: E402


class Call(nn.Module):
    """``fn(self, *inputs)`` as a module, with ``mods`` as children."""

    def __init__(self, fn: Callable[..., Any], *mods: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(mods)

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self.fn(self, *inputs)


def predicted(backend: str, model: nn.Module, *args: torch.Tensor) -> int:
    """The ruleset's prediction, recorded as the reference adapter records it for that backend."""
    rs = get_ruleset(backend)
    rc = count(model, tuple(args), ruleset=rs, no_grad=not rs.grad_enabled)
    return predict(rc.events, rc.module_call_records, rs, backend).macs


def actual(backend: str, model: nn.Module, *args: torch.Tensor) -> int:
    """What the backend's adapter reports."""
    result = get_adapter(backend).count(model, ModelInputs(tuple(args)))
    assert result.status is Status.OK, result.error
    return result.macs


def check(backend: str, build: Callable[[], nn.Module], args: tuple[torch.Tensor, ...], expected: int) -> None:
    torch.manual_seed(0)
    assert predicted(backend, build(), *args) == expected
    assert actual(backend, build(), *args) == expected


def seq(*mods: nn.Module) -> Callable[[], nn.Module]:
    return lambda: nn.Sequential(*mods)


X = torch.randn(2, 4, 8, 8)
NUMEL = 2 * 4 * 8 * 8

# -- fvcore ---------------------------------------------------------------------

FVCORE_CASES = {
    "batchnorm-eval-affine": (lambda: nn.Sequential(nn.BatchNorm2d(4)).eval(), (X,), 2 * NUMEL),
    "batchnorm-eval-no-affine": (lambda: nn.Sequential(nn.BatchNorm2d(4, affine=False)).eval(), (X,), NUMEL),
    "batchnorm-train-affine": (lambda: nn.Sequential(nn.BatchNorm2d(4)).train(), (X,), 5 * NUMEL),
    "batchnorm-train-no-affine": (lambda: nn.Sequential(nn.BatchNorm2d(4, affine=False)).train(), (X,), 4 * NUMEL),
    # eval without running statistics uses batch statistics: the training formula
    "batchnorm-eval-no-stats": (lambda: nn.Sequential(nn.BatchNorm2d(4, track_running_stats=False)).eval(), (X,),
                                5 * NUMEL),
    "instancenorm": (seq(nn.InstanceNorm2d(4)), (X,), 4 * NUMEL),
    "instancenorm-affine": (seq(nn.InstanceNorm2d(4, affine=True)), (X,), 5 * NUMEL),
    # running statistics in eval: torch runs a batch norm, fvcore still prices aten::instance_norm
    "instancenorm-running-stats-eval": (lambda: nn.Sequential(nn.InstanceNorm2d(4, track_running_stats=True)).eval(),
                                        (X,), 4 * NUMEL),
    "torch.instance_norm-affine": (
        lambda: Call(lambda s, x, w: torch.instance_norm(x, w, w, None, None, True, 0.1, 1e-5, False)),
        (X, torch.ones(4)), 5 * NUMEL),
    "layernorm-no-affine": (seq(nn.LayerNorm(8, elementwise_affine=False)), (X,), 4 * NUMEL),
    "groupnorm-affine": (seq(nn.GroupNorm(2, 4)), (X,), 5 * NUMEL),
    "adaptive-avg-pool-1x1": (seq(nn.AdaptiveAvgPool2d(1)), (X,), NUMEL),
    "adaptive-avg-pool-3x3": (seq(nn.AdaptiveAvgPool2d(3)), (X,), NUMEL),
    "functional-adaptive-avg-pool": (lambda: Call(lambda s, x: F.adaptive_avg_pool2d(x, (1, 1))), (X,), NUMEL),
    "adaptive-avg-pool1d": (seq(nn.AdaptiveAvgPool1d(1)), (torch.randn(2, 4, 8),), 0),
    # the same mean torch computes for a 1x1 adaptive pool, written out: unsupported
    "explicit-mean": (lambda: Call(lambda s, x: x.mean((-1, -2), keepdim=True)), (X,), 0),
    "upsample-nearest": (seq(nn.Upsample(scale_factor=2)), (X,), 2 * 4 * 16 * 16),
    "upsample-bilinear": (seq(nn.Upsample(scale_factor=2, mode="bilinear")), (X,), 4 * 2 * 4 * 16 * 16),
    "upsample-bicubic": (seq(nn.Upsample(scale_factor=2, mode="bicubic")), (X,), 0),
    "grid-sample": (lambda: Call(lambda s, x: F.grid_sample(x, torch.zeros(2, 5, 6, 2), align_corners=False)),
                    (X,), 4 * 2 * 4 * 5 * 6),
    "conv-padding-same": (seq(nn.Conv2d(4, 8, 3, padding="same")), (X,), 0),
    "conv1d-padding-valid": (seq(nn.Conv1d(4, 8, 3, padding="valid")), (torch.randn(2, 4, 16),), 0),
    "torch.conv2d-padding-same": (lambda: Call(lambda s, x, w: torch.conv2d(x, w, padding="same")),
                                  (X, torch.randn(8, 4, 3, 3)), 0),
    # reflect padding is applied by F.pad; the conv then gets integer padding
    "conv-padding-same-reflect": (seq(nn.Conv2d(4, 8, 3, padding="same", padding_mode="reflect")), (X,),
                                  2 * 8 * 4 * 3 * 3 * 8 * 8),
    "conv-padding-int": (seq(nn.Conv2d(4, 8, 3, padding=1)), (X,), 2 * 8 * 4 * 3 * 3 * 8 * 8),
    "convtranspose-by-input": (seq(nn.ConvTranspose2d(4, 6, 3, stride=2)), (X,), 2 * 4 * 8 * 8 * 6 * 3 * 3),
    # prod(a.shape) * b.shape[-1]: the batch of 2 carried by b is missed
    "matmul-batch-on-b-only": (lambda: Call(lambda s, a, b: a @ b), (torch.randn(4, 5), torch.randn(2, 5, 6)),
                               4 * 5 * 6),
    "torch.matmul-batched": (lambda: Call(lambda s, a, b: torch.matmul(a, b)),
                             (torch.randn(2, 4, 5), torch.randn(2, 5, 6)), 2 * 4 * 5 * 6),
    # numpy's optimal path contracts (j,k)x(k,l) first; torch goes left to right
    "einsum-chain": (lambda: Call(lambda s, a, b, c: torch.einsum("ij,jk,kl->il", a, b, c)),
                     (torch.randn(5, 6), torch.randn(6, 7), torch.randn(7, 3)), 6 * 7 * 3 + 5 * 6 * 3),
    # numpy's estimate 2 * 7*13*11*19 = 38038 (numpy 2 adds 1) is printed 3.804e+04, which fvcore parses
    "einsum-flops-to-4-digits": (lambda: Call(lambda s, a, b: torch.einsum("bij,bjk->bik", a, b)),
                                 (torch.randn(7, 13, 11), torch.randn(7, 11, 19)), 3804 * 10 // 2),
    "einsum-sublist-format": (lambda: Call(lambda s, a, b, c: torch.einsum(a, [0, 1], b, [1, 2], c, [2, 3], [0, 3])),
                              (torch.randn(5, 6), torch.randn(6, 7), torch.randn(7, 3)), 6 * 7 * 3 + 5 * 6 * 3),
    "einsum-attention-scores": (lambda: Call(lambda s, q, k: torch.einsum("bhqd,bhkd->bhqk", q, k)),
                                (torch.randn(2, 3, 5, 4), torch.randn(2, 3, 6, 4)), 2 * 3 * 5 * 6 * 4),
    "baddbmm-unsupported": (lambda: Call(lambda s, c, a, b: torch.baddbmm(c, a, b)),
                            (torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)), 0),
    "bmm": (lambda: Call(lambda s, a, b: torch.bmm(a, b)), (torch.randn(2, 3, 4), torch.randn(2, 4, 5)),
            2 * 3 * 4 * 5),
    "linear-3d-no-bias": (seq(nn.Linear(16, 32)), (torch.randn(2, 5, 16),), 2 * 5 * 16 * 32),
    "lstm-unsupported": (seq(nn.LSTM(8, 16, proj_size=4)), (torch.randn(5, 2, 8),), 0),
    "gru-cell-traced-as-matmuls": (seq(nn.GRUCell(8, 16)), (torch.randn(3, 8),), 3 * 8 * 48 + 3 * 16 * 48),
    # query/key/value and output projections only: SDPA has no handle
    "mha-need-weights-false": (
        lambda: Call(lambda s, x: s.mods[0](x, x, x, need_weights=False)[0],
                     nn.MultiheadAttention(16, 4, batch_first=True)).eval(),
        (torch.randn(2, 6, 16),), 2 * 6 * 16 * 48 + 2 * 6 * 16 * 16),
}


@pytest.mark.parametrize("case", list(FVCORE_CASES))
def test_fvcore_rule(case: str) -> None:
    pytest.importorskip("fvcore")
    build, args, expected = FVCORE_CASES[case]
    check("fvcore", build, args, expected)


class _MatmulFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x.mm(w)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, grad


def test_fvcore_custom_autograd_function_is_opaque() -> None:
    pytest.importorskip("fvcore")
    build = lambda: Call(lambda s, x, w: _MatmulFunction.apply(x, w) + x.mm(w))  # noqa: E731
    args = (torch.randn(4, 16), torch.randn(16, 32))
    check("fvcore", build, args, 4 * 16 * 32)  # the plain mm only
    check("torch-flop-counter", build, args, 2 * 4 * 16 * 32)  # a dispatch mode sees both


def test_fvcore_einsum_macs_special_forms() -> None:
    """The two equations fvcore prices by hand, whatever the letters."""
    assert einsum_macs("nct,ncp->ntp", [(2, 3, 4), (2, 3, 5)]) == 2 * 3 * 4 * 5
    assert einsum_macs("x y z , x w z -> x w y", [(2, 3, 4), (2, 5, 4)]) == 2 * 3 * 4 * 5


# -- torchinfo --------------------------------------------------------------------


class Scaled(nn.Module):
    """A leaf with one parameter named ``scale``: not a weight or bias name."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GateWeights(nn.Module):
    """A leaf whose parameter name contains ``weight``: priced per ``y[0] * y[1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate_weight = nn.Parameter(torch.ones(16, 16))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x @ self.gate_weight, x[:1]


class Reused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.w = nn.Parameter(torch.ones(16, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc(x)) @ self.w  # the @ in a non-leaf module: unseen


TORCHINFO_CASES = {
    # y.shape[0] x (in*out + out): the sequence dim is ignored, bias included
    "linear-3d": (seq(nn.Linear(16, 32)), (torch.randn(2, 5, 16),), 2 * (16 * 32 + 32)),
    "linear-unbatched": (seq(nn.Linear(16, 32)), (torch.randn(16),), 32 * (16 * 32 + 32)),
    "conv-bias": (seq(nn.Conv2d(4, 8, 3, padding=1)), (X,), (8 * 4 * 3 * 3 + 8) * 2 * 8 * 8),
    "convtranspose-by-output": (seq(nn.ConvTranspose2d(4, 6, 3, stride=2)), (X,),
                                (4 * 6 * 3 * 3 + 6) * 2 * 17 * 17),
    "batchnorm": (lambda: nn.Sequential(nn.BatchNorm2d(4)).eval(), (X,), 2 * (4 + 4)),
    "layernorm-3d": (seq(nn.LayerNorm(16)), (torch.randn(2, 5, 16),), 2 * (16 + 16)),
    "embedding": (seq(nn.Embedding(10, 6)), (torch.randint(0, 10, (2, 5)),), 2 * 10 * 6),
    # T x B x all weights and biases (seq-first output (T, B, H))
    "lstm": (seq(nn.LSTM(8, 16)), (torch.randn(5, 2, 8),), 5 * 2 * (4 * 16 * 8 + 4 * 16 * 16 + 2 * 4 * 16)),
    "lstm-cell": (seq(nn.LSTMCell(8, 16)), (torch.randn(3, 8),), 3 * 16 * (4 * 16 * 8 + 4 * 16 * 16 + 2 * 4 * 16)),
    "parameter-free-leaves": (seq(nn.ReLU(), nn.MaxPool2d(2), nn.Upsample(scale_factor=2)), (X,), 0),
    "parameter-named-scale": (seq(Scaled()), (torch.randn(4, 16),), 0),
    # first tensor of a tuple output: (4, 16) -> 4 * 16 * 256
    "parameter-named-gate-weight": (seq(GateWeights()), (torch.randn(4, 16),), 4 * 16 * 16 * 16),
    "reused-module-and-functional-matmul": (Reused, (torch.randn(4, 16),), 2 * 4 * (16 * 16 + 16)),
    # a non-leaf module with its own parameters: out_proj is never called
    "multihead-attention": (
        lambda: Call(lambda s, x: s.mods[0](x, x, x)[0], nn.MultiheadAttention(16, 4, batch_first=True)),
        (torch.randn(2, 6, 16),), 0),
    # hooks turn off the fused eval path: linear1, linear2 and the two norms run as modules
    "transformer-encoder-layer-eval": (
        lambda: Call(lambda s, x: s.mods[0](x), nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)).eval(),
        (torch.randn(2, 6, 16),), 2 * (16 * 32 + 32) + 2 * (32 * 16 + 16) + 2 * 2 * (16 + 16)),
}


@pytest.mark.parametrize("case", list(TORCHINFO_CASES))
def test_torchinfo_rule(case: str) -> None:
    pytest.importorskip("torchinfo")
    build, args, expected = TORCHINFO_CASES[case]
    check("torchinfo", build, args, expected)


def test_torchinfo_leaf_macs_formula() -> None:
    """``calculate_macs`` by parameter name and class name."""
    out = (2, 8, 5, 5)
    assert leaf_macs("Conv2d", [("weight", (8, 4, 3, 3)), ("bias", (8,))], out) == (8 * 4 * 9 + 8) * 2 * 5 * 5
    assert leaf_macs("MyConvBlock", [("weight", (8, 4, 3, 3))], out) == 8 * 4 * 9 * 2 * 5 * 5
    assert leaf_macs("Linear", [("weight", (8, 4)), ("bias", (8,))], out) == 2 * (32 + 8)
    assert leaf_macs("GRU", [("weight_ih_l0", (48, 8)), ("bias_hh_l0", (48,))], (7, 3, 16)) == 7 * 3 * (384 + 48)
    assert leaf_macs("Custom", [("alpha", (100,))], out) == 0


# -- torch-flop-counter -------------------------------------------------------------


def test_torch_flop_counter_rules_follow_torchs_registry() -> None:
    from torch.utils.flop_counter import flop_registry

    assert set(FORMULA_OPS) == {str(op) for op in flop_registry}
    assert {"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.convolution"} <= set(FORMULA_OPS)
    assert "aten.mv" not in FORMULA_OPS


TORCH_CASES = {
    "linear-3d-no-bias": (seq(nn.Linear(16, 32)), (torch.randn(2, 5, 16),), 2 * 5 * 16 * 32),
    "convtranspose-by-input": (seq(nn.ConvTranspose2d(4, 6, 3, stride=2)), (X,), 2 * 4 * 8 * 8 * 6 * 3 * 3),
    "baddbmm": (lambda: Call(lambda s, c, a, b: torch.baddbmm(c, a, b)),
                (torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)), 2 * 3 * 4 * 5),
    "matrix-vector-no-formula": (lambda: Call(lambda s, a, b: a @ b), (torch.randn(4, 5), torch.randn(5)), 0),
    # CPU SDPA kernel has no formula: the projections only
    "sdpa-cpu": (
        lambda: Call(lambda s, x: F.scaled_dot_product_attention(*(s.mods[0](x).view(2, 6, 3, 4, 4)
                                                                   .permute(2, 0, 3, 1, 4))), nn.Linear(16, 48)),
        (torch.randn(2, 6, 16),), 2 * 6 * 16 * 48),
    # with autograd on: in/out projections plus the two bmm of need_weights=True
    "multihead-attention-eval": (
        lambda: Call(lambda s, x: s.mods[0](x, x, x)[0], nn.MultiheadAttention(16, 4, batch_first=True)).eval(),
        (torch.randn(2, 6, 16),), 2 * 6 * 16 * 48 + 2 * 6 * 16 * 16 + 2 * (2 * 4 * 6 * 6 * 4)),
    "gru": (seq(nn.GRU(8, 16)), (torch.randn(5, 2, 8),), 5 * 2 * (48 * 8 + 48 * 16)),
    "norms-and-activations": (lambda: nn.Sequential(nn.BatchNorm2d(4), nn.GELU(), nn.AdaptiveAvgPool2d(1)).eval(),
                              (X,), 0),
}


def _in_inference_mode(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        with torch.inference_mode():
            out = fn(*args)
        return out.clone()

    return run


#: F.linear and torch.matmul reach a dispatch mode whole inside torch.inference_mode (autograd does not
#: decompose them): FlopCounterMode decomposes them, torch.profiler records the products they run.
INFERENCE_MODE_CASES = {
    "linear-3d": (lambda: Call(_in_inference_mode(lambda s, x: s.mods[0](x)), nn.Linear(16, 32)),
                  (torch.randn(2, 5, 16),), 2 * 5 * 16 * 32),
    "matmul-batched": (lambda: Call(_in_inference_mode(lambda s, a, b: a @ b)),
                       (torch.randn(3, 4, 5), torch.randn(3, 5, 6)), 3 * 4 * 5 * 6),
    "matrix-vector": (lambda: Call(_in_inference_mode(lambda s, a, b: torch.matmul(a, b))),
                      (torch.randn(4, 5), torch.randn(5)), 0),
    "linear-1d": (lambda: Call(_in_inference_mode(lambda s, x: s.mods[0](x)), nn.Linear(16, 32, bias=False)),
                  (torch.randn(16),), 16 * 32),  # a 1-D input is made a row: mm
    "vector-vector": (lambda: Call(_in_inference_mode(lambda s, a, b: a @ b)), (torch.randn(5), torch.randn(5)), 0),
}


@pytest.mark.parametrize("backend", ["torch-flop-counter", "torch-profiler"])
@pytest.mark.parametrize("case", list(INFERENCE_MODE_CASES))
def test_products_run_whole_in_inference_mode(backend: str, case: str) -> None:
    build, args, expected = INFERENCE_MODE_CASES[case]
    check(backend, build, args, expected)  # (torch.profiler has no estimate for mv and dot either)


#: Tensors a forward prints (torch's formatter runs with dispatch modes disabled): torch.profiler
#: prices the aten::mul of its torch.isfinite, one per printed element of a floating tensor.
PRINTING_CASES = {
    "float": (lambda: Call(lambda s, x: (repr(x), x * 1)[1]), (torch.randn(4, 6),), 24 // 2 + 24 // 2),
    "complex": (lambda: Call(lambda s, x: (repr(torch.complex(x, x)), x * 1)[1]), (torch.randn(5),), 2 * (5 // 2) + 5 // 2),
    "integer": (lambda: Call(lambda s, x: (repr(x.long()), x * 1)[1]), (torch.randn(7),), 7 // 2),
    "summarised": (lambda: Call(lambda s, x: (str(x), x * 1)[1]), (torch.randn(30, 40),), 36 // 2 + 1200 // 2),
    "half": (lambda: Call(lambda s, x: (f"{x.half()}", x * 1)[1]), (torch.randn(3, 3),), 9 // 2 + 9 // 2),
}


@pytest.mark.parametrize("case", list(PRINTING_CASES))
def test_torch_profiler_prices_the_formatter_of_a_printed_tensor(case: str) -> None:
    build, args, expected = PRINTING_CASES[case]
    check("torch-profiler", build, args, expected)  # (x * 1: one more priced mul, in the model's own work)


@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_torch_flop_counter_rule(case: str) -> None:
    build, args, expected = TORCH_CASES[case]
    check("torch-flop-counter", build, args, expected)


def test_torch_flop_counter_custom_op_is_opaque() -> None:
    """The reference traces the custom op's kernel (mm 4x16x32); FlopCounterMode
    sees one op without a formula."""
    from flopaudit.zoo.hard.custom import CustomOpModel

    check("torch-flop-counter", CustomOpModel, (torch.randn(4, 16),), 4 * 32 * 8)
    check("fvcore", CustomOpModel, (torch.randn(4, 16),), 4 * 32 * 8)


# -- engine fields and rule matching these rulesets rely on -------------------------


def test_events_know_their_autograd_function_and_patched_call() -> None:
    model = Call(lambda s, x, w: torch.matmul(_MatmulFunction.apply(x, w), w.t()))
    rec = record(model, (torch.randn(4, 16), torch.randn(16, 32)), patch=("torch.matmul", "torch.Tensor.matmul"))
    mms = [e for e in rec.events if e.op == "aten.mm.default"]
    assert [e.autograd_function for e in mms] == ["_MatmulFunction", ""]
    assert [e.patched_in for e in mms] == ["", "torch.matmul"]
    calls = [e for e in rec.events if e.op.startswith("py:")]
    assert [(e.op, e.patched_in) for e in calls] == [("py:torch.matmul", "")]


def test_nested_patched_calls_record_the_outermost() -> None:
    model = Call(lambda s, a, b: a @ b)
    rec = record(model, (torch.randn(4, 5), torch.randn(5, 6)),
                 patch=("torch.Tensor.__matmul__", "torch.matmul"))
    inner = [(e.op, e.patched_in) for e in rec.events if e.patched_in]
    assert inner and all(p == "torch.Tensor.__matmul__" for _, p in inner)


def test_calls_a_tensor_subclass_takes_over_are_marked() -> None:
    """The int8 weight's __torch_function__ runs F.linear as torch.mm: the F.linear call is
    marked taken over (its own position), the torch.mm inside it and its operators too."""
    from flopaudit.zoo.hard.custom import int8_weight_mlp

    linear, mm = "torch.nn.functional.linear", "torch.mm"
    rec = record(int8_weight_mlp(), (torch.randn(4, 16),), patch=(linear, mm))
    calls = [(e.op, e.patched_stack, e.taken_over) for e in rec.events if e.op.startswith("py:")]
    assert calls == [("py:" + linear, (), (0,)), ("py:" + mm, (linear,), (0,))] * 2
    products = [(e.patched_stack, e.taken_over) for e in rec.events if e.op == "aten.mm.default"]
    assert products == [((linear, mm), (0,))] * 2
    plain = record(nn.Linear(16, 8), (torch.randn(4, 16),), patch=(linear, mm))
    assert not any(e.taken_over for e in plain.events)


@pytest.mark.parametrize(("ruleset", "counted"), [("torchprofile", False), ("fvcore", False),
                                                  ("torch-profiler", False), ("ptflops-pytorch", True),
                                                  ("deepspeed", True)])
def test_a_taken_over_call_counts_as_a_call_only_for_counters_that_wrap_it(ruleset: str, counted: bool) -> None:
    """A trace or a profiler never sees an F.linear a tensor subclass took over (its operators
    are priced as if no call were patched); a counter's wrapper counts the call all the same."""
    from flopaudit.reference.backend_rulesets import backend_rulesets

    rs = backend_rulesets()[ruleset]
    linear = "torch.nn.functional.linear"
    call = _event(op="py:" + linear, category=Category.ZERO_COST, macs=0, taken_over=(0,))
    inside = _event(patched_in=linear, patched_stack=(linear,), taken_over=(0,))
    if linear in rs.patched_functions:
        assert rs.foreign(call) is not counted
        assert rs.patched_in(inside) == ("" if not counted else linear)
    assert rs.patched_in(dataclasses.replace(inside, taken_over=())) == (linear if linear in rs.patched_functions
                                                                         else "")


def test_traced_custom_op_events_are_marked() -> None:
    from flopaudit.zoo.hard.custom import CustomOpModel

    rec = record(CustomOpModel(), (torch.randn(4, 16),))
    by_op = {e.op: e.traced_from for e in rec.events if e.op in ("aten.mm.default", "aten.addmm.default")}
    assert by_op == {"aten.mm.default": "flopaudit_zoo.scaled_matmul.default", "aten.addmm.default": ""}


def _event(**fields: Any) -> OpEvent:
    base: dict[str, Any] = dict(op="aten.mm.default", module_path="", module_type="M", module_stack=("",),
                                in_leaf=False, category=Category.MATMUL, macs=10, extra_flops=0, bytes_read=0,
                                bytes_written=0, input_shapes=(), output_shapes=())
    return OpEvent(**{**base, **fields})


@pytest.mark.parametrize(
    ("rule", "event", "matches"),
    [
        (EventRule("zero", traced=True), _event(traced_from="lib.op.default"), True),
        (EventRule("zero", traced=True), _event(), False),
        (EventRule("zero", autograd_function=True), _event(autograd_function="F"), True),
        (EventRule("zero", autograd_function=False), _event(autograd_function="F"), False),
        (EventRule("zero", patched=True), _event(patched_in="torch.matmul"), True),
        (EventRule("zero", patched="torch.matmul"), _event(patched_in="torch.matmul"), True),
        (EventRule("zero", patched="torch.einsum"), _event(patched_in="torch.matmul"), False),
        (EventRule("zero", patched=False), _event(patched_in="torch.matmul"), False),
    ],
    ids=["traced", "not-traced", "in-function", "not-in-function-wanted", "patched-any", "patched-path",
         "patched-other-path", "not-patched-wanted"],
)
def test_event_rule_context_fields(rule: EventRule, event: OpEvent, matches: bool) -> None:
    assert rule.matches(event) is matches


def test_module_rule_wildcard_and_leaf_filter() -> None:
    rec = record(nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU())), (torch.randn(2, 4),))
    leaf_rule = ModuleRule("*", "zero", in_leaf=True)
    assert [c.path for c in rec.calls if leaf_rule.matches(c)] == ["0", "1.0"]
    assert [c.path for c in rec.calls if ModuleRule("*", "zero", in_leaf=False).matches(c)] == ["", "1"]
    assert [c.path for c in rec.calls if ModuleRule("Linear", "zero").matches(c)] == ["0"]
