"""Reference counter: norms (eval and train), activations, pools, resampling,
embeddings, elementwise ops and reductions. Extra FLOPs only (no MACs),
closed form per output (or input) element; see each formula's docstring for
the per-element conventions written out here.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from flopaudit.reference import Category, count
from tests.user_models import Fn


def run(model: nn.Module, *shapes: tuple[int, ...], no_grad: bool = True):
    result = count(model, [torch.randn(*s) for s in shapes], no_grad=no_grad)
    assert result.unsupported == {}
    assert result.macs == 0
    return result


NCHW = (2, 3, 4, 4)
N_NCHW = 2 * 3 * 4 * 4  # 96

NORM_CASES = [
    # batch norm with running stats: subtract mean, multiply 1/std (2) + weight (1) + bias (1)
    ("batchnorm_eval", lambda: nn.BatchNorm2d(3).eval(), NCHW, (2 + 1 + 1) * N_NCHW),
    ("batchnorm_eval_no_affine", lambda: nn.BatchNorm2d(3, affine=False).eval(), NCHW, 2 * N_NCHW),
    # training: batch statistics (5) + affine (2), plus 1 add for num_batches_tracked += 1
    ("batchnorm_train", lambda: nn.BatchNorm2d(3).train(), NCHW, (5 + 2) * N_NCHW + 1),
    ("layernorm", lambda: nn.LayerNorm(8), (2, 5, 8), (5 + 2) * 2 * 5 * 8),
    ("layernorm_no_affine", lambda: nn.LayerNorm(8, elementwise_affine=False), (2, 5, 8), 5 * 2 * 5 * 8),
    ("groupnorm", lambda: nn.GroupNorm(2, 4), (2, 4, 3, 3), (5 + 2) * 2 * 4 * 3 * 3),
    # instance norm dispatches as a training batch norm over (1, N*C, H, W)
    ("instancenorm", lambda: nn.InstanceNorm2d(4), (2, 4, 3, 3), 5 * 2 * 4 * 3 * 3),
    # RMSNorm decomposes on CPU: pow (80) + mean (80) + add eps (10 rows) + rsqrt (10) + mul (80) + weight (80)
    ("rmsnorm", lambda: nn.RMSNorm(8), (2, 5, 8), 80 + 80 + 10 + 10 + 80 + 80),
]


@pytest.mark.parametrize("build, shape, extra", [c[1:] for c in NORM_CASES], ids=[c[0] for c in NORM_CASES])
def test_norms(build, shape, extra: int) -> None:
    assert run(build(), shape).extra_flops == extra


def test_batchnorm_train_vs_eval_category() -> None:
    train = run(nn.BatchNorm2d(3).train(), NCHW)
    assert train.per_category["norm"].extra_flops == 7 * N_NCHW
    assert train.per_category["elementwise"].extra_flops == 1  # num_batches_tracked


ACTIVATIONS = [nn.ReLU, lambda: nn.ReLU(inplace=True), nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
               nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU, nn.ELU, nn.Softplus, nn.Mish, nn.PReLU, nn.Hardtanh,
               nn.SELU, nn.CELU]
ACTIVATION_IDS = ["relu", "relu_inplace", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid",
                  "leaky_relu", "elu", "softplus", "mish", "prelu", "hardtanh", "selu", "celu"]


@pytest.mark.parametrize("build", ACTIVATIONS, ids=ACTIVATION_IDS)
def test_activations_cost_one_flop_per_element(build) -> None:
    result = run(build(), NCHW)
    assert result.extra_flops == N_NCHW
    assert result.per_category["activation"].extra_flops == N_NCHW


def test_glu_costs_two_per_output_element() -> None:
    assert run(nn.GLU(), (2, 8)).extra_flops == 2 * (2 * 4)


POOL_CASES = [
    # max: K-1 comparisons per output; avg: K per output
    ("maxpool2d", lambda: nn.MaxPool2d(2), (1, 3, 8, 8), (4 - 1) * 3 * 4 * 4),
    # out = (9 + 2*1 - 3) // 2 + 1 = 5
    ("maxpool2d_k3s2p1", lambda: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 9, 9), (9 - 1) * 2 * 5 * 5),
    ("maxpool1d", lambda: nn.MaxPool1d(2), (1, 3, 8), (2 - 1) * 3 * 4),
    ("avgpool2d", lambda: nn.AvgPool2d(2), (1, 3, 8, 8), 4 * 3 * 4 * 4),
    ("avgpool3d", lambda: nn.AvgPool3d(2), (1, 2, 4, 4, 4), 8 * 2 * 2 * 2 * 2),
    # 5 -> 2 adaptive windows: [0, 3) and [2, 5), 3 + 3 = 6 elements per dim
    ("adaptive_avg_2x2", lambda: nn.AdaptiveAvgPool2d((2, 2)), (1, 3, 5, 5), 3 * 6 * 6),
    ("adaptive_max_2x2", lambda: nn.AdaptiveMaxPool2d((2, 2)), (1, 3, 5, 5), 3 * 6 * 6 - 3 * 2 * 2),
    # global average pooling dispatches as a mean: numel(input)
    ("adaptive_avg_1", lambda: nn.AdaptiveAvgPool2d(1), (1, 3, 5, 5), 3 * 5 * 5),
]


@pytest.mark.parametrize("build, shape, extra", [c[1:] for c in POOL_CASES], ids=[c[0] for c in POOL_CASES])
def test_pools(build, shape, extra: int) -> None:
    assert run(build(), shape).extra_flops == extra


UPSAMPLE_CASES = [
    # per output element: nearest 0, linear 3, bilinear 7, bicubic 31, trilinear 15
    ("nearest2d", lambda: nn.Upsample(scale_factor=2), (1, 3, 4, 4), 0 * 3 * 8 * 8),
    ("nearest_exact2d", lambda: Fn(lambda x: F.interpolate(x, scale_factor=2, mode="nearest-exact")),
     (1, 3, 4, 4), 0),
    ("linear1d", lambda: nn.Upsample(scale_factor=2, mode="linear"), (1, 3, 4), 3 * 3 * 8),
    ("bilinear2d", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 4, 4), 7 * 3 * 8 * 8),
    ("bilinear2d_functional_size", lambda: Fn(lambda x: F.interpolate(x, size=(6, 10), mode="bilinear")),
     (1, 3, 4, 4), 7 * 3 * 6 * 10),
    ("bilinear2d_antialias", lambda: Fn(lambda x: F.interpolate(x, size=(2, 2), mode="bilinear", antialias=True)),
     (1, 3, 4, 4), 7 * 3 * 2 * 2),
    ("bicubic2d", lambda: nn.Upsample(scale_factor=2, mode="bicubic"), (1, 3, 4, 4), 31 * 3 * 8 * 8),
    ("trilinear3d", lambda: nn.Upsample(scale_factor=2, mode="trilinear"), (1, 2, 2, 2, 2), 15 * 2 * 4 * 4 * 4),
    # grid_sample bilinear: 7 per output element, output (1, 2, 3, 3)
    ("grid_sample", lambda: Fn(lambda x: F.grid_sample(x, torch.zeros(1, 3, 3, 2), align_corners=False)),
     (1, 2, 4, 4), 7 * 2 * 3 * 3),
]


@pytest.mark.parametrize("build, shape, extra", [c[1:] for c in UPSAMPLE_CASES], ids=[c[0] for c in UPSAMPLE_CASES])
def test_resampling(build, shape, extra: int) -> None:
    result = run(build(), shape)
    assert result.extra_flops == extra
    assert "interpolation" in result.per_category


def test_embedding_is_a_known_zero_flop_gather() -> None:
    result = count(nn.Embedding(10, 4), torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert result.unsupported == {}
    assert (result.macs, result.extra_flops) == (0, 0)
    [event] = [e for e in result.events if e.op == "aten.embedding.default"]
    assert event.category is Category.EMBEDDING
    assert event.bytes_written == 2 * 3 * 4 * 4  # (2, 3, 4) float32 rows gathered


def test_embedding_bag_sums_gathered_rows() -> None:
    result = count(nn.EmbeddingBag(10, 4, mode="sum"), torch.tensor([[1, 2, 3], [4, 5, 6]]))
    assert result.extra_flops == 6 * 4  # one add per gathered element


ELEMENTWISE_CASES = [
    # broadcasting: one FLOP per element of the broadcast output
    ("add_broadcast", lambda: Fn(lambda a, b: a + b), [(2, 3, 4), (4,)], 2 * 3 * 4),
    ("mul_scalar", lambda: Fn(lambda a: a * 2), [(2, 3, 4)], 2 * 3 * 4),
    ("sub_div_chain", lambda: Fn(lambda a, b: (a - b) / b), [(2, 3, 4), (2, 3, 4)], 2 * (2 * 3 * 4)),
    ("inplace_add", lambda: Fn(lambda a, b: a.add_(b)), [(2, 3, 4), (2, 3, 4)], 2 * 3 * 4),
    ("where_is_selection", lambda: Fn(lambda a: torch.where(a > 0, a, 0.0)), [(2, 3, 4)], 2 * 3 * 4),  # the > only
    ("addcmul", lambda: Fn(lambda a: torch.addcmul(a, a, a)), [(2, 3, 4)], 2 * (2 * 3 * 4)),
    # the list kernels: per element of each tensor of the list (one multiply; two for addcmul)
    ("foreach_mul", lambda: Fn(lambda a, b: torch._foreach_mul([a, b], 0.5)), [(2, 3, 4), (5,)], 2 * 3 * 4 + 5),
    ("foreach_add_inplace", lambda: Fn(lambda a, b: torch._foreach_add_([a.clone(), b.clone()], [a, b])),
     [(2, 3, 4), (5,)], 2 * 3 * 4 + 5),
    ("foreach_addcmul", lambda: Fn(lambda a, b: torch._foreach_addcmul([a, b], [a, b], [a, b])), [(2, 3, 4), (5,)],
     2 * (2 * 3 * 4 + 5)),
    ("foreach_sigmoid_inplace", lambda: Fn(lambda a, b: torch._foreach_sigmoid_([a.clone(), b.clone()])),
     [(2, 3, 4), (5,)], 2 * 3 * 4 + 5),
    ("foreach_copy_and_zero", lambda: Fn(lambda a, b: torch._foreach_zero_(torch._foreach_copy_(
        torch._foreach_clone([a, b]), [b, a]) or [])), [(5,), (5,)], 0),
    # a norm of each tensor (2 per element, as vector_norm), and each one's largest element (n - 1 comparisons)
    ("foreach_norm", lambda: Fn(lambda a, b: torch._foreach_norm([a, b])), [(2, 3, 4), (5,)], 2 * (2 * 3 * 4 + 5)),
    ("foreach_max", lambda: Fn(lambda a, b: torch._foreach_max([a, b])), [(2, 3, 4), (5,)], (2 * 3 * 4 - 1) + 4),
    ("dropout_train", lambda: nn.Dropout(0.5).train(), [(2, 3, 4)], 2 * (2 * 3 * 4)),  # mask scale + multiply
    ("dropout_eval", lambda: nn.Dropout(0.5).eval(), [(2, 3, 4)], 0),
    ("sum_all", lambda: Fn(lambda a: a.sum()), [(2, 3, 4)], 2 * 3 * 4 - 1),
    ("sum_dim", lambda: Fn(lambda a: a.sum(dim=1)), [(2, 3, 4)], 2 * 3 * 4 - 2 * 4),
    ("mean_dim", lambda: Fn(lambda a: a.mean(dim=1)), [(2, 3, 4)], 2 * 3 * 4),
    ("max_dim", lambda: Fn(lambda a: a.max(dim=-1)), [(2, 3, 4)], 2 * 3 * 4 - 2 * 3),
    ("maximum_two_tensors", lambda: Fn(torch.maximum), [(2, 3, 4), (2, 3, 4)], 2 * 3 * 4),
    ("var", lambda: Fn(lambda a: a.var(dim=-1)), [(2, 3, 4)], 4 * 2 * 3 * 4),
    ("vector_norm", lambda: Fn(lambda a: torch.linalg.vector_norm(a, dim=-1)), [(2, 3, 4)], 2 * 2 * 3 * 4),
    ("cumsum", lambda: Fn(lambda a: a.cumsum(-1)), [(2, 3, 4)], 2 * 3 * 4),
    # a subtract per element of the difference, then the norm's 2
    ("dist", lambda: Fn(torch.dist), [(2, 3, 4), (3, 4)], 3 * 2 * 3 * 4),
    # norms of each slice (2 per element) and a rescale (1 per element)
    ("renorm", lambda: Fn(lambda a: torch.renorm(a, 2, 0, 1.0)), [(2, 3, 4)], 3 * 2 * 3 * 4),
    # batch 2 x 3 rows x 5 rows x 4 features, 3 each (subtract, square, add); fewer than 26 rows: direct
    ("cdist", lambda: Fn(torch.cdist), [(2, 3, 4), (2, 5, 4)], 3 * 2 * 3 * 5 * 4),
    # two multiplies and a subtract per output element
    ("cross", lambda: Fn(torch.linalg.cross), [(2, 4, 3), (2, 4, 3)], 3 * 2 * 4 * 3),
    ("bce_with_logits", lambda: Fn(lambda a, t: F.binary_cross_entropy_with_logits(a, t)), [(2, 5), (2, 5)],
     5 * 2 * 5),
    ("bce_with_logits_weighted", lambda: Fn(lambda a, t: F.binary_cross_entropy_with_logits(
        a, t, weight=torch.ones(5), pos_weight=torch.full((5,), 2.0))), [(2, 5), (2, 5)], (5 + 3 + 1) * 2 * 5),
    ("soft_margin_loss", lambda: Fn(lambda a, t: F.soft_margin_loss(a, t)), [(2, 5), (2, 5)], 4 * 2 * 5),
    # topk over a dim of 4: numel * ceil(log2(4))
    ("topk", lambda: Fn(lambda a: a.topk(2, dim=-1)), [(2, 3, 4)], 2 * 3 * 4 * 2),
    ("softmax", lambda: nn.Softmax(dim=-1), [(2, 3, 10)], 5 * 2 * 3 * 10),
    ("log_softmax", lambda: nn.LogSoftmax(dim=-1), [(2, 3, 10)], 5 * 2 * 3 * 10),
    ("views_and_cat_are_free", lambda: Fn(lambda a: torch.cat([a.transpose(0, 1).reshape(-1), a.flatten()])),
     [(2, 3, 4)], 0),
    ("padding_and_shuffle_are_free", lambda: nn.Sequential(nn.ReflectionPad2d(1), nn.PixelShuffle(2)),
     [(1, 8, 3, 3)], 0),
]


@pytest.mark.parametrize("build, shapes, extra", [c[1:] for c in ELEMENTWISE_CASES],
                         ids=[c[0] for c in ELEMENTWISE_CASES])
def test_elementwise_and_reductions(build, shapes, extra: int) -> None:
    assert run(build(), *shapes).extra_flops == extra


def test_euclidean_dist_is_the_product_cdist_runs_past_25_rows() -> None:
    """torch.cdist with p = 2 and more than 25 rows is one aten._euclidean_dist: a product of the
    features with the squared norms and a column of ones on each side (M + 2 per pair); fewer rows
    is _cdist_forward, a norm per pair (no MACs). Batch dims broadcast."""
    big = count(Fn(torch.cdist), [torch.randn(3, 30, 5), torch.randn(1, 26, 5)])
    (e,) = [e for e in big.events if e.macs]
    assert e.op == "aten._euclidean_dist.default" and e.macs == 3 * 30 * 26 * (5 + 2) == big.macs
    # ||a||^2 and ||b||^2 (2M - 1 = 9 per row each), a * -2 (5 per row of a), the clamp and the root per pair
    assert e.extra_flops == 3 * ((30 + 26) * 9 + 30 * 5 + 2 * 30 * 26) == big.extra_flops
    small = run(Fn(torch.cdist), (2, 25, 5), (2, 25, 5))
    assert small.macs == 0 and [e.op for e in small.events if e.extra_flops] == ["aten._cdist_forward.default"]


@pytest.mark.parametrize("size, align_corners, macs, extra", [
    # each of the N x H x W positions: (x, y, 1) @ theta.T, 3 x 2; the linspaces' scaling 2 per step
    ([2, 3, 4, 5], False, 2 * 4 * 5 * 3 * 2, 2 * (4 + 5)),
    ([2, 3, 4, 5], True, 2 * 4 * 5 * 3 * 2, 0),
    ([2, 1, 3, 4, 5], False, 2 * 3 * 4 * 5 * 4 * 3, 2 * (3 + 4 + 5)),  # a volume: (x, y, z, 1) @ theta.T, 4 x 3
])
def test_affine_grid_is_a_batched_product_of_base_coordinates(size: list[int], align_corners: bool, macs: int,
                                                             extra: int) -> None:
    theta = torch.randn(2, len(size) - 2, len(size) - 1)
    r = count(Fn(lambda t: F.affine_grid(t, size, align_corners=align_corners)), [theta])
    assert (r.macs, r.extra_flops, r.unsupported) == (macs, extra, {})


def test_a_failed_factorisation_check_is_no_work() -> None:
    """linalg's _linalg_check_errors reads a LAPACK info tensor (and raises on failure): zero cost, not unsupported."""
    r = count(Fn(lambda a: torch.linalg.cholesky(a @ a.T + torch.eye(4))), [torch.randn(4, 4)])
    assert "aten._linalg_check_errors.default" not in r.unsupported
    assert any(e.op == "aten._linalg_check_errors.default" and e.category == Category.ZERO_COST for e in r.events)


def test_data_movement_ops_are_known_not_unsupported() -> None:
    result = run(Fn(lambda a: torch.cat([a, a.clone()]).permute(2, 0, 1).contiguous()), (2, 3, 4))
    cats = {e.op: e.category for e in result.events}
    assert cats["aten.cat.default"] is Category.DATA_MOVEMENT
    assert cats["aten.permute.default"] is Category.ZERO_COST
    assert all(e.supported for e in result.events)


_BOXES = torch.tensor([[0.0, 0.0, 6.0, 6.0], [1.0, 2.0, 7.0, 5.0], [0.0, 0.0, 3.0, 3.0]])


@pytest.mark.parametrize("op, channels_out, ratio", [
    (torchvision.ops.roi_align, 4, 2),
    (torchvision.ops.roi_align, 4, 3),
    (torchvision.ops.ps_roi_align, 1, 2),  # position-sensitive: C / (2 x 2) output channels
], ids=["roi_align_2", "roi_align_3", "ps_roi_align_2"])
def test_roi_align_is_eight_flops_a_sample_and_a_divide_per_output(op: Callable[..., torch.Tensor],
                                                                   channels_out: int, ratio: int) -> None:
    """3 boxes x channels x 2x2 bins, ``ratio ** 2`` bilinear samples each (4 multiplies, 3 adds, an add
    to the bin's sum), then a divide; a training step's backward spreads each gradient the same way."""
    outputs = 3 * channels_out * 2 * 2
    model = Fn(lambda x: op(x, [_BOXES], 2, 1.0, ratio))
    r = count(model, [torch.randn(1, 4, 8, 8)])
    assert (r.macs, r.extra_flops, r.unsupported) == (0, outputs * (8 * ratio ** 2 + 1), {})
    step = count(model, [torch.randn(1, 4, 8, 8, requires_grad=True)], pass_="train")
    backward = [e for e in step.events if "align_backward" in e.op]
    assert [e.extra_flops for e in backward] == [outputs * (8 * ratio ** 2 + 1)]


def test_roi_align_with_adaptive_sampling_or_max_is_unsupported_with_a_note() -> None:
    """Adaptive sampling (``sampling_ratio <= 0``) and roi_pool's bins follow from the boxes' values."""
    r = count(Fn(lambda x: (torchvision.ops.roi_align(x, [_BOXES], 2), torchvision.ops.roi_pool(x, [_BOXES], 2))),
              [torch.randn(1, 4, 8, 8)])
    assert r.unsupported == {"torchvision.roi_align.default": 1, "torchvision.roi_pool.default": 1}
    assert any("adaptive sampling" in n for n in r.notes)


def test_a_jagged_nested_input_is_priced_on_its_real_rows() -> None:
    """A nested tensor with ``layout=torch.jagged`` (lengths 3 and 5, 16 features) through Linear(16, 4):
    8 real rows. Its ragged size is a symbolic int that ``int()`` refuses, and reading its components
    the way a strided nested tensor's are read crashed the process (counted in a worker here, so that
    a crash is a failed result, not a failed test run)."""
    from flopaudit.records import Status
    from flopaudit.run import audit_model

    x = torch.nested.nested_tensor([torch.randn(3, 16), torch.randn(5, 16)], layout=torch.jagged)
    run = audit_model(nn.Linear(16, 4), x, backends=["reference"])
    result = run.result("model", "reference")
    assert result is not None and result.status is Status.OK, result and result.error
    assert result.macs == (3 + 5) * 16 * 4


def test_a_jagged_nested_input_on_meta_is_refused_not_priced_zero() -> None:
    """On the meta device a jagged tensor's offsets hold no values, so its lengths cannot be read: the
    count fails saying so, where it read 0 MACs with every operator 'unsupported'."""
    from flopaudit.reference.registry import MetaValuesNeeded

    x = torch.nested.nested_tensor([torch.randn(3, 16), torch.randn(5, 16)], layout=torch.jagged).to("meta")
    with torch.device("meta"):
        model = nn.Linear(16, 4)
    with pytest.raises(MetaValuesNeeded, match="jagged nested tensor's lengths are the values of its offsets"):
        count(model, x)
