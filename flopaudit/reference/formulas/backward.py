"""Backward operators: what autograd dispatches to compute gradients.

A gradient of a product is a product of the same size, so the MACs follow
from the forward's shapes:

* convolution (``convolution_backward``, ``output_mask`` = which of grad
  input, grad weight, grad bias are asked for): the input gradient is a
  transposed convolution of the output gradient and the weight gradient a
  convolution of the input with it, each with the forward's MACs
  ``numel(out) * (Cin/g) * prod(k)`` (transposed: ``numel(in) * (Cout/g) *
  prod(k)``); the bias gradient sums the output gradient over batch and
  positions;
* ``linear_backward``: the same for ``x @ W^T``;
* matrix products (``mm``, ``bmm``...) reach the dispatcher as themselves and
  are priced by :mod:`~flopaudit.reference.formulas.matmul`;
* attention kernels (``_scaled_dot_product_*_backward``): five products of
  the forward's size, as the kernels do: the scores ``Q K^T`` recomputed,
  ``dP = dO V^T``, ``dV = P^T dO``, ``dQ = dS K``, ``dK = dS^T Q``: MACs
  ``B*L*S*(3E + 2Ev)``; per score 6 FLOPs (softmax recomputed from the saved
  log-sum-exp: scale, subtract, exp; ``dS = P * (dP - delta)``: subtract,
  multiply; scale) plus 1 with a mask, and ``delta = rowsum(dO * O)``:
  ``2*B*L*Ev``;
* recurrent layers (``mkldnn_rnn_layer_backward``, ``_cudnn_rnn_backward``):
  per step the gate gradients times each weight matrix (input and hidden
  gradients) and their outer products with the inputs (weight gradients):
  twice the forward's MACs; the pointwise gate derivatives at twice the
  forward's pointwise FLOPs and one add per bias element per step.

Everything else costs extra FLOPs only, per element:

* normalisation (:data:`STATS_BACKWARD_PER_ELEMENT` = 9 for an input gradient
  through batch statistics: normalise again 2, two sums over the normalised
  group 3, combine 4; 1 more with an affine weight;
  :data:`EVAL_BACKWARD_PER_ELEMENT` = 1 through running statistics;
  RMS norm 6 (+1 with a weight); weight gradient 2 (multiply by the
  normalised input, sum), bias gradient 1 (sum));
* softmax and log-softmax: 4 per element (``y * (g - sum(g * y))``);
* activations: 2 per element (the derivative, times the incoming gradient);
  piecewise-linear ones (ReLU's ``threshold_backward``, hardtanh, leaky
  ReLU, shrinks) 1 (a comparison selecting the gradient);
* dropout: 2 per element (mask, scale);
* embedding: one add per gathered element (``numel(indices) * D``, a
  scatter-add into the weight gradient);
* pools: max pools one add per output gradient element (routed to its
  argmax); average pools ``K`` per output gradient element; adaptive average
  pools the exact window sizes (as their forward);
* resampling: an n-linear gradient scatters each output gradient element to
  its ``2**d`` taps with a multiply and an add each; nearest one add.

# NB: the kernels' bookkeeping (index arithmetic, zero-filling the gradient
# buffers, O(channels) or O(rows) work) is not counted, as in the forward
# formulas. A gradient autograd does not ask for (``output_mask`` False) is
# not counted; the oneDNN LSTM backward computes every gradient whatever is
# asked, and is counted so.
"""

from __future__ import annotations

from typing import Any, Sequence

from flopaudit.reference.formulas._factories import on, per_output_element
from flopaudit.reference.formulas.pool import adaptive_window_total
from flopaudit.reference.formulas.rnn import POINTWISE_PER_HIDDEN
from flopaudit.reference.registry import Category, Cost, OpCall, numel

STATS_BACKWARD_PER_ELEMENT = 9
EVAL_BACKWARD_PER_ELEMENT = 1
RMS_BACKWARD_PER_ELEMENT = 6
WEIGHT_GRAD_PER_ELEMENT = 2
BIAS_GRAD_PER_ELEMENT = 1
ATTENTION_BACKWARD_PER_SCORE = 6


def _mask(call: OpCall, name: str, n: int) -> tuple[bool, ...]:
    """The ``output_mask``-style argument ``name`` (all True when absent)."""
    mask = call.get(name)
    if mask is None:
        return (True,) * n
    return tuple(bool(m) for m in mask) + (False,) * max(0, n - len(mask))


def _reduce_to(n_in: int, n_out: int) -> int:
    """Adds of a sum from ``n_in`` elements down to ``n_out`` (the reductions' convention)."""
    return max(n_in - n_out, 0)


@on("convolution_backward", "convolution_backward_overrideable", "_slow_conv2d_backward")
def convolution_backward(call: OpCall) -> Cost:
    """Convolution gradients: the forward's MACs once per gradient asked for
    (input, weight), the bias gradient as a sum of the output gradient over
    batch and positions (see the module docstring)."""
    grad_out, x, w = call.shape("grad_output"), call.shape("input", "self"), call.shape("weight")
    transposed = bool(call.get("transposed", False))
    forward_macs = (numel(x) if transposed else numel(grad_out)) * numel(w[1:])
    grad_input, grad_weight, grad_bias = _mask(call, "output_mask", 3)
    macs = forward_macs * (int(grad_input) + int(grad_weight))
    extra = _reduce_to(numel(grad_out), grad_out[1]) if grad_bias and len(grad_out) > 1 else 0
    return Cost(macs, extra, Category.CONV)


@on("linear_backward")
def linear_backward(call: OpCall) -> Cost:
    """``x @ W^T + b`` gradients: ``rows * in * out`` MACs for each of the input and
    weight gradients asked for, the bias gradient as a sum over rows."""
    x, grad_out, w = call.shape("self"), call.shape("grad_output"), call.shape("weight")
    forward_macs = numel(x[:-1]) * numel(w)
    grad_input, grad_weight, grad_bias = _mask(call, "output_mask", 3)
    extra = _reduce_to(numel(grad_out), w[0]) if grad_bias else 0
    return Cost(forward_macs * (int(grad_input) + int(grad_weight)), extra, Category.MATMUL)


def _attention_backward(batch: int, lq: int, s: int, e: int, ev: int, masked: bool) -> Cost:
    scores = batch * lq * s
    macs = scores * (3 * e + 2 * ev)
    extra = scores * (ATTENTION_BACKWARD_PER_SCORE + int(masked)) + 2 * batch * lq * ev
    return Cost(macs, extra, Category.ATTENTION)


def _masked(call: OpCall, *names: str) -> bool:
    return bool(call.get("is_causal", False)) or any(call.get(n) is not None for n in names) or (
        int(call.get("custom_mask_type", 0) or 0) != 0)


@on("_scaled_dot_product_flash_attention_for_cpu_backward", "_scaled_dot_product_flash_attention_backward",
    "_scaled_dot_product_efficient_attention_backward", "_scaled_dot_product_cudnn_attention_backward",
    "_scaled_dot_product_fused_attention_overrideable_backward")
def sdpa_backward(call: OpCall) -> Cost:
    """SDPA kernel gradients, layout ``(..., L, E)``: five products (scores
    recomputed) and the per-score work of the module docstring."""
    q, k, v = call.shape("query"), call.shape("key"), call.shape("value")
    return _attention_backward(numel(q[:-2]), q[-2], k[-2], q[-1], v[-1],
                               _masked(call, "attn_mask", "attn_bias"))


@on("_flash_attention_backward", "_efficient_attention_backward")
def flash_backward(call: OpCall) -> Cost:
    """Low-level flash / memory-efficient gradients, layout ``(B, L, H, E)``.

    Dense batches are exact; variable-length (``cu_seqlens``) calls use the
    forward's upper bound ``min(Tq*max_k, Tk*max_q)`` scores per head.
    """
    q, k, v = call.shape("query"), call.shape("key"), call.shape("value")
    masked = _masked(call, "bias")
    cu = call.get("cum_seq_q", call.get("cu_seqlens_q"))
    if cu is None:
        b, lq, h, e = q
        return _attention_backward(b * h, lq, k[1], e, v[-1], masked)
    max_q = int(call.get("max_q", call.get("max_seqlen_q")) or q[-3])
    max_k = int(call.get("max_k", call.get("max_seqlen_k")) or k[-3])
    h, e, ev = q[-2], q[-1], v[-1]
    scores = h * min(q[-3] * max_k, k[-3] * max_q)
    extra = scores * (ATTENTION_BACKWARD_PER_SCORE + int(masked)) + 2 * q[-3] * h * ev
    return Cost(scores * (3 * e + 2 * ev), extra, Category.ATTENTION)


def _rnn_backward(steps: int, weights: Sequence[Any], gates: int, hidden: int, layer_dirs: int,
                  grads_of_inputs: bool = True, grads_of_weights: bool = True) -> Cost:
    mats = [w for w in weights if w is not None and len(w) == 2]
    vecs = [w for w in weights if w is not None and len(w) == 1]
    per_step = sum(numel(w) for w in mats)
    macs = steps * per_step * (int(grads_of_inputs) + int(grads_of_weights))
    extra = steps * (2 * layer_dirs * POINTWISE_PER_HIDDEN[gates] * hidden
                     + (sum(numel(w) for w in vecs) if grads_of_weights else 0))
    return Cost(macs, extra, Category.RNN)


@on("mkldnn_rnn_layer_backward")
def mkldnn_rnn_layer_backward(call: OpCall) -> Cost:
    """One layer, one direction of the oneDNN RNN (CPU LSTM) backward: every gradient
    (see the module docstring)."""
    x = call.shape("input")
    hidden = int(call["hidden_size"])
    w1 = call.shape("weight1")
    weights = [w1, call.shape("weight2")]
    if call.get("has_biases"):
        weights += [call.get("weight3"), call.get("weight4")]
    steps = int(x[0]) if call.get("batch_sizes") else numel(x[:-1])
    return _rnn_backward(steps, weights, w1[0] // hidden, hidden, 1)


_CUDNN_GATES = {0: 1, 1: 1, 2: 4, 3: 3}


@on("_cudnn_rnn_backward")
def cudnn_rnn_backward(call: OpCall) -> Cost:
    """A cuDNN RNN stack's backward; ``output_mask`` = (input, hx, cx, weights)."""
    x = call.shape("input")
    weights = list(call["weight"])
    stride = int(call.get("weight_stride0") or 1)
    mask = _mask(call, "output_mask", 4)
    steps = int(x[0]) if call.get("batch_sizes") else numel(x[:-1])
    return _rnn_backward(steps, weights, _CUDNN_GATES.get(int(call["mode"]), 4), int(call["hidden_size"]),
                         max(1, len(weights) // stride), grads_of_inputs=mask[0] or mask[1] or mask[2],
                         grads_of_weights=mask[3])


@on("_thnn_fused_lstm_cell_backward_impl", "_thnn_fused_gru_cell_backward")
def fused_cell_backward(call: OpCall) -> Cost:
    """CUDA LSTM/GRU cell pointwise backward: twice the forward's gate FLOPs per hidden element."""
    gates = 4 if "lstm" in call.op else 3
    state = call.shape("cx") if gates == 4 else call.shape("grad_hy")
    return Cost(0, 2 * POINTWISE_PER_HIDDEN[gates] * numel(state), Category.RNN)


def _norm_backward(n: int, mask: tuple[bool, ...], weight: object, per_element: int) -> int:
    """Extra FLOPs of a normalisation's gradients over ``n`` elements (module docstring)."""
    flops = 0
    if mask[0]:
        flops += n * (per_element + (1 if weight is not None else 0))
    if len(mask) > 1 and mask[1] and weight is not None:
        flops += n * WEIGHT_GRAD_PER_ELEMENT
    if len(mask) > 2 and mask[2]:
        flops += n * BIAS_GRAD_PER_ELEMENT
    return flops


@on("native_layer_norm_backward", "native_group_norm_backward")
def layer_norm_backward(call: OpCall) -> Cost:
    """Layer and group norm gradients: statistics from the input (see the module docstring)."""
    n = numel(call.shape("input"))
    return Cost(0, _norm_backward(n, _mask(call, "output_mask", 3), call.get("weight"),
                                  STATS_BACKWARD_PER_ELEMENT), Category.NORM)


@on("native_batch_norm_backward", "batch_norm_backward", "cudnn_batch_norm_backward", "miopen_batch_norm_backward")
def batch_norm_backward(call: OpCall) -> Cost:
    """Batch norm gradients: through batch statistics in training, running statistics in eval."""
    n = numel(call.shape("input"))
    training = bool(call.get("train", call.get("update", True)))
    per = STATS_BACKWARD_PER_ELEMENT if training else EVAL_BACKWARD_PER_ELEMENT
    return Cost(0, _norm_backward(n, _mask(call, "output_mask", 3), call.get("weight"), per), Category.NORM)


@on("_fused_rms_norm_backward")
def rms_norm_backward(call: OpCall) -> Cost:
    """RMS norm gradients: 6 per element for the input (+1 with a weight), 2 for the weight."""
    n = numel(call.shape("input"))
    mask = _mask(call, "output_mask", 2)
    return Cost(0, _norm_backward(n, mask, call.get("weight"), RMS_BACKWARD_PER_ELEMENT), Category.NORM)


softmax_backward = per_output_element(
    Category.REDUCTION, 4, "_softmax_backward_data", "_log_softmax_backward_data", "_masked_softmax_backward",
    name="softmax_backward",
    doc="(log-)softmax gradient: 4 FLOPs per element (``y * (g - sum(g * y))``: multiply, sum, subtract, "
    "multiply; log-softmax: exp, sum, multiply, subtract).",
)

activation_backward = per_output_element(
    Category.ACTIVATION, 2,
    "gelu_backward", "infinitely_differentiable_gelu_backward", "silu_backward", "sigmoid_backward",
    "tanh_backward", "elu_backward", "hardswish_backward", "hardsigmoid_backward", "softplus_backward",
    "mish_backward", "log_sigmoid_backward", "logit_backward", "glu_backward", "_prelu_kernel_backward",
    name="activation_backward",
    doc="Activation gradient: 2 FLOPs per element (the derivative, times the incoming gradient).",
)

piecewise_backward = per_output_element(
    Category.ACTIVATION, 1,
    "threshold_backward", "hardtanh_backward", "leaky_relu_backward", "hardshrink_backward",
    "softshrink_backward", "rrelu_with_noise_backward",
    name="piecewise_backward",
    doc="Gradient of a piecewise-linear activation (ReLU's threshold_backward, hardtanh, leaky ReLU, "
    "shrinks): 1 FLOP per element (a comparison selecting, or scaling, the incoming gradient).",
)

dropout_backward = per_output_element(
    Category.ELEMENTWISE, 2, "native_dropout_backward",
    name="dropout_backward",
    doc="Dropout gradient: 2 FLOPs per element (the mask, the scale).",
)


@on("embedding_dense_backward", "_embedding_bag_dense_backward", "_embedding_bag_backward")
def embedding_backward(call: OpCall) -> Cost:
    """Embedding gradient: a scatter-add of every gathered row into the weight
    gradient, ``numel(indices) * D`` adds (one more multiply each with
    ``per_sample_weights``)."""
    grad = call.shape("grad_output", "grad")
    gathered = numel(call.shape("indices")) * grad[-1]
    return Cost(0, gathered * (2 if call.get("per_sample_weights") is not None else 1), Category.EMBEDDING)


@on("max_pool1d_with_indices_backward", "max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward",
    "max_pool2d_backward", "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
    "fractional_max_pool2d_backward", "fractional_max_pool3d_backward")
def max_pool_backward(call: OpCall) -> Cost:
    """Max pool gradient: one add per output gradient element (routed to its argmax)."""
    return Cost(0, numel(call.shape("grad_output")), Category.POOL)


@on("avg_pool2d_backward", "avg_pool3d_backward")
def avg_pool_backward(call: OpCall) -> Cost:
    """Average pool gradient: ``K`` per output gradient element (spread over its window), as the forward."""
    d = 3 if "3d" in call.op else 2
    k = call["kernel_size"]
    ks = [k] * d if isinstance(k, int) else (list(k) * d if len(k) == 1 else list(k))
    window = 1
    for v in ks:
        window *= int(v)
    return Cost(0, window * numel(call.shape("grad_output")), Category.POOL)


@on("_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward", "adaptive_avg_pool3d_backward")
def adaptive_avg_pool_backward(call: OpCall) -> Cost:
    """Adaptive average pool gradient: the exact sum of the window sizes, as the forward."""
    grad, x = call.shape("grad_output"), call.shape("self")
    d = 3 if "3d" in call.op else 2
    total = numel(x[:-d])
    for i, o in zip(x[-d:], grad[-d:]):
        total *= adaptive_window_total(int(i), int(o))
    return Cost(0, total, Category.POOL)


_TAPS = {"nearest": 1, "linear1d": 2, "bilinear2d": 4, "trilinear3d": 8, "bicubic2d": 16}


@on("upsample_nearest1d_backward", "upsample_nearest2d_backward", "upsample_nearest3d_backward",
    "_upsample_nearest_exact1d_backward", "_upsample_nearest_exact2d_backward",
    "_upsample_nearest_exact3d_backward", "upsample_linear1d_backward", "upsample_bilinear2d_backward",
    "_upsample_bilinear2d_aa_backward", "upsample_trilinear3d_backward", "upsample_bicubic2d_backward",
    "_upsample_bicubic2d_aa_backward")
def upsample_backward(call: OpCall) -> Cost:
    """Resampling gradient: each output gradient element scattered to its taps,
    a multiply and an add per tap (nearest: one add)."""
    taps = next((t for key, t in _TAPS.items() if key in call.op), 1)
    per = 1 if taps == 1 else 2 * taps
    return Cost(0, per * numel(call.shape("grad_output")), Category.INTERPOLATION)


_GRID_TAPS = {0: 4, 1: 1, 2: 16}


@on("grid_sampler_2d_backward", "grid_sampler_3d_backward")
def grid_sample_backward(call: OpCall) -> Cost:
    """``F.grid_sample`` gradient: the input gradient scatters each output gradient
    element to its taps (2 per tap); the grid gradient, when asked, as much again.
    # NB: the derivative of the interpolation weights is charged as the weights."""
    mode = int(call.get("interpolation_mode", 0) or 0)
    taps = (8 if mode == 0 else 1) if "3d" in call.op else _GRID_TAPS.get(mode, 4)
    mask = _mask(call, "output_mask", 2)
    per = 2 * taps * (int(mask[0]) + int(mask[1]))
    return Cost(0, per * numel(call.shape("grad_output")), Category.INTERPOLATION)


__all__ = ["ATTENTION_BACKWARD_PER_SCORE", "BIAS_GRAD_PER_ELEMENT", "EVAL_BACKWARD_PER_ELEMENT",
           "RMS_BACKWARD_PER_ELEMENT", "STATS_BACKWARD_PER_ELEMENT", "WEIGHT_GRAD_PER_ELEMENT"]
