"""Every registered formula is exercised, and documented.

:data:`EXERCISES` maps each distinct formula (by name) to a small call that
must be priced by it: through the engine (``count``) where the operator runs
on CPU or meta, through :func:`cost_of` on meta shapes for GPU-only kernels
and for entry points that never reach the dispatcher on CPU. The value tests
live in the family test files named in the comments.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.reference import count
from flopaudit.reference.registry import cost_of, formula_name, lookup, registered
from tests.user_models import Fn

aten = torch.ops.aten
PREFIX = "flopaudit.reference.formulas."


class SelfAttention(nn.Module):
    """Self-attention (query is key is value): the fused kernel's condition."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x)[0]


def engine(fn: Callable[..., object], *shapes: tuple[int, ...], meta: bool = False,
           module: nn.Module | None = None, train: bool = False) -> set[str]:
    """Formula names the engine used for ``fn(*tensors)`` (``train``: a training step, inputs needing gradients)."""
    tensors = [torch.randn(*s, device="meta" if meta else "cpu", requires_grad=train) for s in shapes]
    result = count(module if module is not None else Fn(fn), tensors, device="meta" if meta else None,
                   pass_="train" if train else "inference")
    assert result.unsupported == {}, result.unsupported
    return {e.formula for e in result.events}


def train(fn: Callable[..., object], *shapes: tuple[int, ...], module: nn.Module | None = None) -> set[str]:
    """Formula names a training step of ``fn(*tensors)`` used (its backward's among them)."""
    return engine(fn, *shapes, module=module, train=True)


def priced_by(op: torch._ops.OpOverload, *args: object) -> set[str]:
    """Formula name that prices ``op`` called with ``args`` (meta tensors; the op is not run)."""
    cost = cost_of(op, args, {}, next(a for a in args if isinstance(a, torch.Tensor)))
    assert cost is not None
    return {formula_name(lookup(op))}


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device="meta")


def shapes_only(op: torch._ops.OpOverload, *shapes: tuple[int, ...], extra: tuple = ()) -> set[str]:
    """Formula name that prices ``op`` on meta tensors of ``shapes`` (the op is not run)."""
    tensors = [torch.empty(s, device="meta") for s in shapes]
    cost = cost_of(op, (*tensors, *extra), {}, tensors[0])
    assert cost is not None
    return {formula_name(lookup(op))}


X = (2, 3, 8, 8)


def _deformable() -> nn.Module:
    from flopaudit.zoo.hard.realworld import ModulatedDeformable

    return ModulatedDeformable()


def _spd(a: torch.Tensor) -> torch.Tensor:
    """A symmetric positive definite matrix made from ``a``."""
    return a @ a.T + a.shape[0] * torch.eye(a.shape[0])


def _roi_align(x: torch.Tensor) -> torch.Tensor:
    import torchvision

    return torchvision.ops.roi_align(x, [torch.tensor([[0.0, 0.0, 4.0, 4.0]])], 2, 1.0, 2)


def _quantized(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn`` on ``x`` quantized to quint8, dequantized after."""
    return fn(torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)).dequantize()


class _QuantizedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.ao.nn.quantized.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _quantized(x, self.conv)


def _grouped_experts() -> nn.Module:
    from flopaudit.zoo.hard.realworld import GroupedExperts

    return GroupedExperts()


EXERCISES: dict[str, Callable[[], set[str]]] = {
    # test_reference_conv.py
    "conv.convolution": lambda: engine(F.conv2d, X, (4, 3, 3, 3)),
    # test_reference_matmul.py
    "matmul.mm": lambda: engine(torch.mm, (3, 4), (4, 5)),
    "matmul.addmm": lambda: engine(torch.addmm, (5,), (3, 4), (4, 5)),
    "matmul.bmm": lambda: engine(torch.bmm, (2, 3, 4), (2, 4, 5)),
    "matmul.baddbmm": lambda: engine(torch.baddbmm, (2, 3, 5), (2, 3, 4), (2, 4, 5)),
    "matmul.mv": lambda: engine(torch.mv, (3, 4), (4,)),
    "matmul.dot": lambda: engine(torch.dot, (4,), (4,)),
    "matmul.outer": lambda: shapes_only(aten.outer.default, (3,), (4,)),
    "matmul.addr": lambda: engine(torch.addr, (3, 4), (3,), (4,)),
    "matmul.foreach_mm": lambda: engine(lambda a, b: torch._foreach_mm([a], [b]), (3, 4), (4, 5)),
    "matmul.linear": lambda: shapes_only(aten.linear.default, (3, 4), (5, 4)),
    "matmul.scaled_mm": lambda: shapes_only(aten._scaled_mm.default, (16, 32), (32, 8), (), ()),
    "matmul.trilinear": lambda: engine(None, (3, 4), (3, 5), module=nn.Bilinear(4, 5, 2)),
    "matmul.grouped_mm": lambda: engine(None, (2, 4, 16), module=_grouped_experts()),
    "conv.deform_conv2d": lambda: engine(None, (2, 4, 8, 8), module=_deformable()),
    "conv.deform_conv2d_backward": lambda: engine(None, (2, 4, 8, 8), module=_deformable(), train=True),
    "matmul.quantized_linear": lambda: engine(None, (3, 4), module=torch.ao.quantization.quantize_dynamic(
        nn.Sequential(nn.Linear(4, 5)), {nn.Linear}, dtype=torch.qint8)),
    # test_reference_attention.py
    "attention.sdpa": lambda: engine(F.scaled_dot_product_attention, (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)),
    "attention.flash_forward": lambda: engine(
        lambda q, k, v: aten._flash_attention_forward(q, k, v, None, None, 4, 4, 0.0, False, False),
        (1, 4, 2, 8), (1, 4, 2, 8), (1, 4, 2, 8), meta=True),
    "attention.native_mha": lambda: engine(None, (1, 4, 8), module=SelfAttention().eval()),
    "attention.transformer_encoder_layer": lambda: engine(
        None, (1, 4, 8), module=nn.TransformerEncoderLayer(8, 2, 16, batch_first=True).eval()),
    # test_reference_rnn.py
    "rnn.mkldnn_rnn_layer": lambda: engine(None, (3, 2, 4), module=nn.LSTM(4, 6)),
    "rnn.cudnn_rnn": lambda: engine(
        lambda x, w1, w2, h: aten._cudnn_rnn(x, [w1, w2], 2, None, h, None, 1, 6, 0, 1, False, 0.0, False, False,
                                             [], None),
        (3, 2, 4), (6, 4), (6, 6), (1, 2, 6), meta=True),
    "rnn.quantized_rnn": lambda: engine(None, (3, 2, 4), module=torch.ao.quantization.quantize_dynamic(
        nn.Sequential(nn.GRU(4, 6)), {nn.GRU}, dtype=torch.qint8)),
    "rnn.fused_cell": lambda: shapes_only(aten._thnn_fused_gru_cell.default, (2, 18), (2, 18), (2, 6)),
    # test_reference_layers.py
    "norm.batch_norm": lambda: engine(None, X, module=nn.BatchNorm2d(3).eval()),
    "norm.batch_norm_eval": lambda: engine(
        lambda x, w, b, m, v: aten._native_batch_norm_legit_no_training(x, w, b, m, v, 0.1, 1e-5),
        X, (3,), (3,), (3,), (3,)),
    "norm.layer_norm": lambda: engine(None, (2, 4, 8), module=nn.LayerNorm(8)),
    "norm.rms_norm": lambda: shapes_only(aten._fused_rms_norm.default, (2, 4, 8), extra=([8], None, 1e-5)),
    "_factories.activation": lambda: engine(torch.relu, X),
    "_factories.glu": lambda: engine(F.glu, (2, 8)),
    "_factories.elementwise": lambda: engine(torch.add, X, X),
    "_factories.fused_elementwise": lambda: engine(torch.addcmul, X, X, X),
    "_factories.cross_product": lambda: engine(torch.linalg.cross, (4, 3), (4, 3)),
    "_factories.foreach_elementwise": lambda: engine(lambda a, b: torch._foreach_mul([a, b], 0.5), X, (5,)),
    "_factories.foreach_fused_elementwise": lambda: engine(lambda a, b: torch._foreach_lerp([a], [b], 0.5), X, X),
    "_factories.foreach_activation": lambda: engine(lambda a: torch._foreach_tanh([a]), X),
    "pool.max_pool": lambda: engine(lambda x: F.max_pool2d(x, 2), X),
    "pool.avg_pool": lambda: engine(lambda x: F.avg_pool2d(x, 2), X),
    "pool.adaptive_avg_pool": lambda: engine(lambda x: F.adaptive_avg_pool2d(x, 3), X),
    "pool.adaptive_max_pool": lambda: engine(lambda x: F.adaptive_max_pool2d(x, 3), X),
    "pool.roi_align": lambda: engine(lambda x: _roi_align(x), X),
    # test_reference_linalg.py
    "linalg.cholesky": lambda: engine(lambda a: torch.linalg.cholesky(_spd(a)), (3, 3)),
    "linalg.cholesky_solve": lambda: engine(lambda a, b: torch.cholesky_solve(b, torch.linalg.cholesky(_spd(a))),
                                            (3, 3), (3, 2)),
    "linalg.cholesky_inverse": lambda: engine(lambda a: torch.cholesky_inverse(torch.linalg.cholesky(_spd(a))),
                                              (3, 3)),
    "linalg.solve_triangular": lambda: engine(
        lambda a, b: torch.linalg.solve_triangular(_spd(a), b, upper=True), (3, 3), (3, 2)),
    "linalg.lu_factor": lambda: engine(lambda a: torch.linalg.lu_factor(_spd(a)), (3, 3)),
    "linalg.lu_solve": lambda: engine(lambda a, b: torch.linalg.lu_solve(*torch.linalg.lu_factor(_spd(a)), b),
                                      (3, 3), (3, 2)),
    "linalg.solve": lambda: engine(lambda a, b: torch.linalg.solve(_spd(a), b), (3, 3), (3, 2)),
    "linalg.inverse": lambda: engine(lambda a: torch.linalg.inv(_spd(a)), (3, 3)),
    "linalg.determinant": lambda: engine(lambda a: torch.linalg.slogdet(_spd(a)), (3, 3)),
    "linalg.qr": lambda: engine(lambda a: torch.linalg.qr(a), (4, 3)),
    "linalg.qr_factor": lambda: engine(lambda a: torch.geqrf(a), (4, 3)),
    "linalg.householder_product": lambda: engine(lambda a: torch.linalg.householder_product(*torch.geqrf(a)),
                                                 (4, 3)),
    "linalg.apply_householder": lambda: engine(lambda a, c: torch.ormqr(*torch.geqrf(a), c), (4, 3), (4, 2)),
    # test_reference_quantized.py
    "quantized.quantize": lambda: engine(lambda x: torch.quantize_per_tensor(x, 0.1, 0, torch.quint8), X),
    "quantized.fake_quantize": lambda: engine(lambda x: torch.fake_quantize_per_tensor_affine(x, 0.1, 0, 0, 255), X),
    "quantized.fused_observer_fake_quantize": lambda: engine(
        None, X, module=torch.ao.quantization.FusedMovingAvgObsFakeQuantize()),
    "quantized.quantized_conv": lambda: engine(None, X, module=_QuantizedConv()),
    "_factories.quantized_elementwise": lambda: engine(
        lambda x: _quantized(x, lambda t: torch.ops.quantized.add(t, t, 0.1, 0)), X),
    "_factories.quantized_elementwise_relu": lambda: engine(
        lambda x: _quantized(x, lambda t: torch.ops.quantized.add_relu(t, t, 0.1, 0)), X),
    "quantized.quantized_batch_norm": lambda: engine(
        lambda x: _quantized(x, torch.ao.nn.quantized.BatchNorm2d(3)), X),
    "zero_cost[quantized_data_movement]": lambda: engine(
        lambda x: _quantized(x, lambda t: torch.ops.quantized.cat([t, t], 1, 0.1, 0)), X),
    "pool.roi_align_backward": lambda: train(lambda x: _roi_align(x), X),
    "_factories.upsample_nearest": lambda: engine(lambda x: F.interpolate(x, scale_factor=2), X),
    "_factories.upsample_linear": lambda: engine(lambda x: F.interpolate(x, scale_factor=2, mode="linear"),
                                                 (1, 2, 4)),
    "_factories.upsample_bilinear": lambda: engine(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), X),
    "_factories.upsample_bicubic": lambda: engine(lambda x: F.interpolate(x, scale_factor=2, mode="bicubic"), X),
    "_factories.upsample_trilinear": lambda: engine(
        lambda x: F.interpolate(x, scale_factor=2, mode="trilinear"), (1, 1, 2, 2, 2)),
    "interpolation.affine_grid": lambda: engine(lambda t: F.affine_grid(t, [2, 3, 4, 5], align_corners=False),
                                                (2, 2, 3)),
    "interpolation.grid_sample": lambda: engine(lambda x, g: F.grid_sample(x, g, align_corners=False),
                                                X, (2, 3, 3, 2)),
    "embedding.embedding": lambda: _embedding(),
    "embedding.embedding_bag": lambda: _embedding_bag(),
    "reduction.reduce": lambda: engine(torch.sum, X),
    "reduction.mean": lambda: engine(lambda x: x.mean(dim=1), X),
    "reduction.variance": lambda: engine(lambda x: x.var(dim=1), X),
    "reduction.vector_norm": lambda: engine(lambda x: torch.linalg.vector_norm(x, dim=1), X),
    "_factories.foreach_norm": lambda: engine(lambda x: torch._foreach_norm([x]), X),
    "reduction.foreach_max": lambda: engine(lambda x: torch._foreach_max([x]), X),
    "reduction.cumulative": lambda: engine(lambda x: x.cumsum(1), X),
    "reduction.histogram": lambda: engine(lambda x: torch.histc(x, bins=4), X),
    "reduction.dist": lambda: engine(torch.dist, (3, 4), (3, 4)),
    "reduction.renorm": lambda: engine(lambda x: torch.renorm(x, 2, 0, 1.0), (3, 4)),
    "reduction.cdist": lambda: train(torch.cdist, (2, 3, 4), (2, 5, 4)),
    "reduction.euclidean_dist": lambda: engine(torch.cdist, (2, 26, 4), (2, 5, 4)),  # past 25 rows
    "reduction.softmax": lambda: engine(lambda x: x.softmax(1), X),
    "reduction.selection": lambda: engine(lambda x: x.topk(2, dim=1), X),
    # backward.py (values: test_reference_train.py)
    "backward.convolution_backward": lambda: train(None, X, module=nn.Conv2d(3, 4, 3)),
    "backward.linear_backward": lambda: priced_by(aten.linear_backward.default, meta(3, 4), meta(3, 5), meta(5, 4),
                                                  [True, True, True]),
    "backward.sdpa_backward": lambda: train(F.scaled_dot_product_attention, (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)),
    "backward.flash_backward": lambda: priced_by(
        aten._flash_attention_backward.default, meta(1, 4, 2, 8), meta(1, 4, 2, 8), meta(1, 4, 2, 8),
        meta(1, 4, 2, 8), meta(1, 4, 2, 8), meta(1, 2, 4), None, None, 4, 4, 0.0, False, meta(2), meta(0)),
    "backward.mkldnn_rnn_layer_backward": lambda: train(None, (3, 2, 4), module=nn.LSTM(4, 6)),
    "backward.cudnn_rnn_backward": lambda: priced_by(
        aten._cudnn_rnn_backward.default, meta(3, 2, 4), [meta(6, 4), meta(6, 6)], 2, None, meta(1, 2, 6), None,
        meta(3, 2, 6), meta(3, 2, 6), None, None, 1, 6, 0, 1, False, 0.0, True, False, [], None, meta(0),
        [True, True, False, True]),
    "backward.fused_cell_backward": lambda: priced_by(aten._thnn_fused_gru_cell_backward.default, meta(2, 6),
                                                      meta(2, 30), True),
    "backward.layer_norm_backward": lambda: train(None, (2, 4, 8), module=nn.LayerNorm(8)),
    "backward.batch_norm_backward": lambda: train(None, X, module=nn.BatchNorm2d(3)),
    "backward.rms_norm_backward": lambda: priced_by(aten._fused_rms_norm_backward.default, meta(2, 4, 8),
                                                    meta(2, 4, 8), [8], meta(2, 4, 1), meta(8), [True, True]),
    "_factories.softmax_backward": lambda: train(lambda x: x.softmax(1), X),
    "_factories.activation_backward": lambda: train(F.gelu, X),
    "_factories.piecewise_backward": lambda: train(torch.relu, X),
    "_factories.dropout_backward": lambda: priced_by(aten.native_dropout_backward.default, meta(2, 3), meta(2, 3),
                                                     2.0),  # CUDA's fused dropout; CPU's is bernoulli_ and mul
    "backward.embedding_backward": lambda: _embedding(train=True),
    "backward.max_pool_backward": lambda: train(lambda x: F.max_pool2d(x, 2), X),
    "backward.avg_pool_backward": lambda: train(lambda x: F.avg_pool2d(x, 2), X),
    "backward.adaptive_avg_pool_backward": lambda: train(lambda x: F.adaptive_avg_pool2d(x, 3), X),
    "backward.upsample_backward": lambda: train(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), X),
    "backward.grid_sample_backward": lambda: train(lambda x, g: F.grid_sample(x, g, align_corners=False),
                                                   X, (2, 3, 3, 2)),
    # loss.py
    "loss.nll_loss": lambda: train(lambda x: F.cross_entropy(x, torch.tensor([0, 4])), (2, 5)),
    "loss.pointwise_loss": lambda: train(lambda x: F.mse_loss(x, torch.zeros(2, 5)), (2, 5)),
    "loss.bce_with_logits": lambda: train(lambda x: F.binary_cross_entropy_with_logits(x, torch.ones(2, 5)), (2, 5)),
    # data_movement.py groups
    "zero_cost[zero_cost]": lambda: engine(lambda x: x.view(-1), X),
    "zero_cost[data_movement]": lambda: engine(lambda x: torch.cat([x, x]), X),
    "zero_cost[collectives]": lambda: _collectives(),
}


def _embedding(train: bool = False) -> set[str]:
    result = count(nn.Embedding(5, 3), torch.tensor([1, 2]), pass_="train" if train else "inference")
    return {e.formula for e in result.events}


def _embedding_bag() -> set[str]:
    result = count(nn.EmbeddingBag(5, 3), torch.tensor([[1, 2]]))
    return {e.formula for e in result.events}


def _collectives() -> set[str]:
    """A process-group all-reduce, a functional one and its wait, and a DistributedDataParallel
    training step (its backward all-reduces the gradients), on a one-rank gloo group."""
    import torch.distributed as dist
    import torch.distributed._functional_collectives as fc

    class Reduces(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x * 2
            dist.all_reduce(y)
            z = fc.all_reduce(y, "sum", dist.group.WORLD)  # (wrapped for autograd; waited for past the mode)
            functional = torch.ops._c10d_functional
            return z + functional.wait_tensor(functional.all_reduce(y, "sum", dist.group.WORLD.group_name))

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        used = engine(Reduces(), (2, 4)) | engine(Reduces(), (2, 4), train=True)
        ddp = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
        step = count(ddp, torch.randn(3, 4), pass_="train")
        assert step.unsupported == {}, step.unsupported
        reduced = [e for e in step.events if e.op.startswith("c10d.allreduce_")]
        assert reduced and {e.phase for e in reduced} == {"backward"}
        assert {e.op for e in count(Reduces(), torch.randn(2, 4)).events} >= {
            "c10d.allreduce_.default", "_c10d_functional.all_reduce.default", "_c10d_functional.wait_tensor.default"}
        return used | {e.formula for e in step.events}
    finally:
        dist.destroy_process_group()


def _short(name: str) -> str:
    if name.startswith(PREFIX):
        return name[len(PREFIX):]
    return name.rsplit(".", 1)[-1]


def registered_formulas() -> dict[str, object]:
    return {_short(formula_name(fn)): fn for fn in registered().values()}


def test_every_registered_formula_has_an_exercise() -> None:
    missing = sorted(set(registered_formulas()) - set(EXERCISES))
    stale = sorted(set(EXERCISES) - set(registered_formulas()))
    assert missing == [] and stale == []


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_exercise_is_priced_by_its_formula(name: str) -> None:
    used = {_short(n) for n in EXERCISES[name]()}
    assert name in used


@pytest.mark.parametrize("name", sorted(registered_formulas()))
def test_every_formula_is_documented(name: str) -> None:
    doc = registered_formulas()[name].__doc__  # type: ignore[attr-defined]
    assert doc and len(doc.strip()) > 20
