"""``torch.ao`` static quantization's int8 kernels (``quantized::*`` and the aten ops that
quantize and dequantize): what a converted model runs (torchvision's ``quantize=True``
models, eager-mode and FX ``convert``). Each kernel is priced as its float twin: the same
products and elementwise work, done on int8 values with int32 accumulation.

* convolutions (``quantized::conv{1,2,3}d``, ``conv{1,2,3}d_relu``, ``conv2d_add[_relu]``,
  ``conv_transpose{1,2,3}d``): the float convolution's MACs
  (:func:`~flopaudit.reference.formulas.conv.conv_macs`), the weight's shape read from the
  packed weight (``packed_weight.unpack()``: it is not a tensor argument); the bias one add
  per output element; a fused ReLU and a fused add one FLOP per output element each;
* elementwise ops and activations (``add``, ``mul``, their ``_scalar`` and ``_relu`` forms,
  ``relu6``, ``hardswish``, ``sigmoid``, ``leaky_relu``, ``elu``, ``celu``, ``threshold``,
  ``clamp``, ``prelu``): one FLOP per output element per operation, as for floats;
* batch norm (``batch_norm{1,2,3}d[_relu]``, running statistics): as a float eval batch norm;
* ``quantized::max_pool{1,2}d``: as a float max pool; ``quantized::cat`` and packing or
  unpacking weights (``*_prepack``, ``*_unpack``): data movement;
* ``quantize_per_tensor``/``quantize_per_channel``: 2 FLOPs per element (scale, add the zero
  point); ``dequantize``: 2 (subtract the zero point, scale).

``quantized::linear*`` is priced in :mod:`~flopaudit.reference.formulas.matmul`, dynamically
quantized RNNs in :mod:`~flopaudit.reference.formulas.rnn`.
# NB: requantizing each output (the int32 accumulator scaled, rounded, offset by the zero
# point and clamped to int8) is not counted, as a float kernel's dtype conversions are not.
"""

from __future__ import annotations

import torch

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.formulas.conv import conv_macs
from flopaudit.reference.formulas.norm import normalize_flops
from flopaudit.reference.formulas.pool import max_pool
from flopaudit.reference.registry import Category, Cost, OpCall, numel, register_formula


def _quantized(*names: str) -> list[str]:
    """Keys ``quantized.<name>`` for the names this torch build defines."""
    return [f"quantized.{n}" for n in names if hasattr(torch.ops.quantized, n)]


QUANTIZED_CONV = ("conv1d", "conv2d", "conv3d", "conv1d_relu", "conv2d_relu", "conv3d_relu", "conv2d_add",
                  "conv2d_add_relu", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


@register_formula(*_quantized(*QUANTIZED_CONV))
def quantized_conv(call: OpCall) -> Cost:
    """A quantized convolution: the float convolution's MACs, from the packed weight's shape;
    extra FLOPs for its bias, a fused ReLU and a fused add (``conv2d_add``), one per output
    element each."""
    packed = call["packed_weight"]
    weight, bias = packed.unpack()
    out = call.out
    transposed = "transpose" in call.op
    macs = conv_macs(call.shape("qx"), torch.Size(weight.shape), out, transposed)
    fused = ("relu" in call.op) + ("_add" in call.op)
    return Cost(macs, numel(out) * ((bias is not None) + fused), Category.CONV)


#: Quantized elementwise ops and activations by the operations each does per output element.
QUANTIZED_ELEMENTWISE = {
    1: ("add", "mul", "add_scalar", "mul_scalar", "relu6", "hardswish", "sigmoid", "leaky_relu", "elu", "celu",
        "threshold", "clamp", "prelu"),
    2: ("add_relu", "mul_relu", "add_scalar_relu", "mul_scalar_relu"),
}


def _elementwise(per_element: int) -> None:
    def formula(call: OpCall) -> Cost:
        return Cost(0, per_element * numel(call.out), Category.ELEMENTWISE)

    formula.__name__ = formula.__qualname__ = f"quantized_elementwise_{per_element}"
    formula.__doc__ = (f"A quantized elementwise op or activation doing {per_element} operation(s) per output "
                       "element: as many FLOPs per output element.")
    register_formula(*_quantized(*QUANTIZED_ELEMENTWISE[per_element]))(formula)


for _per_element in QUANTIZED_ELEMENTWISE:
    _elementwise(_per_element)


@register_formula(*_quantized("batch_norm", "batch_norm1d", "batch_norm2d", "batch_norm3d", "batch_norm_relu",
                              "batch_norm1d_relu", "batch_norm2d_relu", "batch_norm3d_relu"))
def quantized_batch_norm(call: OpCall) -> Cost:
    """A quantized batch norm (running statistics): as a float eval batch norm, plus one FLOP
    per element for a fused ReLU."""
    n = numel(call.shape("qx"))
    relu = n if "relu" in call.op else 0
    return Cost(0, normalize_flops(n, call.get("weight"), call.get("bias"), training=False) + relu, Category.NORM)


register_formula(*_quantized("max_pool1d", "max_pool2d"))(max_pool)


#: Packing a weight for a kernel (and unpacking it): reordered int8 values, no arithmetic counted.
QUANTIZED_PACKING = tuple(f"{kind}_{verb}" for kind in ("conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                                       "conv_transpose2d", "conv_transpose3d", "linear")
                          for verb in ("prepack", "unpack"))


@register_formula(*_quantized("cat", *QUANTIZED_PACKING))
def quantized_data_movement(call: OpCall) -> Cost:
    """Concatenating quantized tensors (``quantized::cat``, requantized to one scale) and packing or
    unpacking a weight (``quantized::conv2d_prepack``...): data movement."""
    return Cost(0, 0, Category.DATA_MOVEMENT)


#: FLOPs per element of quantizing (scale, add the zero point) and of dequantizing.
QUANTIZE_FLOPS = 2


@on("quantize_per_tensor", "quantize_per_tensor_dynamic", "quantize_per_channel", "dequantize")
def quantize(call: OpCall) -> Cost:
    """Quantizing a float tensor or dequantizing a quantized one: :data:`QUANTIZE_FLOPS` per element."""
    return Cost(0, QUANTIZE_FLOPS * numel(call.out), Category.ELEMENTWISE)
