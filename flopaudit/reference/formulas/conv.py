"""Convolutions: every aten convolution entry point, 1-d/2-d/3-d, grouped,
dilated, strided and transposed.

MACs follow from the weight and one activation shape only:

* direct convolution, weight ``(Cout, Cin/g, *k)``:
  ``MACs = numel(output) * (Cin/g) * prod(k)``;
* transposed convolution, weight ``(Cin, Cout/g, *k)``:
  ``MACs = numel(input) * (Cout/g) * prod(k)`` (each input element is
  scattered through the kernel once).

Stride and dilation change the output size, which the output shape already
carries; groups show in the weight shape. torchvision's deformable
convolution (``torchvision::deform_conv2d``) has the MACs of the direct
convolution it computes, plus a bilinear sample per input value it reads.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.formulas.interpolation import taps_flops
from flopaudit.reference.registry import Category, Cost, OpCall, Shape, numel, register_formula


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
    out = call.out
    transposed = bool(call.get("transposed", False)) or "transpose" in call.op
    macs = conv_macs(call.shape("input", "self"), call.shape("weight"), out, transposed)
    extra = numel(out) if call.get("bias") is not None else 0
    return Cost(macs, extra, Category.CONV)


def conv_macs(x: Shape, w: Shape, out: Shape, transposed: bool) -> int:
    """MACs of a convolution (see the module docstring): every kernel tap of every output, or
    for a transposed one every input element scattered through the kernel."""
    per_position = numel(w[1:])
    return numel(x) * per_position if transposed else numel(out) * per_position


#: Extra FLOPs of one bilinear sample: a weighted sum of 4 taps (as ``grid_sample``'s bilinear mode).
BILINEAR_SAMPLE_FLOPS = taps_flops(4)


def _deform_samples(input_shape: Shape, weight: Shape, out_positions: int) -> int:
    """Input values a deformable convolution samples: each output position reads every input
    channel at every kernel tap, ``N * Cin * kh * kw * Hout * Wout``."""
    return input_shape[0] * input_shape[1] * weight[2] * weight[3] * out_positions


@register_formula("torchvision.deform_conv2d")
def deform_conv2d(call: OpCall) -> Cost:
    """``torchvision.ops.deform_conv2d`` (``DeformConv2d``, DCN v1 and v2): a convolution over
    input values sampled at learned offsets.

    MACs: those of the convolution, ``N * Cout * Hout * Wout * (Cin / groups) * kh * kw``.
    Extra FLOPs: a bilinear sample per input value read (:data:`BILINEAR_SAMPLE_FLOPS` each),
    a multiply per sample by its mask (v2, ``use_mask``), and the bias add per output element
    (torchvision adds a zero bias when none is given).
    """
    w, out = call.shape("weight"), call.out
    samples = _deform_samples(call.shape("input"), w, numel(out[2:]))
    extra = samples * BILINEAR_SAMPLE_FLOPS + (samples if call.get("use_mask") else 0) + numel(out)
    return Cost(numel(out) * w[1] * w[2] * w[3], extra, Category.CONV)


@register_formula("torchvision._deform_conv2d_backward")
def deform_conv2d_backward(call: OpCall) -> Cost:
    """The backward of :func:`deform_conv2d`; torchvision computes every gradient (input, weight,
    offset, mask, bias) whatever needs one.

    MACs: the sampled columns' gradient and the weight gradient, each the forward's MACs.
    Extra FLOPs: per sample, three bilinear passes (the columns sampled again for the weight
    gradient, the input gradient scattered to the 4 taps, the offset gradient) and with a mask
    its gradient and the mask applied to the columns' gradient; the bias gradient, one add per
    output element.
    # NB: the sampling gradients are priced as bilinear passes, not from torchvision's kernel line by line.
    """
    w, grad = call.shape("weight"), call.shape("grad")
    samples = _deform_samples(call.shape("input"), w, numel(grad[2:]))
    extra = 3 * samples * BILINEAR_SAMPLE_FLOPS + (2 * samples if call.get("use_mask") else 0) + numel(grad)
    return Cost(2 * numel(grad) * w[1] * w[2] * w[3], extra, Category.CONV)
