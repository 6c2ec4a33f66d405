"""Reductions (sum, mean, max, var, norms, cumulative ops) and softmax.

Conventions: reducing ``k`` elements to one costs ``k - 1`` adds (or
comparisons); a mean adds one divide per output element, so a mean over
``numel(input)`` elements costs ``numel(input)`` FLOPs in total.
"""

from __future__ import annotations

import math

import torch

from flopaudit.reference.formulas._factories import on, per_listed_element
from flopaudit.reference.registry import Category, Cost, OpCall, numel

#: FLOPs per element of a softmax / log-softmax: max-reduce (1 compare),
#: subtract the max (1), exp (1), sum-reduce (1), divide or subtract-log (1).
SOFTMAX_FLOPS_PER_ELEMENT = 5


def _in_out(call: OpCall) -> tuple[int, int]:
    return numel(call.first_input), numel(call.out)


@on("sum", "nansum", "prod", "amax", "amin", "max", "min", "aminmax", "argmax", "argmin", "any", "all",
    "count_nonzero", "logsumexp")
def reduce(call: OpCall) -> Cost:
    """``k -> 1`` reductions: ``numel(input) - numel(output)`` adds or comparisons.

    A full reduction (no ``dim``) of ``n`` elements costs ``n - 1``.
    ``max``/``min`` with two tensor inputs (the elementwise overloads) cost
    one FLOP per output element instead.
    # NB: ``logsumexp`` also takes an exp per input element and a log per
    # output; counted as ``2 * numel(input)``.
    """
    if isinstance(call.get("other"), torch.Size):
        return Cost(0, numel(call.out), Category.ELEMENTWISE)
    n_in, n_out = _in_out(call)
    if "logsumexp" in call.op:
        return Cost(0, 2 * n_in, Category.REDUCTION)
    return Cost(0, max(n_in - n_out, 0), Category.REDUCTION)


@on("mean", "nanmean")
def mean(call: OpCall) -> Cost:
    """Mean: ``numel(input) - numel(output)`` adds plus one divide per output = ``numel(input)``."""
    return Cost(0, numel(call.first_input), Category.REDUCTION)


@on("var", "std", "var_mean", "std_mean")
def variance(call: OpCall) -> Cost:
    """Variance / standard deviation: ``4 * numel(input)``.

    Per input element: sum for the mean (1), subtract the mean (1), square
    (1), sum of squares (1). The final divide (and square root for std) per
    output element is ignored.
    # NB: O(numel(output)) terms are left out.
    """
    return Cost(0, 4 * numel(call.first_input), Category.REDUCTION)


@on("norm", "linalg_vector_norm", "frobenius_norm")
def vector_norm(call: OpCall) -> Cost:
    """p-norm: ``2 * numel(input)`` (a power/abs and an add per element).

    # NB: the final root per output element is ignored, and p other than 2
    # costs the same.
    """
    return Cost(0, 2 * numel(call.first_input), Category.REDUCTION)


foreach_norm = per_listed_element(
    Category.REDUCTION, 2, "_foreach_norm", "_foreach_powsum",
    name="foreach_norm",
    doc="``_foreach_norm``/``_foreach_powsum`` over a list of tensors (gradient clipping, optimizers): each "
    "tensor's :func:`vector_norm`, 2 FLOPs per element, 0 MACs.",
)


@on("_foreach_max")
def foreach_max(call: OpCall) -> Cost:
    """``_foreach_max`` over a list of tensors: each tensor's full reduction, ``numel - 1`` comparisons."""
    return Cost(0, sum(max(numel(s) - 1, 0) for s in call["self"] if s is not None), Category.REDUCTION)


@on("dist")
def dist(call: OpCall) -> Cost:
    """``norm(a - b, p)``: a subtract per element of the broadcast difference, then the norm's 2."""
    return Cost(0, 3 * numel(torch.broadcast_shapes(call.shape("self"), call.shape("other"))), Category.REDUCTION)


@on("renorm")
def renorm(call: OpCall) -> Cost:
    """Each slice along ``dim`` rescaled to norm at most ``maxnorm``: the norm's 2 per element and a multiply."""
    return Cost(0, 3 * numel(call.first_input), Category.REDUCTION)


@on("_cdist_forward", "_cdist_backward")
def cdist(call: OpCall) -> Cost:
    """``cdist(x1 (..., P, M), x2 (..., R, M), p)``: for each of the ``P x R``
    pairs a subtract, a power or absolute value and an add per feature: ``3 * P * R * M``
    per batch (a distance is a norm: no MACs, as :func:`vector_norm`). Its
    gradient for ``x1`` the same (a difference, a scaling, an add per pair and feature).
    # NB: the root per pair is not counted. For p = 2 with more than 25 rows in
    # ``x1`` or ``x2`` (``compute_mode`` left as it is) ATen calls
    # ``_euclidean_dist`` instead: see :func:`euclidean_dist`.
    """
    a, b = call.shape("x1"), call.shape("x2")
    batch = numel(torch.broadcast_shapes(a[:-2], b[:-2]))
    return Cost(0, 3 * batch * a[-2] * b[-2] * a[-1], Category.REDUCTION)


@on("_euclidean_dist")
def euclidean_dist(call: OpCall) -> Cost:
    """``cdist(x1 (..., P, M), x2 (..., R, M))`` for p = 2 as ATen computes it when ``x1`` or
    ``x2`` has more than 25 rows: ``||a||^2 - 2 a.b + ||b||^2`` through one product of
    ``P x (M + 2)`` by ``(M + 2) x R`` (the features, the squared norm and a column of ones
    on each side): ``P * R * (M + 2)`` MACs per batch. Extra FLOPs: the squares and their
    sums (``2M - 1`` per row of either side), ``x1 * -2`` (``M`` per row of ``x1``), and the
    clamp at 0 and the root per pair.
    """
    a, b = call.shape("x1"), call.shape("x2")
    batch = numel(torch.broadcast_shapes(a[:-2], b[:-2]))
    p, r, m = a[-2], b[-2], a[-1]
    extra = batch * ((p + r) * (2 * m - 1) + p * m + 2 * p * r)
    return Cost(batch * p * r * (m + 2), extra, Category.MATMUL)


@on("cumsum", "cumprod", "logcumsumexp", "cummax", "cummin")
def cumulative(call: OpCall) -> Cost:
    """Scans: one add/multiply/comparison per output element."""
    return Cost(0, numel(call.out), Category.REDUCTION)


@on("_softmax", "_log_softmax", "_safe_softmax", "softmax", "log_softmax")
def softmax(call: OpCall) -> Cost:
    """(log-)softmax: ``5 * numel(output)`` (see :data:`SOFTMAX_FLOPS_PER_ELEMENT`).

    Counted per element: max, subtract, exp, sum, divide (or subtract the
    log-sum for log-softmax). ``_safe_softmax``'s zeroing of fully masked
    rows is not counted.
    """
    return Cost(0, SOFTMAX_FLOPS_PER_ELEMENT * numel(call.out), Category.REDUCTION)


@on("sort", "topk", "kthvalue", "median", "nanmedian", "mode", "msort", "argsort")
def selection(call: OpCall) -> Cost:
    """Sorting and selection: ``numel(input) * ceil(log2(n))`` comparisons.

    ``n`` is the size of the sorted dimension (all elements for a flat call).
    # NB: an order-of-magnitude model of a comparison sort; the real count
    # depends on the algorithm and the data.
    """
    x = call.first_input
    dim = call.get("dim", -1)
    if not isinstance(dim, int) or len(x) == 0:
        n = numel(x)
    else:
        n = x[dim]
    return Cost(0, numel(x) * max(1, math.ceil(math.log2(max(n, 2)))), Category.REDUCTION)


@on("histc", "bincount", "histogram")
def histogram(call: OpCall) -> Cost:
    """Histograms (``histc``, ``bincount``, ``histogram``; MoE routers count the tokens per expert
    with ``histc``): one bin update per input element (a weighted ``bincount`` or ``histogram``
    adds its weight there too).
    # NB: the bin search of ``histogram`` with explicit edges is not counted.
    """
    return Cost(0, numel(call.first_input), Category.REDUCTION)
