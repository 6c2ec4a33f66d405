"""Reference counter: linear layers and the matmul family (mm, addmm, bmm,
baddbmm, matmul, ``@``, einsum, mv, dot) with closed-form expectations.

Linear MACs include every leading dimension of an N-d input (the middle dims
of a ``(B, T, in)`` input are not batch-agnostic: each row is a product).
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

from flopaudit.reference import Category, count
from flopaudit.reference.registry import cost_of
from tests.user_models import Fn

CASES = [
    # id, module factory, input shapes, expected MACs, expected extra FLOPs
    ("linear_2d_bias", lambda: nn.Linear(16, 32), [(4, 16)], 4 * 16 * 32, 4 * 32),
    ("linear_3d_bias", lambda: nn.Linear(16, 32), [(2, 7, 16)], 2 * 7 * 16 * 32, 2 * 7 * 32),
    ("linear_3d_no_bias", lambda: nn.Linear(16, 32, bias=False), [(2, 7, 16)], 2 * 7 * 16 * 32, 0),
    ("linear_4d", lambda: nn.Linear(6, 5), [(2, 3, 4, 6)], 2 * 3 * 4 * 6 * 5, 2 * 3 * 4 * 5),
    ("matmul_3d_2d", lambda: Fn(torch.matmul), [(2, 5, 6), (6, 3)], 2 * 5 * 6 * 3, 0),
    ("bmm", lambda: Fn(torch.bmm), [(4, 5, 6), (4, 6, 7)], 4 * 5 * 6 * 7, 0),
    # (2,1,5,6) @ (3,6,4) broadcasts to (2,3,5,4)
    ("matmul_operator_broadcast", lambda: Fn(lambda a, b: a @ b), [(2, 1, 5, 6), (3, 6, 4)], 2 * 3 * 5 * 6 * 4, 0),
    ("einsum_bmm", lambda: Fn(lambda a, b: torch.einsum("bij,bjk->bik", a, b)), [(3, 4, 5), (3, 5, 6)],
     3 * 4 * 5 * 6, 0),
    ("einsum_attention_scores", lambda: Fn(lambda q, k: torch.einsum("bhqd,bhkd->bhqk", q, k)),
     [(2, 2, 5, 8), (2, 2, 7, 8)], 2 * 2 * 5 * 7 * 8, 0),
    ("baddbmm", lambda: Fn(torch.baddbmm), [(4, 5, 7), (4, 5, 6), (4, 6, 7)], 4 * 5 * 6 * 7, 4 * 5 * 7),
    ("addmm", lambda: Fn(torch.addmm), [(7,), (5, 6), (6, 7)], 5 * 6 * 7, 5 * 7),
    # alpha and beta not 1: one multiply per output element each, plus the add
    ("addmm_scaled", lambda: Fn(lambda c, a, b: torch.addmm(c, a, b, beta=0.5, alpha=2.0)), [(7,), (5, 6), (6, 7)],
     5 * 6 * 7, 5 * 7 + 5 * 7 + 5 * 7),
    # beta = 0: the added term is dropped, not scaled (GPT-2's upcast attention, torch.sparse.mm); alpha still is
    ("addmm_beta0", lambda: Fn(lambda c, a, b: torch.addmm(c, a, b, beta=0, alpha=2.0)), [(7,), (5, 6), (6, 7)],
     5 * 6 * 7, 5 * 7),
    ("baddbmm_beta0", lambda: Fn(lambda c, a, b: torch.baddbmm(c, a, b, beta=0)), [(4, 5, 7), (4, 5, 6), (4, 6, 7)],
     4 * 5 * 6 * 7, 0),
    ("addmv_beta0", lambda: Fn(lambda c, a, b: torch.addmv(c, a, b, beta=0.0)), [(5,), (5, 6), (6,)], 5 * 6, 0),
    ("mv", lambda: Fn(torch.mv), [(5, 6), (6,)], 5 * 6, 0),
    # the in-place variants (optimizers: Shampoo's preconditioner statistics, DASH's blocks)
    ("addmm_inplace", lambda: Fn(lambda c, a, b: c.clone().addmm_(a, b, beta=0.5)), [(5, 7), (5, 6), (6, 7)],
     5 * 6 * 7, 5 * 7 + 5 * 7),
    ("baddbmm_inplace", lambda: Fn(lambda c, a, b: c.clone().baddbmm_(a, b)), [(4, 5, 7), (4, 5, 6), (4, 6, 7)],
     4 * 5 * 6 * 7, 4 * 5 * 7),
    ("addbmm_inplace", lambda: Fn(lambda c, a, b: c.clone().addbmm_(a, b)), [(5, 7), (4, 5, 6), (4, 6, 7)],
     4 * 5 * 6 * 7, 5 * 7),
    ("addmv_inplace", lambda: Fn(lambda c, a, b: c.clone().addmv_(a, b)), [(5,), (5, 6), (6,)], 5 * 6, 5),
    # beta*self + alpha*outer(v1, v2): the outer product's 5*7 multiplies, and the add
    ("addr", lambda: Fn(torch.addr), [(5, 7), (5,), (7,)], 5 * 7, 5 * 7),
    ("addr_inplace_scaled", lambda: Fn(lambda c, a, b: c.clone().addr_(a, b, alpha=2.0)), [(5, 7), (5,), (7,)],
     5 * 7, 5 * 7 + 5 * 7),
    # a list of products (torch._foreach_mm): each pair's M*K*N
    ("foreach_mm", lambda: Fn(lambda a, b, c, d: torch._foreach_mm([a, c], [b, d])),
     [(5, 6), (6, 7), (2, 3), (3, 4)], 5 * 6 * 7 + 2 * 3 * 4, 0),
    ("dot", lambda: Fn(torch.dot), [(6,), (6,)], 6, 0),
]


@pytest.mark.parametrize("build, shapes, macs, extra", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_matmul_family(build, shapes, macs, extra) -> None:
    result = count(build(), [torch.randn(*s) for s in shapes])
    assert result.unsupported == {}
    assert result.macs == macs
    assert result.extra_flops == extra
    assert result.per_category["matmul"].macs == macs


def test_linear_dispatches_addmm_and_charges_the_linear_module() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    result = count(model, torch.randn(3, 16))
    assert result.per_module["0"].macs == 3 * 16 * 32
    assert result.per_module["2"].macs == 3 * 32 * 4
    assert result.per_module[""].macs == 3 * 16 * 32 + 3 * 32 * 4
    assert {e.op for e in result.events if e.category is Category.MATMUL} == {"aten.addmm.default"}


@pytest.mark.parametrize(
    "op, args, macs, extra",
    [
        # linear/matmul reaching the dispatcher unexpanded (other backends): numel(out) * K
        ("linear", [(2, 7, 16), (32, 16), (32,)], 2 * 7 * 32 * 16, 2 * 7 * 32),
        ("matmul", [(2, 5, 6), (6, 3)], 2 * 5 * 3 * 6, 0),
        ("outer", [(6,), (3,)], 6 * 3, 0),
    ],
    ids=["linear", "matmul", "outer"],
)
def test_unexpanded_entry_points_priced_from_shapes(op: str, args, macs: int, extra: int) -> None:
    func = getattr(torch.ops.aten, op).default
    tensors = [torch.empty(*s, device="meta") for s in args]
    out = func(*tensors)
    cost = cost_of(func, tensors, {}, out)
    assert cost is not None and (cost.macs, cost.extra_flops) == (macs, extra)


def test_scaled_mm_priced_from_shapes() -> None:
    """fp8 matmul (GPU only): M*K*N MACs, scales (and bias) one FLOP per output element each."""
    a, b = torch.empty(16, 32, device="meta"), torch.empty(32, 8, device="meta")
    scale = torch.empty((), device="meta")
    out = torch.empty(16, 8, device="meta")
    cost = cost_of(torch.ops.aten._scaled_mm.default, (a, b, scale, scale), {}, out)
    assert cost is not None and (cost.macs, cost.extra_flops) == (16 * 32 * 8, 16 * 8)


@pytest.mark.parametrize("x1, x2, out", [((3, 8), (3, 6), 4), ((2, 5, 7), (2, 5, 3), 2), ((4, 1), (4, 9), 1)])
def test_bilinear_is_the_two_contractions_aten_makes_per_output_feature(
        x1: tuple[int, ...], x2: tuple[int, ...], out: int) -> None:
    rows, in1, in2 = int(torch.tensor(x1[:-1]).prod()), x1[-1], x2[-1]
    r = count(nn.Bilinear(in1, in2, out), (torch.randn(*x1), torch.randn(*x2)))
    # per row and output feature: x1 @ W_k (in1 x in2 MACs), then that . x2 (in2 MACs); the bias add is extra
    assert r.macs == rows * out * in2 * (in1 + 1)
    assert r.extra_flops == rows * out
    assert r.unsupported == {}
    (event,) = [e for e in r.events if e.op == "aten._trilinear.default"]
    assert event.category is Category.MATMUL and event.module_path == ""


def test_dynamically_quantized_linear_is_priced_from_its_input_and_output() -> None:
    model = torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)),
                                                   {nn.Linear}, dtype=torch.qint8)
    r = count(model, torch.randn(4, 16))
    assert r.unsupported == {}
    assert r.module_macs()["0"] == 4 * 16 * 32 and r.module_macs()["2"] == 4 * 32 * 4  # the packed bias not counted
    assert r.macs == 4 * 16 * 32 + 4 * 32 * 4


def test_grouped_experts_are_priced_per_routed_row_forward_and_backward() -> None:
    """Mixture-of-experts products (``torch._grouped_mm``): each routed row through its expert's matrix,
    forward; in a training step the up projection's weight gradient only (its rows come from an input
    that needs no gradient) and the down projection's both gradients, each a grouped product again."""
    from flopaudit.zoo.hard.realworld import GroupedExperts

    r = count(GroupedExperts(), torch.randn(2, 4, 16), pass_="train")
    up = down = 16 * 16 * 32  # 8 tokens x 2 experts each = 16 rows: 16 x 32 up, 32 x 16 down
    forward, backward = r.phases["forward"].per_op, r.phases["backward"].per_op
    assert forward["aten._grouped_mm.default"].macs == up + down
    assert backward["aten._grouped_mm.default"].macs == up + 2 * down
    assert forward["aten.mm.default"].macs == backward["aten.mm.default"].macs == 8 * 16 * 4  # the router


def _ring(n: int, width: int) -> torch.Tensor:
    """A sparse (n, n) adjacency joining each node to the next ``width`` ones: ``n * width`` stored elements."""
    rows = torch.arange(n).repeat_interleave(width)
    cols = (rows + torch.arange(1, width + 1).repeat(n)) % n
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones(n * width), (n, n)).coalesce()


class _Product(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.fn(adjacency, x)


@pytest.mark.parametrize("fn, extra", [
    (torch.spmm, 0),
    (lambda a, x: a @ x, 0),
    (torch.sparse.mm, 0),  # _sparse_addmm with beta = 0: no bias, nothing scaled
    (lambda a, x: torch.sparse.addmm(x, a, x), 1),  # the bias add, one per output element
], ids=["spmm", "matmul", "sparse.mm", "sparse.addmm"])
def test_a_sparse_operand_is_priced_by_its_stored_elements(fn: Callable[..., torch.Tensor], extra: int) -> None:
    adjacency, x = _ring(10, 3), torch.randn(10, 10)
    r = count(_Product(fn), (adjacency, x))
    (e,) = [e for e in r.events if e.macs]
    assert e.sparse and e.macs == 30 * 10 == r.macs  # 30 stored elements x 10 columns, not 10 x 10 x 10
    assert r.extra_flops == extra * 100


def test_the_same_sparse_shape_with_more_nonzeros_costs_more_with_the_memo_on() -> None:
    """A sparse tensor's stored elements are not in its shape: its calls are priced afresh, never from
    a memo keyed by shape (cache on and off give the same counts)."""
    x = torch.randn(10, 4)
    counts = [count(_Product(torch.spmm), (_ring(10, width), x), cache=cache).macs
              for width in (1, 5, 1) for cache in (True, False)]
    assert counts == [40, 40, 200, 200, 40, 40]


def _uneven(n: int) -> torch.Tensor:
    """A sparse (n, n) matrix whose row i stores i + 1 elements (the first columns)."""
    dense = (torch.arange(n)[None, :] <= torch.arange(n)[:, None]).float()
    return dense.to_sparse()


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layouts", ["coo-coo", "csr-csr"])  # (torch multiplies no mixed pair on CPU)
def test_a_product_of_two_sparse_tensors_is_priced_by_where_their_nonzeros_fall(layouts: str) -> None:
    """One multiply-add per stored (i, k) of the left and stored (k, j) of the right: row i of
    ``_uneven(5)`` stores columns 0..i, and row k stores k + 1 elements, so row i costs
    1 + 2 + ... + (i + 1); a shape-only count would be 5 x 5 x 5."""
    left_layout, right_layout = layouts.split("-")

    def as_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
        return t.to_sparse_csr() if layout == "csr" else t

    a, b = as_layout(_uneven(5), left_layout), as_layout(_uneven(5), right_layout)
    expected = sum((i + 1) * (i + 2) // 2 for i in range(5))  # 35
    assert expected == int(((a.to_dense() != 0).float() @ (b.to_dense() != 0).float()).sum())
    r = count(_Product(torch.mm), (a, b))
    assert (r.macs, r.unsupported) == (expected, {})
    assert count(_Product(torch.mm), (b, a)).macs == sum((5 - k) * (k + 1) for k in range(5))  # 35 again, by columns


def test_a_product_of_two_sparse_tensors_that_cannot_be_read_is_not_priced() -> None:
    """On meta (or fake) tensors their nonzeros are unknown: never priced from the shapes."""
    a = _ring(6, 2).to("meta")
    with pytest.raises(ValueError, match="two sparse tensors"):
        cost_of(torch.ops.aten.mm.default, (a, a), {}, torch.empty(6, 6, device="meta"))
    r = count(_Product(torch.sparse.mm), (_ring(6, 2), _ring(6, 2)))  # a kernel of its own, without a formula
    assert (r.macs, r.unsupported) == (0, {"aten._sparse_sparse_matmul.default": 1})
