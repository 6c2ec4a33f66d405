"""The ``ptflops-pytorch`` ruleset: predicts ptflops' pytorch engine (ptflops 0.7.5).

ptflops' pytorch engine (``ptflops/pytorch_engine.py``) counts in two
independent ways during one forward with autograd on, after ``model.eval()``
(``eval_mode``: a train-mode model is recorded for it in eval mode):

* **module hooks**: every module whose *exact* type is a key of
  ``MODULES_MAPPING`` (``ptflops/pytorch_ops.py``) adds its hook's count to
  ``__flops__``; ``accumulate_flops`` sums a supported module without
  visiting its children. Reproduced by one :class:`ModuleRule` per entry,
  matched by dotted class path; the counters below mirror the hooks.
* **functional patches**: ``patch_functional`` / ``patch_tensor_ops`` replace
  ``torch.nn.functional`` activations, pools, ``softmax``, ``interpolate``
  and ``torch``/``Tensor`` ``matmul``, ``mm``, ``bmm``, ``addmm``,
  ``baddbmm``, ``mul``, ``add`` by wrappers that append a count for every
  call, wherever it is made (inside a hooked module too, so e.g. ``nn.ReLU``
  is counted twice). Operators (``@``, ``+``, ``*``), ``torch.einsum``,
  ``F.linear``, ``torch.relu``, ``torch.softmax`` and any reference to a
  function taken before the patch are not seen. Reproduced exactly: the
  ruleset lists the same callables in ``patched_functions``, so the
  reference records its pass with them wrapped, and every call is an event
  ``py:<path>`` priced by the event rules below; the operators a patched
  call dispatches count 0 under the same reason, so the report shows one
  cause per patched function (its count minus their canonical MACs).

A module shared by two parents (``a.shared is b.shared``) is hooked once
(``__flops_handle__`` guards the second visit of ``apply``) but
``accumulate_flops`` walks ``children()`` and adds its ``__flops__`` under
each parent: n times for n names (``sums_per_name``; the excess is booked as
``reused-module``).

The adapter reports ``module_total + functional_total``, both whole-batch
(it undoes ptflops' division of the module part by the batch counter), so
the ruleset has no ``per_sample``.

A patched function called inside a module that a hook prices is counted
too (``patched_calls_in_priced_modules``): an ``nn.Linear`` whose weight is a
tensor subclass running ``F.linear`` as ``torch.mm`` (torchao's quantized
weights) is counted by its hook and by the ``torch.mm`` wrapper.

Where a hooked module's own ``forward`` calls a patched function (``nn.ReLU``
-> ``F.relu``, pools -> ``F.*pool*``, ``nn.Upsample`` -> ``F.interpolate``,
``nn.GELU`` / ``nn.ELU`` / ``nn.PReLU``, ``nn.MultiheadAttention`` ->
``torch.bmm`` / ``torch.baddbmm`` / ``F.softmax`` depending on its
arguments), the module is counted twice: its rule prices the hook and leaves
the events inside (``suppress_inner=False``) to the event rules, which price
the patched call (its own operators count 0). Kept apart, the two parts also
scale apart for a shared module: the hook part once per name, the patched
call once per call.

# NB: ptflops sums the functional counts as Python numbers (floats for
# ``F.interpolate`` with a float scale factor) and the adapter rounds the
# total once; here each call's count is rounded on its own, which differs
# only when fractional counts add up across calls.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from torch import nn

from flopaudit.reference.engine import ModuleCall, OpEvent, TensorArg
from flopaudit.reference.rulesets import (
    EventRule,
    ModuleRule,
    Ruleset,
    affine_norm,
    attr,
    call_arg,
    event_counter,
    exact_type_rules,
    module_counter,
    param_shape,
    patched_call_rules,
    register_ruleset,
)
from flopaudit.reference.rulesets import first_in as _first_in
from flopaudit.reference.rulesets import first_out as _first_out
from flopaudit.reference.rulesets import numel as _numel

Shape = tuple[int, ...]


# ---------------------------------------------------------------------------
# Module hooks: ptflops/pytorch_ops.py MODULES_MAPPING


def _conv_counter(transpose: bool, deformable: bool = False) -> Callable[[ModuleCall], int]:
    """``conv_flops_counter_hook``: ``prod(kernel_size) * Cin * (Cout // groups)``
    per position, positions = ``x.shape[0]`` (taken as the batch: on an
    unbatched input the channels, dim 1 then counting as spatial) times the
    output's spatial size (the *input's* when ``transpose``: ConvTranspose,
    the canonical MACs), plus ``x.shape[0] * prod(y.shape[1:])`` for a bias.
    ``deformable`` (``deformable_conv_flops_counter_hook``, torchvision's
    ``DeformConv2d``): each kernel tap adds 24 per position for its bilinear
    sample ("4 x 5" and 4 for the fractional coordinates), 25 with a mask."""

    def count(call: ModuleCall) -> int:
        x, y = _first_in(call), _first_out(call)
        if not x or not y:
            return 0
        batch = x[0]
        kernel = _numel(attr(call, "kernel_size", ()))
        groups = int(attr(call, "groups", 1) or 1)
        extra = (25 if len(call.input_shapes) >= 3 else 24) if deformable else 0  # (x, offset[, mask])
        per_position = kernel * (int(attr(call, "in_channels", 0)) * (int(attr(call, "out_channels", 0)) // groups)
                                 + extra)
        positions = batch * _numel((x if transpose else y)[2:])
        bias = batch * _numel(y[1:]) if param_shape(call, "bias") is not None else 0
        return per_position * positions + bias

    return count


module_counter("ptflops.conv")(_conv_counter(transpose=False))
module_counter("ptflops.conv_transpose")(_conv_counter(transpose=True))
module_counter("ptflops.deform_conv")(_conv_counter(transpose=False, deformable=True))


@module_counter("ptflops.linear")
def ptflops_linear(call: ModuleCall) -> int:
    """``linear_flops_counter_hook``: ``(in * out + out [bias]) * prod(x.shape[:-1])``.
    ``F.linear`` is not patched, so nothing else is added."""
    x, y = _first_in(call), _first_out(call)
    if not x or not y:
        return 0
    bias = y[-1] if param_shape(call, "bias") is not None else 0
    return (x[-1] * y[-1] + bias) * _numel(x[:-1])


#: ``bn_flops_counter_hook``: ``numel(x)``, doubled if the module has a true ``affine``
#: attribute (BatchNorm, InstanceNorm, GroupNorm; never LayerNorm, whose flag is ``elementwise_affine``).
module_counter("ptflops.norm")(affine_norm(1, 2, lambda call: bool(attr(call, "affine", False))))


def _interpolate(x: Shape, size: Any, scale_factor: Any) -> int:
    """``_interpolate_functional_flops_hook``: ``prod(size) * N * C`` when a
    size is given (an int size raised to the number of spatial dims), else
    ``numel(x)`` times ``int(prod(scale_factor))`` for a tuple of one factor
    per spatial dim, or ``scale_factor ** dims``. # NB: a fractional count
    (float scale factor) is rounded here, summed unrounded by ptflops."""
    spatial = len(x) - 2
    if size is not None:
        if isinstance(size, (tuple, list)):
            return _numel(size) * _numel(x[:2])
        return int(size) ** spatial * _numel(x[:2])
    if scale_factor is None:
        return 0
    if isinstance(scale_factor, tuple) and len(scale_factor) == spatial:
        return _numel(x) * int(math.prod(scale_factor))
    return round(_numel(x) * scale_factor**spatial)


@module_counter("ptflops.upsample")
def ptflops_upsample(call: ModuleCall) -> int:
    """``upsample_flops_counter_hook`` reads ``output[0]``, the first sample:
    ``numel(y) / y.shape[0]``. (The patched ``F.interpolate`` that
    ``nn.Upsample.forward`` calls is counted again by its own event rule.)"""
    y = _first_out(call)
    return _numel(y[1:]) if y else 0


#: ``rnn_flops``: per-layer additions on top of the two weight products.
_RNN_EXTRA = {"RNN": 1, "RNNCell": 1, "GRU": 1 + 3 + 3, "GRUCell": 1 + 3 + 3, "LSTM": 4 + 3 + 3, "LSTMCell": 4 + 3 + 3}


def _rnn_layer(call: ModuleCall, suffix: str) -> int:
    """``rnn_flops`` for one layer: ``numel(w_ih) + numel(w_hh)`` plus
    ``H`` (RNN), ``7H`` (GRU) or ``10H`` (LSTM), plus both bias lengths."""
    w_ih, w_hh = param_shape(call, "weight_ih" + suffix) or (), param_shape(call, "weight_hh" + suffix) or ()
    flops = _numel(w_ih) + _numel(w_hh) + _RNN_EXTRA[call.module_type] * int(attr(call, "hidden_size", 0))
    if attr(call, "bias", True):
        flops += (param_shape(call, "bias_ih" + suffix) or (0,))[0] + (param_shape(call, "bias_hh" + suffix) or (0,))[0]
    return flops


@module_counter("ptflops.rnn")
def ptflops_rnn(call: ModuleCall) -> int:
    """``rnn_flops_counter_hook`` (RNN, GRU, LSTM): the per-layer counts of
    the forward direction, times ``x.shape[0] * x.shape[1]`` (ptflops
    assumes batch-first; the product is the same either way), doubled if
    bidirectional. Weight shapes are read from the parameters, so
    ``proj_size`` shrinks ``w_hh`` as in ptflops."""
    x = _first_in(call)
    if len(x) < 2:
        return 0
    flops = sum(_rnn_layer(call, f"_l{i}") for i in range(int(attr(call, "num_layers", 1))))
    flops *= x[0] * x[1]
    return flops * 2 if attr(call, "bidirectional", False) else flops


@module_counter("ptflops.rnn_cell")
def ptflops_rnn_cell(call: ModuleCall) -> int:
    """``rnn_cell_flops_counter_hook`` (RNNCell, GRUCell, LSTMCell): the layer
    count of ``rnn_flops`` times ``x.shape[0]``."""
    x = _first_in(call)
    return _rnn_layer(call, "") * (x[0] if x else 0)


@module_counter("ptflops.mha")
def ptflops_mha(call: ModuleCall) -> int:
    """``multihead_attention_counter_hook`` for ``q, k, v`` of lengths
    ``Lq, Lk, Lv`` and widths ``E, Ek, Ev``, ``h`` heads, per batch element:
    ``Lq*E`` (scaling) + ``Lq*E^2 + Lk*Ek^2 + Lv*Ev^2`` (projections, each
    squared in its own width) + ``(Lq+Lk+Lv)*E`` (in-projection bias) +
    ``h * (Lq*Lk*E/h + Lq*Lk + Lq*Lk*Ev/h)`` (scores, softmax, weighted sum)
    + ``Lq*Ev*(Ev+1)`` (out projection, bias always), times the batch."""
    if len(call.input_shapes) < 3 or any(len(s) < 3 for s in call.input_shapes[:3]):
        return 0
    q, k, v = call.input_shapes[:3]
    batch_first = bool(attr(call, "batch_first", False))
    batch, length = (q[0], 1) if batch_first else (q[1], 0)
    qdim, kdim, vdim = q[2], k[2], v[2]
    qlen, klen, vlen = q[length], k[length], v[length]
    heads = int(attr(call, "num_heads", 1))
    flops = qlen * qdim
    flops += qlen * qdim * qdim + klen * kdim * kdim + vlen * vdim * vdim
    if param_shape(call, "in_proj_bias") is not None:
        flops += (qlen + klen + vlen) * qdim
    flops += heads * (qlen * klen * (qdim // heads) + qlen * klen + qlen * klen * (vdim // heads))
    flops += qlen * vdim * (vdim + 1)
    return flops * batch


@module_counter("ptflops.timm_attention")
def ptflops_timm_attention(call: ModuleCall) -> int:
    """``timm_attention_counter_hook`` (timm's ``Attention``, the ViT family's
    self-attention): for ``x`` of shape ``(B, N, C)``, ``N * head_dim * heads``
    (q scaling) plus ``heads * (2 * N^2 * head_dim + N^2)`` (scores, softmax,
    weighted sum), times ``B``. Nothing else: ``accumulate_flops`` does not
    descend into a mapped module, so its ``qkv`` and ``proj`` Linear layers,
    though hooked, are never summed."""
    x = _first_in(call)
    if len(x) != 3:
        return 0
    batch, tokens = x[0], x[1]
    heads, head_dim = int(attr(call, "num_heads", 0)), int(attr(call, "head_dim", 0))
    flops = tokens * head_dim * heads + heads * (2 * tokens * tokens * head_dim + tokens * tokens)
    return flops * batch


MODULE_RULES: tuple[ModuleRule, ...] = (
    *exact_type_rules([nn.Conv1d, nn.Conv2d, nn.Conv3d], "ptflops.conv",
                      "Conv counts bias (one per output element); batch read from dim 0"),
    # relu_flops_counter_hook = numel(y); pool_flops_counter_hook = numel(x).
    *exact_type_rules([nn.ReLU, nn.ELU, nn.PReLU, nn.GELU], "out_numel",
                      "ReLU/GELU/ELU/PReLU module hook = 1 per output element "
                      "(and its F function again as a patched call)",
                      suppress_inner=False),
    # Their forwards call the unpatched F.leaky_relu / F.hardtanh: the hook alone counts.
    *exact_type_rules([nn.LeakyReLU, nn.ReLU6], "out_numel", "LeakyReLU/ReLU6 = 1 per element"),
    *exact_type_rules([nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                       nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
                       nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d], "in_numel",
                      "pool module hook = 1 per input element (and its F pool again as a patched call)",
                      suppress_inner=False),
    *exact_type_rules([nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d], "ptflops.norm",
                      "BatchNorm = 1 per element, 2 if affine"),
    *exact_type_rules([nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm], "ptflops.norm",
                      "InstanceNorm/GroupNorm = 1 per element, 2 if affine"),
    *exact_type_rules([nn.LayerNorm], "ptflops.norm",
                      "LayerNorm = 1 per element (never doubled: it has no .affine)"),
    *exact_type_rules([nn.Linear], "ptflops.linear", "Linear counts bias (one per output element)"),
    *exact_type_rules([nn.Upsample], "ptflops.upsample",
                      "Upsample module hook = numel(out) / batch (and F.interpolate again as a patched call)",
                      suppress_inner=False),
    *exact_type_rules([nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d], "ptflops.conv_transpose",
                      "ConvTranspose counts bias (one per output element)"),
    ModuleRule("torchvision.ops.deform_conv.DeformConv2d", "ptflops.deform_conv",
               reason="DeformConv2d = a convolution plus 24 per kernel tap and position for the sampling (25 with "
               "a mask); bias counted"),
    *exact_type_rules([nn.RNN, nn.GRU, nn.LSTM], "ptflops.rnn",
                      "RNN/GRU/LSTM per ptflops' formula (gate adds, hadamards and biases counted)"),
    *exact_type_rules([nn.RNNCell, nn.LSTMCell, nn.GRUCell], "ptflops.rnn_cell",
                      "RNN cells per ptflops' formula (gate adds, hadamards and biases counted)"),
    *exact_type_rules([nn.MultiheadAttention], "ptflops.mha",
                      "MultiheadAttention per ptflops' formula "
                      "(scaling, biases, softmax; projections squared in kdim/vdim)",
                      suppress_inner=False),
)
# ptflops maps timm's ``Attention`` when timm imports (``from
# timm.models.vision_transformer import Attention``; the class lives in
# ``timm.layers.attention`` since timm 0.9, in ``vision_transformer`` before).
# Matched by class path, so timm is not imported here. # NB: no patched
# function is called inside its forward (SDPA, ``@`` and ``Tensor.softmax``
# are not patched), so suppressing its inner events loses nothing ptflops counts.
TIMM_ATTENTION_CLASSES = ("timm.layers.attention.Attention", "timm.models.vision_transformer.Attention")
MODULE_RULES += tuple(
    ModuleRule(path, "ptflops.timm_attention", reason="timm Attention per ptflops' own hook: attention products, "
               "softmax and q scaling only; its qkv/proj Linear layers are not summed (the tree walk stops there)")
    for path in TIMM_ATTENTION_CLASSES
)
# NB: ptflops also maps torchvision.ops.DeformConv2d (no zoo case uses it; not
# reproduced: its calls are priced as modules without a rule).


# ---------------------------------------------------------------------------
# Functional patches: ptflops/pytorch_engine.py patch_functional / patch_tensor_ops


def _tensor_shape(v: Any) -> Shape | None:
    return v.shape if isinstance(v, TensorArg) else None


@event_counter("ptflops.call_numel")
def ptflops_call_numel(e: OpEvent) -> int:
    """``_numel_functional_flops_hook``: ``input.numel()``."""
    shape = _tensor_shape(call_arg(e, 0, "input"))
    return _numel(shape) if shape is not None else 0


@event_counter("ptflops.call_interpolate")
def ptflops_call_interpolate(e: OpEvent) -> int:
    """``_interpolate_functional_flops_hook`` (``F.interpolate``, ``F.upsample``)."""
    x = _tensor_shape(call_arg(e, 0, "input"))
    if x is None:
        return 0
    return _interpolate(x, call_arg(e, 1, "size"), call_arg(e, 2, "scale_factor"))


@event_counter("ptflops.call_matmul")
def ptflops_call_matmul(e: OpEvent) -> int:
    """``_matmul_tensor_flops_hook``: ``prod(input.shape) * other.shape[-1]``,
    on the shapes as passed (too low when only ``other`` has batch dims, too
    high for a matrix-vector product)."""
    a, b = _tensor_shape(call_arg(e, 0, "input")), _tensor_shape(call_arg(e, 1, "other"))
    if a is None or not b:
        return 0
    return _numel(a) * b[-1]


@event_counter("ptflops.call_addmm")
def ptflops_call_addmm(e: OpEvent) -> int:
    """``_addmm_tensor_flops_hook`` (addmm, baddbmm): ``prod(mat1.shape) *
    mat2.shape[-1]`` plus ``numel(input)`` unless ``beta == 0``."""
    added, mat1, mat2 = (_tensor_shape(call_arg(e, i, n)) for i, n in enumerate(("input", "mat1", "mat2")))
    if mat1 is None or not mat2:
        return 0
    flops = _numel(mat1) * mat2[-1]
    beta = dict(e.op_args).get("beta", 1)
    if beta != 0 and added is not None:
        flops += _numel(added)
    return flops


@event_counter("ptflops.call_elementwise")
def ptflops_call_elementwise(e: OpEvent) -> int:
    """``_elementwise_tensor_flops_hook`` (add, mul): with a scalar operand the
    tensor's numel; with two tensors the product of the per-dim maxima with
    the shapes aligned from the *left* (not broadcasting's right)."""
    a, b = _tensor_shape(call_arg(e, 0, "input")), _tensor_shape(call_arg(e, 1, "other"))
    if a is None:
        return _numel(b) if b is not None else 1
    if b is None:
        return _numel(a)
    dims = max(len(a), len(b))
    return _numel(max(a[i] if i < len(a) else 1, b[i] if i < len(b) else 1) for i in range(dims))


_F = "torch.nn.functional."
_NUMEL_FUNCTIONS = ("relu", "prelu", "elu", "relu6", "gelu", "silu")
_POOL_FUNCTIONS = tuple(
    f"{kind}_pool{d}d" for kind in ("avg", "max", "adaptive_avg", "adaptive_max") for d in (1, 2, 3)
)
_MATMUL_FUNCTIONS = ("torch.matmul", "torch.Tensor.matmul", "torch.mm", "torch.Tensor.mm", "torch.bmm",
                     "torch.Tensor.bmm")
_ADDMM_FUNCTIONS = ("torch.addmm", "torch.Tensor.addmm", "torch.baddbmm")
_ELEMENTWISE_FUNCTIONS = ("torch.mul", "torch.Tensor.mul", "torch.add", "torch.Tensor.add")

#: Every callable ptflops' ``patch_functional`` and ``patch_tensor_ops`` replace.
PATCHED_FUNCTIONS: tuple[str, ...] = (
    *(_F + f for f in _NUMEL_FUNCTIONS),
    *(_F + f for f in _POOL_FUNCTIONS),
    _F + "softmax",
    _F + "upsample",
    _F + "interpolate",
    *_MATMUL_FUNCTIONS,
    *_ADDMM_FUNCTIONS,
    *_ELEMENTWISE_FUNCTIONS,
)


#: (patched callables, call counter, reason): one family of ptflops' functional counters each.
_CALL_FAMILIES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (tuple(_F + f for f in _NUMEL_FUNCTIONS), "ptflops.call_numel",
     "patched F.relu/gelu/silu/elu/prelu/relu6 = 1 per input element"),
    (tuple(_F + f for f in _POOL_FUNCTIONS), "ptflops.call_numel", "patched F pools = 1 per input element"),
    ((_F + "softmax",), "ptflops.call_numel", "patched F.softmax = 1 per element"),
    ((_F + "upsample", _F + "interpolate"), "ptflops.call_interpolate",
     "patched F.interpolate = output size from size/scale_factor"),
    (_MATMUL_FUNCTIONS, "ptflops.call_matmul", "patched torch/Tensor matmul, mm, bmm = prod(a.shape)·b[-1]"),
    (_ADDMM_FUNCTIONS, "ptflops.call_addmm", "patched addmm/baddbmm = prod(mat1)·mat2[-1] + numel(input)"),
    (_ELEMENTWISE_FUNCTIONS, "ptflops.call_elementwise",
     "patched torch/Tensor add, mul = 1 per element (shapes aligned from the left)"),
)

_CALLS, _INNER = zip(*(patched_call_rules(paths, count, reason) for paths, count, reason in _CALL_FAMILIES))

EVENT_RULES: tuple[EventRule, ...] = (
    # Each patched call is priced by its ``py:`` event, a call inside another
    # patched call too (each of ptflops' wrappers counts) ...
    *(rule for family in _CALLS for rule in family),
    # ... and the operators it dispatches count 0 under the same reason, so
    # the report books the call's count minus their canonical MACs as one cause.
    *(rule for family in _INNER for rule in family),
    EventRule("zero", module_type="MultiheadAttention",
              reason="MultiheadAttention's own ops replaced by its hook formula"),
)

PTFLOPS_PYTORCH = register_ruleset(Ruleset(
    name="ptflops-pytorch",
    unit="MAC",
    description="ptflops pytorch engine: hooks on modules of exactly the mapped types (bias, norms, activations "
    "and pools counted per element) plus patched torch/F functions counted wherever they are called; "
    "operators, einsum and unpatched functions count 0.",
    module_rules=MODULE_RULES,
    event_rules=EVENT_RULES,
    default="zero",
    grad_enabled=True,
    module_hooks=True,  # on the modules of mapped types (a Linear in every encoder layer) and the root
    eval_mode=True,
    patched_functions=PATCHED_FUNCTIONS,
    patched_calls_in_priced_modules=True,  # a torchao weight's F.linear calls the patched torch.mm
    sums_per_name=True,
    copies_lost=True,  # module hooks count into ``module.__flops__`` (its patched functions into one global list)
    params="trainable",
))


__all__ = ["EVENT_RULES", "MODULE_RULES", "PATCHED_FUNCTIONS", "PTFLOPS_PYTORCH"]
