"""Rules of the thop, ptflops-pytorch and ptflops-aten rulesets, one quirk at a time.

Each test records a tiny model with the reference and prices it with one
backend's ruleset; expected numbers are the backend's formula written out
from the shapes (the conformance test, tests/test_ruleset_predictions.py,
checks the rulesets against the real backends on the zoo).
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.reference import count
from flopaudit.reference.engine import TensorArg, record
from flopaudit.reference.pricing import predict
from flopaudit.reference.rulesets import Ruleset, get_ruleset

for _module in ("thop", "ptflops_pytorch", "ptflops_aten"):
    importlib.import_module(f"flopaudit.reference.backend_rulesets.{_module}")


def _rs(backend: str) -> Ruleset:
    return get_ruleset(backend)


def predicted(backend: str, model: nn.Module, *args: torch.Tensor, **kwargs: torch.Tensor) -> int:
    """The ruleset's prediction, recorded as the reference adapter records it for that backend."""
    return _prediction(backend, model, *args, **kwargs).macs


def _prediction(backend: str, model: nn.Module, *args: torch.Tensor, **kwargs: torch.Tensor):  # noqa: ANN202
    torch.manual_seed(0)
    rs = _rs(backend)
    rc = count(model, tuple(args), kwargs, ruleset=rs, no_grad=not rs.grad_enabled)
    return predict(rc.events, rc.module_call_records, rs, backend)


class Lambda(nn.Module):
    def __init__(self, fn, *children: nn.Module) -> None:  # noqa: ANN001
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(children)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(self, *args)


# ---------------------------------------------------------------------------
# thop


@pytest.mark.parametrize(
    ("model", "shape", "expected"),
    [
        pytest.param(nn.Conv2d(3, 8, 3, padding=1), (2, 3, 16, 16), 2 * 8 * 16 * 16 * 3 * 3 * 3, id="conv-bias-free"),
        # transposed: priced by the output (2, 4, 16, 16) as if direct, Cin 8, kernel 4x4
        pytest.param(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), (2, 8, 8, 8), 2 * 4 * 16 * 16 * 8 * 4 * 4,
                     id="convtranspose-by-output"),
        # unbatched (3, 16, 16): dim 1 (16) is read as the input channels
        pytest.param(nn.Conv2d(3, 8, 3, padding=1), (3, 16, 16), 8 * 16 * 16 * 16 * 3 * 3, id="conv-unbatched"),
        pytest.param(nn.Linear(16, 32), (2, 10, 16), 16 * 2 * 10 * 32, id="linear-3d-no-bias"),
        pytest.param(nn.BatchNorm2d(8), (2, 8, 4, 4), 4 * 2 * 8 * 4 * 4, id="batchnorm-affine-4"),
        pytest.param(nn.BatchNorm2d(8, affine=False), (2, 8, 4, 4), 2 * 2 * 8 * 4 * 4, id="batchnorm-plain-2"),
        pytest.param(nn.LayerNorm(32), (2, 10, 32), 4 * 2 * 10 * 32, id="layernorm-affine-4"),
        pytest.param(nn.GroupNorm(2, 8), (2, 8, 4, 4), 0, id="groupnorm-no-rule"),
        pytest.param(nn.Softmax(dim=-1), (4, 64), 4 * (64 + 63 + 64), id="softmax-3F-1"),
        pytest.param(nn.AvgPool2d(2), (2, 8, 16, 16), 2 * 8 * 8 * 8, id="avgpool-out"),
        pytest.param(nn.ReLU(), (4, 64), 0, id="relu-zero"),
        pytest.param(nn.GELU(), (4, 64), 0, id="gelu-no-rule"),
        pytest.param(nn.Upsample(scale_factor=2, mode="bilinear"), (2, 4, 8, 8), 11 * 2 * 4 * 16 * 16,
                     id="upsample-bilinear-11"),
        pytest.param(nn.Upsample(scale_factor=2, mode="nearest"), (2, 4, 8, 8), 2 * 4 * 16 * 16,
                     id="upsample-nearest-1"),
    ],
)
def test_thop_module_rules(model: nn.Module, shape: tuple[int, ...], expected: int) -> None:
    assert predicted("thop", model.eval(), torch.randn(shape)) == expected


def test_thop_adaptive_avgpool_uneven_windows() -> None:
    # 16 -> 3: kernel (16/3)^2 in float64, +1, times numel(out) = 2*8*3*3, truncated
    expected = int(((16 / 3) * (16 / 3) + 1) * (2 * 8 * 3 * 3))
    assert predicted("thop", nn.AdaptiveAvgPool2d(3), torch.randn(2, 8, 16, 16)) == expected


@pytest.mark.parametrize(
    ("model", "shape", "expected"),
    [
        # I=8, H=16, T=5, B=2: four gates ((I+H)*H + H + 2H bias) + 3H cell + H output, per step and sample
        pytest.param(nn.LSTM(8, 16), (5, 2, 8), (4 * ((8 + 16) * 16 + 16 + 2 * 16) + 3 * 16 + 16) * 5 * 2,
                     id="lstm"),
        # GRU: r, z gates 2 * (24*16 + 16 + 32), n gate 24*16 + 16 + 32, then H + 3H
        pytest.param(nn.GRU(8, 16, batch_first=True), (2, 5, 8),
                     (2 * (24 * 16 + 16 + 32) + (24 * 16 + 16 + 32) + 16 + 3 * 16) * 5 * 2, id="gru-batch-first"),
        # bidirectional 2 layers: layer 1 reads 2H = 32 features, every layer twice
        pytest.param(nn.RNN(8, 16, num_layers=2, bidirectional=True), (5, 2, 8),
                     (2 * (16 * (8 + 16) + 16 + 32) + 2 * (16 * (32 + 16) + 16 + 32)) * 5 * 2, id="rnn-bidir-2"),
        # proj_size is ignored by thop: same as a plain LSTM(8, 16)
        pytest.param(nn.LSTM(8, 16, proj_size=4), (5, 2, 8),
                     (4 * ((8 + 16) * 16 + 16 + 2 * 16) + 3 * 16 + 16) * 5 * 2, id="lstm-proj-ignored"),
    ],
)
def test_thop_rnn_formulas(model: nn.Module, shape: tuple[int, ...], expected: int) -> None:
    assert predicted("thop", model, torch.randn(shape)) == expected


def test_thop_sees_no_functional_op() -> None:
    fc = nn.Linear(16, 16)
    model = Lambda(lambda self, x: torch.relu(self.layers[0](x)) @ torch.ones(16, 8), fc)
    prediction = _prediction("thop", model, torch.randn(4, 16))
    assert prediction.macs == 16 * 4 * 16  # the Linear only, @ unseen
    kinds = {c.kind: c.macs for c in prediction.contributions}
    assert kinds == {"missed-functional": -(4 * 16 * 8)}


def test_thop_mha_counts_zero_with_a_reason() -> None:
    mha = nn.MultiheadAttention(16, 4, batch_first=True)
    model = Lambda(lambda self, x: self.layers[0](x, x, x)[0], mha)
    prediction = _prediction("thop", model, torch.randn(2, 6, 16))
    assert prediction.macs == 0
    assert [(c.kind, c.rule) for c in prediction.contributions] == [
        ("unsupported", "MultiheadAttention has no thop rule")]


# ---------------------------------------------------------------------------
# ptflops-pytorch


@pytest.mark.parametrize(
    ("model", "shape", "expected"),
    [
        # kernel 3x3 * Cin 3 * Cout 8 per output position, + bias per output element
        pytest.param(nn.Conv2d(3, 8, 3, padding=1), (2, 3, 16, 16),
                     3 * 3 * 3 * 8 * 2 * 16 * 16 + 2 * 8 * 16 * 16, id="conv-bias"),
        # unbatched (3, 16, 16): batch read as 3, output spatial read as (16,) only
        pytest.param(nn.Conv2d(3, 8, 3, padding=1), (3, 16, 16), 3 * 3 * 3 * 8 * 3 * 16 + 3 * 16 * 16,
                     id="conv-unbatched"),
        # transposed: by the input's 8x8 positions; bias over the output (4, 16, 16)
        pytest.param(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), (2, 8, 8, 8),
                     4 * 4 * 8 * 4 * 2 * 8 * 8 + 2 * 4 * 16 * 16, id="convtranspose-by-input"),
        pytest.param(nn.Linear(16, 32), (2, 10, 16), (16 * 32 + 32) * 2 * 10, id="linear-bias"),
        pytest.param(nn.ReLU(), (4, 64), 2 * 4 * 64, id="relu-twice"),
        pytest.param(nn.ReLU6(), (4, 64), 4 * 64, id="relu6-once-hardtanh-unpatched"),
        pytest.param(nn.Sigmoid(), (4, 64), 0, id="sigmoid-nothing"),
        pytest.param(nn.Softmax(dim=-1), (4, 64), 4 * 64, id="softmax-through-F-softmax"),
        pytest.param(nn.SiLU(), (4, 64), 4 * 64, id="silu-through-F-silu"),
        pytest.param(nn.MaxPool2d(2), (2, 8, 16, 16), 2 * (2 * 8 * 16 * 16), id="maxpool-twice"),
        pytest.param(nn.BatchNorm2d(8), (2, 8, 4, 4), 2 * 2 * 8 * 4 * 4, id="batchnorm-affine-2"),
        pytest.param(nn.LayerNorm(32), (2, 10, 32), 2 * 10 * 32, id="layernorm-never-doubled"),
        pytest.param(nn.GroupNorm(2, 8), (2, 8, 4, 4), 2 * 2 * 8 * 4 * 4, id="groupnorm-affine-2"),
        # hook: first sample of the output (4, 16, 16); F.interpolate: numel(x) * 2.0**2
        pytest.param(nn.Upsample(scale_factor=2), (2, 4, 8, 8), 4 * 16 * 16 + 2 * 4 * 8 * 8 * 4,
                     id="upsample-twice"),
        # per layer w_ih 64x8 + w_hh 64x16 + 10H + both biases, times T*B
        pytest.param(nn.LSTM(8, 16), (5, 2, 8), (64 * 8 + 64 * 16 + 10 * 16 + 64 + 64) * 5 * 2, id="lstm"),
        # proj_size 4 shrinks w_hh to 64x4
        pytest.param(nn.LSTM(8, 16, proj_size=4), (5, 2, 8), (64 * 8 + 64 * 4 + 10 * 16 + 64 + 64) * 5 * 2,
                     id="lstm-proj"),
        pytest.param(nn.GRUCell(8, 16), (2, 8), (48 * 8 + 48 * 16 + 7 * 16 + 48 + 48) * 2, id="grucell"),
    ],
)
def test_ptflops_pytorch_module_rules(model: nn.Module, shape: tuple[int, ...], expected: int) -> None:
    assert predicted("ptflops-pytorch", model, torch.randn(shape)) == expected


def test_ptflops_pytorch_counts_patched_calls_not_operators() -> None:
    w = torch.randn(32, 24)
    model = Lambda(lambda self, x: torch.matmul(x, w) + (x @ w) + torch.einsum("bi,ij->bj", x, w)
                   + x.matmul(w) + torch.relu(x @ w) + F.relu(x @ w))
    # torch.matmul and Tensor.matmul: prod(x.shape) * 24 each; F.relu: numel; @, einsum, torch.relu: 0
    assert predicted("ptflops-pytorch", model, torch.randn(4, 32)) == 2 * (4 * 32 * 24) + 4 * 24


def test_ptflops_pytorch_patched_call_books_one_cause() -> None:
    w = torch.randn(32, 24)
    prediction = _prediction("ptflops-pytorch", Lambda(lambda self, x: torch.matmul(x, w)), torch.randn(4, 32))
    assert prediction.macs == 4 * 32 * 24
    # the call's count replaces its aten.mm: no "missed functional" / "patched" pair that cancels out
    assert prediction.contributions == ()


def test_ptflops_pytorch_elementwise_aligns_from_the_left() -> None:
    model = Lambda(lambda self, a, b: torch.add(a, b))
    # (2, 3) + (3,): dims aligned from the left: max(2, 3) * max(3, 1) = 9, not the broadcast 6
    assert predicted("ptflops-pytorch", model, torch.randn(2, 3), torch.randn(3)) == 3 * 3


def test_ptflops_pytorch_matmul_only_other_batched() -> None:
    model = Lambda(lambda self, a, b: torch.matmul(a, b))
    # a (6, 4) @ b (5, 4, 7): prod(a.shape) * 7, the batch of b ignored
    assert predicted("ptflops-pytorch", model, torch.randn(6, 4), torch.randn(5, 4, 7)) == 6 * 4 * 7


def test_ptflops_pytorch_interpolate_by_size() -> None:
    model = Lambda(lambda self, x: F.interpolate(x, size=(5, 7)))
    assert predicted("ptflops-pytorch", model, torch.randn(2, 3, 8, 8)) == 5 * 7 * 2 * 3


def test_ptflops_pytorch_mha_hook_plus_patched_bmm_and_softmax() -> None:
    b, length, e, h = 2, 6, 16, 4
    mha = nn.MultiheadAttention(e, h)  # seq-first, need_weights=True by default
    model = Lambda(lambda self, x: self.layers[0](x, x, x)[0], mha)
    hook = b * (length * e + 3 * length * e * e + 3 * length * e
                + h * (length * length * (e // h) * 2 + length * length) + length * e * (e + 1))
    scores = (b * h * length * (e // h)) * length  # torch.bmm(q_scaled, k^T)
    softmax = b * h * length * length  # F.softmax
    weighted = (b * h * length * length) * (e // h)  # torch.bmm(weights, v)
    assert predicted("ptflops-pytorch", model, torch.randn(length, b, e)) == hook + scores + softmax + weighted


def test_ptflops_pytorch_mha_with_mask_uses_baddbmm() -> None:
    b, length, e, h = 2, 6, 16, 4
    mha = nn.MultiheadAttention(e, h, batch_first=True)
    model = Lambda(lambda self, x, m: self.layers[0](x, x, x, attn_mask=m)[0], mha)
    mask = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    hook = b * (length * e + 3 * length * e * e + 3 * length * e
                + h * (length * length * (e // h) * 2 + length * length) + length * e * (e + 1))
    scores = (b * h * length * (e // h)) * length + length * length  # baddbmm adds numel of the (1, L, L) mask
    softmax = b * h * length * length
    weighted = (b * h * length * length) * (e // h)
    assert predicted("ptflops-pytorch", model, torch.randn(b, length, e), mask) == hook + scores + softmax + weighted


# ---------------------------------------------------------------------------
# ptflops-aten


@pytest.mark.parametrize(
    ("model", "shape", "expected"),
    [
        pytest.param(nn.Linear(16, 32), (4, 16), 4 * 16 * 32 + 4 * 32, id="addmm-bias"),
        pytest.param(nn.Linear(16, 32, bias=False), (4, 16), 4 * 16 * 32, id="mm"),
        pytest.param(nn.Conv2d(3, 8, 3, padding=1), (2, 3, 16, 16), 2 * 8 * 3 * 3 * 3 * 16 * 16 + 2 * 8 * 16 * 16,
                     id="conv-bias"),
        pytest.param(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), (2, 8, 8, 8),
                     2 * 8 * 4 * 4 * 4 * 8 * 8 + 2 * 4 * 16 * 16, id="convtranspose-by-input"),
        pytest.param(nn.BatchNorm2d(8), (2, 8, 4, 4), 0, id="norm-zero"),
        pytest.param(nn.Softmax(dim=-1), (4, 64), 0, id="softmax-zero"),
    ],
)
def test_ptflops_aten_rules(model: nn.Module, shape: tuple[int, ...], expected: int) -> None:
    assert predicted("ptflops-aten", model, torch.randn(shape)) == expected


def test_ptflops_aten_baddbmm_and_sdpa_count_zero() -> None:
    model = Lambda(lambda self, c, a, b: torch.baddbmm(c, a, b) + F.scaled_dot_product_attention(a, a, a))
    a = torch.randn(3, 5, 5)
    assert predicted("ptflops-aten", model, torch.randn(3, 5, 5), a, torch.randn(3, 5, 5)) == 0


def test_ptflops_aten_custom_op_is_opaque() -> None:
    from flopaudit.zoo.hard.custom import CustomOpModel

    prediction = _prediction("ptflops-aten", CustomOpModel(), torch.randn(4, 16))
    assert prediction.macs == 4 * 32 * 8 + 4 * 8  # the head's addmm only: the traced mm is unseen
    assert ("unsupported", -(4 * 16 * 32)) in [(c.kind, c.macs) for c in prediction.contributions]


# ---------------------------------------------------------------------------
# The reference engine's patched-call recording that ptflops-pytorch relies on


def test_record_patch_records_calls_and_restores() -> None:
    relu, tensor_matmul_own = F.relu, "matmul" in vars(torch.Tensor)
    w = torch.randn(8, 3)
    model = Lambda(lambda self, x: F.relu(x.matmul(w)) + x @ w)
    rec = record(model, (torch.randn(2, 8),), patch=["torch.Tensor.matmul", "torch.nn.functional.relu"])
    calls = [(e.op, e.op_args, e.output_shapes) for e in rec.events if e.op.startswith("py:")]
    assert calls == [
        ("py:torch.Tensor.matmul", (("#0", TensorArg((2, 8))), ("#1", TensorArg((8, 3)))), ((2, 3),)),
        ("py:torch.nn.functional.relu", (("#0", TensorArg((2, 3))),), ((2, 3),)),
    ]
    assert F.relu is relu
    assert ("matmul" in vars(torch.Tensor)) == tensor_matmul_own


def test_record_without_patch_has_no_call_events() -> None:
    rec = record(nn.ReLU(), (torch.randn(2, 8),))
    assert not [e for e in rec.events if e.op.startswith("py:")]


def test_record_patch_skips_a_missing_function_with_a_note() -> None:
    rec = record(nn.ReLU(), (torch.randn(2, 8),), patch=["torch.nn.functional.no_such_function"])
    assert any("no_such_function" in note for note in rec.notes)
