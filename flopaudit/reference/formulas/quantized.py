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

Quantization-aware training (``prepare_qat``, ``prepare_qat_fx``) runs float tensors through
fake quantization: ``fake_quantize_*`` quantize and dequantize in float, 4 FLOPs per element;
the default qconfig's ``FusedMovingAvgObsFakeQuantize`` runs one
``_fused_moving_avg_obs_fq_helper`` per call: its observer first (see
:func:`fused_observer_fake_quantize`).

``quantized::linear*`` is priced in :mod:`~flopaudit.reference.formulas.matmul`, dynamically
quantized RNNs in :mod:`~flopaudit.reference.formulas.rnn`.
# NB: requantizing each output (the int32 accumulator scaled, rounded, offset by the zero
# point and clamped to int8) is not counted, as a float kernel's dtype conversions are not.
"""

from __future__ import annotations

import torch

from flopaudit.reference.formulas._factories import existing, on, per_output_element
from flopaudit.reference.formulas.conv import conv_macs
from flopaudit.reference.formulas.norm import normalize_flops
from flopaudit.reference.formulas.pool import max_pool
from flopaudit.reference.registry import Category, Cost, OpCall, numel, register_formula, zero_cost

QUANTIZED_CONV = ("conv1d", "conv2d", "conv3d", "conv1d_relu", "conv2d_relu", "conv3d_relu", "conv2d_add",
                  "conv2d_add_relu", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


@register_formula(*existing(*QUANTIZED_CONV, namespace="quantized"))
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


quantized_elementwise = per_output_element(
    Category.ELEMENTWISE, 1, "add", "mul", "add_scalar", "mul_scalar", "relu6", "hardswish", "sigmoid",
    "leaky_relu", "elu", "celu", "threshold", "clamp", "prelu",
    name="quantized_elementwise", namespace="quantized",
    doc="A quantized elementwise op or activation: 1 FLOP per output element, as for floats.",
)

quantized_elementwise_relu = per_output_element(
    Category.ELEMENTWISE, 2, "add_relu", "mul_relu", "add_scalar_relu", "mul_scalar_relu",
    name="quantized_elementwise_relu", namespace="quantized",
    doc="A quantized add or multiply with a fused ReLU: 2 FLOPs per output element.",
)


@register_formula(*existing("batch_norm", "batch_norm1d", "batch_norm2d", "batch_norm3d", "batch_norm_relu",
                             "batch_norm1d_relu", "batch_norm2d_relu", "batch_norm3d_relu", namespace="quantized"))
def quantized_batch_norm(call: OpCall) -> Cost:
    """A quantized batch norm (running statistics): as a float eval batch norm, plus one FLOP
    per element for a fused ReLU."""
    n = numel(call.shape("qx"))
    relu = n if "relu" in call.op else 0
    return Cost(0, normalize_flops(n, call.get("weight"), call.get("bias"), training=False) + relu, Category.NORM)


register_formula(*existing("max_pool1d", "max_pool2d", namespace="quantized"))(max_pool)


#: Packing a weight for a kernel (and unpacking it): reordered int8 values, no arithmetic counted.
QUANTIZED_PACKING = tuple(f"{kind}_{verb}" for kind in ("conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                                       "conv_transpose2d", "conv_transpose3d", "linear")
                          for verb in ("prepack", "unpack"))


#: Concatenating quantized tensors (``quantized::cat``, requantized to one scale) and packing or
#: unpacking a weight (``quantized::conv2d_prepack``...): data movement.
quantized_data_movement = zero_cost(Category.DATA_MOVEMENT,
                                    *existing("cat", *QUANTIZED_PACKING, namespace="quantized"),
                                    name="quantized_data_movement")


#: FLOPs per element of quantizing (scale, add the zero point) and of dequantizing.
QUANTIZE_FLOPS = 2


@on("quantize_per_tensor", "quantize_per_tensor_dynamic", "quantize_per_channel", "dequantize")
def quantize(call: OpCall) -> Cost:
    """Quantizing a float tensor or dequantizing a quantized one: :data:`QUANTIZE_FLOPS` per element."""
    return Cost(0, QUANTIZE_FLOPS * numel(call.out), Category.ELEMENTWISE)


#: FLOPs per element of fake quantization: a quantization and a dequantization, in float.
FAKE_QUANTIZE_FLOPS = 2 * QUANTIZE_FLOPS


@on("fake_quantize_per_tensor_affine", "fake_quantize_per_tensor_affine_cachemask",
    "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams", "fake_quantize_per_channel_affine",
    "fake_quantize_per_channel_affine_cachemask", "_fake_quantize_learnable_per_tensor_affine",
    "_fake_quantize_learnable_per_channel_affine")
def fake_quantize(call: OpCall) -> Cost:
    """QAT's fake quantization of a float tensor: :data:`FAKE_QUANTIZE_FLOPS` per element
    (rounding and clamping free, as in :func:`quantize`).
    # NB: ``_fake_quantize_per_tensor_affine_cachemask_tensor_qparams`` takes its on/off flag
    # as a tensor; it is counted on, the flag's value not read (a count prices shapes).
    """
    return Cost(0, FAKE_QUANTIZE_FLOPS * numel(call.first_input), Category.ELEMENTWISE)


#: FLOPs per channel of the fused observer's bookkeeping: the moving averages of the minimum
#: and maximum (subtract, scale, add: 3 each) and the scale and zero point from them (2 each).
OBSERVER_FLOPS_PER_CHANNEL = 2 * 3 + 2 * 2


@on("_fused_moving_avg_obs_fq_helper", "fused_moving_avg_obs_fake_quant")
def fused_observer_fake_quantize(call: OpCall) -> Cost:
    """``FusedMovingAvgObsFakeQuantize`` (the default QAT qconfig's): the observer's minimum
    and maximum of the input (2 comparisons per element), :data:`OBSERVER_FLOPS_PER_CHANNEL`
    per channel (the input's size along ``ch_axis`` with ``per_row_fake_quant``, else one),
    then fake quantization (:data:`FAKE_QUANTIZE_FLOPS` per element).
    # NB: counted with the observer and fake quantization on: their flags (``observer_on``,
    # ``fake_quant_on``) are tensors whose values a count does not read, so a model with its
    # observers disabled, as late in QAT, is counted as if they were on.
    """
    shape = call.first_input
    channels = shape[call.get("ch_axis", 0)] if call.get("per_row_fake_quant") and len(shape) else 1
    return Cost(0, (2 + FAKE_QUANTIZE_FLOPS) * numel(shape) + OBSERVER_FLOPS_PER_CHANNEL * channels,
                Category.ELEMENTWISE)
