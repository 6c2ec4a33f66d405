"""Pooling: max, average and adaptive pools in 1-d, 2-d and 3-d.

Conventions (extra FLOPs, no MACs), with ``K`` the number of window
elements:

* max pool: ``K - 1`` comparisons per output element;
* average pool: ``K - 1`` adds and one divide, i.e. ``K`` per output element;
* adaptive pools: the exact window sizes are derived from the input and
  output sizes (windows ``[floor(i*In/Out), ceil((i+1)*In/Out))``, which are
  separable per dimension), so overlapping and uneven windows are counted
  exactly.

``AdaptiveAvgPool2d(1)`` dispatches as ``aten.mean.dim`` (a reduction).

Region pools (``torchvision.ops``): ``roi_align`` and ``ps_roi_align`` with a
fixed ``sampling_ratio`` (R-CNN heads' ``MultiScaleRoIAlign`` uses 2) are
priced from their shapes; with adaptive sampling (``sampling_ratio <= 0``)
and for ``roi_pool``/``ps_roi_pool`` the work depends on the boxes' sizes,
values a formula does not see: those stay unsupported (adaptive sampling with
a note saying so).
"""

from __future__ import annotations

import math
from typing import Sequence

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, numel, register_formula


def _spatial_dims(op: str) -> int:
    for d in (1, 2, 3):
        if f"{d}d" in op:
            return d
    raise ValueError(f"cannot tell the number of spatial dims of {op}")


def _kernel(call: OpCall) -> int:
    d = _spatial_dims(call.op)
    k = call["kernel_size"]
    ks: Sequence[int] = [k] * d if isinstance(k, int) else (list(k) * d if len(k) == 1 else list(k))
    return math.prod(int(v) for v in ks)


@on("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "mkldnn_max_pool2d", "mkldnn_max_pool3d", "quantized_max_pool2d")
def max_pool(call: OpCall) -> Cost:
    """Max pool: ``(K - 1) * numel(output)`` comparisons.

    # NB: padded and (with ``ceil_mode``) partial windows are charged as full
    # windows; dilation does not change ``K``.
    """
    return Cost(0, (_kernel(call) - 1) * numel(call.out), Category.POOL)


@on("avg_pool1d", "avg_pool2d", "avg_pool3d")
def avg_pool(call: OpCall) -> Cost:
    """Average pool: ``K * numel(output)`` (``K - 1`` adds and a divide per output).

    # NB: padded and partial windows are charged as full windows.
    """
    return Cost(0, _kernel(call) * numel(call.out), Category.POOL)


def adaptive_window_total(in_size: int, out_size: int) -> int:
    """Sum of the adaptive pooling window lengths along one dimension."""
    return sum(
        -((-(i + 1) * in_size) // out_size) - (i * in_size) // out_size for i in range(out_size)
    )


def _adaptive_windows(call: OpCall) -> tuple[int, int]:
    """(sum over outputs of window elements, number of outputs)."""
    x, out = call.first_input, call.out
    d = _spatial_dims(call.op)
    lead = numel(x[:-d])
    total = lead
    for i, o in zip(x[-d:], out[-d:]):
        total *= adaptive_window_total(int(i), int(o))
    return total, numel(out)


@on("_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "mkldnn_adaptive_avg_pool2d")
def adaptive_avg_pool(call: OpCall) -> Cost:
    """Adaptive average pool: the exact sum of window sizes (adds and divides)."""
    total, _ = _adaptive_windows(call)
    return Cost(0, total, Category.POOL)


@on("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")
def adaptive_max_pool(call: OpCall) -> Cost:
    """Adaptive max pool: exact window sizes minus one comparison-free start per output."""
    total, outputs = _adaptive_windows(call)
    return Cost(0, total - outputs, Category.POOL)


#: Extra FLOPs of one sampling point of ``roi_align``: its 4 taps weighted and summed (4
#: multiplies, 3 adds) and added to the bin's sum.
ROI_ALIGN_SAMPLE_FLOPS = 8


def _roi_align_flops(call: OpCall, outputs: int) -> int:
    """:data:`ROI_ALIGN_SAMPLE_FLOPS` per sampling point (``sampling_ratio ** 2`` per output
    element) and a divide per output element."""
    ratio = int(call["sampling_ratio"])
    if ratio <= 0:
        raise ValueError("adaptive sampling (sampling_ratio <= 0): the sampling points of a bin follow "
                         "from its box's size, a value, not a shape")
    return outputs * (ratio * ratio * ROI_ALIGN_SAMPLE_FLOPS + 1)


@register_formula("torchvision.roi_align", "torchvision.ps_roi_align")
def roi_align(call: OpCall) -> Cost:
    """``torchvision.ops.roi_align`` (``MultiScaleRoIAlign``, ``RoIAlign``) and its
    position-sensitive twin: each output element (box, channel, bin) averages
    ``sampling_ratio ** 2`` bilinear samples.

    Extra FLOPs: :data:`ROI_ALIGN_SAMPLE_FLOPS` per sampling point and one divide per output
    element (torchvision's CPU and CUDA kernels). Adaptive sampling: not priced (see the
    module docstring).
    # NB: the bilinear weights, computed once per box and sampling point and shared by every
    # channel, are not counted.
    """
    return Cost(0, _roi_align_flops(call, numel(call.out)), Category.POOL)


@register_formula("torchvision._roi_align_backward", "torchvision._ps_roi_align_backward")
def roi_align_backward(call: OpCall) -> Cost:
    """The backward of :func:`roi_align`: each output gradient divided by its bin's sample
    count, then per sampling point spread to its 4 taps (4 multiplies, 4 adds): the
    forward's count, read from the gradient's shape."""
    return Cost(0, _roi_align_flops(call, numel(call.shape("grad"))), Category.POOL)
