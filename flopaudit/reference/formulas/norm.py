"""Normalisation layers: batch norm (every aten entry point, train and eval),
layer norm, group norm (and instance norm, which dispatches as batch norm),
RMS norm.

Per-element conventions (extra FLOPs, no MACs):

* statistics computed from the input (training batch norm, layer, group and
  instance norm): :data:`STATS_FLOPS_PER_ELEMENT` = 5 (sum for the mean,
  subtract the mean, square, sum of squares, multiply by 1/std);
* running statistics (eval batch norm): :data:`EVAL_FLOPS_PER_ELEMENT` = 2
  (subtract the running mean, multiply by 1/std);
* RMS norm: :data:`RMS_FLOPS_PER_ELEMENT` = 3 (square, sum, multiply by 1/rms);
* affine: one multiply per element for a weight, one add for a bias.

# NB: per-channel or per-row work (``rsqrt(var + eps)``, running-statistics
# updates in training) is O(C) or O(rows) and is not counted.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, numel

STATS_FLOPS_PER_ELEMENT = 5
EVAL_FLOPS_PER_ELEMENT = 2
RMS_FLOPS_PER_ELEMENT = 3


def affine_flops(n: int, weight: object, bias: object) -> int:
    """One multiply per element for a weight, one add per element for a bias."""
    return (n if weight is not None else 0) + (n if bias is not None else 0)


def normalize_flops(n: int, weight: object, bias: object, *, training: bool = True) -> int:
    """Extra FLOPs of normalising ``n`` elements (see the module docstring)."""
    per = STATS_FLOPS_PER_ELEMENT if training else EVAL_FLOPS_PER_ELEMENT
    return per * n + affine_flops(n, weight, bias)


def normalize_cost(call: OpCall, *, training: bool = True) -> Cost:
    """:func:`normalize_flops` of the call's ``input`` with its ``weight`` and ``bias``."""
    n = numel(call.shape("input"))
    return Cost(0, normalize_flops(n, call.get("weight"), call.get("bias"), training=training), Category.NORM)


@on("native_batch_norm", "_native_batch_norm_legit", "cudnn_batch_norm", "miopen_batch_norm",
    "_batch_norm_with_update", "_batch_norm_with_update_functional")
def batch_norm(call: OpCall) -> Cost:
    """Batch norm whose ``training`` flag is an argument (or implied by the op).

    Training uses batch statistics (5 FLOPs/element), eval uses running
    statistics (2 FLOPs/element); affine weight and bias add 1 each.
    ``_batch_norm_with_update`` is always training.
    """
    return normalize_cost(call, training=bool(call.get("training", True)))


@on("_native_batch_norm_legit_no_training", "_batch_norm_no_update")
def batch_norm_eval(call: OpCall) -> Cost:
    """Batch norm with running statistics: 2 FLOPs/element plus affine."""
    return normalize_cost(call, training=False)


@on("native_layer_norm", "native_group_norm")
def layer_norm(call: OpCall) -> Cost:
    """Layer norm and group norm: statistics from the input, 5 FLOPs/element plus affine."""
    return normalize_cost(call)


@on("_fused_rms_norm")
def rms_norm(call: OpCall) -> Cost:
    """RMS norm: 3 FLOPs/element (square, sum, scale) plus 1 for the weight."""
    x = call.shape("input")
    return Cost(0, RMS_FLOPS_PER_ELEMENT * numel(x) + affine_flops(numel(x), call.get("weight"), None), Category.NORM)
