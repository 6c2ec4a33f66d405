"""Matrix products: mm, addmm, bmm, baddbmm, addbmm, mv, addmv, dot, outer, addr,
linear and matmul when they reach the dispatcher unexpanded, the fused or
low-precision variants, ``_trilinear`` (``nn.Bilinear``), and the quantized
``quantized::linear*`` kernels.

``torch.matmul``, ``@``, ``F.linear`` and ``torch.einsum`` are composite: the
dispatcher sees the ``mm``/``bmm``/``addmm`` they expand to (probed on torch
2.14: ``einsum("bij,bjk->bik")`` -> one ``aten.bmm``; 3-D ``x @ W`` -> ``view``
+ ``aten.mm``; 3-D ``nn.Linear`` with bias -> ``view`` + ``aten.addmm``).

# NB: a product of complex tensors (a Fourier neural operator's spectral
# weights, ``einsum`` over ``rfft2`` modes) counts one MAC per complex
# multiply-accumulate, as torch.utils.flop_counter and fvcore count it; in
# real arithmetic each is 4 real multiplies and 4 real adds.
"""

from __future__ import annotations

import math

import torch

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, numel, register_formula


def _added_term(call: OpCall) -> int:
    """Extra FLOPs of ``beta * input + alpha * product`` beyond the product, per output element:
    the add (none when ``beta`` is 0, which drops the added term), and a multiply for each of
    ``alpha``/``beta`` that is not 1 (a ``beta`` of 0 scales nothing)."""
    n = numel(call.out)
    alpha, beta = call.get("alpha", 1), call.get("beta", 1)
    return (n if beta != 0 else 0) + (n if alpha not in (1, None) else 0) + (n if beta not in (0, 1, None) else 0)


def product_macs(call: OpCall, left: str, right: str) -> int:
    """MACs of ``left @ right`` (``(..., M, K) @ (..., K, N)``, batch dims equal): ``M*K*N`` per
    batch, or, where one operand is sparse, one multiply-add per stored element of it and column
    (row) of the other: ``nnz * N`` (``M * nnz``); where both are, one per pair of stored elements
    ``(i, k)`` and ``(k, j)``, read from where their nonzeros fall (:attr:`OpCall.sparse_products`).
    # NB: two sparse operands that cannot be read (meta, CSC or blocked layouts, batched) are not priced.
    """
    a, b = call.shape(left), call.shape(right)
    sparse_left, sparse_right = call.nonzeros.get(left), call.nonzeros.get(right)
    if sparse_left is not None and sparse_right is not None:
        both = call.sparse_products.get((left, right))
        if both is None:
            raise ValueError("a product of two sparse tensors whose nonzeros cannot be read here (meta, CSC or "
                             "blocked layouts, batched): its cost depends on where they fall")
        return both
    if sparse_left is not None:
        return sparse_left * b[-1]
    if sparse_right is not None:
        return a[-2] * sparse_right
    return numel(a[:-2]) * a[-2] * a[-1] * b[-1]


@on("mm", "_int_mm")
def mm(call: OpCall) -> Cost:
    """``(M, K) @ (K, N)``: ``M*K*N`` MACs, nothing else (a sparse operand: see :func:`product_macs`)."""
    return Cost(product_macs(call, "self", "mat2"), 0, Category.MATMUL)


@on("addmm", "addmm_", "_addmm_activation", "_sparse_addmm")
def addmm(call: OpCall) -> Cost:
    """``beta*bias + alpha*(M, K) @ (K, N)`` (in place: ``addmm_``; ``torch.sparse.mm``/``addmm`` of a
    sparse ``mat1``: ``_sparse_addmm``).

    Counted: ``M*K*N`` MACs (a sparse operand: see :func:`product_macs`); the bias add as ``M*N``
    extra FLOPs (skipped when ``beta == 0``); ``alpha``/``beta`` scalings that are not 1 as ``M*N``
    each; for ``_addmm_activation`` the fused ReLU/GELU as ``M*N``.
    """
    extra = _added_term(call) + (numel(call.out) if "activation" in call.op else 0)
    return Cost(product_macs(call, "mat1", "mat2"), extra, Category.MATMUL)


@on("bmm")
def bmm(call: OpCall) -> Cost:
    """``(B, M, K) @ (B, K, N)``: ``B*M*K*N`` MACs (a sparse operand: see :func:`product_macs`)."""
    return Cost(product_macs(call, "self", "mat2"), 0, Category.MATMUL)


@on("baddbmm", "baddbmm_", "addbmm", "addbmm_")
def baddbmm(call: OpCall) -> Cost:
    """``beta*self + alpha*bmm(b1, b2)``; ``addbmm`` also sums over the batch (in place: ``baddbmm_``,
    ``addbmm_``).

    Counted: ``B*M*K*N`` MACs (for ``addbmm`` the sum over the batch is part
    of the accumulation); one add per output element for ``self`` (unless
    ``beta == 0``) and one multiply per output element per non-1 ``alpha``/``beta``.
    """
    a, b = call.shape("batch1"), call.shape("batch2")
    return Cost(a[0] * a[1] * a[2] * b[2], _added_term(call), Category.MATMUL)


@on("mv", "addmv", "addmv_")
def mv(call: OpCall) -> Cost:
    """Matrix-vector ``(M, K) @ (K,)``: ``M*K`` MACs; ``addmv`` adds ``M`` extra for its bias."""
    a = call.shape("mat", "self")
    return Cost(a[0] * a[1], _added_term(call) if "addmv" in call.op else 0, Category.MATMUL)


@on("dot", "vdot", "inner")
def dot(call: OpCall) -> Cost:
    """Vector dot product of two length-``K`` vectors: ``K`` MACs."""
    return Cost(numel(call.shape("self")), 0, Category.MATMUL)


@on("outer", "ger")
def outer(call: OpCall) -> Cost:
    """Outer product ``(M,) x (N,)``: ``M*N`` MACs (a contraction with ``K = 1``).

    # NB: these are bare multiplies, counted as MACs because the op is the
    # ``K = 1`` case of a matrix product.
    """
    return Cost(numel(call.out), 0, Category.MATMUL)


@on("addr", "addr_")
def addr(call: OpCall) -> Cost:
    """``beta*self + alpha*outer(vec1, vec2)`` (``(M,) x (N,)``): the outer product's ``M*N`` MACs (as
    :func:`outer`) and the added term's extra FLOPs (as ``addmm``)."""
    return Cost(numel(call.out), _added_term(call), Category.MATMUL)


@on("_foreach_mm")
def foreach_mm(call: OpCall) -> Cost:
    """``_foreach_mm`` of two lists of matrices: each pair's ``M*K*N`` MACs."""
    return Cost(sum(a[0] * a[1] * b[1] for a, b in zip(call["self"], call["mat2"])), 0, Category.MATMUL)


@on("linear", "matmul")
def linear(call: OpCall) -> Cost:
    """``linear``/``matmul`` reaching the dispatcher unexpanded (some backends).

    Counted: ``numel(output) * K`` MACs with ``K`` the contracted dimension
    (broadcast batch dims and middle dims of N-d inputs included); ``linear``'s
    bias as one add per output element.
    """
    x = call.shape("input", "self")
    k = x[-1]
    extra = numel(call.out) if call.get("bias") is not None else 0
    return Cost(numel(call.out) * k, extra, Category.MATMUL)


@on("_scaled_mm")
def scaled_mm(call: OpCall) -> Cost:
    """fp8 ``(M, K) @ (K, N)`` with scales: ``M*K*N`` MACs.

    Extra: one multiply per output element for the scales, one add per
    output element for the bias if given.
    # NB: block-wise/row-wise scale application is counted as one multiply
    # per output element whatever the scale shapes are.
    """
    a, b = call.shape("self"), call.shape("mat2")
    n = numel(call.out)
    extra = n + (n if call.get("bias") is not None else 0)
    return Cost(a[0] * a[1] * b[1], extra, Category.MATMUL)


def _expanded(shape: tuple[int, ...], expand: tuple[int, ...], total: int) -> list[int]:
    """``shape`` with a size-1 dim inserted at each dim of ``expand`` (``_trilinear``'s unsqueezes)."""
    rest = iter(shape)
    return [1 if d in expand else next(rest, 1) for d in range(total)]


@on("_trilinear")
def trilinear(call: OpCall) -> Cost:
    """``_trilinear(i1, i2, i3, expand1..3, sumdim, unroll_dim)``, which
    ``F.bilinear``/``nn.Bilinear`` run: the MACs of the two contractions ATen
    makes per step of ``unroll_dim`` (both ``bmm``): ``i1 x i2`` summed over
    the dims ``i3`` lacks, then that with ``i3`` summed over the other
    ``sumdim``; a broadcast product summed over some dims costs the product
    of every dim's size. For ``nn.Bilinear(I1, I2, O)`` on ``N`` rows:
    ``O * N * I2 * (I1 + 1)`` (``W_k x2`` first would give ``O * N * I1 * (I2 + 1)``).
    # NB: written from ATen's ``_trilinear`` (``Linear.cpp``) and checked
    # against the ``bmm`` calls torch.profiler records under it for the
    # arguments ``F.bilinear`` passes; a ``sumdim`` that holds ``unroll_dim``
    # (another path there) is priced by the same two contractions without unrolling.
    """
    shapes = [call.shape(n) for n in ("i1", "i2", "i3")]
    expand = [tuple(call.get(f"expand{i}", ())) for i in (1, 2, 3)]
    sumdim, unroll = tuple(call.get("sumdim", ())), call.get("unroll_dim", 1)
    total = len(shapes[0]) + len(expand[0])
    i1, i2, i3 = (_expanded(s, x, total) for s, x in zip(shapes, expand))
    steps = 1
    if unroll not in sumdim and 0 <= unroll < total:
        steps = max(i1[unroll], i2[unroll], i3[unroll])
        for sizes in (i1, i2, i3):
            sizes[unroll] = 1
    first_sum = {d for d in sumdim if d in expand[2]}  # summed in i1 x i2: the dims i3 does not have
    first = math.prod(max(a, b) for a, b in zip(i1, i2))
    partial = [1 if d in first_sum else max(a, b) for d, (a, b) in enumerate(zip(i1, i2))]
    second = math.prod(max(a, b) for a, b in zip(partial, i3))
    return Cost(steps * (first + second), 0, Category.MATMUL)


QUANTIZED_LINEAR = ("linear", "linear_relu", "linear_dynamic", "linear_relu_dynamic", "linear_dynamic_fp16")


@register_formula(*(f"quantized.{n}" for n in QUANTIZED_LINEAR if hasattr(torch.ops.quantized, n)))
def quantized_linear(call: OpCall) -> Cost:
    """``quantized::linear*``, the kernels of ``torch.ao`` quantized and
    dynamically quantized ``nn.Linear``: ``numel(Y) * K`` MACs, ``K`` the
    input's last dim (the weight is packed: its shape is not an argument);
    the fused ReLU of ``linear_relu*`` one extra FLOP per output element.
    # NB: the bias, packed with the weight, is not counted.
    """
    x = call.shape("X")
    extra = numel(call.out) if "relu" in call.op else 0
    return Cost(numel(call.out) * x[-1], extra, Category.MATMUL)


@on("_grouped_mm")
def grouped_mm(call: OpCall) -> Cost:
    """``_grouped_mm(a, b, offs)``: one product per group, as Mixture-of-Experts layers run their
    experts (transformers' ``grouped_mm`` experts). By layout: ``(M, K) x (G, K, N)`` (``offs``
    splits the rows among the groups) and ``(G, M, K) x (K, N)`` (it splits the columns) cost
    ``M*K*N``; ``(M, K) x (K, N)`` with ``offs`` splitting ``K`` (a weight gradient: one
    ``(M, N)`` result per group) costs ``M*K*N`` too; ``(G, M, K) x (G, K, N)`` costs ``G*M*K*N``.
    # NB: priced from shapes: rows (or columns, or ``K``) past ``offs[-1]`` are counted as if
    # computed; transformers' experts pass exactly the routed rows (expert parallelism aside,
    # whose sentinel rows are skipped by the kernel and counted here).
    """
    a, b = call.shape("self"), call.shape("mat2")
    if len(a) == 2 and len(b) == 2:
        return Cost(a[0] * a[1] * b[1], 0, Category.MATMUL)
    return Cost(numel(call.out) * a[-1], 0, Category.MATMUL)
