"""Convolutions: every aten convolution entry point, 1-d/2-d/3-d, grouped,
dilated, strided and transposed.

MACs follow from the weight and one activation shape only:

* direct convolution, weight ``(Cout, Cin/g, *k)``:
  ``MACs = numel(output) * (Cin/g) * prod(k)``;
* transposed convolution, weight ``(Cin, Cout/g, *k)``:
  ``MACs = numel(input) * (Cout/g) * prod(k)`` (each input element is
  scattered through the kernel once).

Stride and dilation change the output size, which the output shape already
carries; groups show in the weight shape.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, numel


@on(
    "convolution",
    "_convolution",
    "convolution_overrideable",
    "cudnn_convolution",
    "cudnn_convolution_transpose",
    "mkldnn_convolution",
    "miopen_convolution",
    "miopen_convolution_transpose",
    "miopen_depthwise_convolution",
    "_slow_conv2d_forward",
    "slow_conv3d_forward",
    "slow_conv_dilated2d",
    "slow_conv_dilated3d",
    "slow_conv_transpose2d",
    "slow_conv_transpose3d",
    "_nnpack_spatial_convolution",
    "_conv_depthwise2d",
    "conv_depthwise3d",
    "thnn_conv2d",
)
def convolution(call: OpCall) -> Cost:
    """Convolution, direct or transposed.

    Counted: MACs as in the module docstring (every kernel tap of every
    output, taps that land on zero padding included); the bias as one add per
    output element (extra FLOPs) when a bias tensor is passed.
    Not counted: padding, im2col/col2im data movement, output cropping of
    transposed convolutions.

    # NB: for a transposed convolution the taps that fall into the cropped
    # border (``padding``) are counted: the kernel computes them, then drops them.
    """
    x = call.shape("input", "self")
    w = call.shape("weight")
    out = call.out
    transposed = bool(call.get("transposed", False)) or "transpose" in call.op
    per_position = numel(w[1:])
    macs = numel(x) * per_position if transposed else numel(out) * per_position
    extra = numel(out) if call.get("bias") is not None else 0
    return Cost(macs, extra, Category.CONV)
